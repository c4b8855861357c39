"""Every Redis key of the Beteiligte domain (DB 1), and the only code that reads or writes them.

| key | type | what |
|---|---|---|
| `advoware_create:{espo id}` | JSON string | the create journal's entry (`journal.py`) |
| `advoware_put:{espo id}` | JSON string | the write-back journal's entry (`put_journal.py`) |
| `beteiligte:checked` | sorted set | entity id -> epoch of its last completed sync/check (freshness) |
| `beteiligte:retry_due` | sorted set | entity id -> epoch its back-off ends (drained by beat) |
| `beteiligte:deleted_in_espocrm` | hash | entity id -> when EspoCRM deleted it (for operators) |
| `beteiligte:freshness:picked` | sorted set | entity id -> epoch the freshness checker queued its check (a lease) |

The entity locks (`sync_lock:cbeteiligte:{id}`), "sync again" marks and
coalescing keys belong to the base layer (`locks`, `exclusive`, `enqueue`).
Kommunikation's keys are its own.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from datetime import datetime

import redis

from bitbylaw_tasks.beteiligte.compare import Override
from bitbylaw_tasks.beteiligte.journal import CLEARED, CREATED, POSTING, JournalEntry
from bitbylaw_tasks.beteiligte.put_journal import PendingPut

CREATE_KEY = "advoware_create:{}"
PUT_KEY = "advoware_put:{}"
CHECKED_KEY = "beteiligte:checked"
RETRY_SCHEDULE_KEY = "beteiligte:retry_due"
ESPOCRM_DELETIONS_KEY = "beteiligte:deleted_in_espocrm"
PICKED_KEY = "beteiligte:freshness:picked"
JOURNAL_TTL = 30 * 24 * 3600  # far longer than any retry schedule; gone once the write-back landed


class JsonSlot:
    """One JSON document per entity under `key_format`, kept `JOURNAL_TTL` seconds: the storage of the
    create journal and the write-back journal."""

    key_format = ""

    def __init__(self, client: redis.Redis, entity_id: str):
        self._redis = client
        self._key = self.key_format.format(entity_id)

    def get(self):
        """The stored entry (`_decode`d), or None when there is none."""
        raw = self._redis.get(self._key)
        return self._decode(json.loads(raw)) if raw else None

    def _decode(self, data: dict):
        raise NotImplementedError

    def _store(self, data: dict, fence=None) -> None:
        """SET the document; through `fence(key, value, ex)` instead when given (a lock step that carries
        the write in its round trip: `locks.EntityLock.extend_then_set` / `set_then_extend`)."""
        if fence is None:
            self._redis.set(self._key, json.dumps(data), ex=JOURNAL_TTL)
        else:
            fence(self._key, json.dumps(data), JOURNAL_TTL)

    def clear(self) -> None:
        self._redis.delete(self._key)


class CreateJournal(JsonSlot):
    """The stored entry of the create journal; which write comes when is `journal.step`'s to say."""

    key_format = CREATE_KEY

    def _decode(self, data: dict) -> JournalEntry:
        return JournalEntry(data["state"], data["at"], data.get("betnr"), data.get("row_id"), data.get("snapshot"))

    def begin(self) -> None:
        self._write(JournalEntry(POSTING, time.time()))

    def created(self, betnr: int, row_id: str | None, snapshot: dict | None = None) -> None:
        self._write(JournalEntry(CREATED, time.time(), betnr, row_id, snapshot))

    def cleared(self) -> None:
        """An operator confirmed that no Advoware record was created: a new POST is allowed."""
        self._write(JournalEntry(CLEARED, time.time()))

    def server_id(self) -> str:
        """This Redis server's run id (new after every restart): anchors an intent to this journal."""
        return str(self._redis.info("server")["run_id"])

    def _write(self, entry: JournalEntry) -> None:
        self._store(vars(entry))


class PutJournal(JsonSlot):
    """The stored entry of the write-back journal (`put_journal.py`)."""

    key_format = PUT_KEY

    def _decode(self, data: dict) -> PendingPut:
        overrides = tuple(Override(**o) for o in data["overrides"])
        return PendingPut(data["espocrm"], data["merged"], overrides, data.get("row_id"), data["at"])

    def putting(self, espocrm: dict, merged: dict, overrides, fence=None) -> PendingPut:
        """Before the PUT: the decision, without Advoware's answer yet (written through `fence` if given)."""
        return self._write(PendingPut(dict(espocrm), dict(merged), tuple(overrides), None, time.time()), fence)

    def put(self, pending: PendingPut, row_id: str | None, fence=None) -> None:
        """Advoware answered the PUT with `row_id` (written through `fence` if given)."""
        self._write(dataclasses.replace(pending, row_id=row_id), fence)

    def _write(self, pending: PendingPut, fence=None) -> PendingPut:
        self._store({**dataclasses.asdict(pending), "overrides": [dataclasses.asdict(o) for o in pending.overrides]},
                    fence)
        return pending


# --- the check times (freshness) ---
def record_checked(client: redis.Redis, entity_id: str, now: datetime) -> None:
    """The entity's sync or check completed at `now` (a pick of the freshness checker is done with)."""
    pipe = client.pipeline(transaction=False)
    queue_checked(pipe, entity_id, now)
    pipe.execute()


def queue_checked(pipe, entity_id: str, now: datetime) -> None:
    """`record_checked`'s writes, added to a pipeline the caller executes (the sync task's bookkeeping)."""
    pipe.zadd(CHECKED_KEY, {entity_id: now.timestamp()}).zrem(PICKED_KEY, entity_id)


def forget_checked(client: redis.Redis, entity_id: str) -> None:
    client.zrem(CHECKED_KEY, entity_id)


def oldest_check(client: redis.Redis) -> float | None:
    oldest = client.zrange(CHECKED_KEY, 0, 0, withscores=True)
    return oldest[0][1] if oldest else None


def pick_unchecked(client: redis.Redis, count: int, now: float, lease: float) -> list[str]:
    """Up to `count` of the longest-unchecked entities that no earlier pick still holds (picked less than
    `lease` seconds ago and not checked since: `record_checked` ends a pick), recorded as picked at `now`."""
    if count <= 0:
        return []
    pipe = client.pipeline(transaction=False)
    pipe.zremrangebyscore(PICKED_KEY, "-inf", now - lease)
    pipe.zrange(PICKED_KEY, 0, -1)
    held = set(pipe.execute()[1])
    candidates = client.zrange(CHECKED_KEY, 0, count + len(held) - 1)
    picked = [member.decode() for member in candidates if member not in held][:count]
    if picked:
        client.zadd(PICKED_KEY, {entity_id: now for entity_id in picked})
    return picked


def check_ages(client: redis.Redis, now: float, quantiles: tuple[float, ...]) -> tuple[int, dict[float, float]]:
    """(entities tracked, {q: the check age, in seconds, that a share q of them does not exceed}); q = 1 is
    the oldest check. Two round trips whatever the number of entities (ranks in the sorted set)."""
    total = int(client.zcard(CHECKED_KEY))
    if total == 0:
        return 0, {}
    pipe = client.pipeline(transaction=False)
    for q in quantiles:  # the zset is ordered by check time: rank 0 is the oldest check
        rank = total - max(1, math.ceil(q * total))
        pipe.zrange(CHECKED_KEY, rank, rank, withscores=True)
    return total, {q: max(0.0, now - hit[0][1]) for q, hit in zip(quantiles, pipe.execute())}


# --- the retry schedule ---
def schedule_retry(client: redis.Redis, entity_id: str, at: datetime) -> None:
    client.zadd(RETRY_SCHEDULE_KEY, {entity_id: at.timestamp()})


def due_retries(client: redis.Redis, now: datetime, limit: int = 500) -> list[str]:
    """Entity ids whose retry time has come (left in the set until `drop_retries`)."""
    return [m.decode() for m in client.zrangebyscore(RETRY_SCHEDULE_KEY, "-inf", now.timestamp(), 0, limit)]


def drop_retries(client: redis.Redis, entity_ids: list[str]) -> None:
    if entity_ids:
        client.zrem(RETRY_SCHEDULE_KEY, *entity_ids)


# --- deletions in EspoCRM (SPEC §4.5) ---
def record_deletion(client: redis.Redis, entity_id: str, when: str) -> None:
    client.hset(ESPOCRM_DELETIONS_KEY, entity_id, when)


def deletions(client: redis.Redis) -> list[tuple[str, str]]:
    """(entity id, when) of every recorded EspoCRM deletion, by id."""
    return sorted((k.decode(), v.decode()) for k, v in client.hgetall(ESPOCRM_DELETIONS_KEY).items())
