"""Run an entity task under the entity's lock, and never lose a request that found the lock taken.

A task that finds the lock held does not just drop its work: the holder may
have read the entity before the change that queued this task. It leaves a
"sync again" mark (its own task, in a Redis set beside the lock) and tries
the lock once more; if still taken, the holder re-enqueues every marked task
after it releases (SPEC §4.2). A task that gets the lock removes its own
mark first: it is about to read the entity and will see that change itself.
Taking the lock and removing the own mark share one round trip, as do
releasing and popping the marks (`EntityLock.acquire(forget=)`,
`EntityLock.release_and_pop`). When the body failed, a Redis error while
releasing does not replace its outcome (a recorded failure, an already
published retry): it is logged, the lock ends with its TTL and the marks wait
for the entity's next holder.
"""
from __future__ import annotations

import json
import logging
from typing import Callable, TypeVar

import redis

from bitbylaw_tasks.enqueue import Enqueuer, EntityTask
from bitbylaw_tasks.locks import EntityLock

T = TypeVar("T")
BUSY = "busy"
log = logging.getLogger(__name__)


def _mark_key(lock_name: str) -> str:
    return f"resync:{lock_name}"


def _member(task: EntityTask) -> str:
    return json.dumps([task.task_name, list(task.args), task.coalesce_key], separators=(",", ":"))


def _task(member: bytes) -> EntityTask:
    name, args, key = json.loads(member)
    return EntityTask(name, tuple(args), key)


def run_exclusive(client: redis.Redis, enqueuer: Enqueuer, lock: EntityLock, task: EntityTask,
                  body: Callable[[EntityLock], T], *, mark_ttl: int = 3600) -> T | str:
    """`body(lock)` while holding `lock`, or BUSY after leaving a mark for the holder."""
    enqueuer.mark_started(task.coalesce_key)
    marks, member = _mark_key(lock.name), _member(task)
    if not lock.acquire(forget=(marks, member)):
        pipe = client.pipeline()
        pipe.sadd(marks, member).expire(marks, mark_ttl).execute()
        if not lock.acquire(forget=(marks, member)):
            return BUSY
    try:
        outcome = body(lock)
    except BaseException:
        _release(enqueuer, lock, marks, body_failed=True)
        raise
    _release(enqueuer, lock, marks, body_failed=False)
    return outcome


def _release(enqueuer: Enqueuer, lock: EntityLock, marks: str, *, body_failed: bool) -> None:
    """Release the lock and re-enqueue the marked tasks; after a failed body, a Redis error here is logged,
    not raised (the body's exception stays the task's outcome)."""
    try:
        pending = lock.release_and_pop(marks, 1000)
        if pending:
            enqueuer.enqueue([_task(m) for m in pending])
    except redis.RedisError:
        if not body_failed:
            raise
        log.warning("%s: could not release after a failed sync; the lock ends with its TTL", lock.name)
