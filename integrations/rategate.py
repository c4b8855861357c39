"""The shared request budget: one per external system, held in Redis so every process and machine shares it."""
from __future__ import annotations

import time

from integrations.errors import RateLimited

API_CALLS_KEY = "metrics:api_calls"  # bitbylaw_tasks.metrics.API_CALLS_KEY (integrations imports no product module)

# One round trip per admitted call (issue 15; it was three: PTTL, the limiter's script, HINCRBY):
# the shared pause, then `limits`' moving window on its own key in its own format (the entry at
# index limit - 1 must be older than the window, then LPUSH now, LTRIM, EXPIRE: the script of
# limits' `acquire_entry`, so `get_window_stats` and every reader of the window see the same
# list), then the call count. Returns -pttl while paused, 0 when the window is full, 1 admitted.
# ARGV[5] / ARGV[6] = '1' to check the pause / count the call (the Advoware proxy does both itself).
_ADMIT = """
if ARGV[5] == '1' then
  local paused = redis.call('PTTL', KEYS[1])
  if paused > 0 then return -paused end
end
local limit = tonumber(ARGV[2])
local entry = redis.call('LINDEX', KEYS[2], limit - 1)
if entry and tonumber(entry) >= tonumber(ARGV[1]) - tonumber(ARGV[3]) then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, limit - 1)
redis.call('EXPIRE', KEYS[2], ARGV[3])
if ARGV[6] == '1' then redis.call('HINCRBY', KEYS[3], ARGV[4], 1) end
return 1
"""


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
        self._admit = self._redis.register_script(_ADMIT)
        self._keys = [self._pause_key, self._storage.prefixed_key(self._item.key_for("bitbylaw", name)), API_CALLS_KEY]
        self._expiry = self._item.get_expiry()

    def wait(self) -> None:
        """Block until the shared budget admits one more call; count the admitted call."""
        deadline = time.monotonic() + self._max_wait
        while True:
            admitted = self._try(check_pause=True, count=True)
            if admitted == 1:
                return
            if admitted < 0:
                time.sleep(min(-admitted / 1000.0, 5.0))
            else:
                time.sleep(min(self._until_room(), 5.0))
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
        admitted = self._try(check_pause=check_pause, count=count)
        if admitted == 1:
            return None
        return -admitted / 1000.0 if admitted < 0 else self._until_room()

    def _try(self, *, check_pause: bool, count: bool) -> int:
        """One round trip of the admission script: -pttl while paused, 0 when the window is full, 1 admitted."""
        args = [time.time(), self._item.amount, self._expiry, self._name, int(check_pause), int(count)]
        return int(self._admit(keys=self._keys, args=[str(a) for a in args]))

    def _until_room(self) -> float:
        """Seconds until the moving window has room for one more call."""
        stats = self._limiter.get_window_stats(self._item, "bitbylaw", self._name)
        return max(stats.reset_time - time.time(), 0.05)

    def pause(self, seconds: float) -> None:
        if seconds and seconds > 0:
            self._redis.set(self._pause_key, "1", px=int(seconds * 1000))


# The gate's moving window as two Lua functions, for a script that charges the gate together with windows of
# its own in one round trip (the Advoware proxy: bitbylaw_tasks/proxy/budget.py). The same steps as `_ADMIT`
# on the same list in `limits`' format, so `limits`, `used()` and the syncs' `wait()` see one window.
# gate_wait_ms: milliseconds until the window has room (0: room now); gate_charge: take one unit.
# `now` is the time in seconds as text (what `window_args` passes), stored as `limits` stores it.
WINDOW_LUA = """
local function gate_wait_ms(key, now, limit, expiry)
  local entry = redis.call('LINDEX', key, limit - 1)
  if entry and tonumber(entry) >= tonumber(now) - expiry then
    return math.max(1, math.ceil((tonumber(entry) + expiry - tonumber(now)) * 1000))
  end
  return 0
end
local function gate_charge(key, now, limit, expiry)
  redis.call('LPUSH', key, now)
  redis.call('LTRIM', key, 0, limit - 1)
  redis.call('EXPIRE', key, expiry)
end
"""


def window_args(gate: RateGate, now: float | None = None) -> tuple[str, list[str]]:
    """The gate's window key and the arguments of WINDOW_LUA's functions: [now, limit, expiry] as text."""
    return gate._keys[1], [str(time.time() if now is None else now), str(gate._item.amount), str(gate._expiry)]
