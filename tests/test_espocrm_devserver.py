"""The real-EspoCRM dev server never outlives the process that started it (bitbylaw_tasks/espocrm/devserver.py).

A test run killed without teardown (SIGTERM to pytest, SIGKILL) once left `php -S` workers holding their port,
their database and their folder. The reaper started by `RealEspoCrm.start()` tears down when its owner dies;
these tests kill an owner with SIGKILL — no `finally`, no `atexit` — and look at what is left.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bitbylaw_tasks.espocrm.devserver import RealEspoCrm

pytestmark = pytest.mark.real_espocrm  # needs PHP and MariaDB (the database part)

# The owner: a RealEspoCrm with its database created and a stand-in server (a `sleep`, recorded in
# server.pid and stopped by a stop.sh of setup.sh's form), then its reaper; it prints what it made and waits.
OWNER = r"""
import subprocess, sys, time
from bitbylaw_tasks.espocrm.devserver import RealEspoCrm
real = RealEspoCrm()
real._sql(f"CREATE DATABASE `{real.db}`")
server = subprocess.Popen(["sleep", "600"], start_new_session=True)
(real.dir / "server.pid").write_text(str(server.pid))
(real.dir / "stop.sh").write_text(
    f'pid=$(cat "{real.dir}/server.pid"); kill $(pgrep -P "$pid") "$pid" 2>/dev/null; rm -f "{real.dir}/server.pid"\n')
real.start_reaper()
print(real.dir, real.db, server.pid, flush=True)
if sys.argv[1] == "stop":
    real.stop()
    print("stopped", flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie has already exited


def _databases(name: str) -> str:
    return RealEspoCrm._sql(f"SHOW DATABASES LIKE '{name}'")


def _owner(mode: str) -> tuple[subprocess.Popen, Path, str, int]:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, mode], stdout=subprocess.PIPE, text=True)
    directory, db, server = owner.stdout.readline().split()
    return owner, Path(directory), db, int(server)


def _until_gone(directory: Path, db: str, server: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (_alive(server) or directory.exists() or _databases(db).strip()):
        time.sleep(0.2)
    assert not _alive(server), "the server outlived its owner"
    assert not directory.exists(), "the folder outlived its owner"
    assert not _databases(db).strip(), "the database outlived its owner"


def test_an_owner_killed_without_teardown_leaves_no_server_database_or_folder():
    owner, directory, db, server = _owner("kill")
    try:
        assert _alive(server) and directory.is_dir() and _databases(db).strip() == db  # it all exists first
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        _until_gone(directory, db, server)
    finally:
        owner.kill()
        owner.wait()


def test_stop_tears_down_through_the_reaper_while_the_owner_lives():
    owner, directory, db, server = _owner("stop")
    try:
        assert owner.stdout.readline().strip() == "stopped"
        assert owner.poll() is None  # the owner still runs: stop() itself did the teardown
        assert not _alive(server) and not directory.exists() and not _databases(db).strip()
    finally:
        owner.kill()
        owner.wait()
