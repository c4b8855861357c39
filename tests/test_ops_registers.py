"""The failure register and the pending manual actions (Redis DB 1), as the runner, the domains and the status
page use them."""
from __future__ import annotations

from bitbylaw_tasks.ops import failures, manual


def test_failure_register_keeps_the_latest_reason_and_the_permanent_mark_until_cleared(lock_redis):
    failures.record(lock_redis, "beteiligte", "a", "first", now=100)
    failures.mark_permanent(lock_redis, "beteiligte", "a")
    failures.record(lock_redis, "beteiligte", "a", "x" * 900, now=300)  # a later failure of a paused record
    failures.mark_permanent(lock_redis, "kommunikation", "b", "never recorded before", now=200)
    failures.record(lock_redis, "calendar", "AB", "guard", now=250)
    items = failures.entries(lock_redis)
    assert [(e["domain"], e["entity_id"], e["permanent"]) for e in items] == [
        ("beteiligte", "a", True), ("calendar", "AB", False), ("kommunikation", "b", True)]
    assert items[0]["reason"] == "x" * failures.MAX_REASON and items[2]["reason"] == "never recorded before"
    assert failures.counts(items) == {"beteiligte": (1, 1), "calendar": (1, 0), "kommunikation": (1, 1)}
    failures.clear(lock_redis, "beteiligte", "a")
    failures.clear(lock_redis, "beteiligte", "b")  # another domain's entry of the same id stays
    assert [(e["domain"], e["entity_id"]) for e in failures.entries(lock_redis)] == [
        ("calendar", "AB"), ("kommunikation", "b")]


def test_manual_actions_are_pending_until_resolved_and_keep_their_first_time(lock_redis):
    manual.add(lock_redis, "adressen", "r1", "address_conflict", "choose one", now=50)
    manual.add(lock_redis, "adressen", "r1", "address_conflict", "choose one of two", now=90)
    manual.add(lock_redis, "beteiligte", "r2", "uncertain_create", "check Advoware", now=70)
    assert [(a["entity_id"], a["kind"], a["since"], a["detail"]) for a in manual.pending(lock_redis)] == [
        ("r1", "address_conflict", 50, "choose one of two"), ("r2", "uncertain_create", 70, "check Advoware")]
    assert manual.count(lock_redis) == 2
    assert manual.resolve(lock_redis, "adressen", "r1", "address_conflict")
    assert not manual.resolve(lock_redis, "adressen", "r1", "address_conflict")
    assert [a["entity_id"] for a in manual.pending(lock_redis)] == ["r2"]


def test_every_configured_queue_is_watched_by_a_heartbeat():
    """A queue without a heartbeat would die unnoticed: each one's workers answer `{queue}.heartbeat`,
    and /healthz reports them (the Adressen queue once had no heartbeat)."""
    import celeryconfig
    from bitbylaw_tasks.celery_app import app
    from bitbylaw_tasks.ops import heartbeat, tasks  # noqa: F401 - registers the heartbeat tasks

    watched = {c.removeprefix("worker:") for c in heartbeat.COMPONENTS if c.startswith("worker:")}
    assert watched == set(celeryconfig.QUEUES)
    assert all(f"{queue}.heartbeat" in app.tasks for queue in celeryconfig.QUEUES if queue != "default")
    assert {route["queue"] for name, route in celeryconfig.TASK_ROUTES.items()} <= set(celeryconfig.QUEUES)
