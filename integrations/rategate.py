"""The shared request budget: one per external system, held in Redis so every process and machine shares it."""
from __future__ import annotations

import logging
import time

from integrations.errors import RateLimited

log = logging.getLogger(__name__)


class RateGate:
    """A request budget shared by every process and machine, kept in Redis (`limits` moving window).

    `wait()` blocks politely until the budget allows one more call instead of
    failing; `pause(seconds)` makes every caller hold off after a 429's
    `Retry-After`.
    """

    def __init__(self, redis_url: str, name: str, per_minute: int, *, max_wait: float = 120.0):
        from limits import RateLimitItemPerMinute
        from limits.storage import RedisStorage
        from limits.strategies import MovingWindowRateLimiter

        self._storage = RedisStorage(redis_url)
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._item = RateLimitItemPerMinute(max(1, per_minute))
        self._name = name
        self._pause_key = f"rate_pause:{name}"
        self._max_wait = max_wait
        import redis

        self._redis = redis.Redis.from_url(redis_url)

    def wait(self) -> None:
        """Block until the shared budget admits one more call; count the admitted call."""
        deadline = time.monotonic() + self._max_wait
        while True:
            paused_ms = self._redis.pttl(self._pause_key)
            if paused_ms and paused_ms > 0:
                time.sleep(min(paused_ms / 1000.0, 5.0))
            elif self._limiter.hit(self._item, "bitbylaw", self._name):
                self._count()
                return
            else:
                stats = self._limiter.get_window_stats(self._item, "bitbylaw", self._name)
                time.sleep(min(max(stats.reset_time - time.time(), 0.05), 5.0))
            if time.monotonic() > deadline:
                raise RateLimited(f"{self._name}: local rate budget exhausted for {self._max_wait:.0f}s",
                                  system=self._name, retry_after=5.0)

    def used(self) -> int:
        """Calls admitted in the current window (the last minute), by every process: what the budget
        has spent (the freshness checker spends what is left, `beteiligte/freshness.py`)."""
        stats = self._limiter.get_window_stats(self._item, "bitbylaw", self._name)
        return max(0, self._item.amount - stats.remaining)

    def paused(self) -> bool:
        """True while every caller holds off after a 429 (`pause`)."""
        return bool(self._redis.pttl(self._pause_key) > 0)

    @property
    def pause_key(self) -> str:
        """The Redis key whose TTL is the pause after a 429 (the Advoware proxy checks it in its own script)."""
        return self._pause_key

    def try_acquire(self, *, check_pause: bool = True, count: bool = True) -> float | None:
        """Admit one call now, without waiting: None when admitted (and counted), else the seconds until the
        budget may admit one (for a `Retry-After`). The Advoware proxy answers 429 instead of blocking;
        it passes `check_pause=False` when it has just read the pause itself, and `count=False` when it
        counts the call in its own audit write (`metrics:api_calls`)."""
        paused_ms = self._redis.pttl(self._pause_key) if check_pause else 0
        if paused_ms and paused_ms > 0:
            return paused_ms / 1000.0
        if self._limiter.hit(self._item, "bitbylaw", self._name):
            if count:
                self._count()
            return None
        stats = self._limiter.get_window_stats(self._item, "bitbylaw", self._name)
        return max(stats.reset_time - time.time(), 0.05)

    def _count(self) -> None:
        """Per-system call count for the product's metrics (`metrics:api_calls`); never fails a call."""
        try:
            self._redis.hincrby("metrics:api_calls", self._name, 1)
        except Exception:  # noqa: BLE001 - metrics must not break a call
            log.debug("rate gate: could not count a call")

    def pause(self, seconds: float) -> None:
        if seconds and seconds > 0:
            self._redis.set(self._pause_key, "1", px=int(seconds * 1000))
