"""The cuts of issue 15's efficiency part keep their behaviour: the one-round-trip rate gate is `limits`'
moving window (same key, same list, same verdicts), the one-bucket histogram renders Prometheus'
cumulative buckets, and the per-origin environment cache gives requests' own settings."""
from __future__ import annotations

import time

import redis
import requests
from hypothesis import given, settings, strategies as st
from limits import RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from bitbylaw_tasks import metrics
from conftest import SCRATCH_DB
from integrations.http import make_session
from integrations.rategate import RateGate


def test_gate_admits_exactly_the_budget_counts_each_call_and_agrees_with_limits(redis_url):
    gate = RateGate(redis_url, "gate-test", per_minute=5, max_wait=0.3)
    for _ in range(5):
        gate.wait()
    client = redis.Redis.from_url(redis_url)
    assert int(client.hget(metrics.API_CALLS_KEY, "gate-test")) == 5
    item = RateLimitItemPerMinute(5)
    limiter = MovingWindowRateLimiter(RedisStorage(redis_url))
    # limits reads the window the gate wrote: no budget left, and it refuses the next hit too.
    assert limiter.get_window_stats(item, "bitbylaw", "gate-test").remaining == 0
    assert not limiter.test(item, "bitbylaw", "gate-test")
    started = time.monotonic()
    try:
        gate.wait()
    except Exception as exc:  # noqa: BLE001 - the type is asserted below
        assert type(exc).__name__ == "BudgetExhausted"  # a RateLimited of our own, which pauses nobody
    else:
        raise AssertionError("a sixth call within the minute was admitted")
    assert time.monotonic() - started >= 0.05
    assert int(client.hget(metrics.API_CALLS_KEY, "gate-test")) == 5  # the refused call is not counted


def test_gate_shares_the_window_with_limits_hits(redis_url):
    """Hits made through `limits` itself (another process, an older build) use up the gate's budget."""
    item = RateLimitItemPerMinute(3)
    limiter = MovingWindowRateLimiter(RedisStorage(redis_url))
    assert limiter.hit(item, "bitbylaw", "shared-test") and limiter.hit(item, "bitbylaw", "shared-test")
    gate = RateGate(redis_url, "shared-test", per_minute=3, max_wait=0.2)
    gate.wait()
    assert limiter.get_window_stats(item, "bitbylaw", "shared-test").remaining == 0


def test_gate_waits_out_a_pause_set_by_another_process(redis_url):
    gate = RateGate(redis_url, "pause-test", per_minute=100)
    redis.Redis.from_url(redis_url).set("rate_pause:pause-test", "1", px=300)
    started = time.monotonic()
    gate.wait()
    assert time.monotonic() - started >= 0.25


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=60, allow_nan=False), max_size=30))
def test_histogram_renders_cumulative_buckets_from_one_bucket_writes(redis_server, durations):
    client = redis.Redis.from_url(redis_server.url(SCRATCH_DB))
    client.delete(metrics.DURATION_KEY, metrics.SYNCS_KEY)
    for seconds in durations:
        metrics.record_sync(client, "beteiligte", "update", "ok", seconds)
    text = metrics.render(client, None, ())
    for bound in (*metrics.BUCKETS_MS, "+Inf"):
        le = "+Inf" if bound == "+Inf" else f"{bound / 1000:g}"
        expected = sum(1 for s in durations if bound == "+Inf" or s * 1000 <= bound)
        line = f'bitbylaw_sync_duration_seconds_bucket{{domain="beteiligte",le="{le}"}} {expected}'
        assert (line in text) == bool(durations), (line, text)
    if durations:
        assert f'bitbylaw_sync_duration_seconds_count{{domain="beteiligte"}} {len(durations)}' in text
        total = float(text.split('bitbylaw_sync_duration_seconds_sum{domain="beteiligte"} ')[1].split()[0])
        assert abs(total - sum(durations)) < 0.002 * len(durations) + 0.001


def test_session_merges_environment_like_requests(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    ours, plain = make_session(), requests.Session()
    for url in ("http://espocrm.example/api/v1/CBeteiligte/1", "http://internal.example/x",
                "https://advoware.example/api/v1/advonet/Beteiligte/7"):
        for _ in range(2):  # the second call comes from the cache
            assert ours.merge_environment_settings(url, {}, None, None, None) == \
                plain.merge_environment_settings(url, {}, None, None, None)
    explicit = {"http": "http://other:1"}
    assert ours.merge_environment_settings("http://espocrm.example/", explicit, None, False, None) == \
        plain.merge_environment_settings("http://espocrm.example/", dict(explicit), None, False, None)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                     max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(path=st.text(max_size=12), flags=st.lists(st.booleans(), min_size=4, max_size=4),
       notes=st.integers(0, 3), detail=st.dictionaries(st.text(max_size=6), _json, max_size=4))
def test_a_sync_result_is_what_asdict_gave(path, flags, notes, detail):
    """The task result built without `dataclasses.asdict` has the same content (issue 15, third round)."""
    import dataclasses

    from bitbylaw_tasks.beteiligte.service import SyncOutcome
    from bitbylaw_tasks.outcomes import result_of

    outcome = SyncOutcome("e1", path, flags[0], flags[1], notes, detail, kommunikation_due=flags[2], again=flags[3])
    assert result_of(outcome) == dataclasses.asdict(outcome)


def test_a_syncs_check_time_rides_on_its_metrics_round_trip(sandbox, celery_worker, lock_redis):
    """After a synced path the entity is recorded as checked (and its freshness pick is done with) in the
    pipeline of the sync's metrics, and the result is the outcome's fields."""
    from datetime import datetime, timezone

    from beteiligte_helpers import linked_record, run_sync
    from bitbylaw_tasks.beteiligte import store

    record = linked_record(sandbox)
    lock_redis.zadd(store.PICKED_KEY, {record["id"]: 1.0})
    lock_redis.zrem(store.CHECKED_KEY, record["id"])
    before = datetime.now(timezone.utc).timestamp()
    sandbox.state("espocrm").human_update(record["id"], {"firstName": "Moritz"})
    result = run_sync(record["id"], "update", "webhook")
    assert set(result) == {"entity_id", "path", "wrote_espocrm", "wrote_advoware", "notes", "detail",
                           "kommunikation_due", "again"}
    assert result["entity_id"] == record["id"] and result["wrote_advoware"]
    assert lock_redis.zscore(store.CHECKED_KEY, record["id"]) >= before - 1
    assert lock_redis.zscore(store.PICKED_KEY, record["id"]) is None
