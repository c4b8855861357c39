"""The proxy's part of the shared Advoware request budget: one caller cannot starve the syncs, nor the others.

Every Advoware call, a sync's or a proxied one, passes the one `RateGate` named `advoware`
(ADVOWARE_MAX_REQUESTS_PER_MINUTE, a moving window in Redis shared by all processes). A proxied call must
first fit two smaller moving windows of its own: its key's (PROXY_KEY_SHARE_PERCENT of the budget) and all
proxy callers' together (PROXY_SHARE_PERCENT). So in any minute the proxy takes at most its share and the
syncs always keep the rest; and no caller waits: a call that does not fit now gets 429 with `Retry-After`
(the syncs, which may wait, keep the gate's polite wait).

One Lua script, one round trip, atomically, per admitted call: the caller's key is still there and not
revoked (its stored hash is the presented secret's), the gate is not paused (after an Advoware 429), the
key's window, all callers' window and the gate's own window (`limits`' list, `rategate.WINDOW_LUA`) each have
room — then all three are charged, or none. A refused caller never uses up units the syncs rely on, and a
revoked key is refused here even when this process remembered its record (`keys.KeyMemory`).
"""
from __future__ import annotations

import math
import secrets
import time

import redis

from bitbylaw_tasks.proxy.keys import KEY_PREFIX
from integrations.errors import RateLimited
from integrations.rategate import WINDOW_LUA, RateGate, window_args

WINDOW_MS = 60_000
KEY_WINDOW = "proxy:window:key:"   # + key id: a sorted set of admitted calls (score = time in ms)
ALL_WINDOW = "proxy:window:all"
KEY_GONE = -1                      # what the script returns for a key revoked (or deleted) meanwhile

# KEYS: key record, gate pause, key window, all-callers window, gate window.
# ARGV: secret's digest, now ms, window ms, per-key limit, total limit, member, then the gate's
# window arguments (now s, limit, expiry s). Returns 0 when admitted (all three windows charged),
# -1 when the key is no longer valid, else the milliseconds until a call may fit.
_ADMIT = WINDOW_LUA + """
local record = redis.call('HMGET', KEYS[1], 'hash', 'revoked_at')
if record[1] ~= ARGV[1] or record[2] then return -1 end
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then return pause end
local now, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local wait = 0
for i, limit in ipairs({tonumber(ARGV[4]), tonumber(ARGV[5])}) do
  local key = KEYS[i + 2]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now, 1)
  end
end
local gate_limit, gate_expiry = tonumber(ARGV[8]), tonumber(ARGV[9])
wait = math.max(wait, gate_wait_ms(KEYS[5], ARGV[7], gate_limit, gate_expiry))
if wait > 0 then return wait end
for i = 3, 4 do
  redis.call('ZADD', KEYS[i], now, ARGV[6])
  redis.call('PEXPIRE', KEYS[i], window)
end
gate_charge(KEYS[5], ARGV[7], gate_limit, gate_expiry)
return 0
"""


class KeyGone(Exception):
    """The key was revoked (or deleted) after this process looked it up: the call is refused with 401."""


def shares(per_minute: int, share_percent: int, key_share_percent: int) -> tuple[int, int]:
    """(calls per minute for all proxy callers together, for one key); each at least 1."""
    total = max(1, math.floor(per_minute * share_percent / 100))
    return total, max(1, min(total, math.floor(per_minute * key_share_percent / 100)))


def retry_after_header(seconds: float) -> str:
    """`Retry-After` in whole seconds, at least 1 (a client retrying at 0 would only be refused again)."""
    return str(max(1, math.ceil(seconds)))


class ProxyBudget:
    """`admit(key_id, digest)`: charge one proxied Advoware call, or raise `KeyGone` / `RateLimited(retry_after)`
    at once. The call is not counted in `metrics:api_calls` here: the audit write does that."""

    def __init__(self, gate: RateGate, client: redis.Redis, per_minute: int, share_percent: int,
                 key_share_percent: int):
        self.gate = gate
        self.total, self.per_key = shares(per_minute, share_percent, key_share_percent)
        self._admit = client.register_script(_ADMIT)

    def admit(self, key_id: str, digest: str) -> None:
        now = time.time()
        gate_key, gate_args = window_args(self.gate, now)
        member = f"{now:.6f}:{secrets.token_hex(4)}"
        wait_ms = self._admit(keys=[KEY_PREFIX + key_id, self.gate.pause_key, KEY_WINDOW + key_id, ALL_WINDOW,
                                    gate_key],
                              args=[digest, int(now * 1000), WINDOW_MS, self.per_key, self.total, member, *gate_args])
        if wait_ms == KEY_GONE:
            raise KeyGone(key_id)
        if wait_ms:
            raise RateLimited("advoware proxy: budget spent", system="advoware", retry_after=wait_ms / 1000.0)
