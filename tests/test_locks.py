"""Entity locks against a real Redis: ownership, expiry, stale release, extend."""
import time

import pytest

from bitbylaw_tasks.locks import EntityLock, LockBusy, LockLost, entity_lock, force_release, is_locked


def test_second_owner_is_refused(lock_redis):
    first = EntityLock(lock_redis, "cbeteiligte", "abc", ttl=10)
    second = EntityLock(lock_redis, "cbeteiligte", "abc", ttl=10)
    assert first.acquire()
    assert not second.acquire()
    assert first.owned() and not second.owned()
    with pytest.raises(LockBusy):
        with entity_lock(lock_redis, "cbeteiligte", "abc"):
            pass
    first.release()
    assert second.acquire()


def test_expiry_frees_the_lock(lock_redis):
    first = EntityLock(lock_redis, "cbeteiligte", "exp", ttl=0.3)
    assert first.acquire()
    time.sleep(0.45)
    assert not is_locked(lock_redis, "cbeteiligte", "exp")
    assert EntityLock(lock_redis, "cbeteiligte", "exp", ttl=10).acquire()
    with pytest.raises(LockLost):
        first.ensure_owned()


def test_stale_owner_release_keeps_the_new_owners_lock(lock_redis):
    stale = EntityLock(lock_redis, "cbeteiligte", "s", ttl=0.2)
    assert stale.acquire()
    time.sleep(0.3)
    fresh = EntityLock(lock_redis, "cbeteiligte", "s", ttl=10)
    assert fresh.acquire()
    assert stale.release() is False
    assert fresh.owned()
    assert is_locked(lock_redis, "cbeteiligte", "s")


def test_extend_resets_the_lease(lock_redis):
    lock = EntityLock(lock_redis, "cbeteiligte", "x", ttl=0.5)
    assert lock.acquire()
    time.sleep(0.3)
    lock.extend()
    time.sleep(0.35)
    assert lock.owned(), "extend should have renewed the full TTL"
    assert lock_redis.pttl(lock.name) > 0


def test_extend_after_loss_raises(lock_redis):
    lock = EntityLock(lock_redis, "cbeteiligte", "y", ttl=0.1)
    assert lock.acquire()
    time.sleep(0.2)
    with pytest.raises(LockLost):
        lock.extend()


def test_context_manager_releases_on_error(lock_redis):
    with pytest.raises(RuntimeError):
        with entity_lock(lock_redis, "cbeteiligte", "err", ttl=10):
            raise RuntimeError("boom")
    assert not is_locked(lock_redis, "cbeteiligte", "err")


def test_force_release_by_operator(lock_redis):
    lock = EntityLock(lock_redis, "cbeteiligte", "stuck", ttl=60)
    assert lock.acquire()
    assert force_release(lock_redis, "cbeteiligte", "stuck")
    assert not lock.owned()
