"""Worker CPU per Beteiligte sync, this tree against a base commit, alternating in one run (issue 15).

A shared machine makes wall-clock figures noisy, so this bench compares what
one sync costs in CPU: the user + system time of the `beteiligte` worker
process (from /proc) and of Redis, and the Redis commands per sync (`INFO
commandstats`), for two worker builds that take turns on the same Redis,
simulators and records:

- `base`: the product at `--base` (default: issue 15's base, d2d0a5c, the
  commit before its efficiency work), exported with `git archive` into a temporary directory and
  run with that directory first on `sys.path`;
- `head`: this working tree.

Every round starts one worker of each build (threads pool, C slots, in
alternating order), lets it sync N records that users edited (EspoCRM ->
Advoware, 4 calls each at L ms) and stops it. The messages are queued
directly in one round trip (the shim is not what is measured); a
Kommunikation worker of this tree consumes the hand-offs of the set-up.
Each burst starts after `--warm-up` syncs, so a fresh worker's imports are
not counted. With `--profile DIR` each burst is also sampled by py-spy
(`pip install py-spy`; `record --gil`: only the thread holding the GIL, i.e.
the worker's Python CPU; the worker is the only process sampled) and the
CPU by category (`CATEGORIES`) and the top functions by self and inclusive
time are printed. Results: docs/PERFORMANCE.md, "Worker CPU per Beteiligte sync".

    .venv/bin/python -m bench.worker_cpu --rounds 3 --n 200 --latency-ms 50 --concurrency 8

Both builds talk to this tree's simulators (keep-alive since the third round), so a change
of the simulators moves both columns; the worker's system (kernel) CPU is printed apart.
"""
from __future__ import annotations

import argparse
import collections
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, BenchEnv, WorkerProcess, cpu_seconds, table, user_system
from bench.sync_throughput import Bench, _wait

BASE_COMMIT = "d2d0a5c"


def export_tree(commit: str) -> Path:
    """The product at `commit` in a temporary directory (removed at exit by the caller)."""
    target = Path(tempfile.mkdtemp(prefix=f"bench-base-{commit}-"))
    archive = subprocess.run(["git", "archive", commit], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def start_worker(env: BenchEnv, tree: Path, name: str, concurrency: int) -> WorkerProcess:
    """A `beteiligte` worker running the code of `tree` (its directory first on sys.path)."""
    worker_env = dict(os.environ, PYTHONPATH=str(tree))
    worker = WorkerProcess(["beteiligte"], concurrency, name, worker_env, cwd=tree)
    worker.wait_ready(env.app)
    return worker


def command_counts(client) -> collections.Counter:
    return collections.Counter({k.removeprefix("cmdstat_"): v["calls"] for k, v in client.info("commandstats").items()})


class Profiler:
    """py-spy sampling one process into a raw (collapsed stacks) file."""

    def __init__(self, pid: int, out: Path, rate: int, gil: bool = True):
        exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if exe is None:
            raise SystemExit("bench.worker_cpu: --profile needs py-spy (pip install py-spy)")
        self.out = out
        self.proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                                      *(["--gil"] if gil else []), "--output", str(out), "--nonblocking"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # py-spy attaches

    def stop(self) -> None:
        self.proc.send_signal(2)  # SIGINT: py-spy writes its file and exits
        self.proc.wait(timeout=30)


def fold(frame: str) -> str:
    """One frame of py-spy's raw output ("function (path/file.py:line)") as "function (package/file.py)"."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    parts = Path(path).parts
    for anchor in ("site-packages", "lib"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + 1:]
            break
    else:
        parts = parts[-2:]
    return f"{name} ({'/'.join(parts[-3:])})"


def read_stacks(path: Path) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            out[tuple(fold(f) for f in stack.split(";"))] += int(count)
    return out


# Where a sample's CPU goes: the first rule whose frame occurs in the stack (most specific first).
CATEGORIES = [
    ("rate gate (Redis)", "RateGate.wait"), ("Advoware token (Redis)", "AdvowareClient.token"),
    ("entity lock: acquire, extend, release (+ marks, journal since 5756563) (Redis)", "EntityLock."), ("write-back journal (Redis, JSON)", "JsonSlot."),
    ("coalescing key: mark_started (Redis)", "Enqueuer.mark_started"),
    ("HTTP: requests + urllib3 + http.client", "send (integrations/http.py"),
    ("HTTP: requests + urllib3 + http.client", "Session.request"),
    ("sync context (clients, notifier)", "sync_context"),
    ("sync decision: compare, mapping, JSON", "sync_beteiligte"),
    ("task follow-ups (rolling-check ZADD, result dict)", "sync (bitbylaw_tasks/beteiligte/tasks.py"),
    ("result backend (Celery)", "backends/"), ("task events (Celery, for Flower)", "events/"),
    ("task events (Celery, for Flower)", "send_event"), ("ack (kombu)", "acknowledge"), ("ack (kombu)", "Message.ack"),
    ("Celery trace (rest)", "trace_task"), ("thread pool hand-over", "ThreadPoolExecutor.submit"),
    ("consumer loop: receive, decode (kombu)", "asynloop"),
]


def category(stack: tuple[str, ...]) -> str:
    joined = ";".join(stack)
    inside_exclusive = "run_exclusive" in joined and "run_entity_task.<locals>.body" not in joined
    if inside_exclusive and not any(sub in joined for _, sub in CATEGORIES[:5]):
        return "sync-again marks: SREM, SPOP (Redis)"
    if "run_entity_task" in joined and "run_exclusive" not in joined:
        return "sync metrics, failure register (Redis)"
    for name, sub in CATEGORIES:
        if sub in joined:
            return name
    return "other"


def by_category(stacks: dict[tuple[str, ...], int]) -> collections.Counter:
    """Share (0..1) of the samples per category."""
    total = sum(stacks.values()) or 1
    out: collections.Counter = collections.Counter()
    for stack, n in stacks.items():
        out[category(stack)] += n / total
    return out


def top_functions(stacks: dict[tuple[str, ...], int], limit: int) -> tuple[list[list], int]:
    """Rows (function, self %, inclusive %) of the `limit` functions with the most inclusive samples,
    skipping the threads' outer frames every sample has."""
    total = sum(stacks.values())
    own, inclusive = collections.Counter(), collections.Counter()
    for stack, n in stacks.items():
        own[stack[-1]] += n
        for frame in set(stack):
            inclusive[frame] += n
    rows = [[f, f"{own[f] / total * 100:.1f}", f"{inclusive[f] / total * 100:.1f}"]
            for f, n in inclusive.most_common() if n < total * 0.97][:limit]
    return rows, total


def self_top(stacks: dict[tuple[str, ...], int], limit: int) -> list[list]:
    total = sum(stacks.values())
    own = collections.Counter()
    for stack, n in stacks.items():
        own[stack[-1]] += n
    return [[f, f"{n / total * 100:.1f}"] for f, n in own.most_common(limit)]


def burst(bench: Bench, env: BenchEnv, worker: WorkerProcess, ids: list[str], tag: str, args,
          profile_to: Path | None) -> dict:
    """One burst of N edits synced by `worker`: syncs/s, calls per sync, CPU and Redis commands per sync.

    A warm-up of `--warm-up` syncs (L = 0) comes first, so the figures are a running worker's: its
    first syncs import modules and open connections (~7 % of the samples of a cold burst)."""
    bench.quiesce()
    warm = ids[:args.warm_up]
    bench.edit(warm, f"{tag} warm-up")
    _wait(lambda: bench.all_clean(warm), args.timeout, f"{len(warm)} warm-up syncs")
    bench.quiesce()
    broker = env.redis_client(0)
    env.set_latency(args.latency_ms)
    env.reset_calls()
    profiler = Profiler(worker.proc.pid, profile_to, args.profile_rate, not args.all_threads) if profile_to else None
    load = os.getloadavg()[0]
    commands = command_counts(broker)
    cpu_worker, cpu_redis = cpu_seconds([worker.proc.pid]), cpu_seconds([env.redis._proc.pid])
    split = user_system(worker.proc.pid)
    edited, enqueued = bench.edit(ids, tag)
    _wait(lambda: bench.all_clean(ids), args.timeout, f"{len(ids)} syncs ({tag})")
    cpu_worker, cpu_redis = cpu_seconds([worker.proc.pid]) - cpu_worker, cpu_seconds([env.redis._proc.pid]) - cpu_redis
    system_s = user_system(worker.proc.pid)[1] - split[1]
    commands = command_counts(broker) - commands
    if profiler is not None:
        profiler.stop()
    env.set_latency(0)
    done = bench.clean_times(edited)
    bench.verify(ids, tag)
    window = max(done.values()) - min(enqueued.values())
    calls = bench.calls_per_sync(ids, edited, done)
    n = len(ids)
    return {"syncs_per_s": n / window, "calls": calls, "worker_ms": cpu_worker / n * 1000,
            "system_ms": system_s / n * 1000,
            "redis_ms": cpu_redis / n * 1000, "commands": {k: v / n for k, v in commands.items() if k != "info"},
            "ceiling": args.concurrency / (calls * args.latency_ms / 1000.0) if args.latency_ms else None,
            "load": load}


def run(args) -> str:
    base_tree = export_tree(args.base)
    trees = {"base": base_tree, "head": REPO}
    env = BenchEnv().start()
    results: dict[str, list[dict]] = {"base": [], "head": []}
    try:
        args.mode = "enqueue"
        bench = Bench(env, args)
        registered, _ = env.handoff_worker_note()
        if registered:
            env.worker(["kommunikation"], 2, name="kommunikation")
        setup = start_worker(env, REPO, "setup", args.concurrency)
        ids = bench.setup(args.n)
        bench.quiesce()
        setup.stop()
        order = ("base", "head")
        for round_no in range(args.rounds):
            for variant in order if round_no % 2 == 0 else order[::-1]:
                worker = start_worker(env, trees[variant], f"{variant}{round_no}", args.concurrency)
                profile_to = None
                if args.profile:
                    profile_to = Path(args.profile) / f"worker-{variant}-{round_no}.raw"
                    profile_to.parent.mkdir(parents=True, exist_ok=True)
                try:
                    results[variant].append(burst(bench, env, worker, ids, f"{variant} {round_no}", args, profile_to))
                finally:
                    worker.stop()
    finally:
        env.close()
        shutil.rmtree(base_tree, ignore_errors=True)
    return report(args, results)


def report(args, results: dict[str, list[dict]]) -> str:
    rows = []
    for variant, runs in results.items():
        for i, r in enumerate(runs):
            ratio = f"{r['syncs_per_s'] / r['ceiling']:.2f}" if r["ceiling"] else "n/a"
            rows.append([variant, i + 1, f"{r['load']:.1f}", f"{r['calls']:.2f}", f"{r['syncs_per_s']:.1f}", ratio,
                         f"{r['worker_ms']:.2f}", f"{r['system_ms']:.2f}", f"{r['redis_ms']:.2f}",
                         f"{sum(r['commands'].values()):.1f}"])
    out = [table(["build", "round", "load avg (1 min)", "calls/sync", "syncs/s", "ratio to C/(calls*L)",
                  "worker CPU ms/sync", "of it system (kernel)", "Redis CPU ms/sync", "Redis commands/sync"], rows,
                 f"Worker CPU per Beteiligte sync: base {args.base} vs this tree (N = {args.n}, "
                 f"L = {args.latency_ms} ms, C = {args.concurrency} threads x 1 process)")]
    medians = {v: statistics.median(r["worker_ms"] for r in runs) for v, runs in results.items() if runs}
    if len(medians) == 2:
        out.append(f"\nMedian worker CPU per sync: base {medians['base']:.2f} ms, head {medians['head']:.2f} ms "
                   f"(head/base = {medians['head'] / medians['base']:.2f}).")
    commands = {v: collections.Counter() for v in results}
    for variant, runs in results.items():
        for r in runs:
            commands[variant].update({k: v / len(runs) for k, v in r["commands"].items()})
    names = sorted(set(commands["base"]) | set(commands["head"]), key=lambda k: -commands["base"].get(k, 0))
    out.append("\n" + table(["Redis command", "base per sync", "head per sync"],
                            [[k, f"{commands['base'].get(k, 0):.2f}", f"{commands['head'].get(k, 0):.2f}"]
                             for k in names if max(commands["base"].get(k, 0), commands["head"].get(k, 0)) >= 0.05],
                            "Redis commands per sync (all clients: worker, bench, idle workers)"))
    if args.profile:
        profiles = {}
        for variant in results:
            stacks: dict = collections.Counter()
            for raw in sorted(Path(args.profile).glob(f"worker-{variant}-*.raw")):
                stacks.update(read_stacks(raw))
            profiles[variant] = stacks
        if all(profiles.values()) and len(medians) == 2:
            shares = {v: by_category(st) for v, st in profiles.items()}
            names = sorted(set(shares["base"]) | set(shares["head"]), key=lambda k: -shares["base"].get(k, 0))
            out.append("\n" + table(
                ["where the worker's CPU goes", "base %", "base ms/sync", "head %", "head ms/sync"],
                [[k, f"{shares['base'].get(k, 0) * 100:.1f}", f"{shares['base'].get(k, 0) * medians['base']:.2f}",
                  f"{shares['head'].get(k, 0) * 100:.1f}", f"{shares['head'].get(k, 0) * medians['head']:.2f}"]
                 for k in names],
                "py-spy --gil samples by category (ms/sync = share x median worker CPU per sync)"))
        for variant, stacks in profiles.items():
            if not stacks:
                continue
            rows, total = top_functions(stacks, args.top)
            out.append("\n" + table(["function (inclusive)", "self %", "inclusive %"], rows,
                                    f"py-spy, {variant}: top functions by inclusive time ({total} samples)"))
            out.append("\n" + table(["function (self)", "self %"], self_top(stacks, args.top),
                                    f"py-spy, {variant}: top functions by self time"))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=BASE_COMMIT, help="commit of the `base` build")
    parser.add_argument("--rounds", type=int, default=3, help="bursts per build (alternating)")
    parser.add_argument("--n", type=int, default=200, help="entities edited per burst")
    parser.add_argument("--latency-ms", type=int, default=50, help="simulated latency per call, both systems")
    parser.add_argument("--concurrency", type=int, default=8, help="threads of the worker")
    parser.add_argument("--warm-up", type=int, default=24, help="syncs before the measured burst")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for a burst")
    parser.add_argument("--profile", metavar="DIR", help="sample each burst with py-spy into DIR")
    parser.add_argument("--profile-rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--all-threads", action="store_true",
                        help="sample every running thread, not only the GIL's holder (py-spy without --gil)")
    parser.add_argument("--top", type=int, default=25, help="rows of each profile table")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    print(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
