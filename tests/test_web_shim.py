"""The shim skeleton: /healthz healthy and unhealthy (Redis stopped), JSON errors, size limit."""
import time

from bitbylaw_tasks.devredis import PrivateRedis
from bitbylaw_tasks.ops import heartbeat
from bitbylaw_tasks.settings import load_settings
from bitbylaw_tasks.web import create_app, health


def _settings_for(server: PrivateRedis, **extra):
    return load_settings({
        "REDIS_BROKER_URL": server.url(0), "REDIS_LOCK_URL": server.url(1),
        "REDIS_CALENDAR_URL": server.url(2), "REDIS_RESULT_URL": server.url(3),
        "WEBHOOK_MAX_BODY_BYTES": "1024", **extra,
    })


def test_healthz_503_when_redis_is_down():
    server = PrivateRedis().start()
    try:
        client = create_app(_settings_for(server)).test_client()
        assert client.get("/healthz").status_code == 200
        server.stop()
        response = client.get("/healthz")
        assert response.status_code == 503
        doc = response.get_json()
        assert doc["status"] == "unhealthy" and doc["redis"] == "unreachable" and doc["broker"] == "unreachable"
    finally:
        server.stop()


def test_stale_heartbeat_makes_it_unhealthy(redis_server, lock_redis):
    settings = _settings_for(redis_server, HEARTBEAT_STALE_AFTER="30")
    now = time.time()
    for component in heartbeat.COMPONENTS:
        heartbeat.record(lock_redis, component, now=now - 5)
    doc, healthy = health(settings, started_at=now - 3600, now=now)
    assert healthy, doc
    heartbeat.record(lock_redis, "worker:calendar", now=now - 100)
    doc, healthy = health(settings, started_at=now - 3600, now=now)
    assert not healthy and doc["heartbeats"]["worker:calendar"]["ok"] is False


def test_never_seen_heartbeat_is_tolerated_only_while_warming_up(redis_server, lock_redis):
    settings = _settings_for(redis_server, HEARTBEAT_STALE_AFTER="30")
    now = time.time()
    _, healthy_early = health(settings, started_at=now - 1, now=now)
    _, healthy_late = health(settings, started_at=now - 31, now=now)
    assert healthy_early and not healthy_late


def test_json_errors(redis_server):
    client = create_app(_settings_for(redis_server)).test_client()
    r404 = client.get("/nope")
    assert r404.status_code == 404 and r404.get_json()["status"] == 404
    r405 = client.post("/healthz")
    assert r405.status_code == 405 and r405.get_json()["error"] == "Method Not Allowed"
    assert "GET" in r405.headers["Allow"]


def test_request_size_limit(redis_server):
    app = create_app(_settings_for(redis_server))

    @app.post("/echo")
    def echo():
        from flask import request

        return {"n": len(request.get_data())}

    client = app.test_client()
    assert client.post("/echo", data=b"x" * 1000).status_code == 200
    big = client.post("/echo", data=b"x" * 5000)
    assert big.status_code == 413 and big.get_json()["status"] == 413


def test_metrics_endpoint_renders_prometheus_text(redis_server, lock_redis):
    from bitbylaw_tasks.metrics import record_api_call, record_sync

    record_sync(lock_redis, "beteiligte", "create", "ok", 0.12)
    record_sync(lock_redis, "beteiligte", "update", "failed", 3.0)
    record_api_call(lock_redis, "advoware")
    client = create_app(_settings_for(redis_server)).test_client()
    text = client.get("/metrics").get_data(as_text=True)
    assert 'bitbylaw_syncs_total{domain="beteiligte",path="create",result="ok"} 1' in text
    assert 'bitbylaw_syncs_total{domain="beteiligte",path="update",result="failed"} 1' in text
    assert 'bitbylaw_sync_duration_seconds_bucket{domain="beteiligte",le="0.15"} 1' in text
    assert 'bitbylaw_sync_duration_seconds_count{domain="beteiligte"} 2' in text
    assert 'bitbylaw_api_calls_total{system="advoware"} 1' in text
    assert 'bitbylaw_queue_length{queue="beteiligte"}' in text

