"""The Advoware client's Adressen calls against the simulator over HTTP (SPEC §11)."""
from __future__ import annotations

import pytest

from integrations.advoware import AddressMoved, AmbiguousAddress
from integrations.errors import NotFound
from test_client_advoware import cache, client_for, shared, sim  # noqa: F401  (fixtures)


def _marked(marker: str):
    return lambda address: marker in (address.get("bemerkung") or "")


@pytest.fixture
def party(sim):
    return sim.state.create_beteiligte({"name": "Adressen", "vorname": "Anna"})["betNr"]


def test_create_list_and_update_by_a_fresh_lookup(sim, cache, party):
    client = client_for(sim, cache)
    first = client.create_adresse(party, {"strasse": "A", "plz": "1", "ort": "X", "land": "DE",
                                          "bemerkung": "EspoCRM-ID: a1"})
    client.create_adresse(party, {"strasse": "B", "bemerkung": "EspoCRM-ID: b2"})
    assert first["reihenfolgeIndex"] == 1
    sim.state.human_add_adresse(party, {"strasse": "Human"}, position=1)  # shifts A and B down
    answer = client.update_adresse(party, _marked("EspoCRM-ID: b2"),
                                   {"strasse": "B2", "plz": "2", "ort": "Y", "anschrift": None, "land": "AT"})
    assert answer["reihenfolgeIndex"] == 3 and answer["strasse"] == "B2"
    truth = sim.state.adressen_truth(party)
    assert [a["strasse"] for a in truth] == ["Human", "A", "B2"]
    assert truth[2]["land"] is None  # land is not writable by PUT: never sent, never set
    assert client.calls["GET Adressen"] == 1 and client.calls["PUT Adressen"] == 1


def test_update_sends_all_four_writable_fields_so_nothing_is_cleared_by_omission(sim, cache, party):
    client = client_for(sim, cache)
    client.create_adresse(party, {"strasse": "A", "plz": "1", "ort": "X", "anschrift": "Z",
                                  "bemerkung": "EspoCRM-ID: a"})
    client.update_adresse(party, _marked("EspoCRM-ID: a"), {"strasse": "A2", "plz": "1", "ort": "X", "anschrift": "Z"})
    assert {k: sim.state.adressen_truth(party)[0][k] for k in ("strasse", "plz", "ort", "anschrift")} == {
        "strasse": "A2", "plz": "1", "ort": "X", "anschrift": "Z"}


def test_update_of_a_missing_or_doubled_address_refuses(sim, cache, party):
    client = client_for(sim, cache)
    with pytest.raises(NotFound):
        client.update_adresse(party, _marked("EspoCRM-ID: none"), {"strasse": "x"})
    client.create_adresse(party, {"strasse": "A", "bemerkung": "EspoCRM-ID: same"})
    client.create_adresse(party, {"strasse": "B", "bemerkung": "EspoCRM-ID: same"})
    with pytest.raises(AmbiguousAddress):
        client.update_adresse(party, _marked("EspoCRM-ID: same"), {"strasse": "x"})
    assert [a["strasse"] for a in sim.state.adressen_truth(party)] == ["A", "B"]


def test_an_address_moved_between_get_and_put_is_reported_as_transient(sim, cache, party):
    client = client_for(sim, cache)
    client.create_adresse(party, {"strasse": "A", "bemerkung": "EspoCRM-ID: a"})
    moved = []

    def match(address):
        if not moved:  # the first look (during the GET): a person inserts an address right after it
            moved.append(sim.state.human_add_adresse(party, {"strasse": "Human"}, position=1))
        return "EspoCRM-ID: a" in (address.get("bemerkung") or "")

    with pytest.raises(AddressMoved) as err:
        client.update_adresse(party, match, {"strasse": "A2"})
    assert err.value.transient
    assert client.update_adresse(party, _marked("EspoCRM-ID: a"), {"strasse": "A2"})["reihenfolgeIndex"] == 2


def test_a_deleted_party_has_no_addresses(sim, cache, party):
    client = client_for(sim, cache)
    sim.state.delete_beteiligte(party)
    with pytest.raises(NotFound):
        client.list_adressen(party)


def test_an_unmarked_address_found_by_its_content_is_updated_without_a_false_move(sim, cache, party):
    client = client_for(sim, cache)
    sim.state.human_add_adresse(party, {"strasse": "Human 1", "ort": "Bonn"})
    seen = client.list_adressen(party)[0]

    def same(address):
        return all((address.get(k) or None) == (seen.get(k) or None) for k in seen if k != "reihenfolgeIndex")

    answer = client.update_adresse(party, same, {"strasse": "Human 2", "ort": "Bonn"})
    assert answer["strasse"] == "Human 2" and sim.state.adressen_truth(party)[0]["strasse"] == "Human 2"
