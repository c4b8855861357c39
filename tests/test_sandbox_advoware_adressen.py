"""The Advoware simulator's Adressen over real HTTP: every quirk of SPEC §11, each with its test."""
from __future__ import annotations

import pytest

from tests.test_sandbox_advoware import shared_sim, sim  # noqa: F401  (fixtures: the module's simulator, reset)

FULL = {"strasse": "Hauptstr. 1", "plz": "10115", "ort": "Berlin", "land": "DE", "postfach": "12 34",
        "postfachPlz": "10002", "anschrift": "Kanzlei Nord", "bemerkung": "EspoCRM-ID: abc123",
        "standardAnschrift": True, "gueltigVon": "2024-01-01", "gueltigBis": "2030-12-31"}


def _party(sim) -> int:
    return sim.person()["betNr"]


def _post(sim, betnr, **fields):
    answer = sim.api("POST", f"/Beteiligte/{betnr}/Adressen", json=fields)
    assert answer.status_code == 201, answer.text
    return answer.json()


def _list(sim, betnr) -> list[dict]:
    answer = sim.api("GET", f"/Beteiligte/{betnr}/Adressen")
    assert answer.status_code == 200, answer.text
    return answer.json()


def _empty(value) -> bool:
    return value in (None, "")


def test_post_takes_all_eleven_fields_and_answers_the_position(sim):
    betnr = _party(sim)
    created = _post(sim, betnr, **FULL)
    assert created["reihenfolgeIndex"] == 1
    truth = sim.admin("GET", f"/beteiligte/{betnr}/adressen").json()[0]
    expected = dict(FULL, gueltigVon="2024-01-01T00:00:00", gueltigBis="2030-12-31T00:00:00")
    assert {k: truth[k] for k in FULL} == expected
    second = _post(sim, betnr, strasse="Nebenweg 2", plz="20095", ort="Hamburg")
    assert second["reihenfolgeIndex"] == 2
    assert [a["strasse"] for a in _list(sim, betnr)] == ["Hauptstr. 1", "Nebenweg 2"]


def test_post_validates_types_and_length(sim):
    betnr = _party(sim)
    assert sim.api("POST", f"/Beteiligte/{betnr}/Adressen", json={"strasse": 5}).status_code == 400
    assert sim.api("POST", f"/Beteiligte/{betnr}/Adressen", json={"standardAnschrift": "ja"}).status_code == 400
    assert sim.api("POST", f"/Beteiligte/{betnr}/Adressen", json={"gueltigVon": "morgen"}).status_code == 400
    too_long = sim.api("POST", f"/Beteiligte/{betnr}/Adressen", json={"strasse": "x" * 256})
    assert too_long.status_code == 400 and "strasse" in too_long.json()["Message"]
    assert sim.api("POST", "/Beteiligte/999999/Adressen", json={"strasse": "a"}).status_code == 404
    assert _list(sim, betnr) == []


def test_a_posted_main_address_takes_the_flag(sim):
    betnr = _party(sim)
    _post(sim, betnr, strasse="A", standardAnschrift=True)
    _post(sim, betnr, strasse="B", standardAnschrift=True)
    assert [a["standardAnschrift"] for a in _list(sim, betnr)] == [False, True]


def test_put_changes_only_the_four_writable_fields_and_ignores_the_rest(sim):
    betnr = _party(sim)
    _post(sim, betnr, **FULL)
    body = {"strasse": "Neue Str. 9", "plz": "80331", "ort": "München", "anschrift": "c/o X",
            "land": "AT", "postfach": "99", "postfachPlz": "1", "bemerkung": "changed", "standardAnschrift": False,
            "gueltigVon": "2020-01-01", "gueltigBis": "2021-01-01"}
    answer = sim.api("PUT", f"/Beteiligte/{betnr}/Adressen/1", json=body)
    assert answer.status_code == 200, answer.text
    truth = sim.admin("GET", f"/beteiligte/{betnr}/adressen").json()[0]
    assert {k: truth[k] for k in ("strasse", "plz", "ort", "anschrift")} == {
        "strasse": "Neue Str. 9", "plz": "80331", "ort": "München", "anschrift": "c/o X"}
    for name in ("land", "postfach", "postfachPlz", "bemerkung", "standardAnschrift"):
        assert truth[name] == FULL[name], name
    assert truth["gueltigBis"] == "2030-12-31T00:00:00" and truth["gueltigVon"] == "2024-01-01T00:00:00"


def test_put_is_a_full_replace_of_the_four(sim):
    betnr = _party(sim)
    _post(sim, betnr, **FULL)
    assert sim.api("PUT", f"/Beteiligte/{betnr}/Adressen/1", json={"strasse": "Only"}).status_code == 200
    truth = sim.admin("GET", f"/beteiligte/{betnr}/adressen").json()[0]
    assert truth["strasse"] == "Only" and truth["plz"] is None and truth["ort"] is None and truth["anschrift"] is None
    assert truth["land"] == "DE"


def test_put_addresses_a_position_that_shifts_when_a_person_inserts_or_removes(sim):
    betnr = _party(sim)
    _post(sim, betnr, strasse="Erste", bemerkung="EspoCRM-ID: one")
    _post(sim, betnr, strasse="Zweite", bemerkung="EspoCRM-ID: two")
    added = sim.admin("POST", f"/human/beteiligte/{betnr}/adressen", json={"strasse": "Human", "position": 1})
    assert added.status_code == 201 and added.json()["reihenfolgeIndex"] == 1
    listed = _list(sim, betnr)
    assert [a["strasse"] for a in listed] == ["Human", "Erste", "Zweite"]
    assert [a["reihenfolgeIndex"] for a in listed] == [1, 2, 3]
    # PUT on the old position of "Zweite" (2) now hits "Erste": the index is a position, not an id.
    sim.api("PUT", f"/Beteiligte/{betnr}/Adressen/2", json={"strasse": "Hit"})
    assert [a["strasse"] for a in _list(sim, betnr)] == ["Human", "Hit", "Zweite"]
    assert sim.admin("DELETE", f"/human/beteiligte/{betnr}/adressen/1").status_code == 200
    listed = _list(sim, betnr)
    assert [(a["reihenfolgeIndex"], a["strasse"]) for a in listed] == [(1, "Hit"), (2, "Zweite")]
    assert sim.api("PUT", f"/Beteiligte/{betnr}/Adressen/3", json={"strasse": "x"}).status_code == 404
    assert sim.api("PUT", f"/Beteiligte/{betnr}/Adressen/zero", json={"strasse": "x"}).status_code == 404


def test_delete_answers_403_and_removes_nothing(sim):
    betnr = _party(sim)
    _post(sim, betnr, strasse="Bleibt")
    answer = sim.api("DELETE", f"/Beteiligte/{betnr}/Adressen/1")
    assert answer.status_code == 403 and answer.json()["Message"]
    assert [a["strasse"] for a in _list(sim, betnr)] == ["Bleibt"]


def test_a_person_may_edit_read_only_fields_in_advoware(sim):
    betnr = _party(sim)
    _post(sim, betnr, strasse="A", land="DE", standardAnschrift=True)
    _post(sim, betnr, strasse="B", land="DE")
    edited = sim.admin("PATCH", f"/human/beteiligte/{betnr}/adressen/2",
                       json={"land": "AT", "standardAnschrift": True, "gueltigBis": "2025-01-31"})
    assert edited.status_code == 200, edited.text
    truth = sim.admin("GET", f"/beteiligte/{betnr}/adressen").json()
    assert truth[1]["land"] == "AT" and truth[1]["gueltigBis"] == "2025-01-31T00:00:00"
    assert [a["standardAnschrift"] for a in truth] == [False, True]
    assert sim.admin("PATCH", f"/human/beteiligte/{betnr}/adressen/2", json={"farbe": "rot"}).status_code == 400


def test_empty_fields_read_as_null_or_empty_string_inconsistently(sim):
    betnr = _party(sim)
    for i in range(6):
        _post(sim, betnr, strasse=f"S{i}")
    first = _list(sim, betnr)
    empties = [a[name] for a in first for name in ("plz", "ort", "land", "postfach", "anschrift", "bemerkung")]
    assert None in empties and "" in empties  # both forms occur
    assert _list(sim, betnr) == first  # stable between reads without a write
    # A write may flip the form of an empty field (per address, field and write).
    before = {name: first[0][name] for name in ("land", "postfach", "postfachPlz", "bemerkung")}
    flips = 0
    for n in range(8):
        sim.api("PUT", f"/Beteiligte/{betnr}/Adressen/1", json={"strasse": f"S{n}"})
        now = _list(sim, betnr)[0]
        flips += sum(now[k] != before[k] for k in before)
        assert all(_empty(now[k]) for k in before)
    assert flips > 0


def test_the_empty_form_can_be_pinned(sim):
    betnr = _party(sim)
    _post(sim, betnr, strasse="S")
    sim.admin("POST", "/quirks", json={"empty_as_null_ratio": 1.0})
    assert _list(sim, betnr)[0]["plz"] is None
    sim.admin("POST", "/quirks", json={"empty_as_null_ratio": 0.0})
    assert _list(sim, betnr)[0]["plz"] == ""
    sim.admin("POST", "/reset")
    assert sim.admin("GET", "/quirks").json()["empty_as_null_ratio"] == 0.5


def test_deleted_party_has_no_addresses(sim):
    betnr = _party(sim)
    _post(sim, betnr, strasse="S")
    sim.admin("DELETE", f"/beteiligte/{betnr}")
    assert sim.api("GET", f"/Beteiligte/{betnr}/Adressen").status_code == 404


def test_state_snapshot_keeps_addresses(sim):
    betnr = _party(sim)
    _post(sim, betnr, strasse="S", bemerkung="EspoCRM-ID: x")
    snapshot = sim.admin("GET", "/state").json()
    sim.admin("POST", "/reset")
    sim._token = None  # a reset revokes every token
    assert sim.admin("PUT", "/state", json=snapshot).status_code == 200
    assert [a["bemerkung"] for a in _list(sim, betnr)] == ["EspoCRM-ID: x"]
    created = _post(sim, betnr, strasse="T")
    keys = [a["_key"] for a in sim.admin("GET", f"/beteiligte/{betnr}/adressen").json()]
    assert created["reihenfolgeIndex"] == 2 and len(set(keys)) == 2


def test_adressen_calls_are_counted_per_route(sim):
    betnr = _party(sim)
    sim.admin("DELETE", "/calls")
    _post(sim, betnr, strasse="S")
    _list(sim, betnr)
    sim.api("PUT", f"/Beteiligte/{betnr}/Adressen/1", json={"strasse": "T"})
    calls = sim.admin("GET", "/calls").json()
    assert sum(v for k, v in calls.items() if k.startswith("POST") and "Adressen" in k) == 1
    assert sum(v for k, v in calls.items() if k.startswith("GET") and "Adressen" in k) == 1
    assert sum(v for k, v in calls.items() if k.startswith("PUT") and "Adressen" in k) == 1
