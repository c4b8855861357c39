"""The inbound endpoints of the shim (SPEC §12): authentication, validation, spam guards, idempotency,
rate limits, broker outages, and the 3CX lookup and journaling intake — over Flask's test client with a
real Redis (nothing is consumed here; tests/test_inbound_e2e.py runs the worker)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest
import redis

from bitbylaw_tasks.devredis import PrivateRedis
from bitbylaw_tasks.inbound import phone_index, store
from bitbylaw_tasks.web import create_app
from inbound_helpers import API_KEY, BROKER_DB, HMAC_SECRET, LOCK_DB, TOKEN, queued, shim_settings

LEAD = {"firstName": "Erika", "lastName": "Mustermann", "emailAddress": "erika@example.de",
        "phoneNumber": "030 1234567", "description": "Bitte um Rückruf"}


@pytest.fixture
def dbs(redis_server):
    broker = redis.Redis.from_url(redis_server.url(BROKER_DB))
    locks = redis.Redis.from_url(redis_server.url(LOCK_DB))
    broker.flushdb()
    locks.flushdb()
    return broker, locks


def _client(redis_server, **extra):
    return create_app(shim_settings(redis_server.url, **extra)).test_client()


@pytest.fixture
def client(redis_server, dbs):
    return _client(redis_server)


def _post_lead(client, data=LEAD, *, token=TOKEN, form=False, headers=None, raw=None):
    body = raw if raw is not None else (urlencode(data).encode() if form else json.dumps(data).encode())
    ctype = "application/x-www-form-urlencoded" if form else "application/json"
    hdrs = {"X-Lead-Token": token} if token else {}
    hdrs.update(headers or {})
    return client.post("/vmh/webhook/lead", data=body, content_type=ctype, headers=hdrs)


# ------------------------------------------------------------------ leads: auth
def test_a_lead_with_the_token_is_queued_by_id_only_and_the_data_waits_in_redis(client, dbs):
    broker, locks = dbs
    resp = _post_lead(client)
    assert resp.status_code == 202, resp.get_json()
    doc = resp.get_json()
    assert doc["status"] == "queued" and len(doc["id"]) == 32
    assert queued(broker) == [("leads.create_lead", [doc["id"]])]
    raw = b"".join(broker.lrange("leads", 0, -1))
    assert b"erika" not in raw.lower() and b"1234567" not in raw  # no personal data in the message
    stored = store.load(locks, "lead", doc["id"])
    assert stored["lead"]["email"] == "erika@example.de" and stored["lead"]["phone"] == "+49301234567"
    assert 0 < locks.ttl(store.payload_key("lead", doc["id"])) <= store.PAYLOAD_TTL


def test_form_encoded_with_hmac_over_the_raw_body(client, dbs):
    body = urlencode(LEAD).encode()
    signature = hmac.new(HMAC_SECRET.encode(), body, hashlib.sha256).hexdigest()
    for header in (f"sha256={signature}", signature.upper()):
        dbs[1].flushdb()
        resp = _post_lead(client, token=None, form=True, raw=body, headers={"X-Lead-Signature": header})
        assert resp.status_code == 202, resp.get_json()
    resp = _post_lead(client, token=None, form=True, raw=body + b"&x=1", headers={"X-Lead-Signature": f"sha256={signature}"})
    assert resp.status_code == 401


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN + "x"])
def test_missing_or_wrong_credentials_are_401_and_nothing_is_queued(client, dbs, token):
    resp = _post_lead(client, token=token)
    assert resp.status_code == 401 and resp.get_json()["status"] == 401
    assert queued(dbs[0]) == []


def test_without_configured_credentials_every_lead_is_401(redis_server, dbs):
    client = _client(redis_server, LEAD_TOKEN="", LEAD_HMAC_SECRET="")
    assert _post_lead(client, token="").status_code == 401
    assert _post_lead(client, token="anything").status_code == 401


# ------------------------------------------------------------------ leads: bad input
@pytest.mark.parametrize("ctype,body,status", [
    ("text/plain", b"lastName=X", 415), ("application/json", b"{oops", 400), ("application/json", b"[]", 400),
    ("application/json", json.dumps({"lastName": "X"}).encode(), 422),
    ("application/json", json.dumps({"lastName": "X", "emailAddress": "nope"}).encode(), 422),
    ("application/json", json.dumps({"emailAddress": "a@b.de"}).encode(), 422),
    ("application/json", b"x" * 5000, 413),
])
def test_client_mistakes_get_a_clear_4xx_and_nothing_is_queued(client, dbs, ctype, body, status):
    resp = client.post("/vmh/webhook/lead", data=body, content_type=ctype, headers={"X-Lead-Token": TOKEN})
    assert resp.status_code == status and resp.get_json()["status"] == status
    assert queued(dbs[0]) == []


def test_wrong_method_is_405_json(client):
    resp = client.get("/vmh/webhook/lead")
    assert resp.status_code == 405 and resp.get_json()["status"] == 405 and "POST" in resp.headers["Allow"]


# ------------------------------------------------------------------ leads: spam guards and idempotency
def test_a_filled_honeypot_is_answered_like_success_but_never_queued(redis_server, dbs):
    client = _client(redis_server, LEAD_HONEYPOT_FIELD="website-url")
    resp = _post_lead(client, {**LEAD, "website-url": "http://spam.example"})
    assert resp.status_code == 202 and "id" not in resp.get_json()
    assert queued(dbs[0]) == []
    assert _post_lead(client, {**LEAD, "website-url": ""}).status_code == 202
    assert len(queued(dbs[0])) == 1


def test_a_resubmission_is_one_lead(client, dbs):
    first = _post_lead(client).get_json()
    again = _post_lead(client, form=True)  # the same content, as a form this time
    assert again.status_code == 200 and again.get_json() == {"status": "duplicate", "id": first["id"]}
    changed = _post_lead(client, {**LEAD, "description": "Noch eine Frage"})
    assert changed.status_code == 202 and changed.get_json()["id"] != first["id"]
    assert [args for _, args in queued(dbs[0])] == [[first["id"]], [changed.get_json()["id"]]]


def test_per_address_rate_limit_is_429_with_retry_after_and_counts_per_visitor(redis_server, dbs):
    client = _client(redis_server, LEAD_RATE_LIMIT="2/minute", LEAD_CLIENT_IP_FIELD="client-ip")
    for n in range(2):
        assert _post_lead(client, {**LEAD, "description": f"m{n}", "client-ip": "203.0.113.7"}).status_code == 202
    resp = _post_lead(client, {**LEAD, "description": "m3", "client-ip": "203.0.113.7"})
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) >= 1
    assert _post_lead(client, {**LEAD, "description": "m4", "client-ip": "198.51.100.1"}).status_code == 202
    assert len(queued(dbs[0])) == 3


def test_broker_down_is_503_and_the_same_form_is_accepted_once_it_is_back(redis_server, dbs):
    broker = PrivateRedis().start()
    settings = shim_settings(redis_server.url, REDIS_BROKER_URL=broker.url(0))
    client = create_app(settings).test_client()
    broker.stop()
    resp = _post_lead(client)
    assert resp.status_code == 503 and resp.get_json()["status"] == 503
    client = create_app(settings.replace(broker_url=redis_server.url(BROKER_DB))).test_client()  # a broker again
    resp = _post_lead(client)
    assert resp.status_code == 202  # the failed attempt gave its claim back
    assert len(queued(dbs[0])) == 1


# ------------------------------------------------------------------ 3CX lookup
def _basic(key: str, user: str = "3cx") -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


def test_lookup_needs_the_api_key(client):
    for headers in ({}, _basic("wrong"), {"X-Api-Key": "wrong"}, {"Authorization": "Basic %%%"}):
        resp = client.get("/3cx/lookup?number=0301234567", headers=headers)
        assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")


def test_lookup_answers_the_indexed_owner_with_a_contact_url(client, dbs):
    owner = phone_index.Owner("CBeteiligte", "6618a630d680cf769", "Max", "Muster", "", "max@muster.de",
                              "+49301234567", "", "2026-11-30 10:00:00")
    phone_index.put(dbs[1], owner, {"+49301234567"})
    for number, headers in (("030 1234567", _basic(API_KEY)), ("+49301234567", {"X-Api-Key": API_KEY}),
                            ("0049301234567", _basic(API_KEY, "any-user"))):
        resp = client.get("/3cx/lookup", query_string={"number": number}, headers=headers)
        assert resp.status_code == 200
        assert resp.get_json() == {"number": "+49301234567", "contacts": [{
            "id": "6618a630d680cf769", "entityType": "CBeteiligte", "firstName": "Max", "lastName": "Muster",
            "company": "", "email": "max@muster.de", "phoneBusiness": "+49301234567", "phoneMobile": "",
            "contactUrl": "https://crm.kanzlei.test/#CBeteiligte/view/6618a630d680cf769"}]}


def test_lookup_of_an_unknown_or_unparseable_number_is_an_empty_list_and_bad_input_400(client):
    for number in ("030 7654321", "anonymous"):
        resp = client.get("/3cx/lookup", query_string={"number": number}, headers=_basic(API_KEY))
        assert resp.status_code == 200 and resp.get_json()["contacts"] == []
    for query in ({}, {"number": ""}, {"number": "1" * 41}):
        resp = client.get("/3cx/lookup", query_string=query, headers=_basic(API_KEY))
        assert resp.status_code == 400 and resp.get_json()["status"] == 400


def test_3cx_rate_limit(redis_server, dbs):
    client = _client(redis_server, THREECX_RATE_LIMIT="3/minute")
    codes = [client.get("/3cx/lookup?number=0301234567", headers=_basic(API_KEY)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


# ------------------------------------------------------------------ 3CX journaling intake
CALL = {"Number": "030 1234567", "CallType": "Missed", "Agent": "101", "Duration": "00:00:00",
        "CallStartTimeUTC": "2026-11-30 14:05:00", "EntityId": "", "EntityType": ""}


def test_a_call_report_is_queued_once_per_call(client, dbs):
    resp = client.post("/3cx/calls", json=CALL, headers=_basic(API_KEY))
    assert resp.status_code == 202
    call_id = resp.get_json()["id"]
    assert queued(dbs[0]) == [("leads.journal_call", [call_id])]
    again = client.post("/3cx/calls", data=urlencode(CALL), content_type="application/x-www-form-urlencoded",
                        headers={"X-Api-Key": API_KEY})
    assert again.status_code == 200 and again.get_json() == {"status": "duplicate", "id": call_id}
    assert store.load(dbs[1], "call", call_id)["number"] == "+49301234567"


@pytest.mark.parametrize("change,status", [({"CallType": "Parked"}, 422), ({"CallStartTimeUTC": ""}, 422),
                                           ({"Duration": "forever"}, 422)])
def test_bad_call_reports_are_422_and_unauthenticated_401(client, dbs, change, status):
    assert client.post("/3cx/calls", json={**CALL, **change}, headers=_basic(API_KEY)).status_code == status
    assert client.post("/3cx/calls", json=CALL).status_code == 401
    assert client.post("/3cx/calls", data=b"{", content_type="application/json", headers=_basic(API_KEY)).status_code == 400
    assert queued(dbs[0]) == []


def test_metrics_count_the_inbound_requests(client, dbs):
    _post_lead(client)
    _post_lead(client)
    _post_lead(client, token="bad")
    client.get("/3cx/lookup?number=0307777777", headers=_basic(API_KEY))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'bitbylaw_inbound_requests_total{channel="lead",result="queued"} 1' in text
    assert 'bitbylaw_inbound_requests_total{channel="lead",result="duplicate"} 1' in text
    assert 'bitbylaw_inbound_requests_total{channel="lead",result="unauthorized"} 1' in text
    assert 'bitbylaw_inbound_requests_total{channel="lookup",result="miss"} 1' in text
    assert 'bitbylaw_queue_length{queue="leads"} 1' in text


# ------------------------------------------------------------------ messages and fuzzing
def test_the_inbound_messages_bind_to_their_registered_tasks(celery_app):
    import inspect

    from bitbylaw_tasks import messages

    celery_app.loader.import_default_modules()
    for message in (messages.lead_create("a" * 32), messages.call_journal("b" * 32)):
        task = celery_app.tasks[message.task_name]
        inspect.signature(task.run).bind(*message.args)
        assert celery_app.amqp.router.route({}, message.task_name)["queue"].name == "leads"
    assert "leads.rebuild_phone_index" in celery_app.tasks


from hypothesis import HealthCheck, given, settings as hsettings, strategies as st  # noqa: E402

_ctypes = st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain", "",
                           "application/json; charset=utf-8"])
_values = st.one_of(st.text(max_size=30), st.integers(), st.booleans(), st.none(),
                    st.lists(st.text(max_size=5), max_size=2))
_bodies = st.one_of(st.binary(max_size=300),
                    st.dictionaries(st.sampled_from(list(LEAD) + ["x", "consent", "name"]), _values).map(
                        lambda d: json.dumps(d).encode()))


@hsettings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ctype=_ctypes, body=_bodies, authed=st.booleans())
def test_no_body_makes_the_lead_endpoint_fail_with_5xx_and_only_202_queues(client, dbs, ctype, body, authed):
    before = dbs[0].llen("leads")
    resp = client.post("/vmh/webhook/lead", data=body, content_type=ctype,
                       headers={"X-Lead-Token": TOKEN} if authed else {})
    assert resp.status_code < 500 and resp.is_json
    assert resp.status_code in (200, 202, 400, 401, 413, 415, 422, 429)
    if not authed:
        assert resp.status_code == 401
    queued_now = dbs[0].llen("leads") - before
    assert queued_now == (1 if resp.status_code == 202 else 0)
    if resp.status_code == 429:
        dbs[1].flushdb()  # the fuzzer's many posts spent the address's budget


@hsettings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=st.text(max_size=45), method=st.sampled_from(["GET", "POST", "PUT"]))
def test_no_number_makes_the_lookup_fail_with_5xx(client, number, method):
    resp = client.open("/3cx/lookup", method=method, query_string={"number": number}, headers=_basic(API_KEY))
    assert resp.status_code in ((200, 400, 429) if method == "GET" else (405,)) and resp.is_json
    if resp.status_code == 200:
        doc = resp.get_json()
        assert doc["contacts"] == [] and (doc["number"] == "" or doc["number"].startswith("+"))
