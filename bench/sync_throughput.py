"""Beteiligte sync throughput and latency (SPEC §9): N entities made dirty at once, latency L, C worker slots.

Phases, all against the simulators with a real `celery worker` subprocess
(threads pool, C slots):
1. set-up (L = 0): N + M records created by users, synced to Advoware by the
   product (create path), so every record is a synced pair;
2. burst (L ms on every EspoCRM and Advoware call): users edit all N records
   at once; the edits reach the product as EspoCRM's signed webhooks to the
   shim on a real port (`--mode webhook`, default) or are enqueued directly
   in one round trip (`--mode enqueue`). Prints syncs/s, the ceiling
   C / (calls per sync x L), their ratio (target >= 0.8), and the latency of
   each entity from its edit to `clean` on both sides (which includes the
   queueing a burst implies);
3. paced (L = 0): M further edits, one every `--paced-interval` s (below
   capacity), latency from edit (and from webhook receipt) to `clean`: the
   per-entity sync latency of SPEC §9 (p50 < 150 ms, p99 < 500 ms).

"Clean on both sides" is the end of the sync's EspoCRM write-back (the
Advoware PUT comes before it), read from the simulator's request log.

    .venv/bin/python -m bench.sync_throughput --n 200 --latency-ms 50 --concurrency 8
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import threading
import time

from bench.common import BenchEnv, cpu_seconds, percentile, summary_ms, table

PUT_ESPO = "PUT /api/v1/CBeteiligte/<record_id>"
RATIO_TARGET = 0.8
P50_TARGET, P99_TARGET = 0.150, 0.500


class ReceiveClock:
    """WSGI middleware: when each entity id first reached the shim (monotonic), per phase."""

    def __init__(self, app):
        self.app = app
        self.received: dict[str, float] = {}
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        now = time.monotonic()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            ids = [item["id"] for item in json.loads(body)]
        except (ValueError, TypeError, KeyError):
            ids = []
        with self.lock:
            for entity_id in ids:
                self.received.setdefault(entity_id, now)
        return self.app(environ, start_response)


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit(f"bench.sync_throughput: timed out waiting for {what}")


class Bench:
    def __init__(self, env: BenchEnv, args):
        self.env, self.args = env, args
        self.espo = env.sandbox.state("espocrm")
        self.advo = env.sandbox.state("advoware")
        self.kit_espo = env.sandbox.kit("espocrm")
        self.clock: ReceiveClock | None = None
        from bitbylaw_tasks.messages import beteiligte_sync
        from bitbylaw_tasks.enqueue import enqueuer_for

        self.task_for = beteiligte_sync
        self.enqueuer = enqueuer_for(env.app)

    def all_clean(self, ids) -> bool:
        with self.espo.lock:
            return all(self.espo.records[i]["syncStatus"] == "clean" for i in ids)

    def setup(self, count: int) -> list[str]:
        """`count` synced pairs, created through the product (create path, L = 0)."""
        ids = [self.espo.human_create({"firstName": "Bench", "lastName": f"Person {i}", "salutationName": "Herr"})["id"]
               for i in range(count)]
        self.enqueuer.enqueue([self.task_for(i, "create", "webhook") for i in ids])
        _wait(lambda: self.all_clean(ids), self.args.timeout, f"{count} creates")
        return ids

    def edit(self, ids: list[str], tag: str, pace: float = 0.0) -> tuple[dict[str, float], dict[str, float]]:
        """User edits of a synced field: (id -> edit time, id -> enqueue time); enqueue mode queues the syncs."""
        edited, enqueued = {}, {}
        enqueue = self.args.mode == "enqueue"
        for n, entity_id in enumerate(ids):
            edited[entity_id] = time.monotonic()
            self.espo.human_update(entity_id, {"lastName": f"{tag} {n}"})
            if enqueue and pace:
                enqueued[entity_id] = time.monotonic()
                self.enqueuer.enqueue([self.task_for(entity_id, "update", "webhook")])
            if pace:
                time.sleep(max(0.0, edited[entity_id] + pace - time.monotonic()))
        if enqueue and not pace:
            moment = time.monotonic()
            self.enqueuer.enqueue([self.task_for(i, "update", "webhook") for i in ids])
            enqueued = dict.fromkeys(ids, moment)
        return edited, enqueued

    def clean_times(self, edited: dict[str, float]) -> dict[str, float]:
        """id -> end of the first EspoCRM write-back after its edit (from the simulator's request log)."""
        out: dict[str, float] = {}
        with self.kit_espo.lock:
            log = list(self.kit_espo.log)
        for entry in log:
            if entry["endpoint"] != PUT_ESPO:
                continue
            entity_id = entry["path"].rsplit("/", 1)[-1]
            if entity_id in edited and entity_id not in out and entry["start"] >= edited[entity_id]:
                out[entity_id] = entry["end"]
        return out

    def calls_per_sync(self, ids: list[str], edited: dict[str, float], done: dict[str, float]) -> float:
        """Mean calls of the Beteiligte sync per entity: calls on its EspoCRM record and Advoware Beteiligter
        between its edit and its write-back (the Kommunikation sync only starts after that)."""
        betnr_of = {str(self.espo.records[i]["betnr"]): i for i in ids}
        calls = 0
        for kit in (self.env.sandbox.kit("espocrm"), self.env.sandbox.kit("advoware")):
            with kit.lock:
                log = list(kit.log)
            for entry in log:
                last = entry["path"].rstrip("/").rsplit("/", 1)[-1]
                entity_id = last if last in done else betnr_of.get(last) if "/Beteiligte/" in entry["path"] else None
                if entity_id is not None and edited[entity_id] <= entry["start"] and entry["end"] <= done[entity_id]:
                    calls += 1
        return calls / len(ids)

    def quiesce(self, quiet: float = 0.3) -> None:
        """Wait until no queue holds work and the simulators saw no call for `quiet` seconds."""
        broker = self.env.redis_client(0)
        kits = [self.env.sandbox.kit(n) for n in ("espocrm", "advoware")]

        def idle() -> bool:
            if broker.llen("beteiligte") or broker.llen("kommunikation"):
                return False
            now = time.monotonic()
            for kit in kits:
                with kit.lock:
                    if kit.log and now - kit.log[-1]["end"] < quiet:
                        return False
            return True

        _wait(idle, self.args.timeout, "the queues to drain")

    def verify(self, ids: list[str], tag: str) -> None:
        for n, entity_id in enumerate(ids):
            record = self.espo.get(entity_id)
            advo = self.advo.get_beteiligte(int(record["betnr"]))
            if record["syncStatus"] != "clean" or advo["name"] != f"{tag} {n}":
                raise SystemExit(f"bench.sync_throughput: {entity_id} not converged ({record['syncStatus']})")

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: worker process(es), Redis, and this process (simulators, shim, bench)."""
        return {"worker": cpu_seconds([w.proc.pid for w in self.env.workers]),
                "redis": cpu_seconds([self.env.redis._proc.pid]), "simulators": time.process_time()}

    def phase(self, ids: list[str], tag: str, latency_ms: int, pace: float = 0.0) -> dict:
        self.quiesce()
        self.env.set_latency(latency_ms)
        self.env.reset_calls()
        cpu_before = self.cpu()
        if self.clock is not None:
            with self.clock.lock:
                self.clock.received.clear()
        edited, enqueued = self.edit(ids, tag, pace)
        _wait(lambda: self.all_clean(ids), self.args.timeout, f"{len(ids)} syncs ({tag})")
        cpu_ms = {k: (v - cpu_before[k]) / len(ids) * 1000 for k, v in self.cpu().items()}
        self.env.set_latency(0)
        done = self.clean_times(edited)
        if len(done) != len(ids):
            raise SystemExit(f"bench.sync_throughput: {len(ids) - len(done)} write-backs missing from the log")
        self.verify(ids, tag)
        arrived = dict(self.clock.received) if self.clock is not None else enqueued
        first_arrival = min(arrived.get(i, edited[i]) for i in ids)
        window = max(done.values()) - first_arrival
        return {
            "n": len(ids), "window_s": window, "syncs_per_s": len(ids) / window,
            "calls_per_sync": self.calls_per_sync(ids, edited, done), "cpu_ms": cpu_ms,
            "from_edit": [done[i] - edited[i] for i in ids],
            "from_receipt": [done[i] - arrived[i] for i in ids if i in arrived],
        }


def run(args) -> tuple[dict, dict, str]:
    env = BenchEnv(webhook_interval=args.webhook_interval).start()
    try:
        bench = Bench(env, args)
        hooks = env.sandbox.state("espocrm").hooks
        hooks.event_portion_size = hooks.batch_size  # split up to 50 events per job run (EspoCRM: 20)
        registered, note = env.handoff_worker_note()
        for n in range(args.processes):
            env.worker(["beteiligte"], args.concurrency, name=f"beteiligte{n + 1}")
        if registered:
            env.worker(["kommunikation"], args.concurrency, name="kommunikation")
        ids = bench.setup(args.n + args.paced)
        burst_ids, paced_ids = ids[:args.n], ids[args.n:]
        if args.mode == "webhook":
            def timed(app):
                bench.clock = ReceiveClock(app)
                return bench.clock

            env.shim(wrap=timed)
        burst = bench.phase(burst_ids, "Burst", args.latency_ms)
        paced = bench.phase(paced_ids, "Paced", 0, pace=args.paced_interval) if paced_ids else {}
    finally:
        env.close()
    return burst, paced, note


def report(args, burst: dict, paced: dict, note: str) -> tuple[str, bool]:
    ok = True
    calls = burst["calls_per_sync"]
    if args.latency_ms > 0:
        ceiling = args.concurrency * args.processes / (calls * args.latency_ms / 1000.0)
        ratio = burst["syncs_per_s"] / ceiling
        ok &= ratio >= args.bar
        ceiling_s, ratio_s = f"{ceiling:.1f}", f"{ratio:.2f} ({'meets' if ratio >= args.bar else 'MISSES'} >= {args.bar:g})"
    else:
        ceiling_s, ratio_s = "n/a (L = 0)", "n/a"
    slots = f"{args.concurrency * args.processes} ({args.concurrency} x {args.processes})"
    rows = [["mode", args.mode], ["N entities (burst)", burst["n"]], ["L per call", f"{args.latency_ms} ms"],
            ["C worker slots (threads x processes)", slots], ["calls per sync (measured)", f"{calls:.2f}"],
            ["burst window (first arrival -> last clean)", f"{burst['window_s']:.2f} s"],
            ["syncs/s", f"{burst['syncs_per_s']:.1f}"], ["ceiling C/(calls*L)", ceiling_s], ["ratio", ratio_s],
            ["burst latency edit -> clean (includes queueing)", summary_ms(burst["from_edit"])],
            ["CPU per sync (workers / Redis / simulators+shim)",
             " / ".join(f"{burst['cpu_ms'][k]:.1f} ms" for k in ("worker", "redis", "simulators"))]]
    if paced:
        key = "from_receipt" if args.mode == "webhook" else "from_edit"
        p50, p99 = percentile(paced[key], 0.5), percentile(paced[key], 0.99)
        meets = p50 < P50_TARGET and p99 < P99_TARGET
        ok &= meets
        rows.append([f"paced latency edit -> clean (L = 0, one edit per {args.paced_interval * 1000:.0f} ms)",
                     summary_ms(paced["from_edit"])])
        if args.mode == "webhook":
            rows.append(["paced latency webhook received -> clean", summary_ms(paced["from_receipt"])])
        rows.append(["per-entity latency target (p50 < 150 ms, p99 < 500 ms)",
                     f"{'meets' if meets else 'MISSES'} ({'webhook received' if args.mode == 'webhook' else 'enqueue'}"
                     f" -> clean: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms)"])
    text = table(["figure", "value"], rows, "Beteiligte sync throughput and latency (SPEC §9)")
    extra = [note]
    if args.mode == "webhook":
        extra.append(f"The EspoCRM simulator's webhook job ran every {args.webhook_interval * 1000:.0f} ms "
                     "(real EspoCRM: a cron job every few minutes): 'edit -> clean' includes up to one such period "
                     "of waiting; 'webhook received -> clean' is the product alone.")
    return text + "\n\n" + "\n".join(extra), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="entities edited at once (burst)")
    parser.add_argument("--latency-ms", type=int, default=50, help="simulated latency per call, both systems")
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker process")
    parser.add_argument("--processes", type=int, default=1, help="beteiligte worker processes (C = threads x this)")
    parser.add_argument("--mode", choices=("webhook", "enqueue"), default="webhook")
    parser.add_argument("--paced", type=int, default=100, help="entities for the paced latency phase (0: skip)")
    parser.add_argument("--paced-interval", type=float, default=0.05, help="seconds between paced edits")
    parser.add_argument("--webhook-interval", type=float, default=0.02, help="simulated EspoCRM webhook job period")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a phase")
    parser.add_argument("--bar", type=float, default=RATIO_TARGET,
                        help="ratio to the ceiling the burst must reach (issue 15: 0.85 at L = 50 ms, 0.6 at 20 ms)")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    burst, paced, note = run(args)
    text, ok = report(args, burst, paced, note)
    print(text)
    if not ok:
        print("\nA SPEC §9 target is missed (see above).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
