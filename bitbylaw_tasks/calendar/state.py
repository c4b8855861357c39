"""The calendar status store in Redis (DB 2): per employee the calendar and sync token, per frNr the pair.

Keys (one employee = one `kuerzel`):
- `calendar:{kuerzel}:meta` (hash): `calendar_id`, `sync_token`, `full_at`
  (epoch of the last full listing), `synced_at`, `subject` (the employee's
  e-mail for Google's delegation, written by `sync_all`);
- `calendar:{kuerzel}:items` (hash): frNr -> JSON of `reconcile.Item`
  (event id, art, first/last day, Advoware rowId + hash, Google etag + hash);
- `calendar:{kuerzel}:pending` (hash): event id -> epoch, the journal of
  Termin POSTs for Google-made events whose answer was not recorded yet;
- `calendar:{kuerzel}:rejected` (hash): frNr -> why the last sync skipped it
  (a Termin it cannot read, or a write refused as invalid), for the operator.

Items are written one by one right after each write to either side, so a sync
that dies half-way leaves a state that is true for every finished action.
Everything here can be lost: the next sync finds the calendar again by its
description marker and rebuilds the items from the events' frNr stamps.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from bitbylaw_tasks.calendar.reconcile import Item

PREFIX = "calendar"
PENDING_TTL = 7 * 24 * 3600

# Store the sync token only if the meta still names the calendar the sync worked on: if the state was lost
# (flushed) during the sync, the items are incomplete and the next sync must be a full rebuild, not incremental.
_FINISH = """
if redis.call('HGET', KEYS[1], 'calendar_id') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'sync_token')
else redis.call('HSET', KEYS[1], 'sync_token', ARGV[2]) end
redis.call('HSET', KEYS[1], 'synced_at', ARGV[3])
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'full_at', ARGV[3]) end
return 1
"""


@dataclass(frozen=True)
class Meta:
    calendar_id: str | None = None
    sync_token: str | None = None
    full_at: float | None = None
    synced_at: float | None = None
    subject: str | None = None


def _text(value) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class CalendarState:
    """The status of one employee's calendar sync."""

    def __init__(self, client: redis.Redis, kuerzel: str):
        self.redis = client
        self.kuerzel = kuerzel
        self.meta_key = f"{PREFIX}:{kuerzel}:meta"
        self.items_key = f"{PREFIX}:{kuerzel}:items"
        self.pending_key = f"{PREFIX}:{kuerzel}:pending"
        self.rejected_key = f"{PREFIX}:{kuerzel}:rejected"

    # --- meta ---
    def meta(self) -> Meta:
        return self._meta(self.redis.hgetall(self.meta_key))

    @staticmethod
    def _meta(raw_hash: dict) -> Meta:
        raw = {_text(k): _text(v) for k, v in raw_hash.items()}
        return Meta(calendar_id=raw.get("calendar_id") or None, sync_token=raw.get("sync_token") or None,
                    full_at=float(raw["full_at"]) if raw.get("full_at") else None,
                    synced_at=float(raw["synced_at"]) if raw.get("synced_at") else None,
                    subject=raw.get("subject") or None)

    def set_calendar(self, calendar_id: str) -> None:
        """A (new) calendar: its sync token and items belong to the old one and are dropped."""
        pipe = self.redis.pipeline()
        pipe.delete(self.items_key, self.pending_key)
        pipe.hdel(self.meta_key, "sync_token", "full_at")
        pipe.hset(self.meta_key, "calendar_id", calendar_id)
        pipe.execute()

    def set_subject(self, email: str | None) -> None:
        if email:
            self.redis.hset(self.meta_key, "subject", email)

    def drop_sync_token(self) -> None:
        self.redis.hdel(self.meta_key, "sync_token")

    def finish(self, calendar_id: str, sync_token: str | None, *, full: bool, now: float | None = None) -> bool:
        """After a completed sync: the token for the next incremental listing. False (and nothing stored) when
        the state was lost meanwhile: then the next sync rebuilds it from a full listing."""
        now = time.time() if now is None else now
        script = self.redis.register_script(_FINISH)
        return bool(script(keys=[self.meta_key], args=[calendar_id, sync_token or "", repr(now), "1" if full else "0"]))

    def snapshot(self) -> tuple[Meta, dict[int, Item], frozenset[str]]:
        """Meta, items and pending journal read together (one MULTI), so the token matches the items."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(self.meta_key).hgetall(self.items_key).hkeys(self.pending_key)
        meta_raw, items_raw, pending_raw = pipe.execute()
        return (self._meta(meta_raw), self._items(items_raw), frozenset(_text(k) for k in pending_raw))

    # --- items ---
    def items(self) -> dict[int, Item]:
        return self._items(self.redis.hgetall(self.items_key))

    @staticmethod
    def _items(raw: dict) -> dict[int, Item]:
        return {int(_text(k)): Item(**json.loads(v)) for k, v in raw.items()}

    def put(self, frnr: int, item: Item) -> None:
        self.redis.hset(self.items_key, str(int(frnr)), json.dumps(vars(item), separators=(",", ":")))

    def forget(self, frnr: int) -> None:
        self.redis.hdel(self.items_key, str(int(frnr)))

    # --- the Termin-POST journal ---
    def pending(self) -> frozenset[str]:
        return frozenset(_text(k) for k in self.redis.hkeys(self.pending_key))

    def begin_create(self, event_id: str) -> None:
        pipe = self.redis.pipeline()
        pipe.hset(self.pending_key, event_id, time.time()).expire(self.pending_key, PENDING_TTL)
        pipe.execute()

    def end_create(self, *event_ids: str) -> None:
        if event_ids:
            self.redis.hdel(self.pending_key, *event_ids)

    # --- what the last sync skipped ---
    def set_rejected(self, rejected: dict[str, str]) -> None:
        pipe = self.redis.pipeline()
        pipe.delete(self.rejected_key)
        if rejected:
            pipe.hset(self.rejected_key, mapping=rejected)
        pipe.execute()

    def rejected(self) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in self.redis.hgetall(self.rejected_key).items()}

    # --- operators ---
    def clear(self) -> int:
        return int(self.redis.delete(self.meta_key, self.items_key, self.pending_key, self.rejected_key))

    def summary(self) -> dict:
        meta = self.meta()
        return {"kuerzel": self.kuerzel, "calendar": bool(meta.calendar_id), "sync_token": bool(meta.sync_token),
                "items": int(self.redis.hlen(self.items_key)), "pending": int(self.redis.hlen(self.pending_key)),
                "rejected": self.rejected(),
                "full_at": meta.full_at, "synced_at": meta.synced_at}


def known_employees(client: redis.Redis) -> list[str]:
    """Every kuerzel with calendar state."""
    out = set()
    for key in client.scan_iter(match=f"{PREFIX}:*:meta", count=500):
        out.add(_text(key).split(":")[1])
    return sorted(out)
