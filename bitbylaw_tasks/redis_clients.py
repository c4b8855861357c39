"""Redis connections by role (locks/cache DB 1, calendar state DB 2), one pool per URL per process."""
from __future__ import annotations

import functools

import redis

from bitbylaw_tasks.settings import Settings

SOCKET_TIMEOUT = 5.0


@functools.lru_cache(maxsize=16)
def client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=SOCKET_TIMEOUT, socket_timeout=SOCKET_TIMEOUT,
                                health_check_interval=30)


def lock_redis(settings: Settings) -> redis.Redis:
    """Locks, webhook coalescing, token cache, metrics (DB 1)."""
    return client_for(settings.lock_redis_url)


def calendar_redis(settings: Settings) -> redis.Redis:
    """Calendar sync state (DB 2)."""
    return client_for(settings.calendar_redis_url)
