"""EspoCRM webhook endpoints: `POST /vmh/webhook/beteiligte/{create,update,delete}` and
`POST /vmh/webhook/adressen/{create,update,delete}` (CAdresse: one `adressen.route` per address id).

Authenticate (EspoCRM's `Signature` header, or a shared `X-Webhook-Token`),
validate the whole body, then enqueue one coalesced `beteiligte.sync` per
distinct id in a single Redis round trip. Nothing is queued unless the whole
request is valid and authenticated; client mistakes get a 4xx JSON error,
never a 5xx; an unreachable broker gets 503 so EspoCRM retries.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import threading
import time

import redis
from flask import Flask

from bitbylaw_tasks import messages
from bitbylaw_tasks.enqueue import Enqueuer, QueueUnavailable
from bitbylaw_tasks.redis_clients import lock_redis
from bitbylaw_tasks.settings import Settings

ACTIONS = ("create", "update", "delete")
SECRETS_KEY = "webhook:secrets"  # hash webhookId -> secretKey, filled by `bitbylaw webhooks register`
SECRETS_CACHE_SECONDS = 30.0
UNKNOWN_RELOAD_S = 0.5  # at most this often, a signature naming an unknown webhook re-reads Redis
ENTITY_ID = re.compile(r"^(?:[0-9a-f]{17}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")


class WebhookRejected(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def signature_for(webhook_id: str, secret: str, body: bytes) -> str:
    """EspoCRM's header value: base64(webhookId + ':' + hex(HMAC-SHA256(body, secret)))."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return base64.b64encode(f"{webhook_id}:{digest}".encode()).decode()


def parse_signature(header: str) -> tuple[str, str] | None:
    """(webhook id, hex digest) a `Signature` header claims (not yet verified), or None when malformed."""
    try:
        decoded = base64.b64decode(header.encode("ascii"), validate=True).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        return None
    webhook_id, sep, digest = decoded.partition(":")
    return (webhook_id, digest) if sep and webhook_id else None


def signed_webhook_id(header: str) -> str | None:
    """The webhook id a `Signature` header claims, or None."""
    parsed = parse_signature(header)
    return parsed[0] if parsed else None


def verify_signature(header: str, body: bytes, secrets: dict[str, str]) -> bool:
    """True when `header` is a valid EspoCRM signature of `body` by a known webhook (constant-time)."""
    parsed = parse_signature(header)
    secret = secrets.get(parsed[0]) if parsed else None
    if secret is None:
        return False
    digest = parsed[1]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), digest.encode())


def authenticate(headers, body: bytes, secrets: dict[str, str], token: str) -> None:
    """Raise `WebhookRejected(401)` unless the signature or the shared token is valid."""
    if not secrets and not token:
        raise WebhookRejected(401, "webhook authentication is not configured (WEBHOOK_SECRETS / WEBHOOK_TOKEN)")
    given_token = headers.get("X-Webhook-Token", "")
    if token and given_token and hmac.compare_digest(given_token.encode(), token.encode()):
        return
    signature = headers.get("Signature", "")
    if signature and secrets and verify_signature(signature, body, secrets):
        return
    raise WebhookRejected(401, "missing or invalid webhook signature")


def parse_ids(body: bytes) -> list[str]:
    """The entity ids of an EspoCRM webhook body (JSON array of objects with an `id`), in order."""
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected(400, "body is not valid JSON") from None
    if not isinstance(items, list):
        raise WebhookRejected(400, "body must be a JSON array")
    ids = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise WebhookRejected(400, f"item {index} is not an object")
        entity_id = item.get("id")
        if not isinstance(entity_id, str) or not ENTITY_ID.match(entity_id):
            raise WebhookRejected(400, f"item {index} has no valid id")
        ids.append(entity_id)
    return ids


class SecretStore:
    """Webhook secrets from settings plus those registered in Redis, cached briefly per process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._cached: dict[str, str] = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def get(self, webhook_id: str | None = None) -> dict[str, str]:
        """The known secrets; read again from Redis when the cache is old, or when a signature names a
        webhook the cache does not know yet (one just registered by `espocrm setup`: without this its
        deliveries were refused until the cache expired, and EspoCRM retries only 10 minutes later)."""
        now = time.monotonic()
        with self._lock:
            unknown = (webhook_id is not None and webhook_id not in self._cached
                       and webhook_id not in self.settings.webhook_secrets
                       and now - self._loaded_at > UNKNOWN_RELOAD_S)
            if unknown or now - self._loaded_at > SECRETS_CACHE_SECONDS:
                try:
                    raw = lock_redis(self.settings).hgetall(SECRETS_KEY)
                    self._cached = {k.decode(): v.decode() for k, v in raw.items()}
                    self._loaded_at = now
                except redis.RedisError:
                    pass  # keep the last known set; settings still apply
            return {**self._cached, **self.settings.webhook_secrets}


def register_secret(client: redis.Redis, webhook_id: str, secret: str) -> None:
    """Remember a webhook's secret (from EspoCRM's `POST Webhook` answer) for every web process."""
    client.hset(SECRETS_KEY, webhook_id, secret)


class WebhookEndpoint:
    """WSGI middleware serving `/vmh/webhook/beteiligte/<action>` before Flask sees the request.

    The hot path of the shim, kept as plain WSGI: Flask's request machinery
    costs about as much as the whole enqueue (docs/PERFORMANCE.md §4), and the
    shim must keep up with at least 0.75x a bare Flask endpoint (SPEC §9).
    Everything else (unknown actions included) goes on to the Flask app, whose
    JSON error handlers answer it.
    """

    def __init__(self, app, settings: Settings, enqueuer: Enqueuer):
        self.app = app
        self.settings = settings
        self.enqueuer = enqueuer
        self.secrets = SecretStore(settings)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        prefix = next((p for p in ROUTES if path.startswith(p)), None)
        action = path[len(prefix):] if prefix else None
        if action not in ACTIONS:
            return self.app(environ, start_response)
        status, doc, extra = self.handle(environ, action, ROUTES[prefix])
        body = json.dumps(doc).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra]
        start_response(f"{status} {HTTP_REASONS[status]}", headers)
        return [body]

    def handle(self, environ, action: str, build=None) -> tuple[int, dict, list]:
        if environ.get("REQUEST_METHOD") != "POST":
            return 405, _error(405, "Method Not Allowed"), [("Allow", "POST")]
        limit = self.settings.webhook_max_body_bytes
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return 400, _error(400, "bad Content-Length"), []
        if length > limit:
            return 413, _error(413, "Request Entity Too Large"), []
        body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read(limit + 1)
        if len(body) > limit:
            return 413, _error(413, "Request Entity Too Large"), []
        try:
            mimetype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
            if mimetype != "application/json":
                raise WebhookRejected(415, "Content-Type must be application/json")
            headers = {"Signature": environ.get("HTTP_SIGNATURE", ""),
                       "X-Webhook-Token": environ.get("HTTP_X_WEBHOOK_TOKEN", "")}
            authenticate(headers, body, self.secrets.get(signed_webhook_id(headers.get("Signature", ""))), self.settings.webhook_token)
            ids = parse_ids(body)
        except WebhookRejected as exc:
            return exc.status, _error(exc.status, exc.message), []
        build = build or ROUTES[PREFIX]
        tasks = [build(entity_id, action) for entity_id in ids]
        try:
            queued = sum(self.enqueuer.enqueue(tasks))
        except QueueUnavailable:
            return 503, _error(503, "queue unavailable, retry later"), []
        return 200, {"received": len(ids), "queued": queued, "coalesced": len(ids) - queued}, []


PREFIX = "/vmh/webhook/beteiligte/"
ADRESSEN_PREFIX = "/vmh/webhook/adressen/"
ROUTES = {PREFIX: lambda entity_id, action: messages.beteiligte_sync(entity_id, action, "webhook"),
          ADRESSEN_PREFIX: lambda adresse_id, action: messages.adressen_route(adresse_id, action)}
HTTP_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 405: "Method Not Allowed",
                413: "Request Entity Too Large", 415: "Unsupported Media Type", 503: "Service Unavailable"}


def _error(status: int, message: str) -> dict:
    return {"error": message, "status": status}


def register(app: Flask, settings: Settings) -> None:
    """Put the webhook endpoint in front of `app` (see `WebhookEndpoint`)."""
    from bitbylaw_tasks.celery_app import create_celery

    app.wsgi_app = WebhookEndpoint(app.wsgi_app, settings, Enqueuer(create_celery(settings), single_connection=True))
