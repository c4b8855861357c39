"""Back-off, permanent failure, auto-reset, stale-syncing recovery and the sweep, with a controllable clock.

The service and the sweep take `now` from the caller, so these tests step
time forward by hours without sleeping; the clients talk HTTP to the
session's simulators, the retry schedule and checks live in the real Redis.
"""
from datetime import datetime, timedelta, timezone

import pytest
import redis

from beteiligte_helpers import PERSON, espo_record
from bitbylaw_tasks.beteiligte import service, store
from bitbylaw_tasks.beteiligte.mapping import format_espo_datetime
from bitbylaw_tasks.beteiligte.store import record_checked
from bitbylaw_tasks.beteiligte.sweep import sweep
from bitbylaw_tasks.celery_app import create_celery
from bitbylaw_tasks.clients import clients_for
from bitbylaw_tasks.enqueue import Enqueuer
from bitbylaw_tasks.locks import EntityLock
from bitbylaw_tasks.settings import get_settings, load_settings

SWEEP_BROKER_DB = 15  # no worker consumes it: the queued ids can be read back


class Clock:
    def __init__(self):
        self.now = datetime.now(timezone.utc).replace(microsecond=0)

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


@pytest.fixture
def ctx(sandbox, lock_redis):
    clients = clients_for(get_settings())
    return service.SyncContext(clients.espocrm, clients.advoware, lock_redis, clock=Clock())


@pytest.fixture
def enqueuer(redis_server):
    redis.Redis.from_url(redis_server.url(SWEEP_BROKER_DB)).flushdb()
    settings = load_settings({"REDIS_BROKER_URL": redis_server.url(SWEEP_BROKER_DB)})
    return Enqueuer(create_celery(settings))


def _queued_ids(enqueuer) -> list[str]:
    import base64
    import json

    out = []
    for raw in enqueuer._redis.lrange("beteiligte", 0, -1):
        message = json.loads(raw)
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        out.append(json.loads(body)[0][0])
    return sorted(out)


def _failing_record(sandbox) -> dict:
    record = sandbox.state("espocrm").human_create(PERSON)
    sandbox.kit("advoware").add_fault(path="/api/v1/advonet/Beteiligte", method="POST", status=400)
    return record


def test_backoff_schedule_then_permanent_failure_then_auto_reset(sandbox, ctx, lock_redis):
    record = _failing_record(sandbox)
    waits = []
    for attempt in range(1, 6):
        with pytest.raises(Exception):
            service.sync_beteiligte(ctx, record["id"], "update", "retry")
        outcome = service.record_failure(ctx, record["id"], RuntimeError("Advoware refused"))
        waits.append(outcome.next_attempt - ctx.clock())
        stored = espo_record(sandbox, record["id"])
        assert stored["syncRetryCount"] == attempt
        if attempt < 5:
            assert stored["syncStatus"] == "failed"
            # before its time the record is skipped (and scheduled), not synced
            assert service.sync_beteiligte(ctx, record["id"], "update", "webhook").path == "backoff"
            assert store.due_retries(lock_redis, ctx.clock()) == []
            ctx.clock.advance(seconds=waits[-1].total_seconds() + 1)
            assert store.due_retries(lock_redis, ctx.clock()) == [record["id"]]
    assert waits[:4] == [timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1)]
    stored = espo_record(sandbox, record["id"])
    assert stored["syncStatus"] == "permanently_failed" and stored["syncAutoResetAt"]
    notes = [n for n in sandbox.state("espocrm").all_notes() if n["parentId"] == record["id"]]
    assert len(notes) == 1 and "paused" in notes[0]["post"]


def test_sweep_auto_resets_permanently_failed_when_due(sandbox, ctx, enqueuer, lock_redis):
    espo = sandbox.state("espocrm")
    now = ctx.clock()
    due = espo.save(None, {"lastName": "A", "syncStatus": "permanently_failed", "syncRetryCount": 5,
                           "syncAutoResetAt": format_espo_datetime(now - timedelta(minutes=1))}, espo.integration_user)
    later = espo.save(None, {"lastName": "B", "syncStatus": "permanently_failed", "syncRetryCount": 5,
                             "syncAutoResetAt": format_espo_datetime(now + timedelta(hours=3))}, espo.integration_user)
    result = sweep(ctx.espocrm, lock_redis, enqueuer, now)
    assert result.reset == 1 and _queued_ids(enqueuer) == [due["id"]]
    reset = espo_record(sandbox, due["id"])
    assert (reset["syncStatus"], reset["syncRetryCount"]) == ("failed", 0)
    assert espo_record(sandbox, later["id"])["syncStatus"] == "permanently_failed"


def test_sweep_recovers_stale_syncing_only_without_a_live_lock(sandbox, ctx, enqueuer, lock_redis):
    espo = sandbox.state("espocrm")
    stuck = espo.save(None, {"lastName": "S", "syncStatus": "syncing"}, espo.integration_user)
    held = espo.save(None, {"lastName": "H", "syncStatus": "syncing"}, espo.integration_user)
    EntityLock(lock_redis, "cbeteiligte", held["id"], ttl=60).acquire()
    soon = sweep(ctx.espocrm, lock_redis, enqueuer, ctx.clock() + timedelta(minutes=5))
    assert soon.by_rule.get("syncing_stale", 0) == 0
    later = sweep(ctx.espocrm, lock_redis, enqueuer, ctx.clock() + timedelta(minutes=20))
    assert later.by_rule["syncing_stale"] == 1 and _queued_ids(enqueuer) == [stuck["id"]]


def test_sweep_selects_every_rule_pages_without_cap_and_coalesces(sandbox, ctx, enqueuer, lock_redis):
    espo = sandbox.state("espocrm")
    now = ctx.clock()
    old = format_espo_datetime(now - timedelta(hours=30))
    fresh = format_espo_datetime(now - timedelta(hours=1))
    make = lambda **f: espo.save(None, {"lastName": "X", **f}, espo.integration_user)["id"]  # noqa: E731
    expected = [make(syncStatus="pending_sync") for _ in range(230)]          # > one page of 200
    expected += [make(syncStatus="dirty"), make(syncStatus="failed"),
                 make(syncStatus="failed", syncNextRetry=format_espo_datetime(now - timedelta(minutes=1))),
                 make(syncStatus="clean", betnr=42, advowareLastSync=old),
                 make(syncStatus="clean", betnr=43)]
    make(syncStatus="failed", syncNextRetry=format_espo_datetime(now + timedelta(minutes=5)))
    make(syncStatus="clean", betnr=44, advowareLastSync=fresh)
    make(syncStatus="clean", advowareLastSync=old)  # never linked: nothing to check
    make(syncStatus="deleted_in_advoware")
    first = sweep(ctx.espocrm, lock_redis, enqueuer, now)
    assert first.queued == len(expected) and _queued_ids(enqueuer) == sorted(expected)
    assert first.by_rule == {"pending": 231, "failed_due": 2, "clean_stale": 2}
    second = sweep(ctx.espocrm, lock_redis, enqueuer, now)  # overlapping sweep: nothing twice
    assert second.queued == 0 and second.coalesced == len(expected)


def test_the_sweep_leaves_the_rolling_check_to_the_freshness_checker_and_reports_the_oldest_check(
        sandbox, ctx, enqueuer, lock_redis):
    now = ctx.clock()
    ages = {"e0000000000000001": 50, "e0000000000000002": 40, "e0000000000000003": 30, "e0000000000000004": 1}
    for entity_id, minutes in ages.items():
        record_checked(lock_redis, entity_id, now - timedelta(minutes=minutes))
    result = sweep(ctx.espocrm, lock_redis, enqueuer, now)
    assert result.queued == 0 and _queued_ids(enqueuer) == []  # tests/test_beteiligte_freshness.py
    assert result.oldest_check_age_s == 50 * 60


def test_a_record_gone_from_espocrm_leaves_the_rolling_check(sandbox, celery_worker, lock_redis):
    from beteiligte_helpers import run_sync
    from bitbylaw_tasks.beteiligte.store import CHECKED_KEY

    record_checked(lock_redis, "e00000000000000ff", datetime.now(timezone.utc))
    assert run_sync("e00000000000000ff")["path"] == "missing_in_espocrm"
    assert lock_redis.zscore(CHECKED_KEY, "e00000000000000ff") is None
