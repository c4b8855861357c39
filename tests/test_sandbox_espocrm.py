"""The EspoCRM simulator over real HTTP: every quirk of SPEC §3.1 / RESEARCH §G has a test here that fails without it."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.espocrm import W, encode_where
from integrations.sandbox.espocrm import create_espocrm_app
from integrations.sandbox.espocrm_fields import FIELDS
from integrations.sandbox.espocrm_where import SearchError, compile_where, parse_php_query, php_lists
from integrations.sandbox.kit import ServerThread
from integrations.sandbox.webhook_sink import WebhookSink

INTEGRATION = "sandbox-integration-key"
ALICE = "sandbox-alice-key"
HOOK_DEFAULTS = {"retry_interval": 600.0, "batch_size": 50, "event_portion_size": 20, "timeout": 10.0,
                 "connect_timeout": 5.0, "max_attempts": 4}
ID_RE = re.compile(r"^[0-9a-f]{17}$")
STAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@pytest.fixture(scope="module")
def sim():
    app = create_espocrm_app(webhook_interval=0)
    server = ServerThread(app).start()
    server.state = app.extensions["espocrm"]
    yield server
    server.state.close()
    server.stop()


@pytest.fixture(scope="module")
def sink():
    receiver = WebhookSink().start()
    yield receiver
    receiver.stop()


@pytest.fixture(autouse=True)
def _clean(sim, sink):
    requests.post(sim.url + "/_sandbox/reset").raise_for_status()
    for name, value in HOOK_DEFAULTS.items():
        setattr(sim.state.hooks, name, value)
    sink.clear()


def api(sim, method, path, key=INTEGRATION, **kw):
    headers = kw.pop("headers", {})
    if key:
        headers["X-Api-Key"] = key
    return requests.request(method, f"{sim.url}/api/v1/{path}", headers=headers, timeout=10, **kw)


def create(sim, key=INTEGRATION, **fields):
    resp = api(sim, "POST", "CBeteiligte", key=key, json=fields)
    assert resp.status_code == 200, resp.headers.get("X-Status-Reason")
    return resp.json()


def listing(sim, params, key=INTEGRATION):
    resp = api(sim, "GET", "CBeteiligte", key=key, params=params)
    assert resp.status_code == 200, resp.headers.get("X-Status-Reason")
    return resp.json()


def advance_clock(sim, seconds=5):
    requests.post(sim.url + "/_sandbox/clock", json={"advance_s": seconds}).raise_for_status()


def subscribe(sim, sink, *events, skip_own=True):
    """Subscribe as the integration user, by default with `skipOwn` (as the product's setup does)."""
    hooks = {}
    for event in events:
        body = api(sim, "POST", "Webhook", json={"event": event, "url": sink.url, "skipOwn": skip_own}).json()
        hooks[event] = body
    return hooks


def flush(sim):
    resp = requests.post(sim.url + "/_sandbox/webhooks/flush")
    resp.raise_for_status()
    return resp.json()


# ------------------------------------------------------------------ auth

def test_info_reports_the_credentials(sim):
    info = requests.get(sim.url + "/_sandbox/info").json()
    assert info["integration_user"]["apiKey"] == INTEGRATION
    assert {u["userName"] for u in info["users"]} >= {"alice", "bob"}
    assert all(u["secretKey"] for u in info["users"])


def test_missing_or_wrong_key_is_401_with_reason(sim):
    for key in (None, "wrong"):
        resp = api(sim, "GET", "CBeteiligte", key=key)
        assert resp.status_code == 401
        assert resp.headers["X-Status-Reason"]
    assert api(sim, "GET", "CBeteiligte", key=ALICE).status_code == 200


def _hmac_header(key, secret, method, path, raw=False):
    digest = hmac.new(secret.encode(), f"{method} /{path}".encode(), hashlib.sha256)
    proof = digest.digest() if raw else digest.hexdigest().encode()
    return base64.b64encode(key.encode() + b":" + proof).decode()


def test_hmac_authorization_signs_method_and_path_without_query(sim):
    record = create(sim, lastName="Hmac")
    path = f"CBeteiligte/{record['id']}"
    good = _hmac_header(INTEGRATION, "sandbox-integration-secret", "GET", path)
    url = f"{sim.url}/api/v1/{path}"
    assert requests.get(url, headers={"X-Hmac-Authorization": good}).json()["lastName"] == "Hmac"
    assert requests.get(url + "?select=id", headers={"X-Hmac-Authorization": good}).status_code == 200
    legacy = _hmac_header(INTEGRATION, "sandbox-integration-secret", "GET", path, raw=True)
    assert requests.get(url, headers={"X-Hmac-Authorization": legacy}).status_code == 200
    forged = _hmac_header(INTEGRATION, "not-the-secret", "GET", path)
    assert requests.get(url, headers={"X-Hmac-Authorization": forged}).status_code == 401
    wrong_method = _hmac_header(INTEGRATION, "sandbox-integration-secret", "DELETE", path)
    assert requests.get(url, headers={"X-Hmac-Authorization": wrong_method}).status_code == 401


def test_more_than_ten_failed_authentications_block_the_address(sim):
    for _ in range(11):
        assert api(sim, "GET", "CBeteiligte", key="wrong").status_code == 401
    blocked = api(sim, "GET", "CBeteiligte")
    assert blocked.status_code == 403 and blocked.headers["X-Status-Reason"]


# ------------------------------------------------------------------ CRUD

def test_create_returns_the_full_record_with_espo_ids_and_utc_stamps(sim):
    record = create(sim, firstName="Max", lastName="Müller", syncStatus="clean", id="forged", createdAt="x")
    assert set(record) == set(FIELDS)
    assert ID_RE.match(record["id"]) and record["id"] != "forged"
    assert STAMP_RE.match(record["createdAt"]) and record["modifiedAt"] == record["createdAt"]
    assert record["name"] == "Max Müller"
    assert record["versionNumber"] == 1
    assert api(sim, "GET", f"CBeteiligte/{record['id']}").json() == record


def test_create_hook_sets_pending_sync_for_users_integration_may_choose(sim):
    by_user = create(sim, key=ALICE, lastName="A", syncStatus="clean")
    assert by_user["syncStatus"] == "pending_sync"
    assert create(sim, lastName="B")["syncStatus"] == "pending_sync"
    assert create(sim, lastName="C", syncStatus="clean")["syncStatus"] == "clean"


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_update_is_partial_and_returns_the_full_record(sim, method):
    record = create(sim, firstName="Erika", lastName="Muster", titel="Dr.")
    resp = api(sim, method, f"CBeteiligte/{record['id']}", json={"titel": "Prof."})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == set(FIELDS)
    assert (body["titel"], body["firstName"], body["lastName"]) == ("Prof.", "Erika", "Muster")


def test_modified_at_and_version_change_on_every_write_even_the_integration_users(sim):
    record = create(sim, lastName="Zeit", syncStatus="clean")
    advance_clock(sim)
    updated = api(sim, "PUT", f"CBeteiligte/{record['id']}", json={"advowareRowId": "abc"}).json()
    assert updated["modifiedAt"] > record["modifiedAt"]
    assert updated["versionNumber"] == record["versionNumber"] + 1
    advance_clock(sim)
    same = api(sim, "PUT", f"CBeteiligte/{record['id']}", json={"advowareRowId": "abc"}).json()
    assert same["modifiedAt"] > updated["modifiedAt"] and same["versionNumber"] == updated["versionNumber"] + 1
    assert same["syncStatus"] == "clean"


def test_user_edit_of_sync_relevant_field_marks_a_clean_record_dirty(sim):
    rid = create(sim, lastName="Sauber", syncStatus="clean")["id"]
    assert api(sim, "PUT", f"CBeteiligte/{rid}", key=ALICE, json={"lastName": "Sauber"}).json()["syncStatus"] == "clean"
    not_relevant = api(sim, "PUT", f"CBeteiligte/{rid}", key=ALICE, json={"assignedUserId": "5f0000000000000a3"})
    assert not_relevant.json()["syncStatus"] == "clean"
    assert api(sim, "PUT", f"CBeteiligte/{rid}", json={"lastName": "Neu"}).json()["syncStatus"] == "clean"
    assert api(sim, "PUT", f"CBeteiligte/{rid}", key=ALICE, json={"lastName": "Anders"}).json()["syncStatus"] == "dirty"
    rid2 = create(sim, lastName="Mail", syncStatus="clean")["id"]
    mail = [{"emailAddress": "neu@example.de"}]
    assert api(sim, "PUT", f"CBeteiligte/{rid2}", key=ALICE,
               json={"emailAddressData": mail}).json()["syncStatus"] == "dirty"
    rid3 = create(sim, key=ALICE, lastName="Neu")["id"]
    assert api(sim, "PUT", f"CBeteiligte/{rid3}", key=ALICE, json={"lastName": "X"}).json()["syncStatus"] == "pending_sync"


def test_email_and_phone_arrays_only_on_read_by_id(sim):
    rid = create(sim, lastName="Arrays", emailAddressData=[{"emailAddress": "a@b.de"}],
                 phoneNumberData=[{"phoneNumber": "+49 151 1234567", "type": "Mobile"}])["id"]
    full = api(sim, "GET", f"CBeteiligte/{rid}").json()
    assert full["emailAddressData"][0]["emailAddress"] == "a@b.de"
    assert full["phoneNumberData"][0]["type"] == "Mobile"
    item = listing(sim, {})["list"][0]
    assert item["id"] == rid and "emailAddressData" not in item and "phoneNumberData" not in item
    selected = listing(sim, {"select": "emailAddressData,lastName"})["list"][0]
    assert "emailAddressData" not in selected


def test_first_entry_becomes_primary_and_email_gets_lower(sim):
    record = create(sim, lastName="Primary",
                    emailAddressData=[{"emailAddress": "Max.Muster@Example.DE"}, {"emailAddress": "b@c.de"}],
                    phoneNumberData=[{"phoneNumber": "+49 30 1234567", "type": "Office"},
                                     {"phoneNumber": "+49 170 1234567", "type": "Mobile", "primary": True}])
    emails, phones = record["emailAddressData"], record["phoneNumberData"]
    assert [e["primary"] for e in emails] == [True, False]
    assert emails[0]["lower"] == "max.muster@example.de"
    assert set(emails[0]) == {"emailAddress", "lower", "primary", "optOut", "invalid"}
    assert [p["primary"] for p in phones] == [False, True]
    assert set(phones[0]) == {"phoneNumber", "type", "primary", "optOut", "invalid"}


def test_validation_failures_are_400_with_reason(sim):
    rid = create(sim, lastName="Valid")["id"]
    ok = api(sim, "PUT", f"CBeteiligte/{rid}", json={"syncErrorMessage": "x" * 2000})
    assert ok.status_code == 200
    for bad in ({"syncErrorMessage": "x" * 2001}, {"dateOfBirth": "01.02.1980"}, {"betnr": "zwölf"},
                {"syncStatus": "unknown"}, {"phoneNumberData": [{"phoneNumber": "1", "type": "Pager"}]},
                {"emailAddressData": [{"emailAddress": "no-at-sign"}]}, {"advowareLastSync": "2024-01-01T10:00"}):
        resp = api(sim, "PUT", f"CBeteiligte/{rid}", json=bad)
        assert resp.status_code == 400, bad
        assert resp.headers["X-Status-Reason"] == "validationFailure"
    not_json = api(sim, "PUT", f"CBeteiligte/{rid}", data="{nope", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.headers["X-Status-Reason"]
    ignored = api(sim, "PUT", f"CBeteiligte/{rid}", json={"noSuchField": 1, "betnr": "77"}).json()
    assert "noSuchField" not in ignored and ignored["betnr"] == 77
    sanitized = api(sim, "PUT", f"CBeteiligte/{rid}", json={"titel": "  Dr.  ", "dateOfBirth": ""}).json()
    assert (sanitized["titel"], sanitized["dateOfBirth"]) == ("Dr.", None)


def test_betnr_is_unique(sim):
    create(sim, lastName="Eins", betnr=100)
    resp = api(sim, "POST", "CBeteiligte", json={"lastName": "Zwei", "betnr": 100})
    assert resp.status_code == 409 and resp.headers["X-Status-Reason"]


def test_missing_records_and_unknown_entities_are_404(sim):
    assert api(sim, "GET", "CBeteiligte/0123456789abcdef0").status_code == 404
    rid = create(sim, lastName="Weg")["id"]
    assert api(sim, "DELETE", f"CBeteiligte/{rid}").status_code == 403  # the integration role: no delete
    deleted = api(sim, "DELETE", f"CBeteiligte/{rid}", key=ALICE)
    assert deleted.status_code == 200 and deleted.json() is True
    assert api(sim, "GET", f"CBeteiligte/{rid}").status_code == 404
    assert api(sim, "PUT", f"CBeteiligte/{rid}", json={"lastName": "x"}).status_code == 404
    unknown = api(sim, "GET", "Foo")
    assert unknown.status_code == 404 and unknown.headers["X-Status-Reason"]


# ------------------------------------------------------------------ search

@pytest.fixture
def people(sim):
    rows = [
        dict(lastName="Adler", syncStatus="clean", betnr=10, advowareLastSync="2024-01-01 10:00:00",
             dateOfBirth="1980-05-01"),
        dict(lastName="becker", syncStatus="dirty", betnr=20, advowareLastSync="2024-03-01 10:00:00"),
        dict(lastName="Coban", syncStatus="failed", betnr=30, syncNextRetry="2024-02-01 00:00:00",
             dateOfBirth="1990-01-01"),
        dict(lastName="Dietz", syncStatus="pending_sync"),
        dict(firmenname="Elster GmbH", rechtsform="GmbH", syncStatus="clean", betnr=50,
             advowareLastSync="2023-12-31 23:59:59"),
    ]
    return {r["lastName"] if r.get("lastName") else r["firmenname"]: create(sim, **r) for r in rows}


def _names(body):
    return sorted(r["lastName"] or r["firmenname"] for r in body["list"])


SEARCHES = [
    (W.equals("syncStatus", "clean"), ["Adler", "Elster GmbH"]),
    (W.equals("lastName", "BECKER"), ["becker"]),                      # case-insensitive collation
    (W.not_equals("lastName", "Adler"), ["Coban", "Dietz", "becker"]),  # NULL lastName never matches
    (W.in_("syncStatus", ["dirty", "failed"]), ["Coban", "becker"]),
    (W.not_in("syncStatus", ["clean", "dirty"]), ["Coban", "Dietz"]),
    (W.is_null("betnr"), ["Dietz"]),
    (W.is_not_null("dateOfBirth"), ["Adler", "Coban"]),
    (W.before("advowareLastSync", "2024-02-01 00:00:00"), ["Adler", "Elster GmbH"]),
    (W.after("advowareLastSync", "2024-01-01"), ["Adler", "becker"]),  # a date means 00:00:00
    (W.before("dateOfBirth", "1985-01-01"), ["Adler"]),
    (W.less_than("betnr", 20), ["Adler"]),
    (W.greater_than("betnr", "20"), ["Coban", "Elster GmbH"]),          # numeric, not text order
    (W.less_than_or_equals("betnr", 20), ["Adler", "becker"]),
    (W.greater_than_or_equals("betnr", 30), ["Coban", "Elster GmbH"]),
    (W.between("betnr", 15, 30), ["Coban", "becker"]),
    (W.contains("firmenname", "ster"), ["Elster GmbH"]),
    (W.or_(W.equals("syncStatus", "pending_sync"),
           W.and_(W.equals("syncStatus", "failed"), W.before("syncNextRetry", "2024-06-01 00:00:00"))),
     ["Coban", "Dietz"]),
    (W.not_(W.equals("syncStatus", "clean")), ["Coban", "Dietz", "becker"]),
    ([W.equals("syncStatus", "clean"), W.is_not_null("lastName")], ["Adler"]),
]


@pytest.mark.parametrize("where,expected", SEARCHES, ids=[str(i) for i in range(len(SEARCHES))])
def test_where_in_bracket_and_search_params_encodings(sim, people, where, expected):
    items = where if isinstance(where, list) else [where]
    assert _names(listing(sim, encode_where(items))) == expected
    assert _names(listing(sim, {"searchParams": json.dumps({"where": items})})) == expected


def test_where_as_handwritten_php_brackets(sim, people):
    query = ("where[0][type]=or&where[0][value][0][type]=equals&where[0][value][0][attribute]=syncStatus"
             "&where[0][value][0][value]=dirty&where[0][value][1][type]=in"
             "&where[0][value][1][attribute]=betnr&where[0][value][1][value][]=10&where[0][value][1][value][]=50")
    body = api(sim, "GET", f"CBeteiligte?{query}").json()
    assert _names(body) == ["Adler", "Elster GmbH", "becker"] and body["total"] == 3


@pytest.mark.parametrize("params", [
    {"searchParams": "{not json"},
    {"where[0][type]": "sameAs", "where[0][attribute]": "lastName", "where[0][value]": "x"},
    {"where[0][type]": "equals", "where[0][attribute]": "noSuchField", "where[0][value]": "x"},
    {"where[0][type]": "in", "where[0][attribute]": "syncStatus", "where[0][value]": "clean"},
    {"orderBy": "noSuchField"},
    {"maxSize": "ten"},
])
def test_bad_search_requests_are_400(sim, params):
    resp = api(sim, "GET", "CBeteiligte", params=params)
    assert resp.status_code == 400 and resp.headers["X-Status-Reason"]


def test_max_size_defaults_to_200_and_above_200_is_403(sim):
    requests.post(sim.url + "/_sandbox/seed", json={"count": 230}).raise_for_status()
    body = listing(sim, {})
    assert body["total"] == 230 and len(body["list"]) == 200
    resp = api(sim, "GET", "CBeteiligte", params={"maxSize": 201})
    assert resp.status_code == 403
    assert "200" in resp.headers["X-Status-Reason"]
    first = listing(sim, {"orderBy": "id", "maxSize": 200})["list"]
    rest = listing(sim, {"orderBy": "id", "maxSize": 200, "offset": 200})
    assert len(rest["list"]) == 30 and rest["total"] == 230
    assert len({r["id"] for r in first + rest["list"]}) == 230


def test_order_puts_nulls_first_ascending_and_sorts_text_case_insensitively(sim, people):
    asc = listing(sim, {"orderBy": "betnr", "order": "asc"})["list"]
    assert [r["betnr"] for r in asc] == [None, 10, 20, 30, 50]
    desc = listing(sim, {"orderBy": "betnr", "order": "desc"})["list"]
    assert [r["betnr"] for r in desc] == [50, 30, 20, 10, None]
    by_name = listing(sim, {"orderBy": "lastName", "where[0][type]": "isNotNull",
                            "where[0][attribute]": "lastName"})["list"]
    assert [r["lastName"] for r in by_name] == ["Adler", "becker", "Coban", "Dietz"]
    default = listing(sim, {})["list"]
    assert [r["createdAt"] for r in default] == sorted((r["createdAt"] for r in default), reverse=True)


def test_select_limits_attributes_but_keeps_id(sim, people):
    item = listing(sim, {"select": "syncStatus,betnr"})["list"][0]
    assert set(item) == {"id", "syncStatus", "betnr"}
    item = listing(sim, {"searchParams": json.dumps({"select": ["lastName"]})})["list"][0]
    assert set(item) == {"id", "lastName"}


def test_where_items_for_bool_columns():
    types = {"id": "id", "flag": "bool"}
    rows = [{"id": "1", "flag": True}, {"id": "2", "flag": False}, {"id": "3", "flag": None}]
    assert [r["id"] for r in rows if compile_where([W.is_true("flag")], types)(r)] == ["1"]
    assert [r["id"] for r in rows if compile_where([W.is_false("flag")], types)(r)] == ["2"]
    with pytest.raises(SearchError):
        compile_where([{"type": "equals", "attribute": "flag", "value": [1]}], types)


def test_php_query_parsing_appends_and_nests():
    parsed = parse_php_query([("a[0][v][]", "x"), ("a[0][v][]", "y"), ("a[0][t]", "in"), ("b", "1")])
    assert parsed == {"a": {"0": {"v": {"0": "x", "1": "y"}, "t": "in"}}, "b": "1"}
    assert php_lists(parsed["a"]) == [{"v": ["x", "y"], "t": "in"}]


_leaf = st.fixed_dictionaries({"type": st.sampled_from(["equals", "in", "before"]),
                               "attribute": st.sampled_from(["lastName", "betnr"]),
                               "value": st.one_of(st.text(min_size=1, max_size=8),
                                                  st.lists(st.text(min_size=1, max_size=5), min_size=1,
                                                           max_size=3))})
_items = st.recursive(_leaf, lambda inner: st.fixed_dictionaries(
    {"type": st.sampled_from(["and", "or"]), "value": st.lists(inner, min_size=1, max_size=3)}), max_leaves=6)


@settings(max_examples=150, deadline=None)
@given(st.lists(_items, min_size=1, max_size=3))
def test_bracket_encoding_round_trips_through_the_php_decoder(items):
    decoded = php_lists(parse_php_query(encode_where(items)))
    assert decoded["where"] == items


# ------------------------------------------------------------------ optimistic concurrency

def test_stale_version_that_would_change_a_field_is_409_modified_with_stored_values(sim):
    record = create(sim, firstName="Anna", lastName="Alt", syncStatus="clean")
    api(sim, "PUT", f"CBeteiligte/{record['id']}", key=ALICE, json={"lastName": "Neu"})
    stale = {"X-Version-Number": str(record["versionNumber"])}
    resp = api(sim, "PUT", f"CBeteiligte/{record['id']}", json={"lastName": "Sync"}, headers=stale)
    assert resp.status_code == 409 and resp.headers["X-Status-Reason"] == "modified"
    assert resp.json() == {"values": {"lastName": "Neu"}, "versionNumber": 2}
    # EspoCRM's rule: with a stale version, ANY write that changes something conflicts
    other = api(sim, "PUT", f"CBeteiligte/{record['id']}", json={"firstName": "X"}, headers=dict(stale))
    assert other.status_code == 409 and other.json()["values"] == {"firstName": "Anna"}
    unchanged = api(sim, "PUT", f"CBeteiligte/{record['id']}", json={"firstName": "Anna"}, headers=dict(stale))
    assert unchanged.status_code == 200
    current = {"X-Version-Number": str(unchanged.json()["versionNumber"])}
    assert api(sim, "PUT", f"CBeteiligte/{record['id']}", json={"lastName": "Sync"}, headers=current).status_code == 200
    assert api(sim, "GET", f"CBeteiligte/{record['id']}").json()["lastName"] == "Sync"


@pytest.mark.parametrize("options,expect_first,expect_second", [
    ({"concurrency_rule": "fields"}, 200, 409),
    ({"optimistic_concurrency": False}, 200, 200),
])
def test_concurrency_variants(options, expect_first, expect_second):
    app = create_espocrm_app(webhook_interval=0, **options)
    server = ServerThread(app).start()
    try:
        record = create(server, firstName="Anna", lastName="Alt")
        api(server, "PUT", f"CBeteiligte/{record['id']}", key=ALICE, json={"lastName": "Neu"})
        stale = {"X-Version-Number": "1"}
        first = api(server, "PUT", f"CBeteiligte/{record['id']}", json={"firstName": "B"}, headers=stale)
        second = api(server, "PUT", f"CBeteiligte/{record['id']}", json={"lastName": "C"}, headers=dict(stale))
        assert (first.status_code, second.status_code) == (expect_first, expect_second)
    finally:
        server.stop()


# ------------------------------------------------------------------ webhooks

def test_subscription_returns_id_and_secret_and_validates(sim):
    body = api(sim, "POST", "Webhook", json={"event": "CBeteiligte.update", "url": "http://127.0.0.1:9/x"}).json()
    assert ID_RE.match(body["id"]) and len(body["secretKey"]) >= 16
    for bad in ({"event": "Foo.update", "url": "http://x/"}, {"event": "CBeteiligte.explode", "url": "http://x/"},
                {"event": "CBeteiligte.update"}):
        assert api(sim, "POST", "Webhook", json=bad).status_code == 400
    assert api(sim, "DELETE", f"Webhook/{body['id']}").json() is True


def test_webhooks_with_skip_own_leave_out_their_users_writes_others_get_every_write(sim, sink):
    """As the real EspoCRM (`Webhook.skipOwn`): every save queues an event, the integration user's too; a
    webhook with skipOwn leaves out its own user's events — the product's loop prevention."""
    subscribe(sim, sink, "CBeteiligte.create", "CBeteiligte.update", "CBeteiligte.delete")
    mine = create(sim, lastName="Integration")
    api(sim, "PUT", f"CBeteiligte/{mine['id']}", json={"lastName": "Still mine"})
    assert flush(sim) == [] and sink.requests == []
    theirs = create(sim, key=ALICE, lastName="Alice", firstName="A")
    api(sim, "PUT", f"CBeteiligte/{theirs['id']}", json={"syncStatus": "clean"})  # the integration user's own
    api(sim, "PUT", f"CBeteiligte/{theirs['id']}", key=ALICE, json={"firstName": "B"})
    api(sim, "DELETE", f"CBeteiligte/{theirs['id']}", key=ALICE)
    delivered = flush(sim)
    assert [d["event"] for d in delivered] == ["CBeteiligte.create", "CBeteiligte.update", "CBeteiligte.delete"]
    create_item, update_item, delete_item = (json.loads(r.body)[0] for r in sink.requests)
    assert set(create_item) == set(FIELDS) and create_item["lastName"] == "Alice"
    # the changed attributes and the id last; never modifiedAt or versionNumber (EspoCRM skips them)
    assert update_item == {"name": "B Alice", "firstName": "B", "syncStatus": "dirty", "id": theirs["id"]}
    assert list(update_item)[-1] == "id"
    assert delete_item == {"id": theirs["id"]}


def test_webhooks_without_skip_own_echo_the_integration_users_writes(sim, sink):
    subscribe(sim, sink, "CBeteiligte.update", skip_own=False)
    mine = create(sim, lastName="Integration")
    api(sim, "PUT", f"CBeteiligte/{mine['id']}", json={"lastName": "Echo"})
    assert [json.loads(r.body) for r in sink.requests] == [] and len(flush(sim)) == 1
    assert json.loads(sink.requests[0].body) == [{"name": "Echo", "lastName": "Echo", "id": mine["id"]}]


def test_body_is_php_json_encode_and_signature_covers_the_exact_bytes(sim, sink):
    hook = subscribe(sim, sink, "CBeteiligte.create")["CBeteiligte.create"]
    create(sim, key=ALICE, firmenname="Müller/Schmidt GbR", rechtsform="GbR")
    flush(sim)
    (received,) = sink.requests
    assert b"M\\u00fcller\\/Schmidt GbR" in received.body and b", " not in received.body
    assert received.headers["Content-Type"] == "application/json"
    digest = hmac.new(hook["secretKey"].encode(), received.body, hashlib.sha256)
    assert received.headers["Signature"] == base64.b64encode(f"{hook['id']}:{digest.hexdigest()}".encode()).decode()
    legacy = base64.b64encode(hook["id"].encode() + b":" + digest.digest()).decode()
    assert received.headers["X-Signature"] == legacy


def test_a_record_changed_twice_appears_twice_in_one_batch(sim, sink):
    subscribe(sim, sink, "CBeteiligte.update")
    rid = create(sim, lastName="Zweimal")["id"]
    api(sim, "PUT", f"CBeteiligte/{rid}", key=ALICE, json={"lastName": "Eins"})
    api(sim, "PUT", f"CBeteiligte/{rid}", key=ALICE, json={"lastName": "Zwei"})
    flush(sim)
    (received,) = sink.requests
    assert [(i["id"], i["lastName"]) for i in json.loads(received.body)] == [(rid, "Eins"), (rid, "Zwei")]


def test_events_are_batched_at_most_50_and_20_are_picked_up_per_run(sim, sink):
    subscribe(sim, sink, "CBeteiligte.create")
    for i in range(30):
        create(sim, key=ALICE, lastName=f"P{i}")
    assert [d["count"] for d in flush(sim)] == [20, 10]
    sink.clear()
    sim.state.hooks.event_portion_size = 1000
    for i in range(120):
        create(sim, key=ALICE, lastName=f"Q{i}")
    assert [d["count"] for d in flush(sim)] == [50, 50, 20]
    assert [len(json.loads(r.body)) for r in sink.requests] == [50, 50, 20]


def test_events_before_a_subscription_are_not_delivered(sim, sink):
    rid = create(sim, key=ALICE, lastName="Früh")["id"]
    subscribe(sim, sink, "CBeteiligte.update")
    api(sim, "PUT", f"CBeteiligte/{rid}", key=ALICE, json={"lastName": "Spät"})
    flush(sim)
    assert [json.loads(r.body)[0]["lastName"] for r in sink.requests] == ["Spät"]


@pytest.mark.parametrize("status,attempts", [(500, 4), (503, 4), (404, 4), (401, 4), (400, 1), (422, 1), (502, 1)])
def test_failed_deliveries_retry_only_listed_statuses_four_attempts(sim, sink, status, attempts):
    sim.state.hooks.retry_interval = 0.05
    subscribe(sim, sink, "CBeteiligte.create")
    sink.default_status = status
    create(sim, key=ALICE, lastName="Retry")
    flush(sim)
    for _ in range(6):
        time.sleep(0.07)
        flush(sim)
    assert len(sink.requests) == attempts
    assert len({r.body for r in sink.requests}) == 1


def test_retries_wait_for_the_retry_interval(sim, sink):
    sim.state.hooks.retry_interval = 0.4
    subscribe(sim, sink, "CBeteiligte.create")
    sink.script = [500]
    create(sim, key=ALICE, lastName="Later")
    flush(sim)
    flush(sim)
    assert len(sink.requests) == 1
    time.sleep(0.45)
    flush(sim)
    assert len(sink.requests) == 2 and sim.state.hooks.pending()["items"] == []


def test_timeouts_and_refused_connections_are_retried(sim, sink):
    hooks = sim.state.hooks
    hooks.retry_interval, hooks.timeout = 0.05, 0.3
    subscribe(sim, sink, "CBeteiligte.create")
    sink.delay_s = 0.6
    create(sim, key=ALICE, lastName="Slow")
    first = flush(sim)
    assert first[0]["status"] == 408 and first[0]["outcome"] == "retry"
    sink.delay_s = 0.0
    time.sleep(0.1)
    assert flush(sim)[0]["outcome"] == "success"
    refused = api(sim, "POST", "Webhook", json={"event": "CBeteiligte.update", "url": "http://127.0.0.1:9/x"})
    assert refused.status_code == 200
    rid = create(sim, lastName="R")["id"]
    api(sim, "PUT", f"CBeteiligte/{rid}", key=ALICE, json={"lastName": "S"})
    delivered = [d for d in flush(sim) if d["event"] == "CBeteiligte.update"]
    assert delivered[0]["status"] == 0 and delivered[0]["outcome"] == "retry"


def test_410_deletes_the_webhook(sim, sink):
    subscribe(sim, sink, "CBeteiligte.create")
    sink.default_status = 410
    create(sim, key=ALICE, lastName="Gone")
    assert flush(sim)[0]["outcome"] == "dropped"
    assert api(sim, "GET", "Webhook").json()["total"] == 0
    create(sim, key=ALICE, lastName="Gone again")
    assert flush(sim) == [] and len(sink.requests) == 1


def test_background_job_delivers_without_a_flush(sink):
    app = create_espocrm_app(webhook_interval=0.2)
    server = ServerThread(app).start()
    try:
        api(server, "POST", "Webhook", json={"event": "CBeteiligte.create", "url": sink.url})
        create(server, key=ALICE, lastName="Von selbst")
        assert len(sink.wait_for(1, timeout=5)) == 1
        log = requests.get(server.url + "/_sandbox/webhooks").json()
        assert log["deliveries"][0]["outcome"] == "success" and log["deliveries"][0]["count"] == 1
    finally:
        app.extensions["espocrm"].close()
        server.stop()


# ------------------------------------------------------------------ notes, notifications

def test_stream_post_by_api_user_is_stored_and_listed(sim):
    rid = create(sim, lastName="Notiz")["id"]
    note = api(sim, "POST", "Note", json={"type": "Post", "parentType": "CBeteiligte", "parentId": rid,
                                          "post": "@alice Advoware-Werte überschrieben"}).json()
    assert ID_RE.match(note["id"]) and note["data"]["mentions"]["@alice"]["userName"] == "alice"
    listed = api(sim, "GET", "Note", params=encode_where([W.equals("parentId", rid)])).json()
    assert [n["id"] for n in listed["list"]] == [note["id"]]
    assert api(sim, "GET", f"CBeteiligte/{rid}/stream").json()["total"] == 1
    assert [n["id"] for n in requests.get(sim.url + "/_sandbox/notes").json()] == [note["id"]]
    assert api(sim, "GET", "Notification", key=ALICE).json()["total"] == 1
    assert api(sim, "POST", "Note", json={"type": "Update", "parentType": "CBeteiligte", "parentId": rid,
                                          "post": "x"}).status_code == 403
    assert api(sim, "POST", "Note", json={"type": "Post", "parentType": "CBeteiligte",
                                          "parentId": "00000000000000000", "post": "x"}).status_code == 404


def test_api_user_cannot_create_notifications(sim):
    resp = api(sim, "POST", "Notification", json={"userId": "5f0000000000000a2", "message": "hi"})
    assert resp.status_code == 403 and resp.headers["X-Status-Reason"] == "No create access"


# ------------------------------------------------------------------ admin API

MOBILE = re.compile(r"^\+491[567]\d")
E164 = re.compile(r"\+[1-9]\d{6,14}")


def test_seed_creates_realistic_german_records_without_webhooks(sim, sink):
    subscribe(sim, sink, "CBeteiligte.create")
    records = requests.post(sim.url + "/_sandbox/seed", json={"count": 60, "status": "clean",
                                                              "betnr_start": 1000}).json()["records"]
    persons = [r for r in records if r["firstName"]]
    companies = [r for r in records if r["firmenname"]]
    assert persons and companies and len(persons) + len(companies) == 60
    assert all(not c["firstName"] and not c["lastName"] and c["rechtsform"] for c in companies)
    assert any(p["dateOfBirth"] for p in persons)
    phones = [p for r in records for p in r["phoneNumberData"]]
    assert {p["type"] for p in phones} == {"Mobile", "Office", "Home", "Fax", "Other"}
    # typed in every spelling, stored as a new EspoCRM stores them (phoneNumberInternational): E.164
    assert all(E164.fullmatch(p["phoneNumber"]) for p in phones)
    assert all(MOBILE.match(p["phoneNumber"]) for p in phones if p["type"] == "Mobile")
    assert any(e["emailAddress"] != e["lower"] for r in records for e in r["emailAddressData"])
    assert {r["syncStatus"] for r in records} == {"clean"}
    assert sorted(r["betnr"] for r in records) == list(range(1000, 1060))
    assert flush(sim) == []
    again = requests.post(sim.url + "/_sandbox/seed", json={"count": 1}).json()["records"][0]
    assert again["syncStatus"] == "pending_sync"


def test_human_admin_routes_act_as_users(sim, sink):
    subscribe(sim, sink, "CBeteiligte.update", "CBeteiligte.create", "CBeteiligte.delete")
    rid = create(sim, lastName="Mensch", syncStatus="clean")["id"]
    edited = requests.put(f"{sim.url}/_sandbox/human/{rid}?user=bob", json={"lastName": "Geändert"}).json()
    assert edited["syncStatus"] == "dirty"
    created = requests.post(f"{sim.url}/_sandbox/human", json={"lastName": "Neu"}).json()
    assert created["syncStatus"] == "pending_sync"
    assert requests.delete(f"{sim.url}/_sandbox/human/{created['id']}").json() is True
    assert [d["event"] for d in flush(sim)] == ["CBeteiligte.update", "CBeteiligte.create", "CBeteiligte.delete"]
    dump = requests.get(sim.url + "/_sandbox/records").json()
    assert [r["id"] for r in dump] == [rid]
    detail = requests.get(f"{sim.url}/_sandbox/records/{rid}").json()
    assert detail["_fieldVersions"]["lastName"] == 2


def test_reset_clears_records_webhooks_and_notes(sim, sink):
    subscribe(sim, sink, "CBeteiligte.create")
    rid = create(sim, lastName="Reset")["id"]
    api(sim, "POST", "Note", json={"type": "Post", "parentType": "CBeteiligte", "parentId": rid, "post": "x"})
    requests.post(sim.url + "/_sandbox/reset").raise_for_status()
    assert listing(sim, {})["total"] == 0
    assert api(sim, "GET", "Webhook").json()["total"] == 0
    assert requests.get(sim.url + "/_sandbox/notes").json() == []


def test_state_snapshot_round_trips(sim, sink):
    state = sim.state
    subscribe(sim, sink, "CBeteiligte.update")
    record = state.human_create({"lastName": "Snapshot", "emailAddressData": [{"emailAddress": "s@n.de"}]})
    state.human_update(record["id"], {"lastName": "Snap"}, user="bob")
    snapshot = json.loads(json.dumps(state.dump_state()))
    fresh = create_espocrm_app(webhook_interval=0).extensions["espocrm"]
    fresh.load_state(snapshot)
    assert fresh.get(record["id"]) == state.get(record["id"])
    assert [w["id"] for w in fresh.hooks.list()] == [w["id"] for w in state.hooks.list()]
    assert fresh.field_versions[record["id"]]["lastName"] == 2
    fresh.close()
