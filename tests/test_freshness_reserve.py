"""The freshness checker's rule with the rate gate's interactive reserve (issue 15): the target never enters
the reserve (the gate would only make the checks wait there, holding worker threads), and the loop stays
stable and spends what the others leave of the lowered target."""
from __future__ import annotations

import heapq
import math
import random

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from bitbylaw_tasks.beteiligte.freshness import WINDOW, Budget, checks_to_queue
from bitbylaw_tasks.settings import Settings
from integrations.rategate import BACKGROUND, INTERACTIVE, RateGate
from test_beteiligte_freshness import _run_loop


@pytest.mark.parametrize("per_minute,headroom,reserve,tick_s,target,cap", [
    (100, 8, 0, 2, 92, 4),     # no reserve: as before
    (100, 8, 4, 2, 92, 4),     # the default: the reserve lies inside the headroom
    (100, 8, 8, 2, 89, 3),     # the ceiling 92: one tick's share must fit below it (92 * 30/31)
    (100, 8, 12, 2, 85, 3),    # a reserve larger than the headroom lowers the target (88 * 30/31)
    (100, 0, 10, 2, 87, 3),
    (100, 8, 100, 2, 0, 0),
    (600, 8, 4, 2, 576, 20),   # 596 * 30/31
    (100, 8, 4, 10, 82, 14),   # a long tick: 96 * 6/7 (the old default tick, measured: it under-fills)
])
def test_the_target_never_enters_the_reserve(per_minute, headroom, reserve, tick_s, target, cap):
    budget = Budget(per_minute, headroom, tick_s, reserve)
    assert (budget.target, budget.cap) == (target, cap)
    assert budget.target <= per_minute - reserve
    # one tick's share fits below the background ceiling while the oldest tick's calls are still in the window
    ticks = budget.ticks_per_window
    assert budget.target * (ticks + 1) / ticks <= budget.ceiling + 1e-9


@hsettings(max_examples=150, deadline=None)
@given(per_minute=st.integers(20, 1000), headroom=st.integers(0, 60), reserve=st.integers(0, 60),
       tick_s=st.sampled_from([1, 2, 3, 5, 10, 15, 20, 30]),
       others=st.lists(st.integers(0, 30), min_size=1, max_size=12))
def test_with_a_reserve_the_loop_stays_stable_and_below_the_background_ceiling(per_minute, headroom, reserve,
                                                                               tick_s, others):
    """In closed loop (as `test_beteiligte_freshness`): at most `cap` per tick; the window the checker aims
    at stays below the gate's background ceiling, per_minute - reserve, but for one tick's share; over whole
    windows it spends what the others leave of its target."""
    budget = Budget(per_minute, headroom, tick_s, reserve)
    ceiling = per_minute - min(reserve, per_minute - 1)
    per_window = round(WINDOW / tick_s)
    period = len(others) * per_window
    run = _run_loop(budget, others, ticks=6 * period + 2 * per_window)
    for n, window, oldest in run:
        assert 0 <= n <= budget.cap
        assert n == 0 or window - oldest + n <= min(budget.target, ceiling) + math.ceil(window / per_window)
    tail = run[-period:]
    checks_per_window = sum(n for n, _, _ in tail) * per_window / len(tail)
    fair = max(0.0, budget.target - sum(others) * per_window / len(others))
    assert checks_per_window <= fair + max(others) + budget.cap
    assert checks_per_window >= min(fair, budget.cap * per_window) - max(others) - budget.cap


@hsettings(max_examples=300, deadline=None)
@given(per_minute=st.integers(20, 1000), headroom=st.integers(0, 60), reserve=st.integers(0, 60),
       tick_s=st.sampled_from([1, 2, 3, 5, 10, 15, 20, 30]), waiting=st.lists(st.integers(0, 8), min_size=1, max_size=7),
       others=st.lists(st.integers(0, 40), min_size=1, max_size=12))
def test_the_checkers_own_admissions_never_reach_the_background_ceiling(per_minute, headroom, reserve, tick_s,
                                                                        waiting, others):
    """Whatever the others spent before a tick and whatever still waits in the queue: the checks the checker
    queues, together with those still waiting, fit below the gate's background ceiling in the window as it is
    now (the oldest tick's calls not yet gone), so the gate admits every one of them at once and no check
    waits there holding a `beteiligte` worker thread. And this costs the loop nothing when the others leave
    room: without others it settles at its target."""
    budget = Budget(per_minute, headroom, tick_s, reserve)
    ceiling = per_minute - min(reserve, per_minute - 1)  # RateGate.ceiling(BACKGROUND)
    per_window = round(WINDOW / tick_s)
    spent: list[int] = [0] * per_window
    for k in range(4 * per_window * len(others)):
        window = sum(spent[-per_window:])
        q = waiting[k % len(waiting)]
        n = checks_to_queue(budget, used=window, waiting=q)
        assert 0 <= n <= budget.cap
        if n:
            assert window + q + n <= ceiling, (window, q, n)
        spent.append(min(n + q, max(0, ceiling - window)) + others[k % len(others)])
    quiet = _run_loop(budget, [0], ticks=6 * per_window)
    assert all(window + n <= ceiling for n, window, _ in quiet)
    settled = sum(n for n, _, _ in quiet[-per_window:])
    assert budget.target - budget.cap <= settled <= budget.target + budget.cap


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_paced_checks_are_admitted_at_once_by_the_real_gate_while_bursts_of_webhooks_come(redis_url, seed):
    """The product's defaults (FRESHNESS_TICK 2 s, headroom 8, reserve 4; 100 calls/min) against the product's gate on a real
    Redis at a simulated clock: every minute a burst of 0-25 interactive calls (EspoCRM's webhook job) asks at
    once and retries until admitted; each tick the checker reads the gate's window and its checks ask as
    background a moment later. No check is ever refused (none would wait at the gate holding a worker
    thread), and the window still runs at the checker's target."""
    defaults = Settings()
    budget = Budget(100, defaults.freshness_headroom, defaults.freshness_tick,  # Advoware's 100/min (bench, §9)
                    defaults.advoware_interactive_reserve)
    gate = RateGate(redis_url, f"paced-{seed}", per_minute=budget.per_minute, reserve=budget.reserve)
    rng = random.Random(seed)
    t0 = 2_000_000.0
    events: list[tuple[float, int, str]] = []  # (time, order, kind)
    for minute in range(20):
        for i in range(rng.randint(0, 25)):
            heapq.heappush(events, (60.0 * minute + 1.0, len(events), "interactive"))
    for k in range(int(1200 / budget.tick)):
        heapq.heappush(events, (budget.tick * k, len(events), "tick"))
    refused, windows = 0, []
    while events:
        t, order, kind = heapq.heappop(events)
        if kind == "tick":
            used = gate.used(now=t0 + t)
            windows.append(used)
            for _ in range(checks_to_queue(budget, used=used, waiting=0)):
                heapq.heappush(events, (t + 0.05, order, "check"))
        elif kind == "check":
            refused += gate.try_acquire(priority=BACKGROUND, now=t0 + t, count=False) is not None
        elif gate.try_acquire(priority=INTERACTIVE, now=t0 + t, count=False) is not None:
            heapq.heappush(events, (t + 0.25, order, "interactive"))  # RateGate.wait asks again
    assert refused == 0
    assert max(windows) <= 100
    steady = windows[len(windows) // 4:]
    assert sum(steady) / len(steady) >= budget.target - 2  # the pacing costs the loop nothing
