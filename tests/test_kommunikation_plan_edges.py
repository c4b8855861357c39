"""The Kommunikation planner beyond the SPEC scenarios: moved values, EspoCRM value changes, primary history.

Also the status value and the printable plan. Pure, on the in-memory world
(tests/kommunikation_world.py); `assert_converged` checks both sides agree
and a second plan is empty.
"""

from __future__ import annotations

import pytest
from kommunikation_oracle import check_sync
from kommunikation_world import World
from test_kommunikation_plan import MAIL, MOBIL, OFFICE, assert_converged, variants
from test_kommunikation_plan import world  # noqa: F401  (a fixture)

from bitbylaw_tasks.kommunikation.actions import AdvowareWrite, BlankReason
from bitbylaw_tasks.kommunikation.kinds import KommKz
from bitbylaw_tasks.kommunikation.markers import parse_bemerkung
from bitbylaw_tasks.kommunikation.status import KommStatus, StatusEntry, StatusFormatError


# --- Advoware deletions against EspoCRM changes ---------------------------------------------------------
def test_advoware_blank_overridden_by_an_espocrm_change_restores_in_place(world):
    office_id = world.advo_id_of(OFFICE)
    world.advo_edit(office_id, tlf="")
    world.espo_change(OFFICE, "+49 30 1234567")
    plan = world.sync()
    assert "restore_Var3" in variants(plan) and len(plan.notes) == 1
    assert world.entry(office_id)["tlf"] == "+49 30 1234567"
    assert world.writes["advoware_post"] == 0
    assert_converged(world)


def test_a_primary_flag_change_does_not_stop_a_deletion_in_advoware(world):
    world.advo_edit(world.advo_id_of(OFFICE), tlf="")
    world.espo_set_primary(OFFICE)  # EspoCRM moves the flag by itself too (first becomes primary)
    plan = world.sync()
    assert "Var3" in variants(plan) and OFFICE not in world.espo_values
    assert_converged(world)


def test_a_value_moved_to_another_entry_in_advoware_is_not_duplicated(world):
    mobil_id, office_id = world.advo_id_of(MOBIL), world.advo_id_of(OFFICE)
    world.advo_edit(mobil_id, tlf="0172 2222222")
    new_id = world.advo_add(3, MOBIL)  # the old number now lives in a new entry
    world.espo_change(MOBIL, "+49 171 1111111")  # and EspoCRM reformatted it meanwhile
    plan = world.sync()
    assert "moved_in_advoware" in variants(plan)
    assert world.entry(new_id)["tlf"] == "+49 171 1111111" and world.entry(mobil_id)["tlf"] == "0172 2222222"
    assert {"+49 171 1111111", "0172 2222222"} <= world.espo_values and office_id
    assert_converged(world)


def test_advoware_value_changed_onto_a_new_espocrm_value_is_one_entry(world):
    office_id = world.advo_id_of(OFFICE)
    world.espo_add("0221 555", "Office")
    world.advo_edit(office_id, tlf="0221 555")
    plan = world.sync()
    assert not any(a.creates for a in plan.actions)
    assert world.espo_values == {MOBIL, MAIL, "0221 555"}
    assert_converged(world)



# --- EspoCRM value changes (delete + add there: EspoCRM has no ids) ------------------------------------
@pytest.mark.parametrize("kind, value, new", [(8, "p@privat.de", "q@privat.de"), (7, "040 555", "040 556"),
                                              (9, "0172 5555555", "0172 5555556")])
def test_an_espocrm_value_change_keeps_the_entry_and_its_kind(kind, value, new):
    w = World(advoware=[{"kommKz": kind, "tlf": value, "bemerkung": "Notiz"}])
    w.sync()
    entry_id = w.advo_id_of(value)
    w.espo_change(value, new)
    plan = w.sync()
    assert [(a.id, a.kommkz, a.tlf) for a in plan.actions] == [(entry_id, kind, new)]
    assert parse_bemerkung(w.entry(entry_id)["bemerkung"]).user_text == "Notiz"
    assert_converged(w)


def test_two_espocrm_value_changes_in_one_run_each_keep_their_entry():
    w = World(advoware=[{"kommKz": 3, "tlf": "0171 1111111"}, {"kommKz": 9, "tlf": "0172 2222222"}],
              phones=[{"phoneNumber": "0171 1111111", "type": "Mobile"},
                      {"phoneNumber": "0172 2222222", "type": "Mobile"}])
    w.sync()
    first, second = w.advo_id_of("0171 1111111"), w.advo_id_of("0172 2222222")
    w.espo_change("0171 1111111", "0171 1111100")
    w.espo_change("0172 2222222", "0172 2222200")
    plan = w.sync()
    assert not any(a.creates for a in plan.actions)
    assert (w.entry(first)["tlf"], w.entry(second)["tlf"]) == ("0171 1111100", "0172 2222200")
    assert w.entry(second)["kommKz"] == KommKz.AutoTelefon
    assert_converged(w)


def three_faxes_synced() -> tuple[World, int]:
    """Three fax numbers synced; the Advoware id of the middle one."""
    w = World(phones=[{"phoneNumber": p, "type": "Fax"} for p in ("040 1", "040 2", "040 3")])
    w.sync()
    return w, w.advo_id_of("040 2")


def test_a_value_deleted_in_the_middle_and_one_of_its_type_added_are_one_edit():
    """EspoCRM cannot tell these from an edit (it reads primary first and appends a new value): same entry, kind."""
    w, middle = three_faxes_synced()
    w.advo_edit(middle, kommKz=7)  # (a person made it FaxPrivat)
    w.sync()
    w.espo_delete("040 2")
    w.espo_add("040 4", "Fax")
    plan = w.sync()
    assert [(a.id, a.tlf) for a in plan.actions] == [(middle, "040 4")]  # one PUT, no slot left behind
    assert w.entry(middle)["kommKz"] == KommKz.FaxPrivat
    assert_converged(w)


def test_a_value_deleted_and_one_of_another_type_added_are_not_paired():
    w, middle = three_faxes_synced()
    w.espo_delete("040 2")
    w.espo_add("0171 4", "Mobile")
    w.sync()
    assert w.advo_live["0171 4"]["kommKz"] == KommKz.Mobil and w.entry(middle)["tlf"] == ""
    assert_converged(w)


def test_an_espocrm_edit_that_moved_to_the_end_keeps_the_entry_and_its_kind():
    """The real EspoCRM appends an edited address: the edit is found by kind, not by place."""
    w = World(advoware=[{"kommKz": 4, "tlf": "a@x.de", "online": True}, {"kommKz": 8, "tlf": "p@privat.de"},
                        {"kommKz": 4, "tlf": "c@x.de"}])
    w.sync()
    private = w.advo_id_of("p@privat.de")
    w.espo_delete("p@privat.de")
    w.espo_add("q@privat.de")
    plan = w.sync()
    assert [(a.id, a.tlf) for a in plan.actions] == [(private, "q@privat.de")]
    assert w.entry(private)["kommKz"] == KommKz.MailPrivat
    assert_converged(w)


def test_espocrm_new_primary_value_pairs_with_the_vanished_primary_first():
    """The primary value edited (EspoCRM keeps it primary) beats the place, which a reorder makes wrong."""
    w = World(advoware=[{"kommKz": 8, "tlf": "p@privat.de", "online": True}, {"kommKz": 4, "tlf": "c@x.de"},
                        {"kommKz": 4, "tlf": "b@x.de"}])
    w.sync()
    private, office = w.advo_id_of("p@privat.de"), w.advo_id_of("c@x.de")
    w.espo_change("c@x.de", "x@x.de")
    w.espo_delete("p@privat.de")
    w.espo_add("q@privat.de", primary=True)  # (appended: the places no longer line up)
    w.sync()
    assert (w.entry(private)["tlf"], w.entry(private)["kommKz"]) == ("q@privat.de", KommKz.MailPrivat)
    assert w.entry(office)["tlf"] == "x@x.de"
    assert_converged(w)


def test_an_espocrm_value_change_under_to_espocrm_is_still_an_edit_on_the_next_run():
    w = World(advoware=[{"kommKz": 8, "tlf": "p@privat.de"}])
    w.sync()
    entry_id = w.advo_id_of("p@privat.de")
    w.advo_edit(entry_id, tlf="")
    w.espo_change("p@privat.de", "q@privat.de")
    w.sync("to_espocrm")
    assert w.plan("to_espocrm").is_empty
    w.sync()
    assert w.entry(entry_id)["tlf"] == "q@privat.de" and w.entry(entry_id)["kommKz"] == 8
    assert_converged(w)


# --- primary history -----------------------------------------------------------------------------------
@pytest.mark.parametrize("changed, new, primary_after", [
    (MOBIL, "0171 1111199", OFFICE),  # EspoCRM changed the old primary's value: Advoware's move survives
    (OFFICE, "030 2222299", "030 2222299"),  # EspoCRM changed the new primary's value: the move is kept
])
def test_advoware_primary_move_survives_an_espocrm_value_change(world, changed, new, primary_after):
    world.advo_edit(world.advo_id_of(OFFICE), online=True)
    world.advo_edit(world.advo_id_of(MOBIL), online=False)
    world.espo_change(changed, new)
    world.sync()
    assert [p["phoneNumber"] for p in world.phones if p["primary"]] == [primary_after]
    assert_converged(world)


def test_espocrm_primary_move_beats_advoware_primary_move(world):
    world.espo_set_primary(OFFICE)
    world.advo_add(6, "0228 111", online=True)
    world.sync()
    assert world.espo_find(OFFICE)["primary"] and not world.advo_live["0228 111"]["online"]
    assert_converged(world)


def test_an_advoware_entry_that_was_primary_and_is_deleted_hands_primary_to_the_first(world):
    world.advo_edit(world.advo_id_of(MOBIL), tlf="")
    world.sync()
    assert world.espo_find(OFFICE)["primary"] and world.advo_live[OFFICE]["online"]
    assert_converged(world)


def test_a_value_moved_in_advoware_while_espocrm_reformatted_it_overrides_nothing():
    """The old entry's new number is new in Advoware, kept; no note claims it was overridden."""
    w = World(phones=[{"phoneNumber": "0171 0000001", "type": "Mobile"}, {"phoneNumber": "0171 0000003", "type": "Fax"}])
    w.sync()
    mobile, fax = w.advo_id_of("0171 0000001"), w.advo_id_of("0171 0000003")
    w.advo_edit(mobile, tlf="0171 0000005")
    w.advo_edit(fax, tlf="0171 000000-1")  # Advoware moves the number to the fax entry, in EspoCRM's new format
    w.espo_change("0171 0000001", "0171 000000-1")
    plan = w.sync()
    assert "moved_in_advoware" in variants(plan) and not plan.notes
    assert w.espo_values == {"0171 000000-1", "0171 0000005"}
    assert_converged(w)


def test_to_espocrm_keeps_one_primary_when_a_pending_value_moved_to_another_entry():
    """Found by fuzzing: the moved value's pending status entry kept its old primary flag next to the new one."""
    w = World(advoware=[{"kommKz": 3, "tlf": "0171 0000001", "online": True}],
              phones=[{"phoneNumber": "0171 0000002", "type": "Other", "primary": True},
                      {"phoneNumber": "0171 0000003", "type": "Office"}])
    w.sync()
    w.espo_set_primary("0171 0000003")
    w.sync()
    w.espo_change("0171 0000003", "0171 000000-3")  # EspoCRM reformats it (pending under to_espocrm) ...
    w.advo_edit(w.advo_id_of("0171 0000003"), tlf="")  # ... while Advoware moves it to the mobile entry
    w.advo_edit(w.advo_id_of("0171 0000001"), tlf="0171 000000-3")
    w.sync("to_espocrm")
    assert [e.primary for e in w.status.entries].count(True) == 1
    assert w.plan("to_espocrm").is_empty
    w.sync()
    assert_converged(w)


def test_to_espocrm_follows_a_value_moved_in_advoware_while_espocrm_reformatted_it():
    """Found by fuzzing: the moved value came back after EspoCRM deleted it, and Advoware's new number was lost."""
    w = World(phones=[{"phoneNumber": "0171 0000005", "type": "Office"}, {"phoneNumber": "0171 0000006", "type": "Fax"}])
    w.sync()
    office, fax = w.advo_id_of("0171 0000005"), w.advo_id_of("0171 0000006")
    w.advo_edit(office, tlf="0171 0000010")  # Advoware: a new number in the office entry ...
    w.advo_edit(fax, tlf="0171 0000005")  # ... whose old number moved to the fax entry
    w.espo_change("0171 0000005", "0171 000000-5")  # EspoCRM reformats it meanwhile (pending under to_espocrm)
    plan = w.sync("to_espocrm")
    assert "moved_in_advoware" in variants(plan) and "0171 0000010" in w.espo_values
    assert {e.advoware_id: e.value for e in w.status.entries} == {fax: "0171 0000005", office: "0171 0000010"}
    w.espo_delete("0171 000000-5")
    w.sync()
    assert w.espo_values == {"0171 0000010"} and set(w.advo_live) == {"0171 0000010"}
    assert_converged(w)


# --- kinds that are never synced -----------------------------------------------------------------------
def test_bea_epost_and_internet_reported_with_kommkz_0_stay_out_of_espocrm():
    w = World(advoware=[{"kommKz": 1, "tlf": OFFICE}, {"kommKz": 12, "tlf": "DE.BRAK_SPT.1a2b3c.1234"},
                        {"kommKz": 11, "tlf": "max.mustermann@epost.de"}, {"kommKz": 5, "tlf": "www.kanzlei.de"}])
    w.masked = {e["id"] for e in w.advoware}
    plan = w.sync()
    assert w.espo_values == {OFFICE} and len(plan.actions) == 1
    assert_converged(w)


def test_an_advoware_email_espocrm_would_reject_is_not_synced():
    w = World(advoware=[{"kommKz": 4, "tlf": "max at kanzlei"}, {"kommKz": 4, "tlf": MAIL}])
    w.sync()
    assert w.espo_values == {MAIL}
    assert_converged(w)


# --- status value ----------------------------------------------------------------------------------
def test_status_json_round_trip_and_size(world):
    status = world.status
    assert KommStatus.from_json(status.to_json()) == status
    assert len(status.to_json()) < 200
    assert KommStatus.from_json(None) is None and KommStatus.from_json("  ") is None


@pytest.mark.parametrize("text", ["{", "[]", '{"v":2,"e":[]}', '{"v":1}', '{"v":1,"e":[[1,"x",3]]}',
                                  '{"v":1,"e":[[true,"x",3,1]]}', '{"v":1,"e":[[1,"x",0,1]]}',
                                  '{"v":1,"e":[[1,5,3,1]]}', '{"v":1,"e":[[1,"x",3,7]]}'])
def test_malformed_status_is_an_error(text):
    with pytest.raises(StatusFormatError):
        KommStatus.from_json(text)


def test_plan_is_printable_and_summarised_without_values(world):
    world.espo_add("0221 999888", "Home")
    plan = world.plan()
    assert "0221 999888" in str(plan)
    assert "0221 999888" not in repr(plan.summary()) and plan.summary()["advoware_creates"] == 1
    with pytest.raises(ValueError):
        plan.new_status
    assert plan.resolve_status({}).entries == world.status.entries  # a failed create stays unlinked
    assert StatusEntry(7, "0221 999888", 6, False) in plan.resolve_status({0: 7}).entries


def test_a_blank_names_its_reason_and_a_filled_blank_is_one_put(world):
    """Blank reasons are `BlankReason`s (printed as before); an entry blanked and filled in one run is one PUT."""
    office_id = world.advo_id_of(OFFICE)
    world.espo_delete(OFFICE)
    [blank] = world.plan().actions
    assert (blank.id, blank.tlf, blank.reason) == (office_id, "", BlankReason.Var2)
    assert isinstance(blank.reason, BlankReason)
    assert f"update id={office_id} TelGesch tlf='' online=False (Var2)" in str(world.plan())
    world.espo_add("030 999", "Office")  # a Var1 of the blanked entry's kind: the blank is filled instead
    plan = world.plan()
    assert [(a.id, a.tlf, a.reason) for a in plan.actions] == [(office_id, "030 999", "fill slot")]
    assert {"Var2", "slot_reused"} <= set(variants(plan))
    world.sync()
    assert_converged(world)


def test_a_type_change_blanks_the_old_entry_with_its_reason(world):
    office_id = world.advo_id_of(OFFICE)
    world.espo_set_type(OFFICE, "Home")
    plan = world.plan()
    [blank] = [a for a in plan.actions if not a.creates]
    assert (blank.id, blank.reason) == (office_id, BlankReason.type_change) and isinstance(blank.reason, BlankReason)
    assert "(type change)" in str(plan)
    [create] = [a for a in plan.actions if a.creates]
    assert (create.kommkz, create.tlf) == (KommKz.TelPrivat, OFFICE)
    world.sync()
    assert_converged(world)


@pytest.mark.parametrize("into", ["the other linked entry", "a new entry"])
def test_to_espocrm_keeps_one_link_per_value_when_espocrm_deleted_a_value_advoware_moved(into):
    """Seeds 45041 and 77464 of the seeded fuzzer (issue 17), reduced; both cases failed before the fix.

    EspoCRM deletes `030 1`; Advoware types `030 3` into its entry and moves `030 1` to the second office
    entry (or enters it anew). `to_espocrm` used to keep the first entry's pending delete in the status
    beside the moved value's link: two status entries with one value, so the next `both` run gave
    EspoCRM's `030 1` to one of them and blanked `030 3` with a false "deleted in EspoCRM" note. Now the
    link follows the value (docs §9): dropped where another link shows it; moved, with EspoCRM's pending
    delete, to the new entry holding it.
    """
    w = World(advoware=[{"kommKz": 1, "tlf": "030 1"}, {"kommKz": 1, "tlf": "030 2"}])
    w.sync()
    first, second = w.advo_id_of("030 1"), w.advo_id_of("030 2")
    w.espo_delete("030 1")
    w.advo_edit(first, tlf="030 3")
    if into == "a new entry":
        holder, after = w.advo_add(1, "030 1"), {"030 2", "030 3"}  # EspoCRM's delete follows the value
    else:
        w.advo_edit(second, tlf="030 1")
        holder, after = second, {"030 1", "030 3"}  # shown from the second entry: Advoware's move wins
    w.sync("to_espocrm")
    status = {e.advoware_id: e.value for e in w.status.entries}
    assert len(set(status.values())) == len(status), w.status.entries  # one value, one link
    assert status[first] == "030 3" and status[holder] == "030 1"
    assert w.plan("to_espocrm").is_empty
    before = w.state()
    plan = w.sync()
    check_sync(before, w.state(), plan.notes)
    assert not plan.notes and w.entry(first)["tlf"] == "030 3" and w.espo_values == after
    assert_converged(w)


def test_an_advoware_write_is_a_put_by_id_or_a_post_by_ref():
    put = AdvowareWrite(1, "030 1", "", True, "value", id=7)
    post = AdvowareWrite(1, "030 1", "", False, "new", ref=0)
    assert not put.creates and post.creates
    assert str(put) == "update id=7 TelGesch tlf='030 1' online=True (value)"
    assert str(post) == "create #0 TelGesch tlf='030 1' online=False (new)"
    assert put.payload() == {"kommKz": 1, "tlf": "030 1", "bemerkung": "", "online": True}
    for ids in ({}, {"id": 7, "ref": 0}):
        with pytest.raises(ValueError):
            AdvowareWrite(1, "030 1", "", False, "new", **ids)
