"""Webhook shim request rate vs a bare Flask endpoint (SPEC §9: at least 0.75x), same server, same machine.

Starts gunicorn twice with the same flags (2 sync workers, no access log) on
loopback: the bare app below (one POST route answering 200), and the real
shim (`bitbylaw_tasks.web:wsgi_app()`, authenticated by a shared
`WEBHOOK_TOKEN`, enqueueing into a private Redis that is flushed after every
run and stopped at the end). A bounded load generator then drives each in
turn, alternating, for `--duration` seconds per run: `wrk` with a Lua script
that gives every request a distinct entity id (so coalescing never turns a
request into a no-op), or, without wrk, Python processes. Prints req/s of
both, non-2xx counts (must be 0: a 401 is not a throughput figure) and the
ratio, and the CPU time the servers spent per request (steadier than req/s
on a shared machine). Below 0.75 (or with `--profile`) it samples the shim
with py-spy and prints where its time goes; `--decompose` adds two servers
that run the shim with parts switched off, to price each part.

    .venv/bin/python -m bench.webhook_shim --duration 5 --connections 4 --rounds 3
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flask import Flask

from bench.common import cpu_seconds, table

REPO = Path(__file__).resolve().parents[1]
PATH = "/vmh/webhook/beteiligte/update"
TARGET = 0.75

bare_app = Flask("bare")


@bare_app.post("/vmh/webhook/beteiligte/<action>")
def _bare(action):
    return "OK"


def variant_app():
    """The real shim with a part switched off (`BENCH_SHIM_VARIANT`), for `--decompose` only:
    `no_enqueue` answers after validation, `message_only` also builds each Celery message but skips Redis."""
    from bitbylaw_tasks.enqueue import Enqueuer
    from bitbylaw_tasks.web import wsgi_app

    variant = os.environ["BENCH_SHIM_VARIANT"]
    if variant == "no_enqueue":
        Enqueuer.enqueue = lambda self, tasks: [True] * len(tasks)
    elif variant == "message_only":
        Enqueuer.enqueue = lambda self, tasks: [bool(self._payload(t)) for t in tasks]
    else:
        raise ValueError(f"unknown BENCH_SHIM_VARIANT {variant!r}")
    return wsgi_app()


WRK_SCRIPT = """
local counter = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  salt = tonumber(args[1]) or 0
  token = args[2] or ""
  per_request = tonumber(args[3]) or 1
end
function request()
  local items = {}
  for i = 1, per_request do
    counter = counter + 1
    items[i] = string.format('{"id":"%05x%04x%08x"}', salt, tid, counter)
  end
  local body = "[" .. table.concat(items, ",") .. "]"
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["X-Webhook-Token"] = token}, body)
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """`gunicorn -w 2 -k sync` serving `target` on a free loopback port."""

    def __init__(self, target: str, env: dict[str, str], workers: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "sync",
                "--bind", f"127.0.0.1:{self.port}", "--log-level", "warning", "--graceful-timeout", "5", target]
        self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_ready(self, headers: dict[str, str], timeout: float = 20.0) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            try:
                body = '[{"id":"00000000000000000"}]'
                if requests.post(self.url + PATH, data=body, headers=headers, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not answer in time")

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_wrk(url: str, args, salt: int, token: str, script: Path) -> dict:
    argv = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s",
            "--timeout", "5s", "-s", str(script), url + PATH, "--", str(salt), token, str(args.items)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=args.duration + 30).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:(.*)", out)
    if not rate or not total:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return {"rps": float(rate.group(1)), "requests": int(total.group(1)),
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1).strip() if errors else ""}


def _py_client(url: str, token: str, salt: int, proc: int, until: float, items: int, queue) -> None:
    import http.client

    host, port = url.split("//", 1)[1].split(":")
    done = bad = counter = 0
    headers = {"Content-Type": "application/json", "X-Webhook-Token": token}
    while time.monotonic() < until:
        ids = []
        for _ in range(items):
            counter += 1
            ids.append(f'{{"id":"{salt:05x}{proc:04x}{counter:08x}"}}')
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            conn.request("POST", PATH, body="[" + ",".join(ids) + "]", headers=headers)
            status = conn.getresponse().status
            done += 1
            bad += not 200 <= status < 400
        except OSError:
            bad += 1
        finally:
            conn.close()
    queue.put((done, bad))


def run_python(url: str, args, salt: int, token: str) -> dict:
    queue = multiprocessing.Queue()
    start = time.monotonic()
    until = start + args.duration
    procs = [multiprocessing.Process(target=_py_client, args=(url, token, salt, n, until, args.items, queue))
             for n in range(args.connections)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=args.duration + 30) for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = time.monotonic() - start
    done = sum(r[0] for r in results)
    return {"rps": done / elapsed, "requests": done, "non2xx": sum(r[1] for r in results), "socket_errors": ""}


#: Where a shim request's samples go: first matching frame prefix wins (most specific first).
BUCKETS = [
    ("Celery message build (Enqueuer._payload)", ("Enqueuer._payload",)),
    ("Redis round trip, client side (Script.__call__)", ("Script.__call__",)),
    ("auth + validation (SecretStore.get, authenticate, parse_ids)", ("SecretStore.get", "authenticate", "parse_ids")),
    ("JSON response (jsonify)", ("jsonify",)),
    ("Flask (routing, request/response objects)", ("Flask.wsgi_app",)),
    ("gunicorn (accept, HTTP parsing, write)", ("SyncWorker.handle",)),
]


def profile(server: Gunicorn, seconds: int, load) -> str:
    """Sample the shim's workers with py-spy while `load()` runs; CPU samples per part of a request."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return "py-spy not installed (pip install py-spy): no profile."
    outs, procs = [], []
    for pid in server.worker_pids():
        out = Path(tempfile.mkstemp(suffix=".txt")[1])
        outs.append(out)
        procs.append(subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(seconds), "-f", "raw", "-o",
                                       str(out), "--nonblocking"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    load()
    counts = {name: 0 for name, _ in BUCKETS}
    other = total = 0
    for proc, out in zip(procs, outs):
        proc.wait(timeout=seconds + 30)
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            total += int(count)
            for name, prefixes in BUCKETS:
                if any(frame.startswith(prefixes) for frame in frames):
                    counts[name] += int(count)
                    break
            else:
                other += int(count)
        out.unlink(missing_ok=True)
    if not total:
        return "py-spy took no samples."
    rows = [[name, f"{100 * n / total:.1f}%"] for name, n in counts.items()]
    rows.append(["other (gunicorn's loop between requests)", f"{100 * other / total:.1f}%"])
    return table(["part of a shim request", "share of py-spy samples"], rows)


SERVERS = [("bare Flask", "bench.webhook_shim:bare_app", None),
           ("shim", "bitbylaw_tasks.web:wsgi_app()", None)]
DECOMPOSE = [("shim, enqueue skipped", "bench.webhook_shim:variant_app()", "no_enqueue"),
             ("shim, messages built, no Redis", "bench.webhook_shim:variant_app()", "message_only")]


def measure(srv: Gunicorn, args, loadgen: str, salt: int, token: str, script: Path, redis_pid: int) -> dict:
    pids = srv.worker_pids()
    cpu_before, redis_before = cpu_seconds(pids), cpu_seconds([redis_pid])
    if loadgen == "wrk":
        result = run_wrk(srv.url, args, salt, token, script)
    else:
        result = run_python(srv.url, args, salt, token)
    done = max(1, result["requests"])
    result["cpu_us"] = (cpu_seconds(pids) - cpu_before) / done * 1e6
    result["redis_us"] = (cpu_seconds([redis_pid]) - redis_before) / done * 1e6
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=3, help="runs per server, alternating")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (every server)")
    parser.add_argument("--items", type=int, default=1, help="distinct entity ids per request body")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--profile", action="store_true", help="profile the shim with py-spy even when it meets")
    parser.add_argument("--decompose", action="store_true", help="also run the shim with parts switched off")
    args = parser.parse_args(argv)
    loadgen = args.loadgen if args.loadgen != "auto" else ("wrk" if shutil.which("wrk") else "python")

    import redis

    from bitbylaw_tasks.devredis import PrivateRedis

    server = PrivateRedis().start()  # the broker DB of this bench: private, flushed after every run
    token = secrets.token_hex(16)
    env = dict(os.environ, BITBYLAW_ENV_FILE=os.devnull, WEBHOOK_TOKEN=token, SENTRY_DSN="",
               REDIS_BROKER_URL=server.url(0), REDIS_LOCK_URL=server.url(1), REDIS_CALENDAR_URL=server.url(2),
               REDIS_RESULT_URL=server.url(3))
    for name in ("ESPOCRM_BASE_URL", "ADVOWARE_BASE_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    broker = redis.Redis.from_url(server.url(0))
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(WRK_SCRIPT)
    specs = SERVERS + (DECOMPOSE if args.decompose else [])
    servers: dict[str, Gunicorn] = {}
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in specs}
    prof = ""
    try:
        for name, target, variant in specs:
            servers[name] = Gunicorn(target, dict(env, BENCH_SHIM_VARIANT=variant or ""), args.workers)
        for srv in servers.values():
            srv.wait_ready({"Content-Type": "application/json", "X-Webhook-Token": token})
        broker.flushdb()
        salt = 1
        for _ in range(args.rounds):
            for name, srv in servers.items():
                salt += 1
                result = measure(srv, args, loadgen, salt, token, script, server._proc.pid)
                result["queued"] = broker.llen("beteiligte")
                broker.flushdb()  # bounded memory; every run starts from an empty broker DB
                runs[name].append(result)
        ratio = statistics.median(s["rps"] / b["rps"] for b, s in zip(runs["bare Flask"], runs["shim"]))
        if args.profile or ratio < TARGET:
            salt += 1
            prof = profile(servers["shim"], args.duration,
                           lambda: measure(servers["shim"], args, loadgen, salt, token, script, server._proc.pid))
    finally:
        for srv in servers.values():
            srv.stop()
        broker.flushdb()
        server.stop()
        script.unlink(missing_ok=True)

    print(report(args, loadgen, runs, ratio))
    if prof:
        print("\nWhere a shim worker's time goes (py-spy samples; they include the short waits for Redis's "
              "answer, which a sync worker spends idle):\n" + prof)
    if any(r["non2xx"] for rs in runs.values() for r in rs):
        print("\nnon-2xx answers seen: the figures are not valid")
        return 1
    return 0


def report(args, loadgen: str, runs: dict[str, list[dict]], ratio: float) -> str:
    rows = []
    for n in range(args.rounds):
        bare = runs["bare Flask"][n]
        for name, results in runs.items():
            r = results[n]
            queued = f"{r['queued']}/{r['requests']}" if name == "shim" else "-"
            cpu_ratio = bare["cpu_us"] / (r["cpu_us"] + r["redis_us"])
            rows.append([n + 1, name, f"{r['rps']:.0f}", f"{r['cpu_us']:.0f}", f"{r['redis_us']:.0f}", r["non2xx"],
                         queued, f"{r['rps'] / bare['rps']:.2f}", f"{cpu_ratio:.2f}"])
    title = (f"Webhook shim vs bare Flask (gunicorn, {args.workers} sync workers each, {loadgen}, "
             f"{args.connections} connections, {args.duration} s per run, {args.items} distinct id(s) per request)")
    text = table(["round", "server", "req/s", "worker CPU us/req", "Redis CPU us/req", "non-2xx",
                  "ids queued/requests answered", "req/s vs bare", "CPU vs bare"], rows, title)
    verdict = "meets" if ratio >= TARGET else "MISSES"
    return (f"{text}\n\nratio (median of rounds): {ratio:.2f} ({verdict} >= {TARGET})\n"
            "CPU us/req: user+system CPU of the gunicorn workers (and the Redis server) per answered request; "
            "'CPU vs bare' = bare / (server + Redis): the ratio if CPU were the only limit, steadier than req/s "
            "while other processes share the machine. 'ids queued' counts one per id (--items per request) and "
            "includes requests still in flight when the load generator stopped.")


if __name__ == "__main__":
    sys.exit(main())
