"""Run an entity task under the entity's lock, and never lose a request that found the lock taken.

A task that finds the lock held does not just drop its work: the holder may
have read the entity before the change that queued this task. It leaves a
"sync again" mark (its own task, in a Redis set beside the lock) and tries
the lock once more; if still taken, the holder re-enqueues every marked task
after it releases (SPEC §4.2). A task that gets the lock removes its own
mark first: it is about to read the entity and will see that change itself.
Taking the lock and removing the own mark share one round trip, as do
releasing and popping the marks (`EntityLock.acquire(forget=)`,
`EntityLock.release_and_pop`).
"""
from __future__ import annotations

import json
from typing import Callable, TypeVar

import redis

from bitbylaw_tasks.enqueue import Enqueuer, EntityTask
from bitbylaw_tasks.locks import EntityLock

T = TypeVar("T")
BUSY = "busy"


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
        return body(lock)
    finally:
        pending = lock.release_and_pop(marks, 1000)
        if pending:
            enqueuer.enqueue([_task(m) for m in pending])
