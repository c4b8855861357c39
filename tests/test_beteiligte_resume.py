"""Unit tests of the resumed sync (issue 18 A): `put_journal.resume_from`, `compare(resume=...)`, `notes_due`.

A sync PUT to Advoware, then its EspoCRM write-back did not land. The journal entry
(`put_journal.PendingPut`) tells the next sync what Advoware held after that PUT and what
EspoCRM held when it was decided, so the retry neither loses the note nor mistakes its
own PUT value for an Advoware edit.
"""
from bitbylaw_tasks.beteiligte.compare import (
    CONFLICT, ESPOCRM_NEWER, NO_CHANGE, RESUMED, Override, Resume, compare, notes_due, override_note,
)
from bitbylaw_tasks.beteiligte.mapping import mapped_snapshot
from bitbylaw_tasks.beteiligte.put_journal import PendingPut, resume_from
from test_beteiligte_compare import MAX, MAX_ADVO, SNAP, linked

DR = Override("titel", "person", True, False, "Dr. Advo", "Mitte-E1", "Mitte-E1")
DECIDED = mapped_snapshot({**MAX, "titel": "Mitte-E1"})           # EspoCRM when the PUT was decided
MERGED = mapped_snapshot({**MAX, "firstName": "Moritz", "titel": "Mitte-E1"})  # + Advoware's vorname
PUT_ADVO = {**MAX_ADVO, "vorname": "Moritz", "titel": "Mitte-E1", "rowId": "row-PUT"}


def pending(row_id="row-PUT"):
    return PendingPut(DECIDED, MERGED, (DR,), row_id)


def test_no_entry_is_an_ordinary_sync():
    espo, advo = linked(MAX, MAX_ADVO, SNAP)
    assert resume_from(None, espo, advo) == (None, ())


def test_answered_put_whose_write_back_landed_only_owes_the_note():
    espo, advo = linked(MERGED, PUT_ADVO, MERGED, advowareRowId="row-PUT")
    assert resume_from(pending(), espo, advo) == (None, (DR,))


def test_answered_put_without_write_back_resumes_from_its_row_id():
    espo, advo = linked({**MAX, "titel": "Mitte-E1"}, PUT_ADVO, SNAP)
    resume, owed = resume_from(pending(), espo, advo)
    assert resume == Resume(DECIDED, MERGED, "row-PUT") and owed == (DR,)


def test_unanswered_put_that_landed_resumes_from_advowares_row_id():
    espo, advo = linked({**MAX, "titel": "Mitte-E1"}, PUT_ADVO, SNAP)
    resume, owed = resume_from(pending(row_id=None), espo, advo)
    assert resume.row_id == "row-PUT" and owed == (DR,)


def test_unanswered_put_that_did_not_land_is_forgotten():
    espo, advo = linked({**MAX, "titel": "Mitte-E1"}, {**MAX_ADVO, "titel": "Dr. Advo", "rowId": "row-B"}, SNAP)
    assert resume_from(pending(row_id=None), espo, advo) == (None, ())


def test_resumed_sync_writes_advowares_side_to_espocrm_and_posts_nothing_new():
    espo, advo = linked({**MAX, "titel": "Mitte-E1"}, PUT_ADVO, SNAP)
    resume, owed = resume_from(pending(), espo, advo)
    result = compare(espo, advo, resume=resume)
    assert (result.kind, result.detection, result.advoware_put, result.overridden) == (NO_CHANGE, RESUMED, None, ())
    assert result.espocrm_update == {"firstName": "Moritz", "name": "Moritz Muster"}
    assert "Advoware: Dr. Advo" in override_note(notes_due(result, owed))


def test_a_user_edit_after_the_decision_is_an_espocrm_change_not_a_conflict_with_the_own_put():
    espo, advo = linked({**MAX, "titel": "Mitte-E2"}, PUT_ADVO, SNAP)
    result = compare(espo, advo, resume=resume_from(pending(), espo, advo)[0])
    assert result.kind == ESPOCRM_NEWER and result.overridden == ()
    assert result.merged == {**MERGED, "titel": "Mitte-E2"}
    assert result.advoware_put["titel"] == "Mitte-E2" and result.advoware_put["vorname"] == "Moritz"
    note = override_note(notes_due(result, (DR,)))
    assert "Advoware: Dr. Advo" in note and "now: Mitte-E2" in note and "Advoware: Mitte-E1" not in note


def test_an_advoware_edit_after_the_put_is_merged_against_the_put():
    espo, advo = linked({**MAX, "titel": "Mitte-E2"}, {**PUT_ADVO, "titel": "Prof.", "rowId": "row-C"}, SNAP)
    result = compare(espo, advo, resume=resume_from(pending(), espo, advo)[0])
    assert result.kind == CONFLICT and result.merged["titel"] == "Mitte-E2"
    assert [(o.field, o.advoware) for o in result.advoware_overridden] == [("titel", "Prof.")]


def test_a_user_edit_after_the_decision_of_a_field_the_put_took_from_advoware_is_a_conflict():
    """EspoCRM never showed Advoware's "Moritz" (the write-back did not land) when its user changed the
    first name: both sides changed it, EspoCRM wins, and the note names Advoware's "Moritz"."""
    espo, advo = linked({**MAX, "firstName": "Maximilian", "titel": "Mitte-E1"}, PUT_ADVO, SNAP)
    result = compare(espo, advo, resume=resume_from(pending(), espo, advo)[0])
    assert result.merged["firstName"] == "Maximilian" and result.advoware_put["vorname"] == "Maximilian"
    assert [(o.field, o.advoware) for o in result.advoware_overridden] == [("firstName", "Moritz")]


def test_a_company_again_after_the_decision_keeps_espocrms_rechtsform():
    """The PUT made a person (Advoware's switch won the name group), so EspoCRM's new rechtsform was not
    mapped; then EspoCRM's user renamed the company: the company is back, with EspoCRM's rechtsform."""
    acme = {"firmenname": "ACME", "rechtsform": "AG", "salutationName": "Firma"}
    decided = mapped_snapshot(acme)
    merged = mapped_snapshot({"firstName": "Max", "lastName": "ACME", "salutationName": "Firma"})
    advo = {"vorname": "Max", "name": "ACME", "anrede": "Firma", "rechtsform": "GmbH", "rowId": "row-PUT"}
    espo, advo = linked({**acme, "firmenname": "ACME Neu"}, advo, mapped_snapshot({**acme, "rechtsform": "GmbH"}))
    result = compare(espo, advo, resume=resume_from(PendingPut(decided, merged, (), "row-PUT"), espo, advo)[0])
    assert (result.merged["firmenname"], result.merged["rechtsform"]) == ("ACME Neu", "AG")
    assert result.advoware_put["rechtsform"] == "AG" and result.espocrm_update.get("rechtsform", "AG") == "AG"
