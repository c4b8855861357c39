"""The write-back journal: what a sync PUT to Advoware and owes EspoCRM, until EspoCRM has it (issue 18 A).

A sync that PUTs to Advoware has decided three things: the merged values, what
EspoCRM held when it decided, and which Advoware values it overrode (the stream
note). If the EspoCRM write-back then fails (a 500, a lost answer, a 409 because a
user edited meanwhile), the retry sees Advoware already holding EspoCRM's values:
without a record of the decision it would find no conflict and post no note, or
take the sync's own PUT value for an Advoware edit. So, like the create journal,
the decision is kept in Redis DB 1 (`advoware_put:{espo id}`):

- `putting` is written before the PUT (the overrides, the merged values, EspoCRM's
  canonical form at the decision);
- the PUT's answer adds Advoware's new rowId;
- the entry is deleted once the EspoCRM write-back and the note landed.

`compare.resume_from()` decides, purely, what a later sync makes of an entry.
Values are personal data: never logged.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass

import redis

from .compare import Override

KEY = "advoware_put:{}"
TTL = 30 * 24 * 3600  # far longer than any retry schedule; gone once the write-back landed


@dataclass(frozen=True)
class PendingPut:
    espocrm: dict                  # canonical form of EspoCRM when the sync decided
    merged: dict                   # canonical form of what the PUT carried
    overrides: tuple[Override, ...]  # Advoware values the decision overrode (the note owed)
    row_id: str | None = None      # Advoware's rowId after the PUT; None while its answer is unknown
    at: float = 0.0


class PutJournal:
    def __init__(self, client: redis.Redis, entity_id: str):
        self._redis = client
        self._key = KEY.format(entity_id)

    def get(self) -> PendingPut | None:
        raw = self._redis.get(self._key)
        if not raw:
            return None
        data = json.loads(raw)
        overrides = tuple(Override(**o) for o in data["overrides"])
        return PendingPut(data["espocrm"], data["merged"], overrides, data.get("row_id"), data["at"])

    def putting(self, espocrm: dict, merged: dict, overrides) -> PendingPut:
        """Before the PUT: the decision, without Advoware's answer yet."""
        return self._write(PendingPut(dict(espocrm), dict(merged), tuple(overrides), None, time.time()))

    def put(self, pending: PendingPut, row_id: str | None) -> None:
        """Advoware answered the PUT with `row_id`."""
        self._write(dataclasses.replace(pending, row_id=row_id))

    def clear(self) -> None:
        self._redis.delete(self._key)

    def _write(self, pending: PendingPut) -> PendingPut:
        data = {**dataclasses.asdict(pending), "overrides": [dataclasses.asdict(o) for o in pending.overrides]}
        self._redis.set(self._key, json.dumps(data), ex=TTL)
        return pending
