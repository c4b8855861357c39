"""Where `bitbylaw run` keeps its files, and the record of the running system's effective settings.

`.run/` lives in the checkout (the directory holding the `Procfile` next to
the `bitbylaw_tasks` package), whatever the working directory; the variable
`BITBYLAW_RUN_DIR` moves it. `bitbylaw run` writes `.run/settings.env` when it
starts (every setting by its variable, as the processes it starts got them,
with its process id and start time) and removes it when it stops. Every other
`bitbylaw` command reads that file while that process lives, so a second
shell sees the running system (its private Redis, its SWEEP_INTERVAL); the
shell's own environment still wins over the file, and the file wins over
`.env`. The file holds secrets when real systems are configured: it is
written readable by its owner only, like `.env`.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = "settings.env"
PID_KEY = "BITBYLAW_RUN_PID"
STARTED_KEY = "BITBYLAW_RUN_STARTED"


class NoCheckout(Exception):
    """The code is not in a checkout (no Procfile beside the package): `bitbylaw run` cannot start."""


def procfile_path() -> Path:
    """The checkout's Procfile, found relative to the code (not the working directory)."""
    path = PACKAGE_ROOT / "Procfile"
    if not path.is_file():
        raise NoCheckout(f"no Procfile at {path}: `bitbylaw run` needs a checkout installed with `pip install -e`")
    return path


def run_dir() -> Path:
    """`BITBYLAW_RUN_DIR`, else `.run/` in the checkout."""
    return Path(os.environ.get("BITBYLAW_RUN_DIR") or PACKAGE_ROOT / ".run")


@dataclass(frozen=True)
class RunningSystem:
    """What `.run/settings.env` says about the system `bitbylaw run` started."""

    path: Path
    pid: int
    started_at: float
    variables: dict[str, str]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def write_running(variables: dict[str, str], *, pid: int | None = None, started_at: float | None = None) -> Path:
    """Write the running system's settings (owner-only) and return the file's path."""
    directory = run_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SETTINGS_FILE
    lines = ["# Written by `bitbylaw run` while it runs; removed when it stops. Other `bitbylaw` commands read it.",
             f"{PID_KEY}={pid or os.getpid()}", f"{STARTED_KEY}={started_at or time.time():.3f}"]
    lines += [f"{name}={_quote(value)}" for name, value in variables.items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def remove_running() -> None:
    (run_dir() / SETTINGS_FILE).unlink(missing_ok=True)


def running_system() -> RunningSystem | None:
    """The record of a `bitbylaw run` that still lives, or None (no file, unreadable, or its process is gone)."""
    path = run_dir() / SETTINGS_FILE
    try:
        text = path.read_text()
    except OSError:
        return None
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[name.strip()] = _unquote(value.strip())
    try:
        pid, started = int(values.pop(PID_KEY)), float(values.pop(STARTED_KEY))
    except (KeyError, ValueError):
        return None
    if not _pid_alive(pid):
        return None
    return RunningSystem(path, pid, started, values)


def adopt_running_settings(environ: dict | None = None) -> RunningSystem | None:
    """Put the running system's variables into the environment where the environment has none."""
    environ = os.environ if environ is None else environ
    system = running_system()
    if system is not None:
        for name, value in system.variables.items():
            environ.setdefault(name, value)
    return system
