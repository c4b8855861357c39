"""Operational metrics shared by all processes (Redis DB 1), rendered as Prometheus text for `/metrics`.

Counters are Redis hash fields (`HINCRBY`), so every worker on every machine
adds to the same numbers and the web shim can render them without talking to
the workers. Recorded: syncs by domain, path and result with a duration
histogram, API calls per external system (counted by the shared rate gates),
and, at render time, the length of every queue.
"""
from __future__ import annotations

import redis

SYNCS_KEY = "metrics:syncs"          # field "domain|path|result" -> count
DURATION_KEY = "metrics:duration"    # field "domain|le" -> count, "domain|sum_ms", "domain|count"
API_CALLS_KEY = "metrics:api_calls"  # field system -> count
SKIPPED_KEY = "metrics:skipped"      # field domain -> records a sync skipped (unreadable, or refused)
ADRESSEN_MANUAL_KEY = "metrics:adressen_manual"  # field opened|closed -> count (bitbylaw_tasks/adressen/manual.py)
ADRESSEN_OPEN_KEY = "adressen:manual:parties"    # the parties with open manual actions
BUCKETS_MS = (50, 100, 150, 250, 500, 1000, 2500, 5000, 10000, 30000)


def record_sync(client: redis.Redis, domain: str, path: str, result: str, duration_s: float) -> None:
    """One finished sync (result: ok | failed | retry | busy)."""
    ms = duration_s * 1000.0
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(SYNCS_KEY, f"{domain}|{path}|{result}", 1)
    for bound in BUCKETS_MS:
        if ms <= bound:
            pipe.hincrby(DURATION_KEY, f"{domain}|{bound}", 1)
    pipe.hincrby(DURATION_KEY, f"{domain}|+Inf", 1)
    pipe.hincrbyfloat(DURATION_KEY, f"{domain}|sum_ms", ms)
    try:
        pipe.execute()
    except redis.RedisError:
        pass  # metrics never fail a sync


def record_api_call(client: redis.Redis, system: str) -> None:
    try:
        client.hincrby(API_CALLS_KEY, system, 1)
    except redis.RedisError:
        pass


def record_skipped(client: redis.Redis, domain: str, count: int) -> None:
    """Records one sync run skipped (and reported) instead of failing on them."""
    try:
        client.hincrby(SKIPPED_KEY, domain, count)
    except redis.RedisError:
        pass


def _fields(client: redis.Redis, key: str) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in client.hgetall(key).items()}


def render(client: redis.Redis, broker: redis.Redis | None, queues: tuple[str, ...]) -> str:
    """The Prometheus text exposition of all metrics."""
    lines = ["# HELP bitbylaw_syncs_total Finished syncs by domain, path and result.",
             "# TYPE bitbylaw_syncs_total counter"]
    for field, value in sorted(_fields(client, SYNCS_KEY).items()):
        domain, path, result = field.split("|")
        lines.append(f'bitbylaw_syncs_total{{domain="{domain}",path="{path}",result="{result}"}} {value:g}')
    lines += ["# HELP bitbylaw_sync_duration_seconds Sync duration.", "# TYPE bitbylaw_sync_duration_seconds histogram"]
    durations = _fields(client, DURATION_KEY)
    for domain in sorted({f.split("|")[0] for f in durations}):
        for bound in (*BUCKETS_MS, "+Inf"):
            le = "+Inf" if bound == "+Inf" else f"{bound / 1000:g}"
            count = durations.get(f"{domain}|{bound}", 0)
            lines.append(f'bitbylaw_sync_duration_seconds_bucket{{domain="{domain}",le="{le}"}} {count:g}')
        lines.append(f'bitbylaw_sync_duration_seconds_sum{{domain="{domain}"}} '
                     f'{durations.get(f"{domain}|sum_ms", 0) / 1000:.3f}')
        lines.append(f'bitbylaw_sync_duration_seconds_count{{domain="{domain}"}} '
                     f'{durations.get(f"{domain}|+Inf", 0):g}')
    lines += ["# HELP bitbylaw_api_calls_total Calls to external systems.", "# TYPE bitbylaw_api_calls_total counter"]
    for system, value in sorted(_fields(client, API_CALLS_KEY).items()):
        lines.append(f'bitbylaw_api_calls_total{{system="{system}"}} {value:g}')
    lines += ["# HELP bitbylaw_skipped_records_total Records a sync skipped instead of failing (see its log).",
              "# TYPE bitbylaw_skipped_records_total counter"]
    for domain, value in sorted(_fields(client, SKIPPED_KEY).items()):
        lines.append(f'bitbylaw_skipped_records_total{{domain="{domain}"}} {value:g}')
    lines += ["# HELP bitbylaw_adressen_manual_actions_total Manual actions (Advoware changes a person must make) "
              "opened and closed.", "# TYPE bitbylaw_adressen_manual_actions_total counter"]
    for event, value in sorted(_fields(client, ADRESSEN_MANUAL_KEY).items()):
        lines.append(f'bitbylaw_adressen_manual_actions_total{{event="{event}"}} {value:g}')
    open_now = sum(client.hlen(f"adressen:manual:{p.decode()}") for p in client.smembers(ADRESSEN_OPEN_KEY))
    lines += ["# HELP bitbylaw_adressen_manual_actions_open Manual actions open now.",
              "# TYPE bitbylaw_adressen_manual_actions_open gauge", f"bitbylaw_adressen_manual_actions_open {open_now}"]
    if broker is not None:
        lines += ["# HELP bitbylaw_queue_length Messages waiting per queue.", "# TYPE bitbylaw_queue_length gauge"]
        for queue in queues:
            try:
                length = broker.llen(queue)
            except redis.RedisError:
                continue
            lines.append(f'bitbylaw_queue_length{{queue="{queue}"}} {length}')
    return "\n".join(lines) + "\n"
