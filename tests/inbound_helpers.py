"""Shared set-up of the inbound channel tests: settings for a shim of their own, and queue inspection."""
from __future__ import annotations

import json

from bitbylaw_tasks.settings import load_settings

BROKER_DB, LOCK_DB = 13, 12  # private to these tests: the session worker never consumes them
TOKEN, HMAC_SECRET, API_KEY = "lead-token-123", "lead-hmac-secret", "3cx-key-456"


def shim_settings(server_url, **extra):
    return load_settings({
        "REDIS_BROKER_URL": server_url(BROKER_DB), "REDIS_LOCK_URL": server_url(LOCK_DB),
        "REDIS_RESULT_URL": server_url(3), "WEBHOOK_MAX_BODY_BYTES": "4096", "LEAD_TOKEN": TOKEN,
        "LEAD_HMAC_SECRET": HMAC_SECRET, "THREECX_API_KEY": API_KEY, "THREECX_MISS_FALLBACK": "false",
        "ESPOCRM_PUBLIC_URL": "https://crm.kanzlei.test", **extra,
    })


def queued(broker, queue: str = "leads") -> list[tuple[str, list]]:
    """(task name, args) of every message waiting in `queue`, oldest first."""
    out = []
    for raw in reversed(broker.lrange(queue, 0, -1)):
        message = json.loads(raw)
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            import base64

            body = base64.b64decode(body).decode()
        args = json.loads(body)[0]
        out.append((message["headers"]["task"], args))
    return out
