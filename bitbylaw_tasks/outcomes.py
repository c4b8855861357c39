"""Map what a sync raises to a Celery outcome; shared by the entity tasks of every CBeteiligte domain.

- transient API trouble (timeout, 5xx, 429): `task.retry` with exponential
  back-off and full jitter, at least `Retry-After`, capped far below the
  broker's visibility timeout (RESEARCH §A);
- retries exhausted, or a permanent error: the failure is recorded on the
  EspoCRM record (status, back-off, message prefixed with the domain) and
  the task raises, so Flower shows it failed with its traceback; the raised
  exception's message starts with the domain and the entity id
  ("kommunikation 6a1…: …"), so the failed-task list says who failed and why;
- a lost lock lease: raise without writing anything.
"""
from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

from celery.exceptions import Retry

import celeryconfig
from bitbylaw_tasks.beteiligte import service
from bitbylaw_tasks.beteiligte.status import failure_prefix
from bitbylaw_tasks.locks import LockLost
from bitbylaw_tasks.settings import Settings
from integrations.http import ApiError, RateLimited

log = logging.getLogger(__name__)
T = TypeVar("T")


def transient_countdown(retries: int, exc: ApiError, cap: float) -> float:
    """Back-off for the n-th transient retry: 2, 4, 8 … s with full jitter, at least Retry-After, capped."""
    base = min(cap, 2.0 ** (retries + 1))
    delay = random.uniform(base / 2, base)
    if isinstance(exc, RateLimited) and exc.retry_after:
        delay = max(delay, exc.retry_after)
    return min(delay, cap)


def naming_entity(exc: service.SyncFailed, domain: str, entity_id: str) -> service.SyncFailed:
    """`exc` with its message led by the domain and the entity id (once), for Flower and Sentry."""
    label = f"{domain} {entity_id}: "
    if not str(exc).startswith(label):
        exc.args = (label + str(exc), *exc.args[1:])
    return exc


def run_guarded(task, settings: Settings, ctx: service.SyncContext, entity_id: str, work: Callable[[], T],
                *, domain: str) -> T:
    """`work()` with the exception policy above; `domain` prefixes recorded messages ("Kommunikation: …")."""
    prefix = failure_prefix(domain)
    try:
        return work()
    except service.SyncFailed as exc:
        if not exc.recorded:
            service.record_failure(ctx, entity_id, exc, prefix=prefix)
        raise naming_entity(exc, domain, entity_id)
    except LockLost:
        log.error("%s %s: lock lease lost mid-sync; nothing more written", domain, entity_id)
        raise
    except ApiError as exc:
        if exc.transient and task.request.retries < settings.transient_retries:
            cap = celeryconfig.max_countdown(settings)
            raise task.retry(exc=exc, countdown=transient_countdown(task.request.retries, exc, cap),
                             max_retries=settings.transient_retries)
        service.record_failure(ctx, entity_id, exc, prefix=prefix)
        raise naming_entity(service.SyncFailed(f"sync failed: {type(exc).__name__}: {exc}", recorded=True),
                            domain, entity_id) from exc


def run_entity_task(app, task, *, domain: str, entity_id: str, entity_task, action: str,
                    work: Callable[[service.SyncContext], T]) -> T | str:
    """The body every CBeteiligte task shares: clients, the entity lock with its "sync again" mark,
    the exception policy, and the sync metrics. Returns `work`'s outcome, or `BUSY`."""
    from bitbylaw_tasks.beteiligte.sweep import LOCK_KIND
    from bitbylaw_tasks.celery_app import settings_of
    from bitbylaw_tasks.clients import clients_for
    from bitbylaw_tasks.enqueue import enqueuer_for
    from bitbylaw_tasks.exclusive import BUSY, run_exclusive
    from bitbylaw_tasks.locks import EntityLock
    from bitbylaw_tasks.metrics import record_sync
    from bitbylaw_tasks.redis_clients import lock_redis

    settings = settings_of(app)
    client = lock_redis(settings)
    clients = clients_for(settings)
    ctx = service.SyncContext(clients.espocrm, clients.advoware, client, policy=settings.conflict_policy)

    def body(lock: EntityLock):
        ctx.lock = lock
        return run_guarded(task, settings, ctx, entity_id, lambda: work(ctx), domain=domain)

    lock = EntityLock(client, LOCK_KIND, entity_id, ttl=settings.sync_lock_ttl)
    started = time.monotonic()
    try:
        outcome = run_exclusive(client, enqueuer_for(app), lock, entity_task, body)
    except Exception as exc:
        record_sync(client, domain, action, "retry" if isinstance(exc, Retry) else "failed",
                    time.monotonic() - started)
        raise
    path = BUSY if outcome == BUSY else outcome.path
    record_sync(client, domain, path, "busy" if outcome == BUSY else "ok", time.monotonic() - started)
    return outcome
