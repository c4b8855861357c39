"""A failure belongs to the domain that recorded it: a Beteiligte success never resets a Kommunikation failure.

Before: the Beteiligte sync's success reset `syncRetryCount` to 0, the Kommunikation sync's failure
set it to 1, and an entity whose phone number EspoCRM refused retried every minute forever, never
`permanently_failed`, nobody told (issue "Real EspoCRM", §0).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from beteiligte_helpers import PERSON, espo_record, run_sync
from bitbylaw_tasks.beteiligte import status

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def _failed(message: str, count: int = 1, state: str = status.FAILED) -> dict:
    return {"syncStatus": state, "syncRetryCount": count, "syncErrorMessage": message}


@pytest.mark.parametrize("record,owner", [
    ({"syncStatus": "clean"}, None),
    (_failed("ApiError: 500"), "beteiligte"),
    (_failed("Kommunikation: BadRequest: 400"), "kommunikation"),
    (_failed("Kommunikation: x", state=status.PERMANENTLY_FAILED), "kommunikation"),
    ({"syncStatus": "dirty", "syncErrorMessage": "Kommunikation: old"}, None),
])
def test_failure_owner(record, owner):
    assert status.failure_owner(record) == owner


def test_a_beteiligte_success_keeps_a_kommunikation_failure_and_clears_its_own():
    write = {**status.after_success(NOW), "betnr": 7, "advowareRowId": "r"}
    kept = status.success_for(_failed("Kommunikation: BadRequest"), "beteiligte", write)
    assert not set(status.FAILURE_FIELDS) & set(kept) and kept["advowareRowId"] == "r"
    assert status.success_for(_failed("Unavailable: 503"), "beteiligte", write) == write
    assert status.success_for({"syncStatus": "dirty"}, "beteiligte", write) == write


def test_only_the_owning_domain_clears_a_failure():
    cleared = status.clear_own_failure(_failed("Kommunikation: x", 3), "kommunikation", NOW)
    assert cleared == {"syncStatus": "clean", "syncRetryCount": 0, "syncErrorMessage": ""}
    assert status.clear_own_failure(_failed("Unavailable: 503"), "kommunikation", NOW) == {}
    assert status.clear_own_failure({"syncStatus": "clean"}, "kommunikation", NOW) == {}


def test_alternating_beteiligte_success_and_kommunikation_failure_reaches_permanently_failed():
    record = {"syncStatus": "dirty", "syncRetryCount": 0, "syncErrorMessage": ""}
    now = NOW
    for round_ in range(1, status.MAX_FAILURES + 1):
        record.update(status.success_for(record, "beteiligte", {**status.after_success(now), "betnr": 7}))
        outcome = status.after_failure(record, now, status.failure_prefix("kommunikation") + "BadRequest: 400")
        record.update(outcome.update)
        assert record["syncRetryCount"] == round_
        now += timedelta(hours=5)
    assert record["syncStatus"] == status.PERMANENTLY_FAILED and outcome.permanent


def test_a_number_espocrm_refuses_ends_permanently_failed_with_a_note(espocrm_international, lock_redis,
                                                                      celery_worker):
    """End to end on the simulator: Advoware holds a number EspoCRM refuses (too short to be a possible
    number even in international form); each retry round is a Beteiligte success and a Kommunikation
    failure; the fifth is `permanently_failed`, and the person assigned hears of it."""
    espo, advo = espocrm_international.state("espocrm"), espocrm_international.state("advoware")
    record = espo.human_create({**PERSON, "assignedUserId": espo.user_by_name("alice")["id"]})
    assert run_sync(record["id"], "create", "webhook")["path"] == "create"
    betnr = espo_record(espocrm_international, record["id"])["betnr"]
    advo.human_add_kommunikation(betnr, 2, "+49 2")
    counts = []
    for _ in range(status.MAX_FAILURES):
        run_sync(record["id"], "check", "retry")
        counts.append(espo_record(espocrm_international, record["id"])["syncRetryCount"])
    after = espo_record(espocrm_international, record["id"])
    assert counts == [1, 2, 3, 4, 5]
    assert after["syncStatus"] == status.PERMANENTLY_FAILED
    assert after["syncErrorMessage"].startswith("Kommunikation: ")
    notes = [n for n in espo.all_notes() if n["parentId"] == record["id"]]
    assert any("failed 5 times" in n["post"] for n in notes)
