"""Per-entity Redis locks (`sync_lock:{kind}:{id}`) on redis-py's token-owned `Lock`.

Acquire is non-blocking: a busy entity is a normal outcome (`LockBusy` from
the context manager, `False` from `acquire()`), not an error. Only the owner
(the token holder) can extend or release; a holder whose lease expired finds
out through `ensure_owned()` (raises `LockLost`) before it writes anything,
which is the fencing check Kleppmann asks for (RESEARCH §D).

Some lock steps carry a neighbouring write in the same round trip (issue 15):
`acquire(forget=...)` removes the owner's "sync again" mark when it gets the
lock, `release_and_pop` hands back the marks left meanwhile, `extend_then_set`
writes only while the lease is ours (atomic: no write after the lease was
lost), `set_then_extend` writes and then extends (the write is unconditional,
as it was before the two shared a round trip).
"""
from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Iterator

import redis
from redis.exceptions import LockError, LockNotOwnedError

log = logging.getLogger(__name__)

DEFAULT_TTL = 15 * 60

# KEYS[1] lock, KEYS[2] (optional) a set; ARGV token, lease ms, member: take the lock if free, then SREM.
_ACQUIRE_FORGET = """
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
if KEYS[2] then redis.call('srem', KEYS[2], ARGV[3]) end
return 1
"""
# KEYS[1] lock, KEYS[2] a set; ARGV token, count: release if ours (1, else 0), and SPOP up to count members.
_RELEASE_POP = """
local released = 0
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) released = 1 end
return {released, redis.call('spop', KEYS[2], ARGV[2])}
"""
# KEYS[1] lock, KEYS[2] (optional) a key; ARGV token, lease ms, value, seconds: extend if ours, then SET.
_EXTEND_SET = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('pexpire', KEYS[1], ARGV[2])
if KEYS[2] then redis.call('set', KEYS[2], ARGV[3], 'EX', ARGV[4]) end
return 1
"""
# KEYS[1] lock, KEYS[2] a key; ARGV token, lease ms, value, seconds: SET (whoever holds the lock), then extend if ours.
_SET_EXTEND = """
redis.call('set', KEYS[2], ARGV[3], 'EX', ARGV[4])
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('pexpire', KEYS[1], ARGV[2])
return 1
"""
_SCRIPTS: dict[str, "redis.commands.core.Script"] = {}


def _script(client: redis.Redis, text: str):
    """The registered script for `text` (registered once per process; callable with any client)."""
    script = _SCRIPTS.get(text)
    if script is None:
        script = _SCRIPTS[text] = client.register_script(text)
    return script


class LockBusy(Exception):
    """Another owner holds the lock of this entity."""


class LockLost(Exception):
    """Our lease expired (or was taken over): do not write."""


def lock_name(kind: str, entity_id: str) -> str:
    return f"sync_lock:{kind}:{entity_id}"


class EntityLock:
    """One owner's handle on an entity lock. Not thread-shared: one sync, one handle."""

    def __init__(self, client: redis.Redis, kind: str, entity_id: str, ttl: float = DEFAULT_TTL):
        self.name = lock_name(kind, entity_id)
        self.ttl = ttl
        self._redis = self.client = client
        # thread_local=False: the token lives on this object, which one sync owns.
        self._lock = client.lock(self.name, timeout=ttl, blocking=False, thread_local=False)

    def acquire(self, forget: tuple[str, str] | None = None) -> bool:
        """Take the lock if free. True when we own it now; with `forget=(set key, member)` the member is
        removed from that set in the same round trip when (and only when) the lock was taken.

        The owner token is a random UUID (~9 µs): redis-py's default, `uuid1()`, took ~70 µs here
        (libuuid's time-safe generator; 1.6 % of the worker's samples in issue 15's profile). A token
        only has to be unique."""
        token = uuid.uuid4().hex
        if forget is None:
            return bool(self._lock.acquire(blocking=False, token=token))
        taken = _script(self._redis, _ACQUIRE_FORGET)(keys=[self.name, forget[0]],
                                                       args=[token, int(self.ttl * 1000), forget[1]],
                                                       client=self._redis)
        if taken:
            self._lock.local.token = token.encode()  # as redis-py's acquire keeps it: owned/extend/release
        return bool(taken)

    def owned(self) -> bool:
        return bool(self._lock.owned())

    def ensure_owned(self) -> None:
        """Raise `LockLost` unless we still own the lock (call before every write)."""
        if not self.owned():
            raise LockLost(f"{self.name}: lease lost")

    def extend(self) -> None:
        """Reset the remaining lease to the full TTL. Raises `LockLost` when no longer ours."""
        try:
            self._lock.extend(self.ttl, replace_ttl=True)
        except (LockNotOwnedError, LockError) as exc:
            raise LockLost(f"{self.name}: cannot extend, lease lost") from exc

    def extend_then_set(self, key: str, value: str, ex: int) -> None:
        """Reset the lease and SET `key` (`ex` seconds) in one round trip, the write only while the lease
        is ours (checked and done atomically). Raises `LockLost`, having written nothing, otherwise."""
        token = self._lock.local.token
        if token is None or not _script(self._redis, _EXTEND_SET)(
                keys=[self.name, key], args=[token, int(self.ttl * 1000), value, ex], client=self._redis):
            raise LockLost(f"{self.name}: cannot extend, lease lost")

    def set_then_extend(self, key: str, value: str, ex: int) -> None:
        """SET `key` (`ex` seconds) whoever holds the lease, then reset the lease, in one round trip;
        raises `LockLost` (after the write) when the lease is no longer ours."""
        token = self._lock.local.token
        if not _script(self._redis, _SET_EXTEND)(keys=[self.name, key], args=[token or "", int(self.ttl * 1000),
                                                                              value, ex], client=self._redis):
            raise LockLost(f"{self.name}: cannot extend, lease lost")

    def release_and_pop(self, set_key: str, count: int) -> list[bytes]:
        """Release if we still own it (as `release`) and SPOP up to `count` members of `set_key`, in one
        round trip; the members are popped whoever owned the lock. A Redis error propagates."""
        token = self._lock.local.token
        released, members = _script(self._redis, _RELEASE_POP)(keys=[self.name, set_key],
                                                               args=[token or "", count], client=self._redis)
        self._lock.local.token = None
        if not released:
            log.warning("lock %s was no longer ours at release (expired or taken over)", self.name)
        return list(members or [])

    def release(self) -> bool:
        """Release if we still own it; never raises. False when it was no longer ours."""
        try:
            self._lock.release()
            return True
        except (LockNotOwnedError, LockError):
            log.warning("lock %s was no longer ours at release (expired or taken over)", self.name)
            return False
        except redis.RedisError:
            log.warning("lock %s: Redis error at release; the TTL frees it", self.name)
            return False


def is_locked(client: redis.Redis, kind: str, entity_id: str) -> bool:
    return bool(client.exists(lock_name(kind, entity_id)))


def force_release(client: redis.Redis, kind: str, entity_id: str) -> bool:
    """Operator action (`bitbylaw lock release`): delete the lock regardless of its owner."""
    return bool(client.delete(lock_name(kind, entity_id)))


@contextlib.contextmanager
def entity_lock(client: redis.Redis, kind: str, entity_id: str, ttl: float = DEFAULT_TTL) -> Iterator[EntityLock]:
    """Hold the entity's lock for the block; raises `LockBusy` when another owner has it."""
    lock = EntityLock(client, kind, entity_id, ttl)
    if not lock.acquire():
        raise LockBusy(lock.name)
    try:
        yield lock
    finally:
        lock.release()
