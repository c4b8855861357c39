"""EspoCRM's E.164 form of phone numbers: rendering for writes, recognising renderings on reads, and the
Kommunikation sync against an EspoCRM (simulator) with `phoneNumberInternational` on."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from beteiligte_helpers import PERSON, advoware_record, espo_record, run_sync
from conftest import switch_international
from bitbylaw_tasks.kommunikation.espo_phones import e164, recognise_phones, render_phones


@pytest.mark.parametrize("value,expected", [
    ("0221 987654", "+49221987654"),
    ("+49 (0)171 1234567", "+491711234567"),
    ("0171/1234567", "+491711234567"),
    ("+43 1 234567", "+431234567"),
    ("0043 1 234567", "+431234567"),
    ("+49221987654", "+49221987654"),
    ("030 12345678", "+493012345678"),
    ("1", None),
    ("kein Anschluss", None),
    ("", None),
])
def test_e164(value, expected):
    assert e164(value) == expected


def test_recognise_gives_a_known_value_back_for_its_e164_form_only():
    items = [{"phoneNumber": "+49221987654", "type": "Fax", "primary": True},
             {"phoneNumber": "+491715551234", "type": "Mobile", "primary": False},
             {"phoneNumber": "0301234567", "type": "Office", "primary": False}]
    out = recognise_phones(items, ["0221 987654", "0301234567", "", None])
    assert [i["phoneNumber"] for i in out] == ["0221 987654", "+491715551234", "0301234567"]
    assert [(i["type"], i["primary"]) for i in out] == [("Fax", True), ("Mobile", False), ("Office", False)]
    assert items[0]["phoneNumber"] == "+49221987654"  # the input is not changed


def test_recognise_leaves_an_item_that_equals_a_known_value_alone():
    out = recognise_phones([{"phoneNumber": "+49221987654"}], ["+49221987654", "0221 987654"])
    assert out == [{"phoneNumber": "+49221987654"}]


def test_render_converts_and_names_the_refused_by_type():
    rendered = render_phones([{"phoneNumber": "0221 987654", "type": "Fax", "primary": True},
                              {"phoneNumber": "kein Anschluss", "type": "Office", "primary": False}])
    assert rendered.phone_number_data == [{"phoneNumber": "+49221987654", "type": "Fax", "primary": True}]
    assert rendered.refused == ["Office"]


@given(st.from_regex(r"0(1[5-7]\d|[2-9]\d{1,3}) ?\d{5,7}", fullmatch=True))
def test_a_rendered_number_is_recognised_as_the_value_it_came_from(national):
    form = e164(national)
    if form is None:
        return
    assert render_phones([{"phoneNumber": national}]).phone_number_data == [{"phoneNumber": form}]
    assert recognise_phones([{"phoneNumber": form}], [national]) == [{"phoneNumber": national}]
    assert e164(form) == form  # idempotent: EspoCRM keeps what it was given


def _party_with_an_advoware_number(sandbox, kommkz: int, tlf: str, bemerkung: str = "") -> tuple[dict, int]:
    """A party created by a user and synced, then a number a person adds in Advoware; returns (record, betNr)."""
    record = sandbox.state("espocrm").human_create(PERSON)
    run_sync(record["id"], "create", "webhook")
    betnr = espo_record(sandbox, record["id"])["betnr"]
    sandbox.state("advoware").human_add_kommunikation(betnr, kommkz, tlf, bemerkung=bemerkung)
    return record, betnr


def test_advoware_numbers_reach_an_international_espocrm_and_keep_their_format_in_advoware(
        espocrm_international, lock_redis, celery_worker):
    espo = espocrm_international.state("espocrm")
    record, betnr = _party_with_an_advoware_number(espocrm_international, 2, "0221 987654", "nur vormittags")
    run_sync(record["id"])
    after = espo_record(espocrm_international, record["id"])
    assert [(p["phoneNumber"], p["type"]) for p in after["phoneNumberData"]] == [("+49221987654", "Fax")]
    assert after["syncStatus"] == "clean"
    entry = [k for k in advoware_record(espocrm_international, betnr)["kommunikation"] if k["kommKz"] == 2][0]
    assert entry["tlf"] == "0221 987654" and entry["bemerkung"].endswith("nur vormittags")
    espocrm_international.kit("advoware").reset_calls()
    assert run_sync(record["id"])["path"] == "no_change"  # the rendering is no user edit
    assert not any(k.startswith(("PUT", "POST")) for k in espocrm_international.kit("advoware").calls())
    espo.human_update(record["id"], {"phoneNumberData": [{"phoneNumber": "+49 221 111222", "type": "Fax"}]})
    run_sync(record["id"], "update", "webhook")
    entry = [k for k in advoware_record(espocrm_international, betnr)["kommunikation"] if k["kommKz"] == 2][0]
    assert entry["tlf"] == "+49221111222" and entry["bemerkung"].endswith("nur vormittags")


def test_a_number_without_an_international_form_fails_clearly_before_any_write(
        espocrm_international, lock_redis, celery_worker):
    record, _ = _party_with_an_advoware_number(espocrm_international, 1, "kein Anschluss")
    espocrm_international.kit("advoware").reset_calls()
    run_sync(record["id"])
    after = espo_record(espocrm_international, record["id"])
    assert after["syncStatus"] == "failed"
    assert "international form" in after["syncErrorMessage"] and "Anschluss" not in after["syncErrorMessage"]
    advoware_calls = espocrm_international.kit("advoware").calls()
    assert not any(k.startswith(("PUT", "POST /api/v1/advonet")) for k in advoware_calls)


def test_an_admin_switching_the_phone_format_costs_one_failed_round_not_more(sandbox, lock_redis, celery_worker):
    """The worker read `phoneNumberInternational` off; an admin switches it on: the next write of phones is
    refused once, the refusal makes the client read the settings again, and the following sync succeeds."""
    from bitbylaw_tasks.celery_app import app, settings_of
    from bitbylaw_tasks.clients import clients_for

    espo, advo = sandbox.state("espocrm"), sandbox.state("advoware")
    switch_international(sandbox, False)  # an install whose admin had turned it off
    record = espo.human_create(PERSON)
    run_sync(record["id"], "create", "webhook")
    client = clients_for(settings_of(app)).espocrm
    client.forget_server_settings()
    assert client.phone_numbers_international() is False
    switch_international(sandbox, True)
    advo.human_add_kommunikation(espo_record(sandbox, record["id"])["betnr"], 1, "030 1234567")
    run_sync(record["id"])
    assert espo_record(sandbox, record["id"])["syncStatus"] == "failed"
    run_sync(record["id"], "check", "retry")
    after = espo_record(sandbox, record["id"])
    assert after["syncStatus"] == "clean" and [p["phoneNumber"] for p in after["phoneNumberData"]] == ["+49301234567"]
    client.forget_server_settings()
