"""The worker's consumer (issue 15): Flower's task events still arrive, now several to a message, and a
warm shutdown still publishes the buffered ones."""
from __future__ import annotations

import collections
import threading
import time

import redis
from kombu import Consumer, Queue

import celeryconfig
from celery.events.event import get_exchange

from bitbylaw_tasks import worker_consumer
from bitbylaw_tasks.celery_app import create_celery
from bitbylaw_tasks.devredis import PrivateRedis
from bitbylaw_tasks.settings import load_settings


def test_the_app_selects_the_consumer_and_keeps_kombus_own_transport(celery_app, celery_worker):
    assert celery_app.conf.worker_consumer == celeryconfig.CONSUMER
    assert isinstance(celery_worker.consumer, worker_consumer.Consumer)
    with celery_app.connection() as conn:  # Flower picks its broker page by this URL's scheme
        assert conn.as_uri().startswith("redis://")


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
