"""One proxied request, from the caller's key to Advoware's answer: authenticate, apply the rules, charge the
budget, forward through the product's Advoware client, answer, audit. No web framework in here (`wsgi.py`
adapts it); `AdvowareProxy.handle` never raises for anything a caller sent.

The order of the checks: key (401) → method (405) → path (403/404) → scope and allow-list (403) → body size
(413, read only after the key was accepted) → body shape (400/415) → budget (429) → Advoware (its status,
or 502/504). Every answer, refusals included, carries its audit entry; `record(answer)` writes it (the web
adapter does so right after the answer is sent, off the caller's wait).

Redis round trips: a key this process has seen comes from its `KeyMemory` (its fixed fields only); that it is
still active is checked in Redis on every call all the same, at the last moment before the call's fate is
decided: for a forwarded call by the one admission script (key, pause, three windows: `budget.py`); before
reading a body, and before any refusal, by a `lookup` — so a revoked key gets 401 on its very next call,
whatever it asks. A forwarded GET costs one round trip before the answer (and the audit's one after it).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import redis

from bitbylaw_tasks.proxy import audit, keys, rules
from bitbylaw_tasks.proxy.budget import KeyGone, ProxyBudget, retry_after_header
from bitbylaw_tasks.proxy.rules import Refusal, refuse
from integrations.advoware import AdvowareClient, AnswerTooLarge, RawAnswer
from integrations.errors import ApiError, RateLimited, TimedOut

log = logging.getLogger(__name__)
JSON = "application/json"
# Advoware statuses passed on as they are (body scrubbed); any other error is the gateway's 502 (or 504/429).
PASSED_ERRORS = frozenset({400, 403, 404, 405, 406, 409, 410, 412, 413, 415, 422})
ALWAYS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


@dataclass(frozen=True)
class ProxyRequest:
    """What the proxy needs of an HTTP request. `target` is the request target as sent (still encoded);
    `headers` have lower-case names; `read_body(limit)` reads at most `limit + 1` bytes. The headers (the key
    among them) are left out of `repr()`, so no traceback's local variables (Sentry) show them."""

    method: str
    target: str
    headers: dict[str, str] = field(repr=False)
    content_length: int | None = None
    read_body: Callable[[int], bytes] = field(repr=False, default=lambda limit: b"")


@dataclass
class ProxyAnswer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    audit_entry: audit.AuditEntry | None = None

    def all_headers(self) -> list[tuple[str, str]]:
        merged = {"content-type": JSON, **self.headers, **ALWAYS, "content-length": str(len(self.body))}
        return [(name.title(), value) for name, value in merged.items()]


def _refusal_answer(exc: Refusal) -> ProxyAnswer:
    headers = {"allow": ", ".join(rules.METHODS)} if exc.status == 405 else {}
    if exc.status == 401:
        headers["www-authenticate"] = 'Bearer realm="advoware-proxy"'
    return ProxyAnswer(exc.status, rules.error_document(exc.status, exc.reason, exc.message), headers)


class AdvowareProxy:
    """The proxy of one web process: its own Advoware client (its own timeouts; `forward` never retries at the
    transport level, so one admitted call is one request), the shared token and gate, the keys and audit in
    `redis`."""

    def __init__(self, client: AdvowareClient, redis_client: redis.Redis, budget: ProxyBudget, *,
                 max_body_bytes: int, max_response_bytes: int, audit_maxlen: int):
        self.client = client
        self.redis = redis_client
        self.budget = budget
        self.max_body_bytes = max_body_bytes
        self.max_response_bytes = max_response_bytes
        self.audit_maxlen = audit_maxlen
        self.memory = keys.KeyMemory()

    @classmethod
    def from_settings(cls, settings) -> "AdvowareProxy":
        from bitbylaw_tasks.clients import advoware_client
        from bitbylaw_tasks.redis_clients import lock_redis
        from integrations.http import Timeouts

        client = advoware_client(settings, timeouts_=Timeouts(connect=settings.http_connect_timeout,
                                                              read=settings.proxy_read_timeout))
        budget = ProxyBudget(client.gate, lock_redis(settings), settings.advoware_max_requests_per_minute,
                             settings.proxy_share_percent, settings.proxy_key_share_percent)
        return cls(client, lock_redis(settings), budget, max_body_bytes=settings.proxy_max_body_bytes,
                   max_response_bytes=settings.proxy_max_response_bytes, audit_maxlen=settings.proxy_audit_maxlen)

    def handle(self, request: ProxyRequest) -> ProxyAnswer:
        """The answer to one request, with its audit entry (`answer.audit_entry`, written by `record`)."""
        started = time.perf_counter()
        state = {"key": None, "path": "-", "in": 0, "reason": "forwarded", "admitted": 0}
        try:
            answer = self._handle(request, state)
        except Refusal as exc:
            state["reason"] = exc.reason
            answer = _refusal_answer(exc)
        except redis.RedisError as exc:
            log.warning("proxy: Redis unavailable (%s)", type(exc).__name__)
            state["reason"] = "redis_unavailable"
            answer = _refusal_answer(refuse(503, "unavailable", "the proxy's store is unavailable, retry later"))
        except Exception:  # a bug: still a JSON answer and an audit entry (the traceback goes to the log/Sentry)
            log.exception("proxy: internal error")
            state["reason"] = "internal_error"
            answer = _refusal_answer(refuse(500, "internal_error", "internal error"))
        key = state["key"]
        answer.audit_entry = audit.AuditEntry(
            at=time.time(), key_id=key.id if key else audit.NO_KEY, key=key.name if key else audit.NO_KEY,
            method=rules.audit_method(request.method), path=state["path"], status=answer.status,
            ms=(time.perf_counter() - started) * 1000.0, bytes_in=state["in"], bytes_out=len(answer.body),
            reason=state["reason"], advoware_calls=state["admitted"])
        return answer

    def record(self, answer: ProxyAnswer) -> None:
        """Write the answer's audit entry (log line, stream entry, counts)."""
        if answer.audit_entry is not None:
            audit.record(self.redis, answer.audit_entry, self.audit_maxlen)

    def _admit(self, key_id: str, key_digest: str, state: dict) -> None:
        self.budget.admit(key_id, key_digest)
        state["admitted"] += 1

    def _key(self, secret: str | None) -> tuple[keys.ProxyKey, str, bool]:
        """The presented key, its digest, and whether Redis confirmed it active during this call (False: it came
        from this process's memory, and the caller must confirm it before anything is decided)."""
        if secret:
            recalled = self.memory.recall(secret)
            if recalled is not None:
                return recalled[0], recalled[1], False
            key = keys.lookup(self.redis, secret)
            if key is not None:
                key_digest = keys.digest(secret)
                self.memory.remember(key, key_digest)
                return key, key_digest, True
        raise _no_key(secret)

    def _confirm(self, key: keys.ProxyKey, secret: str, state: dict) -> None:
        """Refuse with 401 unless the remembered key is still active in Redis."""
        if keys.lookup(self.redis, secret) is None:
            self.memory.forget(key.id)
            state["key"] = None
            raise _no_key(secret)

    def _handle(self, request: ProxyRequest, state: dict) -> ProxyAnswer:
        secret = keys.presented_secret(request.headers.get("authorization", ""),
                                       request.headers.get("x-api-key", ""))
        key, key_digest, confirmed = self._key(secret)
        state["key"] = key
        try:
            return self._checked(request, state, key, key_digest, confirmed, secret)
        except Refusal as exc:
            if not confirmed and exc.status != 401:  # a remembered key refused: if revoked, it is told 401
                self._confirm(key, secret, state)
            raise
        except KeyGone:  # revoked since this process remembered it: the admission script refused it
            self.memory.forget(key.id)
            state["key"] = None
            raise _no_key(secret) from None

    def _checked(self, request: ProxyRequest, state: dict, key: keys.ProxyKey, key_digest: str, confirmed: bool,
                 secret: str) -> ProxyAnswer:
        headers = request.headers
        rules.check_method(request.method)
        raw_path, raw_query = rules.split_target(request.target)
        resource = rules.resource_path(raw_path)
        state["path"] = rules.template(resource)
        rules.check_scope(key.scope, request.method)
        if not rules.allowed(resource, key.allow):
            raise refuse(403, "allow_list", "this key may not use this path")
        params = rules.query_pairs(raw_query)
        if not confirmed and _declares_body(request):  # a body is read only for a key Redis confirmed
            self._confirm(key, secret, state)
            confirmed = True
        body = self._body(request)
        state["in"] = len(body)
        rules.check_body(request.method, headers.get("content-type", ""), body)
        try:
            raw = self.client.forward(request.method, "/" + resource, params=params or None,
                                      body=body if request.method in rules.WITH_BODY else None,
                                      max_bytes=self.max_response_bytes,
                                      admit=lambda: self._admit(key.id, key_digest, state),
                                      extra_headers=rules.forwarded_request_headers(headers))
        except RateLimited as exc:  # from `admit`: the key's share, all callers' share or the gate is spent
            state["reason"] = "budget"
            return ProxyAnswer(429, rules.error_document(429, "budget", "rate limit reached, retry later"),
                               {"retry-after": retry_after_header(exc.retry_after or 1)})
        except AnswerTooLarge:
            state["reason"] = "answer_too_large"
            return _gateway(502, "answer_too_large", "Advoware's answer exceeds the proxy's size limit")
        except TimedOut:
            state["reason"] = "advoware_timeout"
            return _gateway(504, "advoware_timeout", "Advoware did not answer in time")
        except ApiError as exc:  # unreachable, or the product's own Advoware credentials refused
            state["reason"] = "advoware_unavailable"
            log.warning("proxy: Advoware failed: %s", exc)
            return _gateway(502, "advoware_unavailable", "Advoware is unavailable")
        return self._answer(raw, state)

    def _body(self, request: ProxyRequest) -> bytes:
        limit = self.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise refuse(413, "body_too_large", f"request bodies are limited to {limit} bytes")
        body = request.read_body(limit)
        if len(body) > limit:
            raise refuse(413, "body_too_large", f"request bodies are limited to {limit} bytes")
        return body

    def _answer(self, raw: RawAnswer, state: dict) -> ProxyAnswer:
        headers = rules.returned_response_headers(rules.lower_keys(raw.headers))
        if raw.status < 300:
            return ProxyAnswer(raw.status, raw.body, headers)
        if raw.status == 429:
            state["reason"] = "advoware_429"
            wait = headers.get("retry-after", "")
            return ProxyAnswer(429, rules.error_document(429, "advoware_429", "Advoware is rate limiting, retry later"),
                               {"retry-after": wait if wait.isdigit() and wait != "0" else "5"})
        detail = rules.scrub_error_body(raw.body)
        if raw.status in PASSED_ERRORS:
            state["reason"] = "advoware_error"
            return ProxyAnswer(raw.status, json.dumps(detail).encode(), {"content-type": JSON})
        if raw.status == 504:
            state["reason"] = "advoware_timeout"
            return _gateway(504, "advoware_timeout", "Advoware did not answer in time", detail)
        state["reason"] = f"advoware_{raw.status}"
        message = ("Advoware refused the product's credentials" if raw.status == 401
                   else f"Advoware answered {raw.status}")
        return _gateway(502, "advoware_error", message, detail, upstream_status=raw.status)


def _no_key(secret: str | None) -> Refusal:
    return refuse(401, "no_key" if secret is None else "bad_key", "a valid proxy API key is required "
                  "(Authorization: Bearer … or X-Api-Key)")


def _declares_body(request: ProxyRequest) -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("transfer-encoding", "").lower()


def _gateway(status: int, reason: str, message: str, detail=None, **extra) -> ProxyAnswer:
    if detail is not None:
        extra["detail"] = detail
    return ProxyAnswer(status, rules.error_document(status, reason, message, **extra))
