"""The status page `/status`: its pure parts, its auth, and the page in Debian's chromium (playwright, no
browser download) against a running shim with seeded data — plus Flower's failed-task list after a real
failing sync. The screenshots refresh docs/status-page.png and docs/flower-failures.png when run with
BITBYLAW_UPDATE_SCREENSHOTS=1."""
from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import celeryconfig

from beteiligte_helpers import PERSON, run_sync
from bitbylaw_tasks.devredis import free_port
from bitbylaw_tasks.ops import failures
from bitbylaw_tasks.settings import get_settings
from bitbylaw_tasks.web import create_app
from bitbylaw_tasks.web.status import allowed, chart_svg, counts_24h, credentials
from integrations.sandbox.kit import ServerThread
from ops_helpers import FAILED_ID, FAILED_REASON, OLDER_HOURS, SEEDED_FAILED, SEEDED_OK, binary, seed

DOCS = Path(__file__).resolve().parent.parent / "docs"


def shot(tmp_path: Path, name: str) -> Path:
    """Where a screenshot goes: docs/ when BITBYLAW_UPDATE_SCREENSHOTS=1 (refresh the committed pictures),
    else the test's own directory, so a test run never leaves the checkout modified."""
    return (DOCS if os.environ.get("BITBYLAW_UPDATE_SCREENSHOTS") == "1" else tmp_path) / name
AUTH = ("admin", "admin")  # the default FLOWER_BASIC_AUTH, used by /status when STATUS_BASIC_AUTH is empty


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ------------------------------------------------------------------ pure parts
def test_allowed_accepts_exactly_the_configured_pair():
    assert allowed(_basic("ops", "s3cret:x"), "ops:s3cret:x")
    for header in (None, "", "Basic", "Bearer abc", _basic("ops", "s3cret"), _basic("Ops", "s3cret:x"),
                   "Basic !!notbase64", _basic("ops", "s3cret:x") + "AA"):
        assert not allowed(header, "ops:s3cret:x"), header
    settings = get_settings()
    assert credentials(settings) == settings.flower_basic_auth
    assert credentials(settings.replace(status_basic_auth="a:b")) == "a:b"


def test_counts_and_chart_from_hourly_buckets():
    hours = [(h * 3600, {}) for h in range(21)] + [
        (21 * 3600, {"beteiligte|ok": 4, "beteiligte|failed": 1}),
        (22 * 3600, {"calendar|ok": 2, "beteiligte|retry": 3}),
        (23 * 3600, {"beteiligte|ok": 8, "calendar|failed": 2})]
    assert counts_24h(hours) == {"beteiligte": {"ok": 12, "failed": 1, "retry": 3, "busy": 0},
                                 "calendar": {"ok": 2, "failed": 2, "retry": 0, "busy": 0}}
    svg = str(chart_svg(hours))
    assert svg.count('class="bar-ok"') == 24 and svg.count('class="bar-failed"') == 24
    assert "23:00 UTC: 8 syncs" in svg and "23:00 UTC: 2 failures" in svg and "21:00 UTC: 1 failures" in svg
    tallest = [part for part in svg.split("<rect") if "8 syncs" in part][0]
    assert 'height="128.0"' in tallest  # the tallest bar fills the plot (160 - 22 - 10 px)


def test_status_needs_the_login_and_shows_each_part_or_says_it_is_unreachable(lock_redis):
    client = create_app(get_settings()).test_client()
    assert client.get("/status").status_code == 401
    assert client.get("/status", headers={"Authorization": _basic("admin", "wrong")}).status_code == 401
    assert client.get("/metrics").status_code == 200  # only /status is behind the login
    html = client.get("/status", headers={"Authorization": _basic(*AUTH)}).get_data(as_text=True)
    assert "no syncs yet" in html and "Failures</h2>\n<p class=\"good\">none" in html
    broken = get_settings().replace(broker_url="redis://127.0.0.1:1/0")
    html = create_app(broken).test_client().get("/status", headers={"Authorization": _basic(*AUTH)}).get_data(
        as_text=True)
    assert "broker unreachable" in html and 'id="heartbeats"' in html


# ------------------------------------------------------------------ in a real browser
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = binary("chromium")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


def test_status_page_in_chromium_shows_the_failure_its_link_and_the_chart(sandbox, lock_redis, browser, tmp_path):
    for status, n in (("clean", 3), ("failed", 1)):
        for i in range(n):
            sandbox.state("espocrm").save(None, {"lastName": f"S{status}{i}", "syncStatus": status},
                                          sandbox.state("espocrm").integration_user)
    seed(lock_redis)
    server = ServerThread(create_app(get_settings())).start()
    try:
        context = browser.new_context(http_credentials={"username": AUTH[0], "password": AUTH[1]},
                                      viewport={"width": 1150, "height": 900})
        page = context.new_page()
        response = page.goto(f"{server.url}/status")
        assert response.status == 200
        row = page.locator("#failures tr.failure", has_text=FAILED_ID)
        assert row.locator("td.reason").inner_text() == FAILED_REASON
        assert "paused (permanently failed)" in row.inner_text()
        link = row.locator("td.entity a")
        assert link.get_attribute("href").endswith(f"/#CBeteiligte/view/{FAILED_ID}")
        assert page.locator("#failures tr.failure", has_text="advoware_empty").locator("a").count() == 0  # calendar
        bars = page.locator("#chart rect.bar-ok")
        assert bars.count() == 24 and page.locator("#chart").bounding_box()["height"] > 100
        tallest = max(float(bars.nth(i).get_attribute("height")) for i in range(24))
        assert tallest > 100  # 20 syncs nine hours ago fill the plot
        syncs = page.locator("#syncs tr", has_text="beteiligte").inner_text().split()
        ok = SEEDED_OK["beteiligte"] + sum(h[1] for h in OLDER_HOURS)
        failed = SEEDED_FAILED["beteiligte"] + sum(h[2] for h in OLDER_HOURS)
        assert syncs[:3] == ["beteiligte", str(ok), str(failed)]
        status_rows = dict(r.inner_text().split("\t") for r in page.locator("#record-status tr").all())
        assert status_rows["clean"] == "3" and status_rows["failed"] == "1"
        assert "address_conflict" in page.locator("#manual-actions").inner_text()
        assert page.locator("#freshness b").inner_text() == "90 min"
        assert page.locator("#queues tr").count() == len(celeryconfig.QUEUES)
        assert page.locator("#heartbeats td.bad").count() == 0
        page.screenshot(path=str(shot(tmp_path, "status-page.png")), full_page=True)
        context.close()
    finally:
        server.stop()
    assert (shot(tmp_path, "status-page.png")).stat().st_size > 20_000


# ------------------------------------------------------------------ Flower's failed-task list
BITBYLAW = str(Path(sys.executable).parent / "bitbylaw")


def test_flower_failed_task_list_shows_entity_and_reason(sandbox, lock_redis, celery_worker, browser, tmp_path):
    port = free_port()
    log = tmp_path / "flower.log"
    env = {**os.environ, "FLOWER_PORT": str(port), "FLOWER_DB": str(tmp_path / "flower.db")}
    proc = subprocess.Popen([BITBYLAW, "flower"], cwd=tmp_path, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/healthcheck", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.3)
        else:
            raise AssertionError(log.read_text()[-3000:])
        time.sleep(1.0)  # Flower's event consumer is attached
        record = sandbox.state("espocrm").human_create({**PERSON, "lastName": "Fehlschlag"})
        sandbox.kit("advoware").add_fault(path="/api/v1/advonet/Beteiligte", method="POST", status=400)
        with pytest.raises(Exception, match=record["id"]):
            run_sync(record["id"], "create", "webhook")
        context = browser.new_context(http_credentials={"username": AUTH[0], "password": AUTH[1]},
                                      viewport={"width": 1920, "height": 700})
        page = context.new_page()
        page.goto(f"{url}/tasks?state=FAILURE")
        row = page.locator("table#tasks-table tbody tr", has_text=record["id"]).first
        row.wait_for(timeout=30_000)
        text = row.inner_text()
        assert "beteiligte.sync" in text and "FAILURE" in text
        assert f"beteiligte {record['id']}" in text and "400" in text  # the entity and the reason
        # Flower keeps each cell on one line and clips the row at the table's edge: let the exception wrap
        # (for the screenshot only), then check that entity and reason are inside the visible page.
        page.add_style_tag(content="#tasks-table td:nth-child(6) { white-space: normal !important;"
                                   " min-width: 460px; overflow-wrap: anywhere; }")
        cell = row.locator("td", has_text="SyncFailed")
        box, width = cell.bounding_box(), page.viewport_size["width"]
        assert record["id"] in cell.inner_text() and "400" in cell.inner_text()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (box, width)
        page.screenshot(path=str(shot(tmp_path, "flower-failures.png")), full_page=True)
        context.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    assert (shot(tmp_path, "flower-failures.png")).stat().st_size > 20_000


def test_a_long_failure_register_shows_the_newest_rows_and_says_how_many_more(lock_redis):
    from bitbylaw_tasks.web.status import SHOWN

    for i in range(SHOWN + 5):
        failures.record(lock_redis, "beteiligte", f"id{i:04d}", f"reason {i}", now=1000 + i)
    html = create_app(get_settings()).test_client().get(
        "/status", headers={"Authorization": _basic(*AUTH)}).get_data(as_text=True)
    assert html.count('<tr class="failure">') == SHOWN
    assert f"id{SHOWN + 4:04d}" in html and "id0004<" not in html  # the newest, not the oldest
    assert f"the newest {SHOWN} of {SHOWN + 5}" in html


def test_reasons_and_details_are_escaped(lock_redis):
    from bitbylaw_tasks.ops import manual

    failures.record(lock_redis, "beteiligte", "x1", "<script>alert(1)</script> & more")
    manual.add(lock_redis, "adressen", "x2", "address_conflict", "<b>bold</b>")
    html = create_app(get_settings()).test_client().get(
        "/status", headers={"Authorization": _basic(*AUTH)}).get_data(as_text=True)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
