"""A real worker runs a task on each queue; task names route to their queue; heartbeats reach /healthz."""
import time

import pytest

import celeryconfig
from bitbylaw_tasks.ops import heartbeat
from bitbylaw_tasks.settings import load_settings


@pytest.mark.parametrize("name,queue", [
    ("beteiligte.sync", "beteiligte"), ("beteiligte.sweep", "beteiligte"),
    ("kommunikation.sync", "kommunikation"), ("calendar.sync_employee", "calendar"),
    ("calendar.sync_all", "calendar"), ("ops.heartbeat", "default"),
])
def test_task_names_route_to_their_queue(celery_app, name, queue):
    route = celery_app.amqp.router.route({}, name)
    assert route["queue"].name == queue


def test_reliability_settings(celery_app):
    conf = celery_app.conf
    assert conf.task_acks_late and conf.worker_prefetch_multiplier == 1
    assert conf.task_soft_time_limit < conf.task_time_limit < conf.broker_transport_options["visibility_timeout"]
    assert conf.result_backend_transport_options["visibility_timeout"] == conf.visibility_timeout
    assert conf.worker_send_task_events and conf.task_send_sent_event
    assert conf.accept_content == ["json"]
    assert celeryconfig.max_countdown(load_settings({})) < conf.visibility_timeout


def test_each_queue_is_served_by_a_real_worker(celery_app, celery_worker, lock_redis):
    """ops.heartbeat runs on `default` and fans out to the three domain queues, each run by the worker."""
    lock_redis.delete(heartbeat.KEY)
    start = time.time()
    celery_app.send_task("ops.heartbeat")
    deadline = time.time() + 15
    while time.time() < deadline:
        report = heartbeat.report(lock_redis, stale_after=60)
        if all(entry["ok"] and entry["last_seen"] >= start - 1 for entry in report.values()):
            break
        time.sleep(0.1)
    report = heartbeat.report(lock_redis, stale_after=60)
    assert all(entry["ok"] for entry in report.values()), report


def test_heartbeat_shows_in_healthz(celery_app, celery_worker, lock_redis):
    from bitbylaw_tasks.settings import get_settings
    from bitbylaw_tasks.web import create_app

    lock_redis.delete(heartbeat.KEY)
    client = create_app(get_settings()).test_client()
    celery_app.send_task("ops.heartbeat")
    deadline = time.time() + 15
    doc = {}
    while time.time() < deadline:
        doc = client.get("/healthz").get_json()
        if all(v["last_seen"] for v in doc["heartbeats"].values()):
            break
        time.sleep(0.1)
    assert doc["redis"] == "ok" and doc["broker"] == "ok"
    assert set(doc["heartbeats"]) == set(heartbeat.COMPONENTS)
    assert all(v["ok"] for v in doc["heartbeats"].values()), doc
    assert client.get("/healthz").status_code == 200
