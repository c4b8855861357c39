"""Both inbound channels end to end: the shim (Flask test client) -> queue `leads` -> the session's real
Celery worker -> the EspoCRM simulator; the phone index filled by lead intake, journaling, the Kommunikation
sync and the rebuild task; the lookup answering from it (SPEC §12)."""
from __future__ import annotations

import base64
import time

import pytest
import requests

from bitbylaw_tasks.inbound import phone_index, store
from bitbylaw_tasks.web import create_app
from conftest import wait_idle
from inbound_helpers import API_KEY, TOKEN

LEAD = {"firstName": "Erika", "lastName": "Mustermann", "emailAddress": "erika@example.de",
        "phoneNumber": "030 1234567", "description": "Bitte um Rückruf", "consent": "1"}
ALICE, BOB = "5f0000000000000a2", "5f0000000000000a3"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"3cx:{API_KEY}".encode()).decode()}


@pytest.fixture
def inbound(celery_app, celery_worker, sandbox, lock_redis, monkeypatch):
    """A shim on the app's Redis with the inbound credentials; `configure(**changes)` changes the settings
    the worker's tasks read (LEAD_ASSIGN_USER …) for this test."""
    from bitbylaw_tasks.celery_app import settings_of

    base = settings_of(celery_app).replace(lead_token=TOKEN, threecx_api_key=API_KEY,
                                           threecx_extension_users={"101": "alice", "102": "bob"})

    class Inbound:
        def __init__(self):
            self.configure()

        def configure(self, **changes):
            self.settings = base.replace(**changes)
            monkeypatch.setitem(celery_app.conf, "bitbylaw_settings", self.settings)
            self.client = create_app(self.settings).test_client()

        def lead(self, data=LEAD):
            resp = self.client.post("/vmh/webhook/lead", json=data, headers={"X-Lead-Token": TOKEN})
            assert resp.status_code in (200, 202), resp.get_json()
            wait_idle()
            return resp.get_json()

        def call(self, **fields):
            report = {"Number": "030 1234567", "CallType": "Inbound", "Agent": "101", "Duration": "00:03:10",
                      "CallStartTimeUTC": "2026-11-30 14:05:00", "EntityId": "", "EntityType": "", **fields}
            resp = self.client.post("/3cx/calls", json=report, headers=BASIC)
            assert resp.status_code in (200, 202), resp.get_json()
            wait_idle()
            return resp.get_json()

        def lookup(self, number):
            resp = self.client.get("/3cx/lookup", query_string={"number": number}, headers=BASIC)
            assert resp.status_code == 200
            return resp.get_json()["contacts"]

    return Inbound()


def _crm(sandbox, entity):
    return requests.get(f"{sandbox.url('espocrm')}/_sandbox/crm/{entity}", timeout=5).json()


def _notes(sandbox, parent_type, parent_id):
    return [n for n in sandbox.state("espocrm").all_notes()
            if n["parentType"] == parent_type and n["parentId"] == parent_id]


# ------------------------------------------------------------------ leads
def test_a_new_lead_is_created_assigned_noted_with_a_mention_and_indexed(inbound, sandbox, lock_redis):
    inbound.configure(lead_assign_user="alice")
    queued = inbound.lead()
    leads = _crm(sandbox, "Lead")
    assert len(leads) == 1
    lead = leads[0]
    assert (lead["firstName"], lead["lastName"], lead["status"], lead["source"], lead["assignedUserId"]) == (
        "Erika", "Mustermann", "New", "Web Site", ALICE)
    assert lead["emailAddress"] == "erika@example.de" and lead["phoneNumber"] == "+49301234567"
    assert lead["description"].startswith("Bitte um Rückruf\n\nConsent (website form): given ")
    assert lead["consentGiven"] is True and lead["consentAt"] == store.load(lock_redis, "lead", queued["id"])["receivedAt"]
    (note,) = _notes(sandbox, "Lead", lead["id"])
    assert note["post"].startswith("@alice New website lead") and "@alice" in note["data"]["mentions"]
    assert store.load(lock_redis, "lead", queued["id"])["done"] is True
    (contact,) = inbound.lookup("+49 30 1234567")
    assert (contact["entityType"], contact["id"], contact["lastName"]) == ("Lead", lead["id"], "Mustermann")
    assert contact["contactUrl"].endswith(f"/#Lead/view/{lead['id']}")


def test_a_resubmission_and_a_redelivered_task_create_one_lead(inbound, sandbox, celery_app):
    first = inbound.lead()
    assert inbound.lead()["status"] == "duplicate"
    result = celery_app.send_task("leads.create_lead", (first["id"],)).get(timeout=30)  # the message again
    assert result["path"] == "already_done"
    assert len(_crm(sandbox, "Lead")) == 1 and len(sandbox.state("espocrm").all_notes()) == 1


def test_a_known_party_gets_a_note_mentioning_its_user_and_no_lead(inbound, sandbox):
    party = sandbox.state("espocrm").human_create({
        "firstName": "Erika", "lastName": "Mustermann", "assignedUserId": BOB,
        "emailAddressData": [{"emailAddress": "Erika@Example.de", "primary": True}]})
    inbound.configure(lead_assign_user="alice")
    inbound.lead()
    assert _crm(sandbox, "Lead") == []
    (note,) = _notes(sandbox, "CBeteiligte", party["id"])
    assert note["post"].startswith("@bob Website enquiry from this person again") and "Bitte um Rückruf" in note["post"]


def test_a_known_contact_by_phone_or_an_earlier_lead_gets_the_note(inbound, sandbox):
    espo = sandbox.state("espocrm")
    contact = sandbox.app("espocrm").extensions["espocrm_crm"].create(
        "Contact", {"lastName": "Muster", "phoneNumberData": [
            {"phoneNumber": "+49 171 000000", "type": "Mobile"}, {"phoneNumber": "+49301234567", "type": "Office"}]},
        espo.integration_user)
    inbound.lead({**LEAD, "emailAddress": "other@example.de"})
    assert _crm(sandbox, "Lead") == [] and len(_notes(sandbox, "Contact", contact["id"])) == 1
    inbound.lead({**LEAD, "phoneNumber": "", "emailAddress": "new@example.de"})
    (lead,) = _crm(sandbox, "Lead")
    inbound.lead({**LEAD, "phoneNumber": "", "emailAddress": "NEW@example.de", "description": "Zweite Nachricht"})
    assert len(_crm(sandbox, "Lead")) == 1 and len(_notes(sandbox, "Lead", lead["id"])) == 2


def test_round_robin_over_a_team(inbound, sandbox):
    requests.post(f"{sandbox.url('espocrm')}/_sandbox/teams", json={"id": "team-intake", "users": ["alice", "bob"]},
                  timeout=5).raise_for_status()
    inbound.configure(lead_assign_team="team-intake", lead_assign_user="alice")
    for n in range(4):
        inbound.lead({**LEAD, "emailAddress": f"p{n}@example.de", "phoneNumber": f"030 555000{n}"})
    leads = sorted(_crm(sandbox, "Lead"), key=lambda r: r["createdAt"] + r["id"])
    assert sorted(r["assignedUserId"] for r in leads) == [ALICE, ALICE, BOB, BOB]
    for lead in leads:
        mention = "@alice" if lead["assignedUserId"] == ALICE else "@bob"
        assert _notes(sandbox, "Lead", lead["id"])[0]["post"].startswith(mention)


# ------------------------------------------------------------------ 3CX journaling
def test_a_missed_call_from_a_party_is_journaled_with_a_call_back_note_once(inbound, sandbox, lock_redis, celery_app):
    party = sandbox.state("espocrm").human_create({
        "firstName": "Max", "lastName": "Muster", "phoneNumberData": [{"phoneNumber": "030 1234567", "type": "Office"}]})
    phone_index.index_record(lock_redis, "CBeteiligte", sandbox.state("espocrm").get(party["id"]))
    queued = inbound.call(CallType="Missed", Agent="102", Duration="00:00:00")
    (call,) = _crm(sandbox, "Call")
    assert (call["status"], call["direction"], call["parentType"], call["parentId"], call["assignedUserId"]) == (
        "Not Held", "Inbound", "CBeteiligte", party["id"], BOB)
    assert (call["dateStart"], call["dateEnd"], call["duration"]) == ("2026-11-30 14:05:00", "2026-11-30 14:05:00", 0)
    (note,) = _notes(sandbox, "CBeteiligte", party["id"])
    assert note["post"].startswith("@bob Call back: missed call from +49301234567")
    assert inbound.call(CallType="Missed", Agent="102", Duration="00:00:00")["status"] == "duplicate"
    assert celery_app.send_task("leads.journal_call", (queued["id"],)).get(timeout=30)["path"] == "already_done"
    assert len(_crm(sandbox, "Call")) == 1 and len(sandbox.state("espocrm").all_notes()) == 1


def test_an_answered_call_uses_the_lookups_match_and_is_held(inbound, sandbox):
    lead = sandbox.app("espocrm").extensions["espocrm_crm"].create(
        "Lead", {"lastName": "L", "phoneNumber": "+49301234567"}, sandbox.state("espocrm").integration_user)
    inbound.call(CallType="Outbound", EntityId=lead["id"], EntityType="Lead", Agent="101")
    (call,) = _crm(sandbox, "Call")
    assert (call["status"], call["direction"], call["parentId"], call["assignedUserId"], call["duration"]) == (
        "Held", "Outbound", lead["id"], ALICE, 190)
    assert call["dateEnd"] == "2026-11-30 14:08:10" and sandbox.state("espocrm").all_notes() == []


def test_an_unknown_number_is_journaled_without_parent_or_as_a_new_lead(inbound, sandbox, lock_redis):
    inbound.call(CallType="Missed", Number="030 9999999", Agent="999")
    (call,) = _crm(sandbox, "Call")
    assert call["parentType"] is None and call["assignedUserId"] is None and _crm(sandbox, "Lead") == []
    (note,) = _notes(sandbox, "Call", call["id"])
    assert note["post"].startswith("Call back: missed call from +49309999999")
    inbound.configure(threecx_unknown_creates_lead=True)
    inbound.call(CallType="Inbound", Number="030 8888888", Agent="101")
    (lead,) = _crm(sandbox, "Lead")
    assert (lead["phoneNumber"], lead["source"], lead["assignedUserId"]) == ("+49308888888", "Call", ALICE)
    new_call = next(c for c in _crm(sandbox, "Call") if c["id"] != call["id"])
    assert (new_call["parentType"], new_call["parentId"]) == ("Lead", lead["id"])
    assert inbound.lookup("030 8888888")[0]["id"] == lead["id"]


# ------------------------------------------------------------------ the phone index
def test_the_rebuild_indexes_changed_records_only_and_drops_deleted_ones(inbound, sandbox, lock_redis, celery_app):
    espo = sandbox.state("espocrm")
    a = espo.human_create({"lastName": "A", "phoneNumberData": [{"phoneNumber": "030 1111111", "type": "Office"}]})
    b = espo.human_create({"firmenname": "B GmbH", "phoneNumberData": [{"phoneNumber": "0171 2222222", "type": "Mobile"}]})
    first = celery_app.send_task("leads.rebuild_phone_index").get(timeout=30)
    assert first["read"] == 2 and first["removed"] == 0
    assert inbound.lookup("0301111111")[0]["id"] == a["id"]
    (company,) = inbound.lookup("+491712222222")
    assert (company["company"], company["phoneMobile"]) == ("B GmbH", "+491712222222")
    assert celery_app.send_task("leads.rebuild_phone_index").get(timeout=30)["read"] == 0
    time.sleep(1.1)  # a new modifiedAt second
    espo.human_update(a["id"], {"phoneNumberData": [{"phoneNumber": "030 3333333", "type": "Office"}]})
    espo.delete(b["id"])
    again = celery_app.send_task("leads.rebuild_phone_index").get(timeout=30)
    assert (again["read"], again["removed"]) == (1, 1)
    assert inbound.lookup("0301111111") == [] and inbound.lookup("+491712222222") == []
    assert inbound.lookup("0303333333")[0]["id"] == a["id"]


def test_several_owners_the_most_recently_modified_answers(inbound, sandbox, lock_redis):
    espo = sandbox.state("espocrm")
    old = espo.human_create({"lastName": "Alt", "phoneNumberData": [{"phoneNumber": "030 1234567", "type": "Office"}]})
    phone_index.index_record(lock_redis, "CBeteiligte", {**espo.get(old["id"]), "modifiedAt": "2026-01-01 00:00:00"})
    inbound.lead(LEAD | {"emailAddress": "x@example.de", "phoneNumber": "+49 30 7654321"})
    lead = _crm(sandbox, "Lead")[0]  # a later record owning the same number too
    phone_index.index_record(lock_redis, "Lead", {**lead, "phoneNumberData": [{"phoneNumber": "030 1234567"}]})
    assert inbound.lookup("030 1234567")[0]["entityType"] == "Lead"


def test_the_kommunikation_sync_keeps_the_index_current(inbound, sandbox, lock_redis):
    from beteiligte_helpers import linked_record

    record = linked_record(sandbox, {"firstName": "Kai", "lastName": "Komm",
                                     "phoneNumberData": [{"phoneNumber": "+49 30 4445556", "type": "Office"}]})
    (contact,) = inbound.lookup("030 4445556")
    assert (contact["entityType"], contact["id"]) == ("CBeteiligte", record["id"])


def test_a_lookup_miss_asks_espocrm_once_and_indexes_the_answer(inbound, sandbox, lock_redis):
    inbound.configure(threecx_miss_fallback=True)
    espo = sandbox.state("espocrm")
    party = espo.human_create({"lastName": "Fallback", "phoneNumberData": [{"phoneNumber": "+49306667778", "type": "Office"}]})
    kit = sandbox.kit("espocrm")
    before = sum(n for k, n in kit.calls().items() if "CBeteiligte" in k)
    assert inbound.lookup("030 6667778")[0]["id"] == party["id"]
    assert inbound.lookup("030 6667778")[0]["id"] == party["id"]  # now from the index
    assert inbound.lookup("030 0000001") == [] and inbound.lookup("030 0000001") == []  # the miss is remembered
    assert sum(n for k, n in kit.calls().items() if "CBeteiligte" in k) - before == 2
