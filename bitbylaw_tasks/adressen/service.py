"""One Adressen sync of one party (SPEC §11): read both sides, plan (pure, `plan.plan_party`), apply.

Runs under the party's entity lock (the Beteiligte lock kind: an address sync
and a party sync never interleave their Advoware writes). Per address, in the
plan's order: POST (then at once the EspoCRM write-back of its tracking, so a
crash in between is resumed by the marker), PUT on the position a fresh GET
shows, import into EspoCRM, and one EspoCRM write of content + bookkeeping,
only when something changed. A bad address fails alone: its CAdresse gets the
message, the other addresses still sync. Then the manual actions are
reconciled (`manual.reconcile`): each new one gets a stream note on the party
mentioning the assigned user (`notify`: else the operator); the plan's conflict notes follow. No Celery here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from bitbylaw_tasks import notify
from bitbylaw_tasks.adressen import manual, mapping, tracking
from bitbylaw_tasks.adressen.plan import AddressPlan, plan_party
from bitbylaw_tasks.beteiligte.mapping import format_espo_datetime
from bitbylaw_tasks.beteiligte.party import PartyNotReady, linked_party
from bitbylaw_tasks.beteiligte.service import SyncContext
from integrations.advoware import AmbiguousAddress
from integrations.espocrm import W
from integrations.errors import ApiError, BadRequest, Conflict, NotFound

log = logging.getLogger(__name__)

NOTE_PREFIX = "Adressen sync: "
PARTY_OF_KEY = "adressen:party_of"  # hash CAdresse id -> CBeteiligte id (routes a delete webhook)


class AddressChanged(ApiError):
    """A person saved the CAdresse while we synced it (409 on our versioned write): sync again."""

    transient = True


@dataclass(frozen=True)
class AdressenOutcome:
    entity_id: str
    path: str                                  # synced | no_change | not_linked | missing | deleted_in_advoware
    variants: dict = field(default_factory=dict)
    advoware_writes: int = 0
    espocrm_writes: int = 0
    failed: int = 0
    opened: int = 0
    closed: int = 0


def sync_adressen(ctx: SyncContext, entity_id: str, source: str = "manual") -> AdressenOutcome:
    """Sync every address of one CBeteiligte (module docstring)."""
    try:
        party, betnr = linked_party(ctx.espocrm, entity_id)
    except PartyNotReady as exc:
        return AdressenOutcome(entity_id, exc.path)
    try:
        advoware = ctx.advoware.list_adressen(betnr)
    except NotFound:
        return AdressenOutcome(entity_id, "deleted_in_advoware")
    records = ctx.espocrm.list_adressen(entity_id)
    now = ctx.clock()
    plan = plan_party(advoware, records, betnr, now.date())
    by_id = {r["id"]: r for r in records}
    run = _Run(ctx, party, betnr, now)
    for step in plan.addresses:
        run.apply(step, by_id.get(step.espo_id or ""))
    done = manual.reconcile(ctx.redis, entity_id, betnr, plan.manual, now)
    for action in done.opened:
        notify.of(ctx).manual_action(entity_id, f"{NOTE_PREFIX}please change by hand: {action.instruction}",
                                     party.get("assignedUserId"))
    if by_id:
        ctx.redis.hset(PARTY_OF_KEY, mapping={rid: entity_id for rid in by_id})
    variants: dict[str, int] = {}
    for step in plan.addresses:
        variants[step.variant] = variants.get(step.variant, 0) + 1
    wrote = run.advoware_writes or run.espocrm_writes or done.opened or done.closed
    return AdressenOutcome(entity_id, "synced" if wrote else "no_change", variants, run.advoware_writes,
                           run.espocrm_writes, run.failed, len(done.opened), len(done.closed))



def _same_address(seen: dict):
    """Whether an Advoware address is `seen` (the one the plan read): by marker when it has one, else by all
    its fields (positions shift; empties compare as equal)."""
    wanted = mapping.marker_of(seen.get("bemerkung"))
    fields = [k for k in seen if k != "reihenfolgeIndex"]

    def match(address: dict) -> bool:
        if wanted:
            return mapping.marker_of(address.get("bemerkung")) == wanted
        return all(mapping.text(address.get(k)) == mapping.text(seen.get(k)) for k in fields)
    return match


class _Run:
    """Applies one party's plan; counts what it wrote."""

    def __init__(self, ctx: SyncContext, party: dict, betnr: int, now: datetime):
        self.ctx, self.party, self.betnr, self.now = ctx, party, betnr, now
        self.advoware_writes = self.espocrm_writes = self.failed = 0

    def note(self, text: str) -> None:
        """A conflict note on the party through `notify` (as the party sync's): always posted, the assigned
        user (else the operator) mentioned once per window."""
        notify.of(self.ctx).record(notify.CONFLICT, self.party["id"], f"{NOTE_PREFIX}{text}",
                                   self.party.get("assignedUserId"))

    def apply(self, step: AddressPlan, record: dict | None) -> None:
        try:
            self._apply(step, record)
        except (BadRequest, AmbiguousAddress) as exc:  # this address only: the others still sync
            self.failed += 1
            log.warning("adressen %s: address %s failed: %s", self.party["id"], step.espo_id, type(exc).__name__)
            if step.espo_id and record is not None:
                self._write(step.espo_id, record, {"syncStatus": "failed",
                                                    "syncErrorMessage": f"{type(exc).__name__}: {exc}"[:2000]})

    def _apply(self, step: AddressPlan, record: dict | None) -> None:
        ctx, track = self.ctx, step.tracking
        if step.post is not None:
            ctx.before_write()
            answer = ctx.advoware.create_adresse(self.betnr, step.post)
            self.advoware_writes += 1
            track = tracking.Tracking(track.origin, track.agreed, track.seen, int(answer.get("reihenfolgeIndex") or 0))
        if step.put is not None:
            ctx.before_write()
            ctx.advoware.update_adresse(self.betnr, _same_address(step.advoware), step.put)
            self.advoware_writes += 1
        bookkeeping = {"syncStatus": step.status, "syncErrorMessage": step.error,
                       "advowareManualAction": "\n".join(a.instruction for a in step.manual) or None}
        if track is not None:
            bookkeeping.update(advowareSnapshot=tracking.render(track), advowareIndex=track.index)
        if step.espo_id is None:
            if step.variant != "import":
                return
            ctx.before_write()
            ctx.espocrm.create_adresse({**step.espo_write, **bookkeeping, "beteiligteId": self.party["id"],
                                        "assignedUserId": self.party.get("assignedUserId"),
                                        "advowareLastSync": format_espo_datetime(self.now)})
            self.espocrm_writes += 1
            return
        if record is not None:
            self._write(step.espo_id, record, {**step.espo_write, **bookkeeping})
        for note in step.notes:  # right after this address's writes: a later failure's retry cannot lose it
            self.note(note)

    def _write(self, record_id: str, record: dict, fields: dict) -> None:
        """One versioned EspoCRM write of what differs (nothing differs: no write)."""
        changed = {k: v for k, v in fields.items() if not _equal(record.get(k), v)}
        if not changed:
            return
        changed["advowareLastSync"] = format_espo_datetime(self.now)
        self.ctx.before_write()
        try:
            self.ctx.espocrm.update_adresse(record_id, changed, version_number=record.get("versionNumber"))
        except Conflict as exc:
            raise AddressChanged(f"CAdresse {record_id} changed during the sync", system="espocrm") from exc
        self.espocrm_writes += 1


def _equal(stored, wanted) -> bool:
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return stored is wanted or (stored in (None, False) and wanted is False)
    return mapping.text(stored) == mapping.text(wanted)


SWEEP_STATUSES = ("pending_sync", "dirty", "failed")  # a user's change not yet in Advoware, or bad input


def party_of(espocrm, client, adresse_id: str, action: str) -> str | None:
    """The CBeteiligte a CAdresse webhook concerns: EspoCRM's link (not for a deleted address), else the party
    the address had when last synced (`PARTY_OF_KEY`); None when neither knows it."""
    if action != "delete":
        try:
            party = espocrm.get_adresse(adresse_id).get("beteiligteId")
        except NotFound:
            party = None
        if party:
            return party
    known = client.hget(PARTY_OF_KEY, adresse_id)
    return known.decode() if known else None


def parties_to_sweep(espocrm) -> list[str]:
    """The parties with an address a user changed (or that failed) whose webhook may have been lost: the
    safety net beside the party's rolling check (docs/adressen-sync.md, "Triggers")."""
    where = [W.in_("syncStatus", list(SWEEP_STATUSES)), W.is_not_null("beteiligteId")]
    parties: list[str] = []
    offset = 0
    while True:
        total, page = espocrm.search_adressen(where, select=["beteiligteId"], offset=offset)
        parties += [r["beteiligteId"] for r in page if r.get("beteiligteId") not in parties]
        offset += len(page)
        if not page or offset >= total:
            return parties
