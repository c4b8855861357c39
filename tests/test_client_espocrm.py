"""The product's EspoCRM client against the running EspoCRM simulator (real HTTP, real Redis for the rate gate)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time

import pytest
import requests

from integrations.espocrm import EspoCrmClient, W, encode_where
from integrations.errors import AuthError, Conflict, Forbidden, NotFound, RateLimited, Unavailable
from integrations.http import Timeouts
from integrations.rategate import RateGate
from integrations.sandbox.espocrm import create_espocrm_app
from integrations.sandbox.kit import ServerThread
from integrations.sandbox.webhook_sink import WebhookSink

KEY = "sandbox-integration-key"


@pytest.fixture(scope="module")
def sim():
    app = create_espocrm_app(webhook_interval=0)
    server = ServerThread(app).start()
    yield server
    app.extensions["espocrm"].close()
    server.stop()


@pytest.fixture
def client(sim):
    requests.post(sim.url + "/_sandbox/reset").raise_for_status()
    return EspoCrmClient(sim.url, KEY, timeouts=Timeouts(connect=1.0, read=2.0))


def seed(sim, count, **spec):
    resp = requests.post(sim.url + "/_sandbox/seed", json={"count": count, **spec})
    resp.raise_for_status()
    return resp.json()["records"]


def fault(sim, **spec):
    requests.post(sim.url + "/_sandbox/faults", json=spec).raise_for_status()


def server_calls(sim):
    return requests.get(sim.url + "/_sandbox/calls").json()


# ------------------------------------------------------------------ where builder

def test_encode_where_writes_php_brackets_in_order():
    where = [W.equals("syncStatus", "dirty"),
             W.or_(W.in_("betnr", [1, 2]), W.is_null("betnr"), W.equals("x", True))]
    assert encode_where(where) == [
        ("where[0][type]", "equals"), ("where[0][attribute]", "syncStatus"), ("where[0][value]", "dirty"),
        ("where[1][type]", "or"),
        ("where[1][value][0][type]", "in"), ("where[1][value][0][attribute]", "betnr"),
        ("where[1][value][0][value][0]", "1"), ("where[1][value][0][value][1]", "2"),
        ("where[1][value][1][type]", "isNull"), ("where[1][value][1][attribute]", "betnr"),
        ("where[1][value][2][type]", "equals"), ("where[1][value][2][attribute]", "x"),
        ("where[1][value][2][value]", "1"),
    ]
    assert encode_where(W.is_not_null("betnr")) == [("where[0][type]", "isNotNull"), ("where[0][attribute]", "betnr")]
    assert encode_where(None) == []
    with pytest.raises(ValueError):
        W.in_("betnr", [])


def test_base_url_with_or_without_api_path(sim):
    assert EspoCrmClient(sim.url + "/api/v1/", KEY).api == EspoCrmClient(sim.url, KEY).api == sim.url + "/api/v1"


# ------------------------------------------------------------------ CRUD

def test_crud_round_trip_and_call_counts(sim, client):
    created = client.create_beteiligte({"firstName": "Jörg", "lastName": "Brösel",
                                        "emailAddressData": [{"emailAddress": "J.B@Example.de"}]})
    assert created["syncStatus"] == "pending_sync"
    fetched = client.get_beteiligte(created["id"])
    assert fetched["emailAddressData"][0]["lower"] == "j.b@example.de"
    updated = client.update_beteiligte(created["id"], {"betnr": 4711, "syncStatus": "clean"},
                                       version_number=fetched["versionNumber"])
    assert (updated["betnr"], updated["lastName"], updated["versionNumber"]) == (4711, "Brösel", 2)
    total, page = client.search_beteiligte(W.equals("betnr", 4711), select=["betnr"])
    assert total == 1 and set(page[0]) == {"id", "betnr"}
    with pytest.raises(Forbidden):  # the integration user's role has no delete access (as the real one)
        client.delete_beteiligte(created["id"])
    assert requests.delete(f"{sim.url}/_sandbox/human/{created['id']}").json() is True
    with pytest.raises(NotFound):
        client.get_beteiligte(created["id"])
    assert dict(client.calls) == {"create_beteiligte": 1, "get_beteiligte": 2, "update_beteiligte": 1,
                                  "search_beteiligte": 1, "delete_beteiligte": 1}
    assert client.total_calls == 6


def test_version_conflict_raises_conflict_with_the_stored_values(sim, client):
    record = client.create_beteiligte({"lastName": "Alt", "syncStatus": "clean"})
    requests.put(f"{sim.url}/_sandbox/human/{record['id']}", json={"lastName": "Von Alice"}).raise_for_status()
    with pytest.raises(Conflict) as caught:
        client.update_beteiligte(record["id"], {"lastName": "Vom Sync"}, version_number=record["versionNumber"])
    assert caught.value.status == 409 and caught.value.reason == "modified"
    assert caught.value.payload == {"values": {"lastName": "Von Alice"}, "versionNumber": 2}
    assert client.get_beteiligte(record["id"])["lastName"] == "Von Alice"


# ------------------------------------------------------------------ paging

def test_iterates_all_pages_of_more_than_200_records(sim, client):
    seed(sim, 450)
    records = list(client.iter_beteiligte(W.equals("syncStatus", "pending_sync"), select=["syncStatus"]))
    assert len({r["id"] for r in records}) == 450
    assert client.calls["search_beteiligte"] == 3
    by_offset = list(client.iter_beteiligte(paging="offset"))
    assert {r["id"] for r in by_offset} == {r["id"] for r in records}
    assert client.calls["search_beteiligte"] == 6


def test_keyset_paging_misses_nothing_while_matches_change(sim, client):
    seed(sim, 420)
    pending = W.equals("syncStatus", "pending_sync")
    seen = []
    for record in client.iter_beteiligte(pending, select=["syncStatus"]):
        seen.append(record["id"])
        client.update_beteiligte(record["id"], {"syncStatus": "clean"})
    assert len(set(seen)) == 420
    # the same sweep with offset paging skips records: why keyset is the default
    requests.post(sim.url + "/_sandbox/reset").raise_for_status()
    seed(sim, 420)
    skipped = [r["id"] for r in client.iter_beteiligte(pending, paging="offset")
               if client.update_beteiligte(r["id"], {"syncStatus": "clean"})]
    assert len(skipped) < 420


def test_max_size_above_200_is_forbidden(sim, client):
    with pytest.raises(Forbidden) as caught:
        client.search_beteiligte(max_size=201)
    assert "200" in caught.value.reason


# ------------------------------------------------------------------ failures

def test_wrong_key_is_auth_error_and_the_key_never_appears(sim, caplog):
    secret = "wrong-key-0123456789-secret"
    bad = EspoCrmClient(sim.url, secret)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as caught:
        bad.get_beteiligte("0123456789abcdef0")
    texts = [str(caught.value), repr(caught.value), repr(bad), caught.value.reason, caplog.text]
    assert all(secret not in text for text in texts)
    assert "/api/v1/CBeteiligte/" in str(caught.value)


def test_injected_500_is_unavailable(sim, client):
    record = client.create_beteiligte({"lastName": "Fehler"})
    fault(sim, path="/api/v1/CBeteiligte/*", status=500, times=1)
    with pytest.raises(Unavailable) as caught:
        client.get_beteiligte(record["id"])
    assert caught.value.status == 500 and caught.value.transient


def test_503_is_retried_for_get_but_never_for_post(sim, client):
    fault(sim, path="/api/v1/CBeteiligte", status=503)
    requests.delete(sim.url + "/_sandbox/calls")
    with pytest.raises(Unavailable):
        client.search_beteiligte()
    assert server_calls(sim)["GET /api/v1/CBeteiligte"] == 3
    with pytest.raises(Unavailable):
        client.create_beteiligte({"lastName": "Einmal"})
    assert server_calls(sim)["POST /api/v1/CBeteiligte"] == 1


def test_429_is_rate_limited_with_retry_after_and_pauses_the_shared_gate(sim, client, redis_url):
    fault(sim, path="/api/v1/CBeteiligte", status=429, retry_after=7, times=1)
    with pytest.raises(RateLimited) as caught:
        client.search_beteiligte()
    assert caught.value.retry_after == 7
    gated = EspoCrmClient(sim.url, KEY, gate=RateGate(redis_url, "espocrm-test", 1000))
    fault(sim, path="/api/v1/CBeteiligte", status=429, retry_after=1, times=1)
    with pytest.raises(RateLimited):
        gated.search_beteiligte()
    started = time.monotonic()
    gated.search_beteiligte()
    assert time.monotonic() - started >= 0.7  # the next call waited for the Retry-After pause


def test_hang_longer_than_the_read_timeout_is_unavailable(sim):
    quick = EspoCrmClient(sim.url, KEY, timeouts=Timeouts(connect=1.0, read=0.4))
    requests.post(sim.url + "/_sandbox/reset").raise_for_status()
    fault(sim, path="/api/v1/CBeteiligte", hang_s=1.5, times=1)
    started = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        quick.search_beteiligte()
    assert time.monotonic() - started < 1.2
    assert caught.value.status is None


def test_connection_reset_is_unavailable(sim, client):
    fault(sim, path="/api/v1/CBeteiligte", reset=True)
    with pytest.raises(Unavailable) as caught:
        client.search_beteiligte()
    assert caught.value.status is None and "connection" in str(caught.value)


# ------------------------------------------------------------------ notes, webhooks

def test_post_note_reaches_the_stream_with_mentions(sim, client):
    record = client.create_beteiligte({"lastName": "Notiz"})
    note = client.post_note(record["id"], "@alice Bitte prüfen: Advoware-Wert überschrieben")
    assert note["parentId"] == record["id"] and note["type"] == "Post"
    stored = requests.get(sim.url + "/_sandbox/notes").json()
    assert [n["id"] for n in stored] == [note["id"]] and "@alice" in stored[0]["data"]["mentions"]


def test_webhook_signature_verifies_over_the_received_raw_bytes(sim, client):
    sink = WebhookSink().start()
    try:
        hook_id, secret = client.subscribe_webhook("CBeteiligte.update", sink.url)
        assert [w["id"] for w in client.list_webhooks()] == [hook_id]
        record = client.create_beteiligte({"lastName": "Signiert", "syncStatus": "clean"})
        requests.put(f"{sim.url}/_sandbox/human/{record['id']}",
                     json={"lastName": "Ünterschrift/Neu"}).raise_for_status()
        requests.post(sim.url + "/_sandbox/webhooks/flush").raise_for_status()
        (received,) = sink.wait_for(1)
        expected = hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
        header = base64.b64decode(received.headers["Signature"]).decode()
        assert hmac.compare_digest(header, f"{hook_id}:{expected}")
        assert json.loads(received.body) == [{"name": "Ünterschrift/Neu", "lastName": "Ünterschrift/Neu",
                                              "syncStatus": "dirty", "id": record["id"]}]
        assert client.delete_webhook(hook_id) is True and client.list_webhooks() == []
    finally:
        sink.stop()


def test_only_a_stale_version_409_is_a_version_conflict():
    from integrations.espocrm import is_version_conflict

    assert is_version_conflict(Conflict("x", payload={"values": {"titel": "Dr."}, "versionNumber": 4}))
    assert not is_version_conflict(Conflict("x", payload=None, reason="betnr 7 already belongs to CBeteiligte a"))
    assert not is_version_conflict(Conflict("x", payload={"messageTranslation": {}}))
