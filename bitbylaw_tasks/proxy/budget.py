"""The proxy's part of the shared Advoware request budget: one caller cannot starve the syncs, nor the others.

Every Advoware call, a sync's or a proxied one, passes the one `RateGate` named `advoware`
(ADVOWARE_MAX_REQUESTS_PER_MINUTE, a moving window in Redis shared by all processes). A proxied call must
first fit two smaller moving windows of its own: its key's (PROXY_KEY_SHARE_PERCENT of the budget) and all
proxy callers' together (PROXY_SHARE_PERCENT). So in any minute the proxy takes at most its share and the
syncs always keep the rest; and no caller waits: a call that does not fit now gets 429 with `Retry-After`
(the syncs, which may wait, keep the gate's polite wait).

The windows are charged in the order key → all callers → gate and a refusal stops there: a refused caller
uses up its own share (or the callers' common share), never the gate's units the syncs rely on.
"""
from __future__ import annotations

import math
import time

from integrations.errors import RateLimited
from integrations.rategate import RateGate

NAMESPACE = "bitbylaw-proxy"


def shares(per_minute: int, share_percent: int, key_share_percent: int) -> tuple[int, int]:
    """(calls per minute for all proxy callers together, for one key); each at least 1."""
    total = max(1, math.floor(per_minute * share_percent / 100))
    return total, max(1, min(total, math.floor(per_minute * key_share_percent / 100)))


def retry_after_header(seconds: float) -> str:
    """`Retry-After` in whole seconds, at least 1 (a client retrying at 0 would only be refused again)."""
    return str(max(1, math.ceil(seconds)))


class ProxyBudget:
    """`admit(key_id)`: charge one proxied Advoware call, or raise `RateLimited(retry_after)` at once."""

    def __init__(self, gate: RateGate, redis_url: str, per_minute: int, share_percent: int,
                 key_share_percent: int):
        from limits import RateLimitItemPerMinute
        from limits.storage import RedisStorage
        from limits.strategies import MovingWindowRateLimiter

        self.gate = gate
        self._limiter = MovingWindowRateLimiter(RedisStorage(redis_url))
        total, per_key = shares(per_minute, share_percent, key_share_percent)
        self.total_item, self.key_item = RateLimitItemPerMinute(total), RateLimitItemPerMinute(per_key)

    def _charge(self, item, *identifiers: str) -> None:
        if not self._limiter.hit(item, NAMESPACE, *identifiers):
            stats = self._limiter.get_window_stats(item, NAMESPACE, *identifiers)
            raise RateLimited("advoware proxy: share spent", system="advoware",
                              retry_after=max(stats.reset_time - time.time(), 0.05))

    def admit(self, key_id: str) -> None:
        self._charge(self.key_item, "key", key_id)
        self._charge(self.total_item, "all")
        wait = self.gate.try_acquire()
        if wait is not None:
            raise RateLimited("advoware: budget spent", system="advoware", retry_after=wait)
