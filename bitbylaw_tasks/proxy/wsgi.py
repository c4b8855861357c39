"""The proxy in the web process: WSGI middleware that answers everything under `/advoware/` before Flask sees it.

Plain WSGI rather than a Flask blueprint (docs/advoware-proxy.md, "Where it runs"): Flask's routing would
merge `//` with a 308 redirect and decode the path before the rules could see its raw form, and its request
machinery costs more per call (`bench/advoware_proxy.py` measures both). Every other path goes on to the Flask
app unchanged.
"""
from __future__ import annotations

import threading

from flask import Flask

from bitbylaw_tasks.proxy import rules
from bitbylaw_tasks.proxy.service import AdvowareProxy, ProxyRequest
from bitbylaw_tasks.settings import Settings

REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
           401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
           409: "Conflict", 410: "Gone", 412: "Precondition Failed", 413: "Content Too Large",
           415: "Unsupported Media Type", 422: "Unprocessable Content", 429: "Too Many Requests",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def request_target(environ) -> str:
    """The request target as the client sent it (gunicorn: RAW_URI, werkzeug: REQUEST_URI); without either,
    PATH_INFO is already decoded once, so the rules see one decoding fewer (still refused when doubled)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return raw
    query = environ.get("QUERY_STRING", "")
    return environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "") + (f"?{query}" if query else "")


def request_headers(environ) -> dict[str, str]:
    """The request's headers with lower-case names."""
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
               if key.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


def _content_length(environ) -> int | None:
    raw = environ.get("CONTENT_LENGTH") or ""
    return int(raw) if raw.isdigit() else None


def proxy_request(environ) -> ProxyRequest:
    length = _content_length(environ)

    def read_body(limit: int) -> bytes:
        stream = environ["wsgi.input"]
        if length is not None:
            return stream.read(min(length, limit + 1)) if length else b""
        if environ.get("wsgi.input_terminated") or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return stream.read(limit + 1)
        return b""

    return ProxyRequest(method=environ.get("REQUEST_METHOD", ""), target=request_target(environ),
                        headers=request_headers(environ), content_length=length, read_body=read_body)


class ProxyEndpoint:
    """WSGI middleware: `/advoware/…` to the proxy, everything else to `app`. The proxy is built at the first
    call (one per process: its HTTP session and Redis pools)."""

    def __init__(self, app, settings: Settings, proxy: AdvowareProxy | None = None):
        self.app = app
        self.settings = settings
        self._proxy = proxy
        self._lock = threading.Lock()

    @property
    def proxy(self) -> AdvowareProxy:
        if self._proxy is None:
            with self._lock:
                if self._proxy is None:
                    self._proxy = AdvowareProxy.from_settings(self.settings)
        return self._proxy

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not (path.startswith(rules.PREFIX) or path == rules.PREFIX.rstrip("/")):
            return self.app(environ, start_response)
        proxy = self.proxy
        answer = proxy.handle(proxy_request(environ))
        start_response(f"{answer.status} {REASONS.get(answer.status, 'Unknown')}", answer.all_headers())
        return AuditedBody(answer.body, lambda: proxy.record(answer))


class AuditedBody:
    """The answer's body for the WSGI server; the server calls `close()` once the body is sent (PEP 3333),
    and that writes the audit entry: the caller does not wait for it, the worker does."""

    def __init__(self, body: bytes, after):
        self.body = body
        self._after = after

    def __iter__(self):
        yield self.body

    def close(self) -> None:
        self._after()


def register(app: Flask, settings: Settings) -> None:
    """Put the proxy in front of `app` (see `ProxyEndpoint`)."""
    app.wsgi_app = ProxyEndpoint(app.wsgi_app, settings)
