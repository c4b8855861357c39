"""The failure register (Redis DB 1): which entity of which domain failed last, why, and whether for good.

`outcomes.run_entity_task` writes an entry when a task fails for good (no
Celery retry follows) and removes it when the entity's next sync succeeds; a
domain marks an entry permanent (Beteiligte: `permanently_failed`). The status
page lists the entries, `/metrics` counts them (`bitbylaw_failed_entities`,
`bitbylaw_permanently_failed_entities`). Never fails a sync.
"""
from __future__ import annotations

import json
import time

import redis

KEY = "ops:failures"        # hash: "domain|entity id" -> {"reason", "at", "permanent"}
MAX_REASON = 500


def _field(domain: str, entity_id: str) -> str:
    return f"{domain}|{entity_id}"


def record(client: redis.Redis, domain: str, entity_id: str, reason: str, now: float | None = None) -> None:
    """The entity's latest failure (a permanent mark already set stays)."""
    try:
        old = client.hget(KEY, _field(domain, entity_id))
        permanent = bool(old and json.loads(old).get("permanent"))
        entry = {"reason": reason[:MAX_REASON], "at": time.time() if now is None else now, "permanent": permanent}
        client.hset(KEY, _field(domain, entity_id), json.dumps(entry))
    except (redis.RedisError, ValueError):
        pass


def mark_permanent(client: redis.Redis, domain: str, entity_id: str, reason: str = "",
                   now: float | None = None) -> None:
    """The domain paused the entity until a person or the auto-reset acts."""
    try:
        old = client.hget(KEY, _field(domain, entity_id))
        entry = json.loads(old) if old else {"reason": reason[:MAX_REASON], "at": time.time() if now is None else now}
        entry["permanent"] = True
        client.hset(KEY, _field(domain, entity_id), json.dumps(entry))
    except (redis.RedisError, ValueError):
        pass


def clear(client: redis.Redis, domain: str, entity_id: str) -> None:
    """The entity synced: no longer failed."""
    try:
        client.hdel(KEY, _field(domain, entity_id))
    except redis.RedisError:
        pass


def entries(client: redis.Redis) -> list[dict]:
    """Every entry, newest first: domain, entity_id, reason, at (epoch), permanent."""
    out = []
    for field, raw in client.hgetall(KEY).items():
        domain, _, entity_id = field.decode().partition("|")
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        out.append({"domain": domain, "entity_id": entity_id, "reason": entry.get("reason", ""),
                    "at": float(entry.get("at") or 0), "permanent": bool(entry.get("permanent"))})
    return sorted(out, key=lambda e: -e["at"])


def counts(items: list[dict]) -> dict[str, tuple[int, int]]:
    """Per domain: (failed, of which permanently failed)."""
    out: dict[str, tuple[int, int]] = {}
    for e in items:
        failed, permanent = out.get(e["domain"], (0, 0))
        out[e["domain"]] = (failed + 1, permanent + e["permanent"])
    return out
