"""The proxy's audit: per call one structured log line and one entry in the Redis stream `proxy:audit`, plus the
`/metrics` count by key and status; read back by `bitbylaw proxy audit`.

An entry holds the key id and name, method, path template (ids replaced, `rules.template`), status, duration,
bytes in and out and a reason code — never a body, a query string or a header value.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import redis

from bitbylaw_tasks import metrics

STREAM = "proxy:audit"
NO_KEY = "-"
log = logging.getLogger("bitbylaw_tasks.proxy")
_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class AuditEntry:
    at: float
    key_id: str
    key: str
    method: str
    path: str
    status: int
    ms: float
    bytes_in: int
    bytes_out: int
    reason: str
    advoware_calls: int = 0   # calls admitted to Advoware (2 when the token was refreshed)


def record(client: redis.Redis, entry: AuditEntry, maxlen: int) -> None:
    """Log the call, append it to the stream and count it (by key and status, and the Advoware calls it made
    in `metrics:api_calls`), in one Redis round trip; a Redis failure is logged, never the caller's error."""
    log.info("proxy %s %s -> %d key=%s %.1f ms in=%d out=%d %s", entry.method, entry.path, entry.status,
             entry.key, entry.ms, entry.bytes_in, entry.bytes_out, entry.reason,
             extra={"proxy": asdict(entry)})
    fields = {k: (f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in asdict(entry).items()
              if k != "advoware_calls"}
    pipe = client.pipeline(transaction=False)
    pipe.xadd(STREAM, fields, maxlen=maxlen, approximate=True)
    metrics.record_proxy_answer(pipe, entry.key, entry.status)
    if entry.advoware_calls:
        pipe.hincrby(metrics.API_CALLS_KEY, "advoware", entry.advoware_calls)
    try:
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("proxy: audit entry not stored (%s)", type(exc).__name__)


def parse_since(text: str, now: float | None = None) -> float:
    """Epoch seconds from `30m`, `2h`, `7d`, `90s`, or an ISO-8601 date/time (UTC unless it says otherwise)."""
    now = time.time() if now is None else now
    match = _RELATIVE.match(text.strip().lower())
    if match:
        return now - int(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {text!r}: expected e.g. 30m, 2h, 7d or an ISO date/time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def read(client: redis.Redis, *, key: str | None = None, since: float | None = None,
         limit: int = 10_000) -> list[AuditEntry]:
    """The stored entries, oldest first, of one key name (or all) since a time (or all kept)."""
    start = f"{int(since * 1000)}-0" if since is not None else "-"
    out = []
    for _, raw in client.xrange(STREAM, min=start, max="+", count=limit if key is None else None):
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        if key is not None and fields.get("key") != key.strip().lower():
            continue
        out.append(AuditEntry(at=float(fields["at"]), key_id=fields["key_id"], key=fields["key"],
                              method=fields["method"], path=fields["path"], status=int(fields["status"]),
                              ms=float(fields["ms"]), bytes_in=int(fields["bytes_in"]),
                              bytes_out=int(fields["bytes_out"]), reason=fields["reason"]))
    return out[-limit:]
