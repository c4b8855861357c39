"""The create journal: what the product knows about an Advoware POST it made for an EspoCRM record.

Advoware has no idempotency key and no search by an external id, so a POST
whose outcome got lost must never simply be repeated. Before POSTing, the
sync writes `posting`; as soon as Advoware answers it writes `created` with
the new betNr/rowId (one Redis write, before the slower EspoCRM write-back).
The next sync of the record then:
- `created` -> adopts that betNr instead of POSTing again (worker died, or the
  EspoCRM write-back failed), with the canonical form of what was POSTed as the
  snapshot: an EspoCRM edit made meanwhile then counts as an EspoCRM change;
- `posting` -> the POST may or may not have created a record: stop and ask an
  operator (`bitbylaw beteiligte resolve-create`), never POST a second time;
- `cleared` -> an operator confirmed that nothing was created: POST again.
Because Redis may lose data, the journal is anchored in EspoCRM too: before a
create the sync writes an intent naming this Redis server's `run_id` (which
changes at every restart). An intent from another `run_id` with no journal
entry means the journal was lost mid-create: ask an operator, never guess.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

KEY = "advoware_create:{}"
TTL = 30 * 24 * 3600  # far longer than any retry schedule; gone once the write-back landed

POSTING, CREATED, CLEARED = "posting", "created", "cleared"


@dataclass(frozen=True)
class JournalEntry:
    state: str
    at: float
    betnr: int | None = None
    row_id: str | None = None
    snapshot: dict | None = None  # canonical form of the POSTed record (None: adopted by an operator)


class JsonSlot:
    """One JSON document per entity in Redis (DB 1) under `key_format`, kept `TTL` seconds: the storage of
    the create journal and the write-back journal (`put_journal.py`)."""

    key_format = ""

    def __init__(self, client: redis.Redis, entity_id: str):
        self._redis = client
        self._key = self.key_format.format(entity_id)

    def _load(self) -> dict | None:
        raw = self._redis.get(self._key)
        return json.loads(raw) if raw else None

    def _store(self, data: dict) -> None:
        self._redis.set(self._key, json.dumps(data), ex=TTL)

    def clear(self) -> None:
        self._redis.delete(self._key)


class CreateJournal(JsonSlot):
    key_format = KEY

    def get(self) -> JournalEntry | None:
        data = self._load()
        if data is None:
            return None
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
