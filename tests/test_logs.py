"""Quiet logs: routine lines at DEBUG, one line per decision that changed something, JSON lines on request."""
from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from bitbylaw_tasks.devredis import free_port
from bitbylaw_tasks.logs import QuietFilter, apply_to_handlers
from bitbylaw_tasks.settings import Settings


def _record(name: str, msg: str, args: tuple = (), level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


DECISION = "beteiligte sync %s path=%s espocrm_write=%s"


def test_routine_lines_go_to_debug_and_changes_stay_at_info():
    quiet = QuietFilter(logging.INFO)
    routine = [
        _record("werkzeug", '127.0.0.1 - - "GET /api/v1/CBeteiligte HTTP/1.1" 200 -'),
        _record("bitbylaw_tasks.beteiligte.service", DECISION, ("6a1", "no_change", False)),
        _record("bitbylaw_tasks.kommunikation.service", "kommunikation sync %s path=%s %s", ("6a1", "no_change", {})),
        _record("celery.worker.strategy", "Task %(name)s[%(id)s] received"),
        _record("celery.app.trace", "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s"),
        _record("celery.beat", "Scheduler: Sending due task %s (%s)", ("ops-heartbeat", "ops.heartbeat")),
    ]
    kept = [
        _record("bitbylaw_tasks.beteiligte.service", DECISION, ("6a1", "espocrm_newer", False)),
        _record("bitbylaw_tasks.beteiligte.service", "beteiligte %s: deleted", ("6a1",), logging.WARNING),
        _record("celery.app.trace", "Task %(name)s[%(id)s] retry: %(exc)s"),
        _record("werkzeug", "simulator crashed", level=logging.ERROR),
    ]
    assert [quiet.filter(r) for r in routine] == [False] * len(routine)
    assert all(r.levelname == "DEBUG" for r in routine)
    assert [quiet.filter(r) for r in kept] == [True] * len(kept)
    verbose = QuietFilter(logging.DEBUG)
    assert verbose.filter(_record("werkzeug", "GET /"))


def test_json_lines_carry_time_level_logger_and_message():
    stream = io.StringIO()
    logger = logging.getLogger("bitbylaw_tasks.test_json")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        apply_to_handlers(logger, Settings(log_format="json"))
        logger.warning("beteiligte %s: deleted in EspoCRM", "6a1", extra={"entity_id": "6a1"})
        logger.info(DECISION, "6a2", "no_change", False)  # quiet: not written
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["level"] == "WARNING" and doc["logger"] == "bitbylaw_tasks.test_json"
    assert doc["message"] == "beteiligte 6a1: deleted in EspoCRM" and doc["entity_id"] == "6a1" and doc["time"]


def test_the_sandbox_process_logs_access_lines_only_at_debug_and_as_json(tmp_path):
    """The real `bitbylaw sandbox`: at INFO no access line; with LOG_LEVEL=DEBUG LOG_FORMAT=json one JSON per line."""
    outputs = {}
    for level, fmt in (("INFO", "text"), ("DEBUG", "json")):
        ports = {name: str(free_port()) for name in ("SANDBOX_ESPOCRM_PORT", "SANDBOX_ADVOWARE_PORT",
                                                     "SANDBOX_GOOGLE_PORT")}
        env = {**os.environ, **ports, "LOG_LEVEL": level, "LOG_FORMAT": fmt}
        log = tmp_path / f"{level}.log"
        proc = subprocess.Popen([str(Path(sys.executable).parent / "bitbylaw"), "sandbox"], env=env, cwd=tmp_path,
                                stdout=log.open("w"), stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{ports['SANDBOX_GOOGLE_PORT']}/calendar/v3/users/me/calendarList"
            for _ in range(100):
                try:
                    requests.get(url, timeout=1)
                    break
                except requests.RequestException:
                    if proc.poll() is not None:
                        break
                    time.sleep(0.2)
            requests.get(url, timeout=2)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        outputs[level] = log.read_text()
    assert "calendarList" not in outputs["INFO"]
    access = [json.loads(line) for line in outputs["DEBUG"].splitlines()
              if line.startswith("{") and "calendarList" in line]
    assert access and all(doc["level"] == "DEBUG" and doc["logger"] == "werkzeug" for doc in access)
