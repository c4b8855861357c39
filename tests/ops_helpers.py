"""Helpers for the operator tests (status page, Prometheus, Flower screenshots): Debian binaries, seeded data."""
from __future__ import annotations

import shutil
import time

import pytest
import redis

from bitbylaw_tasks import metrics
from bitbylaw_tasks.beteiligte import store as beteiligte_store
from bitbylaw_tasks.metrics import record_sync
from bitbylaw_tasks.ops import failures, heartbeat, manual

INSTALL = {
    "promtool": "apt-get install -y prometheus",
    "prometheus": "apt-get install -y prometheus",
    "chromium": "apt-get install -y chromium",
}


def binary(name: str) -> str:
    """The path of a Debian binary the operator tests need; fails loudly (never skips) when it is missing:
    CI installs it (.ci/run)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: install it with `{INSTALL[name]}` (.ci/run does this in CI)",
                    pytrace=False)
    return path


# What `seed` writes, for the assertions.
SEEDED_OK = {"beteiligte": 7, "calendar": 3}
SEEDED_FAILED = {"beteiligte": 2, "calendar": 1}
OLDER_HOURS = ((3, 12, 1), (9, 20, 4), (20, 5, 0))  # (hours ago, beteiligte ok, beteiligte failed)
FAILED_ID = "6a1f00000000000000000fa1"
FAILED_REASON = "beteiligte 6a1f00000000000000000fa1: sync failed: BadRequest: Advoware answered 400"


def seed(client: redis.Redis, now: float | None = None) -> None:
    """Syncs over the last hours, one permanently failed Beteiligter, one failed calendar, a manual action,
    fresh heartbeats and the rolling check's memory."""
    now = time.time() if now is None else now
    for domain, n in SEEDED_OK.items():
        for _ in range(n):
            record_sync(client, domain, "update", "ok", 0.12)
    for domain, n in SEEDED_FAILED.items():
        for _ in range(n):
            record_sync(client, domain, "update", "failed", 0.4)
    # older hours for the chart
    for hours_ago, ok, failed in OLDER_HOURS:
        key = f"metrics:hourly:{int((now - hours_ago * 3600) // 3600)}"
        client.hset(key, mapping={"beteiligte|ok": ok, "beteiligte|failed": failed})
    failures.record(client, "beteiligte", FAILED_ID, FAILED_REASON, now - 600)
    failures.mark_permanent(client, "beteiligte", FAILED_ID)
    failures.record(client, "calendar", "AB", "calendar AB: advoware_empty: a side reports no appointments",
                    now - 60)
    metrics.record_proxy_answer(client, "assistant", 502)
    metrics.record_inbound(client, "call", "unauthorized")
    manual.add(client, "adressen", "6a1f00000000000000000ad1", "address_conflict",
               "Two addresses claim the same EspoCRM-ID; choose one in Advoware", now - 7200)
    for component in heartbeat.COMPONENTS:
        heartbeat.record(client, component, now - 20)
    client.zadd(beteiligte_store.CHECKED_KEY, {"6a1f0000000000000000c001": now - 5400, "6a1f0000000000000000c002": now - 30})
    metrics.record_check_ages(client, "beteiligte", 2, {"0.5": 30.0, "0.99": 5400.0, "1": 5400.0})  # the checker's gauge
