"""One task shape for every domain: lock, "sync again", retry, failure recording, metrics (docs/architecture.md).

`run_entity_task` is the body every entity task shares (Beteiligte,
Kommunikation, calendar, and the domains to come). A domain supplies a
`Domain` (its name, its lock namespace, how to record a failure a person
must see) and, per call, its context builder and its service call. This
module imports no domain.

What a sync raises becomes a Celery outcome:
- transient trouble (anything with `transient = True`: timeouts, 5xx, 429,
  a calendar that is still changing; and Redis not answering in time or
  refusing connections — a failover, a stalled host — whether inside the sync
  or around it, at the lock): `task.retry` with exponential back-off
  and full jitter, at least `Retry-After`, capped far below the broker's
  visibility timeout (RESEARCH §A);
- retries exhausted, or a permanent error: the domain records the failure
  (Beteiligte and Kommunikation on the EspoCRM record; the calendar has no
  record to write) and the task raises, so Flower shows it failed with its
  traceback; the raised exception's message starts with the domain and the
  entity id ("kommunikation 6a1…: …"), so the failed-task list says who failed
  and why;
- a lost lock lease: raise without writing anything.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import redis
from celery.exceptions import Retry

import celeryconfig
from bitbylaw_tasks.errors import SyncFailed
from bitbylaw_tasks.locks import EntityLock, LockLost
from bitbylaw_tasks.settings import Settings
from integrations.errors import ApiError, RateLimited

log = logging.getLogger(__name__)
T = TypeVar("T")
# Redis trouble that passes: the same command may succeed seconds later (redis-py's own socket timeout).
REDIS_TRANSIENT = (redis.ConnectionError, redis.TimeoutError)


@dataclass(frozen=True)
class Domain:
    """What the runner needs to know of a domain."""

    name: str                       # metrics, log lines and failure messages: "beteiligte", "calendar", …
    lock_kind: str                  # the lock namespace; domains that must not interleave share one
    # Record a failure a person must see (ctx, entity id, the error); None: the failed task says it all.
    record_failure: Callable[[Any, str, Exception], None] | None = None
    path_of: Callable[[Any], str] = lambda outcome: getattr(outcome, "path", "synced")


def transient_countdown(retries: int, exc: Exception, cap: float) -> float:
    """Back-off for the n-th transient retry: 2, 4, 8 … s with full jitter, at least Retry-After, capped."""
    base = min(cap, 2.0 ** (retries + 1))
    delay = random.uniform(base / 2, base)
    if isinstance(exc, RateLimited) and exc.retry_after:
        delay = max(delay, exc.retry_after)
    return min(delay, cap)


def is_transient(exc: Exception) -> bool:
    """Trouble worth a retry: an API error marked `transient`, or Redis not answering in time."""
    return bool(getattr(exc, "transient", False)) or isinstance(exc, REDIS_TRANSIENT)


def retry_for(task, settings: Settings, exc: Exception) -> Retry | None:
    """The Celery retry (already published) for transient `exc` while retries remain, else None."""
    if not is_transient(exc) or task.request.retries >= settings.transient_retries:
        return None
    cap = celeryconfig.max_countdown(settings)
    return task.retry(exc=exc, countdown=transient_countdown(task.request.retries, exc, cap),
                      max_retries=settings.transient_retries, throw=False)


def naming_entity(exc: SyncFailed, domain: str, entity_id: str) -> SyncFailed:
    """`exc` with its message led by the domain and the entity id (once), for Flower and Sentry."""
    label = f"{domain} {entity_id}: "
    if not str(exc).startswith(label):
        exc.args = (label + str(exc), *exc.args[1:])
    return exc


def run_guarded(task, settings: Settings, domain: str, entity_id: str, work: Callable[[], T],
                record: Callable[[Exception], None]) -> T:
    """`work()` with the exception policy of the module docstring; `record(exc)` records a failure."""
    try:
        return work()
    except SyncFailed as exc:
        if not exc.recorded:
            record(exc)
        raise naming_entity(exc, domain, entity_id)
    except LockLost:
        log.error("%s %s: lock lease lost mid-sync; nothing more written", domain, entity_id)
        raise
    except Exception as exc:
        retry = retry_for(task, settings, exc)
        if retry is not None:
            raise retry from exc
        if not isinstance(exc, ApiError) and not is_transient(exc):
            raise  # a programming error: Flower and Sentry show it as it is
        record(exc)
        raise naming_entity(SyncFailed(f"sync failed: {type(exc).__name__}: {exc}", recorded=True),
                            domain, entity_id) from exc


def run_entity_task(app, task, domain: Domain, *, entity_id: str, entity_task, action: str,
                    context: Callable[[Settings, redis.Redis], Any], work: Callable[[Any], T],
                    bookkeeping: Callable[[Any, T], None] | None = None) -> T | str:
    """The body of every entity task: the context, the entity lock with its "sync again" mark, the
    exception policy, the sync metrics. `context(settings, lock_redis)` builds the domain's context once
    the lock is held (as `ctx.lock`); `work(ctx)` runs the sync. Returns its outcome, or `BUSY`.

    `bookkeeping(pipe, outcome)` adds the domain's own writes for a finished (not busy) sync to the
    pipeline of the metrics and the failure register (one round trip to the lock Redis for all of them);
    like the metrics, a Redis error there is logged, not raised: the sync itself is done."""
    from bitbylaw_tasks.enqueue import enqueuer_for
    from bitbylaw_tasks.exclusive import BUSY, run_exclusive
    from bitbylaw_tasks.metrics import queue_sync, record_failure_reason, record_sync
    from bitbylaw_tasks.ops import failures
    from bitbylaw_tasks.redis_clients import lock_redis

    settings: Settings = app.conf.bitbylaw_settings  # put there by `celery_app.create_celery`
    client = lock_redis(settings)

    def body(lock: EntityLock):
        built: list = []

        def guarded():
            built.append(context(settings, client))  # inside the policy: building may call an API
            built[0].lock = lock
            return work(built[0])

        def record(exc: Exception) -> None:
            if domain.record_failure is not None and built:
                domain.record_failure(built[0], entity_id, exc)

        return run_guarded(task, settings, domain.name, entity_id, guarded, record)

    lock = EntityLock(client, domain.lock_kind, entity_id, ttl=settings.sync_lock_ttl)
    started = time.monotonic()
    try:
        outcome = run_exclusive(client, enqueuer_for(app), lock, entity_task, body)
    except Exception as exc:
        # Redis trouble at the lock itself (taking or releasing it) is outside the sync's policy: retried here.
        retry = exc if isinstance(exc, Retry) else retry_for(task, settings, exc)
        record_sync(client, domain.name, action, "failed" if retry is None else "retry",
                    time.monotonic() - started)
        if retry is None:  # failed for good: the status page and the failure gauges show it
            failures.record(client, domain.name, entity_id, str(exc))
            record_failure_reason(client, domain.name, type(exc).__name__)
            raise
        if retry is exc:
            raise
        raise retry from exc
    busy = outcome == BUSY
    pipe = client.pipeline(transaction=False)  # one round trip for the bookkeeping of a finished sync
    if not busy:
        failures.clear(pipe, domain.name, entity_id)
        if bookkeeping is not None:
            bookkeeping(pipe, outcome)
    queue_sync(pipe, domain.name, BUSY if busy else domain.path_of(outcome), "busy" if busy else "ok",
               time.monotonic() - started)
    try:
        pipe.execute()
    except redis.RedisError:
        log.warning("%s %s: could not record the sync's metrics", domain.name, entity_id)
    return outcome


def result_of(outcome) -> dict:
    """A task's result from its outcome dataclass: its fields, as `dataclasses.asdict` gives them for
    outcomes whose values are JSON data (the `detail` dict is not deep-copied: the result is serialised,
    not kept). ~10x cheaper than `asdict`, which copies every nested value."""
    return dict(vars(outcome))
