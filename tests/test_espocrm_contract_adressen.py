"""EspoCRM contract of `CAdresse` (SPEC §11): on the simulator AND on a real EspoCRM 9.2.7 with the extension.

The same shape as `test_espocrm_contract.py`: each test runs on both backends;
where they disagree, the real server is right (docs/sandbox-espocrm.md).
"""
from __future__ import annotations

import pytest

from espocrm_backends import real_backend, simulator_backend, unique
from integrations.errors import Conflict, Forbidden
from integrations.sandbox.webhook_sink import WebhookSink
from test_espocrm_contract import _delivered, _ids

CONTENT = {"strasse": "Hauptstr. 1", "plz": "10115", "ort": "Berlin", "land": "DE", "postfach": "12 34",
           "postfachPlz": "10002", "anschrift": "Kanzlei Nord", "bemerkung": "Hinterhaus",
           "gueltigVon": "2024-01-01", "gueltigBis": "2030-12-31", "isPrimary": True}


@pytest.fixture(params=["simulator", pytest.param("real", marks=pytest.mark.real_espocrm)])
def backend(request):
    if request.param == "simulator":
        return simulator_backend(request.getfixturevalue("sandbox"))
    return real_backend(request.getfixturevalue("real_espocrm"))


def _party(backend) -> dict:
    return backend.client.create_beteiligte({"firstName": "Max", "lastName": unique("Adr"), "syncStatus": "clean"})


def _user_address(backend, fields: dict) -> dict:
    return backend.user_create(fields, "CAdresse")


def _user_edit(backend, record_id: str, fields: dict) -> dict:
    return backend.user_update(record_id, fields, "CAdresse")


def test_an_address_belongs_to_a_party_and_keeps_every_content_field(backend):
    party = _party(backend)
    created = backend.client.create_adresse({"beteiligteId": party["id"], **CONTENT})
    assert created["beteiligteId"] == party["id"]
    fetched = backend.client.get_adresse(created["id"])
    assert {k: fetched[k] for k in CONTENT} == CONTENT
    assert fetched["isActive"] is True  # the default
    assert fetched["name"] == "Hauptstr. 1, 10115 Berlin"
    other = backend.client.create_adresse({"beteiligteId": party["id"], "anschrift": "Postfach only"})
    assert other["isPrimary"] is False and other["name"] == "Postfach only"
    listed = backend.client.list_adressen(party["id"])
    assert [a["id"] for a in listed] == [created["id"], other["id"]]
    assert backend.client.list_adressen(_party(backend)["id"]) == []


def test_a_users_address_is_pending_and_the_integration_user_may_choose(backend):
    party = _party(backend)
    assert _user_address(backend, {"beteiligteId": party["id"], "strasse": "A", "syncStatus": "clean"})[
        "syncStatus"] == "pending_sync"
    own = backend.client.create_adresse({"beteiligteId": party["id"], "strasse": "B", "syncStatus": "clean"})
    assert own["syncStatus"] == "clean"


def test_a_users_edit_of_a_content_field_makes_a_clean_address_dirty(backend):
    party = _party(backend)
    record = backend.client.create_adresse({"beteiligteId": party["id"], "strasse": "A", "plz": None,
                                            "syncStatus": "clean"})
    assert _user_edit(backend, record["id"], {"strasse": "A"})["syncStatus"] == "clean"  # same value
    assert _user_edit(backend, record["id"], {"plz": ""})["syncStatus"] == "clean"  # null and "" alike
    assert _user_edit(backend, record["id"], {"land": "AT"})["syncStatus"] == "dirty"
    flag = backend.client.create_adresse({"beteiligteId": party["id"], "strasse": "B", "syncStatus": "clean"})
    assert _user_edit(backend, flag["id"], {"isActive": False})["syncStatus"] == "dirty"


def test_the_integration_users_writes_never_change_the_status(backend):
    party = _party(backend)
    record = backend.client.create_adresse({"beteiligteId": party["id"], "strasse": "A", "syncStatus": "clean"})
    assert backend.client.update_adresse(record["id"], {"strasse": "B"})["syncStatus"] == "clean"
    failed = backend.client.update_adresse(record["id"], {"syncStatus": "failed"})
    assert _user_edit(backend, failed["id"], {"strasse": "C"})["syncStatus"] == "failed"


def test_a_stale_version_is_a_conflict(backend):
    party = _party(backend)
    record = backend.client.create_adresse({"beteiligteId": party["id"], "strasse": "A", "syncStatus": "clean"})
    _user_edit(backend, record["id"], {"strasse": "User"})
    with pytest.raises(Conflict):
        backend.client.update_adresse(record["id"], {"strasse": "Sync"}, version_number=record["versionNumber"])
    assert backend.client.get_adresse(record["id"])["strasse"] == "User"


def test_the_integration_user_cannot_delete_an_address(backend):
    party = _party(backend)
    record = backend.client.create_adresse({"beteiligteId": party["id"], "strasse": "A"})
    with pytest.raises(Forbidden):
        backend.client._call("delete_adresse", "DELETE", f"CAdresse/{record['id']}")
    assert backend.user("DELETE", f"CAdresse/{record['id']}").status_code == 200


@pytest.fixture
def sink():
    server = WebhookSink().start()
    yield server
    server.stop()


def test_user_edits_of_addresses_fire_webhooks_and_own_writes_do_not(backend, sink):
    secrets = {}
    for action in ("create", "update", "delete"):
        hook_id, secret = backend.client.subscribe_webhook(f"CAdresse.{action}", f"{sink.url}/{action}")
        secrets[hook_id] = secret
    try:
        party = _party(backend)
        own = backend.client.create_adresse({"beteiligteId": party["id"], "strasse": "Own"})
        backend.client.update_adresse(own["id"], {"strasse": "Own 2"})
        mine = _user_address(backend, {"beteiligteId": party["id"], "strasse": "Mine"})
        _user_edit(backend, mine["id"], {"ort": "Köln"})
        gone = _user_address(backend, {"beteiligteId": party["id"], "strasse": "Gone"})
        assert backend.user("DELETE", f"CAdresse/{gone['id']}").status_code == 200
        got = _delivered(backend, sink, lambda got: sum(
            1 for path, body, _ in got for item in body if item["id"] == gone["id"]) >= 2)
        assert own["id"] not in _ids(got) and mine["id"] in _ids(got)
        items = [(path.rsplit("/", 1)[1], item) for path, body, _ in got for item in body]
        create = next(i for a, i in items if a == "create" and i["id"] == mine["id"])
        assert create["beteiligteId"] == party["id"] and create["strasse"] == "Mine"
        update = next(i for a, i in items if a == "update" and i["id"] == mine["id"])
        assert update["ort"] == "Köln" and "strasse" not in update
        assert ("delete", {"id": gone["id"]}) in [(a, {"id": i["id"]}) for a, i in items if a == "delete"]
    finally:
        for hook_id in secrets:
            backend.client.delete_webhook(hook_id)


def test_addresses_are_found_by_status_with_their_party(backend):
    from integrations.espocrm import W

    party = _party(backend)
    waiting = _user_address(backend, {"beteiligteId": party["id"], "strasse": unique("Warte")})
    backend.client.create_adresse({"beteiligteId": party["id"], "strasse": "Fertig", "syncStatus": "clean"})
    total, found = backend.client.search_adressen(
        [W.in_("syncStatus", ["pending_sync", "dirty"]), W.is_not_null("beteiligteId"),
         W.equals("strasse", waiting["strasse"])], select=["beteiligteId"])
    assert total == 1 and found[0]["id"] == waiting["id"] and found[0]["beteiligteId"] == party["id"]
