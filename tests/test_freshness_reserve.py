"""The freshness checker's rule with the rate gate's interactive reserve (issue 15): the target never enters
the reserve (the gate would only make the checks wait there, holding worker threads), and the loop stays
stable and spends what the others leave of the lowered target."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from bitbylaw_tasks.beteiligte.freshness import WINDOW, Budget, checks_to_queue
from test_beteiligte_freshness import _run_loop


@pytest.mark.parametrize("per_minute,headroom,reserve,target,cap", [
    (100, 8, 0, 92, 16),    # no reserve: as before
    (100, 8, 4, 92, 16),    # the default: the reserve lies inside the headroom
    (100, 8, 8, 92, 16),
    (100, 8, 12, 88, 15),   # a reserve larger than the headroom lowers the target
    (100, 0, 10, 90, 15),
    (100, 8, 100, 0, 0),
    (600, 8, 4, 592, 99),
])
def test_the_target_never_enters_the_reserve(per_minute, headroom, reserve, target, cap):
    budget = Budget(per_minute, headroom, 10, reserve)
    assert (budget.target, budget.cap) == (target, cap)
    assert budget.target <= per_minute - reserve
    # the rule itself is unchanged: the same steady-state step as without a reserve at that target
    assert checks_to_queue(budget, used=target, waiting=0) == checks_to_queue(
        Budget(per_minute, per_minute - target, 10), used=target, waiting=0)


@hsettings(max_examples=150, deadline=None)
@given(per_minute=st.integers(20, 1000), headroom=st.integers(0, 60), reserve=st.integers(0, 60),
       tick_s=st.sampled_from([5, 10, 15, 20, 30]), others=st.lists(st.integers(0, 30), min_size=1, max_size=12))
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
