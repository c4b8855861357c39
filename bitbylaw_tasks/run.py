"""`bitbylaw run` (make run): provide Redis, then run the Procfile (plus the sandbox) under honcho.

When nothing answers at REDIS_BROKER_URL, a private redis-server is started
and every Redis URL is pointed at it (DBs 0-3). Each of EspoCRM, Advoware and
Google is real or simulated on its own; the simulators of the systems that are
not configured run as one more process. The effective settings are handed to
every process as environment variables and recorded in `.run/settings.env`
for the other `bitbylaw` commands (`bitbylaw_tasks/runinfo.py`). The Procfile
and `.run/` are found relative to the code, so it runs from any directory.
Ctrl-C stops honcho, which stops every process; the private Redis is stopped last.
"""
from __future__ import annotations

import importlib.util
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from bitbylaw_tasks import runinfo
from bitbylaw_tasks.devredis import ensure_redis, with_db
from bitbylaw_tasks.settings import Settings, variables

DEMO_SWEEP_INTERVAL = 60.0  # the demo should show Advoware-side edits within a minute, not a quarter of an hour


def procfile_lines(procfile: Path, *, sandbox_state: Path | None) -> list[str]:
    lines = [line for line in procfile.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if sandbox_state is not None:
        state = shlex.quote(str(sandbox_state))
        lines.append(f"sandbox: bitbylaw sandbox --register-webhooks --seed 20 --state {state}")
    return lines


def _redis_lines(settings: Settings, private: bool) -> list[str]:
    """What `make run` says about the Redis it uses: which server, whose, which DB for what."""
    server = urlparse(settings.broker_url)._replace(path="").geturl()
    dbs = ", ".join(f"{role} {urlparse(url).path.lstrip('/') or '0'}" for role, url in (
        ("broker", settings.broker_url), ("locks", settings.lock_redis_url),
        ("calendar", settings.calendar_redis_url), ("results", settings.result_backend_url)))
    if private:
        return [f"bitbylaw: Redis         {server}  (private redis-server started for this run, gone after "
                f"Ctrl-C; DBs {dbs})"]
    return [f"bitbylaw: Redis         {server}  (already running, used as found; DBs {dbs}; "
            f"their keys stay after the stop)"]


def effective_settings(settings: Settings, broker_url: str, private: bool, with_sandbox: bool) -> Settings:
    """The settings every process of this run gets: the private Redis's URLs, the demo's sweep interval,
    Flower's database in the run directory."""
    if private:
        settings = settings.replace(broker_url=with_db(broker_url, 0), lock_redis_url=with_db(broker_url, 1),
                                    calendar_redis_url=with_db(broker_url, 2),
                                    result_backend_url=with_db(broker_url, 3))
    if with_sandbox and settings.sweep_interval == Settings().sweep_interval:
        settings = settings.replace(sweep_interval=DEMO_SWEEP_INTERVAL)
    if settings.flower_db == Settings().flower_db:  # the default `.run/flower.db`: in this run's directory
        settings = settings.replace(flower_db=str(runinfo.run_dir() / "flower.db"))
    return settings


def run_all(settings: Settings) -> int:
    procfile = runinfo.procfile_path()
    running = runinfo.running_system()
    if running is not None:
        print(f"bitbylaw run: already running (pid {running.pid}, {running.path}); stop it first", file=sys.stderr)
        return 1
    broker_url, private = ensure_redis(settings.broker_url)
    with_sandbox = settings.uses_sandbox and importlib.util.find_spec("integrations.sandbox.server") is not None
    settings = effective_settings(settings, broker_url, private is not None, with_sandbox)
    run_dir = runinfo.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    own = run_dir / "Procfile"
    own.write_text("\n".join(procfile_lines(procfile, sandbox_state=run_dir / "sandbox.json" if with_sandbox
                                            else None)) + "\n")
    env = {**os.environ, **variables(settings, masked=False)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    settings_file = runinfo.write_running(variables(settings, masked=False))
    for line in _redis_lines(settings, private is not None):
        print(line)
    user = settings.flower_basic_auth.split(":", 1)[0]
    print(f"bitbylaw: webhook shim  http://127.0.0.1:{settings.web_port}/healthz")
    print(f"bitbylaw: Flower        http://127.0.0.1:{settings.flower_port}/  (user {user!r}, see FLOWER_BASIC_AUTH)")
    if with_sandbox:
        ports = {"espocrm": ("EspoCRM", settings.sandbox_espocrm_port),
                 "advoware": ("Advoware", settings.sandbox_advoware_port),
                 "google": ("Google", settings.sandbox_google_port)}
        served = "  ".join(f"{ports[name][0]} :{ports[name][1]}" for name in settings.simulated_systems)
        print(f"bitbylaw: sandbox       {served}"
              f"  (sweep every {settings.sweep_interval:g} s; edit as a user: integrations/sandbox/README.md)")
    print(f"bitbylaw: settings      {settings_file}  (`bitbylaw config` / `health` in another shell use it)")
    print("bitbylaw: stop everything with Ctrl-C")
    # honcho runs the processes in the checkout, so relative paths (FLOWER_DB) mean the same from any cwd
    proc = subprocess.Popen([sys.executable, "-m", "honcho", "-f", str(own), "-d", str(procfile.parent), "start"],
                            env=env)
    # Ctrl-C reaches honcho directly (same process group); a SIGINT or SIGTERM sent to this process
    # alone (`kill -INT <pid>`, a service manager) is passed on. honcho stops once, however often told.
    stopped: list[int] = []

    def forward(signum, frame):
        stopped.append(signum)
        proc.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
        return 0 if stopped else code  # a requested stop is a clean exit, whatever honcho reports
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        runinfo.remove_running()
        if private is not None:
            private.stop()
