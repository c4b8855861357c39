"""Beteiligte sync: edits that land inside a sync's own windows, and what survives them (issue 18).

Through both simulators and the session worker, with faults that hold a call
open while a test thread edits as a human:
- C: an EspoCRM edit made while the Advoware POST is in flight, or before a later
  adoption of the journal's betNr, is not lost: the snapshot is what was POSTed, so
  the edit is seen as an EspoCRM change and reaches Advoware in a follow-up round of
  the same sync;
- A: the conflict note survives a failed or refused EspoCRM write-back after the
  Advoware PUT, and never names the sync's own PUT value as Advoware's;
- the GET->PUT window: an Advoware edit while the sync holds a stale GET is
  caught by the rowId re-check before the PUT.
"""
import pytest

from beteiligte_helpers import PERSON, OnCall, advoware_record, espo_record, linked_record, run_sync
from bitbylaw_tasks.beteiligte.store import CreateJournal
from bitbylaw_tasks.beteiligte.mapping import espo_to_advoware, mapped_snapshot

ADVO_ONE = "/api/v1/advonet/Beteiligte/*"
ADVO_GET, ADVO_PUT = "GET /api/v1/advonet/Beteiligte/<betnr>", "PUT /api/v1/advonet/Beteiligte/<betnr>"


@pytest.fixture
def world(sandbox, lock_redis, celery_worker):
    """The simulators reset, with no webhook subscriptions: the tests drive every sync themselves."""
    sandbox.state("espocrm").hooks.clear()
    return sandbox


def _notes(world, entity_id) -> list[str]:
    return [n["post"] for n in world.state("espocrm").all_notes() if n["parentId"] == entity_id]


def _settled(world, entity_id) -> tuple[dict, dict]:
    assert run_sync(entity_id)["path"] == "no_change"
    espo = espo_record(world, entity_id)
    return espo, advoware_record(world, espo["betnr"])


# ---------------------------------------------------------------- C: an edit during the create
def test_espocrm_edit_during_the_create_reaches_advoware(world):
    espo = world.state("espocrm")
    record = espo.human_create(PERSON)
    espo.hooks.clear()
    world.kit("advoware").add_fault(path="/api/v1/advonet/Beteiligte", method="POST", latency_ms=500, times=1)
    edit = OnCall(world.kit("advoware"), "POST /api/v1/advonet/Beteiligte",
                  lambda: espo.human_update(record["id"], {"titel": "Prof."}, user="bob"))
    run_sync(record["id"], "create", "webhook")
    edit.finish()
    after, advo = _settled(world, record["id"])
    assert after["titel"] == advo["titel"] == "Prof."
    assert after["syncStatus"] == "clean"


def test_journal_adoption_after_a_user_edit_carries_the_edit_to_advoware(world, lock_redis):
    """An earlier attempt POSTed (the journal says `created`) and its write-back failed; the user edited
    the record before the retry. The retry adopts the betNr without a POST, and the edit reaches Advoware."""
    espo = world.state("espocrm")
    record = espo.human_create(PERSON)
    espo.hooks.clear()
    created = world.state("advoware").create_beteiligte(espo_to_advoware(record))
    CreateJournal(lock_redis, record["id"]).created(created["betNr"], created["rowId"], mapped_snapshot(record))
    espo.human_update(record["id"], {"titel": "Prof."}, user="bob")
    assert run_sync(record["id"], "update", "retry")["detail"]["kind"] == "espocrm_newer"
    after, advo = _settled(world, record["id"])
    assert after["betnr"] == created["betNr"] and after["titel"] == advo["titel"] == "Prof."
    assert world.kit("advoware").calls().get("POST /api/v1/advonet/Beteiligte", 0) == 0


# ---------------------------------------------------------------- A: the conflict note after a failed write-back
def _conflict_on_titel(world) -> dict:
    """Advoware sets titel "Dr.", EspoCRM "Mitte-E1": EspoCRM wins, Advoware's "Dr." must be noted."""
    record = linked_record(world)
    world.state("advoware").human_update_beteiligte(record["betnr"], titel="Dr. Advo")
    world.state("espocrm").human_update(record["id"], {"titel": "Mitte-E1"}, user="bob")
    return record


@pytest.mark.parametrize("system, fault", [
    ("advoware", {"path": ADVO_ONE, "method": "PUT", "status": 500, "after": True}),   # PUT done, answer lost
    ("espocrm", {"path": "/api/v1/CBeteiligte/*", "method": "PUT", "status": 500}),    # write-back refused
], ids=["advoware-put-answer-lost", "espocrm-write-back-500"])
def test_conflict_note_survives_a_failed_write_back(world, system, fault):
    record = _conflict_on_titel(world)
    world.kit(system).add_fault(times=1, **fault)
    run_sync(record["id"], timeout=60)
    after, advo = _settled(world, record["id"])
    assert after["titel"] == advo["titel"] == "Mitte-E1"
    notes = _notes(world, record["id"])
    assert len(notes) == 1 and "Advoware: Dr. Advo" in notes[0], notes


def test_conflict_note_after_a_mid_sync_edit_names_advowares_value_not_the_syncs_own(world):
    """The write-back meets a 409 (the user edited titel again while the PUT was in flight): the re-decided
    sync must still name Advoware's "Dr. Advo", and never its own PUT value "Mitte-E1" as Advoware's."""
    record = _conflict_on_titel(world)
    espo = world.state("espocrm")
    world.kit("advoware").add_fault(path=ADVO_ONE, method="PUT", latency_ms=500, times=1)
    edit = OnCall(world.kit("advoware"), ADVO_PUT, lambda: espo.human_update(record["id"], {"titel": "Mitte-E2"},
                                                                           user="bob"))
    run_sync(record["id"])
    edit.finish()
    after, advo = _settled(world, record["id"])
    assert after["titel"] == advo["titel"] == "Mitte-E2"
    notes = "\n".join(_notes(world, record["id"]))
    assert "Advoware: Dr. Advo" in notes and "Advoware: Mitte-E1" not in notes, notes


# ---------------------------------------------------------------- the GET->PUT window
def test_advoware_edit_while_a_slow_get_is_answered_is_caught_by_the_recheck(world):
    """Advoware read the record, then its answer took 1.3 s (> RECHECK_AFTER); a person edited meanwhile:
    the sync GETs again before its PUT, sees the new rowId, re-decides, and keeps the person's edit."""
    record = linked_record(world)
    world.state("espocrm").human_update(record["id"], {"titel": "Prof."}, user="bob")
    world.kit("advoware").add_fault(path=ADVO_ONE, method="GET", latency_ms=1300, after=True, times=1)
    advo_state = world.state("advoware")
    edit = OnCall(world.kit("advoware"), ADVO_GET, lambda: advo_state.human_update_beteiligte(record["betnr"],
                                                                                            vorname="Moritz"))
    outcome = run_sync(record["id"])
    edit.finish()
    assert outcome["detail"]["rechecks"] == 1 and outcome["path"] == "conflict"
    after, advo = _settled(world, record["id"])
    assert after["firstName"] == advo["vorname"] == "Moritz" and after["titel"] == advo["titel"] == "Prof."


def test_get_put_window_residual_an_advoware_edit_while_the_put_is_in_flight_is_lost(world):
    """The documented residual: Advoware's PUT has no precondition, so a person's save that lands while
    the sync's PUT is on its way is replaced by the PUT (the simulator reproduces it with a slow PUT)."""
    record = linked_record(world)
    world.state("espocrm").human_update(record["id"], {"titel": "Prof."}, user="bob")
    world.kit("advoware").add_fault(path=ADVO_ONE, method="PUT", latency_ms=500, times=1)
    advo_state = world.state("advoware")
    edit = OnCall(world.kit("advoware"), ADVO_PUT, lambda: advo_state.human_update_beteiligte(record["betnr"],
                                                                                            vorname="Moritz"))
    outcome = run_sync(record["id"])
    edit.finish()
    assert outcome["detail"]["rechecks"] == 0
    after, advo = _settled(world, record["id"])
    assert after["firstName"] == advo["vorname"] == "Max" and advo["titel"] == "Prof."
