"""Issue 17: pairing an EspoCRM edit with its Advoware entry, the primary flag it carries, and Advoware's tie-breaks.

EspoCRM has no ids, so an edit arrives as "a value vanished, a new one
appeared" (lineage.py pairs them). Each test below pins one defect found by
the random end-to-end test (R1–R4 of the issue, and the seeds 44, 157, 307
reduced to the pure planner); each failed before its fix. Pure, on the
in-memory world.
"""

from __future__ import annotations

import copy

from kommunikation_oracle import check_sync
from kommunikation_world import World
from test_kommunikation_plan import assert_converged, variants

from bitbylaw_tasks.kommunikation.kinds import KommKz
from bitbylaw_tasks.kommunikation.markers import parse_bemerkung


def text_of(world: World, entry_id: int) -> str:
    return parse_bemerkung(world.entry(entry_id)["bemerkung"]).user_text


def primaries(world: World) -> list[str]:
    return [p["phoneNumber"] for p in world.phones if p["primary"]]


def test_r1_an_edit_is_not_paired_by_place_with_a_deleted_value_of_another_type():
    """EspoCRM deletes the Other primary and edits the only fax: the fax entry keeps its kind and its note."""
    w = World(advoware=[{"kommKz": 10, "tlf": "030 1", "online": True},
                        {"kommKz": 7, "tlf": "030 2", "bemerkung": "nur vormittags"}],
              phones=[{"phoneNumber": "030 1", "type": "Other", "primary": True},
                      {"phoneNumber": "030 2", "type": "Fax"}])
    w.sync()
    other, fax = w.advo_id_of("030 1"), w.advo_id_of("030 2")
    w.espo_delete("030 1")
    w.espo_change("030 2", "030 9")
    plan = w.sync()
    assert not any(a.creates for a in plan.actions)
    assert (w.entry(fax)["tlf"], w.entry(fax)["kommKz"], text_of(w, fax)) == ("030 9", KommKz.FaxPrivat,
                                                                              "nur vormittags")
    assert w.entry(other)["tlf"] == "" and not plan.notes
    assert_converged(w)


def test_r2_a_new_value_of_another_type_never_inherits_a_primary_flag():
    """EspoCRM deletes the Mobile primary, edits the Office number, adds a Home number; Advoware puts Office online."""
    w = World(advoware=[{"kommKz": 3, "tlf": "0171 1", "online": True}, {"kommKz": 1, "tlf": "030 2"}],
              phones=[{"phoneNumber": "0171 1", "type": "Mobile", "primary": True},
                      {"phoneNumber": "030 2", "type": "Office"}])
    w.sync()
    office = w.advo_id_of("030 2")
    w.espo_delete("0171 1")
    w.espo_change("030 2", "030 5")
    w.espo_add("040 6", "Home")
    w.advo_edit(w.advo_id_of("0171 1"), online=False)
    w.advo_edit(office, online=True)
    w.sync()
    assert primaries(w) == ["030 5"] and w.entry(office)["tlf"] == "030 5"
    assert w.advo_live["040 6"]["kommKz"] == KommKz.TelPrivat and not w.advo_live["040 6"]["online"]
    assert_converged(w)


def test_r3_to_espocrm_shows_advowares_choice_of_a_pending_entry_on_its_new_value_not_an_invented_one():
    """Advoware moves `online` to an entry whose EspoCRM edit is pending: no primary nobody chose (rows[0])."""
    w = World(advoware=[{"kommKz": 1, "tlf": "030 1"}, {"kommKz": 1, "tlf": "030 2"},
                        {"kommKz": 1, "tlf": "030 3", "online": True}],
              phones=[{"phoneNumber": "030 1", "type": "Office"}, {"phoneNumber": "030 2", "type": "Office"},
                      {"phoneNumber": "030 3", "type": "Office", "primary": True}])
    w.sync()
    w.espo_change("030 1", "030 4")
    w.espo_change("030 2", "030 5")
    w.advo_edit(w.advo_id_of("030 3"), online=False)
    w.advo_edit(w.advo_id_of("030 2"), online=True)
    control = copy.deepcopy(w)  # the same history, synced `both` only
    w.sync("to_espocrm")
    assert primaries(w) == ["030 5"]  # Advoware's choice, on EspoCRM's pending edit of that entry
    assert [e.value for e in w.status.entries if e.primary] == ["030 2"]  # recorded as Advoware's
    assert w.plan("to_espocrm").is_empty
    w.sync()
    control.sync()
    assert primaries(w) == primaries(control) == ["030 5"]  # Advoware's choice, carried by EspoCRM's edit
    assert_converged(w)


def test_r4_removed_or_blanked_in_advoware_while_espocrm_edits_it_give_the_same_kind_and_note():
    results = {}
    for how in ("blanked", "removed"):
        w = World(advoware=[{"kommKz": 9, "tlf": "0171 1", "bemerkung": "Dienstwagen"}],
                  phones=[{"phoneNumber": "0171 1", "type": "Mobile"}])
        w.sync()
        car = w.advo_id_of("0171 1")
        if how == "blanked":
            w.advo_edit(car, tlf="")
        else:
            w.advoware.remove(w.entry(car))
        w.espo_change("0171 1", "0171 5")
        plan = w.sync()
        assert "restore_Var3" in variants(plan), how
        results[how] = (w.advo_live["0171 5"]["kommKz"], plan.notes)
        assert_converged(w)
    assert results["blanked"] == results["removed"]
    kind, notes = results["removed"]
    assert kind == KommKz.AutoTelefon and len(notes) == 1
    assert "'0171 1'" in notes[0] and "'0171 5'" in notes[0] and "deleted in Advoware" in notes[0]


def test_seed_61_to_espocrm_shows_advowares_choice_on_its_pending_edit_so_the_next_run_keeps_it():
    """Advoware deletes the primary and chooses an entry EspoCRM edited meanwhile; a `to_espocrm` run between.

    EspoCRM must show some primary after that run; it must not count as EspoCRM's choice on the next one.
    """
    w = World(advoware=[{"kommKz": 3, "tlf": "0171 2"}, {"kommKz": 1, "tlf": "030 1", "online": True},
                        {"kommKz": 1, "tlf": "030 6"}],
              phones=[{"phoneNumber": "0171 2", "type": "Mobile"},
                      {"phoneNumber": "030 1", "type": "Office", "primary": True},
                      {"phoneNumber": "030 6", "type": "Office"}])
    w.sync()
    w.espo_change("0171 2", "0171 7")
    w.espo_change("030 6", "030 9")
    w.advoware.remove(w.entry(w.advo_id_of("030 1")))
    w.advo_edit(w.advo_id_of("030 6"), online=True)
    control = copy.deepcopy(w)
    w.sync("to_espocrm")
    assert w.plan("to_espocrm").is_empty
    w.sync()
    control.sync()
    assert primaries(w) == primaries(control) == ["030 9"]
    assert_converged(w)


def test_an_espocrm_edit_of_an_entry_advoware_changed_is_an_override_not_a_deletion():
    """Both sides changed the value: the note names Advoware's value as overridden by EspoCRM's (not 'deleted')."""
    w = World(advoware=[{"kommKz": 7, "tlf": "030 2", "bemerkung": "nur vormittags"}],
              phones=[{"phoneNumber": "030 2", "type": "Fax"}])
    w.sync()
    fax = w.advo_id_of("030 2")
    w.advo_edit(fax, tlf="030 3")
    w.espo_change("030 2", "030 9")
    plan = w.sync()
    assert (w.entry(fax)["tlf"], w.entry(fax)["kommKz"], text_of(w, fax)) == ("030 9", 7, "nur vormittags")
    assert plan.notes == ("Kommunikation: the Advoware value '030 3' (FaxPrivat) was overridden by the EspoCRM "
                          "value '030 9' (changed on both sides; EspoCRM wins).",)
    assert_converged(w)


def test_seed_307_an_edit_overriding_advowares_change_keeps_the_fax_entry_its_kind_and_its_note():
    """R1 with Advoware changing the fax too: the edit overrides Advoware's value in the FaxPrivat entry."""
    w = World(advoware=[{"kommKz": 10, "tlf": "030 3"}, {"kommKz": 10, "tlf": "030 6", "online": True},
                        {"kommKz": 7, "tlf": "030 7", "bemerkung": "Notiz von Frau Berg"}],
              phones=[{"phoneNumber": "030 3", "type": "Other"},
                      {"phoneNumber": "030 6", "type": "Other", "primary": True},
                      {"phoneNumber": "030 7", "type": "Fax"}])
    w.sync()
    fax = w.advo_id_of("030 7")
    w.espo_delete("030 6")
    w.espo_change("030 7", "030 9")
    w.espo_set_primary("030 3")
    w.advo_edit(fax, tlf="030 10")
    plan = w.sync()
    assert not any(a.creates for a in plan.actions)
    assert (w.entry(fax)["tlf"], w.entry(fax)["kommKz"], text_of(w, fax)) == ("030 9", KommKz.FaxPrivat,
                                                                              "Notiz von Frau Berg")
    assert len(plan.notes) == 1 and "'030 10' (FaxPrivat) was overridden by the EspoCRM value '030 9'" in plan.notes[0]
    assert primaries(w) == ["030 3"]
    assert_converged(w)


def test_seed_157_an_edit_is_not_paired_with_the_primary_both_sides_deleted():
    """EspoCRM's new value became primary only by EspoCRM's rule; Advoware also deleted the old primary."""
    w = World(advoware=[{"kommKz": 4, "tlf": "a@x.de", "online": True},
                        {"kommKz": 8, "tlf": "p@x.de", "bemerkung": "privat"}],
              emails=[{"emailAddress": "a@x.de", "primary": True}, {"emailAddress": "p@x.de"}])
    w.sync()
    private = w.advo_id_of("p@x.de")
    w.espo_delete("a@x.de")
    w.advo_edit(w.advo_id_of("a@x.de"), tlf="")
    w.espo_change("p@x.de", "q@x.de")  # (now EspoCRM's only, so its primary)
    plan = w.sync()
    assert (w.entry(private)["tlf"], w.entry(private)["kommKz"], text_of(w, private)) == ("q@x.de", 8, "privat")
    assert not plan.notes  # no "a@x.de was deleted in Advoware but changed in EspoCRM": nobody changed it
    assert_converged(w)


def test_seed_44_two_emails_edited_at_once_one_changed_in_advoware_too_notes_an_override_in_the_entry_it_names():
    """Which edit is which is ambiguous (same_type_edits); the note must still be true for the reading taken."""
    w = World(advoware=[{"kommKz": 4, "tlf": "u3@x.de", "online": True, "bemerkung": "Sekretariat"},
                        {"kommKz": 4, "tlf": "u4@x.de", "bemerkung": "Chef"}],
              emails=[{"emailAddress": "u3@x.de", "primary": True}, {"emailAddress": "u4@x.de"}])
    w.sync()
    first, second = w.advo_id_of("u3@x.de"), w.advo_id_of("u4@x.de")
    w.espo_change("u3@x.de", "u5@x.de")
    w.espo_change("u4@x.de", "u7@x.de")
    w.espo_set_primary("u7@x.de")
    w.advo_edit(w.advo_id_of("u3@x.de"), tlf="u6@x.de")
    before = w.state()
    plan = w.sync()
    assert check_sync(before, w.state(), plan.notes) == {("same_type_edits", "email")}
    [note] = plan.notes
    written = w.entry(first)["tlf"]  # u5 or u7, by the reading taken: the note names that one
    assert f"'u6@x.de' (MailGesch) was overridden by the EspoCRM value {written!r}" in note
    assert (text_of(w, first), text_of(w, second)) == ("Sekretariat", "Chef")  # each text stays with its entry
    assert_converged(w)


def test_a_value_advoware_moved_onto_an_entry_espocrm_deleted_is_kept_not_lost():
    """Found by the oracle (play seed 273): Advoware moves u2 into u3's entry while EspoCRM deletes u3."""
    w = World(advoware=[{"kommKz": 4, "tlf": "u2@x.de"}, {"kommKz": 4, "tlf": "u3@x.de"}])
    w.sync()
    first, second = w.advo_id_of("u2@x.de"), w.advo_id_of("u3@x.de")
    w.advo_edit(first, tlf="u6@x.de")
    w.advo_edit(second, tlf="u2@x.de")
    w.espo_delete("u3@x.de")
    plan = w.sync()
    assert w.espo_values == {"u2@x.de", "u6@x.de"} and set(w.advo_live) == {"u2@x.de", "u6@x.de"}
    assert not plan.notes  # nothing was overridden: both of Advoware's values are kept
    assert_converged(w)
