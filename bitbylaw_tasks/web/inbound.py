"""Inbound endpoints of the shim: `POST /vmh/webhook/lead` (website forms) and `/3cx/*` (telephony), SPEC §12.

Thin like the webhooks (SPEC §7): authenticate, rate-limit per address, validate,
de-duplicate, store the validated input in Redis under an id, queue that id on
`leads`, answer. Client mistakes get a 4xx JSON error, never a 5xx; a broker or
Redis that cannot be reached gets 503 (nothing was queued). The 3CX lookup is
plain WSGI in front of Flask (`LookupEndpoint`), answered from the phone index
(docs/inbound-channels.md).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from datetime import datetime, timezone
from urllib.parse import parse_qs

import redis
from flask import Blueprint, Flask, current_app, jsonify, request

from bitbylaw_tasks import messages
from bitbylaw_tasks.enqueue import Enqueuer, QueueUnavailable
from bitbylaw_tasks.inbound import calls, lookup, store
from bitbylaw_tasks.inbound.lead_form import FormRejected, parse_body, submission_from_form
from bitbylaw_tasks.metrics import record_inbound as count
from bitbylaw_tasks.redis_clients import lock_redis
from bitbylaw_tasks.settings import Settings

log = logging.getLogger(__name__)
bp = Blueprint("inbound", __name__)


def _error(status: int, message: str, headers: dict | None = None):
    return jsonify({"error": message, "status": status}), status, headers or {}


def _state():
    return current_app.extensions["bitbylaw_inbound"]


class InboundState:
    """Per app: settings, the enqueuer, the per-address limiters."""

    def __init__(self, settings: Settings, enqueuer: Enqueuer):
        self.settings = settings
        self.enqueuer = enqueuer
        self.lead_limiter = store.AddressLimiter(settings.lock_redis_url, "lead", settings.lead_rate_limit)
        self.threecx_limiter = store.AddressLimiter(settings.lock_redis_url, "3cx", settings.threecx_rate_limit)
        self.redis = lock_redis(settings)


def lead_authenticated(headers, body: bytes, token: str, secret: str) -> bool:
    """`X-Lead-Token` equals LEAD_TOKEN, or `X-Lead-Signature` is `sha256=<hex HMAC of body>` (constant-time)."""
    given = headers.get("X-Lead-Token", "")
    if token and given and hmac.compare_digest(given.encode(), token.encode()):
        return True
    signature = headers.get("X-Lead-Signature", "")
    if secret and signature:
        digest = signature.split("=", 1)[1] if signature.startswith("sha256=") else signature
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), digest.strip().lower().encode())
    return False


def threecx_authenticated(headers, key: str) -> bool:
    """The template's key as Basic auth password (any user name) or as `X-Api-Key`."""
    if not key:
        return False
    given = headers.get("X-Api-Key", "")
    auth = headers.get("Authorization", "")
    if not given and auth[:6].lower() == "basic ":
        try:
            given = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError, ValueError):
            given = ""
    return bool(given) and hmac.compare_digest(given.encode(), key.encode())


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _queue(state: InboundState, kind: str, claim: str, ttl: int, data: dict, message):
    """Claim, store, enqueue; (status, doc). A duplicate claim answers with the first id; 503 when down."""
    item_id = store.new_id()
    try:
        first = store.claim(state.redis, kind, claim, item_id, ttl)
        if first is not None:
            count(state.redis, kind, "duplicate")
            return 200, {"status": "duplicate", "id": first}
        store.save(state.redis, kind, item_id, data)
    except redis.RedisError:
        return 503, {"error": "store unavailable, retry later", "status": 503}
    try:
        state.enqueuer.enqueue([message(item_id)])
    except QueueUnavailable:
        try:
            store.release(state.redis, kind, claim, item_id)
        except redis.RedisError:
            pass
        count(state.redis, kind, "unavailable")
        return 503, {"error": "queue unavailable, retry later", "status": 503}
    count(state.redis, kind, "queued")
    return 202, {"status": "queued", "id": item_id}


def _limited(limiter: store.AddressLimiter, address: str):
    try:
        if limiter.hit(address):
            return None
        return _error(429, "too many requests from this address", {"Retry-After": str(limiter.retry_after(address))})
    except redis.RedisError:
        return _error(503, "rate limit store unavailable, retry later")


@bp.post("/vmh/webhook/lead")
def lead():
    state = _state()
    settings = state.settings
    body = request.get_data(cache=False)
    if not (settings.lead_token or settings.lead_hmac_secret):
        return _error(401, "lead authentication is not configured (LEAD_TOKEN / LEAD_HMAC_SECRET)")
    if not lead_authenticated(request.headers, body, settings.lead_token, settings.lead_hmac_secret):
        count(state.redis, "lead", "unauthorized")
        return _error(401, "missing or invalid X-Lead-Token / X-Lead-Signature")
    try:
        sub = submission_from_form(request.content_type or "", body, settings.lead_field_map,
                                   settings.lead_honeypot_field, settings.inbound_phone_region)
        fields_ip = ""
        if settings.lead_client_ip_field:
            fields_ip = parse_body(request.content_type or "", body).get(settings.lead_client_ip_field, "")
    except FormRejected as exc:
        count(state.redis, "lead", "rejected")
        return _error(exc.status, exc.message)
    limited = _limited(state.lead_limiter, fields_ip.strip()[:64] or request.remote_addr or "?")
    if limited is not None:
        count(state.redis, "lead", "rate_limited")
        return limited
    if sub is None:  # the honeypot: a bot is told it worked
        count(state.redis, "lead", "spam")
        return jsonify({"status": "queued"}), 202
    data = {"lead": sub.to_dict(), "receivedAt": _now()}
    status, doc = _queue(state, "lead", sub.fingerprint(), settings.lead_dedupe_seconds, data, messages.lead_create)
    return jsonify(doc), status


@bp.post("/3cx/calls")
def threecx_calls():
    state = _state()
    settings = state.settings
    if not threecx_authenticated(request.headers, settings.threecx_api_key):
        count(state.redis, "call", "unauthorized")
        return _error(401, "missing or invalid API key", {"WWW-Authenticate": 'Basic realm="bitbylaw 3cx"'})
    limited = _limited(state.threecx_limiter, request.remote_addr or "?")
    if limited is not None:
        count(state.redis, "call", "rate_limited")
        return limited
    try:
        report = calls.parse_report(request.content_type or "", request.get_data(cache=False),
                                    settings.inbound_phone_region)
    except FormRejected as exc:
        count(state.redis, "call", "rejected")
        return _error(exc.status, exc.message)
    status, doc = _queue(state, "call", report.key, 30 * 86400, report.to_dict(), messages.call_journal)
    return jsonify(doc), status


LOOKUP_PATH = "/3cx/lookup"
HTTP_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 405: "Method Not Allowed",
                429: "Too Many Requests", 503: "Service Unavailable"}


class LookupEndpoint:
    """WSGI middleware serving `GET /3cx/lookup` before Flask sees the request: the phone is ringing (SPEC §12:
    p99 < 100 ms at 50 concurrent lookups), and Flask's request machinery costs as much as the lookup itself
    (the webhooks' reason too, web/webhooks.py). Everything else goes on to the Flask app."""

    def __init__(self, app, settings: Settings, client: redis.Redis):
        self.app = app
        self.settings = settings
        self.redis = client

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != LOOKUP_PATH:
            return self.app(environ, start_response)
        status, doc, extra = self.handle(environ)
        body = json.dumps(doc).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra]
        start_response(f"{status} {HTTP_REASONS[status]}", headers)
        return [body]

    def handle(self, environ) -> tuple[int, dict, list]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return 405, {"error": "Method Not Allowed", "status": 405}, [("Allow", "GET, HEAD")]
        headers = {"X-Api-Key": environ.get("HTTP_X_API_KEY", ""), "Authorization": environ.get("HTTP_AUTHORIZATION", "")}
        if not threecx_authenticated(headers, self.settings.threecx_api_key):
            return 401, {"error": "missing or invalid API key", "status": 401}, [
                ("WWW-Authenticate", 'Basic realm="bitbylaw 3cx"')]
        raw = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).get("number", [""])[-1]
        if raw.startswith(" "):  # an unencoded "+" of an international number arrives as a space
            raw = "+" + raw.lstrip()
        if not raw or len(raw) > 40:
            return 400, {"error": "query parameter number is required (at most 40 characters)", "status": 400}, []
        try:
            return lookup.answer(self.settings, self.redis, raw, environ.get("REMOTE_ADDR") or "?")
        except redis.RedisError:
            return 503, {"error": "phone index unavailable", "status": 503}, []


def register(app: Flask, settings: Settings) -> None:
    """Add the inbound endpoints to `app`: the blueprint, and the lookup in front of it."""
    from bitbylaw_tasks.celery_app import create_celery

    state = InboundState(settings, Enqueuer(create_celery(settings)))
    app.extensions["bitbylaw_inbound"] = state
    app.register_blueprint(bp)
    app.wsgi_app = LookupEndpoint(app.wsgi_app, settings, state.redis)
