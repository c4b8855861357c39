"""The Beteiligte sweep over 10,000 EspoCRM records of which 1,000 are due (SPEC §9: all queued in < 5 s).

Seeds the EspoCRM simulator's state directly with `--records` CBeteiligte,
`--due` of them due under every rule of SPEC §4.1 (pending_sync, dirty,
failed with a passed or empty syncNextRetry, permanently_failed with a passed
or empty syncAutoResetAt, clean with a betnr and an old or empty
advowareLastSync, syncing with no live lock and older than the lock TTL) and
the rest not due, including the near misses (failed/permanently_failed not
yet due, recent syncing, stale syncing whose lock is alive, clean without a
betnr, deleted_in_advoware). The rolling check of clean records is the
freshness checker's (`bench.freshness`), not the sweep's. Then runs the
`beteiligte.sweep` task in this process (no worker, so the queue keeps what
it queued), times it, counts its EspoCRM calls, and checks that the
`beteiligte` queue holds exactly the due ids. A second sweep right after must
queue nothing new (coalescing).

    .venv/bin/python -m bench.sweep --records 10000 --due 1000
"""
from __future__ import annotations

import argparse
import copy
import logging
import random
import sys
import time
from datetime import datetime, timedelta, timezone

from bench.common import BROKER_DB, LOCK_DB, BenchEnv, queued_ids, table
from bitbylaw_tasks.beteiligte.sweep import LOCK_KIND
from bitbylaw_tasks.locks import lock_name

TARGET_S = 5.0
# Shares of the due records per rule (SPEC §4.1), and of the not-due near misses.
DUE_MIX = [("pending_sync", 0.20), ("dirty", 0.20), ("failed, retry passed", 0.10), ("failed, no retry time", 0.05),
           ("permanently_failed, reset passed", 0.05), ("permanently_failed, no reset time", 0.025),
           ("clean, last sync > 24 h", 0.20), ("clean, never checked", 0.05), ("syncing, stale, no lock", 0.125)]
NEAR_MISSES = [("failed, retry ahead", 0.03), ("permanently_failed, reset ahead", 0.03), ("syncing, recent", 0.01),
               ("syncing, stale, lock alive", 0.01), ("clean, no betnr", 0.005), ("deleted_in_advoware", 0.01)]


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _fields(kind: str, now: datetime) -> dict:
    """syncStatus and the fields that make a record of `kind` (due or not) at `now`."""
    ago = lambda **kw: stamp(now - timedelta(**kw))  # noqa: E731
    ahead = lambda **kw: stamp(now + timedelta(**kw))  # noqa: E731
    recent = {"syncStatus": "clean", "advowareLastSync": ago(hours=2), "modifiedAt": ago(hours=2)}
    return {
        "pending_sync": {"syncStatus": "pending_sync", "betnr": None, "advowareLastSync": None},
        "dirty": {"syncStatus": "dirty"},
        "failed, retry passed": {"syncStatus": "failed", "syncNextRetry": ago(minutes=1), "syncRetryCount": 2},
        "failed, no retry time": {"syncStatus": "failed", "syncNextRetry": None, "syncRetryCount": 1},
        "permanently_failed, reset passed": {"syncStatus": "permanently_failed", "syncAutoResetAt": ago(minutes=5),
                                             "syncRetryCount": 5},
        "permanently_failed, no reset time": {"syncStatus": "permanently_failed", "syncAutoResetAt": None,
                                              "syncRetryCount": 5},
        "clean, last sync > 24 h": {"syncStatus": "clean", "advowareLastSync": ago(hours=30)},
        "clean, never checked": {"syncStatus": "clean", "advowareLastSync": None},
        "syncing, stale, no lock": {"syncStatus": "syncing", "modifiedAt": ago(hours=1)},
        "failed, retry ahead": {"syncStatus": "failed", "syncNextRetry": ahead(minutes=30), "syncRetryCount": 3},
        "permanently_failed, reset ahead": {"syncStatus": "permanently_failed", "syncAutoResetAt": ahead(hours=20),
                                            "syncRetryCount": 5},
        "syncing, recent": {"syncStatus": "syncing", "modifiedAt": ago(minutes=2)},
        "syncing, stale, lock alive": {"syncStatus": "syncing", "modifiedAt": ago(hours=1)},
        "clean, no betnr": {**recent, "betnr": None},
        "deleted_in_advoware": {"syncStatus": "deleted_in_advoware", "advowareDeletedAt": ago(days=3)},
        "clean": recent,
    }[kind]


def plan(records: int, due: int) -> list[str]:
    """The kind of every record to seed: exactly `due` due ones, shuffled among the rest."""
    kinds: list[str] = []
    for kind, share in DUE_MIX[:-1]:
        kinds += [kind] * int(round(due * share))
    kinds += [DUE_MIX[-1][0]] * (due - len(kinds))
    rest = records - due
    for kind, share in NEAR_MISSES:
        kinds += [kind] * int(round(rest * share))
    kinds += ["clean"] * (records - len(kinds))
    random.Random(7).shuffle(kinds)
    return kinds


def seed(env: BenchEnv, kinds: list[str], now: datetime) -> tuple[set[str], dict[str, str]]:
    """Put the records straight into the simulator's state (no hooks, no webhooks); returns (due ids, id->kind)."""
    espo = env.sandbox.state("espocrm")
    template = espo.save(None, {"firstName": "Erika", "lastName": "Muster", "salutationName": "Frau",
                                "syncStatus": "clean"}, espo.integration_user)
    espo.records.clear()
    due_kinds = {k for k, _ in DUE_MIX}
    lock_db = env.redis_client(LOCK_DB)
    pipe = lock_db.pipeline(transaction=False)
    due, kind_of = set(), {}
    with espo.lock:
        for n, kind in enumerate(kinds):
            record = copy.deepcopy(template)
            record.update(id=espo.new_id(), betnr=100000 + n, lastName=f"Muster {n}", name=f"Erika Muster {n}",
                          advowareRowId=f"row{n}", advowareLastSync=stamp(now - timedelta(hours=2)),
                          modifiedAt=stamp(now - timedelta(hours=2)), createdAt=stamp(now - timedelta(days=30)))
            record.update(_fields(kind, now))
            espo.records[record["id"]] = record
            espo.field_versions[record["id"]] = {}
            kind_of[record["id"]] = kind
            if kind in due_kinds:
                due.add(record["id"])
            if kind == "syncing, stale, lock alive":
                pipe.set(lock_name(LOCK_KIND, record["id"]), "some-other-worker", ex=900)
    pipe.execute()
    return due, kind_of


def run(args) -> dict:
    env = BenchEnv().start()
    try:
        now = datetime.now(timezone.utc)
        kinds = plan(args.records, args.due)
        due, kind_of = seed(env, kinds, now)
        env.set_latency(args.latency_ms, systems=("espocrm",))
        env.reset_calls()
        from bitbylaw_tasks.beteiligte.tasks import sweep

        started = time.monotonic()
        first = sweep()
        elapsed = time.monotonic() - started
        kit = env.sandbox.kit("espocrm")
        calls = kit.calls()
        with kit.lock:
            in_espocrm = sum(e["end"] - e["start"] for e in kit.log)
        broker = env.redis_client(BROKER_DB)
        queued = queued_ids(broker, "beteiligte")
        env.reset_calls()
        started = time.monotonic()
        second = sweep()
        second_elapsed = time.monotonic() - started
        queued_after = queued_ids(broker, "beteiligte")
    finally:
        env.close()
    exact = sorted(queued) == sorted(due)
    counts: dict[str, int] = {}
    for entity_id in due:
        counts[kind_of[entity_id]] = counts.get(kind_of[entity_id], 0) + 1
    return {"elapsed": elapsed, "first": first, "calls": calls, "in_espocrm": in_espocrm, "queued": queued,
            "due": due, "exact": exact, "duplicates": len(queued) - len(set(queued)),
            "second": second, "second_elapsed": second_elapsed, "queued_after": len(queued_after),
            "due_by_kind": counts}


def report(args, r: dict) -> tuple[str, bool]:
    ok = r["exact"] and r["duplicates"] == 0 and r["queued_after"] == len(r["queued"])
    meets = r["elapsed"] < TARGET_S
    calls = ", ".join(f"{k} x{n}" for k, n in sorted(r["calls"].items()))
    rows = [
        ["records in EspoCRM", args.records], ["due (SPEC §4.1 rules)", len(r["due"])],
        ["simulated EspoCRM latency per call", f"{args.latency_ms} ms"],
        ["sweep time (query + resets + enqueue)", f"{r['elapsed']:.2f} s ({'meets' if meets else 'MISSES'} < 5 s)"],
        ["  of which inside the EspoCRM simulator", f"{r['in_espocrm']:.2f} s"],
        ["EspoCRM calls", f"{sum(r['calls'].values())} ({calls})"],
        ["queued", f"{len(r['queued'])} messages, {r['duplicates']} duplicate(s)"],
        ["queue == due", "yes" if r["exact"] else "NO"],
        ["sweep result by rule", r["first"].get("by_rule")],
        ["second sweep right after", f"{r['second_elapsed']:.2f} s, queued {r['second'].get('queued')}, "
                                     f"coalesced {r['second'].get('coalesced')}, queue length "
                                     f"{r['queued_after']}"],
    ]
    mix = table(["due kind", "records"], sorted(r["due_by_kind"].items()), "Due records by kind")
    return table(["figure", "value"], rows, "Beteiligte sweep (SPEC §9)") + "\n\n" + mix, ok and meets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10000)
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=0, help="simulated EspoCRM latency per call")
    args = parser.parse_args(argv)
    if args.due > args.records:
        parser.error("--due must not exceed --records")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    result = run(args)
    text, ok = report(args, result)
    print(text)
    if not ok:
        print("\nThe sweep missed its target or queued the wrong set (see above).")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
