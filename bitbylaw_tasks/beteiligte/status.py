"""The Beteiligte sync status machine (SPEC §4.7) and the sweep's selection rules (SPEC §4.1), pure.

Every function takes `now` (an aware datetime, or naive = UTC) and returns the
EspoCRM fields to write or a decision; nothing here reads a clock or does I/O.
EspoCRM datetimes are 'YYYY-MM-DD HH:MM:SS' UTC strings. No value is ever None:
fields that would need clearing to null (`syncNextRetry`, `syncAutoResetAt`) are
left as they are — they only mean something in `failed` / `permanently_failed`.

Back-off: failure n waits BACKOFF[n-1] (1 min, 5 min, 15 min, 1 h, 4 h). With the
default MAX_FAILURES = 5 the fifth failure already turns the record
`permanently_failed` (auto-reset 24 h later), so the 4 h step is only reached when
an operator raises MAX_FAILURES; see docs/beteiligte-sync.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .mapping import as_utc, format_espo_datetime, normalise, parse_espo_datetime

PENDING_SYNC = "pending_sync"
DIRTY = "dirty"
SYNCING = "syncing"
CLEAN = "clean"
FAILED = "failed"
PERMANENTLY_FAILED = "permanently_failed"
CONFLICT = "conflict"
DELETED_IN_ADVOWARE = "deleted_in_advoware"

BACKOFF: tuple[timedelta, ...] = (
    timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4),
)
MAX_FAILURES = 5
AUTO_RESET_AFTER = timedelta(hours=24)
LOCK_TTL = timedelta(minutes=15)
CLEAN_CHECK_AFTER = timedelta(hours=24)
ERROR_MESSAGE_LIMIT = 2000

# The sweep's selection rules (SPEC §4.1), as returned by `is_due`.
RULE_PENDING = "pending"              # pending_sync or dirty
RULE_FAILED_DUE = "failed_due"        # failed, syncNextRetry passed or empty
RULE_AUTO_RESET = "auto_reset"        # permanently_failed, syncAutoResetAt passed or empty
RULE_CLEAN_STALE = "clean_stale"      # clean with betnr, advowareLastSync older than 24 h or empty
RULE_SYNCING_STALE = "syncing_stale"  # syncing, no live lock, unchanged for longer than the lock TTL


@dataclass(frozen=True)
class FailureOutcome:
    """What one failed sync does to the record: the EspoCRM update and when to try again."""

    update: dict
    retry_count: int
    permanent: bool           # True: now permanently_failed — notify the assigned user
    next_attempt: datetime    # the retry time, or the auto-reset time when permanent


def backoff(failures: int) -> timedelta:
    """The wait after the `failures`-th consecutive failure (1-based); the last step repeats."""
    if failures < 1:
        raise ValueError("failures counts from 1")
    return BACKOFF[min(failures, len(BACKOFF)) - 1]


def truncate_error(message, limit: int = ERROR_MESSAGE_LIMIT) -> str:
    """`message` as text of at most `limit` characters (EspoCRM's syncErrorMessage is ≤ 2000)."""
    text = "" if message is None else str(message)
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def after_failure(record: dict, now: datetime, error, *, max_failures: int = MAX_FAILURES) -> FailureOutcome:
    """The next state after a failed sync: `failed` with back-off, or `permanently_failed` at `max_failures`."""
    count = _int(record.get("syncRetryCount")) + 1
    now = as_utc(now)
    update = {"syncRetryCount": count, "syncErrorMessage": truncate_error(error)}
    if count >= max_failures:
        reset_at = now + AUTO_RESET_AFTER
        update.update(syncStatus=PERMANENTLY_FAILED, syncAutoResetAt=format_espo_datetime(reset_at),
                      syncNextRetry=format_espo_datetime(reset_at))
        return FailureOutcome(update, count, True, reset_at)
    retry_at = now + backoff(count)
    update.update(syncStatus=FAILED, syncNextRetry=format_espo_datetime(retry_at))
    return FailureOutcome(update, count, False, retry_at)


def after_success(now: datetime) -> dict:
    """The status part of every successful sync: clean, counters reset, error cleared ("" not None)."""
    return {
        "syncStatus": CLEAN,
        "advowareLastSync": format_espo_datetime(now),
        "syncRetryCount": 0,
        "syncErrorMessage": "",
    }


# The record's failure bookkeeping is shared by the domains that sync it (Beteiligte, Kommunikation). A
# failure belongs to the domain that recorded it (its message prefix); only that domain's success may
# clear it. Otherwise the Beteiligte sync's success reset `syncRetryCount` to 0 before each failing
# Kommunikation sync set it to 1, and a failing entity retried every minute forever, never
# `permanently_failed`, nobody told (issue "Real EspoCRM", §0).
FAILURE_FIELDS = ("syncStatus", "syncRetryCount", "syncErrorMessage")
DOMAIN = "beteiligte"


def failure_prefix(domain: str) -> str:
    """How a domain's recorded messages start: "" for Beteiligte, "Kommunikation: " for Kommunikation."""
    return "" if domain == DOMAIN else f"{domain.capitalize()}: "


def failure_owner(record: dict, domains: tuple[str, ...] = ("kommunikation",)) -> str | None:
    """The domain whose failure the record shows (`failed`/`permanently_failed`), or None when it shows none."""
    if record.get("syncStatus") not in (FAILED, PERMANENTLY_FAILED):
        return None
    message = record.get("syncErrorMessage") or ""
    return next((d for d in domains if message.startswith(failure_prefix(d))), DOMAIN)


def success_for(record: dict, domain: str, write: dict) -> dict:
    """`write` (a successful sync's EspoCRM write) without the failure fields when the record shows a
    failure another domain recorded: that failure stands until its own domain succeeds."""
    owner = failure_owner(record)
    if owner is None or owner == domain:
        return write
    return {k: v for k, v in write.items() if k not in FAILURE_FIELDS}


def clear_own_failure(record: dict, domain: str, now: datetime) -> dict:
    """The fields that end a failure `domain` recorded, after that domain's sync succeeded ({} if none)."""
    if failure_owner(record) != domain:
        return {}
    return {k: v for k, v in after_success(now).items() if k in FAILURE_FIELDS}


@dataclass(frozen=True)
class Route:
    """What a sync of one record does first (decided by `route`, done by the service)."""

    kind: str                            # backoff | deleted_in_advoware | create | update
    not_before: datetime | None = None   # backoff: when the retry is due
    recreate: bool = False               # create: a manual re-sync of a party deleted in Advoware (SPEC §4.4)


def route(record: dict, source: str, now: datetime) -> Route:
    """Back-off gate (a manual or scheduled retry passes it), deleted in Advoware (only a manual sync
    re-creates it), then create without a betnr, else update/check."""
    not_before = retry_not_before(record, now)
    if not_before is not None and source not in ("manual", "retry"):
        return Route("backoff", not_before=not_before)
    recreate = record.get("syncStatus") == DELETED_IN_ADVOWARE
    if recreate and source != "manual":
        return Route("deleted_in_advoware")
    if recreate or record.get("betnr") in (None, ""):
        return Route("create", recreate=recreate)
    return Route("update")


def last_sync_stale(record: dict, now: datetime, after: timedelta = CLEAN_CHECK_AFTER) -> bool:
    """A clean no-change check still refreshes advowareLastSync once per `after` (the 24 h rule)."""
    last = parse_espo_datetime(record.get("advowareLastSync"))
    return last is None or as_utc(now) - last > after


def auto_reset(now: datetime) -> dict:
    """A `permanently_failed` record whose reset time has come: back to `failed`, due at once."""
    return {"syncStatus": FAILED, "syncRetryCount": 0, "syncNextRetry": format_espo_datetime(now)}


def deleted_in_advoware(now: datetime, message: str) -> dict:
    """SPEC §4.4: Advoware answered 404 for a known betnr. The EspoCRM record stays (soft delete)."""
    return {
        "syncStatus": DELETED_IN_ADVOWARE,
        "advowareDeletedAt": format_espo_datetime(now),
        "syncErrorMessage": truncate_error(message),
    }


def retry_not_before(record: dict, now: datetime) -> datetime | None:
    """SPEC §4.2 step 2: for a `failed` record whose syncNextRetry is still ahead, that time; else None."""
    if normalise(record.get("syncStatus")) != FAILED:
        return None
    retry_at = parse_espo_datetime(record.get("syncNextRetry"))
    if retry_at is not None and retry_at > as_utc(now):
        return retry_at
    return None


def is_due(
    record: dict,
    now: datetime,
    *,
    lock_alive: bool = False,
    lock_ttl: timedelta = LOCK_TTL,
    check_after: timedelta = CLEAN_CHECK_AFTER,
) -> str | None:
    """Which sweep rule (RULE_*) selects `record` at `now`, or None.

    `lock_alive` only matters for `syncing` records: the caller looks up the
    entity lock for those alone. `modifiedAt` dates the `syncing` write.
    """
    now = as_utc(now)
    status = normalise(record.get("syncStatus"))
    if status in (PENDING_SYNC, DIRTY):
        return RULE_PENDING
    if status == FAILED:
        retry_at = parse_espo_datetime(record.get("syncNextRetry"))
        return RULE_FAILED_DUE if retry_at is None or retry_at <= now else None
    if status == PERMANENTLY_FAILED:
        reset_at = parse_espo_datetime(record.get("syncAutoResetAt"))
        return RULE_AUTO_RESET if reset_at is None or reset_at <= now else None
    if status == CLEAN:
        if record.get("betnr") in (None, ""):
            return None
        last = parse_espo_datetime(record.get("advowareLastSync"))
        return RULE_CLEAN_STALE if last is None or now - last > check_after else None
    if status == SYNCING and not lock_alive:
        since = parse_espo_datetime(record.get("modifiedAt"))
        return RULE_SYNCING_STALE if since is None or now - since > lock_ttl else None
    return None


def _int(value) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0
