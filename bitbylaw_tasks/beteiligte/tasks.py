"""Celery tasks of the `beteiligte` queue: sync one entity, the sweep, and the retry drain. Thin adapters.

Each task takes ids only, holds the entity lock (via `run_exclusive`), calls
the service, and maps exceptions to Celery outcomes: transient API errors are
retried with exponential back-off and jitter (bounded far below the broker's
visibility timeout); a failure that needs a human is recorded in EspoCRM and
then raised, so Flower shows a failed task with its traceback.
"""
from __future__ import annotations

import dataclasses
import logging
import random
import time
from datetime import datetime, timedelta, timezone

from celery.exceptions import Retry

import celeryconfig
from bitbylaw_tasks.beteiligte import service
from bitbylaw_tasks.beteiligte.sweep import LOCK_KIND, record_checked, sweep as run_sweep
from bitbylaw_tasks.celery_app import app, settings_of
from bitbylaw_tasks.clients import clients_for
from bitbylaw_tasks.enqueue import EntityTask, coalesce_key, enqueuer_for
from bitbylaw_tasks.exclusive import BUSY, run_exclusive
from bitbylaw_tasks.locks import EntityLock, LockLost
from bitbylaw_tasks.metrics import record_sync
from bitbylaw_tasks.redis_clients import lock_redis
from integrations.http import ApiError, RateLimited

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def transient_countdown(retries: int, exc: ApiError, cap: float) -> float:
    """Back-off for the n-th transient retry: 2, 4, 8 … s with full jitter, at least Retry-After, capped."""
    base = min(cap, 2.0 ** (retries + 1))
    delay = random.uniform(base / 2, base)
    if isinstance(exc, RateLimited) and exc.retry_after:
        delay = max(delay, exc.retry_after)
    return min(delay, cap)


def sync_task_for(entity_id: str, action: str, source: str) -> EntityTask:
    return EntityTask("beteiligte.sync", (entity_id, action, source), coalesce_key("beteiligte", entity_id, action))


def kommunikation_task_for(entity_id: str) -> EntityTask:
    return EntityTask("kommunikation.sync", (entity_id, "both", False), coalesce_key("kommunikation", entity_id))


@app.task(bind=True, name="beteiligte.sync", acks_late=True)
def sync(self, entity_id: str, action: str = "update", source: str = "manual") -> dict:
    """Sync one CBeteiligte with Advoware (SPEC §4.2). Arguments are ids and flags only."""
    settings = settings_of(app)
    client = lock_redis(settings)
    clients = clients_for(settings)
    enqueuer = enqueuer_for(app)
    ctx = service.SyncContext(clients.espocrm, clients.advoware, client, policy=settings.conflict_policy)

    def body(lock: EntityLock):
        ctx.lock = lock
        try:
            return service.sync_beteiligte(ctx, entity_id, action, source)
        except service.SyncFailed as exc:
            if not exc.recorded:
                service.record_failure(ctx, entity_id, exc)
            raise
        except LockLost:
            log.error("beteiligte %s: lock lease lost mid-sync; nothing more written", entity_id)
            raise
        except ApiError as exc:
            if exc.transient and self.request.retries < settings.transient_retries:
                cap = celeryconfig.max_countdown(settings)
                raise self.retry(exc=exc, countdown=transient_countdown(self.request.retries, exc, cap),
                                 max_retries=settings.transient_retries)
            service.record_failure(ctx, entity_id, exc)
            raise service.SyncFailed(f"sync failed: {exc}", recorded=True) from exc

    lock = EntityLock(client, LOCK_KIND, entity_id, ttl=settings.sync_lock_ttl)
    started = time.monotonic()
    try:
        outcome = run_exclusive(client, enqueuer, lock, sync_task_for(entity_id, action, source), body)
    except Exception as exc:
        result = "retry" if isinstance(exc, Retry) else "failed"
        record_sync(client, "beteiligte", action, result, time.monotonic() - started)
        raise
    if outcome == BUSY:
        record_sync(client, "beteiligte", BUSY, "busy", time.monotonic() - started)
        return {"entity_id": entity_id, "path": BUSY}
    record_sync(client, "beteiligte", outcome.path, "ok", time.monotonic() - started)
    if outcome.path in service.HANDOFF_PATHS:
        record_checked(client, entity_id, utcnow())
        enqueuer.enqueue([kommunikation_task_for(entity_id)])
    return dataclasses.asdict(outcome)


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
                           check_budget=settings.sweep_check_budget,
                           lock_ttl=timedelta(seconds=settings.sync_lock_ttl))
    finally:
        guard.release()
    log.info("beteiligte sweep: %s", result.as_dict())
    return result.as_dict()


@app.task(name="beteiligte.retry_due", acks_late=True, ignore_result=True)
def retry_due() -> int:
    """Beat, every 30 s: queue the syncs whose back-off (syncNextRetry) has passed."""
    settings = settings_of(app)
    client = lock_redis(settings)
    ids = service.due_retries(client, utcnow())
    if ids:
        enqueuer_for(app).enqueue([sync_task_for(i, "update", "retry") for i in ids])
        service.drop_retries(client, ids)
    return len(ids)
