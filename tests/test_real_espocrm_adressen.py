"""The Adressen sync against a REAL EspoCRM 9.2.7 (with the Advoware simulator): the extension's CAdresse,
its hooks and webhooks, delivered by EspoCRM's own job to the real shim, synced by the real worker.

The same set-up as `test_real_espocrm_e2e.py` (its `real_system` fixture: the worker and a shim pointed at
the real server, the webhooks registered by `bitbylaw espocrm setup`, now the CAdresse ones too).
"""
from __future__ import annotations

import time

import pytest

from beteiligte_helpers import run_sync
from bitbylaw_tasks.adressen import manual
from conftest import wait_idle
from espocrm_backends import unique
from test_real_espocrm_e2e import _created, real_system  # noqa: F401  (a fixture)

pytestmark = pytest.mark.real_espocrm


def _until(real, predicate, message: str, timeout: float = 40.0):
    """Run EspoCRM's webhook job until `predicate()` holds."""
    deadline = time.monotonic() + timeout
    while True:
        real.run_job()
        wait_idle()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.3)


def test_an_address_typed_by_a_user_reaches_advoware_and_a_read_only_edit_is_a_manual_action(
        real_system, sandbox, lock_redis):
    real, _ = real_system
    real.sql("DELETE FROM c_adresse")
    party = _created(real, {"firstName": "Anna", "lastName": unique("Adresse"),
                            "assignedUserId": real.alice_id})
    betnr = int(party["betnr"])
    advo = sandbox.state("advoware")
    user = real.user_session()
    answer = user.post(f"{real.url}/api/v1/CAdresse", json={
        "beteiligteId": party["id"], "strasse": "Hauptstr. 1", "plz": "10115", "ort": "Berlin", "land": "DE",
        "isPrimary": True}, timeout=30)
    assert answer.status_code == 200, answer.headers.get("X-Status-Reason")
    rid = answer.json()["id"]
    (address,) = _until(real, lambda: advo.adressen_truth(betnr), "the POST through the CAdresse webhook")
    assert address["bemerkung"] == f"EspoCRM-ID: {rid}" and address["standardAnschrift"] is True
    client = real.client()
    synced = _until(real, lambda: client.get_adresse(rid)["syncStatus"] == "clean" and client.get_adresse(rid),
                    "the write-back")
    assert synced["advowareIndex"] == 1 and synced["advowareSnapshot"]

    edited = user.put(f"{real.url}/api/v1/CAdresse/{rid}", json={"land": "AT", "ort": "Wien", "plz": "1010"},
                      timeout=30).json()
    assert edited["syncStatus"] == "dirty"  # the extension's hook
    _until(real, lambda: advo.adressen_truth(betnr)[0]["ort"] == "Wien", "the PUT")
    (action,) = manual.open_actions(lock_redis, party["id"])
    assert action.instruction == f"in Advoware, party {betnr}, address 1: set Land to AT"
    stream = client.session.get(f"{real.url}/api/v1/CBeteiligte/{party['id']}/stream", timeout=30).json()
    assert any((n.get("post") or "").startswith("@alice ") and "Adressen sync: please change by hand" in n["post"]
               for n in stream["list"])  # through notify: the assigned user mentioned, the instruction in the detail
    assert client.get_adresse(rid)["advowareManualAction"] == action.instruction

    advo.human_update_adresse(betnr, 1, land="AT")
    outcome = run_sync(party["id"], task="adressen.sync", args=(party["id"], "manual"))
    assert outcome["closed"] == 1 and manual.open_actions(lock_redis, party["id"]) == []
    again = run_sync(party["id"], task="adressen.sync", args=(party["id"], "manual"))
    assert again["path"] == "no_change" and again["espocrm_writes"] == 0 and again["advoware_writes"] == 0
