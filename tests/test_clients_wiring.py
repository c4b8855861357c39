"""How the product builds its clients and queues its messages: the simulators' credentials spelled out in
production code agree with the simulators, Google sits behind the shared rate gate, and an `Enqueuer`
message is one the installed kombu/Celery consume (the capture relies on kombu internals: kombu is pinned
in setup.cfg, and this test fails on an incompatible one)."""
from __future__ import annotations

import json
import time

import redis
from kombu import Connection

from bitbylaw_tasks.clients import SANDBOX_ADVOWARE_CREDENTIALS, SANDBOX_ESPOCRM_KEY, google_calendar_client
from bitbylaw_tasks.enqueue import Enqueuer, EntityTask, coalesce_key
from bitbylaw_tasks.settings import load_settings
from integrations.sandbox.advoware_auth import SANDBOX_CREDENTIALS
from integrations.sandbox.espocrm_state import USERS


def test_the_sandbox_credentials_in_production_code_are_the_simulators():
    assert SANDBOX_ADVOWARE_CREDENTIALS == SANDBOX_CREDENTIALS
    assert SANDBOX_ESPOCRM_KEY == next(u["apiKey"] for u in USERS if u["integration"])


def test_the_products_google_client_waits_when_another_process_paused_the_shared_gate(sandbox, redis_server):
    """Another worker's 429 from Google paused the shared `google` budget: this client holds off too.
    (Only a lower bound on the wait is asserted; a sleep is never shorter.)"""
    lock_url = redis_server.url(1)
    settings = load_settings({"REDIS_LOCK_URL": lock_url, "SANDBOX_GOOGLE_PORT": str(sandbox.servers["google"].port)})
    client = google_calendar_client(settings)
    redis.Redis.from_url(lock_url).set("rate_pause:google", "1", px=1500)
    started = time.monotonic()
    client.list_calendars()
    assert time.monotonic() - started >= 1.4
    assert client.calls == 1


def test_an_enqueued_message_is_a_celery_task_message_kombu_consumes(celery_app, redis_server):
    broker_url = redis_server.url(8)
    redis.Redis.from_url(broker_url).flushdb()
    celery_app.conf.broker_url, saved = broker_url, celery_app.conf.broker_url
    try:
        enqueuer = Enqueuer(celery_app)
        task = EntityTask("beteiligte.sync", ("6618aa00000000001", "update", "webhook"),
                          coalesce_key("beteiligte", "6618aa00000000001"))
        other = EntityTask("beteiligte.sync", ("not a template-safe id!", "update", "webhook"),
                           coalesce_key("beteiligte", "x"))
        assert enqueuer.enqueue([task, task, other]) == [True, False, True]
        with Connection(broker_url) as connection:
            queue = connection.SimpleQueue("beteiligte")
            received = [queue.get(timeout=2) for _ in range(2)]
            queue.close()
        for message, sent in zip(received, (task, other)):
            assert message.headers["task"] == "beteiligte.sync"
            assert message.headers["argsrepr"] and message.headers["id"]
            args, kwargs, _embed = message.decode()
            assert (tuple(args), kwargs) == (sent.args, {})
            assert json.loads(json.dumps(message.properties))["delivery_info"]["routing_key"] == "beteiligte"
    finally:
        celery_app.conf.broker_url = saved
        redis.Redis.from_url(broker_url).flushdb()
