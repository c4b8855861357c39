"""What the inbound channels keep in Redis (DB 1): submissions by id, idempotency claims, per-address limits.

Task arguments carry only an id (Flower shows them): the validated
submission or call report itself waits here, as JSON, until its task read it
(and a while longer, so a retried task still finds it). Claims make intake
idempotent: the first request with a key stores its id, later ones find it.
"""
from __future__ import annotations

import json
import logging
import uuid

import redis

log = logging.getLogger(__name__)
PAYLOAD_TTL = 7 * 86400  # a task retried for days still finds its input; personal data does not stay forever


def payload_key(kind: str, item_id: str) -> str:
    return f"inbound:{kind}:{item_id}"


def claim_key(kind: str, key: str) -> str:
    return f"inbound:{kind}:claim:{key}"


def new_id() -> str:
    return uuid.uuid4().hex


def claim(client: redis.Redis, kind: str, key: str, item_id: str, ttl: int) -> str | None:
    """Claim `key` for `item_id`; None when claimed now, else the id that claimed it first."""
    if client.set(claim_key(kind, key), item_id, nx=True, ex=max(1, ttl)):
        return None
    existing = client.get(claim_key(kind, key))
    return existing.decode() if existing else None


def release(client: redis.Redis, kind: str, key: str, item_id: str) -> None:
    """Give a claim back (the work was not queued after all), unless someone else holds it by now."""
    name = claim_key(kind, key)
    if client.get(name) == item_id.encode():
        client.delete(name)


def save(client: redis.Redis, kind: str, item_id: str, data: dict, ttl: int = PAYLOAD_TTL) -> None:
    client.set(payload_key(kind, item_id), json.dumps(data), ex=ttl)


def load(client: redis.Redis, kind: str, item_id: str) -> dict | None:
    raw = client.get(payload_key(kind, item_id))
    return json.loads(raw) if raw else None


def pending(client: redis.Redis, kind: str, item_id: str) -> tuple[str | None, dict]:
    """What a task finds for `item_id`: (None, data) when work remains, ("already_done", data), or
    ("expired", {}) when the input is gone (its TTL passed, or an unknown id)."""
    data = load(client, kind, item_id)
    if data is None:
        log.warning("%s %s: input expired or unknown; nothing done", kind, item_id)
        return "expired", {}
    return ("already_done" if data.get("done") else None), data


def remember(client: redis.Redis, kind: str, item_id: str, **fields) -> dict:
    """Merge `fields` into a stored payload (what a task achieved, so a re-run does not repeat it)."""
    data = load(client, kind, item_id) or {}
    data.update(fields)
    ttl = client.ttl(payload_key(kind, item_id))
    save(client, kind, item_id, data, ttl if ttl and ttl > 0 else PAYLOAD_TTL)
    return data


class AddressLimiter:
    """A per-address request budget shared by all web processes (`limits`, fixed window, in Redis)."""

    def __init__(self, redis_url: str, name: str, rate: str):
        from limits import parse
        from limits.storage import RedisStorage
        from limits.strategies import FixedWindowRateLimiter

        self._limiter = FixedWindowRateLimiter(RedisStorage(redis_url))
        self._item = parse(rate)
        self._name = name

    def hit(self, address: str) -> bool:
        """Count one request from `address`; False when its budget is spent."""
        return self._limiter.hit(self._item, "inbound", self._name, address)

    def retry_after(self, address: str) -> int:
        """Seconds until `address` has budget again."""
        import time

        stats = self._limiter.get_window_stats(self._item, "inbound", self._name, address)
        return max(1, int(stats.reset_time - time.time()) + 1)
