"""The proxy's part of the shared Advoware request budget: one caller cannot starve the syncs, nor the others.

Every Advoware call, a sync's or a proxied one, passes the one `RateGate` named `advoware`
(ADVOWARE_MAX_REQUESTS_PER_MINUTE, a moving window in Redis shared by all processes). A proxied call must
first fit two smaller moving windows of its own: its key's (PROXY_KEY_SHARE_PERCENT of the budget) and all
proxy callers' together (PROXY_SHARE_PERCENT). So in any minute the proxy takes at most its share and the
syncs always keep the rest; and no caller waits: a call that does not fit now gets 429 with `Retry-After`
(the syncs, which may wait, keep the gate's polite wait).

The two proxy windows and the gate's pause (after an Advoware 429) are checked in one Lua script, one round
trip, atomically: both windows are charged or neither (`limits`, which keeps the gate's window, hits one
window per call; three calls cost three round trips on the proxy's hot path, docs/advoware-proxy.md). Only
then is the gate's own window charged: a refused caller never uses up units the syncs rely on.
"""
from __future__ import annotations

import math
import secrets
import time

import redis

from integrations.errors import RateLimited
from integrations.rategate import RateGate

WINDOW_MS = 60_000
KEY_WINDOW = "proxy:window:key:"   # + key id: a sorted set of admitted calls (score = time in ms)
ALL_WINDOW = "proxy:window:all"

# KEYS: pause key, key window, all-callers window. ARGV: now ms, window ms, per-key limit, total limit, member.
# Returns 0 when admitted (both windows charged), else the milliseconds until a call may fit.
_ADMIT = """
local pause = redis.call('pttl', KEYS[1])
if pause > 0 then return pause end
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local waits = {}
for i, limit in ipairs({tonumber(ARGV[3]), tonumber(ARGV[4])}) do
  local key = KEYS[i + 1]
  redis.call('zremrangebyscore', key, '-inf', now - window)
  if redis.call('zcard', key) >= limit then
    local oldest = redis.call('zrange', key, 0, 0, 'WITHSCORES')
    table.insert(waits, tonumber(oldest[2]) + window - now)
  end
end
if #waits > 0 then return math.max(1, unpack(waits)) end
for i = 2, 3 do
  redis.call('zadd', KEYS[i], now, ARGV[5])
  redis.call('pexpire', KEYS[i], window)
end
return 0
"""


def shares(per_minute: int, share_percent: int, key_share_percent: int) -> tuple[int, int]:
    """(calls per minute for all proxy callers together, for one key); each at least 1."""
    total = max(1, math.floor(per_minute * share_percent / 100))
    return total, max(1, min(total, math.floor(per_minute * key_share_percent / 100)))


def retry_after_header(seconds: float) -> str:
    """`Retry-After` in whole seconds, at least 1 (a client retrying at 0 would only be refused again)."""
    return str(max(1, math.ceil(seconds)))


class ProxyBudget:
    """`admit(key_id)`: charge one proxied Advoware call, or raise `RateLimited(retry_after)` at once."""

    def __init__(self, gate: RateGate, client: redis.Redis, per_minute: int, share_percent: int,
                 key_share_percent: int):
        self.gate = gate
        self.total, self.per_key = shares(per_minute, share_percent, key_share_percent)
        self._admit = client.register_script(_ADMIT)

    def admit(self, key_id: str) -> None:
        member = f"{time.time():.6f}:{secrets.token_hex(4)}"
        wait_ms = self._admit(keys=[self.gate.pause_key, KEY_WINDOW + key_id, ALL_WINDOW],
                              args=[int(time.time() * 1000), WINDOW_MS, self.per_key, self.total, member])
        if wait_ms:
            raise RateLimited("advoware proxy: share spent", system="advoware", retry_after=wait_ms / 1000.0)
        wait = self.gate.try_acquire(check_pause=False, count=False)  # counted with the audit entry
        if wait is not None:
            raise RateLimited("advoware: budget spent", system="advoware", retry_after=wait)
