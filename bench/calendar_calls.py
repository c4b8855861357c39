"""API calls per calendar sync run, counted by the Advoware and Google simulators.

One employee with N Termine in the window (Termine, all-day Fristen,
Wiedervorlagen); each step runs `calendar.sync_employee` through the real
queue and a worker subprocess, after resetting the simulators' per-endpoint
counters, and prints the calls of that run: the first sync (calendar created,
every event inserted), the run that sees our own writes come back, an
unchanged employee, 100 Termine changed in Advoware, 100 events changed in
Google, 100 events created in Google, and a full resync after a 410.

    .venv/bin/python -m bench.calendar_calls [--termine 300] [--changed 100] [--advoware-latency-ms 0]
"""
from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from datetime import datetime, timedelta

from bench.common import CALENDAR_DB, BenchEnv, table

KUERZEL = "AB"


def seed(env: BenchEnv, count: int, rnd: random.Random) -> list[int]:
    from bitbylaw_tasks.calendar.mapping import TZ

    advo = env.sandbox.state("advoware")
    advo.add_mitarbeiter(KUERZEL, "Anna Berg", "anna.berg@kanzlei.example")
    today = datetime.now(TZ).date()
    made = []
    for n in range(count):
        art = rnd.choice(["Termin", "Termin", "Frist", "Wiedervorlage"])
        day = (today + timedelta(days=rnd.randint(-25, 300))).isoformat()
        fields = {"kuerzel": KUERZEL, "art": art, "datum": day, "text": f"{art} {n}", "ort": "Kanzlei"}
        if art == "Termin":
            hour = rnd.randint(8, 17)
            fields.update(uhrzeitVon=f"{hour:02d}:00", uhrzeitBis=f"{hour:02d}:45")
        else:
            fields["ganztaegig"] = True
        made.append(advo.add_termin(**fields)["frNr"])
    return made


def counted(env: BenchEnv) -> dict:
    out = {"advoware": 0, "google": 0, "writes": 0, "token": 0, "by_endpoint": {}}
    for name in ("advoware", "google"):
        for key, n in env.sandbox.kit(name).calls().items():
            if "/Token" in key:
                out["token"] += n
                continue
            out[name] += n
            out["by_endpoint"][f"{name} {key}"] = n
            if not key.startswith("GET"):
                out["writes"] += n
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--termine", type=int, default=300, help="Termine of the employee in the window")
    parser.add_argument("--changed", type=int, default=100, help="appointments changed per 'changed' step")
    parser.add_argument("--advoware-latency-ms", type=int, default=0,
                        help="simulated latency per Advoware call (the real API: hundreds of ms); shows the "
                             "re-reads of the Termine listing that guard Advoware writes in a slow sync")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the simulators' request log
    rnd = random.Random(42)
    env = BenchEnv().start()
    env.worker(["calendar"], concurrency=2, name="calendar")
    frnrs = seed(env, args.termine, rnd)
    env.set_latency(args.advoware_latency_ms, systems=("advoware",))
    google = env.sandbox.state("google")
    advo = env.sandbox.state("advoware")
    rows, details = [], []

    def run(label: str, expect_writes: int | None = None) -> dict:
        env.reset_calls()
        started = time.perf_counter()
        result = env.app.send_task("calendar.sync_employee", (KUERZEL,)).get(timeout=300)
        elapsed = time.perf_counter() - started
        calls = counted(env)
        rows.append([label, calls["advoware"], calls["google"], calls["advoware"] + calls["google"], calls["writes"],
                     calls["token"], f"{elapsed * 1000:.0f} ms", result["actions"] or "-"])
        details.append((label, calls["by_endpoint"]))
        if expect_writes is not None and calls["writes"] != expect_writes:
            raise SystemExit(f"{label}: expected {expect_writes} writes, counted {calls['writes']}")
        return result

    run(f"first sync: calendar created, {args.termine} events inserted")
    run("next run: our own writes come back (etags match)", expect_writes=0)
    run("unchanged employee", expect_writes=0)

    from bitbylaw_tasks.calendar.state import CalendarState

    calendar_id = CalendarState(env.redis_client(CALENDAR_DB), KUERZEL).meta().calendar_id
    changed = rnd.sample(frnrs, args.changed)
    for frnr in changed:
        advo.human_update_termin(frnr, text=f"geändert {frnr}")
    run(f"{args.changed} Termine changed in Advoware", expect_writes=args.changed)
    run("echo run", expect_writes=0)
    for frnr in rnd.sample(frnrs, args.changed):
        google.human_update(calendar_id, f"advo{frnr}", {"location": f"Saal {frnr % 7}"})
    run(f"{args.changed} events changed in Google", expect_writes=args.changed)
    run("echo run", expect_writes=0)
    today = datetime.now().date()
    for n in range(args.changed):
        start = f"{today + timedelta(days=rnd.randint(1, 60))}T{rnd.randint(8, 17):02d}:30:00+01:00"
        google.human_insert(calendar_id, {"summary": f"Neu {n}", "start": {"dateTime": start},
                                          "end": {"dateTime": start}})
    run(f"{args.changed} events created in Google (Termin POST + frNr stamp each)", expect_writes=2 * args.changed)
    run("echo run", expect_writes=0)
    google.expire_sync_tokens(calendar_id)
    run("full resync after 410 (nothing changed)", expect_writes=0)
    env.reset_calls()
    fanned = env.app.send_task("calendar.sync_all").get(timeout=60)
    rows.append(["calendar.sync_all (fan-out only, 1 employee)", counted(env)["advoware"], 0,
                 counted(env)["advoware"], 0, 0, "-", fanned])

    print(table(["run", "Advoware", "Google", "total", "writes", "token", "wall", "actions"], rows,
                title=f"Calendar sync: API calls per run (1 employee, {args.termine} Termine in the window, "
                      f"Advoware latency {args.advoware_latency_ms} ms; token fetches counted apart)"))
    print()
    for label, endpoints in details:
        if endpoints:
            print(f"- {label}: " + ", ".join(f"{k} x{v}" for k, v in sorted(endpoints.items())))
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
