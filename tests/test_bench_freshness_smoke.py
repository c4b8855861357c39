"""bench.freshness end to end with small parameters (the style of tests/test_bench_smoke.py): it runs, prints
its tables, keeps every 60 s window within the budget and finds every Advoware-only edit."""
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_freshness_prints_its_tables_within_the_budget():
    args = ["--parties", "300", "--advoware-edits", "40", "--espocrm-edits", "80", "--employees", "3",
            "--per-minute", "20", "--headroom", "4", "--hours", "19"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "SANDBOX_"))}
    proc = subprocess.run([sys.executable, "-m", "bench.freshness", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    out = proc.stdout
    assert re.search(r"\| Advoware-only edit -> in EspoCRM, all\s+\| p50 .*\(n=40\)", out)
    assert re.search(r"\|\s+not yet seen at the end\s+\| 0\s", out)
    window = int(re.search(r"\| Advoware calls in any 60 s window .*\| max (\d+),", out).group(1))
    assert 0 < window <= 20
    assert re.search(r"interactive reserve 4/min \(background refused at 16\)", out)  # the product's gate
    assert re.search(r"\| background at the gate, per call: checks\s+\| p50 ", out)
    assert re.search(r"\|\s+calendar\s+\| p50 .*\(n=\d+\)", out)
    for consumer in ("checks", "webhook syncs", "Kommunikation syncs", "calendar"):
        assert re.search(rf"\| {consumer}\s+\| \d+\s+\| [\d.]+", out), consumer
