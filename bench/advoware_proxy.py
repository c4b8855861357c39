"""Advoware proxy overhead per call: the same GET sent to the Advoware simulator directly and through the proxy
(issue 13: target < 2 ms p50 added at zero simulated latency), and the proxy as plain WSGI middleware (what the
product ships) against the same proxy behind a Flask route (the alternative: `flask_variant`).

Everything runs on loopback in separate processes: a private Redis, the simulator under gunicorn (1 sync worker,
zero latency, seeded), and the web app under gunicorn with the flags of `bitbylaw web` (2 sync workers),
LOG_LEVEL=INFO (the audit line is written, to a file). One client sends the calls one after another, the targets
alternating per round so that machine noise falls on all of them; direct calls carry the very token the proxy
uses (read from the shared Redis cache). Prints Markdown tables for docs/PERFORMANCE.md.

    .venv/bin/python -m bench.advoware_proxy --calls 400 --rounds 5
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.common import cpu_seconds, percentile, table
from bench.webhook_shim import Gunicorn, free_port

REPO = Path(__file__).resolve().parents[1]
API = "/api/v1/advonet"


def flask_variant():
    """The web app with the proxy behind a Flask route instead of the WSGI middleware (bench only)."""
    from flask import Response, request

    from bitbylaw_tasks.proxy.service import AdvowareProxy
    from bitbylaw_tasks.proxy.wsgi import proxy_request
    from bitbylaw_tasks.settings import get_settings
    from bitbylaw_tasks.web import wsgi_app

    app = wsgi_app()
    app.wsgi_app = app.wsgi_app.app  # take the proxy middleware (outermost) off again
    proxy = AdvowareProxy.from_settings(get_settings())

    @app.route("/advoware/<path:rest>", methods=["GET", "POST", "PUT", "DELETE"])
    def proxied(rest):
        answer = proxy.handle(proxy_request(request.environ))
        response = Response(answer.body, status=answer.status, headers=answer.all_headers())
        response.call_on_close(lambda: proxy.record(answer))  # as the shipped middleware: after the answer
        return response

    return app


def bare_passthrough():
    """The floor of any proxy here: a WSGI app that forwards the path with a fixed token through urllib3 and
    returns the answer — no key, no rules, no budget, no audit (bench only; BENCH_TOKEN, BENCH_UPSTREAM)."""
    import urllib3

    pool = urllib3.PoolManager()
    upstream, token = os.environ["BENCH_UPSTREAM"], os.environ["BENCH_TOKEN"]

    def app(environ, start_response):
        answer = pool.request("GET", upstream + environ["PATH_INFO"][len("/advoware"):],
                              headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        start_response(f"{answer.status} OK", [("Content-Type", "application/json"),
                                               ("Content-Length", str(len(answer.data)))])
        return [answer.data]

    return app


class Server(Gunicorn):
    """`bench.webhook_shim.Gunicorn`, its output in a temp file (the audit writes a log line per call: a pipe
    nobody reads would fill and block the workers), ready when `path` answers."""

    worker_class = "sync"   # every server of a run alike (main: --worker-class)

    def __init__(self, target: str, env: dict[str, str], workers: int, tree: Path = REPO):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="bench-proxy-", suffix=".log", delete=False)
        threads = ["--threads", "4"] if self.worker_class == "gthread" else []
        argv = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", self.worker_class,
                *threads, "--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "5", target]
        self.proc = subprocess.Popen(argv, cwd=tree, env={**env, "PYTHONPATH": str(tree)}, stdout=self.log,
                                     stderr=self.log)

    def wait_ready(self, path: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                requests.get(self.url + path, timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("gunicorn did not answer in time")

    def pids(self) -> list[int]:
        """The master and its workers."""
        return [self.proc.pid, *self.worker_pids()]

    def stop(self) -> None:
        super().stop()
        Path(self.log.name).unlink(missing_ok=True)


def timed_calls(session: requests.Session, urls: list[str], headers: dict, expect: int) -> list[float]:
    out = []
    for url in urls:
        start = time.perf_counter()
        response = session.get(url, headers=headers, timeout=10)
        out.append(time.perf_counter() - start)
        if response.status_code != expect:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
    return out


def breakdown(settings, secret: str, direct_url: str, token: str, path: str, calls: int) -> list[list[str]]:
    """CPU per call of the proxy's parts, measured in this process against the same simulator."""
    import urllib3

    from bitbylaw_tasks.proxy import audit, keys
    from bitbylaw_tasks.proxy.service import AdvowareProxy, ProxyRequest

    proxy = AdvowareProxy.from_settings(settings)
    key_id, key_digest = keys.lookup(proxy.redis, secret).id, keys.digest(secret)
    request = ProxyRequest("GET", "/advoware" + API + path, {"x-api-key": secret}, None, lambda limit: b"")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    pool, session = urllib3.PoolManager(), requests.Session()
    entry = audit.AuditEntry(time.time(), "id", "bench", "GET", "advonet/Beteiligte/{id}", 200, 1.0, 0, 500, "x")
    parts = {
        "whole proxy call (handle + audit record)": lambda: proxy.record(proxy.handle(request)),
        "of which: forward (token, urllib3 call, read, redaction)": lambda: proxy.client.forward("GET", path,
                                                                                                admit=lambda: None),
        "of which: admission (one Lua script: key active, pause, windows, gate)": lambda: proxy.budget.admit(
            key_id, key_digest),
        "of which: key lookup (a key not yet remembered, or a refusal)": lambda: keys.lookup(proxy.redis, secret),
        "of which: audit record (log line + pipeline)": lambda: audit.record(proxy.redis, entry, 1000),
        "for comparison: the bare urllib3 GET": lambda: pool.request("GET", direct_url, headers=headers).data,
        "for comparison: the same GET with requests": lambda: session.get(direct_url, headers=headers).content,
    }
    spent = {name: 0.0 for name in parts}
    for _ in range(calls):
        for name, call in parts.items():
            start = time.process_time()
            call()
            spent[name] += time.process_time() - start
    return [[name, f"{total / calls * 1000:.2f}"] for name, total in spent.items()]


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per target per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker-class", choices=["sync", "gthread"], default="sync",
                        help="gunicorn worker class of every server (sync: a connection per request, as "
                             "`bitbylaw web` runs; gthread: 4 threads, keep-alive for the client and the proxy alike)")
    parser.add_argument("--compare-tree", type=Path, help="a checkout of an earlier commit (`git archive COMMIT | "
                        "tar -x -C DIR`): its proxy runs as one more target in the same rounds (before/after)")
    parser.add_argument("--breakdown-calls", type=int, default=300, help="calls per part of the CPU breakdown")
    args = parser.parse_args()
    Server.worker_class = args.worker_class

    from bitbylaw_tasks.devredis import PrivateRedis

    redis_server = PrivateRedis().start()
    servers: list[Server] = []
    try:
        env = {**os.environ, "BITBYLAW_ENV_FILE": os.devnull, "SENTRY_DSN": "", "LOG_LEVEL": "INFO",
               "REDIS_BROKER_URL": redis_server.url(0), "REDIS_LOCK_URL": redis_server.url(1),
               "REDIS_CALENDAR_URL": redis_server.url(2), "REDIS_RESULT_URL": redis_server.url(3),
               "ADVOWARE_MAX_REQUESTS_PER_MINUTE": "100000000", "PYTHONPATH": str(REPO)}
        env.pop("ADVOWARE_BASE_URL", None)
        simulator = Server("integrations.sandbox.advoware:create_advoware_app()", env, workers=1)
        servers.append(simulator)
        simulator.wait_ready("/_sandbox/info")
        made = requests.post(simulator.url + "/_sandbox/seed", json={"count": 20, "employees": 5}, timeout=10).json()
        env["SANDBOX_ADVOWARE_PORT"] = str(simulator.port)
        shipped = Server("bitbylaw_tasks.web:wsgi_app()", env, workers=2)
        variant = Server("bench.advoware_proxy:flask_variant()", env, workers=2)
        servers += [shipped, variant]
        shipped.wait_ready("/healthz")
        variant.wait_ready("/healthz")

        os.environ.update({k: v for k, v in env.items() if k.startswith(("REDIS_", "SANDBOX_", "ADVOWARE_", "BITBYLAW_"))})
        import redis

        from bitbylaw_tasks.clients import advoware_client
        from bitbylaw_tasks.proxy import audit, keys
        from bitbylaw_tasks.settings import load_settings

        lock = redis.Redis.from_url(redis_server.url(1))
        secret = keys.create(lock, "bench", "read", ["Beteiligte"])[1]
        token = advoware_client(load_settings(env)).token()   # the token the proxy's processes share
        bare = Server("bench.advoware_proxy:bare_passthrough()", {**env, "BENCH_TOKEN": token,
                                                                   "BENCH_UPSTREAM": simulator.url}, workers=2)
        servers.append(bare)
        bare.wait_ready("/healthz")
        before = None
        if args.compare_tree:
            before = Server("bitbylaw_tasks.web:wsgi_app()", env, workers=2, tree=args.compare_tree.resolve())
            servers.append(before)
            before.wait_ready("/healthz")
        paths = [f"/Beteiligte/{made['betNrs'][i % len(made['betNrs'])]}" for i in range(args.calls)]
        targets = {
            "direct to the simulator": ([simulator.url + API + p for p in paths], {"Authorization": f"Bearer {token}"}, 200),
            "through the proxy (WSGI middleware, shipped)": ([shipped.url + "/advoware" + API + p for p in paths],
                                                             {"X-Api-Key": secret}, 200),
            "through the proxy (Flask route, alternative)": ([variant.url + "/advoware" + API + p for p in paths],
                                                             {"X-Api-Key": secret}, 200),
            "bare pass-through (the floor: one more HTTP hop, nothing else)": (
                [bare.url + "/advoware" + API + p for p in paths], {}, 200),
            **({f"through the proxy as of {args.compare_tree.name} (before)": (
                [before.url + "/advoware" + API + p for p in paths], {"X-Api-Key": secret}, 200)} if before else {}),
            "proxy refusal, no Advoware call (403 allow-list)": (
                [shipped.url + "/advoware" + API + "/Termine" for _ in paths], {"X-Api-Key": secret}, 403),
        }
        samples = {name: [] for name in targets}
        cpu = {name: 0.0 for name in targets}  # CPU seconds of simulator, web app and Redis during the calls
        parts = {"simulator": simulator.pids(),
                 "web app": [pid for server in servers[1:] for pid in server.pids()],
                 "Redis": [redis_server._proc.pid]}
        by_part = {(name, part): 0.0 for name in targets for part in parts}
        with requests.Session() as session:
            for name, (urls, headers, expect) in targets.items():  # warm-up: imports, pools, the first token read
                timed_calls(session, urls[:20], headers, expect)
            lock.delete(audit.STREAM)
            for _ in range(args.rounds):
                for name, (urls, headers, expect) in targets.items():
                    before = {part: cpu_seconds(pids) for part, pids in parts.items()}
                    samples[name] += timed_calls(session, urls, headers, expect)
                    time.sleep(0.05)  # the last call's audit write (after its answer) lands in this batch
                    for part, pids in parts.items():
                        spent = cpu_seconds(pids) - before[part]
                        by_part[name, part] += spent
                        cpu[name] += spent
        direct = samples["direct to the simulator"]
        rows = []
        for name, values in samples.items():
            added = "" if values is direct else f"{(percentile(values, 0.5) - percentile(direct, 0.5)) * 1000:+.2f}"
            added_cpu = "" if values is direct else \
                f"{(cpu[name] / len(values) - cpu['direct to the simulator'] / len(direct)) * 1000:+.2f}"
            rows.append([name, len(values), ms(values, 0.1), ms(values, 0.5), ms(values, 0.9), ms(values, 0.99),
                         added, f"{cpu[name] / len(values) * 1000:.2f}", added_cpu])
        print(table(["target", "calls", "p10 ms", "p50 ms", "p90 ms", "p99 ms", "p50 added ms", "server CPU ms/call",
                     "CPU added ms/call"], rows,
                    "Advoware proxy: latency per call, one sequential client, zero simulated latency"))
        print()
        print(table(["target", *(f"{part} CPU ms/call" for part in parts)],
                    [[name, *(f"{by_part[name, part] / len(samples[name]) * 1000:.2f}" for part in parts)]
                     for name in targets]))
        entries = audit.read(lock, limit=10 ** 6)
        forwarded = [e.ms / 1000 for e in entries if e.reason == "forwarded"]
        refused = [e.ms / 1000 for e in entries if e.reason == "allow_list"]
        print()
        print(table(["inside the proxy (audit `ms`)", "calls", "p50 ms", "p99 ms"], [
            ["forwarded (includes Advoware's answer)", len(forwarded), ms(forwarded, 0.5), ms(forwarded, 0.99)],
            ["refused (key, rules, audit; no Advoware call)", len(refused), ms(refused, 0.5), ms(refused, 0.99)]]))
        print()
        print(table(["in one process, CPU per call (process time)", "ms"],
                    breakdown(load_settings(env), secret, simulator.url + API + paths[0], token, paths[0],
                              args.breakdown_calls),
                    f"Where the proxy's CPU goes (no HTTP server in front; alternating, {args.breakdown_calls} calls each)"))
        shipped_values = samples["through the proxy (WSGI middleware, shipped)"]
        added_p50 = (percentile(shipped_values, 0.5) - percentile(direct, 0.5)) * 1000
        added_p10 = (percentile(shipped_values, 0.1) - percentile(direct, 0.1)) * 1000
        load = os.getloadavg()[0]
        print(f"\nadded p50 (shipped): {added_p50:.2f} ms (p10: {added_p10:.2f} ms) -> target < 2 ms: "
              f"{'met' if added_p50 < 2 else 'NOT met'}; load average during the run: {load:.1f} on {os.cpu_count()} cores; "
              f"gunicorn {args.worker_class} workers")
    finally:
        for server in servers:
            server.stop()
        redis_server.stop()


if __name__ == "__main__":
    main()
