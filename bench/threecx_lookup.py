"""3CX lookup latency (SPEC §12: p99 < 100 ms at 50 concurrent lookups over 10,000 indexed parties).

Starts a private Redis, fills the phone index with `--parties` CBeteiligte
owners (two numbers each, plus a few numbers owned twice, so the "most recently
modified" choice runs too), and serves the real shim with gunicorn exactly as
`bitbylaw web` does (`--workers` sync workers, default 2). `--concurrency`
clients (one asyncio loop, a new connection per lookup as with gunicorn's sync workers) then call `GET /3cx/lookup` with the
API key for `--duration` seconds: 90 % indexed numbers in national format
(which the shim must normalise), 10 % unknown ones (the EspoCRM fallback is off:
a miss is answered from the index alone, as it is after its first minute).
Every answer is checked (an indexed number must return its owner). Prints
client-side latency percentiles, req/s and the check counts.

    .venv/bin/python -m bench.threecx_lookup --parties 10000 --concurrency 50 --duration 10
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import redis

from bench.common import percentile, table
from bench.webhook_shim import free_port
from bitbylaw_tasks.devredis import PrivateRedis

API_KEY = "bench-3cx-key"
REPO = Path(__file__).resolve().parents[1]
PROCESSES = 1  # one asyncio loop keeps all clients in flight


def number_of(index: int) -> str:
    """The n-th party's office number (E.164) and its national form."""
    return f"+4930{5000000 + index:07d}"


def fill_index(url: str, parties: int) -> None:
    from bitbylaw_tasks.inbound import phone_index
    from bitbylaw_tasks.inbound.phone_index import Owner

    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for index in range(parties):
        owner = Owner("CBeteiligte", f"{index:017x}", "Vorname", f"Name{index}", "", f"p{index}@example.de",
                      number_of(index), f"+49171{index:07d}", "2026-11-30 10:00:00")
        numbers = {number_of(index), f"+49171{index:07d}"}
        for number in numbers:
            pipe.hset(phone_index.NUMBER_KEY + number, owner.field, owner.to_json())
        pipe.sadd(phone_index.RECORD_KEY + owner.field, *numbers)
        if index % 100 == 0:  # a newer lead sharing this number: the choice must pick it
            lead = Owner("Lead", f"{index:016x}f", "", f"Lead{index}", "", "", number_of(index), "",
                         "2026-11-30 11:00:00")
            pipe.hset(phone_index.NUMBER_KEY + number_of(index), lead.field, lead.to_json())
        if index % 1000 == 999:
            pipe.execute()
    pipe.execute()


async def _get(host: str, port: int, path: str) -> tuple[int, bytes]:
    """One GET on a new connection (gunicorn's sync workers close every connection): status and body."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Api-Key: {API_KEY}\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def client_process(args: tuple) -> tuple[list[float], int, int, int]:
    """`clients` concurrent lookups kept in flight by one asyncio loop (a light load generator: the
    machine's cores are shared with the server)."""
    url, clients, duration, parties, seed = args
    host, port = url.split("//")[1].split(":")
    latencies: list[float] = []
    counts = {"ok": 0, "wrong": 0, "errors": 0}

    async def run(rng: random.Random, deadline: float) -> None:
        while time.monotonic() < deadline:
            index = rng.randrange(parties)
            known = rng.random() < 0.9
            national = f"030{5000000 + index:07d}" if known else f"0309{rng.randrange(10**6):06d}"
            started = time.perf_counter()
            try:
                status, body = await _get(host, int(port), f"/3cx/lookup?number={national}")
                contacts = json.loads(body)["contacts"] if status == 200 else None
            except (OSError, ValueError, IndexError):
                counts["errors"] += 1
                continue
            latencies.append(time.perf_counter() - started)
            if contacts is None:
                counts["errors"] += 1
            elif known:
                expected = f"Lead{index}" if index % 100 == 0 else f"Name{index}"
                counts["ok" if contacts and contacts[0]["lastName"] == expected else "wrong"] += 1
            else:
                counts["ok" if contacts == [] else "wrong"] += 1

    async def all_clients() -> None:
        deadline = time.monotonic() + duration
        await asyncio.gather(*(run(random.Random(seed * 1000 + i), deadline) for i in range(clients)))

    asyncio.run(all_clients())
    return latencies, counts["ok"], counts["wrong"], counts["errors"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parties", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (bitbylaw web's default: 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per worker: 1 = sync workers as `bitbylaw web`; more = gthread workers")
    args = parser.parse_args(argv)

    server = PrivateRedis().start()
    shim = None
    try:
        fill_index(server.url(1), args.parties)
        env = {**os.environ, "REDIS_BROKER_URL": server.url(0), "REDIS_LOCK_URL": server.url(1),
               "REDIS_RESULT_URL": server.url(3), "THREECX_API_KEY": API_KEY, "THREECX_MISS_FALLBACK": "false",
               "THREECX_RATE_LIMIT": "1000000/minute", "BITBYLAW_ENV_FILE": os.devnull, "LOG_LEVEL": "WARNING"}
        in_process_ms = wsgi_cost_ms(server, 2000)
        shim = Shim(env, args.workers, args.threads)
        wait_http(shim.url)
        per_process = [args.concurrency // PROCESSES + (1 if i < args.concurrency % PROCESSES else 0)
                       for i in range(PROCESSES)]
        jobs = [(shim.url, n, args.duration, args.parties, i + 1) for i, n in enumerate(per_process) if n]
        started = time.monotonic()
        with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
            results = pool.map(client_process, jobs)
        elapsed = time.monotonic() - started
    finally:
        if shim is not None:
            shim.stop()
        server.stop()
    latencies = [x for r in results for x in r[0]]
    ok, wrong, errors = (sum(r[i] for r in results) for i in (1, 2, 3))
    kind = "sync" if args.threads == 1 else f"gthread x{args.threads}"
    print(f"3CX lookup: {args.parties} parties indexed, {args.concurrency} concurrent clients, "
          f"{args.workers} gunicorn {kind} workers, {args.duration:.0f} s, load average {os.getloadavg()[0]:.1f}")
    print(f"  lookups: {len(latencies)} ({len(latencies) / elapsed:.0f}/s), correct {ok}, wrong {wrong}, errors {errors}")
    print(f"  latency: p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p90 {percentile(latencies, 0.9) * 1000:.1f} ms, "
          f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms (target p99 < 100 ms)")
    print(f"  server cost: {in_process_ms:.2f} ms per lookup through the WSGI app in-process (Redis included, no HTTP)")
    print(table(["parties", "clients", "workers", "lookups/s", "p50 ms", "p99 ms", "server ms/lookup", "load avg"],
                [[args.parties, args.concurrency, f"{args.workers} {kind}", f"{len(latencies) / elapsed:.0f}",
                  f"{percentile(latencies, 0.5) * 1000:.1f}", f"{percentile(latencies, 0.99) * 1000:.1f}",
                  f"{in_process_ms:.2f}", f"{os.getloadavg()[0]:.1f}"]]))
    return 0 if wrong == 0 and errors == 0 else 1


def wsgi_cost_ms(server: PrivateRedis, count: int) -> float:
    """Mean time of one lookup called straight on the shim's WSGI app (the part HTTP and queueing do not add)."""
    import io

    from bitbylaw_tasks.settings import load_settings
    from bitbylaw_tasks.web import create_app

    settings = load_settings({"REDIS_BROKER_URL": server.url(0), "REDIS_LOCK_URL": server.url(1),
                              "REDIS_RESULT_URL": server.url(3), "THREECX_API_KEY": API_KEY,
                              "THREECX_MISS_FALLBACK": "false", "THREECX_RATE_LIMIT": "1000000/minute"})
    app = create_app(settings).wsgi_app
    started = time.perf_counter()
    for n in range(count):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/3cx/lookup", "QUERY_STRING": f"number=030{5000000 + n:07d}",
                   "HTTP_X_API_KEY": API_KEY, "REMOTE_ADDR": "127.0.0.1", "wsgi.input": io.BytesIO(b"")}
        b"".join(app(environ, lambda status, headers: None))
    return (time.perf_counter() - started) / count * 1000


class Shim:
    """The real shim under gunicorn on a free loopback port (sync workers, or gthread with `threads` > 1)."""

    def __init__(self, env: dict[str, str], workers: int, threads: int):
        self.url = f"http://127.0.0.1:{free_port()}"
        kind = ["--worker-class", "sync"] if threads == 1 else ["--worker-class", "gthread", "--threads", str(threads)]
        argv = [sys.executable, "-m", "gunicorn", "--workers", str(workers), *kind, "--bind", self.url[7:],
                "--log-level", "warning", "--backlog", "2048", "bitbylaw_tasks.web:wsgi_app()"]
        self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a worker stuck in a request: end it
            self.proc.kill()
            self.proc.wait()


def wait_http(url: str, path: str = "/healthz", timeout: float = 20.0) -> None:
    """Until the server at `url` answers anything on `path`."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url + path, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError("the shim did not answer in time")


if __name__ == "__main__":
    sys.exit(main())
