"""The Beteiligte sweep (SPEC §4.1): find every record that needs a sync, plus a rolling check of clean ones.

One EspoCRM query (an `or` of the five selection rules) paged through with
keyset paging, no cap; `status.is_due` re-checks each hit (pure); due
`permanently_failed` records are reset first; everything is enqueued through
the same coalescing as the webhooks. The rolling check of clean entities
(Advoware-only changes) is the freshness checker's (`freshness.py`), which
runs far more often and spends what the Advoware budget leaves; the sweep
reports the oldest check's age.
"""
from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis

from bitbylaw_tasks.beteiligte import status, store
from bitbylaw_tasks.beteiligte.mapping import format_espo_datetime
from bitbylaw_tasks import messages
from bitbylaw_tasks.enqueue import Enqueuer
from bitbylaw_tasks.locks import is_locked
from integrations.espocrm import EspoCrmClient, W

SELECT = ["id", "syncStatus", "syncNextRetry", "syncAutoResetAt", "advowareLastSync", "betnr", "modifiedAt"]
ENQUEUE_CHUNK = 500
RESET_PARALLELISM = 8
LOCK_KIND = "cbeteiligte"


@dataclass
class SweepResult:
    by_rule: dict[str, int] = field(default_factory=lambda: collections.Counter())
    queued: int = 0
    coalesced: int = 0
    reset: int = 0
    scanned: int = 0
    oldest_check_age_s: float | None = None

    def as_dict(self) -> dict:
        return {"by_rule": dict(self.by_rule), "queued": self.queued,
                "coalesced": self.coalesced, "reset": self.reset, "scanned": self.scanned,
                "oldest_check_age_s": self.oldest_check_age_s}


def selection(now: datetime, lock_ttl: timedelta = status.LOCK_TTL,
              check_after: timedelta = status.CLEAN_CHECK_AFTER) -> dict:
    """The EspoCRM `where` for SPEC §4.1's five rules (re-checked per record by `status.is_due`)."""
    stamp = format_espo_datetime(now)
    return W.or_(
        W.in_("syncStatus", [status.PENDING_SYNC, status.DIRTY]),
        W.and_(W.equals("syncStatus", status.FAILED),
               W.or_(W.is_null("syncNextRetry"), W.before("syncNextRetry", stamp))),
        W.and_(W.equals("syncStatus", status.PERMANENTLY_FAILED),
               W.or_(W.is_null("syncAutoResetAt"), W.before("syncAutoResetAt", stamp))),
        W.and_(W.equals("syncStatus", status.CLEAN), W.is_not_null("betnr"),
               W.or_(W.is_null("advowareLastSync"),
                     W.before("advowareLastSync", format_espo_datetime(now - check_after)))),
        W.and_(W.equals("syncStatus", status.SYNCING),
               W.before("modifiedAt", format_espo_datetime(now - lock_ttl))),
    )


def sweep(espocrm: EspoCrmClient, lock_client: redis.Redis, enqueuer: Enqueuer, now: datetime, *,
          lock_ttl: timedelta = status.LOCK_TTL) -> SweepResult:
    result = SweepResult()
    due: dict[str, str] = {}
    for record in espocrm.iter_beteiligte(selection(now, lock_ttl), select=SELECT):
        result.scanned += 1
        alive = record.get("syncStatus") == status.SYNCING and is_locked(lock_client, LOCK_KIND, record["id"])
        rule = status.is_due(record, now, lock_alive=alive, lock_ttl=lock_ttl)
        if rule is None:
            continue
        due[record["id"]] = rule
        result.by_rule[rule] += 1
    resets = [i for i, rule in due.items() if rule == status.RULE_AUTO_RESET]
    if resets:  # the reset must land before the sync runs; in parallel, as EspoCRM answers slowly
        with ThreadPoolExecutor(max_workers=RESET_PARALLELISM) as pool:
            list(pool.map(lambda i: espocrm.update_beteiligte(i, status.auto_reset(now)), resets))
        result.reset = len(resets)
    oldest = store.oldest_check(lock_client)
    if oldest is not None:
        result.oldest_check_age_s = round(now.timestamp() - oldest, 1)
    ids = list(due)
    for start in range(0, len(ids), ENQUEUE_CHUNK):
        chunk = ids[start:start + ENQUEUE_CHUNK]
        flags = enqueuer.enqueue([messages.beteiligte_sync(i, "check", "sweep") for i in chunk])
        result.queued += sum(flags)
        result.coalesced += len(flags) - sum(flags)
    return result
