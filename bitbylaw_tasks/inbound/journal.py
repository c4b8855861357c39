"""One 3CX call into EspoCRM as a `Call` (SPEC §12): parent by number, user by extension, "call back" when missed.

`journal_call(ctx, call_id)` reads the stored `CallReport`; the parent is the
lookup's match 3CX passed back (`EntityId`/`EntityType`), else the phone
index's owner of the number, else none (or a new Lead, with
THREECX_UNKNOWN_CREATES_LEAD). Every step done is remembered in the stored
report, so a re-run repeats nothing (idempotent per call, with the intake's claim).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from bitbylaw_tasks.inbound import phone_index, store
from bitbylaw_tasks.inbound.assign import User, extension_user
from bitbylaw_tasks.inbound.calls import CallReport
from bitbylaw_tasks.inbound.leads import InboundContext

log = logging.getLogger(__name__)
KIND = "call"


@dataclass(frozen=True)
class CallOutcome:
    call_id: str
    path: str               # journaled | already_done | expired
    call_record_id: str = ""
    parent_type: str = ""
    parent_id: str = ""


def call_payload(report: CallReport, parent: tuple[str, str] | None, user: User | None) -> dict:
    """The EspoCRM Call to create (pure)."""
    party = report.number or "an unknown number"
    name = f"Call from {party}" if report.direction == "Inbound" else f"Call to {party}"
    data = {"name": name, "status": report.status, "direction": report.direction, "dateStart": report.start,
            "dateEnd": report.end, "duration": report.duration_s,
            "description": f"3CX: {report.call_type}, extension {report.agent or '-'}"}
    if parent is not None:
        data["parentType"], data["parentId"] = parent
    if user is not None:
        data["assignedUserId"] = user.id
    return data


def call_back_text(report: CallReport, user: User | None) -> str:
    who = f"@{user.user_name} " if user else ""
    return f"{who}Call back: missed call from {report.number or 'an unknown number'} at {report.start} UTC."


def _parent(ctx: InboundContext, report: CallReport) -> tuple[str, str] | None:
    if report.entity_id and report.entity_type:
        return report.entity_type, report.entity_id
    owner = phone_index.lookup(ctx.redis, report.number) if report.number else None
    return (owner.type, owner.id) if owner else None


def journal_call(ctx: InboundContext, call_id: str) -> CallOutcome:
    client, settings = ctx.redis, ctx.settings
    finished, data = store.pending(client, KIND, call_id)
    if finished:
        return CallOutcome(call_id, finished, data.get("callRecordId", ""))
    report = CallReport.from_dict(data)
    user = extension_user(ctx.records, settings.threecx_extension_users, report.agent)
    parent = tuple(data["parent"]) if data.get("parent") else _parent(ctx, report)
    if parent is None and report.number and settings.threecx_unknown_creates_lead:
        lead = ctx.records.create("Lead", {"lastName": f"Caller {report.number}", "phoneNumber": report.number,
                                           "status": "New", "source": "Call",
                                           **({"assignedUserId": user.id} if user else {})})
        phone_index.index_record(client, "Lead", lead, settings.inbound_phone_region)
        parent = ("Lead", lead["id"])
        data = store.remember(client, KIND, call_id, parent=list(parent))
    if not data.get("callRecordId"):
        record = ctx.records.create("Call", call_payload(report, parent, user))
        data = store.remember(client, KIND, call_id, callRecordId=record["id"], parent=list(parent) if parent else None)
    if report.missed and not data.get("noted"):
        target = parent or ("Call", data["callRecordId"])
        ctx.records.post_note(target[0], target[1], call_back_text(report, user))
        store.remember(client, KIND, call_id, noted=True)
    store.remember(client, KIND, call_id, done=True)
    log.info("call %s path=journaled call=%s parent=%s", call_id, data["callRecordId"], parent[0] if parent else "-")
    return CallOutcome(call_id, "journaled", data["callRecordId"], *(parent or ("", "")))
