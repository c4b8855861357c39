"""The EspoCRM behaviour the inbound channels rely on, on the simulator AND a real EspoCRM 9.2.7, and the lead
and call paths (`process_lead`, `journal_call`) against both: Lead/Contact/Call shapes, finding a person by
any of their e-mail addresses or phone numbers, stream notes with mentions, users and teams."""
from __future__ import annotations

import re

import pytest

from bitbylaw_tasks.inbound import store
from bitbylaw_tasks.inbound.calls import report_from_fields
from bitbylaw_tasks.inbound.journal import journal_call
from bitbylaw_tasks.inbound.lead_form import LeadSubmission
from bitbylaw_tasks.inbound.leads import InboundContext, lead_payload, process_lead
from bitbylaw_tasks.inbound.assign import User
from bitbylaw_tasks.settings import load_settings
from espocrm_backends import real_backend, simulator_backend, unique
from integrations.errors import BadRequest
from integrations.espocrm_crm import EspoCrmRecords

ID = re.compile(r"^[0-9a-f]{17}$")


class Crm:
    """A backend plus a way to create what the integration user may not (contacts, teams) as an admin."""

    def __init__(self, backend, admin_create, alice_id):
        self.backend = backend
        self.records = EspoCrmRecords(backend.client)
        self.admin_create = admin_create
        self.alice_id = alice_id


@pytest.fixture(params=["simulator", pytest.param("real", marks=pytest.mark.real_espocrm)])
def crm(request):
    if request.param == "simulator":
        sandbox = request.getfixturevalue("sandbox")
        backend = simulator_backend(sandbox)
        store_ = sandbox.app("espocrm").extensions["espocrm_crm"]
        state = sandbox.state("espocrm")

        def create(entity, data):
            if entity == "Team":
                team = {"id": state.new_id(), "name": data["name"], "usersIds": data.get("usersIds", [])}
                store_.teams[team["id"]] = team
                return team
            return store_.create(entity, data, state.user_by_name("alice"))

        return Crm(backend, create, state.user_by_name("alice")["id"])
    real = request.getfixturevalue("real_espocrm")
    admin = real.admin()
    role = admin.find_one("Role", "name", "Kanzlei user")  # alice works with leads and calls, as a firm's users do
    data = admin.get("Role", role["id"])["data"] or {}
    if "Lead" not in data:
        grant = {"create": "yes", "read": "all", "edit": "all", "delete": "no", "stream": "all"}
        admin.update("Role", role["id"], {"data": {**data, "Lead": grant, "Call": grant}})
    return Crm(real_backend(real), admin.create, admin.find_one("User", "userName", "alice")["id"])


def _phone():
    """A unique German number (records stay on the real server between tests)."""
    return "+4930" + unique("")[1:8].translate(str.maketrans("abcdef", "123456"))


def test_a_lead_is_created_with_the_products_payload_and_read_back_with_its_arrays(crm):
    phone, email = _phone(), f"{unique('l').lower()}@example.de"
    sub = LeadSubmission("Erika", unique("Muster"), email, phone, "Bitte Rückruf", "", True)
    lead = crm.records.create("Lead", lead_payload(sub, "Web Site", "2026-11-30 10:00:00", User(crm.alice_id, "alice")))
    assert ID.match(lead["id"]) and lead["name"] == f"Erika {sub.last_name}"
    assert (lead["status"], lead["source"], lead["assignedUserId"]) == ("New", "Web Site", crm.alice_id)
    assert lead["emailAddress"] == email and lead["phoneNumber"] == phone
    full = crm.records.get("Lead", lead["id"])
    assert [e["emailAddress"] for e in full["emailAddressData"]] == [email]
    assert [p["phoneNumber"] for p in full["phoneNumberData"]] == [phone]
    assert full["description"].endswith("Consent (website form): given 2026-11-30 10:00:00 UTC")
    assert (full["consentGiven"], full["consentAt"]) == (True, "2026-11-30 10:00:00")  # the extension's Lead fields
    plain = crm.records.create("Lead", {"lastName": unique()})
    assert (plain["consentGiven"], plain.get("consentAt")) == (False, None)


def test_lead_enums_refuse_values_that_are_not_options(crm):
    with pytest.raises(BadRequest):
        crm.records.create("Lead", {"lastName": unique(), "status": "Hot"})
    with pytest.raises(BadRequest):
        crm.records.create("Lead", {"lastName": unique(), "source": "Website"})


def test_a_person_is_found_by_any_of_their_addresses_or_numbers(crm):
    phone, second, email = _phone(), _phone(), f"{unique('f').lower()}@example.de"
    lead = crm.records.create("Lead", {"lastName": unique(), "emailAddress": email, "phoneNumber": phone})
    assert [r["id"] for r in crm.records.find_by_email_or_phone("Lead", email=email.upper())] == [lead["id"]]
    assert [r["id"] for r in crm.records.find_by_email_or_phone("Lead", phone=phone)] == [lead["id"]]
    assert crm.records.find_by_email_or_phone("Lead", email="nobody-" + email) == []
    party = crm.backend.client.create_beteiligte({"lastName": unique(), "phoneNumberData": [
        {"phoneNumber": phone, "type": "Office", "primary": True}, {"phoneNumber": second, "type": "Mobile"}]})
    assert [r["id"] for r in crm.records.find_by_email_or_phone("CBeteiligte", phone=second)] == [party["id"]]
    contact = crm.admin_create("Contact", {"lastName": unique(), "emailAddress": "c-" + email})
    assert [r["id"] for r in crm.records.find_by_email_or_phone("Contact", email="c-" + email)] == [contact["id"]]


def test_a_stream_note_on_a_lead_mentions_the_user(crm):
    lead = crm.records.create("Lead", {"lastName": unique()})
    note = crm.records.post_note("Lead", lead["id"], "@alice New website lead: please get in touch.")
    assert (note["parentType"], note["parentId"], note["type"]) == ("Lead", lead["id"], "Post")
    stream = crm.backend.raw("GET", f"Lead/{lead['id']}/stream").json()["list"]
    assert any(n["id"] == note["id"] for n in stream)
    assert note["data"]["mentions"]["@alice"]["id"] == crm.alice_id
    notifications = crm.backend.user("GET", "Notification").json()["list"]
    (mention,) = [n for n in notifications if n["data"].get("noteId") == note["id"]]
    assert (mention["type"], mention["relatedType"], mention["relatedId"]) == ("MentionInPost", "Note", note["id"])
    assert mention["noteData"]["parentId"] == lead["id"]


def test_a_call_links_its_parent_and_keeps_status_direction_times(crm):
    party = crm.backend.client.create_beteiligte({"lastName": unique()})
    lead = crm.records.create("Lead", {"lastName": unique()})
    for parent_type, parent_id in (("Lead", lead["id"]), ("CBeteiligte", party["id"])):
        call = crm.records.create("Call", {"name": "Call from +49301234567", "status": "Not Held",
                                           "direction": "Inbound", "dateStart": "2026-11-30 14:05:00",
                                           "dateEnd": "2026-11-30 14:08:10", "duration": 190,
                                           "parentType": parent_type, "parentId": parent_id,
                                           "assignedUserId": crm.alice_id})
        full = crm.records.get("Call", call["id"])
        assert (full["status"], full["direction"], full["parentType"], full["parentId"]) == (
            "Not Held", "Inbound", parent_type, parent_id)
        assert (full["dateStart"], full["dateEnd"], full["duration"], full["assignedUserId"]) == (
            "2026-11-30 14:05:00", "2026-11-30 14:08:10", 190, crm.alice_id)
    with pytest.raises(BadRequest):
        crm.records.create("Call", {"name": "x", "status": "Maybe", "dateStart": "2026-11-30 14:05:00"})


def test_users_by_name_and_a_teams_users(crm):
    assert crm.records.client.find_user("alice")["id"] == crm.alice_id
    assert crm.records.client.find_user("nobody-" + unique()) is None
    team = crm.admin_create("Team", {"name": unique("Intake"), "usersIds": [crm.alice_id]})
    assert [u["userName"] for u in crm.records.team_users(team["id"])] == ["alice"]


# ------------------------------------------------------------------ the paths, against both
def _ctx(crm, lock_redis, **env):
    settings = load_settings({"LEAD_ASSIGN_USER": "alice", **env})
    return InboundContext(crm.records, lock_redis, settings)


def test_the_lead_path_creates_then_notes_the_known_person(crm, lock_redis):
    email = f"{unique('p').lower()}@example.de"
    sub = LeadSubmission("Paul", unique("Pfad"), email, _phone(), "Frage zum Mietvertrag", "", False)
    store.save(lock_redis, "lead", "s1", {"lead": sub.to_dict(), "receivedAt": "2026-11-30 10:00:00"})
    ctx = _ctx(crm, lock_redis)
    created = process_lead(ctx, "s1")
    assert created.path == "created"
    lead = crm.records.get("Lead", created.record_id)
    assert (lead["lastName"], lead["assignedUserId"], lead["status"]) == (sub.last_name, crm.alice_id, "New")
    store.save(lock_redis, "lead", "s2", {"lead": {**sub.to_dict(), "description": "Noch etwas"},
                                          "receivedAt": "2026-11-30 11:00:00"})
    known = process_lead(ctx, "s2")
    assert (known.path, known.entity_type, known.record_id) == ("known", "Lead", lead["id"])
    assert process_lead(ctx, "s2").path == "already_done"
    posts = [n["post"] for n in crm.backend.raw("GET", f"Lead/{lead['id']}/stream").json()["list"]]
    assert any(p.startswith("@alice New website lead") for p in posts)
    assert any(p.startswith("@alice Website enquiry from this person again") and "Noch etwas" in p for p in posts)


def test_the_call_path_journals_a_missed_call_on_a_lead(crm, lock_redis):
    phone = _phone()
    lead = crm.records.create("Lead", {"lastName": unique(), "phoneNumber": phone})
    report = report_from_fields({"CallType": "Missed", "Number": phone, "Agent": "101", "EntityId": lead["id"],
                                 "EntityType": "Lead", "CallStartTimeUTC": "2026-11-30 14:05:00"})
    store.save(lock_redis, "call", "c1", report.to_dict())
    outcome = journal_call(_ctx(crm, lock_redis, THREECX_EXTENSION_USERS="101=alice"), "c1")
    call = crm.records.get("Call", outcome.call_record_id)
    assert (call["status"], call["direction"], call["parentId"], call["assignedUserId"]) == (
        "Not Held", "Inbound", lead["id"], crm.alice_id)
    posts = [n["post"] for n in crm.backend.raw("GET", f"Lead/{lead['id']}/stream").json()["list"]]
    assert any(p.startswith("@alice Call back: missed call from " + phone) for p in posts)


def test_the_phone_index_rebuild_reads_each_record_once_then_only_changes(crm, lock_redis):
    from bitbylaw_tasks.inbound import phone_index

    phone = _phone()
    lead = crm.records.create("Lead", {"lastName": unique("Idx"), "phoneNumber": phone})
    assert (lead["id"], lead["modifiedAt"]) in set(crm.records.list_ids("Lead"))
    first = phone_index.rebuild(lock_redis, crm.records)
    assert first.read == first.listed >= 1
    assert phone_index.lookup(lock_redis, phone).id == lead["id"]
    again = phone_index.rebuild(lock_redis, crm.records)
    assert (again.listed, again.read, again.removed) == (first.listed, 0, 0)
