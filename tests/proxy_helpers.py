"""Helpers of the Advoware proxy tests: the web app (with the proxy) served over real HTTP, keys, the
simulator's request log, the shared token."""
from __future__ import annotations

import contextlib

import redis
import requests

from bitbylaw_tasks.proxy import keys
from bitbylaw_tasks.settings import get_settings, load_settings
from integrations.sandbox.kit import ServerThread

API = "/advoware/api/v1/advonet"


def proxy_settings(**overrides):
    """The test session's settings (sandbox ports, private Redis) with some variables changed."""
    import os

    if not overrides:
        return get_settings()
    return load_settings({**os.environ, **{k: str(v) for k, v in overrides.items()}})


def upstream_settings(url: str):
    """Settings with a real-Advoware URL (a test's own upstream) and throwaway credentials."""
    return proxy_settings(ADVOWARE_BASE_URL=url, ADVOWARE_API_KEY="a2V5", ADVOWARE_APP_ID="app",
                          ADVOWARE_PRODUCT_ID="1", ADVOWARE_KANZLEI="k", ADVOWARE_DATABASE="d", ADVOWARE_USER="u",
                          ADVOWARE_PASSWORD="p")


@contextlib.contextmanager
def serve_web(settings=None):
    """The product's web app (`create_app`, proxy included) on a free loopback port; yields its base URL."""
    from bitbylaw_tasks.web import create_app

    server = ServerThread(create_app(settings or proxy_settings())).start()
    try:
        yield server.url
    finally:
        server.stop()


def make_key(lock_redis: redis.Redis, name: str, scope: str, *allow: str) -> str:
    return keys.create(lock_redis, name, scope, list(allow))[1]


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def advoware_log(sandbox) -> list[dict]:
    """What reached the Advoware simulator (API calls only; token fetches left out)."""
    entries = requests.get(f"{sandbox.url('advoware')}/_sandbox/log", timeout=5).json()
    return [e for e in entries if e["path"].startswith("/api/v1/advonet")]


def cached_tokens(lock_redis: redis.Redis) -> list[str]:
    return [lock_redis.get(k).decode() for k in lock_redis.scan_iter("advoware:token:*")
            if not k.endswith(b":lock") and lock_redis.get(k)]


def raw_call(base_url: str, method: str, target: str, headers=(), body: bytes | None = None,
             chunked: bool = False) -> tuple[int, dict, bytes]:
    """One request with the target exactly as given (requests and urllib3 would normalise `..` away)."""
    import http.client
    from urllib.parse import urlparse

    parsed = urlparse(base_url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=15)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None and not chunked:
            conn.putheader("Content-Length", str(len(body)))
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for start in range(0, len(body or b""), 65536):
                part = body[start:start + 65536]
                conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            conn.send(b"0\r\n\r\n")
        else:
            conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def seed(sandbox, **counts) -> dict:
    from integrations.sandbox.advoware_seed import seed_state

    return seed_state(sandbox.state("advoware"), **counts)
