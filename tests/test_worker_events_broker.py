"""The worker's consumer and broker transport (issue 15): Flower's task events still arrive, now several to a
message; kombu's channel keeps one Redis client, and its publishes and acks work across a Redis restart."""
from __future__ import annotations

import collections
import threading
import time

import pytest
import redis
from kombu import Consumer, Producer, Queue

import celeryconfig
from celery.events.event import get_exchange

from bitbylaw_tasks import broker, worker_consumer
from bitbylaw_tasks.celery_app import create_celery
from bitbylaw_tasks.devredis import PrivateRedis
from bitbylaw_tasks.settings import load_settings


def test_the_app_selects_the_transport_and_the_consumer(celery_app, celery_worker):
    assert celery_app.conf.broker_transport == celeryconfig.TRANSPORT
    assert celery_app.conf.worker_consumer == celeryconfig.CONSUMER
    assert isinstance(celery_worker.consumer, worker_consumer.Consumer)
    with celery_app.connection_for_write() as conn:
        assert isinstance(conn.default_channel, broker.Channel)


@pytest.mark.parametrize("url,expected", [
    ("redis://127.0.0.1:6379/0", celeryconfig.TRANSPORT),
    ("unix:///run/redis.sock?db=0", celeryconfig.TRANSPORT),
    ("rediss://example.org:6380/0?ssl_cert_reqs=required", None),  # kombu's own: its TLS set-up reads the scheme
])
def test_the_transport_is_only_chosen_for_plain_redis_urls(url, expected):
    assert celeryconfig.build(load_settings({"REDIS_BROKER_URL": url}))["broker_transport"] == expected


class _EventTap:
    """Every message on Celery's event exchange, as it was published (a dict, or a list for `task.multi`)."""

    def __init__(self, app):
        self.messages: list = []
        self._conn = app.connection_for_read()
        exchange = get_exchange(self._conn, name=app.conf.event_exchange)  # fanout on Redis, as Flower binds it
        self._queue = Queue("test-event-tap", exchange, routing_key="#", auto_delete=True, durable=False)
        self._consumer = Consumer(self._conn.default_channel, [self._queue], callbacks=[self._on_message],
                                  accept=["json"], no_ack=True)
        self._consumer.consume()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _on_message(self, body, message):
        self.messages.append(body)

    def _drain(self):
        while not self._stop.is_set():
            try:
                self._conn.drain_events(timeout=0.2)
            except TimeoutError:
                pass
            except OSError:
                if not self._stop.is_set():
                    raise

    def events(self) -> list[dict]:
        return [e for m in list(self.messages) for e in (m if isinstance(m, list) else [m])]

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._conn.release()


def test_task_events_reach_an_event_receiver_several_to_a_message(celery_app, celery_worker):
    """Flower's view: every task's received, started and succeeded events arrive; tasks that finish within the
    flush delay share messages (with Celery's consumer each event was a message of its own)."""
    tap = _EventTap(celery_app)
    try:
        time.sleep(0.5)  # the tap's subscription is in place
        ids = [celery_app.send_task("kommunikation.heartbeat").id for _ in range(12)]
        wanted = {(i, kind) for i in ids for kind in ("task-received", "task-started", "task-succeeded")}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            seen = {(e.get("uuid"), e.get("type")) for e in tap.events()}
            if wanted <= seen:
                break
            time.sleep(0.05)
        assert wanted <= seen, sorted(wanted - seen)
        sizes = collections.Counter()  # the worker's messages carrying these tasks' events, by events per message
        for message in list(tap.messages):
            batch = [e for e in (message if isinstance(message, list) else [message])
                     if e.get("uuid") in ids and e.get("type") != "task-sent"]  # task-sent: the publisher's own
            if batch:
                sizes[len(batch)] += 1
        events = sum(size * n for size, n in sizes.items())
        assert events == len(wanted)
        assert sum(sizes.values()) <= events / 6, sizes  # Celery's consumer: ~14 messages for these 36 events
    finally:
        tap.close()


def _app_on(server: PrivateRedis):
    return create_celery(load_settings({"REDIS_BROKER_URL": server.url(0), "REDIS_LOCK_URL": server.url(1),
                                        "REDIS_RESULT_URL": server.url(3)}))


def test_publishes_and_acks_reuse_one_client_and_survive_a_redis_restart():
    server = PrivateRedis().start()
    try:
        app = _app_on(server)
        admin = lambda: redis.Redis.from_url(server.url(0))  # noqa: E731
        queue = Queue("test-restart", routing_key="test-restart")
        with app.connection_for_write() as conn:
            channel = conn.default_channel
            producer = Producer(channel)

            def publish(n):
                # the default exchange, as the product's messages (a binding is state a restart loses)
                producer.publish({"n": n}, exchange="", routing_key="test-restart", serializer="json")

            def take():
                message = queue(channel).get(accept=["json"])  # basic_get with acks: an unacked entry
                assert message is not None
                assert admin().hexists(channel.unacked_key, message.delivery_tag)
                return message

            publish(1)
            client = channel._shared_client
            assert client is not None
            first = take()
            first.ack()
            assert not admin().hexists(channel.unacked_key, first.delivery_tag)
            publish(2)
            pending = take()
            server.restart()  # the pool's connections are dead now, and the unacked entry is gone
            pending.ack()  # must not raise: the pool reconnects
            publish(3)  # the queue was lost with the restart: this is the only message
            after = take()
            assert after.payload == {"n": 3}
            after.ack()
            assert not admin().hexists(channel.unacked_key, after.delivery_tag)
            assert channel._shared_client is client  # the same client throughout
    finally:
        server.stop()


def test_events_still_buffered_when_a_worker_stops_are_published(celery_app):
    """A warm shutdown right after tasks finished (within the flush delay) still publishes their events."""
    import os
    import signal
    import subprocess
    import sys

    server = PrivateRedis().start()
    worker = None
    try:
        app = _app_on(server)
        env = dict(os.environ, REDIS_BROKER_URL=server.url(0), REDIS_LOCK_URL=server.url(1),
                   REDIS_RESULT_URL=server.url(3))
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "bitbylaw_tasks.celery_app", "worker",
                                   "-Q", "kommunikation", "-n", "stopping@test", "-P", "threads", "-c", "4", "-E",
                                   "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not app.control.ping(destination=["stopping@test"], timeout=0.5):
            assert time.monotonic() < deadline and worker.poll() is None, "the worker did not start"
        tap = _EventTap(app)
        try:
            time.sleep(0.5)
            ids = [app.send_task("kommunikation.heartbeat").id for _ in range(6)]
            lock = redis.Redis.from_url(server.url(1))
            deadline = time.monotonic() + 15
            while lock.hget("heartbeat", "worker:kommunikation") is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(0.02)  # the tasks are done; their succeeded events wait for the flush
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0
            time.sleep(0.5)
            done = {e.get("uuid") for e in tap.events() if e.get("type") == "task-succeeded"}
            assert set(ids) <= done, set(ids) - done
        finally:
            tap.close()
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        server.stop()
