"""Shared bench set-up: a private Redis, the three simulators, the app's environment, a worker subprocess.

`BenchEnv.start()` must run before anything imports `bitbylaw_tasks.celery_app`
(the app reads its settings from the environment once, at import): it starts a
`PrivateRedis` and the `Sandbox` on free loopback ports, points every setting
at them (the same variables `tests/conftest.py` sets) and only then imports
the Celery app. Workers run as real `celery worker` subprocesses (threads
pool), so the simulators in this process and the worker do not share a GIL.
Everything is torn down by `close()` (also on exit).
"""
from __future__ import annotations

import atexit
import base64
import collections
import importlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BROKER_DB, LOCK_DB, CALENDAR_DB, RESULT_DB = 0, 1, 2, 3
QUEUE_OF_HANDOFF = "kommunikation"
HANDOFF_TASK = "kommunikation.sync"


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest-rank (what p50/p99 usually mean in load reports)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


def summary_ms(values_s: list[float]) -> str:
    if not values_s:
        return "n/a"
    return (f"p50 {percentile(values_s, 0.5) * 1000:.0f} ms, p99 {percentile(values_s, 0.99) * 1000:.0f} ms, "
            f"mean {statistics.fmean(values_s) * 1000:.0f} ms, max {max(values_s) * 1000:.0f} ms (n={len(values_s)})")


def user_system(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of one process so far (Linux /proc; the system share is the kernel's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick  # utime, stime (fields 14 and 15 of stat)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc); a process gone counts nothing."""
    total = 0.0
    for pid in pids:
        try:
            total += sum(user_system(pid))
        except OSError:
            continue
    return total


def table(headers: list[str], rows: list[list], title: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (pasteable into docs/PERFORMANCE.md)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [] if title is None else [title, ""]
    fmt = lambda row: "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"  # noqa: E731
    lines.append(fmt(cells[0]))
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(lines)


class WorkerProcess:
    """`celery -A bitbylaw_tasks.celery_app worker` as a subprocess, with its log in a temp file."""

    def __init__(self, queues: list[str], concurrency: int, name: str, env: dict[str, str], cwd: Path = REPO):
        self.queues, self.concurrency, self.name = queues, concurrency, name
        self.log_path = Path(tempfile.mkstemp(prefix=f"bench-worker-{name}-", suffix=".log")[1])
        argv = [sys.executable, "-m", "celery", "-A", "bitbylaw_tasks.celery_app", "worker",
                "-Q", ",".join(queues), "-n", f"{name}@bench", "-P", "threads", "-c", str(concurrency),
                "-E", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, app, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                replies = app.control.ping(destination=[f"{self.name}@bench"], timeout=0.5)
            except Exception:  # noqa: BLE001 - e.g. the broker was just restarted: the pool reconnects
                time.sleep(0.2)
                continue
            if replies:
                return
        raise RuntimeError(f"worker did not answer a ping in {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown: running tasks finish
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.log_path.unlink(missing_ok=True)


class BenchEnv:
    """Private Redis + simulators + environment + the app; `worker()` and `shim()` add the moving parts."""

    def __init__(self, *, webhook_interval: float = 0.0, extra_env: dict[str, str] | None = None):
        self.webhook_interval = webhook_interval
        self.extra_env = extra_env or {}
        self.workers: list[WorkerProcess] = []
        self.servers: list = []
        self.redis = None
        self.sandbox = None
        self.app = None

    def start(self) -> "BenchEnv":
        if "bitbylaw_tasks.celery_app" in sys.modules:
            raise RuntimeError("bench.common: the Celery app was imported before the environment was set")
        from bitbylaw_tasks.devredis import PrivateRedis
        from integrations.sandbox.server import Sandbox

        self.redis = PrivateRedis().start()
        self.sandbox = Sandbox(webhook_interval=self.webhook_interval).start()
        self._count_syncing_writes()
        atexit.register(self.close)
        env = {
            "SANDBOX_HOST": "127.0.0.1",
            "SANDBOX_ESPOCRM_PORT": str(self.sandbox.servers["espocrm"].port),
            "SANDBOX_ADVOWARE_PORT": str(self.sandbox.servers["advoware"].port),
            "SANDBOX_GOOGLE_PORT": str(self.sandbox.servers["google"].port),
            # The shared request budgets must not be what a bench measures.
            "ESPOCRM_MAX_REQUESTS_PER_MINUTE": "1000000",
            "ADVOWARE_MAX_REQUESTS_PER_MINUTE": "1000000",
            "GOOGLE_MAX_REQUESTS_PER_MINUTE": "1000000",
            "REDIS_BROKER_URL": self.redis.url(BROKER_DB),
            "REDIS_LOCK_URL": self.redis.url(LOCK_DB),
            "REDIS_CALENDAR_URL": self.redis.url(CALENDAR_DB),
            "REDIS_RESULT_URL": self.redis.url(RESULT_DB),
            "BITBYLAW_ENV_FILE": os.devnull,  # a developer's .env must not leak into a bench
            "SENTRY_DSN": "",
        }
        env.update(self.extra_env)
        for name in ("ESPOCRM_BASE_URL", "ADVOWARE_BASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
            os.environ.pop(name, None)
        os.environ.update(env)
        from bitbylaw_tasks.celery_app import app

        self.app = app
        return self

    def _count_syncing_writes(self) -> None:
        """Count EspoCRM writes that set `syncStatus = syncing` (SPEC §4.8 counts them separately)."""
        from flask import request

        self.syncing_writes: collections.Counter = collections.Counter()
        guard = threading.Lock()

        @self.sandbox.app("espocrm").before_request
        def _syncing_write():
            if request.method in ("PUT", "PATCH") and request.path.startswith("/api/v1/CBeteiligte/"):
                body = request.get_json(silent=True, force=True)
                if isinstance(body, dict) and body.get("syncStatus") == "syncing":
                    with guard:
                        self.syncing_writes[request.path.rsplit("/", 1)[-1]] += 1

    # ------------------------------------------------------------ parts
    @property
    def settings(self):
        from bitbylaw_tasks.celery_app import settings_of

        return settings_of(self.app)

    def redis_client(self, db: int):
        import redis

        return redis.Redis.from_url(self.redis.url(db))

    def task_registered(self, name: str) -> bool:
        """Whether the worker would know `name` (imports the app's task modules here to find out)."""
        for module in self.app.conf.include or ():
            try:
                importlib.import_module(module)
            except ImportError:
                return False
        return name in self.app.tasks

    def handoff_worker_note(self) -> tuple[bool, str]:
        """Whether the Kommunikation hand-off can be consumed (its task is registered), and a note saying so."""
        if self.task_registered(HANDOFF_TASK):
            return True, (f"{HANDOFF_TASK} is registered: a second worker consumes the '{QUEUE_OF_HANDOFF}' "
                          "queue (its calls are not attributed to the Beteiligte syncs).")
        return False, (f"{HANDOFF_TASK} is not registered yet: only the beteiligte queue is consumed; the "
                       f"hand-off messages wait in '{QUEUE_OF_HANDOFF}' unconsumed.")

    def worker(self, queues: list[str], concurrency: int, name: str = "bench") -> WorkerProcess:
        worker = WorkerProcess(queues, concurrency, name, dict(os.environ))
        self.workers.append(worker)
        worker.wait_ready(self.app)
        return worker

    def shim(self, wrap=None):
        """The webhook shim on a free port, subscribed in the EspoCRM simulator for create/update/delete."""
        from bitbylaw_tasks.settings import get_settings
        from bitbylaw_tasks.web import create_app
        from bitbylaw_tasks.web.webhooks import register_secret
        from integrations.sandbox.kit import ServerThread

        wsgi = create_app(get_settings())
        server = ServerThread(wrap(wsgi) if wrap else wsgi).start()
        self.servers.append(server)
        espo = self.sandbox.state("espocrm")
        lock = self.redis_client(LOCK_DB)
        for action in ("create", "update", "delete"):
            hook = espo.hooks.subscribe(f"CBeteiligte.{action}", f"{server.url}/vmh/webhook/beteiligte/{action}",
                                        espo.integration_user, skip_own=True)  # as `espocrm setup` does
            register_secret(lock, hook["id"], hook["secretKey"])
        return server

    def set_latency(self, latency_ms: int, systems=("espocrm", "advoware")) -> None:
        for name in systems:
            self.sandbox.kit(name).default_latency_ms = int(latency_ms)

    def reset_calls(self) -> None:
        for name in ("espocrm", "advoware", "google"):
            self.sandbox.kit(name).reset_calls()
        self.syncing_writes.clear()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()
        for server in self.servers:
            server.stop()
        self.servers.clear()
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


def queued_args(raw: bytes) -> list:
    """The positional arguments of one Celery message as the Redis transport stores it."""
    message = json.loads(raw)
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    return json.loads(body)[0]


def queued_ids(client, queue: str) -> list[str]:
    """Entity ids (first task argument) of every message waiting in a broker queue (a Redis list)."""
    return [queued_args(raw)[0] for raw in client.lrange(queue, 0, -1)]


def measured_sync(env: "BenchEnv", sync) -> tuple[dict, float, dict, dict, int]:
    """Run `sync()` with fresh counters: (its outcome, seconds, EspoCRM calls, Advoware API calls, Advoware
    token fetches), the calls per endpoint."""
    env.reset_calls()
    started = time.perf_counter()
    outcome = sync()
    elapsed = time.perf_counter() - started
    espo = env.sandbox.kit("espocrm").calls()
    advo = env.sandbox.kit("advoware").calls()
    token = sum(n for k, n in advo.items() if "/Token" in k)
    return outcome, elapsed, espo, {k: n for k, n in advo.items() if "/Token" not in k}, token


def call_bench_main(argv: list[str] | None, doc: str, queue: str, make_bench, play, headers: list[str], title: str,
                    details=lambda bench: []) -> int:
    """The shared `main` of the per-scenario call benches (Kommunikation, Adressen): `--latency-ms`, the
    environment, a worker on `queue`, `play(make_bench(env))` filling the bench's `rows` and `failures`, the
    table (its `title` formatted with `latency`), `details(bench)` lines; exit 1 when a run failed its check."""
    import argparse
    import logging

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--latency-ms", type=int, default=0, help="simulated latency per EspoCRM/Advoware call")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    env = BenchEnv().start()
    try:
        env.worker([queue], concurrency=2, name=queue)
        env.set_latency(args.latency_ms)
        bench = make_bench(env)
        play(bench)
        print(table(headers, bench.rows, title=title.format(latency=args.latency_ms)))
        for line in details(bench):
            print(line)
        if bench.failures:
            print("\nFAILED:\n" + "\n".join(bench.failures))
            return 1
        print("\nNo-change runs write nothing; Advoware never received a DELETE.")
        return 0
    finally:
        env.close()
