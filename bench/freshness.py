"""Freshness of Advoware-only changes over a simulated day, within the shared Advoware budget (issue 15).

Runs the product's scheduling code against a simulated clock (no sleeping, a
day takes seconds), on a private redis-server:
- `beteiligte.freshness.tick` (the control rule and the longest-unchecked
  picks) on the product's store (`beteiligte.store`);
- the shared Advoware rate gate itself: `integrations.rategate.RateGate`'s
  admission script (`try_acquire(priority=..., now=...)`, the 60 s moving
  window of ADVOWARE_MAX_REQUESTS_PER_MINUTE calls, background callers refused
  at per_minute - ADVOWARE_INTERACTIVE_RESERVE), a refused caller asking again
  after min(the delay it was given, `rategate.MAX_POLL`) as `RateGate.wait`
  does; who is background is `bitbylaw_tasks.priorities`' answer; the checker
  reads `RateGate.used(now=...)`. EspoCRM and Google are not the limit and are
  only given their latency;
- worker pools per queue (beteiligte 8, kommunikation 8, calendar 4 threads,
  the product's defaults), FIFO queues, coalescing per entity;
- Beteiligte syncs with the call sequences `bench.api_calls` measured: a check
  = EspoCRM GET + Advoware GET (+ EspoCRM PUT when Advoware changed, and the
  Kommunikation hand-off when its entries changed); a webhook sync = EspoCRM
  GET + Advoware GET + PUT + EspoCRM PUT; a Kommunikation sync = EspoCRM GET +
  Advoware GET + one Advoware write when EspoCRM changed + EspoCRM PUT;
- traffic: `--espocrm-edits` user edits in EspoCRM (webhooks, delivered by
  EspoCRM's job at the next full minute; `--kommunikation-share` of them touch
  e-mail/phone), `--advoware-edits` edits made only in Advoware (the same share
  in Kommunikation), both uniform over office hours (08:00-18:00) and over the
  parties; the calendar's `sync_all` every 15 min (a task on the calendar
  queue: 1 Advoware call, then one `sync_employee` queued per employee, each
  one Advoware listing);
- the freshness checker every FRESHNESS_TICK s, as beat runs it.

An Advoware-only edit "reaches EspoCRM" when the EspoCRM write of the sync
that saw it ends (for Kommunikation: of the Kommunikation sync it handed
off to). Printed: that delay (p50/p99/max), Advoware calls per minute per
consumer (max and mean), the webhook syncs' queueing delay (queued -> started)
and their waits at the gate (and the background consumers' waits there), the
check ages the product reports.

    .venv/bin/python -m bench.freshness                    # 10,000 parties, 24 h
    .venv/bin/python -m bench.freshness --parties 50000
"""
from __future__ import annotations

import argparse
import collections
import heapq
import random
import statistics
import sys
import time
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

from bench.common import percentile, table
from bitbylaw_tasks import priorities
from bitbylaw_tasks.beteiligte import store
from bitbylaw_tasks.beteiligte.freshness import Budget, freshness, tick
from bitbylaw_tasks.devredis import PrivateRedis
from bitbylaw_tasks.settings import Settings
from integrations.rategate import MAX_POLL, RateGate

DAY0 = datetime(2026, 1, 5, tzinfo=timezone.utc).timestamp()  # a Monday, 00:00 UTC: simulated time 0
OFFICE = (8 * 3600, 18 * 3600)
WINDOW = 60.0
CHECK, WEBHOOK, KOMM, CALENDAR = "checks", "webhook syncs", "Kommunikation syncs", "calendar"
CONSUMERS = (CHECK, WEBHOOK, KOMM, CALENDAR)
DEFAULTS = Settings()  # the product's defaults: FRESHNESS_TICK, FRESHNESS_HEADROOM, ADVOWARE_INTERACTIVE_RESERVE
# Whose calls are background at the gate: the product's answer (the tasks wrap their work in `calls_as` of it).
# A Kommunikation sync carries the source its Beteiligte sync handed it (`priorities.handoff_source`).
PRIORITY = {CHECK: priorities.of_source("sweep"), WEBHOOK: priorities.of_source("webhook"),
            CALENDAR: priorities.CALENDAR}


class Gate:
    """The shared Advoware budget: the product's `RateGate` on the bench's redis-server, at simulated time."""

    def __init__(self, url: str, per_minute: int, reserve: int):
        self.limit = per_minute
        self.gate = RateGate(url, "advoware", per_minute, reserve=reserve)
        self.admits: list[float] = []  # admitted times, nondecreasing (the simulated clock only advances)
        self.per_minute: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.waits: dict[str, list[float]] = collections.defaultdict(list)  # per consumer, per admitted call
        self.interactive_waiting = 0  # interactive callers refused and not yet admitted
        self.background_ahead = 0     # background calls admitted while an interactive caller waited

    def try_admit(self, t: float, consumer: str, priority: str, asked: float) -> float | None:
        """The product's admission at time t: None (admitted, counted) or the seconds the gate says to wait."""
        delay = self.gate.try_acquire(priority=priority, now=DAY0 + t)
        interactive = priority == priorities.INTERACTIVE
        if delay is not None and interactive and t == asked:
            self.interactive_waiting += 1
        if delay is None:
            if interactive and t > asked:
                self.interactive_waiting -= 1
            elif not interactive and self.interactive_waiting:
                self.background_ahead += 1
            self.admits.append(t)
            self.per_minute[consumer][int(t // 60)] += 1
            self.waits[consumer].append(t - asked)
        return delay

    def used(self, t: float) -> int:
        """Calls admitted in (t - 60 s, t], as the product reads it (`RateGate.used`)."""
        return self.gate.used(now=DAY0 + t)

    def used_at(self, t: float) -> int:
        """The same from the bench's own record (for the samples over the whole day, after the run)."""
        return bisect_right(self.admits, t) - bisect_right(self.admits, t - WINDOW)


@dataclass
class Message:
    kind: str                  # check | webhook | kommunikation | calendar | calendar_all
    party: int
    queued: float
    edits: list = field(default_factory=list)  # Kommunikation: the Advoware-only edits it must deliver
    espocrm_change: bool = False
    source: str = ""           # Kommunikation: the source its Beteiligte sync handed it

    def priority(self, consumer: str) -> str:
        """The priority of this task's Advoware calls at the gate, as the product's task decides it."""
        return priorities.of_source(self.source) if consumer == KOMM else PRIORITY[consumer]


class Sim:
    def __init__(self, args, client, url: str):
        self.args, self.redis = args, client
        self.rng = random.Random(args.seed)
        self.t = 0.0
        self.events: list = []
        self.seq = 0
        self.gate = Gate(url, args.per_minute, args.reserve)
        self.queues = {"beteiligte": deque(), "kommunikation": deque(), "calendar": deque()}
        self.capacity = {"beteiligte": 8, "kommunikation": 8, "calendar": 4}
        self.busy = collections.Counter()
        self.queued_parties: dict[str, set] = collections.defaultdict(set)
        self.pending: dict[int, list] = collections.defaultdict(list)  # party -> Advoware-only edits unseen
        self.delays = {"master data": [], "Kommunikation": []}
        self.webhook_wait: list[float] = []   # queued -> started
        self.webhook_gate: list[float] = []   # time spent waiting at the gate inside the sync
        self.webhook_total: list[float] = []  # queued -> done
        self.checks = 0
        self.ages: list[tuple[float, object]] = []
        self.budget = Budget(args.per_minute, args.headroom, args.tick, args.reserve)

    # --- the event loop ---
    def at(self, t: float, action) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, action))

    def run(self, until: float) -> None:
        while self.events and self.events[0][0] <= until:
            self.t, _, action = heapq.heappop(self.events)
            action()

    # --- queues and workers ---
    def enqueue(self, queue: str, message: Message) -> None:
        if message.kind not in ("kommunikation", "calendar_all") and message.party in self.queued_parties[queue]:
            return  # coalesced: a message for this entity is already waiting
        self.queued_parties[queue].add(message.party)
        self.queues[queue].append(message)
        self.dispatch(queue)

    def dispatch(self, queue: str) -> None:
        while self.busy[queue] < self.capacity[queue] and self.queues[queue]:
            message = self.queues[queue].popleft()
            self.queued_parties[queue].discard(message.party)
            self.busy[queue] += 1
            body = {"check": self.check, "webhook": self.webhook, "kommunikation": self.kommunikation,
                    "calendar": self.calendar_employee, "calendar_all": self.calendar_sync_all}[message.kind]
            self.step(queue, message, body(message), None)

    def step(self, queue: str, message: Message, gen, sent) -> None:
        """Advance a task to its next call: ("advoware"|"espocrm", consumer) -> resumed with (admitted, done)."""
        try:
            system, consumer = gen.send(sent)
        except StopIteration:
            self.busy[queue] -= 1
            self.dispatch(queue)
            return
        if system == "advoware":
            self.ask_gate(queue, message, gen, consumer, self.t)
            return
        admitted = self.t
        done = admitted + self.args.espocrm_latency_ms / 1000
        self.at(done, lambda: self.step(queue, message, gen, (admitted, done)))

    def ask_gate(self, queue: str, message: Message, gen, consumer: str, asked: float) -> None:
        """`RateGate.wait` in simulated time: ask; when refused, sleep min(delay, MAX_POLL) (the worker
        thread stays busy meanwhile) and ask again."""
        delay = self.gate.try_admit(self.t, consumer, message.priority(consumer), asked)
        if delay is not None:
            self.at(self.t + min(delay, MAX_POLL), lambda: self.ask_gate(queue, message, gen, consumer, asked))
            return
        admitted, done = self.t, self.t + self.args.advoware_latency_ms / 1000
        self.at(done, lambda: self.step(queue, message, gen, (admitted, done)))

    # --- what the tasks do (the call sequences of bench.api_calls) ---
    def seen(self, party: int, read_at: float) -> tuple[list, list]:
        """The Advoware-only edits a GET at `read_at` sees (and takes off the unseen list)."""
        edits = self.pending.get(party, [])
        seen = [e for e in edits if e[0] < read_at]
        if seen:
            self.pending[party] = [e for e in edits if e[0] >= read_at]
        return [e for e in seen if e[1] == "master data"], [e for e in seen if e[1] == "Kommunikation"]

    def beteiligte_sync(self, message: Message, consumer: str, espocrm_changed: bool):
        yield "espocrm", consumer                         # GET the record
        read_at, _ = yield "advoware", consumer           # GET the Beteiligter (with its kommunikation)
        master, komm = self.seen(message.party, read_at)
        if espocrm_changed:
            yield "advoware", consumer                    # PUT the merged record
        done = self.t
        if espocrm_changed or master:
            _, done = yield "espocrm", consumer           # the one EspoCRM write
        for edit_at, kind in master:
            self.delays[kind].append(done - edit_at)
        if komm or message.espocrm_change:
            handed = priorities.handoff_source("sweep" if message.kind == "check" else "webhook")
            self.enqueue("kommunikation", Message("kommunikation", message.party, self.t, komm,
                                                  message.espocrm_change, handed))
        store.record_checked(self.redis, str(message.party), datetime.fromtimestamp(DAY0 + done, timezone.utc))

    def check(self, message: Message):
        self.checks += 1
        yield from self.beteiligte_sync(message, CHECK, espocrm_changed=False)

    def webhook(self, message: Message):
        started = self.t
        self.webhook_wait.append(started - message.queued)
        gate_wait = [0.0]
        sync = self.beteiligte_sync(message, WEBHOOK, espocrm_changed=True)
        sent = None
        while True:  # the same sync, measuring its waits at the gate
            try:
                request = sync.send(sent)
            except StopIteration:
                break
            asked = self.t
            sent = yield request
            if request[0] == "advoware":
                gate_wait[0] += sent[0] - asked
        self.webhook_gate.append(gate_wait[0])
        self.webhook_total.append(self.t - message.queued)

    def kommunikation(self, message: Message):
        yield "espocrm", KOMM
        read_at, _ = yield "advoware", KOMM
        _, komm = self.seen(message.party, read_at)  # entries edited since the Beteiligte sync's GET, too
        if message.espocrm_change:
            yield "advoware", KOMM                       # POST/PUT the entry
        _, done = yield "espocrm", KOMM                  # both arrays, status and hash in one write
        for edit_at, kind in message.edits + komm:
            self.delays[kind].append(done - edit_at)

    def calendar_employee(self, message: Message):
        yield "advoware", CALENDAR                      # the Termine listing (Google is not the limit)

    def calendar_sync_all(self, message: Message):
        yield "advoware", CALENDAR                      # GET Mitarbeiter
        for employee in range(self.args.employees):
            # the product queues every employee at once; --calendar-spread shows what spreading them would do
            offset = 900 * employee / self.args.employees if self.args.calendar_spread else 0.0
            self.at(self.t + offset, lambda e=employee: self.enqueue("calendar", Message("calendar", -1 - e, self.t)))

    # --- the periodic tasks ---
    def freshness_tick(self) -> None:
        step = tick(self.redis, self.budget, now=DAY0 + self.t, used=self.gate.used(self.t),
                    waiting=len(self.queues["beteiligte"]))
        for party in step.picked:
            self.enqueue("beteiligte", Message("check", int(party), self.t))
        self.at(self.t + self.args.tick, self.freshness_tick)

    def calendar_all(self) -> None:
        """Beat: `calendar.sync_all` on the calendar queue."""
        self.enqueue("calendar", Message("calendar_all", 0, self.t))
        self.at(self.t + 900, self.calendar_all)

    def sample_ages(self) -> None:
        self.ages.append((self.t, freshness(self.redis, DAY0 + self.t)))
        self.at(self.t + 600, self.sample_ages)


def seed(sim: Sim, args) -> None:
    """Every party checked once in the cycle before the day starts (the steady state of the night)."""
    cycle = args.parties / max(1, sim.budget.target) * 60
    pipe = sim.redis.pipeline(transaction=False)
    for party in range(args.parties):
        pipe.zadd(store.CHECKED_KEY, {str(party): DAY0 - sim.rng.uniform(0, cycle)})
    pipe.execute()
    office = lambda: sim.rng.uniform(*OFFICE)  # noqa: E731
    for _ in range(args.advoware_edits):
        party, at = sim.rng.randrange(args.parties), office()
        kind = "Kommunikation" if sim.rng.random() < args.kommunikation_share else "master data"
        sim.at(at, lambda p=party, a=at, k=kind: sim.pending[p].append((a, k)))
    for _ in range(args.espocrm_edits):
        party, at = sim.rng.randrange(args.parties), office()
        delivered = (at // 60 + 1) * 60 + 1  # EspoCRM's webhook job runs once a minute
        komm = sim.rng.random() < args.kommunikation_share
        sim.at(delivered, lambda p=party, d=delivered, k=komm: sim.enqueue(
            "beteiligte", Message("webhook", p, d, espocrm_change=k)))
    sim.at(sim.rng.uniform(0, args.tick), sim.freshness_tick)
    sim.at(sim.rng.uniform(0, 900), sim.calendar_all)
    sim.at(0.0, sim.sample_ages)


def simulate(args) -> dict:
    server = PrivateRedis().start()
    try:
        import redis

        client = redis.Redis.from_url(server.url(1))
        sim = Sim(args, client, server.url(1))
        seed(sim, args)
        wall = time.monotonic()
        sim.run(args.hours * 3600)
        wall = time.monotonic() - wall
        unseen = sum(len(v) for v in sim.pending.values())
        return {"sim": sim, "wall": wall, "unseen": unseen}
    finally:
        server.stop()


def _duration(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "n/a"
    return f"{seconds:.0f} s" if seconds < 120 else (f"{seconds / 60:.0f} min" if seconds < 7200
                                                     else f"{seconds / 3600:.2f} h")


def _dist(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (f"p50 {_duration(percentile(values, 0.5))}, p99 {_duration(percentile(values, 0.99))}, "
            f"max {_duration(max(values))} (n={len(values)})")


def report(args, r: dict) -> tuple[str, bool]:
    sim: Sim = r["sim"]
    minutes = int(args.hours * 60)
    office = range(OFFICE[0] // 60, OFFICE[1] // 60)
    rows = []
    for consumer in CONSUMERS:
        counts = sim.gate.per_minute[consumer]
        rows.append([consumer, max(counts.values(), default=0), f"{sum(counts.values()) / minutes:.1f}",
                     f"{sum(counts[m] for m in office) / len(office):.1f}", sum(counts.values())])
    total = collections.Counter()
    for counts in sim.gate.per_minute.values():
        total.update(counts)
    rows.append(["all", max(total.values(), default=0), f"{sum(total.values()) / minutes:.1f}",
                 f"{sum(total[m] for m in office) / len(office):.1f}", sum(total.values())])
    windows = [sim.gate.used_at(t) for t in range(0, int(args.hours * 3600), 5)]
    every = sim.delays["master data"] + sim.delays["Kommunikation"]
    # an edit not seen by the end counts as later than any seen one (run longer with --hours to see it)
    p99 = percentile(every + [float("inf")] * r["unseen"], 0.99) if every or r["unseen"] else float("inf")
    office_ages = [a for t, a in sim.ages if OFFICE[0] <= t <= OFFICE[1] and a.tracked]
    figures = [
        ["parties", f"{args.parties:,}"],
        ["budget", f"{args.per_minute} Advoware calls/min shared; interactive reserve {args.reserve}/min "
                   f"(background refused at {args.per_minute - sim.gate.gate.reserve}); checker headroom "
                   f"{args.headroom}/min, "
                   f"tick {args.tick:g} s (target {sim.budget.target}/min, at most {sim.budget.cap} per tick)"],
        ["traffic", f"{args.espocrm_edits} EspoCRM edits, {args.advoware_edits} Advoware-only edits (08-18 h, "
                    f"{args.kommunikation_share:.0%} in Kommunikation), calendar every 15 min for "
                    f"{args.employees} employees" + (" (spread over the 15 min: what-if)"
                                                     if args.calendar_spread else "")],
        ["Advoware-only edit -> in EspoCRM, all", _dist(every)],
        ["  master data", _dist(sim.delays["master data"])],
        ["  Kommunikation", _dist(sim.delays["Kommunikation"])],
        ["  not yet seen at the end", f"{r['unseen']}" + (" (the figures above leave them out; run longer with "
                                                          "--hours)" if r["unseen"] else "")],
        ["target p99 <= 2 h", "meets" if p99 <= 7200 else "MISSES"],
        ["checks run", f"{sim.checks:,} ({sim.checks / args.parties:.1f} per party per day)"],
        ["check age, office hours (the product's figures, sampled every 10 min)",
         f"p50 up to {_duration(max(a.p50_s for a in office_ages))}, p99 up to "
         f"{_duration(max(a.p99_s for a in office_ages))}, oldest up to "
         f"{_duration(max(a.oldest_s for a in office_ages))}" if office_ages else "n/a"],
        ["webhook sync: queued -> started", _dist(sim.webhook_wait) +
         f"; mean {statistics.fmean(sim.webhook_wait):.2f} s" if sim.webhook_wait else "n/a"],
        ["webhook sync: waiting at the gate (inside the sync)", _dist(sim.webhook_gate) +
         f"; mean {statistics.fmean(sim.webhook_gate):.2f} s" if sim.webhook_gate else "n/a"],
        ["webhook sync: queued -> done", _dist(sim.webhook_total) if sim.webhook_total else "n/a"],
        ["background calls admitted while an interactive call waited at the gate", f"{sim.gate.background_ahead}"],
        ["background at the gate, per call: checks", _dist(sim.gate.waits[CHECK])],
        ["  calendar", _dist(sim.gate.waits[CALENDAR])],
        ["Advoware calls in any 60 s window (sampled every 5 s)", f"max {max(windows)}, mean "
                                                                  f"{statistics.fmean(windows):.1f} "
                                                                  f"(limit {args.per_minute})"],
        ["simulated", f"{args.hours:g} h in {r['wall']:.1f} s of wall time"],
    ]
    out = table(["figure", "value"], figures, f"Freshness over a simulated day, {args.parties:,} parties")
    out += "\n\n" + table(["consumer", "max calls/min", "mean calls/min (day)", "mean calls/min (08-18 h)",
                           "calls"], rows, "Advoware calls per minute by consumer")
    return out, p99 <= 7200 and max(windows) <= args.per_minute


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", type=int, default=10000)
    parser.add_argument("--advoware-edits", type=int, default=500)
    parser.add_argument("--espocrm-edits", type=int, default=2000)
    parser.add_argument("--kommunikation-share", type=float, default=0.3, help="share of edits in e-mail/phone")
    parser.add_argument("--employees", type=int, default=20, help="calendars synced every 15 min")
    parser.add_argument("--calendar-spread", action="store_true",
                        help="what-if: spread the calendar's employee syncs over the 15 min (not the product's "
                             "behaviour: it queues them all at once)")
    parser.add_argument("--per-minute", type=int, default=100, help="ADVOWARE_MAX_REQUESTS_PER_MINUTE")
    parser.add_argument("--headroom", type=int, default=DEFAULTS.freshness_headroom, help="FRESHNESS_HEADROOM")
    parser.add_argument("--reserve", type=int, default=DEFAULTS.advoware_interactive_reserve,
                        help="ADVOWARE_INTERACTIVE_RESERVE (0: no priorities)")
    parser.add_argument("--tick", type=float, default=DEFAULTS.freshness_tick, help="FRESHNESS_TICK")
    parser.add_argument("--advoware-latency-ms", type=int, default=300)
    parser.add_argument("--espocrm-latency-ms", type=int, default=100)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    text, ok = report(args, simulate(args))
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
