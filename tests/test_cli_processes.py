"""The process commands as an operator runs them: the real `bitbylaw` executable, from another directory,
without the virtualenv on PATH (`bitbylaw web|worker|flower|run`), and what `make run` leaves to a second shell."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bitbylaw_tasks.devredis import free_port

BITBYLAW = str(Path(sys.executable).parent / "bitbylaw")
PLAIN_PATH = "/usr/bin:/bin"  # no .venv/bin: nothing may rely on gunicorn/celery being on PATH


def _env(**changes) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = PLAIN_PATH
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _start(args: list[str], cwd: Path, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([BITBYLAW, *args], cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}: {log.read_text()[-3000:] if log else ''}")


def _get(url: str, **kw):
    try:
        return requests.get(url, timeout=2, **kw)
    except requests.RequestException:
        return None


def test_web_starts_from_elsewhere_without_the_venv_on_path(lock_redis, tmp_path):  # no heartbeats yet
    port = free_port()
    log = tmp_path / "web.log"
    proc = _start(["web", "--workers", "1"], tmp_path, _env(WEB_PORT=str(port)), log)
    try:
        response = _wait(lambda: _get(f"http://127.0.0.1:{port}/healthz"), 30, "the shim", proc, log)
        doc = response.json()
        assert response.status_code == 200 and doc["status"] == "warming_up", doc
        assert doc["started_at"].endswith("Z")
    finally:
        _stop(proc)


def test_worker_starts_without_the_venv_on_path_and_says_root_in_one_line(redis_server, tmp_path):
    log = tmp_path / "worker.log"
    proc = _start(["worker", "default"], tmp_path, _env(LOG_FORMAT="json"), log)
    try:
        _wait(lambda: "ready." in log.read_text(), 60, "the worker", proc, log)
    finally:
        _stop(proc)
    text = log.read_text()
    assert "SecurityWarning" not in text and "concurrency: 1 (solo)" in text
    ready = [json.loads(line) for line in text.splitlines() if line.startswith("{") and "ready." in line]
    assert ready and ready[0]["logger"] == "celery.apps.worker" and ready[0]["level"] == "INFO"  # LOG_FORMAT=json
    if os.geteuid() == 0:
        assert text.count("running as root") == 1


def test_flower_shows_args_exception_retries_and_warns_about_the_default_login(redis_server, tmp_path):
    port = free_port()
    log = tmp_path / "flower.log"
    proc = _start(["flower"], tmp_path, _env(FLOWER_PORT=str(port), FLOWER_DB=str(tmp_path / "flower.db"),
                                             FLOWER_BASIC_AUTH="admin:admin"), log)
    try:
        page = _wait(lambda: _get(f"http://127.0.0.1:{port}/tasks", auth=("admin", "admin")), 60, "Flower",
                     proc, log)
        assert page.status_code == 200
        for column in ("args", "exception", "retries"):
            assert f'data-column="{column}"' in page.text
        assert _get(f"http://127.0.0.1:{port}/tasks").status_code == 401
    finally:
        _stop(proc)
    assert "WARNING: Flower uses the default login admin:admin" in log.read_text()


def test_flower_refuses_the_default_login_with_a_real_system(tmp_path):
    result = subprocess.run([BITBYLAW, "flower"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env=_env(FLOWER_BASIC_AUTH="admin:admin", ESPOCRM_BASE_URL="https://crm.example.test",
                                     ESPOCRM_API_KEY="k"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "espocrm" in result.stderr


def _cli(args: list[str], run_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    """`bitbylaw ARGS` as from a second shell: none of the running system's variables in the environment."""
    env = _env(BITBYLAW_RUN_DIR=str(run_dir), **{name: None for name in (
        "REDIS_BROKER_URL", "REDIS_LOCK_URL", "REDIS_CALENDAR_URL", "REDIS_RESULT_URL", "SWEEP_INTERVAL",
        "WEB_PORT", "SANDBOX_ESPOCRM_PORT", "SANDBOX_ADVOWARE_PORT", "SANDBOX_GOOGLE_PORT", "HEARTBEAT_INTERVAL")})
    return subprocess.run([BITBYLAW, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_run_from_elsewhere_records_its_settings_for_a_second_shell(tmp_path):
    cwd, elsewhere, run_dir = tmp_path / "cwd", tmp_path / "other", tmp_path / "run"
    cwd.mkdir()
    elsewhere.mkdir()
    unreachable = f"redis://127.0.0.1:{free_port()}/0"  # nothing answers: `run` starts a private Redis
    web_port, flower_port = free_port(), free_port()
    env = _env(BITBYLAW_RUN_DIR=str(run_dir), REDIS_BROKER_URL=unreachable, REDIS_LOCK_URL=None,
               REDIS_CALENDAR_URL=None, REDIS_RESULT_URL=None, SWEEP_INTERVAL=None, HEARTBEAT_INTERVAL="3",
               WEB_PORT=str(web_port), FLOWER_PORT=str(flower_port), SANDBOX_ESPOCRM_PORT=str(free_port()),
               SANDBOX_ADVOWARE_PORT=str(free_port()), SANDBOX_GOOGLE_PORT=str(free_port()),
               FLOWER_DB=str(run_dir / "flower.db"))
    log = tmp_path / "run.log"
    proc = _start(["run"], cwd, env, log)
    try:
        settings_file = run_dir / "settings.env"
        _wait(settings_file.exists, 60, "the settings file", proc, log)
        assert oct(settings_file.stat().st_mode & 0o777) == "0o600"
        config = _cli(["config", "--json"], run_dir, elsewhere)
        assert config.returncode == 0, config.stderr
        shown = json.loads(config.stdout)
        assert shown["REDIS_BROKER_URL"] != unreachable and shown["REDIS_BROKER_URL"].endswith("/0")
        assert shown["REDIS_LOCK_URL"].endswith("/1") and shown["SWEEP_INTERVAL"] == "60.0"
        assert shown["WEB_PORT"] == str(web_port)

        def both_ok():
            cli = _cli(["health"], run_dir, elsewhere)
            assert cli.returncode == 0, cli.stdout + cli.stderr  # warming up, then ok: never unhealthy
            web = _get(f"http://127.0.0.1:{web_port}/healthz")
            return web is not None and web.json()["status"] == json.loads(cli.stdout)["status"] == "ok"

        _wait(both_ok, 120, "health ok in the CLI and /healthz", proc, log)

        def broker_page_lists_every_queue():  # after Flower has inspected the workers (its Workers page does)
            flower = f"http://127.0.0.1:{flower_port}"
            _get(f"{flower}/api/workers?refresh=1", auth=("admin", "admin"))
            page = _get(f"{flower}/broker", auth=("admin", "admin"))
            return page is not None and all(f'<tr id="{queue}">' in page.text
                                            for queue in ("beteiligte", "kommunikation", "calendar", "default"))

        _wait(broker_page_lists_every_queue, 60, "Flower's broker page with all four queues", proc, log)
        output = log.read_text()
        assert "private redis-server" in output and "broker 0, locks 1, calendar 2, results 3" in output
    finally:
        code = _stop(proc, signal.SIGINT, timeout=60)
    assert code == 0, log.read_text()[-3000:]
    assert not (run_dir / "settings.env").exists() and not (cwd / ".run").exists()
    output = log.read_text()
    sandbox_lines = [line for line in output.splitlines() if " sandbox.1 " in line]
    assert not [line for line in sandbox_lines if 'HTTP/1.1" ' in line]  # simulator access lines at DEBUG
    assert "SecurityWarning" not in output
