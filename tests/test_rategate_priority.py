"""The rate gate's interactive reserve (issue 15): background callers are refused once the window holds
per_minute - reserve calls, interactive ones are admitted up to per_minute, both by the one admission
script (one round trip), on the very list `limits` keeps; a real Redis throughout."""
from __future__ import annotations

import threading
import time

import pytest
import redis
from limits import RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from bitbylaw_tasks import priorities
from integrations import rategate
from integrations.errors import RateLimited
from integrations.rategate import BACKGROUND, INTERACTIVE, RateGate, calls_as, current_priority


class Counting:
    """Counts the commands a client sends (the gate's round trips), passing each on unchanged."""

    def __init__(self, client: redis.Redis):
        self.commands: list[str] = []
        inner = client.execute_command

        def execute_command(*args, **kwargs):
            self.commands.append(str(args[0]).upper())
            return inner(*args, **kwargs)

        client.execute_command = execute_command


def test_background_is_refused_at_budget_minus_reserve_interactive_is_admitted_up_to_budget(redis_url):
    gate = RateGate(redis_url, "prio-test", per_minute=10, reserve=3, max_wait=0.2)
    with calls_as(BACKGROUND):
        for _ in range(7):
            assert gate.try_acquire() is None
        assert gate.try_acquire() is not None  # 7 = 10 - 3 in the window: background refused
        with pytest.raises(RateLimited):
            gate.wait()
    assert gate.used() == 7
    for _ in range(3):  # the reserve: interactive callers (the default) still get in
        assert gate.try_acquire() is None
    assert gate.try_acquire() is not None  # and no further than the budget
    assert gate.try_acquire(priority=INTERACTIVE) is not None
    assert gate.used() == 10
    assert int(redis.Redis.from_url(redis_url).hget("metrics:api_calls", "prio-test")) == 10  # refusals uncounted


def test_interactive_callers_keep_the_reserve_however_much_background_asks(redis_url):
    gate = RateGate(redis_url, "prio-mixed", per_minute=20, reserve=5)
    admitted = {BACKGROUND: 0, INTERACTIVE: 0}
    for i in range(60):  # background asks three times as often
        priority = INTERACTIVE if i % 4 == 0 else BACKGROUND
        if gate.try_acquire(priority=priority) is None:
            admitted[priority] += 1
    # background fills up to 15 and no further; interactive callers get the rest, at least the reserve
    assert admitted == {BACKGROUND: 11, INTERACTIVE: 9}
    assert gate.used() == 20


def test_admission_is_one_round_trip_for_either_priority(redis_url):
    gate = RateGate(redis_url, "prio-trips", per_minute=5, reserve=2)
    seen = Counting(gate._redis)
    gate._redis.script_load(rategate._ADMIT)  # loaded once per server (redis-py's Script does it on NOSCRIPT)
    seen.commands.clear()
    with calls_as(BACKGROUND):
        gate.wait()
    gate.wait()
    assert seen.commands == ["EVALSHA", "EVALSHA"]
    seen.commands.clear()
    with calls_as(BACKGROUND):
        gate.try_acquire()
        gate.try_acquire()  # the 4th call of 5 with a reserve of 2: refused; then one read for Retry-After
    assert seen.commands == ["EVALSHA", "EVALSHA", "LINDEX"]


def test_reserve_zero_and_existing_callers_see_the_same_window_as_limits(redis_url):
    """Without a reserve a background caller is admitted like any (the gate's old behaviour), and what
    either priority admits is a hit on the `limits` window."""
    item = RateLimitItemPerMinute(4)
    limiter = MovingWindowRateLimiter(RedisStorage(redis_url))
    gate = RateGate(redis_url, "prio-limits", per_minute=4)
    with calls_as(BACKGROUND):
        gate.wait()
        gate.wait()
    gate.wait()
    assert limiter.get_window_stats(item, "bitbylaw", "prio-limits").remaining == 1
    assert limiter.hit(item, "bitbylaw", "prio-limits")  # a `limits` hit fills the last place
    with calls_as(BACKGROUND):
        assert gate.try_acquire() is not None
    assert gate.try_acquire() is not None
    reserved = RateGate(redis_url, "prio-limits", per_minute=4, reserve=1)  # the same window, now with a reserve
    assert reserved.used() == 4 == reserved.used(now=time.time())


def test_simulated_clock_admits_and_computes_the_wait_for_the_callers_ceiling(redis_url):
    """`now` (the freshness bench's clock): the window and the refused caller's wait follow it."""
    gate = RateGate(redis_url, "prio-clock", per_minute=4, reserve=2)
    t0 = 1_000_000.0
    for i in range(2):
        assert gate.try_acquire(priority=BACKGROUND, now=t0 + i) is None
    # background refused at 2 calls: the wait is until the call at t0 (index 1, newest first) leaves
    assert gate.try_acquire(priority=BACKGROUND, now=t0 + 10) == pytest.approx(50.0, abs=0.01)
    assert gate.try_acquire(priority=INTERACTIVE, now=t0 + 10) is None
    assert gate.try_acquire(priority=INTERACTIVE, now=t0 + 11) is None
    assert gate.try_acquire(priority=INTERACTIVE, now=t0 + 12) == pytest.approx(48.0, abs=0.01)  # until t0 leaves
    assert gate.used(now=t0 + 12) == 4
    assert gate.used(now=t0 + 60.5) == 3  # t0 left the window
    assert gate.try_acquire(priority=BACKGROUND, now=t0 + 61.5) == pytest.approx(8.5, abs=0.01)  # t0+10, t0+11 still in
    assert gate.try_acquire(priority=BACKGROUND, now=t0 + 70.5) is None  # only t0+11 left: 1 < 2


def test_a_pause_holds_off_both_priorities(redis_url):
    gate = RateGate(redis_url, "prio-pause", per_minute=100, reserve=10)
    gate.pause(0.3)
    for priority in (BACKGROUND, INTERACTIVE):
        delay = gate.try_acquire(priority=priority)
        assert delay is not None and 0 < delay <= 0.3


def test_the_priority_is_per_thread_and_restored():
    assert current_priority() == INTERACTIVE
    inside, other = [], []
    with calls_as(BACKGROUND):
        inside.append(current_priority())
        thread = threading.Thread(target=lambda: other.append(current_priority()))
        thread.start()
        thread.join()
        with calls_as(INTERACTIVE):
            inside.append(current_priority())
        inside.append(current_priority())
    assert inside == [BACKGROUND, INTERACTIVE, BACKGROUND] and other == [INTERACTIVE]
    assert current_priority() == INTERACTIVE
    with pytest.raises(ValueError):
        with calls_as("urgent"):
            pass


def test_who_is_background():
    assert priorities.of_source("sweep") == BACKGROUND          # the checker's checks, the Adressen sweep
    for source in ("webhook", "manual", "retry", "handoff", None):
        assert priorities.of_source(source) == INTERACTIVE
    assert priorities.CALENDAR == BACKGROUND


def test_a_hand_off_is_as_background_as_the_sync_that_handed_it_off():
    assert priorities.handoff_source("sweep") == "sweep"              # a check's Kommunikation/Adressen sync
    for source in ("webhook", "manual", "retry", "handoff", None):
        assert priorities.handoff_source(source) == "handoff"
    for source in ("sweep", "webhook", "manual", "retry", None):
        assert priorities.of_source(priorities.handoff_source(source)) == priorities.of_source(source)


def test_a_reserve_never_shuts_background_out(redis_url):
    """A reserve as large as the budget still leaves background one call (clamped)."""
    gate = RateGate(redis_url, "prio-clamp", per_minute=5, reserve=9)
    assert gate.ceiling(BACKGROUND) == 1 and gate.ceiling(INTERACTIVE) == 5
