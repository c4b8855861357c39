"""One Beteiligte sync of one entity (SPEC §4.2–4.5): fetch both sides, let `compare` decide, apply.

Effectful but thin: every decision is made by the pure modules (`mapping`,
`compare`, `status`); this module reads, writes and records. It never imports
Celery: the task (`tasks.py`) holds the lock and maps exceptions to Celery
outcomes. Every write is preceded by a check that our entity lock is still
ours, so a sync that overran its lease writes nothing.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import redis

from bitbylaw_tasks.beteiligte import compare as cmp
from bitbylaw_tasks.beteiligte import journal as create_journal
from bitbylaw_tasks.beteiligte import status, store
from bitbylaw_tasks.beteiligte.journal import Effect, Event
from bitbylaw_tasks.beteiligte.put_journal import resume_from
from bitbylaw_tasks.beteiligte.store import CreateJournal, PutJournal
from bitbylaw_tasks.beteiligte.mapping import (espo_to_advoware, format_espo_datetime, mapped_snapshot,
                                               snapshot_of_advoware)
from bitbylaw_tasks.kommunikation import service as kommunikation
from bitbylaw_tasks import notify
from bitbylaw_tasks.errors import SyncFailed
from bitbylaw_tasks.ops import manual
from bitbylaw_tasks.locks import EntityLock
from integrations.advoware import AdvowareClient
from integrations.espocrm import EspoCrmClient, is_version_conflict
from integrations.errors import ApiError, Conflict, NotFound

log = logging.getLogger(__name__)

MAX_VERSION_ROUNDS = 4  # 409 on the EspoCRM write, or a create that found EspoCRM changed: re-read, re-decide
# Advoware's PUT has no precondition and replaces every field with what the sync's GET saw, so an
# Advoware edit between the GET and the PUT is lost. When the GET was sent longer ago than this, the
# sync GETs again and re-decides if the rowId moved (docs/beteiligte-sync.md, "The GET->PUT window").
RECHECK_AFTER = 1.0
MAX_RECHECKS = 2


class VersionConflict(Exception):
    """EspoCRM answered 409 to our versioned write: a user edited meanwhile."""


@dataclass
class SyncContext:
    espocrm: EspoCrmClient
    advoware: AdvowareClient
    redis: redis.Redis                      # DB 1: journal, retry schedule, metrics
    lock: EntityLock | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    policy: dict = field(default_factory=dict)  # {field group: "espocrm"|"advoware"}
    recheck_after: float = RECHECK_AFTER          # seconds: an older Advoware GET is re-checked before a PUT
    notifier: notify.Notifier | None = None       # None: default policy (notify.of)

    def before_write(self) -> None:
        """Fencing: raises LockLost when our lease expired; extends it otherwise."""
        if self.lock is not None:
            self.lock.extend()


@dataclass(frozen=True)
class SyncOutcome:
    entity_id: str
    path: str                 # create | espocrm_newer | advoware_newer | conflict | no_change | ...
    wrote_espocrm: bool = False
    wrote_advoware: bool = False
    notes: int = 0
    detail: dict = field(default_factory=dict)
    kommunikation_due: bool = False  # the cheap pre-check found work for the Kommunikation sync
    again: bool = False              # the record is left `dirty`: run another round right away


def sync_beteiligte(ctx: SyncContext, entity_id: str, action: str, source: str) -> SyncOutcome:
    """Run one sync; raises ApiError for transient trouble, SyncFailed for what needs a human."""
    if action == "delete":
        return _deleted_in_espocrm(ctx, entity_id, source)
    for _ in range(MAX_VERSION_ROUNDS):
        try:
            espo = ctx.espocrm.get_beteiligte(entity_id)
        except NotFound:
            return _log(SyncOutcome(entity_id, "missing_in_espocrm"))
        try:
            outcome = _sync_record(ctx, espo, source)
        except VersionConflict:
            log.info("beteiligte %s: EspoCRM record changed during the sync, re-deciding", entity_id)
            continue
        if outcome.again:
            log.info("beteiligte %s: EspoCRM changed while Advoware was written; one more round", entity_id)
            continue
        return _log(outcome)
    raise SyncFailed(f"EspoCRM record changed {MAX_VERSION_ROUNDS} times during the sync; will retry")


#: Paths after which the Kommunikation sync of the entity runs (SPEC §4.2 step 4).
HANDOFF_PATHS = frozenset({"create", "espocrm_newer", "advoware_newer", "conflict", "no_change"})


@dataclass(frozen=True)
class Followups:
    """What the task does after a sync; decided here, done by the task."""

    record_checked: bool         # the rolling check's memory: this entity was just checked
    forget_checked: bool         # gone from EspoCRM: no more rolling checks
    handoff_kommunikation: bool  # queue the entity's Kommunikation sync
    handoff_adressen: bool = False  # queue the entity's Adressen sync (its addresses are checked with the party)


def followups(outcome: SyncOutcome) -> Followups:
    """After a synced path the entity counts as checked and, when the cheap pre-check found work, its
    Kommunikation sync follows (SPEC §4.2 step 4); a record gone from EspoCRM leaves the rolling check."""
    synced = outcome.path in HANDOFF_PATHS
    return Followups(record_checked=synced, forget_checked=outcome.path == "missing_in_espocrm",
                     handoff_kommunikation=synced and outcome.kommunikation_due, handoff_adressen=synced)


def _sync_record(ctx: SyncContext, espo: dict, source: str) -> SyncOutcome:
    entity_id, now = espo["id"], ctx.clock()
    decided = status.route(espo, source, now)
    if decided.kind == "backoff":
        store.schedule_retry(ctx.redis, entity_id, decided.not_before)
        return SyncOutcome(entity_id, "backoff", detail={"not_before": format_espo_datetime(decided.not_before)})
    if decided.kind == "deleted_in_advoware":
        return SyncOutcome(entity_id, "deleted_in_advoware")
    if decided.kind == "create":
        if decided.recreate:
            espo = {**espo, "betnr": None, "advowareRowId": None}
        return _create(ctx, espo, now)
    return _update(ctx, espo, now)


def _update(ctx: SyncContext, espo: dict, now: datetime) -> SyncOutcome:
    """A linked record: GET Advoware, decide (resuming an earlier PUT of ours), PUT, write back, note."""
    entity_id, betnr = espo["id"], int(espo["betnr"])
    journal = PutJournal(ctx.redis, entity_id)
    pending = journal.get()
    fetched = _fetch(ctx, betnr)
    rechecks = 0
    while True:
        if fetched is None:
            return _deleted_in_advoware(ctx, espo, now)
        advo, fetched_at = fetched
        resume, owed = resume_from(pending, espo, advo)
        result = cmp.compare(espo, advo, policy=ctx.policy, resume=resume)
        # The PUT replaces every field with what this GET saw: re-check a GET grown old (issue 18).
        if result.advoware_put is None or time.monotonic() - fetched_at <= ctx.recheck_after \
                or rechecks >= MAX_RECHECKS:
            break
        rechecks += 1
        fetched = _fetch(ctx, betnr)
        if fetched is not None and fetched[0].get("rowId") == advo.get("rowId"):
            break  # unchanged: the decision stands
    due = cmp.notes_due(result, owed)
    advo_after = advo
    fenced = ctx.lock is not None and ctx.lock.client is ctx.redis  # the lock step can carry the journal write
    if result.advoware_put is not None:
        # The fencing check and the journal's `putting` in one round trip: written only while the lease is ours.
        if not fenced:
            ctx.before_write()
        pending = journal.putting(mapped_snapshot(espo), result.merged, due,  # before: its answer may be lost
                                  fence=ctx.lock.extend_then_set if fenced else None)
        advo_after = ctx.advoware.update_beteiligte(betnr, result.advoware_put)
    write = status.success_for(espo, status.DOMAIN, cmp.sync_write(result, advo_after, now))
    write_espo = bool(cmp.changes_in(write, espo) or status.last_sync_stale(espo, now))
    if result.advoware_put is not None:
        # Advoware's answer is journalled whoever holds the lease (as before); when the EspoCRM write follows,
        # its fencing check (the extend) shares the round trip and comes after the journal write.
        carried = fenced and write_espo
        journal.put(pending, advo_after.get("rowId"), fence=ctx.lock.set_then_extend if carried else None)
    else:
        carried = False
    wrote_espo = False
    if write_espo:
        _write_espocrm(ctx, espo, write, fenced=carried)
        wrote_espo = True
    notes = 0
    if any(o.advoware_lost for o in due):
        notify.of(ctx).record(notify.CONFLICT, entity_id, cmp.override_note(due), espo.get("assignedUserId"))
        notes = 1
    if pending is not None:
        journal.clear()
    return SyncOutcome(entity_id, result.kind, wrote_espo, result.advoware_put is not None, notes,
                       detail={**result.summary(), "rechecks": rechecks},
                       kommunikation_due=kommunikation.needs_sync(espo, advo))


def _fetch(ctx: SyncContext, betnr: int) -> tuple[dict, float] | None:
    """Advoware's record with the monotonic time the GET was sent, or None when it is gone (404)."""
    sent = time.monotonic()
    try:
        return ctx.advoware.get_beteiligte(betnr), sent
    except NotFound:
        return None


def _write_espocrm(ctx: SyncContext, espo: dict, data: dict, *, fenced: bool = False) -> dict:
    """The one EspoCRM write of a sync, versioned when the record carries a versionNumber; `fenced`: the
    lease was just extended (the fencing check done) in the journal's round trip."""
    if not fenced:
        ctx.before_write()
    try:
        return ctx.espocrm.update_beteiligte(espo["id"], data, version_number=espo.get("versionNumber"))
    except Conflict as exc:
        if not is_version_conflict(exc):  # e.g. this betnr already belongs to another record
            raise SyncFailed(f"EspoCRM refused the write: {exc.reason or exc}") from exc
        raise VersionConflict(str(exc)) from exc


INTENT_FIELD = "advowareCreateIntent"  # "{redis run_id}:{time}" while a create is in flight

UNCERTAIN = ("An earlier attempt to create this Beteiligter in Advoware got no answer{why}, so Advoware may "
             "already hold it. Check Advoware, then run `bitbylaw beteiligte resolve-create {id} --betnr N` "
             "(found) or `--none` (not created).")


def _create(ctx: SyncContext, espo: dict, now: datetime) -> SyncOutcome:
    """The executor of the create journal (`journal.step` decides each move; this only carries it out)."""
    entity_id = espo["id"]
    journal = CreateJournal(ctx.redis, entity_id)
    entry = journal.get()
    intent = espo.get(INTENT_FIELD) or ""
    kind = create_journal.intent_of(intent, journal.server_id() if intent else "")
    state, effect = create_journal.step(create_journal.state_of(entry), create_journal.START_EVENT[kind])
    if effect is Effect.ASK_UNCERTAIN:
        _ask_operator(ctx, espo, UNCERTAIN.format(why="", id=entity_id))
    if effect is Effect.ASK_JOURNAL_LOST:
        _ask_operator(ctx, espo, UNCERTAIN.format(why=" and Redis restarted since (its journal is lost)",
                                                  id=entity_id))
    adopted = effect in (Effect.ADOPT, Effect.ADOPT_ASSIGNED)
    if effect is Effect.ADOPT:
        created, posted = {"betNr": entry.betnr, "rowId": entry.row_id}, entry.snapshot
    elif effect is Effect.ADOPT_ASSIGNED:  # adopted by an operator: what Advoware holds is the base
        created = ctx.advoware.get_beteiligte(entry.betnr)
        posted = snapshot_of_advoware(created)
    else:
        if effect is Effect.ANNOUNCE_AND_POST:
            # the durable anchor of the journal (SPEC §4.8: the `syncing` write is counted separately)
            espo = _write_espocrm(ctx, espo, {"syncStatus": status.SYNCING,
                                              INTENT_FIELD: f"{journal.server_id()}:{format_espo_datetime(now)}"})
        journal.begin()
        ctx.before_write()
        posted = mapped_snapshot(espo)
        try:
            created = ctx.advoware.create_beteiligte(espo_to_advoware(espo))
        except ApiError as exc:
            state, effect = create_journal.step(state, create_journal.post_failed(getattr(exc, "maybe_sent", False)))
            if effect is Effect.WITHDRAW:
                _withdraw_intent(ctx, espo, journal)
            raise
        state, effect = create_journal.step(state, Event.ANSWERED)
        if effect is Effect.RECORD_CREATED:
            journal.created(int(created["betNr"]), created.get("rowId"), posted)
    # Until this write lands, only the Redis journal knows the new betNr: try hard before giving up.
    write = {**cmp.create_write(posted, created, now, espo), INTENT_FIELD: ""}
    _insist(lambda: _write_espocrm(ctx, espo, write))
    if create_journal.step(state, Event.WRITTEN_BACK)[1] is Effect.FORGET:
        journal.clear()
    return SyncOutcome(entity_id, "create", True, not adopted, detail={"adopted_journal": adopted},
                       kommunikation_due=True, again=write["syncStatus"] == status.DIRTY)


UNCERTAIN_CREATE = "uncertain_create"  # the manual action's kind (ops/manual.py), resolved by `resolve_create`


def _ask_operator(ctx: SyncContext, espo: dict, message: str):
    """Stop this sync and leave the create to a person: a pending manual action (the status page, `/metrics`)
    and, the first time, a note to the party's user; the sync fails with `message` (its syncErrorMessage)."""
    if manual.add(ctx.redis, "beteiligte", espo["id"], UNCERTAIN_CREATE, message):
        notify.of(ctx).manual_action(espo["id"], message, espo.get("assignedUserId"))
    raise SyncFailed(message)


def _withdraw_intent(ctx: SyncContext, espo: dict, journal: CreateJournal) -> None:
    """The POST certainly created nothing: forget the journal and the intent, so a later sync (even
    after a Redis restart) may POST without asking anyone. Best effort: if EspoCRM does not take it,
    the intent stays and a later sync asks an operator rather than guess."""
    journal.clear()
    try:
        _insist(lambda: ctx.espocrm.update_beteiligte(espo["id"], {INTENT_FIELD: ""}))
    except ApiError:
        log.warning("beteiligte %s: could not withdraw the create intent", espo["id"])


INSIST_DELAYS = (0.2, 0.5, 1.0)  # seconds between the attempts of a write that must not be postponed


def _insist(write):
    """Run `write`, retrying transient failures a few times right here instead of via a Celery retry:
    for the writes that make the create journal durable, a later retry may come after a Redis loss."""
    for delay in INSIST_DELAYS:
        try:
            return write()
        except ApiError as exc:
            if not exc.transient:
                raise
            time.sleep(delay)
    return write()


def resolve_create(client: redis.Redis, entity_id: str, betnr: int | None, row_id: str | None = None) -> None:
    """Operator decision after an uncertain create: adopt `betnr`, or (None) allow a new POST."""
    journal = CreateJournal(client, entity_id)
    _, effect = create_journal.step(create_journal.state_of(journal.get()),
                                    Event.RESOLVED_NONE if betnr is None else Event.RESOLVED_BETNR)
    if effect is Effect.RECORD_CLEARED:
        journal.cleared()
    else:
        journal.created(betnr, row_id)
    manual.resolve(client, "beteiligte", entity_id, UNCERTAIN_CREATE)


def _deleted_in_advoware(ctx: SyncContext, espo: dict, now: datetime) -> SyncOutcome:
    message = (f"Advoware answered 404 for betNr {espo['betnr']}: the Beteiligter was deleted there. "
               "The EspoCRM record is kept; a manual sync re-creates it in Advoware.")
    _write_espocrm(ctx, espo, status.deleted_in_advoware(now, message))
    notify.of(ctx).record(notify.DELETED_IN_ADVOWARE, espo["id"], message, espo.get("assignedUserId"))
    return SyncOutcome(espo["id"], "deleted_in_advoware", True, False, 1)


def _deleted_in_espocrm(ctx: SyncContext, entity_id: str, source: str) -> SyncOutcome:
    """SPEC §4.5: record and report; Advoware stays untouched (a law firm must not lose a party)."""
    store.record_deletion(ctx.redis, entity_id, format_espo_datetime(ctx.clock()))
    log.warning("beteiligte %s: deleted in EspoCRM; Advoware left untouched (see `bitbylaw beteiligte "
                "deletions`)", entity_id)
    notify.of(ctx).record(notify.DELETED_IN_ESPOCRM, entity_id)
    return SyncOutcome(entity_id, "deleted_in_espocrm")


def record_failure(ctx: SyncContext, entity_id: str, error: Exception,
                   prefix: str = "") -> status.FailureOutcome | None:
    """Write `failed`/`permanently_failed` with back-off to EspoCRM and schedule the retry.

    Returns None when the record cannot even be read (EspoCRM down): the sweep's
    rules pick the entity up again once EspoCRM answers.
    """
    now = ctx.clock()
    try:
        espo = _insist(lambda: ctx.espocrm.get_beteiligte(entity_id))
        outcome = status.after_failure(espo, now, f"{prefix}{type(error).__name__}: {error}")
        _insist(lambda: ctx.espocrm.update_beteiligte(entity_id, outcome.update))
        if outcome.permanent:
            notify.of(ctx).record(notify.PERMANENT_FAILURE, entity_id, (
                f"Sync to Advoware failed {outcome.retry_count} times and is paused until "
                f"{format_espo_datetime(outcome.next_attempt)} UTC. Last error: {outcome.update['syncErrorMessage']}"),
                espo.get("assignedUserId"))
        store.schedule_retry(ctx.redis, entity_id, outcome.next_attempt)
        return outcome
    except (ApiError, redis.RedisError) as exc:
        log.error("beteiligte %s: could not record the failure (%s)", entity_id, type(exc).__name__)
        return None


def _log(outcome: SyncOutcome) -> SyncOutcome:
    log.info("beteiligte sync %s path=%s espocrm_write=%s advoware_write=%s notes=%d %s",
             outcome.entity_id, outcome.path, outcome.wrote_espocrm, outcome.wrote_advoware, outcome.notes,
             outcome.detail)
    return outcome
