"""The Kommunikation planner, scenario by scenario (SPEC §5.5), on a pure in-memory world.

Scenarios (each a test below, named after its id):
  V1 new in EspoCRM → created in Advoware          V2 deleted in EspoCRM → empty slot
  V3 deleted in Advoware → deleted from EspoCRM    V4 new in Advoware → added to EspoCRM, marker
  V5 changed in EspoCRM (primary, type, format)    V6 changed in Advoware → EspoCRM, marker refreshed
  C1 EspoCRM adds A, Advoware changes B            C2 same entry changed on both sides → EspoCRM, note
  C3 EspoCRM deletes X, Advoware changes X → slot  C4 Advoware adds Y, EspoCRM changes another
  C5 Advoware blanks X, EspoCRM changes another
  I1 initial, identical values → markers only      I2 initial, only EspoCRM → created
  I3 initial, only Advoware → added, markers       I4 initial, mixed → no duplicate
  I5 initial, equal value, different kind/type → matched once
  S1 EspoCRM deletes → blank with slot marker      S2 new value with a free slot → slot reused (PUT)
  S3 no free slot of that kind → POST              S4 slots never shown in EspoCRM, not in the hash
  D1 both  D2 to_espocrm  D3 to_advoware  D4 force_espo_wins
  H1 nothing changed → no write at all  H2 Kommunikation change → hash changes  H3 slots → hash unchanged
  K1 kommKz 0 + marker 3 → Mobil  K2 EspoCRM types  K3 '@' → MailGesch  K4 mobile shapes  K5 else TelGesch
The end-to-end versions through the simulators live elsewhere; these pin the decisions.
"""

from __future__ import annotations

import pytest
from kommunikation_world import World

from bitbylaw_tasks.kommunikation.actions import AdvowareWrite
from bitbylaw_tasks.kommunikation.kinds import EMAIL, PHONE, KommKz, array_for_kind, comparison_key, \
    is_plausible_email, kind_matches_espo_type
from bitbylaw_tasks.kommunikation.markers import SlotMarker, SyncMarker, build_sync_bemerkung, parse_bemerkung
from bitbylaw_tasks.kommunikation.plan import plan_kommunikation_sync
from bitbylaw_tasks.kommunikation.status import kommunikation_hash

MOBIL, OFFICE, MAIL = "0171 1111111", "030 1234567", "max@kanzlei.de"


def assert_converged(world: World) -> None:
    """Both sides hold the same entries (kinds, primaries), markers are right, a second plan is empty."""
    live, kinds = {}, {}
    for entry in world.advoware:
        if entry["tlf"] and array_for_kind(entry["kommKz"]) and (
                array_for_kind(entry["kommKz"]) == PHONE or is_plausible_email(entry["tlf"])):
            key = comparison_key(array_for_kind(entry["kommKz"]), entry["tlf"])
            assert key not in live, f"duplicate in Advoware: {entry['tlf']!r}"
            live[key] = entry
            marker = parse_bemerkung(entry["bemerkung"]).marker
            assert isinstance(marker, SyncMarker) and marker.value == entry["tlf"]
            # what GET reports (kommKz 0 for masked entries) is all the sync can know
            if entry["id"] not in world.masked:
                assert marker.kommkz == entry["kommKz"]
            kinds[key] = marker.kommkz
    espo = {comparison_key(EMAIL, e["emailAddress"]): e for e in world.emails}
    espo.update({comparison_key(PHONE, p["phoneNumber"]): p for p in world.phones})
    assert set(espo) == set(live)
    for key, item in espo.items():
        entry = live[key]
        assert item.get("phoneNumber", item.get("emailAddress")) == entry["tlf"]
        assert bool(item["primary"]) == bool(entry["online"])
        if key[0] == PHONE:
            assert kind_matches_espo_type(kinds[key], item["type"])
        assert "[ESPOCRM" not in entry["tlf"]
    again = world.plan()
    assert again.is_empty, str(again)


@pytest.fixture
def world() -> World:
    """A Beteiligter after its first sync: a mobile (primary), an office phone, an e-mail (primary)."""
    w = World(
        advoware=[{"kommKz": 3, "tlf": MOBIL, "online": True, "bemerkung": "Handy"},
                  {"kommKz": 1, "tlf": OFFICE},
                  {"kommKz": 4, "tlf": MAIL, "online": True}],
        emails=[{"emailAddress": MAIL, "primary": True}],
        phones=[{"phoneNumber": MOBIL, "type": "Mobile", "primary": True},
                {"phoneNumber": OFFICE, "type": "Office", "primary": False}],
    )
    w.sync()
    assert_converged(w)
    w.writes = dict.fromkeys(w.writes, 0)
    return w


def variants(plan) -> list[str]:
    return [c.variant for c in plan.changes]


# --- V: single-side variants ------------------------------------------------------------------------
def test_v1_new_in_espocrm_is_created_in_advoware(world):
    world.espo_add("0221 999888", "Home")
    plan = world.sync()
    assert variants(plan).count("Var1") == 1
    [create] = [a for a in plan.actions if a.creates]
    assert (create.kommkz, create.tlf) == (KommKz.TelPrivat, "0221 999888")
    assert create.bemerkung == build_sync_bemerkung("0221 999888", 6)
    assert_converged(world)


def test_v2_deleted_in_espocrm_becomes_an_empty_slot(world):
    world.espo_delete(MOBIL)
    plan = world.sync()
    assert "Var2" in variants(plan)
    mobil = next(e for e in world.advoware if e["kommKz"] == 3)
    assert mobil["tlf"] == "" and mobil["online"] is False
    assert parse_bemerkung(mobil["bemerkung"]) == parse_bemerkung("[ESPOCRM-SLOT:3] Handy")
    assert world.writes["advoware_post"] == 0
    assert_converged(world)


@pytest.mark.parametrize("how", ["blanked", "removed"])
def test_v3_deleted_in_advoware_is_deleted_from_espocrm(world, how):
    office_id = world.advo_id_of(OFFICE)
    if how == "blanked":
        world.advo_edit(office_id, tlf="")
    else:
        world.advoware.remove(world.entry(office_id))
    plan = world.sync()
    assert "Var3" in variants(plan)
    assert OFFICE not in world.espo_values
    assert not plan.actions  # nothing to write in Advoware
    assert_converged(world)


def test_v4_new_in_advoware_is_added_to_espocrm_with_marker(world):
    new_id = world.advo_add(7, "030 7654321", bemerkung="Fax privat")
    plan = world.sync()
    assert "Var4" in variants(plan)
    assert {"phoneNumber": "030 7654321", "type": "Fax", "primary": False, "optOut": False,
            "invalid": False} in world.phones
    assert world.entry(new_id)["bemerkung"] == build_sync_bemerkung("030 7654321", 7, "Fax privat")
    assert_converged(world)


def test_v5_primary_changed_in_espocrm_reaches_advoware(world):
    world.espo_set_primary(OFFICE)
    plan = world.sync()
    updates = {a.id: a.online for a in plan.actions}
    assert updates == {world.advo_id_of(OFFICE): True, world.advo_id_of(MOBIL): False}
    assert_converged(world)


def test_v5_type_changed_in_espocrm_moves_the_value_to_an_entry_of_the_new_kind(world):
    old_id = world.advo_id_of(OFFICE)
    world.espo_set_type(OFFICE, "Home")
    plan = world.sync()
    assert "Var5_type" in variants(plan)
    assert world.entry(old_id)["tlf"] == ""
    assert parse_bemerkung(world.entry(old_id)["bemerkung"]).marker == SlotMarker(1)
    assert world.advo_live[OFFICE]["kommKz"] == KommKz.TelPrivat
    assert_converged(world)


def test_v5_reformatted_in_espocrm_updates_the_same_entry(world):
    world.espo_change(OFFICE, "+49 30 1234567")
    plan = world.sync()
    [update] = plan.actions
    assert (update.id, update.tlf) == (world.advo_id_of("+49 30 1234567"), "+49 30 1234567")
    assert_converged(world)


def test_v6_changed_in_advoware_reaches_espocrm_and_refreshes_the_marker(world):
    mobil_id = world.advo_id_of(MOBIL)
    world.advo_edit(mobil_id, tlf="0172 2222222")
    plan = world.sync()
    assert "Var6" in variants(plan)
    assert "0172 2222222" in world.espo_values and MOBIL not in world.espo_values
    assert world.entry(mobil_id)["bemerkung"] == build_sync_bemerkung("0172 2222222", 3, "Handy")
    assert not plan.notes
    assert_converged(world)


def test_v6_primary_changed_in_advoware_reaches_espocrm(world):
    world.advo_edit(world.advo_id_of(OFFICE), online=True)
    world.advo_edit(world.advo_id_of(MOBIL), online=False)
    world.sync()
    assert world.espo_find(OFFICE)["primary"] and not world.espo_find(MOBIL)["primary"]
    assert_converged(world)


def test_user_text_survives_every_rewrite(world):
    mobil_id = world.advo_id_of(MOBIL)
    world.advo_edit(mobil_id, tlf="0172 2222222")
    world.sync()
    world.espo_delete("0172 2222222")
    world.sync()
    world.espo_add("0173 3333333", "Mobile")
    world.sync()
    assert parse_bemerkung(world.entry(mobil_id)["bemerkung"]).user_text == "Handy"
    assert world.entry(mobil_id)["tlf"] == "0173 3333333"  # the slot was reused
    assert_converged(world)


# --- C: both sides changed --------------------------------------------------------------------------
def test_c1_espocrm_adds_a_advoware_changes_b(world):
    world.espo_add("0221 555", "Office")
    world.advo_edit(world.advo_id_of(MOBIL), tlf="0172 2222222")
    plan = world.sync()
    assert {"Var1", "Var6"} <= set(variants(plan)) and not plan.notes
    assert {"0221 555", "0172 2222222"} <= world.espo_values
    assert "0221 555" in world.advo_live
    assert_converged(world)


def test_c2_same_entry_changed_differently_espocrm_wins_with_a_note(world):
    mobil_id = world.advo_id_of(MOBIL)
    world.espo_change(MOBIL, "0175 5555555")
    world.advo_edit(mobil_id, tlf="0176 6666666")
    plan = world.sync()
    assert world.entry(mobil_id)["tlf"] == "0175 5555555"  # one PUT on the same entry
    assert "0176 6666666" not in world.espo_values
    assert len(plan.notes) == 1 and "0176 6666666" in plan.notes[0]
    assert [a.creates for a in plan.actions] == [False]
    assert_converged(world)


def test_c2_format_change_in_espocrm_and_value_change_in_advoware(world):
    world.espo_change(OFFICE, "+49 30 1234567")
    world.advo_edit(world.advo_id_of(OFFICE), tlf="030 9999999")
    plan = world.sync()
    assert "conflict" in variants(plan)
    assert world.advo_live["+49 30 1234567"]
    assert "030 9999999" in plan.notes[0]
    assert_converged(world)


def test_c2_type_in_espocrm_and_value_in_advoware_both_survive(world):
    world.espo_set_type(OFFICE, "Home")
    world.advo_edit(world.advo_id_of(OFFICE), tlf="030 9999999")
    plan = world.sync()
    assert not plan.notes
    assert world.advo_live["030 9999999"]["kommKz"] == KommKz.TelPrivat
    assert world.espo_find("030 9999999")["type"] == "Home"
    assert_converged(world)


def test_c3_espocrm_deletes_x_advoware_changes_x(world):
    mobil_id = world.advo_id_of(MOBIL)
    world.espo_delete(MOBIL)
    world.advo_edit(mobil_id, tlf="0177 7777777")
    plan = world.sync()
    assert "C3" in variants(plan)
    assert world.entry(mobil_id)["tlf"] == ""
    assert "0177 7777777" in plan.notes[0]
    assert_converged(world)


def test_c4_advoware_adds_y_espocrm_changes_another(world):
    world.advo_add(6, "0228 111")
    world.espo_set_primary(OFFICE)
    plan = world.sync()
    assert "Var4" in variants(plan) and not plan.notes
    assert "0228 111" in world.espo_values and world.advo_live[OFFICE]["online"]
    assert_converged(world)


def test_c5_advoware_blanks_x_espocrm_changes_another(world):
    world.advo_edit(world.advo_id_of(OFFICE), tlf="")
    world.espo_change(MAIL, "max@kanzlei-neu.de")
    plan = world.sync()
    assert "Var3" in variants(plan)
    assert OFFICE not in world.espo_values and "max@kanzlei-neu.de" in world.advo_live
    assert_converged(world)


# --- I: initial sync --------------------------------------------------------------------------------
def test_i1_identical_values_get_markers_only():
    w = World(advoware=[{"kommKz": 3, "tlf": MOBIL}, {"kommKz": 4, "tlf": MAIL, "bemerkung": "Büro"}],
              emails=[{"emailAddress": MAIL, "primary": True}],
              phones=[{"phoneNumber": MOBIL, "type": "Mobile", "primary": True}])
    plan = w.sync()
    assert not any(a.creates for a in plan.actions) and len(plan.actions) == 2
    assert variants(plan).count("match") == 2 and not plan.espo_changed
    assert_converged(w)


def test_i2_values_only_in_espocrm_are_created():
    w = World(emails=[{"emailAddress": MAIL, "primary": True}],
              phones=[{"phoneNumber": MOBIL, "type": "Mobile", "primary": True}])
    plan = w.sync()
    assert sorted((a.kommkz, a.tlf) for a in plan.actions) == [(3, MOBIL), (4, MAIL)]
    assert_converged(w)


def test_i3_values_only_in_advoware_are_added_with_markers():
    w = World(advoware=[{"kommKz": 2, "tlf": "030 1111"}, {"kommKz": 8, "tlf": "p@privat.de", "online": True},
                        {"kommKz": 5, "tlf": "www.kanzlei.de"}, {"kommKz": 12, "tlf": "DE.BRAK.123"}])
    plan = w.sync()
    assert w.espo_values == {"030 1111", "p@privat.de"}  # Internet and Bea stay in Advoware
    assert [p["type"] for p in w.phones] == ["Fax"]
    assert len(plan.actions) == 2
    assert_converged(w)


def test_i4_mixed_initial_sync_has_no_duplicates():
    w = World(advoware=[{"kommKz": 3, "tlf": "+49 171 1111111"}, {"kommKz": 1, "tlf": "030 222"}],
              emails=[{"emailAddress": "Max@Kanzlei.de", "primary": True}],
              phones=[{"phoneNumber": "0171 1111111", "type": "Mobile", "primary": True},
                      {"phoneNumber": "089 333", "type": "Office"}])
    w.advo_add(4, "max@kanzlei.de")
    w.sync()
    assert len([e for e in w.advoware if e["tlf"]]) == 4 and len(w.phones) == 3 and len(w.emails) == 1
    assert w.advo_live["Max@Kanzlei.de"] and w.advo_live["0171 1111111"]  # EspoCRM's spelling wins
    assert_converged(w)


def test_i5_equal_value_different_kind_is_matched_once():
    w = World(advoware=[{"kommKz": 1, "tlf": "0171 1111111"}],
              phones=[{"phoneNumber": "0171 1111111", "type": "Mobile", "primary": True}])
    plan = w.sync()
    assert not any(a.creates for a in plan.actions)
    assert w.phones[0]["type"] == "Office"  # Advoware's real kind is stage 1, EspoCRM's type stage 2
    assert_converged(w)


def test_i5_kind_unknown_in_advoware_takes_the_espocrm_type():
    w = World(advoware=[{"kommKz": 1, "tlf": "030 555"}], phones=[{"phoneNumber": "030 555", "type": "Fax"}])
    w.masked = {w.advoware[0]["id"]}
    plan = w.sync()
    assert plan.status_entries[0].kommkz == KommKz.FaxGesch and w.phones[0]["type"] == "Fax"


def test_initial_sync_never_deletes_even_with_old_markers():
    stale = build_sync_bemerkung("0171 0000000", 3)
    w = World(advoware=[{"kommKz": 3, "tlf": MOBIL, "bemerkung": stale}], phones=[{"phoneNumber": OFFICE}])
    w.sync()
    assert w.espo_values == {MOBIL, OFFICE} and set(w.advo_live) == {MOBIL, OFFICE}
    assert_converged(w)


# --- S: empty slots ----------------------------------------------------------------------------------
def test_s1_delete_blanks_with_a_slot_marker_and_no_delete(world):
    world.espo_delete(OFFICE)
    plan = world.sync()
    [blank] = plan.actions
    assert (blank.tlf, blank.bemerkung, blank.online) == ("", "[ESPOCRM-SLOT:1]", False)


def test_s2_free_slot_of_the_kind_is_reused(world):
    world.espo_delete(OFFICE)
    world.sync()
    world.espo_add("040 777", "Office")
    plan = world.sync()
    assert [a.creates for a in plan.actions] == [False] and world.writes["advoware_post"] == 0
    assert_converged(world)


def test_s2_delete_and_add_of_one_kind_in_one_run_is_one_put(world):
    office_id = world.advo_id_of(OFFICE)
    world.espo_change(OFFICE, "040 777")  # EspoCRM: a new value replaces the old one
    plan = world.sync()
    assert [(a.creates, a.id) for a in plan.actions] == [(False, office_id)]
    assert world.entry(office_id)["tlf"] == "040 777"
    assert_converged(world)


def test_s3_no_slot_of_that_kind_means_post_and_other_slots_stay(world):
    world.espo_delete(OFFICE)
    world.sync()
    world.espo_add("0221 123", "Fax")
    plan = world.sync()
    assert [a.creates for a in plan.actions] == [True]
    slot = next(e for e in world.advoware if e["kommKz"] == 1)
    assert slot["tlf"] == "" and slot["bemerkung"] == "[ESPOCRM-SLOT:1]"
    assert_converged(world)


def test_s4_slots_are_not_shown_in_espocrm_and_not_hashed(world):
    before = kommunikation_hash(world.advoware_get())
    world.advo_add(3, "", bemerkung="[ESPOCRM-SLOT:3]")
    world.advo_add(1, "", bemerkung="alte Nummer")
    assert kommunikation_hash(world.advoware_get()) == before
    assert world.plan().is_empty


# --- D: direction ----------------------------------------------------------------------------------
def _edits_on_both_sides(world):
    world.espo_add("0221 555", "Office")
    world.advo_edit(world.advo_id_of(MOBIL), tlf="0172 2222222")
    world.advo_add(6, "0228 111")
    world.advo_edit(world.advo_id_of(OFFICE), tlf="")


def test_d1_both_applies_everything_both_ways(world):
    _edits_on_both_sides(world)
    world.sync("both")
    assert world.espo_values == {"0221 555", "0172 2222222", "0228 111", MAIL}
    assert_converged(world)


def test_d2_to_espocrm_applies_only_advoware_changes_and_keeps_espocrm_pending(world):
    _edits_on_both_sides(world)
    plan = world.sync("to_espocrm")
    assert not any(a.creates for a in plan.actions)
    assert all(a.tlf == world.entry(a.id)["tlf"] for a in plan.actions)  # markers only
    assert world.espo_values == {"0221 555", "0172 2222222", "0228 111", MAIL}
    assert "0221 555" not in world.advo_live
    assert world.plan("to_espocrm").is_empty
    world.sync("both")  # the pending EspoCRM change is still known and goes over now
    assert "0221 555" in world.advo_live
    assert_converged(world)


@pytest.mark.parametrize("kwargs", [{"direction": "to_advoware"}, {"force_espo_wins": True},
                                    {"direction": "to_espocrm", "force_espo_wins": True}])
def test_d3_d4_espocrm_wins_reverts_advoware_changes(world, kwargs):
    _edits_on_both_sides(world)
    mobil_id = world.advo_id_of("0172 2222222")
    plan = world.sync(**kwargs)
    assert not plan.espo_changed
    assert world.entry(mobil_id)["tlf"] == MOBIL  # Var6 reverted
    assert "0228 111" not in world.advo_live  # Var4 became a slot
    assert world.advo_live[OFFICE]  # Var3 restored
    assert "0221 555" in world.advo_live  # Var1 applied
    assert len(plan.notes) == 3
    assert_converged(world)


def test_d4_force_with_advoware_changes_only(world):
    world.advo_edit(world.advo_id_of(MOBIL), tlf="0172 2222222", online=False)
    world.advo_edit(world.advo_id_of(OFFICE), online=True)
    world.sync(force_espo_wins=True)
    assert world.advo_live[MOBIL]["online"] and not world.advo_live[OFFICE]["online"]
    assert_converged(world)


def test_unknown_direction_is_refused():
    with pytest.raises(ValueError):
        plan_kommunikation_sync([], [], [], None, direction="sideways")


def test_arrays_missing_from_a_list_result_are_refused():
    with pytest.raises(ValueError):
        plan_kommunikation_sync([], None, [], None)


# --- H: hash and no-change -------------------------------------------------------------------------
def test_h1_nothing_changed_means_no_write_at_all(world):
    world.sync()
    plan = world.sync()
    assert plan.is_empty and world.writes == {"advoware_put": 0, "advoware_post": 0, "espocrm_put": 0}


def test_h2_a_kommunikation_change_alone_changes_the_hash(world):
    before = kommunikation_hash(world.advoware_get())
    world.advo_edit(world.advo_id_of(OFFICE), tlf="030 7777777")
    assert kommunikation_hash(world.advoware_get()) != before
    assert not world.plan().is_empty


def test_h3_slots_and_empty_values_do_not_change_the_hash(world):
    world.espo_delete(OFFICE)
    world.sync()
    before = kommunikation_hash(world.advoware_get())
    slot = next(e for e in world.advoware if e["tlf"] == "")
    world.advo_edit(slot["id"], bemerkung="[ESPOCRM-SLOT:1] neu")
    world.advo_add(2, "")
    assert kommunikation_hash(world.advoware_get()) == before


def test_hash_is_md5_prefix_of_sorted_row_ids():
    import hashlib
    entries = [{"id": 1, "rowId": "b", "kommKz": 1, "tlf": "1"}, {"id": 2, "rowId": "a", "kommKz": 4, "tlf": "x@y.de"},
               {"id": 3, "rowId": "c", "kommKz": 5, "tlf": "www.x.de"}, {"id": 4, "rowId": "d", "kommKz": 1, "tlf": ""}]
    assert kommunikation_hash(entries) == hashlib.md5(b"ab").hexdigest()[:16]


# --- K: kind detection through the planner -----------------------------------------------------------
def test_k1_kommkz_zero_with_marker_3_stays_mobil(world):
    world.masked = {e["id"] for e in world.advoware}
    assert world.plan().is_empty
    world.advo_edit(world.advo_id_of(MOBIL), tlf="030 5555555")  # even a landline-looking value
    world.sync()
    assert world.espo_find("030 5555555")["type"] == "Mobile"
    assert_converged(world)


def test_k1_kommkz_zero_never_turns_an_email_into_a_phone():
    w = World(advoware=[{"kommKz": 8, "tlf": "p@privat.de"}], masked=())
    w.masked = {w.advoware[0]["id"]}
    w.sync()
    assert w.espo_values == {"p@privat.de"} and not w.phones


@pytest.mark.parametrize("espo_type, kind", [("Fax", 2), ("Home", 6), ("Office", 1), ("Mobile", 3), ("Other", 10)])
def test_k2_espocrm_type_gives_the_kind(espo_type, kind):
    w = World(phones=[{"phoneNumber": "0171 1234567", "type": espo_type}])
    [create] = w.plan().actions
    assert create.kommkz == kind


@pytest.mark.parametrize("value, kind", [("max@x.de", 4), ("+49 171 1234567", 3), ("0151 1234567", 3),
                                         ("030 1234567", 1), ("07071 12345", 1)])
def test_k3_k4_k5_value_shape_when_advoware_reports_zero(value, kind):
    w = World(advoware=[{"kommKz": 10, "tlf": value}])
    w.masked = {w.advoware[0]["id"]}
    plan = w.plan()
    assert plan.status_entries[0].kommkz == kind
