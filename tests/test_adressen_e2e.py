"""Adressen sync end to end: scenarios A1–A13 of issue 11 through both simulators, the queue and the real worker.

Each test links a party in both simulators (`linked_record`: the Beteiligte create, whose hand-off runs a
first `adressen.sync`), makes addresses as a person on either side (EspoCRM: user `alice`; Advoware: the
simulator's human API, which may insert at a position and edit read-only fields), runs `adressen.sync`
through the queue and the session worker, and checks BOTH sides plus the simulators' request counters,
the stream notes and the durable manual-action list.

- A1 new address in EspoCRM -> one POST with the marker
- A2 edit of a writable field -> PUT on the current position, also after a person inserted one before it
- A3 edit of a read-only field (land, postfach) -> manual action, no retry loop
- A4 a different main address chosen in EspoCRM -> manual action
- A5 address deleted in EspoCRM -> manual action, nothing else lost
- A6 a person edits a marked address in Advoware (writable and read-only fields) -> EspoCRM updated
- A7 address created in Advoware -> appears once in EspoCRM, later edits follow, no duplicates
- A8 marker removed or altered by a person in Advoware -> no second POST; surfaced
- A9 initial sync with equal addresses on both sides -> matched, none duplicated
- A10 both sides changed the same field -> EspoCRM wins, note
- A11 POST answered but the write-back lost (fault `after`, and a failed EspoCRM write) -> no duplicate
- A12 null/"" round trips -> no endless re-sync
- A13 the manual action for A3 closes when Advoware shows the value
Plus bad input (a street too long for Advoware; 300 characters EspoCRM refuses itself; a PLZ with letters
for DE; an unknown country), the webhook chain, the create hand-off and the rolling check as triggers.
"""
from __future__ import annotations

import pytest

from beteiligte_helpers import PERSON, linked_record, run_sync, start_shim, wait_for
from bitbylaw_tasks.adressen import manual
from bitbylaw_tasks.celery_app import app
from bitbylaw_tasks.web.webhooks import register_secret
from conftest import wait_idle
from test_kommunikation_e2e import Counts as KommCounts

POST = "POST /api/v1/advonet/Beteiligte/<betnr>/Adressen"
PUT = "PUT /api/v1/advonet/Beteiligte/<betnr>/Adressen/<index>"
GET = "GET /api/v1/advonet/Beteiligte/<betnr>/Adressen"
DELETE = "DELETE /api/v1/advonet/Beteiligte/<betnr>/Adressen/<index>"
ESPO_WRITES = ("PUT /api/v1/CAdresse/<record_id>", "POST /api/v1/CAdresse")
BERLIN = {"strasse": "Hauptstr. 1", "plz": "10115", "ort": "Berlin", "land": "DE"}
HAMBURG = {"strasse": "Alsterweg 5", "plz": "20095", "ort": "Hamburg", "land": "DE"}


class Party:
    """One party linked in both simulators, and a person's hands on both sides."""

    def __init__(self, sandbox, lock_redis):
        self.sandbox, self.redis = sandbox, lock_redis
        alice = sandbox.state("espocrm").user_by_name("alice")
        record = linked_record(sandbox, {**PERSON, "assignedUserId": alice["id"]})
        self.id, self.betnr = record["id"], int(record["betnr"])
        self.espo = sandbox.state("espocrm")
        self.advo = sandbox.state("advoware")
        self.alice = self.espo.user_by_name("alice")

    # --- EspoCRM as a person ---
    def espo_add(self, **fields) -> str:
        return self.espo.adressen.save(None, {"beteiligteId": self.id, **fields}, self.alice)["id"]

    def espo_edit(self, rid: str, **fields) -> dict:
        return self.espo.adressen.save(rid, fields, self.alice)

    def espo_delete(self, rid: str) -> None:
        self.espo.adressen.delete(rid, self.alice)

    def records(self) -> list[dict]:
        return sorted((r for r in self.espo.adressen.all_records() if r["beteiligteId"] == self.id),
                      key=lambda r: r["createdAt"] + r["id"])

    def record(self, rid: str) -> dict:
        return self.espo.adressen.get(rid)

    # --- Advoware as a person ---
    def truth(self) -> list[dict]:
        return self.advo.adressen_truth(self.betnr)

    def notes(self) -> list[str]:
        return [n["post"] for n in self.espo.all_notes() if n["parentId"] == self.id]

    def actions(self) -> list[manual.OpenAction]:
        return manual.open_actions(self.redis, self.id)

    # --- the sync ---
    def sync(self) -> dict:
        return run_sync(self.id, task="adressen.sync", args=(self.id, "manual"))


class Counts(KommCounts):
    """Request counts since `Counts(sandbox)` (the Kommunikation tests' counter), summed for addresses."""

    @property
    def advoware_writes(self) -> int:
        d = self.delta("advoware")
        return d[POST] + d[PUT] + d[DELETE]

    @property
    def espocrm_writes(self) -> int:
        d = self.delta("espocrm")
        return sum(d[k] for k in ESPO_WRITES)


@pytest.fixture
def party(sandbox, celery_worker, lock_redis):
    return Party(sandbox, lock_redis)


def _synced(party, *addresses, primary=0) -> list[str]:
    ids = [party.espo_add(**a, isPrimary=(i == primary)) for i, a in enumerate(addresses)]
    party.sync()
    assert_idle(party)
    return ids


def assert_idle(party) -> None:
    """A second sync is a no-change check: one Advoware GET, no write anywhere."""
    counts = Counts(party.sandbox)
    outcome = party.sync()
    assert outcome["path"] == "no_change", outcome
    assert counts.advoware_writes == 0 and counts.espocrm_writes == 0
    assert counts.delta("advoware")[GET] == 1


def test_a1_new_address_is_posted_once_with_the_marker(party):
    rid = party.espo_add(**BERLIN, isPrimary=True, bemerkung="Hinterhaus")
    counts = Counts(party.sandbox)
    outcome = party.sync()
    assert outcome["variants"] == {"post": 1} and counts.delta("advoware")[POST] == 1
    (address,) = party.truth()
    assert address["bemerkung"] == f"EspoCRM-ID: {rid}\nHinterhaus" and address["standardAnschrift"] is True
    assert {k: address[k] for k in BERLIN} == BERLIN
    record = party.record(rid)
    assert record["syncStatus"] == "clean" and record["advowareIndex"] == 1 and record["advowareLastSync"]
    assert_idle(party)


def test_a2_writable_edit_is_a_put_on_the_current_position_after_a_person_inserted_one(party):
    (rid,) = _synced(party, BERLIN)
    party.advo.human_add_adresse(party.betnr, {"strasse": "Vorne 1", "ort": "Köln"}, position=1)
    party.espo_edit(rid, strasse="Neue Str. 2", plz="10117")
    counts = Counts(party.sandbox)
    party.sync()
    assert counts.delta("advoware")[PUT] == 1 and counts.delta("advoware")[POST] == 0
    truth = party.truth()
    assert [(a["reihenfolgeIndex"], a["strasse"]) for a in truth] == [(1, "Vorne 1"), (2, "Neue Str. 2")]
    assert truth[1]["plz"] == "10117" and truth[0]["ort"] == "Köln"
    assert len(party.records()) == 2  # the person's address was imported once
    assert party.record(rid)["advowareIndex"] == 2
    assert_idle(party)


def test_a3_read_only_edit_is_a_manual_action_without_a_retry_loop(party):
    (rid,) = _synced(party, BERLIN)
    party.espo_edit(rid, land="AT", postfach="99")
    counts = Counts(party.sandbox)
    outcome = party.sync()
    assert outcome["opened"] == 2 and counts.advoware_writes == 0
    instructions = sorted(a.instruction for a in party.actions())
    assert instructions == [f"in Advoware, party {party.betnr}, address 1: set Land to AT",
                            f"in Advoware, party {party.betnr}, address 1: set Postfach to 99"]
    notes = [n for n in party.notes() if "please change by hand" in n]
    assert len(notes) == 2 and all(n.startswith("@alice ") for n in notes)
    record = party.record(rid)
    assert "set Land to AT" in record["advowareManualAction"] and record["syncStatus"] == "clean"
    assert party.truth()[0]["land"] == "DE"
    assert_idle(party)  # the same actions stay open: no new note, no write, no retry
    assert len([n for n in party.notes() if "please change by hand" in n]) == 2


def test_a13_the_manual_action_closes_when_advoware_shows_the_value(party):
    (rid,) = _synced(party, BERLIN)
    party.espo_edit(rid, land="AT")
    party.sync()
    assert len(party.actions()) == 1
    party.advo.human_update_adresse(party.betnr, 1, land="AT")
    outcome = party.sync()
    assert outcome["closed"] == 1 and party.actions() == []
    assert party.record(rid)["advowareManualAction"] is None
    assert manual.counts(party.redis) == {"open": 0, "opened": 1, "closed": 1}
    assert_idle(party)


def test_a4_a_different_main_address_is_a_manual_action(party):
    berlin, hamburg = _synced(party, BERLIN, HAMBURG, primary=0)
    party.espo_edit(berlin, isPrimary=False)
    party.espo_edit(hamburg, isPrimary=True)
    party.sync()
    assert [a.instruction for a in party.actions()] == [
        f"in Advoware, party {party.betnr}, address 2: make it the main address (Standardanschrift)"]
    assert [a["standardAnschrift"] for a in party.truth()] == [True, False]
    party.advo.human_update_adresse(party.betnr, 2, standardAnschrift=True)
    party.sync()
    assert party.actions() == [] and [a["standardAnschrift"] for a in party.truth()] == [False, True]
    assert_idle(party)


def test_a4_a_new_address_chosen_as_main_is_posted_as_main_without_a_manual_action(party):
    (berlin,) = _synced(party, BERLIN)
    hamburg = party.espo_add(**HAMBURG, isPrimary=True)
    party.sync()
    assert [a["standardAnschrift"] for a in party.truth()] == [False, True] and party.actions() == []
    assert party.record(berlin)["isPrimary"] is False and party.record(hamburg)["isPrimary"] is True
    assert_idle(party)


def test_a5_address_deleted_in_espocrm_is_a_manual_action_and_nothing_else_is_lost(party):
    berlin, hamburg = _synced(party, BERLIN, HAMBURG)
    party.espo_delete(berlin)
    counts = Counts(party.sandbox)
    party.sync()
    assert counts.advoware_writes == 0 and len(party.truth()) == 2
    (action,) = party.actions()
    assert action.instruction.startswith(f"in Advoware, party {party.betnr}, address 1: set Gültig bis")
    assert [r["id"] for r in party.records()] == [hamburg]
    party.advo.human_remove_adresse(party.betnr, 1)  # a person removes it in Advoware
    party.sync()
    assert party.actions() == [] and [r["id"] for r in party.records()] == [hamburg]
    assert party.record(hamburg)["advowareIndex"] == 1 and party.record(hamburg)["isActive"] is True


def test_a6_a_persons_edit_in_advoware_reaches_espocrm(party):
    (rid,) = _synced(party, BERLIN)
    party.advo.human_update_adresse(party.betnr, 1, strasse="Geändert 3", land="AT", gueltigBis="2099-12-31")
    party.sync()
    record = party.record(rid)
    assert (record["strasse"], record["land"], record["gueltigBis"]) == ("Geändert 3", "AT", "2099-12-31")
    assert record["syncStatus"] == "clean" and party.actions() == []
    assert_idle(party)


def test_a7_address_created_in_advoware_appears_once_and_follows(party):
    _synced(party, BERLIN)
    party.advo.human_add_adresse(party.betnr, {"strasse": "Human 7", "plz": "50667", "ort": "Köln", "land": "DE"})
    party.sync()
    imported = [r for r in party.records() if r["strasse"] == "Human 7"]
    assert len(imported) == 1 and imported[0]["syncStatus"] == "clean"
    assert imported[0]["assignedUserId"] == party.alice["id"]
    party.advo.human_update_adresse(party.betnr, 2, ort="Köln-Deutz")
    party.advo.human_add_adresse(party.betnr, {"strasse": "Davor 1", "ort": "Bonn"}, position=1)
    party.sync()
    assert party.record(imported[0]["id"])["ort"] == "Köln-Deutz" and len(party.records()) == 3
    party.espo_edit(imported[0]["id"], strasse="Human 7a")  # and EspoCRM's edits reach it (no marker)
    counts = Counts(party.sandbox)
    party.sync()
    assert counts.delta("advoware")[PUT] == 1 and party.truth()[2]["strasse"] == "Human 7a"
    assert counts.delta("advoware")[GET] == 2  # the plan's read and the one right before the PUT: no retry
    assert len(party.truth()) == 3
    assert_idle(party)


@pytest.mark.parametrize("damaged", ["Hinterhaus", "EspoCRM-ID: 0000000000000dead"])
def test_a8_marker_removed_or_altered_is_surfaced_and_never_posted_again(party, damaged):
    (rid,) = _synced(party, BERLIN)
    party.advo.human_update_adresse(party.betnr, 1, bemerkung=damaged)
    counts = Counts(party.sandbox)
    party.sync()
    assert counts.delta("advoware")[POST] == 0 and len(party.truth()) == 1 and len(party.records()) == 1
    (action,) = party.actions()
    assert f"put 'EspoCRM-ID: {rid}' back into Bemerkung" in action.instruction
    assert any("back into Bemerkung" in n for n in party.notes())
    party.espo_edit(rid, strasse="Weiter 5")
    party.sync()
    assert party.truth()[0]["strasse"] == "Weiter 5" and counts.delta("advoware")[POST] == 0
    party.advo.human_update_adresse(party.betnr, 1, bemerkung=f"EspoCRM-ID: {rid}")
    party.sync()
    assert party.actions() == []


def test_a9_initial_sync_matches_equal_addresses(sandbox, celery_worker, lock_redis):
    party = Party(sandbox, lock_redis)
    party.advo.human_add_adresse(party.betnr, {**BERLIN, "strasse": "hauptstr. 1 ", "standardAnschrift": True})
    party.advo.human_add_adresse(party.betnr, HAMBURG)
    party.espo_add(**BERLIN, isPrimary=True)
    party.espo_add(strasse="Neu 1", ort="Essen", land="DE")
    counts = Counts(sandbox)
    outcome = party.sync()
    assert outcome["variants"] == {"initial_match": 1, "post": 1, "import": 1}
    assert counts.delta("advoware")[POST] == 1 and len(party.truth()) == 3 and len(party.records()) == 3
    assert_idle(party)


def test_a10_both_sides_changed_the_same_field_espocrm_wins_with_a_note(party):
    (rid,) = _synced(party, BERLIN)
    party.espo_edit(rid, ort="Berlin-Mitte")
    party.advo.human_update_adresse(party.betnr, 1, ort="Berlin-Wedding")
    party.sync()
    assert party.truth()[0]["ort"] == "Berlin-Mitte" and party.record(rid)["ort"] == "Berlin-Mitte"
    assert any("EspoCRM's value 'Berlin-Mitte' wins over Advoware's 'Berlin-Wedding'" in n for n in party.notes())
    assert_idle(party)


def test_a11_post_answered_but_lost_or_write_back_failed_creates_no_duplicate(party):
    rid = party.espo_add(**BERLIN)
    party.sandbox.kit("advoware").add_fault(path="/api/v1/advonet/Beteiligte/*/Adressen", method="POST",
                                            status=500, after=True, times=1)
    other = party.espo_add(**HAMBURG)
    party.sandbox.kit("espocrm").add_fault(path=f"/api/v1/CAdresse/{other}", method="PUT", status=503, times=1)
    counts = Counts(party.sandbox)
    outcome = party.sync()  # retried by Celery after the 500 / 503 until it is through
    assert counts.delta("advoware")[POST] == 2 and len(party.truth()) == 2
    assert sorted(a["bemerkung"] for a in party.truth()) == sorted([f"EspoCRM-ID: {rid}", f"EspoCRM-ID: {other}"])
    assert outcome["path"] in ("synced", "no_change")
    wait_for(lambda: party.record(other)["advowareSnapshot"], message="the write-back")
    assert_idle(party)


def test_a12_null_and_empty_string_never_cause_an_endless_resync(party):
    (rid,) = _synced(party, {**BERLIN, "anschrift": ""})
    for ratio in (1.0, 0.0, 0.5):
        party.advo.empty_as_null_ratio = ratio
        assert_idle(party)
    party.espo_edit(rid, postfach="", anschrift=None)
    assert party.record(rid)["syncStatus"] == "clean"  # the hook: "" and null are the same emptiness
    assert_idle(party)


def test_bad_input_gets_a_clear_message_and_the_rest_of_the_party_still_syncs(party):
    with pytest.raises(Exception, match="validationFailure"):  # EspoCRM itself refuses 300 (varchar 255)
        party.espo_add(strasse="x" * 300, ort="Berlin", land="DE")
    long_street = party.espo_add(strasse="x" * 150, ort="Berlin", land="DE")  # EspoCRM takes it, Advoware not
    letters = party.espo_add(strasse="Ring 1", plz="1O1I5", ort="Berlin", land="DE")
    country = party.espo_add(strasse="Ring 2", ort="Nowhere", land="Atlantis")
    good = party.espo_add(**HAMBURG)
    party.sync()
    assert "Straße is 150 characters long; Advoware takes at most 100" in party.record(long_street)["syncErrorMessage"]
    assert "PLZ '1O1I5' is not a valid postcode for DE" in party.record(letters)["syncErrorMessage"]
    assert "Land 'Atlantis' is not a known country code" in party.record(country)["syncErrorMessage"]
    assert all(party.record(r)["syncStatus"] == "failed" for r in (long_street, letters, country))
    assert [a["strasse"] for a in party.truth()] == ["Alsterweg 5"] and party.record(good)["syncStatus"] == "clean"
    party.espo_edit(letters, plz="10115")  # corrected: synced, message gone
    party.sync()
    assert party.record(letters)["syncErrorMessage"] is None and len(party.truth()) == 2


def test_a_cadresse_webhook_reaches_advoware_through_the_shim(sandbox, celery_worker, lock_redis):
    party = Party(sandbox, lock_redis)
    shim = start_shim(sandbox, lock_redis)
    try:
        espo = sandbox.state("espocrm")
        for action in ("create", "update", "delete"):
            hook = espo.hooks.subscribe(f"CAdresse.{action}", f"{shim.url}/vmh/webhook/adressen/{action}",
                                        espo.integration_user, skip_own=True)
            register_secret(lock_redis, hook["id"], hook["secretKey"])
        rid = party.espo_add(**BERLIN)
        espo.flush_webhooks()
        wait_for(lambda: len(party.truth()) == 1, message="the POST")
        wait_idle()
        party.espo_edit(rid, strasse="Per Webhook 9")
        espo.flush_webhooks()
        wait_for(lambda: party.truth()[0]["strasse"] == "Per Webhook 9", message="the PUT")
        wait_idle()
        party.espo_delete(rid)
        espo.flush_webhooks()
        wait_for(lambda: party.actions(), message="the manual action of the delete")
    finally:
        shim.stop()


def test_a_new_partys_addresses_are_posted_by_the_create_hand_off(sandbox, celery_worker, lock_redis):
    espo = sandbox.state("espocrm")
    record = espo.human_create({**PERSON, "lastName": "Handoff"})
    espo.adressen.save(None, {"beteiligteId": record["id"], **BERLIN}, espo.user_by_name("alice"))
    espo.hooks.clear()
    run_sync(record["id"], "create", "webhook")  # beteiligte.sync; its hand-off runs adressen.sync
    betnr = int(espo.get(record["id"])["betnr"])
    (address,) = sandbox.state("advoware").adressen_truth(betnr)
    assert address["strasse"] == BERLIN["strasse"] and address["bemerkung"].startswith("EspoCRM-ID: ")


def test_a_persons_edit_in_advoware_is_found_by_the_rolling_check(party):
    (rid,) = _synced(party, BERLIN)
    party.advo.human_update_adresse(party.betnr, 1, ort="Berlin-Pankow", postfach="77")
    run_sync(party.id, "check", "sweep")  # the sweep's check of the party; its hand-off checks the addresses
    record = party.record(rid)
    assert (record["ort"], record["postfach"]) == ("Berlin-Pankow", "77")


def test_the_sweep_finds_an_address_whose_webhook_was_lost(party):
    (rid,) = _synced(party, BERLIN)
    party.espo_edit(rid, strasse="Verloren 1")  # dirty; no webhook subscribed, so none arrives
    other = Party(party.sandbox, party.redis)
    other.espo_add(**HAMBURG)  # pending_sync
    clean = Party(party.sandbox, party.redis)
    _synced(clean, BERLIN)
    assert _sweep() == {"parties": 2, "queued": 2}
    assert party.truth()[0]["strasse"] == "Verloren 1" and other.truth()[0]["strasse"] == HAMBURG["strasse"]
    assert _sweep() == {"parties": 0, "queued": 0}


def _sweep() -> dict:
    wait_idle()
    result = app.send_task("adressen.sweep").get(timeout=30)
    wait_idle()
    return result
