"""The freshness checker (issue 15): the control rule (pure), its stability, the store's picks and check
ages (real Redis), the metrics, and one Advoware-only change found through the real task and worker."""
from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from bitbylaw_tasks.beteiligte import store
from bitbylaw_tasks.beteiligte.freshness import WINDOW, Budget, checks_to_queue, freshness, tick
from bitbylaw_tasks.metrics import record_check_ages, render


# ------------------------------------------------------------------ the rule, pure
@pytest.mark.parametrize("per_minute,headroom,tick_s,reserve,used,waiting,expected", [
    # the defaults: tick 2 s, target 92/min, cap ceil(92 * 2 / 60) = 4 per tick; of the window's calls 29/30
    # are still in it while the new checks run (the oldest tick's leave)
    (100, 8, 2, 0, 0, 0, 4),      # an idle budget: the even share of the target per tick
    (100, 8, 2, 0, 80, 0, 4),     # 92 - 80 * 29/30 = 14.7: the cap binds
    (100, 8, 2, 0, 92, 0, 3),     # 92 - 88.9: the steady state (3-4 per tick = 92/min)
    (100, 8, 2, 0, 95, 0, 0),     # webhooks used part of the headroom: fewer checks (92 - 91.8)
    (100, 8, 2, 0, 92, 2, 1),     # what still waits in the queue is already committed
    (100, 8, 2, 0, 150, 0, 0),    # never negative
    (100, 8, 2, 0, 0, 40, 0),     # a backlog larger than the share: wait for it
    (100, 100, 2, 0, 0, 0, 0),    # all headroom: no checks
    (100, 150, 2, 0, 0, 0, 0),
    (600, 8, 2, 0, 0, 0, 20),     # target min(592, 600 * 30/31 = 580): cap ceil(580 / 30)
    (100, 8, 2, 4, 92, 0, 3),     # with the default reserve: the background ceiling 96 is not in the way
    (100, 8, 2, 4, 96, 0, 0),     # at the ceiling: nothing (a check would wait at the gate)
    # a long tick: the target drops to C * P / (P + 1), the level one tick's share still fits under the
    # ceiling C while the oldest tick's calls are still in the window (P = 6: 96 * 6/7 = 82)
    (100, 8, 10, 4, 0, 0, 14),    # cap ceil(82 / 6)
    (100, 8, 10, 4, 82, 0, 13),   # 82 - 68.3: the steady state
    (100, 8, 10, 4, 90, 0, 6),    # the clamp binds: 96 - 90 places below the ceiling now (the rule says 7)
    (100, 8, 10, 4, 94, 1, 1),    # 96 - 94 - 1 waiting
    (100, 8, 10, 0, 92, 0, 8),    # no reserve: C = 100, target 85, the clamp binds (100 - 92; the rule says 8.3)
    (100, 8, 60, 0, 92, 0, 8),    # a tick as long as the window counts as half of it (P = 2): target 66
])
def test_checks_to_queue(per_minute, headroom, tick_s, reserve, used, waiting, expected):
    assert checks_to_queue(Budget(per_minute, headroom, tick_s, reserve), used, waiting) == expected
    assert checks_to_queue(Budget(per_minute, headroom, tick_s, reserve), used, waiting, paused=True) == 0


def _run_loop(budget: Budget, others: list[int], ticks: int) -> list[tuple[int, int, int]]:
    """The rule in closed loop on a discrete clock: each tick, others spend `others[k % len]` calls and the
    checks queued are spent right after the tick (one call each), so the gate's window at a tick holds the
    last `per_window` ticks' calls. Returns per tick (checks queued, calls in the window, the oldest tick's)."""
    per_window = round(WINDOW / budget.tick)
    spent: list[int] = [0] * per_window  # calls per tick, every consumer
    out = []
    for k in range(ticks):
        window = sum(spent[-per_window:])
        n = checks_to_queue(budget, used=window, waiting=0)
        out.append((n, window, spent[-per_window]))
        spent.append(n + others[k % len(others)])
    return out


@hsettings(max_examples=200, deadline=None)
@given(per_minute=st.integers(20, 1000), headroom=st.integers(0, 60),
       tick_s=st.sampled_from([1, 2, 3, 5, 10, 15, 20, 30]), others=st.lists(st.integers(0, 30), min_size=1, max_size=12))
def test_the_loop_is_stable_never_overshoots_and_uses_what_is_left(per_minute, headroom, tick_s, others):
    """Whatever the others do (a repeating pattern of calls per tick): the checker queues at most `cap` per
    tick, never fills the window past its target by more than one tick's share (while the oldest tick's calls
    leave it), and over whole windows spends what the others leave of the target (within one tick's jitter):
    no drift, no wind-up, no growing oscillation."""
    budget = Budget(per_minute, headroom, tick_s)
    per_window = round(WINDOW / tick_s)
    period = len(others) * per_window
    run = _run_loop(budget, others, ticks=8 * period + 2 * per_window)
    for n, window, oldest in run:
        assert 0 <= n <= budget.cap
        assert n == 0 or window - oldest + n <= budget.target + math.ceil(window / per_window)
    tail = run[-period:]  # steady state: a whole number of the others' periods and of windows
    checks_per_window = sum(n for n, _, _ in tail) * per_window / len(tail)
    others_per_window = sum(others) * per_window / len(others)
    fair = max(0.0, budget.target - others_per_window)
    assert checks_per_window <= fair + max(others) + budget.cap
    assert checks_per_window >= min(fair, budget.cap * per_window) - max(others) - budget.cap


# ------------------------------------------------------------------ the store, real Redis
def test_pick_takes_the_longest_unchecked_and_holds_them_until_checked_or_the_lease_ends(lock_redis):
    now = 1_000_000.0
    for n in range(6):
        store.record_checked(lock_redis, f"e{n}", datetime.fromtimestamp(now - 1000 + n, timezone.utc))
    assert store.pick_unchecked(lock_redis, 2, now, lease=300) == ["e0", "e1"]
    assert store.pick_unchecked(lock_redis, 2, now + 10, lease=300) == ["e2", "e3"]  # e0, e1 are held
    store.record_checked(lock_redis, "e0", datetime.fromtimestamp(now + 5, timezone.utc))  # e0's check ran
    # e1 is still held (its check has not completed); e0 is free again and now the most recently checked
    assert store.pick_unchecked(lock_redis, 5, now + 20, lease=300) == ["e4", "e5", "e0"]
    assert store.pick_unchecked(lock_redis, 5, now + 30, lease=300) == []  # everything is held
    assert store.pick_unchecked(lock_redis, 1, now + 301, lease=300) == ["e1"]  # e1's pick was lost: lease over
    assert store.pick_unchecked(lock_redis, 0, now, lease=300) == []


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ages=st.lists(st.floats(0, 86400 * 3), min_size=1, max_size=300))
def test_check_ages_match_a_sorted_list(redis_url, ages):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()  # per input: the fixture runs once per test
    now = 2_000_000.0
    for n, age in enumerate(ages):
        store.record_checked(client, f"e{n}", datetime.fromtimestamp(now - age, timezone.utc))
    tracked, got = store.check_ages(client, now, (0.5, 0.99, 1.0))
    ordered = sorted(ages)
    assert tracked == len(ages)
    for q in (0.5, 0.99, 1.0):  # the smallest age that a share q of the entities does not exceed
        expected = ordered[max(1, math.ceil(q * len(ages))) - 1]
        assert got[q] == pytest.approx(expected, abs=1e-3)
        assert sum(a <= got[q] + 1e-3 for a in ages) >= q * len(ages)


def test_tick_applies_the_rule_to_the_store(lock_redis):
    now = time.time()
    for n in range(40):
        store.record_checked(lock_redis, f"e{n:02d}", datetime.fromtimestamp(now - 4000 + n, timezone.utc))
    step = tick(lock_redis, Budget(100, 8, 10), now=now, used=70, waiting=2)  # 85 - 58.3, cap 15, less 2
    assert step.count == 13 and step.picked == tuple(f"e{n:02d}" for n in range(13))
    assert step.as_dict() == {"used": 70, "waiting": 2, "allowed": 13, "queued": 13}
    ages = freshness(lock_redis, now)
    assert ages.tracked == 40 and ages.oldest_s == pytest.approx(4000, abs=0.01)
    assert ages.p50_s == pytest.approx(3961 + 19, abs=0.01)  # the 20th smallest of the ages 3961..4000
    assert "oldest check           67 min" in ages.lines()


def test_metrics_show_the_check_ages(lock_redis):
    record_check_ages(lock_redis, "beteiligte", 10000, {"0.5": 1800.0, "0.99": 6900.5, "1": 7100.0})
    text = render(lock_redis, None, ())
    assert 'bitbylaw_check_age_seconds{domain="beteiligte",quantile="0.5"} 1800' in text
    assert 'bitbylaw_check_age_seconds{domain="beteiligte",quantile="0.99"} 6900.5' in text
    assert 'bitbylaw_check_age_seconds{domain="beteiligte",quantile="1"} 7100' in text
    assert 'bitbylaw_checked_entities{domain="beteiligte"} 10000' in text


# ------------------------------------------------------------------ through the real task and worker
def test_the_freshness_task_finds_an_advoware_only_change(sandbox, celery_worker, lock_redis):
    from beteiligte_helpers import espo_record, linked_record
    from conftest import wait_idle
    from bitbylaw_tasks.beteiligte.tasks import freshness as freshness_task

    from bitbylaw_tasks.celery_app import app, settings_of
    from bitbylaw_tasks.clients import clients_for

    record = linked_record(sandbox)
    fresh = linked_record(sandbox, {"firstName": "Erika", "lastName": "Frisch"})
    now = datetime.now(timezone.utc)
    store.record_checked(lock_redis, record["id"], now - timedelta(hours=3))  # the longest-unchecked
    sandbox.state("advoware").human_update_beteiligte(record["betnr"], vorname="Moritz")
    clients_for(settings_of(app)).advoware.gate.pause(0.5)  # Advoware answered 429: no checks meanwhile
    assert freshness_task()["allowed"] == 0
    time.sleep(0.6)
    result = freshness_task()
    wait_idle()
    assert result["queued"] >= 1 and result["allowed"] >= result["queued"]
    assert espo_record(sandbox, record["id"])["firstName"] == "Moritz"
    assert espo_record(sandbox, fresh["id"])["firstName"] == "Erika"
    checked = lock_redis.zscore(store.CHECKED_KEY, record["id"])
    assert checked > (now - timedelta(minutes=1)).timestamp()  # its check is recorded as it completes
    text = render(lock_redis, None, ())
    assert 'bitbylaw_checked_entities{domain="beteiligte"} 2' in text


def test_beteiligte_status_shows_the_check_ages(sandbox, lock_redis, capsys):
    from bitbylaw_tasks import cli

    now = datetime.now(timezone.utc)
    for n, hours in enumerate((0.5, 1, 3)):
        store.record_checked(lock_redis, f"e{n}", now - timedelta(hours=hours))
    assert cli.main(["beteiligte", "status"]) == 0
    out = capsys.readouterr().out
    assert "checked parties        3" in out and "check age p50          60 min" in out
    assert "check age p99          3.0 h" in out and "oldest check           3.0 h" in out


@pytest.mark.parametrize("tick_s,ok", [("10", True), ("0.5", True), ("30", True), ("0", False), ("45", False)])
def test_freshness_tick_must_fit_the_window(tick_s, ok):
    from bitbylaw_tasks.settings import SettingsError, load_settings

    if ok:
        assert load_settings({"FRESHNESS_TICK": tick_s}).freshness_tick == float(tick_s)
    else:
        with pytest.raises(SettingsError, match="FRESHNESS_TICK"):
            load_settings({"FRESHNESS_TICK": tick_s})
