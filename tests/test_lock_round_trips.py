"""The lock steps that carry a neighbouring write in their round trip (issue 15), against a real Redis: taking
the lock removes the own "sync again" mark only when taken, releasing pops the marks without freeing another
owner's lock, and the write-back journal is written with the fencing check — never after the lease was lost
(`extend_then_set`), through the whole Beteiligte sync too."""
from __future__ import annotations

import time

import pytest

from beteiligte_helpers import OnCall, linked_record
from bitbylaw_tasks.beteiligte import service
from bitbylaw_tasks.beteiligte.context import sync_context
from bitbylaw_tasks.beteiligte.store import PutJournal
from bitbylaw_tasks.beteiligte.sweep import LOCK_KIND
from bitbylaw_tasks.enqueue import EntityTask
from bitbylaw_tasks.exclusive import BUSY, run_exclusive
from bitbylaw_tasks.locks import EntityLock, LockLost
from bitbylaw_tasks.settings import get_settings


def test_acquire_forgets_the_mark_only_when_it_takes_the_lock(lock_redis):
    lock_redis.sadd("marks", "me", "other")
    holder = EntityLock(lock_redis, "k", "1", ttl=10)
    assert holder.acquire(forget=("marks", "holder"))
    second = EntityLock(lock_redis, "k", "1", ttl=10)
    assert not second.acquire(forget=("marks", "me"))
    assert lock_redis.smembers("marks") == {b"me", b"other"}  # busy: the mark stays for the holder
    assert holder.owned() and not second.owned()
    assert 9000 < lock_redis.pttl(holder.name) <= 10000
    holder.release()
    assert second.acquire(forget=("marks", "me"))
    assert lock_redis.smembers("marks") == {b"other"} and second.owned()
    second.extend()  # the token is kept as redis-py keeps it: extend and release work
    assert second.release() and not lock_redis.exists(second.name)


def test_release_and_pop_frees_only_its_own_lock_and_hands_back_the_marks(lock_redis):
    first = EntityLock(lock_redis, "k", "2", ttl=0.2)
    assert first.acquire()
    lock_redis.sadd("marks", "a", "b")
    assert sorted(first.release_and_pop("marks", 1000)) == [b"a", b"b"]
    assert not lock_redis.exists(first.name) and not lock_redis.exists("marks") and not first.owned()
    stale = EntityLock(lock_redis, "k", "3", ttl=0.2)
    assert stale.acquire()
    time.sleep(0.3)
    newer = EntityLock(lock_redis, "k", "3", ttl=10)
    assert newer.acquire()
    lock_redis.sadd("marks", "c")
    assert stale.release_and_pop("marks", 1000) == [b"c"]  # popped whoever owned the lock, as before
    assert newer.owned()  # the stale owner did not free the new owner's lock


def test_extend_then_set_writes_only_while_the_lease_is_ours(lock_redis):
    lock = EntityLock(lock_redis, "k", "4", ttl=10)
    assert lock.acquire()
    lock_redis.pexpire(lock.name, 500)
    lock.extend_then_set("journal", "v1", 60)
    assert lock_redis.get("journal") == b"v1" and 9000 < lock_redis.pttl(lock.name) <= 10000
    assert 0 < lock_redis.ttl("journal") <= 60
    lock_redis.set(lock.name, "another-owner", px=30_000)  # expired and taken over meanwhile
    with pytest.raises(LockLost):
        lock.extend_then_set("journal", "v2", 60)
    assert lock_redis.get("journal") == b"v1" and lock_redis.get(lock.name) == b"another-owner"
    lock_redis.delete(lock.name)  # expired, nobody took it
    with pytest.raises(LockLost):
        lock.extend_then_set("journal", "v3", 60)
    assert lock_redis.get("journal") == b"v1" and not lock_redis.exists(lock.name)
    unheld = EntityLock(lock_redis, "k", "5", ttl=10)
    with pytest.raises(LockLost):
        unheld.extend_then_set("journal", "v4", 60)
    assert lock_redis.get("journal") == b"v1"


def test_set_then_extend_writes_then_checks_the_lease(lock_redis):
    lock = EntityLock(lock_redis, "k", "6", ttl=10)
    assert lock.acquire()
    lock_redis.pexpire(lock.name, 500)
    lock.set_then_extend("journal", "answered", 60)
    assert lock_redis.get("journal") == b"answered" and 9000 < lock_redis.pttl(lock.name) <= 10000
    lock_redis.set(lock.name, "another-owner", px=30_000)
    with pytest.raises(LockLost):
        lock.set_then_extend("journal", "answered-2", 60)
    assert lock_redis.get("journal") == b"answered-2"  # unconditional, as the separate SET was
    assert lock_redis.get(lock.name) == b"another-owner"


class RecordingEnqueuer:
    """Records what `run_exclusive` would queue (the enqueuer is not what these tests are about)."""

    def __init__(self):
        self.started, self.queued = [], []

    def mark_started(self, key):
        self.started.append(key)

    def enqueue(self, tasks):
        self.queued.extend(tasks)


def test_run_exclusive_hands_a_busy_tasks_mark_to_the_holder(lock_redis):
    enqueuer = RecordingEnqueuer()
    mine = EntityTask("beteiligte.sync", ("e1", "update", "webhook"), "coalesce:e1:a")
    other = EntityTask("beteiligte.sync", ("e1", "update", "webhook"), "coalesce:e1:b")

    def body(lock):
        busy = run_exclusive(lock_redis, enqueuer, EntityLock(lock_redis, "k", "e1", ttl=10), other,
                             lambda _: "ran")
        assert busy == BUSY and lock_redis.scard("resync:" + lock.name) == 1
        return "done"

    assert run_exclusive(lock_redis, enqueuer, EntityLock(lock_redis, "k", "e1", ttl=10), mine, body) == "done"
    assert enqueuer.queued == [other] and not lock_redis.exists("sync_lock:k:e1")
    assert not lock_redis.exists("resync:sync_lock:k:e1")
    assert run_exclusive(lock_redis, enqueuer, EntityLock(lock_redis, "k", "e1", ttl=10), other,
                         lambda _: "ran") == "ran"
    assert enqueuer.queued == [other]


def test_a_failed_body_stays_the_outcome_when_the_release_meets_a_stalled_redis(redis_server, lock_redis):
    """A body that failed (here: its own error; in a task, a retry already published) is what run_exclusive
    raises, even when Redis does not answer the release in time — not the release's TimeoutError, which made
    the entity task publish a second retry. A body that succeeded still reports the release's failure."""
    import redis

    quick = redis.Redis.from_url(redis_server.url(1), socket_timeout=0.5)
    task = EntityTask("beteiligte.sync", ("e9", "update", "webhook"), "coalesce:e9")

    def failing(_lock):
        lock_redis.execute_command("CLIENT", "PAUSE", 1500, "WRITE")  # the release script is a write: it stalls
        raise ValueError("the sync's own failure")

    with pytest.raises(ValueError, match="the sync's own failure"):
        run_exclusive(quick, RecordingEnqueuer(), EntityLock(quick, "k", "e9", ttl=10), task, failing)
    time.sleep(1.2)  # the pause ends

    def succeeding(_lock):
        lock_redis.execute_command("CLIENT", "PAUSE", 1500, "WRITE")
        return "done"

    with pytest.raises(redis.TimeoutError):
        run_exclusive(quick, RecordingEnqueuer(), EntityLock(quick, "k", "e10", ttl=10), task, succeeding)
    time.sleep(1.2)


def test_a_sync_that_lost_its_lease_before_the_put_writes_neither_journal_nor_advoware(sandbox, celery_worker,
                                                                                       lock_redis):
    """The Advoware GET is held open while another owner takes the entity's lock: the sync's fencing step
    (extend + the journal's `putting`, one round trip) refuses, so no journal entry and no PUT exist."""
    record = linked_record(sandbox)
    sandbox.state("espocrm").human_update(record["id"], {"titel": "Prof."}, user="bob")
    ctx = sync_context(get_settings(), lock_redis)
    ctx.lock = EntityLock(lock_redis, LOCK_KIND, record["id"], ttl=30)
    assert ctx.lock.acquire()
    advoware = sandbox.kit("advoware")
    advoware.add_fault(path="/api/v1/advonet/Beteiligte/*", method="GET", latency_ms=400, times=1)
    takeover = OnCall(advoware, "GET /api/v1/advonet/Beteiligte/<betnr>",
                      lambda: lock_redis.set(ctx.lock.name, "another-owner", px=30_000))
    puts_before = advoware.calls().get("PUT /api/v1/advonet/Beteiligte/<betnr>", 0)
    try:
        with pytest.raises(LockLost):
            service.sync_beteiligte(ctx, record["id"], "update", "webhook")
    finally:
        takeover.finish()
    assert PutJournal(lock_redis, record["id"]).get() is None
    assert advoware.calls().get("PUT /api/v1/advonet/Beteiligte/<betnr>", 0) == puts_before
    assert lock_redis.get(ctx.lock.name) == b"another-owner"
    lock_redis.delete(ctx.lock.name)
