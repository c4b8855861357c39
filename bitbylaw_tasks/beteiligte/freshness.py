"""The freshness checker (SPEC §4.1 rolling check, issue 15): check the longest-unchecked parties with
whatever the shared Advoware budget leaves, keeping headroom for user-triggered syncs.

Advoware has no webhooks, so a change made only there is found by a check: a
`beteiligte.sync(id, "check", "sweep")` whose one Advoware GET serves the party and its
Kommunikation (the GET carries `kommunikation`; `kommunikation.service.needs_sync`
decides the hand-off from it). Every `tick` seconds (beat; FRESHNESS_TICK, 2 s: the
checks come paced, a few at a time, not as a burst) the checker reads
  U = Advoware calls the shared rate gate admitted in the last minute (every consumer),
  q = messages waiting in the `beteiligte` queue (work already committed, not yet spent),
and queues
  n = max(0, min(cap, floor(T - U * (60 - tick) / 60), C - U) - q)
checks of the parties checked longest ago, where
  C   = per_minute - reserve                 the gate's background ceiling (a check is refused there)
  T   = min(per_minute - max(headroom, reserve), floor(C * P / (P + 1))),  P = 60 / tick
  cap = ceil(T * tick / 60).
`U * (60 - tick) / 60` is the part of the window still in it while the checks
queued now run: the oldest tick's calls leave it meanwhile (without that the loop
would settle at P/(P+1) of T). `C - U` queues no more than the gate admits as
background *now*, so a check never waits at the gate holding a worker thread a
webhook sync needs, whatever the others do; the second bound of T is the level at
which that clamp still lets the loop reach its target (a long tick lowers it:
P = 6 gives 82 of 96). `checks_to_queue` is that rule, pure; `tick` applies it to
the store. Why it is stable, and the figures: docs/freshness.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import redis

from bitbylaw_tasks.beteiligte import store
from integrations.rategate import background_ceiling

WINDOW = 60.0  # seconds: the rate gate's moving window (a per-minute budget)
QUANTILES = (0.5, 0.99, 1.0)  # the check ages reported (1.0: the oldest check)


@dataclass(frozen=True)
class Budget:
    per_minute: int   # ADVOWARE_MAX_REQUESTS_PER_MINUTE: the gate's limit, shared by every consumer
    headroom: int     # calls per minute the checker never takes: room for syncs users trigger
    tick: float       # seconds between two ticks
    reserve: int = 0  # ADVOWARE_INTERACTIVE_RESERVE: the gate refuses background calls (checks) above
                      # per_minute - reserve, so the checker never aims higher

    @property
    def ticks_per_window(self) -> float:
        """P: ticks per window (a tick longer than half the window counts as half of it)."""
        return WINDOW / min(self.tick, WINDOW / 2)

    @property
    def target(self) -> int:
        """Calls per minute the checker fills the window up to (every consumer's calls counted): never into
        the headroom, nor into the gate's interactive reserve, nor above the level at which one tick's share
        still fits below the background ceiling while the oldest tick's calls are still in the window
        (C * P / (P + 1): with the clamp `C - U` of the rule the loop could not get higher)."""
        ticks = self.ticks_per_window
        paced = math.floor(self.ceiling * ticks / (ticks + 1) + 1e-9)
        return max(0, min(self.per_minute - max(self.headroom, self.reserve), paced))

    @property
    def cap(self) -> int:
        """Checks per tick at most: the target spread evenly over the window, so checks never come as a
        burst that a webhook sync would queue behind."""
        return math.ceil(self.target * self.tick / WINDOW)

    @property
    def ceiling(self) -> int:
        """Calls in the window at which the rate gate refuses a background call (a check)."""
        return background_ceiling(self.per_minute, self.reserve)


def checks_to_queue(budget: Budget, used: int, waiting: int, paused: bool = False) -> int:
    """The control rule: top the window's calls up to the target, at most `cap` per tick and never more than
    the places the gate has free for background calls *now* (`ceiling - used`: a check queued now is admitted
    at once instead of waiting at the gate in a worker thread a webhook sync needs), minus what is still
    queued (so the queue never holds more than one tick's share of checks ahead of a webhook sync); none
    while the gate is paused (Advoware answered 429 with Retry-After)."""
    if paused:
        return 0
    # the oldest tick's share leaves the window meanwhile (a tick longer than half the window counts as half)
    still = used * (budget.ticks_per_window - 1) / budget.ticks_per_window
    return max(0, min(budget.cap, math.floor(budget.target - still), budget.ceiling - used) - waiting)


@dataclass(frozen=True)
class Tick:
    used: int          # calls in the gate's window
    waiting: int       # messages waiting in the beteiligte queue
    count: int         # checks the rule allowed
    picked: tuple[str, ...]  # the entities to check (fewer than `count` when fewer are due)

    def as_dict(self) -> dict:
        return {"used": self.used, "waiting": self.waiting, "allowed": self.count, "queued": len(self.picked)}


def tick(client: redis.Redis, budget: Budget, *, now: float, used: int, waiting: int, paused: bool = False) -> Tick:
    """One step of the checker: how many (the rule), which (the longest-unchecked parties no earlier pick
    still holds). The caller queues the checks; an entity counts as checked when its sync completes."""
    count = checks_to_queue(budget, used, waiting, paused)
    lease = max(10 * budget.tick, 300.0)  # a pick lost with its message is picked again after this
    return Tick(used, waiting, count, tuple(store.pick_unchecked(client, count, now, lease)))


@dataclass(frozen=True)
class Freshness:
    """How old the parties' last checks are (seconds), as the metrics and the CLI show them."""

    tracked: int
    p50_s: float | None
    p99_s: float | None
    oldest_s: float | None

    def lines(self) -> list[str]:
        if not self.tracked:
            return ["check age: no checks recorded yet"]
        return [f"checked parties        {self.tracked}",
                f"check age p50          {_human(self.p50_s)}",
                f"check age p99          {_human(self.p99_s)}",
                f"oldest check           {_human(self.oldest_s)}"]


def freshness(client: redis.Redis, now: float) -> Freshness:
    tracked, ages = store.check_ages(client, now, QUANTILES)
    return Freshness(tracked, ages.get(0.5), ages.get(0.99), ages.get(1.0))


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = seconds / 60
    return f"{seconds:.0f} s" if seconds < 120 else (f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h")
