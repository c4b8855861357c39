"""Lead intake rate of `POST /vmh/webhook/lead` (SPEC §12: answer fast, queued): accepted leads per second.

Starts a private Redis and the real shim under gunicorn as `bitbylaw web` does
(`bench.threecx_lookup.Shim`), then `--concurrency` clients (one asyncio loop,
a new connection per request) post distinct JSON leads with the shared token
for `--duration` seconds. Each answer must be 202; afterwards the `leads` queue
must hold exactly one message per accepted lead and every stored submission
must be in Redis. Prints accepted/s and client-side latency percentiles.

    .venv/bin/python -m bench.lead_intake --concurrency 20 --duration 10
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

import redis

from bench.common import percentile, table
from bench.threecx_lookup import Shim, wait_http
from bitbylaw_tasks.devredis import PrivateRedis

TOKEN = "bench-lead-token"


async def _post(host: str, port: int, body: bytes) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"POST /vmh/webhook/lead HTTP/1.1\r\nHost: {host}\r\nX-Lead-Token: {TOKEN}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                 + body)
    data = await reader.read()
    writer.close()
    return int(data.split(b" ", 2)[1])


def drive(url: str, clients: int, duration: float) -> tuple[list[float], dict[int, int]]:
    host, port = url.split("//")[1].split(":")
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def run(client: int, deadline: float) -> None:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            body = json.dumps({"firstName": "Bench", "lastName": f"Lead{client}x{n}",
                               "emailAddress": f"lead{client}x{n}@example.de", "phoneNumber": f"030 {client:03d}{n:05d}",
                               "description": "Bitte um Rückruf", "consent": "1"}).encode()
            started = time.perf_counter()
            try:
                status = await _post(host, int(port), body)
            except (OSError, ValueError, IndexError):
                status = 0
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1

    async def all_clients() -> None:
        deadline = time.monotonic() + duration
        await asyncio.gather(*(run(i, deadline) for i in range(clients)))

    asyncio.run(all_clients())
    return latencies, statuses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    server = PrivateRedis().start()
    shim = None
    try:
        env = {**os.environ, "REDIS_BROKER_URL": server.url(0), "REDIS_LOCK_URL": server.url(1),
               "REDIS_RESULT_URL": server.url(3), "LEAD_TOKEN": TOKEN, "LEAD_RATE_LIMIT": "1000000/minute",
               "BITBYLAW_ENV_FILE": os.devnull, "LOG_LEVEL": "WARNING"}
        shim = Shim(env, args.workers, 1)
        wait_http(shim.url)
        started = time.monotonic()
        latencies, statuses = drive(shim.url, args.concurrency, args.duration)
        elapsed = time.monotonic() - started
        queued = redis.Redis.from_url(server.url(0)).llen("leads")
        stored = sum(1 for _ in redis.Redis.from_url(server.url(1)).scan_iter("inbound:lead:" + "?" * 32, count=1000))
    finally:
        if shim is not None:
            shim.stop()
        server.stop()
    accepted = statuses.get(202, 0)
    print(f"lead intake: {args.concurrency} concurrent clients, {args.workers} gunicorn sync workers, "
          f"{args.duration:.0f} s, load average {os.getloadavg()[0]:.1f}")
    print(f"  accepted {accepted} ({accepted / elapsed:.0f}/s), statuses {dict(sorted(statuses.items()))}, "
          f"queued {queued}, stored {stored}")
    print(f"  latency: p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms")
    print(table(["clients", "workers", "accepted/s", "p50 ms", "p99 ms", "load avg"],
                [[args.concurrency, f"{args.workers} sync", f"{accepted / elapsed:.0f}",
                  f"{percentile(latencies, 0.5) * 1000:.1f}", f"{percentile(latencies, 0.99) * 1000:.1f}",
                  f"{os.getloadavg()[0]:.1f}"]]))
    return 0 if accepted == queued == stored and set(statuses) == {202} else 1


if __name__ == "__main__":
    sys.exit(main())
