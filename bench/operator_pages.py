"""What `/status` and `/metrics` cost as the failure register and the rolling check grow.

Seeds the failure register (`ops/failures.py`) with N entries, as many pending
manual actions / 10, 24 hours of sync counters and 10,000 checked Beteiligte,
then requests each page over real HTTP from a running shim (the EspoCRM
simulator answers the status page's per-`syncStatus` counts) and prints the
latency per page and size, the EspoCRM calls one `/status` makes, and the
page sizes.

    .venv/bin/python -m bench.operator_pages [--sizes 0,100,1000,5000] [--rounds 20]
"""
from __future__ import annotations

import argparse
import time

from bench.common import LOCK_DB, BenchEnv, summary_ms, table


def _seed(client, failures_n: int, now: float) -> None:
    from bitbylaw_tasks.ops import failures, manual

    client.flushdb()
    for i in range(failures_n):
        failures.record(client, "beteiligte" if i % 3 else "calendar", f"6a1f{i:020d}",
                        f"beteiligte 6a1f{i:020d}: sync failed: BadRequest: Advoware answered 400", now - i)
    for i in range(failures_n // 10):
        manual.add(client, "adressen", f"6a1e{i:020d}", "address_conflict", "choose one", now - i)
    for hour in range(24):
        client.hset(f"metrics:hourly:{int(now // 3600) - hour}", mapping={"beteiligte|ok": 40, "beteiligte|failed": 2})
    client.zadd("beteiligte:checked", {f"6a1c{i:020d}": now - i for i in range(10_000)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,100,1000,5000")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    env = BenchEnv().start()
    import requests

    server = env.shim()
    client = env.redis_client(LOCK_DB)
    auth = tuple(env.settings.flower_basic_auth.split(":", 1))
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        _seed(client, size, time.time())
        for path in ("/status", "/metrics"):
            env.reset_calls()
            times, length = [], 0
            for _ in range(args.rounds):
                started = time.perf_counter()
                response = requests.get(server.url + path, auth=auth if path == "/status" else None, timeout=30)
                times.append(time.perf_counter() - started)
                response.raise_for_status()
                length = len(response.content)
            espo_calls = sum(env.sandbox.kit("espocrm").calls().values()) / args.rounds
            rows.append([size, path, summary_ms(times), f"{length / 1024:.0f} KiB", f"{espo_calls:g}"])
    print(table(["failures", "page", "latency", "size", "EspoCRM calls/request"], rows,
                title=f"operator pages over HTTP, {args.rounds} requests each"))
    env.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
