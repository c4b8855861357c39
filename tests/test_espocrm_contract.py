"""EspoCRM contract: every behaviour the product relies on, on the simulator AND on a real EspoCRM 9.2.7.

Each test runs twice (`backend` = `simulator`, `real`); where the two ever
disagreed, the real server was right and the simulator was changed
(docs/sandbox-espocrm.md, column "real EspoCRM 9.2.7"). The real server runs
with the product's extension installed and `bitbylaw espocrm setup` applied,
exactly as at a firm.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time

import pytest
import requests

from espocrm_backends import real_backend, simulator_backend, unique
from integrations.espocrm import W, encode_where
from integrations.errors import AuthError, BadRequest, Conflict, Forbidden, NotFound
from integrations.sandbox.webhook_sink import WebhookSink

ID = re.compile(r"^[0-9a-f]{17}$")
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@pytest.fixture(params=["simulator", pytest.param("real", marks=pytest.mark.real_espocrm)])
def backend(request):
    if request.param == "simulator":
        return simulator_backend(request.getfixturevalue("sandbox"))
    return real_backend(request.getfixturevalue("real_espocrm"))


def _person(**extra) -> dict:
    return {"firstName": "Max", "lastName": unique("Muster"), "salutationName": "Herr", **extra}


# ------------------------------------------------------------------ auth
def test_missing_or_wrong_key_is_401(backend):
    for headers in ({}, {"X-Api-Key": "not-the-key"}):
        response = backend.user_session.__class__().get(f"{backend.api}/CBeteiligte", headers=headers, timeout=30)
        assert response.status_code == 401


def test_wrong_key_raises_auth_error_without_the_key_in_the_message(backend):
    from integrations.espocrm import EspoCrmClient

    with pytest.raises(AuthError) as err:
        EspoCrmClient(backend.url, "secret-wrong-key-123").get_beteiligte("00000000000000000")
    assert "secret-wrong-key-123" not in str(err.value)


# ------------------------------------------------------------------ records
def test_create_returns_the_full_record_with_ids_stamps_and_the_person_name(backend):
    fields = _person(titel="Dr.", dateOfBirth="1970-03-15")
    record = backend.client.create_beteiligte(fields)
    assert ID.match(record["id"])
    assert STAMP.match(record["createdAt"]) and STAMP.match(record["modifiedAt"])
    assert record["name"] == f"Max {fields['lastName']}"
    assert (record["titel"], record["dateOfBirth"], record["salutationName"]) == ("Dr.", "1970-03-15", "Herr")


def test_a_company_has_no_last_name_and_no_person_name(backend):
    """The real Person template derives `name` from first and last name only: a company's is empty."""
    record = backend.client.create_beteiligte({"firmenname": unique("ACME "), "rechtsform": "GmbH"})
    assert not record.get("lastName") and not record.get("firstName")
    assert not record.get("name")
    updated = backend.client.update_beteiligte(record["id"], {"lastName": "", "firstName": ""})
    assert updated["firmenname"] == record["firmenname"]


def test_german_salutations_are_free_text(backend):
    for anrede in ("Frau", "Herrn", "Eheleute", "Firma"):
        record = backend.client.create_beteiligte(_person(salutationName=anrede))
        assert record["salutationName"] == anrede


def test_update_is_partial_returns_the_full_record_and_bumps_modified_and_version(backend):
    record = backend.client.create_beteiligte(_person(titel="Dr."))
    time.sleep(1.05)  # modifiedAt has second resolution
    updated = backend.client.update_beteiligte(record["id"], {"titel": "Prof."})
    assert updated["titel"] == "Prof." and updated["lastName"] == record["lastName"]
    assert updated["modifiedAt"] > record["modifiedAt"]
    assert updated["versionNumber"] > record["versionNumber"]


def test_email_and_phone_arrays_only_on_read_by_id(backend):
    record = backend.client.create_beteiligte(_person(
        emailAddressData=[{"emailAddress": "max@example.com", "primary": True}],
        phoneNumberData=[{"phoneNumber": "+49 171 1234567", "type": "Mobile", "primary": True}]))
    full = backend.client.get_beteiligte(record["id"])
    assert [e["emailAddress"] for e in full["emailAddressData"]] == ["max@example.com"]
    assert len(full["phoneNumberData"]) == 1
    _, page = backend.client.search_beteiligte(W.equals("lastName", record["lastName"]))
    assert len(page) == 1 and "emailAddressData" not in page[0] and "phoneNumberData" not in page[0]
    _, page = backend.client.search_beteiligte(W.equals("lastName", record["lastName"]),
                                               select=["emailAddressData", "phoneNumberData", "lastName"])
    assert "emailAddressData" not in page[0] and "phoneNumberData" not in page[0]


def test_phone_numbers_are_stored_in_e164_and_national_numbers_are_refused(backend):
    """EspoCRM's default `phoneNumberInternational`: a number is stored as E.164 (spaces dropped) and a
    national number without country code is a validation failure."""
    if backend.name == "simulator":  # off by default there until the product writes E.164
        requests.post(f"{backend.url}/_sandbox/espocrm-settings", json={"phoneNumberInternational": True})
    record = backend.client.create_beteiligte(_person(
        phoneNumberData=[{"phoneNumber": "+49 221 987654", "type": "Fax", "primary": True}]))
    full = backend.client.get_beteiligte(record["id"])
    assert [p["phoneNumber"] for p in full["phoneNumberData"]] == ["+49221987654"]
    with pytest.raises(BadRequest):
        backend.client.update_beteiligte(record["id"], {
            "phoneNumberData": [{"phoneNumber": "0221 987654", "type": "Fax", "primary": True}]})


def test_first_entry_becomes_primary_and_exactly_one_is_primary(backend):
    record = backend.client.create_beteiligte(_person(emailAddressData=[
        {"emailAddress": "a@example.com", "primary": False}, {"emailAddress": "b@example.com", "primary": False}]))
    data = backend.client.get_beteiligte(record["id"])["emailAddressData"]
    assert [e["primary"] for e in data].count(True) == 1


@pytest.mark.parametrize("fields", [
    {"dateOfBirth": "1970-13-45"}, {"syncStatus": "bogus"}, {"betnr": "abc"},
    {"phoneNumberData": [{"phoneNumber": "+49 30 1234567", "type": "Pager"}]},
    {"emailAddressData": [{"emailAddress": "not-an-address"}]},
])
def test_validation_failures_are_400(backend, fields):
    record = backend.client.create_beteiligte(_person())
    with pytest.raises(BadRequest) as err:
        backend.client.update_beteiligte(record["id"], fields)
    assert err.value.status == 400


def test_betnr_is_unique_and_a_duplicate_is_409_naming_the_holder(backend):
    """Real EspoCRM alone answers a duplicate in the unique index with a bare 500; the extension's hook
    makes it a 409 whose reason names the record holding the number."""
    betnr = int(time.time() * 1000) % 2_000_000_000
    holder = backend.client.create_beteiligte(_person(betnr=betnr))
    with pytest.raises(Conflict) as err:
        backend.client.create_beteiligte(_person(betnr=betnr))
    assert holder["id"] in err.value.reason and err.value.payload is None
    other = backend.client.create_beteiligte(_person())
    with pytest.raises(Conflict):
        backend.client.update_beteiligte(other["id"], {"betnr": betnr})


def test_missing_record_is_404_a_users_delete_answers_true_the_integration_user_may_not_delete(backend):
    with pytest.raises(NotFound):
        backend.client.get_beteiligte("0123456789abcdef0")
    record = backend.client.create_beteiligte(_person())
    with pytest.raises(Forbidden):  # the integration role has no delete (a firm must not lose a party)
        backend.client.delete_beteiligte(record["id"])
    response = backend.user("DELETE", f"CBeteiligte/{record['id']}")
    assert response.status_code == 200 and response.json() is True
    with pytest.raises(NotFound):
        backend.client.get_beteiligte(record["id"])


# ------------------------------------------------------------------ search
def test_max_size_above_200_is_forbidden(backend):
    with pytest.raises(Forbidden):
        backend.client.search_beteiligte(None, max_size=201)


def test_where_in_brackets_and_as_search_params_give_the_same_records(backend):
    last = unique("Where")
    made = [backend.client.create_beteiligte({"firstName": f, "lastName": last, "betnr": None})["id"]
            for f in ("Anna", "Bernd", "Clara")]
    where = [W.equals("lastName", last), W.in_("firstName", ["Anna", "Clara"])]
    _, bracket = backend.client.search_beteiligte(where)
    params = {"searchParams": json.dumps({"where": where, "maxSize": 50})}
    listed = backend.raw("GET", "CBeteiligte", params=params).json()["list"]
    assert sorted(r["id"] for r in bracket) == sorted(r["id"] for r in listed) == sorted([made[0], made[2]])


@pytest.mark.parametrize("item,expected", [
    (W.not_equals("firstName", "Anna"), {"Bernd"}),   # NULL never matches a comparison
    (W.is_null("firstName"), {None}),
    (W.is_not_null("firstName"), {"Anna", "Bernd"}),
    (W.not_in("firstName", ["Anna"]), {"Bernd"}),
    (W.or_(W.equals("firstName", "Anna"), W.equals("firstName", "Bernd")), {"Anna", "Bernd"}),
    (W.greater_than("betnr", 5), {"Bernd"}),
    (W.less_than("betnr", 5), {"Anna"}),
])
def test_where_item_types(backend, item, expected):
    """Three records: Anna (betnr base+1), Bernd (base+9), and one without first name or betnr."""
    last = unique("Items")
    base = int(time.time() * 1000) % 100_000_000 * 10
    backend.client.create_beteiligte({"firstName": "Anna", "lastName": last, "betnr": base + 1})
    backend.client.create_beteiligte({"firstName": "Bernd", "lastName": last, "betnr": base + 9})
    backend.client.create_beteiligte({"lastName": last})
    if item.get("attribute") == "betnr":  # compare around this test's own numbers
        item = {**item, "value": base + item["value"]}
    _, found = backend.client.search_beteiligte([W.equals("lastName", last), item], select=["firstName"])
    assert {r.get("firstName") or None for r in found} == expected


def test_default_order_is_created_at_descending_and_order_by_defaults_to_ascending(backend):
    last = unique("Order")
    ids = []
    for first in ("Anna", "Bernd"):
        ids.append(backend.client.create_beteiligte({"firstName": first, "lastName": last})["id"])
        time.sleep(1.05)
    listed = backend.raw("GET", "CBeteiligte", params=encode_where([W.equals("lastName", last)])).json()["list"]
    assert [r["id"] for r in listed] == ids[::-1]
    params = encode_where([W.equals("lastName", last)]) + [("orderBy", "firstName")]
    listed = backend.raw("GET", "CBeteiligte", params=params).json()["list"]
    assert [r["firstName"] for r in listed] == ["Anna", "Bernd"]


def test_select_limits_attributes_but_keeps_id(backend):
    last = unique("Select")
    backend.client.create_beteiligte({"firstName": "Anna", "lastName": last, "titel": "Dr."})
    _, found = backend.client.search_beteiligte(W.equals("lastName", last), select=["titel"])
    assert found[0]["titel"] == "Dr." and ID.match(found[0]["id"]) and "firstName" not in found[0]


# ------------------------------------------------------------------ optimistic concurrency
def test_a_stale_version_that_would_change_a_field_is_409_with_the_stored_values(backend):
    record = backend.client.create_beteiligte(_person(titel="Dr."))
    version = backend.client.get_beteiligte(record["id"])["versionNumber"]
    backend.user_update(record["id"], {"titel": "Prof."})
    with pytest.raises(Conflict) as err:
        backend.client.update_beteiligte(record["id"], {"titel": "Dr. med."}, version_number=version)
    assert err.value.payload["values"]["titel"] == "Prof."
    assert err.value.payload["versionNumber"] > version
    # the current version passes
    current = err.value.payload["versionNumber"]
    assert backend.client.update_beteiligte(record["id"], {"titel": "Dr. med."},
                                            version_number=current)["titel"] == "Dr. med."


# ------------------------------------------------------------------ hooks of the extension
def test_a_users_create_is_pending_sync_and_the_integration_user_may_choose(backend):
    assert backend.user_create(_person(syncStatus="clean"))["syncStatus"] == "pending_sync"
    assert backend.client.create_beteiligte(_person(syncStatus="clean"))["syncStatus"] == "clean"


def test_a_users_edit_of_a_sync_field_marks_a_clean_record_dirty(backend):
    record = backend.client.create_beteiligte(_person(syncStatus="clean", titel="Dr."))
    assert backend.user_update(record["id"], {"description": "irrelevant"})["syncStatus"] == "clean"
    assert backend.user_update(record["id"], {"titel": "Dr."})["syncStatus"] == "clean"  # same value
    assert backend.user_update(record["id"], {"titel": "Prof."})["syncStatus"] == "dirty"
    phones = backend.client.create_beteiligte(_person(syncStatus="clean"))
    after = backend.user_update(phones["id"], {
        "phoneNumberData": [{"phoneNumber": "+49 171 7654321", "type": "Mobile", "primary": True}]})
    assert after["syncStatus"] == "dirty"


def test_the_integration_users_writes_never_change_sync_status(backend):
    record = backend.client.create_beteiligte(_person(syncStatus="clean"))
    assert backend.client.update_beteiligte(record["id"], {"titel": "Prof."})["syncStatus"] == "clean"
    failed = backend.client.update_beteiligte(record["id"], {"syncStatus": "failed"})
    assert backend.user_update(failed["id"], {"titel": "Dr."})["syncStatus"] == "failed"


# ------------------------------------------------------------------ notes
def test_api_user_posts_stream_notes_but_cannot_create_notifications(backend):
    record = backend.client.create_beteiligte(_person())
    note = backend.client.post_note(record["id"], "Advoware value 'Dr.' was overridden by @alice")
    assert note["parentId"] == record["id"] and note["type"] == "Post"
    response = backend.raw("POST", "Notification", json={"type": "Message", "userId": backend.integration_user_id,
                                                         "message": "x"})
    assert response.status_code == 403


# ------------------------------------------------------------------ webhooks
@pytest.fixture
def sink():
    server = WebhookSink().start()
    yield server
    server.stop()


def _subscribe(backend, sink, events=("create", "update", "delete")) -> dict[str, str]:
    for hook in backend.client.list_webhooks():
        if hook.get("url", "").startswith(sink.url.rsplit("/", 1)[0]):
            backend.client.delete_webhook(hook["id"])
    secrets = {}
    for action in events:
        hook_id, secret = backend.client.subscribe_webhook(f"CBeteiligte.{action}", f"{sink.url}/{action}")
        secrets[hook_id] = secret
    return secrets


def _delivered(backend, sink, until, timeout: float = 30.0) -> list[tuple[str, list, object]]:
    """Run the webhook job until `until(items)` holds for the (path, body, request) items received.
    (The real job sends in portions, and events still queued when a webhook is added reach it too.)"""
    deadline = time.monotonic() + timeout
    while True:
        backend.deliver_webhooks()
        got = [(r.path, json.loads(r.body), r) for r in list(sink.requests)]
        if until(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def _ids(got) -> set[str]:
    return {item["id"] for _, body, _ in got for item in body}


def test_user_writes_fire_webhooks_and_the_integration_users_own_writes_do_not(backend, sink):
    secrets = _subscribe(backend, sink)
    try:
        own = backend.client.create_beteiligte(_person())
        backend.client.update_beteiligte(own["id"], {"titel": "Prof."})
        mine = backend.user_create(_person(titel="Dr."))
        backend.user_update(mine["id"], {"titel": "Prof."})
        marker = backend.user_create(_person())  # made last: once it arrived, the others had their turn
        got = _delivered(backend, sink, lambda got: marker["id"] in _ids(got) and sum(
            1 for path, body, _ in got for item in body if item["id"] == mine["id"]) >= 2)
        assert own["id"] not in _ids(got) and mine["id"] in _ids(got)
        mine_items = {path.rsplit("/", 1)[1]: item for path, body, _ in got for item in body
                      if item["id"] == mine["id"]}
        assert mine_items["create"]["titel"] == "Dr." and mine_items["create"]["lastName"] == mine["lastName"]
        update = mine_items["update"]
        assert update["titel"] == "Prof."
        assert "modifiedAt" not in update and "versionNumber" not in update and "lastName" not in update
        for path, body, request in got:  # Signature: base64(webhookId:hex(HMAC-SHA256(raw body, secret)))
            hook_id, _, digest = base64.b64decode(request.headers["Signature"]).decode().partition(":")
            assert hmac.compare_digest(digest, hmac.new(secrets[hook_id].encode(), request.body,
                                                        hashlib.sha256).hexdigest())
    finally:
        for hook_id in secrets:
            backend.client.delete_webhook(hook_id)


def test_a_delete_fires_an_id_only_item(backend, sink):
    secrets = _subscribe(backend, sink, events=("delete",))
    try:
        record = backend.user_create(_person())
        assert backend.user("DELETE", f"CBeteiligte/{record['id']}").status_code == 200
        got = _delivered(backend, sink, lambda got: record["id"] in _ids(got))
        assert [item for _, body, _ in got for item in body if item["id"] == record["id"]] == [{"id": record["id"]}]
    finally:
        for hook_id in secrets:
            backend.client.delete_webhook(hook_id)


def test_an_unknown_attribute_is_ignored_by_espocrm_and_the_client_refuses_to_pretend_it_was_stored(backend):
    """Both servers drop unknown attributes silently (an EspoCRM without the extension would swallow the
    product's snapshot); the client sees the attribute missing from the answer and raises."""
    from integrations.espocrm import MissingFields

    record = backend.client.create_beteiligte(_person())
    stored = backend.raw("PUT", f"CBeteiligte/{record['id']}", json={"titel": "Dr.", "noSuchField": "x"})
    assert stored.status_code == 200 and "noSuchField" not in stored.json() and stored.json()["titel"] == "Dr."
    with pytest.raises(MissingFields) as err:
        backend.client.update_beteiligte(record["id"], {"titel": "Prof.", "noSuchField": "x"})
    assert "noSuchField" in str(err.value) and "extension" in str(err.value)


def test_a_phone_numbers_type_is_shared_by_every_record_holding_it(backend):
    """Real EspoCRM stores the type on the number (one row for all records): B's save changes A's."""
    if backend.name == "simulator":  # off by default there until the planner handles shared numbers
        requests.post(f"{backend.url}/_sandbox/espocrm-settings", json={"sharedPhoneNumberTypes": True})
    number = f"+49 221 {int(time.time() * 1000) % 10_000_000:07d}"
    a = backend.client.create_beteiligte(_person(phoneNumberData=[{"phoneNumber": number, "type": "Fax",
                                                                   "primary": True}]))
    assert [p["type"] for p in backend.client.get_beteiligte(a["id"])["phoneNumberData"]] == ["Fax"]
    backend.client.create_beteiligte(_person(phoneNumberData=[{"phoneNumber": number, "type": "Office",
                                                               "primary": True}]))
    assert [p["type"] for p in backend.client.get_beteiligte(a["id"])["phoneNumberData"]] == ["Office"]
