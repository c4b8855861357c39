"""Celery tasks of the `beteiligte` queue: sync one entity, the sweep, the freshness checker and the retry
drain. Thin adapters.

Each task takes ids only, holds the entity lock (via `run_exclusive`), calls
the service, and maps exceptions to Celery outcomes: the shared runner
`outcomes.run_entity_task` does all of it; what follows a sync is decided by
`service.followups`.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

from bitbylaw_tasks import messages, priorities
from bitbylaw_tasks.beteiligte import freshness as fresh, service, store
from bitbylaw_tasks.beteiligte.context import BETEILIGTE, sync_context
from bitbylaw_tasks.beteiligte.sweep import sweep as run_sweep
from bitbylaw_tasks.celery_app import app, settings_of
from bitbylaw_tasks.clients import clients_for
from bitbylaw_tasks.enqueue import enqueuer_for
from bitbylaw_tasks.exclusive import BUSY
from bitbylaw_tasks.locks import EntityLock
from bitbylaw_tasks.metrics import record_check_ages
from bitbylaw_tasks.outcomes import result_of, run_entity_task
from bitbylaw_tasks.redis_clients import lock_redis
from integrations.rategate import calls_as

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@app.task(bind=True, name=messages.BETEILIGTE_SYNC, acks_late=True)
def sync(self, entity_id: str, action: str = "update", source: str = "manual") -> dict:
    """Sync one CBeteiligte with Advoware (SPEC §4.2). Arguments are ids and flags only. A check
    (`source` sweep) calls Advoware as background work, everything else as interactive (`priorities`)."""
    with calls_as(priorities.of_source(source)):
        outcome = run_entity_task(app, self, BETEILIGTE, entity_id=entity_id, action=action,
                                  entity_task=messages.beteiligte_sync(entity_id, action, source),
                                  context=sync_context,
                                  work=lambda ctx: service.sync_beteiligte(ctx, entity_id, action, source),
                                  bookkeeping=lambda pipe, done: _check_times(pipe, entity_id, done))
    if outcome == BUSY:
        return {"entity_id": entity_id, "path": BUSY}
    then = service.followups(outcome)
    handed = priorities.handoff_source(source)  # a check's hand-offs are background work as the check was
    handoffs = ([messages.kommunikation_sync(entity_id, source=handed)] if then.handoff_kommunikation else []) + \
        ([messages.adressen_sync(entity_id, handed)] if then.handoff_adressen else [])
    if handoffs:
        enqueuer_for(app).enqueue(handoffs)  # one round trip for both hand-offs
    return result_of(outcome)


def _check_times(pipe, entity_id: str, outcome: service.SyncOutcome) -> None:
    """The rolling check's memory after a sync, written with the sync's metrics (`run_entity_task`)."""
    then = service.followups(outcome)
    if then.forget_checked:
        store.forget_checked(pipe, entity_id)
    if then.record_checked:
        store.queue_checked(pipe, entity_id, utcnow())


@app.task(name="beteiligte.sweep", acks_late=True)
def sweep() -> dict:
    """Beat, every 15 min: queue a sync_check for every record that needs one (SPEC §4.1)."""
    settings = settings_of(app)
    client = lock_redis(settings)
    guard = EntityLock(client, "sweep", "beteiligte", ttl=settings.task_time_limit)
    if not guard.acquire():
        log.info("beteiligte sweep: another sweep is running; skipped")
        return {"skipped": True}
    try:
        result = run_sweep(clients_for(settings).espocrm, client, enqueuer_for(app), utcnow(),
                           lock_ttl=timedelta(seconds=settings.sync_lock_ttl))
    finally:
        guard.release()
    log.info("beteiligte sweep: %s", result.as_dict())
    return result.as_dict()


@app.task(name="beteiligte.freshness", acks_late=True, ignore_result=True)
def freshness() -> dict:
    """Beat, every FRESHNESS_TICK s: check the longest-unchecked parties with what the shared Advoware budget
    leaves (`freshness.py`), and publish the check ages for /metrics."""
    settings = settings_of(app)
    client = lock_redis(settings)
    gate = clients_for(settings).advoware.gate
    budget = fresh.Budget(settings.advoware_max_requests_per_minute, settings.freshness_headroom,
                          settings.freshness_tick, settings.advoware_interactive_reserve)
    now = time.time()
    step = fresh.tick(client, budget, now=now, used=gate.used() if gate else 0,
                      waiting=enqueuer_for(app).waiting("beteiligte"), paused=bool(gate and gate.paused()))
    if step.picked:
        enqueuer_for(app).enqueue([messages.beteiligte_sync(i, "check", "sweep") for i in step.picked])
    ages = fresh.freshness(client, now)
    record_check_ages(client, "beteiligte", ages.tracked,
                      {"0.5": ages.p50_s, "0.99": ages.p99_s, "1": ages.oldest_s})
    return step.as_dict()


@app.task(name="beteiligte.retry_due", acks_late=True, ignore_result=True)
def retry_due() -> int:
    """Beat, every 30 s: queue the syncs whose back-off (syncNextRetry) has passed."""
    settings = settings_of(app)
    client = lock_redis(settings)
    ids = store.due_retries(client, utcnow())
    if ids:
        enqueuer_for(app).enqueue([messages.beteiligte_sync(i, "update", "retry") for i in ids])
        store.drop_retries(client, ids)
    return len(ids)
