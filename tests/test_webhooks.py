"""The webhook endpoints: authentication, the rejection table, coalescing, broker outage, fuzzing.

The app under test publishes to its own broker database (no worker consumes
it), so the queue contents can be inspected exactly.
"""
import base64
import json
import string
import time

import pytest
import redis
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from kombu.serialization import loads

from bitbylaw_tasks.devredis import PrivateRedis
from bitbylaw_tasks.settings import load_settings
from bitbylaw_tasks.web import create_app
from bitbylaw_tasks.web.webhooks import register_secret, signature_for, verify_signature

BROKER_DB = 14
WEBHOOK_ID, SECRET = "6a1b2c3d4e5f60718", "s3cr3t-key"
ID_A, ID_B = "6a00000000000000a", "6a00000000000000b"


def _settings(server_url, **extra):
    return load_settings({
        "REDIS_BROKER_URL": server_url(BROKER_DB), "REDIS_LOCK_URL": server_url(1),
        "REDIS_RESULT_URL": server_url(3), "WEBHOOK_SECRETS": f"{WEBHOOK_ID}={SECRET}",
        "WEBHOOK_MAX_BODY_BYTES": "4096", **extra,
    })


@pytest.fixture
def broker(redis_server):
    client = redis.Redis.from_url(redis_server.url(BROKER_DB))
    client.flushdb()
    return client


@pytest.fixture
def client(redis_server, broker):
    return create_app(_settings(redis_server.url)).test_client()


def _queued(broker, queue: str = "beteiligte") -> list[tuple]:
    """(task name, args) of every message in `queue`, oldest first."""
    out = []
    for raw in reversed(broker.lrange(queue, 0, -1)):
        message = json.loads(raw)
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, kwargs, _ = loads(body, message["content-type"], message["content-encoding"])
        out.append((message["headers"]["task"], tuple(args)))
    return out


def _post(client, action, items, *, raw=None, headers=None, content_type="application/json"):
    body = raw if raw is not None else json.dumps(items).encode()
    hdrs = {"Signature": signature_for(WEBHOOK_ID, SECRET, body)}
    hdrs.update(headers or {})
    return client.post(f"/vmh/webhook/beteiligte/{action}", data=body, headers=hdrs, content_type=content_type)


def test_signed_update_enqueues_one_sync_per_distinct_id(client, broker):
    resp = _post(client, "update", [{"id": ID_A, "name": "x"}, {"id": ID_B}, {"id": ID_A, "titel": "Dr."}])
    assert resp.status_code == 200
    assert resp.get_json() == {"received": 3, "queued": 2, "coalesced": 1}
    assert _queued(broker) == [("beteiligte.sync", (ID_A, "update", "webhook")),
                               ("beteiligte.sync", (ID_B, "update", "webhook"))]


def test_many_webhooks_in_a_window_coalesce_to_one_task(client, broker):
    for _ in range(20):
        assert _post(client, "update", [{"id": ID_A}]).status_code == 200
    assert len(_queued(broker)) == 1


def test_a_change_after_the_task_started_queues_one_more(client, broker, redis_server):
    from bitbylaw_tasks.celery_app import create_celery
    from bitbylaw_tasks.enqueue import Enqueuer, coalesce_key

    _post(client, "update", [{"id": ID_A}])
    Enqueuer(create_celery(_settings(redis_server.url))).mark_started(coalesce_key("beteiligte", ID_A))
    _post(client, "update", [{"id": ID_A}])
    _post(client, "update", [{"id": ID_A}])
    assert len(_queued(broker)) == 2


def test_delete_is_not_coalesced_with_update(client, broker):
    _post(client, "update", [{"id": ID_A}])
    _post(client, "delete", [{"id": ID_A}])
    assert [args[1] for _, args in _queued(broker)] == ["update", "delete"]


def test_php_escaped_body_from_espocrm_is_accepted(client, broker):
    raw = b'[{"id":"6a00000000000000a","name":"M\\u00fcller \\/ Partner"}]'
    assert _post(client, "create", None, raw=raw).status_code == 200
    assert _queued(broker)[0][1] == (ID_A, "create", "webhook")


def test_shared_token_is_an_alternative(redis_server, broker):
    app_client = create_app(_settings(redis_server.url, WEBHOOK_SECRETS="", WEBHOOK_TOKEN="tok")).test_client()
    body = json.dumps([{"id": ID_A}]).encode()
    ok = app_client.post("/vmh/webhook/beteiligte/update", data=body, content_type="application/json",
                         headers={"X-Webhook-Token": "tok"})
    bad = app_client.post("/vmh/webhook/beteiligte/update", data=body, content_type="application/json",
                          headers={"X-Webhook-Token": "tok2"})
    assert (ok.status_code, bad.status_code) == (200, 401)


def test_secret_registered_in_redis_is_honoured(redis_server, broker):
    register_secret(redis.Redis.from_url(redis_server.url(1)), "feedfeedfeedfeed1", "other")
    app_client = create_app(_settings(redis_server.url)).test_client()
    body = json.dumps([{"id": ID_A}]).encode()
    resp = app_client.post("/vmh/webhook/beteiligte/update", data=body, content_type="application/json",
                           headers={"Signature": signature_for("feedfeedfeedfeed1", "other", body)})
    assert resp.status_code == 200


def test_a_webhook_registered_after_the_shim_loaded_its_secrets_is_accepted_at_once(redis_server, broker):
    """`espocrm setup` registers a webhook while the shim runs: its first delivery must not wait out the
    secrets cache (EspoCRM would retry a 401 only 10 minutes later); unknown ids stay refused."""
    lock = redis.Redis.from_url(redis_server.url(1))
    lock.hdel("webhook:secrets", "feedfeedfeedfeed2")
    app_client = create_app(_settings(redis_server.url)).test_client()
    assert _post(app_client, "update", [{"id": ID_A}]).status_code == 200  # the shim has loaded its cache
    register_secret(lock, "feedfeedfeedfeed2", "fresh")
    body = json.dumps([{"id": ID_B}]).encode()
    headers = {"Signature": signature_for("feedfeedfeedfeed2", "fresh", body)}
    time.sleep(0.6)  # past the re-read throttle (0.5 s), far below the 30 s cache
    resp = app_client.post("/vmh/webhook/beteiligte/update", data=body, content_type="application/json",
                           headers=headers)
    assert resp.status_code == 200
    forged = {"Signature": signature_for("feedfeedfeedfee99", "fresh", body)}
    assert app_client.post("/vmh/webhook/beteiligte/update", data=body, content_type="application/json",
                           headers=forged).status_code == 401
    lock.hdel("webhook:secrets", "feedfeedfeedfeed2")


def test_no_authentication_configured_fails_closed(redis_server, broker):
    app_client = create_app(_settings(redis_server.url, WEBHOOK_SECRETS="")).test_client()
    redis.Redis.from_url(redis_server.url(1)).delete("webhook:secrets")
    resp = app_client.post("/vmh/webhook/beteiligte/update", data=b'[{"id":"6a00000000000000a"}]',
                           content_type="application/json")
    assert resp.status_code == 401 and _queued(broker) == []


BAD_REQUESTS = [
    ("unsigned", dict(headers={"Signature": ""}), 401),
    ("wrong secret", dict(headers={"Signature": signature_for(WEBHOOK_ID, "nope", b'[{"id":"6a00000000000000a"}]')}), 401),
    ("unknown webhook id", dict(headers={"Signature": signature_for("0000000000000000f", SECRET, b'[{"id":"6a00000000000000a"}]')}), 401),
    ("garbage signature", dict(headers={"Signature": "%%%not-base64"}), 401),
    ("invalid json", dict(raw=b"[{"), 400),
    ("not an array", dict(raw=b'{"id":"6a00000000000000a"}'), 400),
    ("item not an object", dict(raw=b'["6a00000000000000a"]'), 400),
    ("item without id", dict(raw=b'[{"name":"x"}]'), 400),
    ("id not a string", dict(raw=b'[{"id":17}]'), 400),
    ("id of the wrong shape", dict(raw=b'[{"id":"../../etc"}]'), 400),
    ("one bad item spoils the batch", dict(raw=b'[{"id":"6a00000000000000a"},{"id":""}]'), 400),
    ("wrong content type", dict(content_type="text/plain"), 415),
    ("too large", dict(raw=b"[" + b'{"id":"6a00000000000000a"},' * 300 + b'{"id":"6a00000000000000a"}]'), 413),
]


@pytest.mark.parametrize("case,kwargs,status", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_rejections_enqueue_nothing(client, broker, case, kwargs, status):
    items = [{"id": ID_A}]
    resp = _post(client, "update", items, **kwargs)
    assert resp.status_code == status, resp.get_json()
    assert resp.get_json()["status"] == status
    assert _queued(broker) == []


def test_wrong_method_and_unknown_route(client, broker):
    assert client.get("/vmh/webhook/beteiligte/update").status_code == 405
    assert _post(client, "merge", [{"id": ID_A}]).status_code == 404
    assert client.post("/vmh/webhook/other/update").status_code == 404
    assert _queued(broker) == []


def test_broker_down_answers_503():
    server = PrivateRedis().start()
    app_client = create_app(_settings(server.url)).test_client()
    server.stop()
    resp = _post(app_client, "update", [{"id": ID_A}])
    assert resp.status_code == 503 and resp.get_json()["status"] == 503


def test_the_shim_starts_while_redis_is_down_and_queues_once_it_is_back():
    """The shim's enqueuer opens its one broker connection on the first webhook, not when the app is built."""
    server = PrivateRedis()
    try:
        app_client = create_app(_settings(server.url)).test_client()
        assert _post(app_client, "update", [{"id": ID_A}]).status_code == 503
        server.start()
        resp = _post(app_client, "update", [{"id": ID_A}])
        assert resp.status_code == 200 and resp.get_json()["queued"] == 1
        assert _queued(redis.Redis.from_url(server.url(BROKER_DB))) == [("beteiligte.sync", (ID_A, "update", "webhook"))]
    finally:
        server.stop()


def test_the_shim_keeps_one_broker_connection_and_survives_a_redis_restart():
    """One connection for every webhook a shim worker takes (no pool check per call); a connection the server
    dropped (here: Redis restarted) is reconnected by the next webhook, which is queued, not answered 503."""
    server = PrivateRedis().start()
    try:
        app_client = create_app(_settings(server.url)).test_client()
        admin = redis.Redis.from_url(server.url(BROKER_DB))
        assert _post(app_client, "update", [{"id": ID_A}]).status_code == 200  # opens what the shim keeps
        before = admin.info("stats")["total_connections_received"]
        for i in range(5):
            assert _post(app_client, "update", [{"id": f"6a0000000000000{i:02d}"}]).status_code == 200
        assert admin.info("stats")["total_connections_received"] == before
        server.restart()
        admin.close()
        resp = _post(app_client, "update", [{"id": ID_B}])
        assert resp.status_code == 200 and resp.get_json()["queued"] == 1
        assert _queued(redis.Redis.from_url(server.url(BROKER_DB))) == [("beteiligte.sync", (ID_B, "update", "webhook"))]
    finally:
        server.stop()


def test_verify_signature_is_exact():
    body = b'[{"id":"x"}]'
    good = signature_for(WEBHOOK_ID, SECRET, body)
    assert verify_signature(good, body, {WEBHOOK_ID: SECRET})
    assert not verify_signature(good, body + b" ", {WEBHOOK_ID: SECRET})
    assert not verify_signature(good, body, {WEBHOOK_ID: SECRET + "x"})


_header_values = st.text(alphabet=string.printable.replace("\n", "").replace("\r", ""), max_size=60)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300), st.builds(lambda v: json.dumps(v).encode(), st.recursive(
           st.none() | st.booleans() | st.integers() | st.text(max_size=20),
           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(["id", "name", "x"]), c, max_size=3),
           max_leaves=8))),
       action=st.sampled_from(["create", "update", "delete", "x"]),
       sign=st.booleans(), signature=_header_values,
       content_type=st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-8", ""]))
def test_fuzz_never_5xx_and_nothing_queued_unless_valid_and_signed(client, broker, body, action, sign, signature,
                                                                   content_type):
    broker.flushdb()
    headers = {"Signature": signature_for(WEBHOOK_ID, SECRET, body) if sign else signature}
    resp = client.post(f"/vmh/webhook/beteiligte/{action}", data=body, headers=headers,
                       content_type=content_type or None)
    assert resp.status_code < 500
    queued = _queued(broker)
    if resp.status_code != 200:
        assert queued == []
    else:
        assert sign and action != "x" and content_type.startswith("application/json")
        items = json.loads(body)
        assert isinstance(items, list) and {a[0] for _, a in queued} == {i["id"] for i in items}
