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
