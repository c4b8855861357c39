"""End to end against a REAL EspoCRM 9.2.7 (with the Advoware simulator): EspoCRM's own webhook job delivers
to the real shim, a real worker syncs, a human user (`alice`, password login) edits through the real API.

The product runs as at a firm whose staging system has a real EspoCRM and simulated Advoware/Google:
the worker's settings point at the real server (`ESPOCRM_BASE_URL` + the key `bitbylaw espocrm setup`
created), the webhooks were registered by that setup with `skipOwn`, and the extension's hooks set
`pending_sync`/`dirty`. API calls are counted by the product's own client against SPEC §4.8.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from beteiligte_helpers import advoware_record, run_sync
from bitbylaw_tasks import notify
from bitbylaw_tasks.celery_app import app, settings_of
from bitbylaw_tasks.clients import clients_for
from bitbylaw_tasks.web import create_app
from bitbylaw_tasks.web.webhooks import register_secret
from conftest import wait_idle
from espocrm_backends import unique
from integrations.sandbox.kit import ServerThread

pytestmark = pytest.mark.real_espocrm


@pytest.fixture
def real_system(real_espocrm, sandbox, lock_redis, celery_worker):
    """The worker and a shim pointed at the real EspoCRM; its webhooks re-pointed at this shim."""
    wait_idle()
    # the Advoware simulator starts its betNr afresh for every test; the real EspoCRM keeps its rows
    real_espocrm.sql("DELETE FROM c_beteiligte")
    original = settings_of(app)
    settings = original.replace(espocrm_base_url=real_espocrm.url, espocrm_api_key=real_espocrm.api_key)
    app.conf.bitbylaw_settings = settings
    shim = ServerThread(create_app(settings)).start()
    try:
        for hook_id, secret in real_espocrm.configure(public_url=shim.url).items():
            register_secret(lock_redis, hook_id, secret)
        real_espocrm.run_job()  # send (and so drop) whatever earlier tests left queued
        wait_idle()
        yield real_espocrm, settings
    finally:
        wait_idle()
        app.conf.bitbylaw_settings = original
        shim.stop()


def _espo(real, record_id: str) -> dict:
    return real.client().get_beteiligte(record_id)


def _settle(real, record_id: str, predicate, message: str, timeout: float = 40.0) -> dict:
    """Run EspoCRM's webhook job (cron would, every minute) until the record satisfies `predicate`."""
    deadline = time.monotonic() + timeout
    while True:
        real.run_job()
        wait_idle()
        record = _espo(real, record_id)
        if predicate(record):
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}: {record.get('syncStatus')} "
                                 f"{record.get('syncErrorMessage')}")
        time.sleep(0.3)


def _user_create(real, fields: dict) -> dict:
    response = real.user_session().post(f"{real.url}/api/v1/CBeteiligte", json=fields, timeout=30)
    assert response.status_code == 200, response.headers.get("X-Status-Reason")
    return response.json()


def _user_update(real, record_id: str, fields: dict) -> dict:
    response = real.user_session().put(f"{real.url}/api/v1/CBeteiligte/{record_id}", json=fields, timeout=30)
    assert response.status_code == 200, response.headers.get("X-Status-Reason")
    return response.json()


def _created(real, fields: dict) -> dict:
    record = _user_create(real, fields)
    assert record["syncStatus"] == "pending_sync"  # the extension's create hook
    return _settle(real, record["id"], lambda r: r["syncStatus"] == "clean" and r["betnr"], "created in Advoware")


def test_a_person_created_by_a_user_reaches_advoware_through_the_real_webhook(real_system, sandbox):
    real, _ = real_system
    record = _created(real, {"firstName": "Max", "lastName": unique("Muster"), "salutationName": "Herr",
                             "titel": "Dr.", "dateOfBirth": "1970-03-15"})
    advo = advoware_record(sandbox, record["betnr"])
    assert (advo["vorname"], advo["name"], advo["anrede"], advo["titel"]) == ("Max", record["lastName"], "Herr", "Dr.")
    assert advo["geburtsdatum"] == "1970-03-15T00:00:00" and record["advowareRowId"] == advo["rowId"]
    assert run_sync(record["id"])["path"] == "no_change"


def test_a_company_syncs_and_later_writes_do_not_fail_on_the_last_name(real_system, sandbox):
    """Issue: the Person template requires lastName; the extension does not, so a company's empty last name
    written back by the product is accepted."""
    real, _ = real_system
    name = unique("Bau ")
    record = _created(real, {"firmenname": name, "rechtsform": "GmbH", "salutationName": "Firma"})
    advo = advoware_record(sandbox, record["betnr"])
    assert advo["name"] == name and not advo["vorname"]
    sandbox.state("advoware").human_update_beteiligte(record["betnr"], rechtsform="AG")
    assert run_sync(record["id"])["path"] == "advoware_newer"
    after = _espo(real, record["id"])
    assert (after["rechtsform"], after["firmenname"], after["syncStatus"]) == ("AG", name, "clean")


def test_a_german_salutation_from_advoware_is_stored_and_a_users_edit_reaches_advoware(real_system, sandbox):
    real, _ = real_system
    record = _created(real, {"firstName": "Erika", "lastName": unique("Muster"), "salutationName": "Herr"})
    sandbox.state("advoware").human_update_beteiligte(record["betnr"], anrede="Frau", vorname="Erika Maria")
    assert run_sync(record["id"])["path"] == "advoware_newer"
    after = _espo(real, record["id"])
    assert (after["salutationName"], after["firstName"]) == ("Frau", "Erika Maria")
    edited = _user_update(real, record["id"], {"lastName": after["lastName"] + "-Neu"})
    assert edited["syncStatus"] == "dirty"  # the extension's edit hook
    _settle(real, record["id"], lambda r: r["syncStatus"] == "clean", "clean after the user's edit")
    assert advoware_record(sandbox, record["betnr"])["name"] == after["lastName"] + "-Neu"


def test_a_conflict_lets_espocrm_win_per_field_with_a_stream_note(real_system, sandbox):
    real, _ = real_system
    record = _created(real, {"firstName": "Max", "lastName": unique("Muster"), "titel": "Dr."})
    sandbox.state("advoware").human_update_beteiligte(record["betnr"], vorname="Moritz", titel="Prof.")
    _user_update(real, record["id"], {"titel": "Dr. med."})
    after = _settle(real, record["id"], lambda r: r["syncStatus"] == "clean", "conflict resolved")
    advo = advoware_record(sandbox, record["betnr"])
    assert advo["vorname"] == after["firstName"] == "Moritz"
    assert advo["titel"] == after["titel"] == "Dr. med."
    notes = real.client().session.get(f"{real.url}/api/v1/CBeteiligte/{record['id']}/stream", timeout=30).json()
    posts = [n for n in notes["list"] if n.get("type") == "Post"]
    assert len(posts) == 1 and "Prof." in posts[0]["post"]


def test_the_integration_users_writes_do_not_come_back_as_webhooks(real_system, sandbox, lock_redis):
    """Issue: every write-back came back as an update webhook (22 of 31 events). With `skipOwn` none does."""
    real, settings = real_system
    record = _created(real, {"firstName": "Echo", "lastName": unique("Test")})
    sandbox.state("advoware").human_update_beteiligte(record["betnr"], vorname="Echo2")
    assert run_sync(record["id"])["path"] == "advoware_newer"  # one integration write in EspoCRM
    real.run_job()  # turns queued events into items for the webhooks that take them
    wait_idle()
    events = real.sql(f"SELECT q.event FROM webhook_queue_item q JOIN webhook w ON w.id = q.webhook_id "
                      f"WHERE q.target_id = '{record['id']}' AND w.user_id = '{real.integration_user_id}'")
    assert events.split() == ["CBeteiligte.create"]  # alice's create; none of the integration user's writes
    assert _espo(real, record["id"])["firstName"] == "Echo2"
    assert run_sync(record["id"])["path"] == "no_change"


def test_deleted_in_advoware_is_recorded_on_the_real_record(real_system, sandbox):
    real, _ = real_system
    record = _created(real, {"firstName": "Weg", "lastName": unique("Muster")})
    sandbox.state("advoware").delete_beteiligte(record["betnr"])
    assert run_sync(record["id"])["path"] == "deleted_in_advoware"
    after = _espo(real, record["id"])
    assert after["syncStatus"] == "deleted_in_advoware" and after["advowareDeletedAt"]


def test_calls_per_path_against_the_real_espocrm_stay_within_the_budget(real_system, sandbox, lock_redis):
    """SPEC §4.8, counted by the product's client against the real server and by the Advoware simulator,
    on the service alone (the Kommunikation hand-off is a separate task with its own budget)."""
    from bitbylaw_tasks.beteiligte.service import SyncContext, sync_beteiligte

    real, settings = real_system
    clients = clients_for(settings)
    ctx = SyncContext(clients.espocrm, clients.advoware, lock_redis)
    record = _created(real, {"firstName": "Budget", "lastName": unique("Muster"), "titel": "Dr."})
    advo = sandbox.state("advoware")

    def measured(action="check"):
        clients.espocrm.calls.clear()
        sandbox.kit("advoware").reset_calls()
        outcome = sync_beteiligte(ctx, record["id"], action, "sweep")
        espo_calls = sum(n for name, n in clients.espocrm.calls.items() if name not in notify.CLIENT_CALLS)
        advo_calls = sum(n for key, n in sandbox.kit("advoware").calls().items() if "/Token" not in key)
        return outcome.path, espo_calls + advo_calls

    advo.human_update_beteiligte(record["betnr"], vorname="Moritz")
    assert measured() == ("advoware_newer", 3)
    _user_update(real, record["id"], {"titel": "Prof."})
    assert measured("update") == ("espocrm_newer", 4)
    advo.human_update_beteiligte(record["betnr"], titel="Dr.")
    _user_update(real, record["id"], {"titel": "Dr. h.c."})
    assert measured() == ("conflict", 4)
    assert measured() == ("no_change", 2)


def test_a_national_number_from_advoware_is_stored_in_e164_and_advoware_keeps_its_format(real_system, sandbox):
    """Issue: a fax `0221 987654` added in Advoware got `400 phoneNumber valid` from the real EspoCRM and the
    party retried forever. Now EspoCRM gets its own form, and the rendering is never mistaken for an edit."""
    real, _ = real_system
    record = _created(real, {"firstName": "Fax", "lastName": unique("Muster")})
    advo = sandbox.state("advoware")
    advo.human_add_kommunikation(record["betnr"], 2, "0221 987654", bemerkung="nur vormittags")
    run_sync(record["id"])
    after = _espo(real, record["id"])
    assert [(p["phoneNumber"], p["type"]) for p in after["phoneNumberData"]] == [("+49221987654", "Fax")]
    assert after["syncStatus"] == "clean" and not after.get("syncErrorMessage")
    sandbox.kit("advoware").reset_calls()
    assert run_sync(record["id"])["path"] == "no_change"
    assert not any(k.startswith(("PUT", "POST /api/v1/advonet")) for k in sandbox.kit("advoware").calls())
    entry = [k for k in advoware_record(sandbox, record["betnr"])["kommunikation"] if k["kommKz"] == 2][0]
    assert entry["tlf"] == "0221 987654" and entry["bemerkung"].endswith("nur vormittags")


def test_a_number_espocrm_cannot_store_ends_as_a_clear_failure_not_an_endless_retry(real_system, sandbox):
    real, _ = real_system
    record = _created(real, {"firstName": "Kaputt", "lastName": unique("Muster")})
    sandbox.state("advoware").human_add_kommunikation(record["betnr"], 1, "kein Anschluss")
    counts = []
    for _ in range(5):
        run_sync(record["id"], "check", "retry")
        counts.append(_espo(real, record["id"])["syncRetryCount"])
    after = _espo(real, record["id"])
    assert counts == [1, 2, 3, 4, 5] and after["syncStatus"] == "permanently_failed"
    assert after["syncErrorMessage"].startswith("Kommunikation: ") and "international form" in after["syncErrorMessage"]


def test_espocrm_down_mid_sync_is_retried_and_converges_once_it_is_back(real_system, sandbox):
    """The real EspoCRM stops between the user's edit and the sync: the task retries with back-off
    (transient), nothing is written half, and once EspoCRM is back the edit reaches Advoware."""
    import threading

    real, _ = real_system
    record = _created(real, {"firstName": "Neustart", "lastName": unique("Muster")})
    _user_update(real, record["id"], {"titel": "Prof."})
    real.stop_server()
    restart = threading.Timer(3.0, real.start_server)
    restart.start()
    try:
        outcome = app.send_task("beteiligte.sync", (record["id"], "update", "webhook")).get(timeout=120)
    finally:
        restart.join()
    assert outcome["path"] == "espocrm_newer"
    assert advoware_record(sandbox, record["betnr"])["titel"] == "Prof."
    after = _espo(real, record["id"])
    assert after["syncStatus"] == "clean" and after["syncRetryCount"] == 0


def test_a_wrong_api_key_fails_the_task_with_a_message_naming_the_cause(real_system, sandbox):
    real, settings = real_system
    record = _created(real, {"firstName": "Schluessel", "lastName": unique("Muster")})
    app.conf.bitbylaw_settings = settings.replace(espocrm_api_key="wrong-key-0000")
    try:
        result = app.send_task("beteiligte.sync", (record["id"], "update", "manual"))
        with pytest.raises(Exception) as err:
            result.get(timeout=60)
    finally:
        wait_idle()
        app.conf.bitbylaw_settings = settings
    assert "401" in str(err.value) and "wrong-key-0000" not in str(err.value)
    assert _espo(real, record["id"])["syncStatus"] == "clean"  # nothing was written with half a state


# ------------------------------------------------------------------ Kommunikation against the real EspoCRM
def _phones(real, record_id) -> list[tuple[str, str, bool]]:
    return [(p["phoneNumber"], p["type"], p["primary"]) for p in _espo(real, record_id)["phoneNumberData"]]


def _emails(real, record_id) -> list[str]:
    return [e["emailAddress"] for e in _espo(real, record_id)["emailAddressData"]]


def _advo_live(sandbox, betnr) -> dict[int, str]:
    return {k["kommKz"]: k["tlf"] for k in advoware_record(sandbox, betnr)["kommunikation"] if k["tlf"]}


def _kommunikation_synced(real, record_id):
    """Run the user's edit through the real webhook path until the record (and its hand-off) are clean."""
    return _settle(real, record_id, lambda r: r["syncStatus"] == "clean", "clean after the edit")


def test_kommunikation_variants_converge_against_the_real_espocrm(real_system, sandbox):
    """SPEC §5.3 V1–V6 in sequence on one party, each a person's edit on one side, then a sync."""
    real, _ = real_system
    advo = sandbox.state("advoware")
    record = _created(real, {"firstName": "Komm", "lastName": unique("Muster"),
                             "emailAddressData": [{"emailAddress": "komm@kanzlei.example", "primary": True}]})
    betnr = record["betnr"]
    assert _advo_live(sandbox, betnr) == {4: "komm@kanzlei.example"}  # created with the party (I2)
    # V1: new in EspoCRM -> created in Advoware
    _user_update(real, record["id"], {"phoneNumberData": [{"phoneNumber": "+49 171 2345678", "type": "Mobile",
                                                           "primary": True}]})
    _kommunikation_synced(real, record["id"])
    assert _advo_live(sandbox, betnr)[3] == "+491712345678"
    # V4: new in Advoware (national) -> added to EspoCRM in E.164 (its type as SPEC §5.4 can tell: the
    # simulated Advoware may report kommKz 0 for a new entry without a marker)
    advo.human_add_kommunikation(betnr, 2, "0221 987654", bemerkung="Sekretariat")
    run_sync(record["id"])
    assert "+49221987654" in [p for p, _, _ in _phones(real, record["id"])]
    # V6: changed in Advoware -> EspoCRM; Advoware keeps its formatting and the person's text
    fax = [k for k in advoware_record(sandbox, betnr)["kommunikation"] if k["kommKz"] == 2][0]
    advo.human_update_kommunikation(betnr, fax["id"], tlf="0221 555666")
    run_sync(record["id"])
    assert "+49221555666" in [p for p, _, _ in _phones(real, record["id"])]
    fax = [k for k in advoware_record(sandbox, betnr)["kommunikation"] if k["kommKz"] == 2][0]
    assert fax["tlf"] == "0221 555666" and fax["bemerkung"].endswith("Sekretariat")
    # V5: changed in EspoCRM (the e-mail address) -> Advoware
    _user_update(real, record["id"], {"emailAddressData": [{"emailAddress": "neu@kanzlei.example", "primary": True}]})
    _kommunikation_synced(real, record["id"])
    assert _advo_live(sandbox, betnr)[4] == "neu@kanzlei.example"
    # V2: deleted in EspoCRM -> the Advoware entry becomes an empty slot (no DELETE)
    phones = [{"phoneNumber": p, "type": t, "primary": pr} for p, t, pr in _phones(real, record["id"])
              if p != "+491712345678"]
    _user_update(real, record["id"], {"phoneNumberData": phones})
    _kommunikation_synced(real, record["id"])
    assert 3 not in _advo_live(sandbox, betnr)
    assert not any(k.startswith("DELETE") for k in sandbox.kit("advoware").calls())
    # V3: deleted (blanked) in Advoware -> removed from EspoCRM
    fax = [k for k in advoware_record(sandbox, betnr)["kommunikation"] if k["kommKz"] == 2][0]
    advo.human_update_kommunikation(betnr, fax["id"], tlf="")
    run_sync(record["id"])
    assert [p for p, _, _ in _phones(real, record["id"])] == []
    assert _emails(real, record["id"]) == ["neu@kanzlei.example"]
    # settled: one more sync writes nothing on either side
    sandbox.kit("advoware").reset_calls()
    assert run_sync(record["id"])["path"] == "no_change"
    assert not any(k.startswith(("PUT", "POST /api/v1/advonet")) for k in sandbox.kit("advoware").calls())


def test_initial_kommunikation_sync_matches_equal_values_across_formats(real_system, sandbox):
    """I4/I5 on the real server: an existing pair whose numbers differ only by EspoCRM's E.164 form are
    matched (markers only), one-sided values are created on the other side, nothing is duplicated."""
    real, _ = real_system
    advo = sandbox.state("advoware")
    made = advo.create_beteiligte({"name": unique("Initial"), "vorname": "Ina"})
    betnr = made["betNr"]
    advo.human_add_kommunikation(betnr, 1, "030 1234567")
    advo.human_add_kommunikation(betnr, 4, "ina@kanzlei.example")
    record = real.client().create_beteiligte({
        "firstName": "Ina", "lastName": made["name"], "betnr": betnr, "syncStatus": "clean",
        "phoneNumberData": [{"phoneNumber": "+49 30 1234567", "type": "Office", "primary": True},
                            {"phoneNumber": "+49 171 7654321", "type": "Mobile", "primary": False}]})
    run_sync(record["id"], "update", "manual")
    entries = [k for k in advoware_record(sandbox, betnr)["kommunikation"] if k["tlf"]]
    assert sorted(k["tlf"] for k in entries) == ["+491717654321", "030 1234567", "ina@kanzlei.example"]
    assert all(k["bemerkung"].startswith("[ESPOCRM:") for k in entries)
    assert sorted(p for p, _, _ in _phones(real, record["id"])) == ["+491717654321", "+49301234567"]
    assert _emails(real, record["id"]) == ["ina@kanzlei.example"]
    assert run_sync(record["id"])["path"] == "no_change"


# ------------------------------------------------------------------ the sweep against the real EspoCRM
def test_the_sweep_finds_an_advoware_only_change_and_auto_resets_a_permanent_failure(real_system, sandbox,
                                                                                     lock_redis):
    """The `beteiligte.sweep` task queries the real EspoCRM (both `where` rules and keyset paging in real
    SQL): a `permanently_failed` record whose reset time passed is reset and synced; the freshness checker
    (the rolling check) picks up a change made only in Advoware."""
    from bitbylaw_tasks.beteiligte.mapping import format_espo_datetime
    from bitbylaw_tasks.beteiligte.store import record_checked
    from bitbylaw_tasks.beteiligte.tasks import freshness

    real, _ = real_system
    changed = _created(real, {"firstName": "Rolling", "lastName": unique("Muster")})
    paused = _created(real, {"firstName": "Paused", "lastName": unique("Muster")})
    sandbox.state("advoware").human_update_beteiligte(changed["betnr"], vorname="Rollo")
    past = format_espo_datetime(datetime.now(timezone.utc) - timedelta(minutes=5))
    real.client().update_beteiligte(paused["id"], {"syncStatus": "permanently_failed", "syncRetryCount": 5,
                                                    "syncAutoResetAt": past, "syncErrorMessage": "Unavailable: 503"})
    result = app.send_task("beteiligte.sweep").get(timeout=60)
    wait_idle()
    record_checked(lock_redis, changed["id"], datetime.now(timezone.utc) - timedelta(days=2))  # the oldest check
    checked = freshness()  # beat runs it every FRESHNESS_TICK s
    wait_idle()
    assert result["by_rule"].get("auto_reset") == 1 and checked["queued"] >= 1
    assert _espo(real, changed["id"])["firstName"] == "Rollo"
    after = _espo(real, paused["id"])
    assert (after["syncStatus"], after["syncRetryCount"], after["syncErrorMessage"] or "") == ("clean", 0, "")
