"""Heartbeat timestamps in Redis (DB 1): who last ran when, and whether that is recent enough."""
from __future__ import annotations

import time

import redis

import celeryconfig

KEY = "heartbeat"
#: Every queue but `default` has its own workers, which answer `{queue}.heartbeat` (ops/tasks.py); derived
#: from the configured queues, so a new domain's queue is watched from its first commit.
DOMAIN_QUEUES = tuple(queue for queue in celeryconfig.QUEUES if queue != "default")
COMPONENTS = ("beat", "worker:default", *(f"worker:{queue}" for queue in DOMAIN_QUEUES))


def record(client: redis.Redis, component: str, now: float | None = None) -> None:
    client.hset(KEY, component, f"{time.time() if now is None else now:.3f}")


def report(client: redis.Redis, stale_after: float, now: float | None = None) -> dict[str, dict]:
    """Per component: last seen (epoch seconds or None), age, and ok (seen within `stale_after`)."""
    now = time.time() if now is None else now
    raw = client.hgetall(KEY)
    out = {}
    for component in COMPONENTS:
        value = raw.get(component.encode())
        last = float(value) if value else None
        age = None if last is None else round(now - last, 1)
        out[component] = {"last_seen": last, "age_s": age, "ok": age is not None and age <= stale_after}
    return out
