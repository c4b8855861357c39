"""The Flask webhook shim: `create_app(settings)` builds it (webhooks, health, JSON errors, size limit).

Thin by design (SPEC §7): validate, authenticate, de-duplicate, enqueue,
answer. No sync logic runs in the web process.
"""
from __future__ import annotations

import time

import redis
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from bitbylaw_tasks.ops import heartbeat
from bitbylaw_tasks.redis_clients import client_for
from bitbylaw_tasks.sentry import init_sentry
from bitbylaw_tasks.settings import Settings
from bitbylaw_tasks.timefmt import iso_utc


def _redis_ok(url: str) -> bool:
    try:
        return bool(client_for(url).ping())
    except (redis.RedisError, OSError):
        return False


def health(settings: Settings, started_at: float | None, now: float | None = None) -> tuple[dict, bool]:
    """The /healthz document and whether the system is healthy (HTTP 200 rather than 503).

    `status` is `ok`, `warming_up` or `unhealthy`. Warming up: Redis and the
    broker answer, nothing is stale, and some component has not sent its first
    heartbeat yet while the system started less than HEARTBEAT_STALE_AFTER ago
    (`started_at`; None = unknown, no warm-up); that counts as healthy (200,
    exit 0), but is not `ok`. `bitbylaw health` builds the same document.
    Timestamps are ISO-8601 (UTC).
    """
    now = time.time() if now is None else now
    lock_ok = _redis_ok(settings.lock_redis_url)
    broker_ok = _redis_ok(settings.broker_url)
    beats = {}
    stale = never_seen = False
    if lock_ok:
        beats = heartbeat.report(client_for(settings.lock_redis_url), settings.heartbeat_stale_after, now)
        for entry in beats.values():
            never_seen |= entry["last_seen"] is None
            stale |= entry["last_seen"] is not None and not entry["ok"]
            entry["last_seen"] = iso_utc(entry["last_seen"])
    warming_up = never_seen and started_at is not None and now - started_at < settings.heartbeat_stale_after
    healthy = lock_ok and broker_ok and not stale and (warming_up or not never_seen)
    doc = {
        "status": ("warming_up" if warming_up else "ok") if healthy else "unhealthy",
        "redis": "ok" if lock_ok else "unreachable",
        "broker": "ok" if broker_ok else "unreachable",
        "started_at": iso_utc(started_at),
        "checked_at": iso_utc(now),
        "heartbeats": beats,
    }
    return doc, healthy


def create_app(settings: Settings) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.webhook_max_body_bytes
    app.config["BITBYLAW_SETTINGS"] = settings
    app.json.sort_keys = False
    started_at = time.time()

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        response = jsonify({"error": exc.name, "status": exc.code, "detail": exc.description})
        response.status_code = exc.code or 500
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.get("/metrics")
    def metrics_view():
        from celeryconfig import QUEUES
        from bitbylaw_tasks.metrics import render

        try:
            text = render(client_for(settings.lock_redis_url), client_for(settings.broker_url), QUEUES)
        except (redis.RedisError, OSError):
            return jsonify({"error": "metrics store unreachable", "status": 503}), 503
        return text, 200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}

    @app.get("/healthz")
    def healthz():
        doc, healthy = health(settings, started_at)
        return jsonify(doc), (200 if healthy else 503)

    from bitbylaw_tasks.web import status

    app.register_blueprint(status.blueprint(settings))
    from bitbylaw_tasks.proxy import wsgi as proxy_wsgi

    proxy_wsgi.register(app, settings)
    from bitbylaw_tasks.web import inbound

    inbound.register(app, settings)
    from bitbylaw_tasks.web import webhooks

    # Last, so outermost: EspoCRM's webhooks (the hot path, SPEC §9's 0.75x bar) meet no other path check.
    webhooks.register(app, settings)
    return app


def wsgi_app() -> Flask:
    """Entry point for gunicorn (`bitbylaw_tasks.web:wsgi_app()`): settings from the environment."""
    from bitbylaw_tasks.logs import configure_logging
    from bitbylaw_tasks.settings import get_settings

    from bitbylaw_tasks.domain_settings import check_domain_settings

    settings = get_settings()
    check_domain_settings(settings)  # e.g. LEAD_FIELD_MAP's targets: a bad value stops the web process too
    configure_logging(settings)
    init_sentry(settings, component="web")
    return create_app(settings)
