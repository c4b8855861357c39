"""The shared request budget: one per external system, held in Redis so every process and machine shares it.

Two kinds of callers share a budget (issue 15): interactive ones (a sync a user's edit triggered, an
operator's command, the proxy) may use all of it; background ones (the freshness checker's checks, the
calendar's periodic syncs, the sweeps) are admitted only while the window holds fewer than
`per_minute - reserve` calls, so background work never fills the window to the limit: the last
`reserve` places of every window, and every place a background caller is refused, go to interactive
callers (docs/freshness.md, "Interactive before background"). A task says which it is
with `calls_as(BACKGROUND)` around its work (a context variable: per thread, per task); the default is
interactive, so every caller that says nothing keeps the whole budget, as before.
"""
from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator

from integrations.errors import BudgetExhausted

API_CALLS_KEY = "metrics:api_calls"  # bitbylaw_tasks.metrics.API_CALLS_KEY (integrations imports no product module)

# The gate's moving window as two Lua functions, for a script that charges the gate together with windows of
# its own in one round trip (the Advoware proxy: bitbylaw_tasks/proxy/budget.py). `_ADMIT` below is built on
# them too: the same list in `limits`' format, so `limits`, `used()` and the syncs' `wait()` see one window.
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


# One round trip per admitted call (issue 15; it was three: PTTL, the limiter's script, HINCRBY):
# the shared pause, then `limits`' moving window on its own key in its own format (WINDOW_LUA: the
# entry at index ceiling - 1 must be older than the window, then LPUSH now, LTRIM, EXPIRE: the script
# of limits' `acquire_entry`, so `get_window_stats` and every reader of the window see the same
# list), then the call count. Returns -pttl while paused, 0 when the window is full, 1 admitted.
# ARGV[5] / ARGV[6] = '1' to check the pause / count the call.
# ARGV[7] = the caller's ceiling: the limit for an interactive caller, limit - reserve for a background
# one (refused while the window holds that many); the list is still trimmed to the limit, so every
# reader sees the same window whoever wrote it.
_ADMIT = WINDOW_LUA + """
if ARGV[5] == '1' then
  local paused = redis.call('PTTL', KEYS[1])
  if paused > 0 then return -paused end
end
local expiry = tonumber(ARGV[3])
if gate_wait_ms(KEYS[2], ARGV[1], tonumber(ARGV[7] or ARGV[2]), expiry) > 0 then return 0 end
gate_charge(KEYS[2], ARGV[1], tonumber(ARGV[2]), expiry)
if ARGV[6] == '1' then redis.call('HINCRBY', KEYS[3], ARGV[4], 1) end
return 1
"""

INTERACTIVE = "interactive"   # may use the whole budget: user-triggered syncs, operator commands, the proxy
BACKGROUND = "background"     # admitted only below per_minute - reserve: checks, periodic syncs, sweeps
MAX_POLL = 5.0                # seconds a refused caller sleeps at most before it asks again

_PRIORITY: contextvars.ContextVar[str] = contextvars.ContextVar("rategate_priority", default=INTERACTIVE)


@contextlib.contextmanager
def calls_as(priority: str) -> Iterator[None]:
    """Every gated call made inside (this thread, this task) is `priority`'s: INTERACTIVE or BACKGROUND."""
    if priority not in (INTERACTIVE, BACKGROUND):
        raise ValueError(f"unknown priority {priority!r}")
    token = _PRIORITY.set(priority)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


def current_priority() -> str:
    """The priority of the calls made here now (INTERACTIVE unless inside `calls_as(BACKGROUND)`)."""
    return _PRIORITY.get()


def background_ceiling(per_minute: int, reserve: int) -> int:
    """Calls in the window at which a background caller is refused: `per_minute - reserve`, the reserve
    clamped so background work keeps at least one place (pure; the checker plans with it too)."""
    return per_minute - min(max(0, reserve), per_minute - 1)


class RateGate:
    """A request budget shared by every process and machine, kept in Redis (`limits` moving window).

    `wait()` blocks politely until the budget allows one more call instead of
    failing; `pause(seconds)` makes every caller hold off after a 429's
    `Retry-After`. `reserve` calls of each window are kept for interactive callers
    (background ones are refused at `per_minute - reserve`, module docstring).
    """

    def __init__(self, redis_url: str, name: str, per_minute: int, *, max_wait: float = 120.0, reserve: int = 0):
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
        self.reserve = self._item.amount - background_ceiling(self._item.amount, reserve)

    def ceiling(self, priority: str | None = None) -> int:
        """Calls in the window at which a caller of `priority` (default: the current one) is refused."""
        if (priority or current_priority()) == BACKGROUND:
            return background_ceiling(self._item.amount, self.reserve)
        return self._item.amount

    def wait(self) -> None:
        """Block until the shared budget admits one more call (at the current priority's ceiling); count
        the admitted call."""
        deadline = time.monotonic() + self._max_wait
        while True:
            delay = self.try_acquire()
            if delay is None:
                return
            time.sleep(min(delay, MAX_POLL))
            if time.monotonic() > deadline:
                raise BudgetExhausted(f"{self._name}: local rate budget exhausted for {self._max_wait:.0f}s",
                                  system=self._name, retry_after=5.0)

    def used(self, *, now: float | None = None) -> int:
        """Calls admitted in the current window (the last minute), by every process: what the budget
        has spent (the freshness checker spends what is left, `beteiligte/freshness.py`). `now`: the
        window ending then (a simulated clock, `bench/freshness.py`) instead of `limits`' real time."""
        if now is None:
            stats = self._limiter.get_window_stats(self._item, "bitbylaw", self._name)
            return max(0, self._item.amount - stats.remaining)
        entries = self._redis.lrange(self._keys[1], 0, self._item.amount - 1)
        return sum(1 for e in entries if float(e) >= now - self._expiry)

    def paused(self) -> bool:
        """True while every caller holds off after a 429 (`pause`)."""
        return bool(self._redis.pttl(self._pause_key) > 0)

    @property
    def pause_key(self) -> str:
        """The Redis key whose TTL is the pause after a 429 (the Advoware proxy checks it in its own script)."""
        return self._pause_key

    def try_acquire(self, *, check_pause: bool = True, count: bool = True, priority: str | None = None,
                    now: float | None = None) -> float | None:
        """Admit one call now, without waiting: None when admitted (and counted), else the seconds until the
        budget may admit one (for a `Retry-After`, by a caller that answers 429 instead of blocking).
        `check_pause=False` skips the shared pause, `count=False` the call count (for a caller that read or
        counts them itself). `priority`: INTERACTIVE or
        BACKGROUND (default: the current one, `calls_as`); `now`: a simulated clock (the bench)."""
        ceiling = self.ceiling(priority)
        admitted = self._try(check_pause=check_pause, count=count, now=now, ceiling=ceiling)
        if admitted == 1:
            return None
        return -admitted / 1000.0 if admitted < 0 else self._until_room(now=now, ceiling=ceiling)

    def _try(self, *, check_pause: bool, count: bool, now: float | None = None, ceiling: int | None = None) -> int:
        """One round trip of the admission script: -pttl while paused, 0 when the window is full (for a caller
        refused at `ceiling` calls, default the limit), 1 admitted."""
        args = [time.time() if now is None else now, self._item.amount, self._expiry, self._name,
                int(check_pause), int(count), ceiling or self._item.amount]
        return int(self._admit(keys=self._keys, args=[str(a) for a in args]))

    def _until_room(self, *, now: float | None = None, ceiling: int | None = None) -> float:
        """Seconds until the moving window holds fewer than `ceiling` calls (default the limit): the entry
        at index ceiling - 1 (the list is newest first) leaves the window, a hair later (the script still
        counts an entry exactly one window old, so a caller waking on the dot would be refused once more
        and sleep the 50 ms floor, while a caller of the other priority takes the place)."""
        entry = self._redis.lindex(self._keys[1], (ceiling or self._item.amount) - 1)
        now = time.time() if now is None else now
        return max(float(entry) + self._expiry - now + 0.001, 0.05) if entry is not None else 0.05

    def pause(self, seconds: float) -> None:
        if seconds and seconds > 0:
            self._redis.set(self._pause_key, "1", px=int(seconds * 1000))




def window_args(gate: RateGate, now: float | None = None) -> tuple[str, list[str]]:
    """The gate's window key and the arguments of WINDOW_LUA's functions: [now, limit, expiry] as text."""
    return gate._keys[1], [str(time.time() if now is None else now), str(gate._item.amount), str(gate._expiry)]
