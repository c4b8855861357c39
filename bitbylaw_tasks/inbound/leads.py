"""One website lead into EspoCRM: a known person gets a note, a new one becomes an assigned Lead (SPEC §12).

`process_lead(ctx, submission_id)` reads the stored submission, looks for the
person in CBeteiligte, Contact and Lead (e-mail or phone), and either posts a
note on the record found (no duplicate) or creates the Lead, assigns it and
posts a note mentioning the assignee. Each step that is done is remembered in
the stored submission, so a re-run (retry, redelivery) repeats nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from bitbylaw_tasks.inbound import phone_index, store
from bitbylaw_tasks.inbound.assign import User, lead_assignee, user_named
from bitbylaw_tasks.inbound.lead_form import LeadSubmission
from bitbylaw_tasks.settings import Settings
from integrations.espocrm_crm import EspoCrmRecords

log = logging.getLogger(__name__)
KIND = "lead"
#: Where a known person is looked for, in this order: the party first, then a contact, then a lead.
KNOWN_IN = ("CBeteiligte", "Contact", "Lead")


@dataclass
class InboundContext:
    records: EspoCrmRecords
    redis: redis.Redis
    settings: Settings
    lock: object = None


@dataclass(frozen=True)
class LeadOutcome:
    submission_id: str
    path: str                  # created | known | already_done | expired
    entity_type: str = ""
    record_id: str = ""


def lead_payload(sub: LeadSubmission, source: str, received_at: str, assignee: User | None) -> dict:
    """The EspoCRM Lead to create (pure)."""
    description = sub.description
    if sub.consent:
        description = (description + "\n\n" if description else "") + f"Consent (website form): given {received_at} UTC"
    data = {"firstName": sub.first_name, "lastName": sub.last_name, "status": "New", "source": source,
            "description": description}
    if sub.email:
        data["emailAddress"] = sub.email
    if sub.phone:
        data["phoneNumber"] = sub.phone
    if sub.account_name:
        data["accountName"] = sub.account_name
    if assignee is not None:
        data["assignedUserId"] = assignee.id
    if sub.consent:  # the extension's Lead fields; the description says it too (an EspoCRM without them ignores them)
        data["consentGiven"], data["consentAt"] = True, received_at
    return data


def note_text(kind: str, sub: LeadSubmission, received_at: str, mention: User | None) -> str:
    """The stream note (pure): `new` on the created Lead, `again` on a record the person already has."""
    who = f"@{mention.user_name} " if mention else ""
    if kind == "new":
        return f"{who}New website lead ({received_at} UTC): please get in touch."
    text = f"{who}Website enquiry from this person again ({received_at} UTC), no new lead created."
    if sub.description:
        text += f"\n\n{sub.description}"
    if sub.consent:
        text += f"\n\nConsent (website form): given {received_at} UTC"
    return text


def find_known(records: EspoCrmRecords, sub: LeadSubmission) -> tuple[str, dict] | None:
    """The first record (by KNOWN_IN order, newest first) with the submission's e-mail or phone."""
    for entity in KNOWN_IN:
        found = records.find_by_email_or_phone(entity, sub.email, sub.phone)
        if found:
            return entity, found[0]
    return None


def process_lead(ctx: InboundContext, submission_id: str) -> LeadOutcome:
    client, settings = ctx.redis, ctx.settings
    finished, data = store.pending(client, KIND, submission_id)
    if finished:
        return LeadOutcome(submission_id, finished, data.get("entityType", ""), data.get("recordId", ""))
    sub = LeadSubmission.from_dict(data["lead"])
    received_at = data["receivedAt"]
    if data.get("created"):  # an earlier run created the Lead and stopped before its note
        assignee = User(data["assigneeId"], data["assigneeName"]) if data.get("assigneeId") else None
        return _finish_created(ctx, submission_id, sub, received_at, data["recordId"], assignee)
    known = find_known(ctx.records, sub)
    if known is not None:
        entity, record = known
        mention = _assigned_user(ctx, record) or lead_assignee(ctx.records, client, settings.lead_assign_team,
                                                               settings.lead_assign_user)
        ctx.records.post_note(entity, record["id"], note_text("again", sub, received_at, mention))
        store.remember(client, KIND, submission_id, done=True, entityType=entity, recordId=record["id"])
        log.info("lead %s path=known entity=%s id=%s", submission_id, entity, record["id"])
        return LeadOutcome(submission_id, "known", entity, record["id"])
    assignee = lead_assignee(ctx.records, client, settings.lead_assign_team, settings.lead_assign_user)
    lead = ctx.records.create("Lead", lead_payload(sub, settings.lead_source, received_at, assignee))
    store.remember(client, KIND, submission_id, created=True, entityType="Lead", recordId=lead["id"],
                   assigneeId=assignee.id if assignee else "", assigneeName=assignee.user_name if assignee else "")
    phone_index.index_record(client, "Lead", {**lead, "phoneNumber": sub.phone, "emailAddress": sub.email},
                             settings.inbound_phone_region)
    return _finish_created(ctx, submission_id, sub, received_at, lead["id"], assignee)


def _finish_created(ctx: InboundContext, submission_id: str, sub: LeadSubmission, received_at: str, lead_id: str,
                    assignee: User | None) -> LeadOutcome:
    ctx.records.post_note("Lead", lead_id, note_text("new", sub, received_at, assignee))
    store.remember(ctx.redis, KIND, submission_id, done=True)
    log.info("lead %s path=created id=%s", submission_id, lead_id)
    return LeadOutcome(submission_id, "created", "Lead", lead_id)


def _assigned_user(ctx: InboundContext, record: dict) -> User | None:
    """The user the known record is assigned to (mentioned in the note), or None."""
    if not record.get("assignedUserId"):
        return None
    full = ctx.records.get("User", record["assignedUserId"])
    return User(full["id"], full["userName"])
