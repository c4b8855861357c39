"""The alert rules (`ops/prometheus/rules.yml`) under Debian's promtool, and a real Prometheus scraping the
shim's /metrics: PromQL through its HTTP API returns the seeded counts, and the rules load and fire."""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from bitbylaw_tasks.devredis import free_port
from bitbylaw_tasks.settings import get_settings
from bitbylaw_tasks.web import create_app
from integrations.sandbox.kit import ServerThread
from ops_helpers import FAILED_ID, SEEDED_FAILED, SEEDED_OK, binary, seed

RULES_DIR = Path(__file__).resolve().parent.parent / "ops" / "prometheus"
RULES = RULES_DIR / "rules.yml"


def _promtool(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess:
    return subprocess.run([binary("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_rules():
    done = _promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 10 rules found" in done.stdout


def test_promtool_unit_tests_pass_and_would_catch_a_wrong_threshold(tmp_path):
    done = _promtool("test", "rules", "rules_test.yml")
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr
    # the same tests against rules whose freshness threshold is 20 h instead of 2 h must fail
    shutil.copy(RULES_DIR / "rules_test.yml", tmp_path)
    (tmp_path / "rules.yml").write_text(RULES.read_text().replace("> 7200", "> 72000"))
    wrong = _promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert wrong.returncode != 0 and "BitbylawAdvowareChecksStale" in wrong.stdout + wrong.stderr


def _names_in_rules() -> tuple[set[str], set[str]]:
    """(metrics the shim must render, metrics marked future) as named in rules.yml's expressions."""
    now, future, marked = set(), set(), False
    for line in RULES.read_text().splitlines():
        if line.strip().startswith("# future"):
            marked = True
        for name in re.findall(r"\b(bitbylaw_[a-z_]+)", line.split("#")[0]):
            (future if marked else now).add(name)
        if line.strip().startswith("expr:"):
            marked = False
    return now, future


def test_every_metric_the_rules_name_is_rendered(lock_redis):
    seed(lock_redis)
    text = create_app(get_settings()).test_client().get("/metrics").get_data(as_text=True)
    rendered = set(re.findall(r"^(bitbylaw_[a-z_]+?)(?:_bucket|_sum|_count)?[{ ]", text, re.M))
    needed, future = _names_in_rules()
    assert needed and needed <= rendered, needed - rendered
    assert future == set()


@pytest.fixture
def shim():
    server = ServerThread(create_app(get_settings())).start()
    yield server
    server.stop()


@pytest.fixture
def prometheus(tmp_path, shim):
    """Debian's Prometheus scraping the shim every second, with the rules loaded."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {RULES}
scrape_configs:
  - job_name: bitbylaw
    static_configs:
      - targets: ['127.0.0.1:{shim.port}']
""")
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen([binary("prometheus"), f"--config.file={config}",
                                f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: requests.get(f"{url}/-/ready", timeout=1).status_code == 200, "Prometheus ready",
               tmp_path / "prometheus.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _until(check, what: str, log: Path | None = None, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except requests.RequestException:
            value = None
        if value:
            return value
        time.sleep(0.5)
    tail = log.read_text()[-2000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def _query(url: str, promql: str) -> list[dict]:
    body = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def _value(url: str, promql: str) -> float | None:
    result = _query(url, promql)
    return float(result[0]["value"][1]) if result else None


def test_real_prometheus_scrapes_the_shim_and_promql_returns_the_seeded_counts(lock_redis, prometheus):
    seed(lock_redis)
    ok = f'sum(bitbylaw_syncs_total{{domain="beteiligte",result="ok"}})'
    assert _until(lambda: _value(prometheus, ok) == SEEDED_OK["beteiligte"], "the scraped sync count")
    assert _value(prometheus, 'sum by (domain) (bitbylaw_syncs_total{domain="calendar",result="failed"})') \
        == SEEDED_FAILED["calendar"]
    assert _value(prometheus, 'bitbylaw_permanently_failed_entities{domain="beteiligte"}') == 1
    assert _value(prometheus, 'bitbylaw_failed_entities{domain="calendar"}') == 1
    assert _value(prometheus, "bitbylaw_manual_actions_pending") == 1
    assert _value(prometheus, 'bitbylaw_check_age_seconds{domain="beteiligte",quantile="1"}') == 5400
    assert _value(prometheus, 'up{job="bitbylaw"}') == 1
    rules = requests.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    loaded = [r for g in rules for r in g["rules"]]
    assert len(loaded) == 10 and all(r["health"] == "ok" for r in loaded), loaded
    firing = _until(lambda: [a for a in requests.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
                             if a["labels"]["alertname"] == "BitbylawPermanentlyFailed" and a["state"] == "firing"],
                    "the permanently-failed alert")
    assert firing[0]["labels"]["domain"] == "beteiligte"
    # a second record fails for good: the next scrape shows it
    from bitbylaw_tasks.ops import failures

    failures.mark_permanent(lock_redis, "beteiligte", FAILED_ID[:-1] + "2", "second")
    assert _until(lambda: _value(prometheus, 'bitbylaw_permanently_failed_entities{domain="beteiligte"}') == 2,
                  "the second permanently failed record")
