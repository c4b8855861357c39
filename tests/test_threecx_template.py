"""The shipped 3CX template (`integrations/threecx/bitbylaw.xml`): well-formed, only SPEC §12's variables and
output types, and — run by a stand-in for 3CX's engine (`tests/threecx_engine.py`) against the shim over real
HTTP — every `<Output>` of the lookup resolves, and the journaling scenario ends as an EspoCRM Call."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests

from bitbylaw_tasks.inbound import phone_index
from bitbylaw_tasks.web import create_app
from conftest import wait_idle
from inbound_helpers import API_KEY
from integrations.sandbox.kit import ServerThread
from threecx_engine import VAR, Template, format_number

TEMPLATE = Path(__file__).resolve().parents[1] / "integrations" / "threecx" / "bitbylaw.xml"
# SPEC §12: the call variables 3CX fills in and the output types it maps.
SPEC_VARIABLES = {"Number", "CallType", "Agent", "Duration", "CallStartTimeUTC", "CallStartTimeLocal",
                  "EntityId", "EntityType"}
SPEC_OUTPUTS = {"FirstName", "LastName", "CompanyName", "Email", "PhoneBusiness", "PhoneMobile", "EntityId",
                "EntityType", "ContactUrl"}


@pytest.fixture(scope="module")
def template():
    return Template(TEMPLATE)


def test_the_template_is_wellformed_with_the_3cx_structure(template):
    root = template.root
    assert root.tag == "Crm" and {"Name", "Version", "Country"} <= set(root.attrib)
    assert [child.tag for child in root] == ["Number", "Connection", "Parameters", "Authentication", "Scenarios"]
    assert root.find("Number").get("Prefix") in ("AsIs", "Off", "Plus", "Zeros")
    assert int(root.find("Connection").get("MaxConcurrentRequests")) >= 1
    params = template.parameters()
    assert {"BaseUrl", "ApiKey"} <= set(params) and params["ApiKey"]["Type"] == "Password"
    ids = [s.get("Id") for s in root.find("Scenarios")]
    assert ids == ["", "ReportCall"]


def test_only_spec_variables_parameters_and_own_variables_are_used(template):
    params = set(template.parameters())
    for scenario in template.root.find("Scenarios"):
        own = {v.get("Name") for v in scenario.find("Variables") or []}
        texts = [scenario.find("Request").get("Url"), scenario.find("Request").get("SkipIf", "")]
        texts += [v.text for v in scenario.iter("Value")] + [o.get("Value") for o in scenario.iter("Output")]
        used = {name for text in texts if text for name in VAR.findall(text)}
        assert used <= SPEC_VARIABLES | params | own, used - (SPEC_VARIABLES | params | own)
        assert {o.get("Type") for o in scenario.iter("Output")} <= SPEC_OUTPUTS
    auth_vars = set(VAR.findall(template.root.find("Authentication").find("Value").text))
    assert auth_vars <= params
    lookup_outputs = {o.get("Type") for o in template.scenario("").iter("Output")}
    assert lookup_outputs == SPEC_OUTPUTS  # the lookup maps every output type 3CX knows


@pytest.mark.parametrize("number,prefix,expected", [("+49301234567", "Plus", "+49301234567"),
                                                    ("0049301234567", "Plus", "+49301234567"),
                                                    ("+49301234567", "Zeros", "0049301234567"),
                                                    ("+49301234567", "Off", "49301234567"),
                                                    ("0301234567", "Plus", "0301234567")])
def test_number_prefix_formatting_of_the_engine(number, prefix, expected):
    assert format_number(number, prefix) == expected


@pytest.fixture
def shim(celery_app, celery_worker, sandbox, lock_redis, monkeypatch):
    from bitbylaw_tasks.celery_app import settings_of

    settings = settings_of(celery_app).replace(threecx_api_key=API_KEY, threecx_extension_users={"101": "alice"})
    monkeypatch.setitem(celery_app.conf, "bitbylaw_settings", settings)
    server = ServerThread(create_app(settings)).start()
    yield server
    server.stop()


def _values(template, shim, **call):
    number = format_number(call.pop("Number", "+49301234567"), template.root.find("Number").get("Prefix"))
    return {"BaseUrl": shim.url, "ApiKey": API_KEY, "ReportCallEnabled": "True", "Number": number,
            "CallType": "Inbound", "Agent": "101", "Duration": "00:02:05", "CallStartTimeUTC": "2026-11-30 14:05:00",
            "CallStartTimeLocal": "2026-11-30 15:05:00", "EntityId": "", "EntityType": "", **call}


@pytest.mark.parametrize("raw_number", ["+49301234567", "0049301234567"])
def test_the_lookup_scenario_resolves_every_output(template, shim, sandbox, lock_redis, raw_number):
    espo = sandbox.state("espocrm")
    party = espo.human_create({"firstName": "Max", "lastName": "Muster", "firmenname": "Muster GmbH",
                               "emailAddressData": [{"emailAddress": "max@muster.de", "primary": True}],
                               "phoneNumberData": [{"phoneNumber": "030 1234567", "type": "Office"},
                                                   {"phoneNumber": "0171 7654321", "type": "Mobile"}]})
    phone_index.index_record(lock_redis, "CBeteiligte", espo.get(party["id"]))
    result = template.run("", _values(template, shim, Number=raw_number))
    assert result["status"] == 200 and result["matched"]
    outputs = result["outputs"]
    assert set(outputs) == SPEC_OUTPUTS and all(outputs.values()), outputs
    assert (outputs["FirstName"], outputs["LastName"], outputs["CompanyName"], outputs["Email"]) == (
        "Max", "Muster", "Muster GmbH", "max@muster.de")
    assert (outputs["PhoneBusiness"], outputs["PhoneMobile"]) == ("+49301234567", "+491717654321")
    assert (outputs["EntityId"], outputs["EntityType"]) == (party["id"], "CBeteiligte")
    # no ESPOCRM_PUBLIC_URL here: the record's page in the EspoCRM the shim talks to
    assert outputs["ContactUrl"] == f"{sandbox.url('espocrm')}/#CBeteiligte/view/{party['id']}"


def test_an_unknown_caller_matches_nothing_and_a_wrong_key_is_refused(template, shim):
    assert template.run("", _values(template, shim, Number="+49309999999"))["matched"] is False
    refused = template.run("", {**_values(template, shim), "ApiKey": "wrong"})
    assert refused["status"] == 401


def test_the_report_call_scenario_journals_the_call_on_the_matched_record(template, shim, sandbox, lock_redis):
    espo = sandbox.state("espocrm")
    party = espo.human_create({"lastName": "Muster", "phoneNumberData": [{"phoneNumber": "030 1234567", "type": "Office"}]})
    phone_index.index_record(lock_redis, "CBeteiligte", espo.get(party["id"]))
    lookup = template.run("", _values(template, shim))
    values = _values(template, shim, CallType="Missed", Duration="00:00:00", EntityId=lookup["outputs"]["EntityId"],
                     EntityType=lookup["outputs"]["EntityType"])
    result = template.run("ReportCall", values)
    assert result["status"] == 202, result["answer"]
    wait_idle()
    (call,) = requests.get(f"{sandbox.url('espocrm')}/_sandbox/crm/Call", timeout=5).json()
    assert (call["parentType"], call["parentId"], call["status"], call["direction"]) == (
        "CBeteiligte", party["id"], "Not Held", "Inbound")
    assert template.run("ReportCall", values)["status"] == 200  # 3CX retried: the same call, journaled once
    assert template.run("ReportCall", {**values, "ReportCallEnabled": "False"}) == {"skipped": True}
