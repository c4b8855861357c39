"""Pending manual actions (Redis DB 1): decisions the syncs leave to a person, until resolved.

The interface for every domain that stops and asks (the Adressen sync, an
uncertain Beteiligte create…): `add` when a person must act, `resolve` once
they did. The status page lists `pending`, `/metrics` counts them
(`bitbylaw_manual_actions_pending`). Pair `add` with
`notify.Notifier.manual_action` so the person also hears of it. Storage: the
hash `ops:manual_actions`, field `"{domain}|{entity id}|{kind}"`, value JSON
`{"detail", "since"}` (docs/operators.md).
"""
from __future__ import annotations

import json
import time

import redis

KEY = "ops:manual_actions"


def _field(domain: str, entity_id: str, kind: str) -> str:
    return f"{domain}|{entity_id}|{kind}"


def add(client: redis.Redis, domain: str, entity_id: str, kind: str, detail: str, now: float | None = None) -> bool:
    """A person must act (`kind`: a short code such as `address_conflict`; `detail`: what and how, no secrets).
    Adding an action already pending keeps its first `since`. True when it was not pending before (tell the
    person then, not at every retry that meets it again)."""
    field = _field(domain, entity_id, kind)
    old = client.hget(KEY, field)
    since = json.loads(old)["since"] if old else (time.time() if now is None else now)
    client.hset(KEY, field, json.dumps({"detail": detail, "since": since}))
    return old is None


def resolve(client: redis.Redis, domain: str, entity_id: str, kind: str) -> bool:
    """The action is done; True when it was pending."""
    return bool(client.hdel(KEY, _field(domain, entity_id, kind)))


def pending(client: redis.Redis) -> list[dict]:
    """Every pending action, oldest first: domain, entity_id, kind, detail, since (epoch)."""
    out = []
    for field, raw in client.hgetall(KEY).items():
        domain, entity_id, kind = (field.decode().split("|", 2) + ["", ""])[:3]
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        out.append({"domain": domain, "entity_id": entity_id, "kind": kind, "detail": value.get("detail", ""),
                    "since": float(value.get("since") or 0)})
    return sorted(out, key=lambda a: a["since"])


def count(client: redis.Redis) -> int:
    return int(client.hlen(KEY))
