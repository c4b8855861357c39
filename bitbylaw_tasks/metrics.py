"""Operational metrics shared by all processes (Redis DB 1), rendered as Prometheus text for `/metrics`.

Counters are Redis hash fields (`HINCRBY`), so every worker on every machine
adds to the same numbers and the web shim can render them without talking to
the workers. Recorded: syncs by domain, path and result with a duration
histogram, API calls per external system (counted by the shared rate gates),
the age of the entities' last checks (a gauge each freshness run replaces),
and, at render time, the length of every queue.

Added for operators (docs/operators.md): hourly sync/failure buckets for the
status page's 24-hour chart, failures by reason, calendar writes by kind, and
render-time gauges of failed / permanently failed entities (`ops.failures`),
pending manual actions (`ops.manual`) and heartbeat ages.
"""
from __future__ import annotations

import time

import redis

SYNCS_KEY = "metrics:syncs"          # field "domain|path|result" -> count
DURATION_KEY = "metrics:duration"    # field "domain|in:{bound}" -> syncs in that one bucket, "domain|total_ms"
API_CALLS_KEY = "metrics:api_calls"  # field system -> count
SKIPPED_KEY = "metrics:skipped"      # field domain -> records a sync skipped (unreadable, or refused)
CHECK_AGES_KEY = "metrics:check_ages"  # field "domain|quantile" -> seconds, "domain|tracked" -> entities
PROXY_KEY = "metrics:proxy"          # field "key name|status" -> Advoware proxy answers
INBOUND_KEY = "metrics:inbound"      # field "channel|result" -> requests of the inbound endpoints (SPEC §12)
MANUAL_KEY = "metrics:manual_actions"  # field "domain|opened" / "domain|closed" -> manual actions
BUCKETS_MS = (50, 100, 150, 250, 500, 1000, 2500, 5000, 10000, 30000)
HOURLY_KEY = "metrics:hourly:{hour}"  # hash per UTC hour (epoch // 3600): "domain|result" -> count
HOURLY_TTL = 26 * 3600
FAILURES_KEY = "metrics:failures"     # field "domain|exception class" -> tasks failed for good
CALENDAR_ACTIONS_KEY = "metrics:calendar_actions"  # field action kind (create_event, update_termin…) -> count


def duration_bucket(ms: float) -> str:
    """The one histogram bucket a duration falls in: the smallest bound it does not exceed, else "+Inf"."""
    for bound in BUCKETS_MS:
        if ms <= bound:
            return str(bound)
    return "+Inf"


def record_sync(client: redis.Redis, domain: str, path: str, result: str, duration_s: float) -> None:
    """One finished sync (result: ok | failed | retry | busy).

    The duration goes into its one bucket (`domain|in:{bound}`); `render` adds the buckets up into
    Prometheus' cumulative ones. (Until issue 15 every bucket at or above the duration was
    incremented: eleven commands per sync instead of one. Those older `domain|{bound}` fields are
    no longer read: the histogram restarts from zero once, which Prometheus takes as a counter reset.)
    """
    pipe = client.pipeline(transaction=False)
    queue_sync(pipe, domain, path, result, duration_s)
    try:
        pipe.execute()
    except redis.RedisError:
        pass  # metrics never fail a sync


def queue_sync(pipe, domain: str, path: str, result: str, duration_s: float) -> None:
    """`record_sync`'s commands, added to a caller's pipeline (one round trip with the caller's own)."""
    ms = duration_s * 1000.0
    pipe.hincrby(SYNCS_KEY, f"{domain}|{path}|{result}", 1)
    pipe.hincrby(DURATION_KEY, f"{domain}|in:{duration_bucket(ms)}", 1)
    pipe.hincrbyfloat(DURATION_KEY, f"{domain}|total_ms", ms)
    hourly = HOURLY_KEY.format(hour=int(time.time() // 3600))
    pipe.hincrby(hourly, f"{domain}|{result}", 1)
    pipe.expire(hourly, HOURLY_TTL)


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


def record_failure_reason(client: redis.Redis, domain: str, reason: str) -> None:
    """A task of `domain` failed for good with an exception of class `reason`."""
    try:
        client.hincrby(FAILURES_KEY, f"{domain}|{reason}", 1)
    except redis.RedisError:
        pass


def record_inbound(client: redis.Redis, channel: str, result: str) -> None:
    """One request of an inbound endpoint (channel lead|call|lookup; result queued, duplicate, hit, miss…)."""
    try:
        client.hincrby(INBOUND_KEY, f"{channel}|{result}", 1)
    except redis.RedisError:
        pass


def record_proxy_answer(client, key_name: str, status: int) -> None:
    """One Advoware proxy answer by caller key (`-` without a valid key) and status; `client` may be a
    pipeline (the audit sends it with its stream entry in one round trip)."""
    try:
        client.hincrby(PROXY_KEY, f"{key_name}|{status}", 1)
    except redis.RedisError:
        pass


def record_calendar_actions(client: redis.Redis, actions: dict[str, int]) -> None:
    """The writes one calendar sync made, by kind."""
    try:
        pipe = client.pipeline(transaction=False)
        for kind, count in actions.items():
            pipe.hincrby(CALENDAR_ACTIONS_KEY, kind, int(count))
        pipe.execute()
    except redis.RedisError:
        pass


def record_check_ages(client: redis.Redis, domain: str, tracked: int, ages: dict[str, float | None]) -> None:
    """The age of the entities' last checks (`ages`: quantile label -> seconds; "1" is the oldest), as a
    domain's freshness checker last measured them (a gauge, replaced each time)."""
    pipe = client.pipeline(transaction=False)
    pipe.hset(CHECK_AGES_KEY, f"{domain}|tracked", tracked)
    for quantile, seconds in ages.items():
        if seconds is None:
            pipe.hdel(CHECK_AGES_KEY, f"{domain}|{quantile}")
        else:
            pipe.hset(CHECK_AGES_KEY, f"{domain}|{quantile}", round(seconds, 1))
    try:
        pipe.execute()
    except redis.RedisError:
        pass


def hourly(client: redis.Redis, hours: int = 24, now: float | None = None) -> list[tuple[int, dict[str, int]]]:
    """The last `hours` UTC hours, oldest first: (hour start epoch, {"domain|result": count})."""
    current = int((time.time() if now is None else now) // 3600)
    pipe = client.pipeline(transaction=False)
    for hour in range(current - hours + 1, current + 1):
        pipe.hgetall(HOURLY_KEY.format(hour=hour))
    rows = pipe.execute()
    return [((current - hours + 1 + i) * 3600, {k.decode(): int(v) for k, v in row.items()})
            for i, row in enumerate(rows)]


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
    for domain in sorted({f.split("|")[0] for f in durations if "|in:" in f}):
        count = 0.0
        for bound in (*BUCKETS_MS, "+Inf"):
            le = "+Inf" if bound == "+Inf" else f"{bound / 1000:g}"
            count += durations.get(f"{domain}|in:{bound}", 0)
            lines.append(f'bitbylaw_sync_duration_seconds_bucket{{domain="{domain}",le="{le}"}} {count:g}')
        lines.append(f'bitbylaw_sync_duration_seconds_sum{{domain="{domain}"}} '
                     f'{durations.get(f"{domain}|total_ms", 0) / 1000:.3f}')
        lines.append(f'bitbylaw_sync_duration_seconds_count{{domain="{domain}"}} {count:g}')
    lines += ["# HELP bitbylaw_api_calls_total Calls to external systems.", "# TYPE bitbylaw_api_calls_total counter"]
    for system, value in sorted(_fields(client, API_CALLS_KEY).items()):
        lines.append(f'bitbylaw_api_calls_total{{system="{system}"}} {value:g}')
    lines += ["# HELP bitbylaw_skipped_records_total Records a sync skipped instead of failing (see its log).",
              "# TYPE bitbylaw_skipped_records_total counter"]
    for domain, value in sorted(_fields(client, SKIPPED_KEY).items()):
        lines.append(f'bitbylaw_skipped_records_total{{domain="{domain}"}} {value:g}')
    lines += _operator_lines(client)
    ages, tracked = [], []
    for field, value in sorted(_fields(client, CHECK_AGES_KEY).items()):
        domain, quantile = field.split("|")
        if quantile == "tracked":
            tracked.append(f'bitbylaw_checked_entities{{domain="{domain}"}} {value:g}')
        else:
            ages.append(f'bitbylaw_check_age_seconds{{domain="{domain}",quantile="{quantile}"}} {value:g}')
    lines += ["# HELP bitbylaw_check_age_seconds Age of the entities' last checks at the freshness checker's "
              "last run, by quantile (1 = the oldest check).", "# TYPE bitbylaw_check_age_seconds gauge", *ages,
              "# HELP bitbylaw_checked_entities Entities with a recorded check.",
              "# TYPE bitbylaw_checked_entities gauge", *tracked]
    lines += ["# HELP bitbylaw_proxy_requests_total Advoware proxy answers by caller key and status.",
              "# TYPE bitbylaw_proxy_requests_total counter"]
    for field, value in sorted(_fields(client, PROXY_KEY).items()):
        key_name, _, status = field.rpartition("|")
        lines.append(f'bitbylaw_proxy_requests_total{{key="{key_name}",status="{status}"}} {value:g}')
    lines += ["# HELP bitbylaw_inbound_requests_total Inbound channel requests by channel and result.",
              "# TYPE bitbylaw_inbound_requests_total counter"]
    for field, value in sorted(_fields(client, INBOUND_KEY).items()):
        channel, result = field.split("|")
        lines.append(f'bitbylaw_inbound_requests_total{{channel="{channel}",result="{result}"}} {value:g}')
    lines += ["# HELP bitbylaw_manual_actions_total Manual actions (changes a person must make) opened and closed.",
              "# TYPE bitbylaw_manual_actions_total counter"]
    for field, value in sorted(_fields(client, MANUAL_KEY).items()):
        domain, event = field.split("|")
        lines.append(f'bitbylaw_manual_actions_total{{domain="{domain}",event="{event}"}} {value:g}')
    if broker is not None:
        lines += ["# HELP bitbylaw_queue_length Messages waiting per queue.", "# TYPE bitbylaw_queue_length gauge"]
        for queue in queues:
            try:
                length = broker.llen(queue)
            except redis.RedisError:
                continue
            lines.append(f'bitbylaw_queue_length{{queue="{queue}"}} {length}')
    return "\n".join(lines) + "\n"


def _operator_lines(client: redis.Redis) -> list[str]:
    """Failures by reason, calendar writes, and the gauges operators alert on (docs/operators.md)."""
    from bitbylaw_tasks.ops import failures, heartbeat, manual

    lines = ["# HELP bitbylaw_sync_failures_total Tasks failed for good (no retry follows) by domain and exception.",
             "# TYPE bitbylaw_sync_failures_total counter"]
    for field, value in sorted(_fields(client, FAILURES_KEY).items()):
        domain, reason = field.split("|", 1)
        lines.append(f'bitbylaw_sync_failures_total{{domain="{domain}",reason="{reason}"}} {value:g}')
    lines += ["# HELP bitbylaw_calendar_actions_total Calendar sync writes by kind.",
              "# TYPE bitbylaw_calendar_actions_total counter"]
    for kind, value in sorted(_fields(client, CALENDAR_ACTIONS_KEY).items()):
        lines.append(f'bitbylaw_calendar_actions_total{{action="{kind}"}} {value:g}')
    per_domain = failures.counts(failures.entries(client))
    lines += ["# HELP bitbylaw_failed_entities Entities whose last sync failed for good, by domain.",
              "# TYPE bitbylaw_failed_entities gauge"]
    lines += [f'bitbylaw_failed_entities{{domain="{d}"}} {n}' for d, (n, _) in sorted(per_domain.items())]
    lines += ["# HELP bitbylaw_permanently_failed_entities Entities paused after repeated failures, by domain.",
              "# TYPE bitbylaw_permanently_failed_entities gauge"]
    lines += [f'bitbylaw_permanently_failed_entities{{domain="{d}"}} {p}' for d, (_, p) in sorted(per_domain.items())]
    lines += ["# HELP bitbylaw_manual_actions_pending Decisions waiting for a person (ops.manual).",
              "# TYPE bitbylaw_manual_actions_pending gauge", f"bitbylaw_manual_actions_pending {manual.count(client)}"]
    now = time.time()
    lines += ["# HELP bitbylaw_heartbeat_age_seconds Seconds since each component's last heartbeat "
              "(absent: never seen).", "# TYPE bitbylaw_heartbeat_age_seconds gauge"]
    for component, entry in heartbeat.report(client, 0, now).items():
        if entry["last_seen"] is not None:
            lines.append(f'bitbylaw_heartbeat_age_seconds{{component="{component}"}} {now - entry["last_seen"]:.1f}')
    return lines
