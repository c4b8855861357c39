"""One Kommunikation sync of one Beteiligter (SPEC §5): read both sides, plan (pure), apply the plan.

The executor is thin: `plan_kommunikation_sync` decides everything. It runs
the Advoware actions in the plan's order (slots are reused by PUT before any
POST, because the plan says so), writes EspoCRM once (arrays, status, hash —
each only when changed), re-reads Advoware only when something was written
there (for the new hash), and posts the plan's notes. No Celery in here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bitbylaw_tasks.beteiligte.party import PartyNotReady, linked_party
from bitbylaw_tasks.beteiligte.status import clear_own_failure
from bitbylaw_tasks.inbound import phone_index
from bitbylaw_tasks.kommunikation.actions import Plan
from bitbylaw_tasks.kommunikation.espo_phones import recognise_phones, render_phones
from bitbylaw_tasks.kommunikation.plan import plan_kommunikation_sync
from bitbylaw_tasks.kommunikation.status import (HASH_FIELD, STATUS_FIELD, KommStatus, StatusFormatError,
                                                 kommunikation_hash)
from bitbylaw_tasks import notify
from bitbylaw_tasks.errors import SyncFailed
from integrations.espocrm import is_version_conflict
from integrations.errors import Conflict

log = logging.getLogger(__name__)

DOMAIN = "kommunikation"  # the prefix of the failures this domain records (beteiligte.status)
MAX_VERSION_ROUNDS = 3
NOTE_PREFIX = "Kommunikation sync: "


class KommunikationFailed(SyncFailed):
    """A failure that needs a human (message prefixed with the domain when recorded)."""


@dataclass(frozen=True)
class KommOutcome:
    entity_id: str
    path: str                        # synced | no_change | not_linked | missing
    summary: dict = field(default_factory=dict)
    advoware_writes: int = 0
    espocrm_written: bool = False
    notes: int = 0


def load_status(espo: dict) -> KommStatus | None:
    """The stored status, or None (initial-sync rules) when missing or unreadable."""
    try:
        return KommStatus.from_json(espo.get(STATUS_FIELD))
    except StatusFormatError:
        log.warning("beteiligte %s: unreadable Kommunikation status, falling back to initial sync", espo.get("id"))
        return None


def advoware_entries(advo: dict) -> list[dict]:
    return list(advo.get("kommunikation") or [])


def plan_for(espo: dict, advo: dict, *, direction: str = "both", force_espo_wins: bool = False) -> Plan:
    stored = load_status(espo)
    entries = advoware_entries(advo)
    known = [e.value for e in (stored.entries if stored else ())] + [str(e.get("tlf") or "") for e in entries]
    phones = recognise_phones(espo.get("phoneNumberData") or [], known)  # EspoCRM's E.164 of a known value
    return plan_kommunikation_sync(entries, espo.get("emailAddressData") or [], phones, stored,
                                   direction=direction, force_espo_wins=force_espo_wins)


def espo_write_arrays(ctx, plan: Plan) -> dict:
    """The plan's arrays as this EspoCRM stores them (E.164 phones when `phoneNumberInternational` is on).
    Raises `KommunikationFailed` before anything is written when a number has no such form."""
    arrays = dict(plan.espo_arrays())
    if "phoneNumberData" not in arrays or not ctx.espocrm.phone_numbers_international():
        return arrays
    rendered = render_phones(arrays["phoneNumberData"])
    if rendered.refused:
        raise KommunikationFailed(
            f"EspoCRM stores phone numbers in international form and {len(rendered.refused)} number(s) from "
            f"Advoware have none ({', '.join(rendered.refused)}): correct them in Advoware (with country code, "
            f"or complete the number); nothing was written")
    arrays["phoneNumberData"] = rendered.phone_number_data
    return arrays


def needs_sync(espo: dict, advo: dict | None) -> bool:
    """The cheap test the Beteiligte sync runs before handing off (no I/O).

    Advoware side: the hash of the sync-relevant rowIds differs from the stored
    one (SPEC §5.2; catches changes that leave the Beteiligter's rowId alone).
    EspoCRM side and missing status: the pure planner finds something to do.
    """
    advo = advo or {}
    if kommunikation_hash(advoware_entries(advo)) != (espo.get(HASH_FIELD) or ""):
        return True
    return not plan_for(espo, advo).is_empty


def entries_after_writes(entries: list[dict], answers: list[dict]) -> list[dict] | None:
    """Advoware's entries as our PUT/POST answers left them (pure), or None when an answer lacks id or rowId.

    An update keeps the kommKz Advoware reported before (read-only on PUT), so
    the hash matches what the next GET computes. Built only from what this run
    saw: an entry a person changed meanwhile still shows as a changed hash next time.
    """
    after = {int(entry["id"]): dict(entry) for entry in entries if entry.get("id") is not None}
    for answer in answers:
        if not isinstance(answer, dict) or answer.get("id") is None or not answer.get("rowId"):
            return None
        entry_id = int(answer["id"])
        if entry_id in after:
            after[entry_id].update({key: answer[key] for key in ("tlf", "bemerkung", "online", "rowId") if key in answer})
        else:
            after[entry_id] = dict(answer)  # a created entry: appended, as Advoware lists it
    return list(after.values())


def sync_kommunikation(ctx, entity_id: str, direction: str = "both", force_espo_wins: bool = False) -> KommOutcome:
    """`ctx` is a `beteiligte.service.SyncContext` (clients, Redis, lock).

    A round whose EspoCRM write meets a 409 (a user edited the record mid-sync)
    is re-planned; its Advoware writes are done by then, and the notes naming
    what they overrode are carried into the next round (the re-plan no longer
    sees those conflicts) and posted once at the end.
    """
    carried: list[str] = []
    for _ in range(MAX_VERSION_ROUNDS):
        try:
            espo, betnr = linked_party(ctx.espocrm, entity_id)
        except PartyNotReady as exc:
            return KommOutcome(entity_id, exc.path)
        advo = ctx.advoware.get_beteiligte(betnr)  # the client unwraps Advoware's one-element list
        plan = plan_for(espo, advo, direction=direction, force_espo_wins=force_espo_wins)
        try:
            return _apply(ctx, espo, betnr, advo, plan, carried)
        except Conflict as exc:
            if not is_version_conflict(exc):
                raise KommunikationFailed(f"EspoCRM refused the write: {exc.reason or exc}") from exc
            log.info("beteiligte %s: EspoCRM changed during the Kommunikation sync, re-planning", entity_id)
    raise KommunikationFailed(f"EspoCRM record changed {MAX_VERSION_ROUNDS} times during the sync")


def _apply(ctx, espo: dict, betnr: int, advo: dict, plan: Plan, notes: list[str]) -> KommOutcome:
    """Apply one plan; `notes` holds the notes of earlier rounds whose Advoware writes were done."""
    entity_id = espo["id"]
    arrays = espo_write_arrays(ctx, plan)  # before any write: a number EspoCRM would refuse stops the run here
    created: dict[int, int] = {}
    answers: list[dict] = []
    for action in plan.actions:
        ctx.before_write()
        if action.creates:
            answer = ctx.advoware.create_kommunikation(betnr, action.payload())
            created[action.ref] = int(answer["id"])
        else:
            answer = ctx.advoware.update_kommunikation(betnr, action.id, action.payload())
        answers.append(answer)
    notes.extend(note for note in plan.notes if note not in notes)  # the overrides are done in Advoware now
    entries = entries_after_writes(advoware_entries(advo), answers)
    if entries is None:
        entries = advoware_entries(ctx.advoware.get_beteiligte(betnr))
    write = arrays
    new_status = plan.resolve_status(created).to_json()
    if new_status != (espo.get(STATUS_FIELD) or ""):
        write[STATUS_FIELD] = new_status
    new_hash = kommunikation_hash(entries)
    if new_hash != (espo.get(HASH_FIELD) or ""):
        write[HASH_FIELD] = new_hash
    write.update(clear_own_failure(espo, DOMAIN, ctx.clock()))  # a failure this domain recorded is over
    if write:
        ctx.before_write()
        ctx.espocrm.update_beteiligte(entity_id, write, version_number=espo.get("versionNumber"))
    phone_index.index_after_sync(ctx.redis, espo, write)  # 3CX lookups see the numbers now (SPEC §12)
    for note in notes:
        notify.of(ctx).record(notify.CONFLICT, entity_id, NOTE_PREFIX + note, espo.get("assignedUserId"))
    path = "synced" if (plan.actions or write or notes) else "no_change"
    outcome = KommOutcome(entity_id, path, plan.summary(), len(plan.actions), bool(write), len(notes))
    log.info("kommunikation sync %s path=%s %s", entity_id, path, outcome.summary)
    return outcome
