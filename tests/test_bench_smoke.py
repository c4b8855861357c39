"""The bench scripts run end to end with tiny parameters, print their tables and exit 0.

Each script is a subprocess with its own private Redis, simulators and worker
(bench/common.py), exactly as an operator runs it; the figures themselves are
not asserted here (they depend on the machine), except what is deterministic:
the API-call budget (bench.api_calls exits 1 when a path exceeds it) and the
sweep's queued set (bench.sweep exits 1 unless it is exactly the due ids).
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CASES = {
    "api_calls": (["--timeout", "15"], [r"\| create\s+\| webhook\s+\| create ", r"\| no change \(rolling check\)",
                                        "Every path within the SPEC §4.8 budget."]),
    "sync_throughput": (["--n", "16", "--latency-ms", "20", "--concurrency", "4", "--paced", "8",
                         "--paced-interval", "0.02", "--timeout", "30"],
                        [r"\| syncs/s\s+\| \d", r"\| ceiling C/\(calls\*L\)\s+\| \d", r"\| ratio\s+\| \d",
                         r"paced latency .*p99 \d+ ms"]),
    "sweep": (["--records", "1200", "--due", "120"],
              [r"\| sweep time", r"queue == due\s*\|\s*yes", r"\| EspoCRM calls\s+\| \d+"]),
    "kommunikation_calls": ([], [r"\| no change \(H1\)\s+\| 1 "]),
    "adressen_calls": ([], [r"\| no change \(three addresses\)\s+\| 2 ", "No-change runs write nothing"]),
    "webhook_shim": (["--duration", "1", "--rounds", "1", "--connections", "2"],
                     [r"\| 1\s+\| bare Flask\s+\| \d+", r"\| 1\s+\| shim\s+\| \d+",
                      r"ratio \(median of rounds\): \d"]),
    "advoware_proxy": (["--calls", "10", "--rounds", "1", "--breakdown-calls", "10"],
                       [r"\| direct to the simulator\s+\| 10 ", r"\| through the proxy \(WSGI middleware, shipped\)\s+\| 10 ",
                        r"\| whole proxy call \(handle \+ audit record\)\s+\| \d", r"added p50 \(shipped\): -?\d"]),
    "threecx_lookup": (["--parties", "200", "--concurrency", "4", "--duration", "1"],
                       [r"lookups: \d+ .*correct \d+, wrong 0, errors 0", r"latency: p50 [\d.]+ ms", r"server cost"]),
    "lead_intake": (["--concurrency", "2", "--duration", "1"], [r"accepted \d+ ", r"statuses \{202: \d+\}"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bench_script_prints_its_table(name):
    args, expected = CASES[name]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "SANDBOX_"))}
    proc = subprocess.run([sys.executable, "-m", f"bench.{name}", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"bench.{name} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for pattern in expected:
        assert re.search(pattern, proc.stdout), f"bench.{name}: /{pattern}/ not in its output:\n{proc.stdout[-3000:]}"
    assert "|---" in proc.stdout
