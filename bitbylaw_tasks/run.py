"""`bitbylaw run` (make run): provide Redis, then run the Procfile (plus the sandbox) under honcho.

When nothing answers at REDIS_BROKER_URL, a private redis-server is started
and every Redis URL is pointed at it (DBs 0-3). Each of EspoCRM, Advoware and
Google is real or simulated on its own; the simulators of the systems that are
not configured run as one more process. Ctrl-C stops honcho, which stops every
process; the private Redis is stopped last.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

from bitbylaw_tasks.devredis import ensure_redis, with_db
from bitbylaw_tasks.settings import Settings

RUN_DIR = Path(".run")


def procfile_lines(settings: Settings, *, with_sandbox: bool) -> list[str]:
    lines = [line for line in Path("Procfile").read_text().splitlines() if line.strip() and not line.startswith("#")]
    if with_sandbox:
        lines.append("sandbox: bitbylaw sandbox --register-webhooks --seed 20 --state .run/sandbox.json")
    return lines


def run_all(settings: Settings) -> int:
    env = dict(os.environ)
    broker_url, private = ensure_redis(settings.broker_url)
    if private is not None:
        env.update({
            "REDIS_BROKER_URL": with_db(broker_url, 0),
            "REDIS_LOCK_URL": with_db(broker_url, 1),
            "REDIS_CALENDAR_URL": with_db(broker_url, 2),
            "REDIS_RESULT_URL": with_db(broker_url, 3),
        })
        print(f"bitbylaw: no Redis answered; started a private one on {broker_url.rsplit('/', 1)[0]}")
    with_sandbox = settings.uses_sandbox and importlib.util.find_spec("integrations.sandbox.server") is not None
    if with_sandbox:
        # the demo should show Advoware-side edits within a minute, not a quarter of an hour
        env.setdefault("SWEEP_INTERVAL", "60")
    RUN_DIR.mkdir(exist_ok=True)
    procfile = RUN_DIR / "Procfile"
    procfile.write_text("\n".join(procfile_lines(settings, with_sandbox=with_sandbox)) + "\n")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    user = settings.flower_basic_auth.split(":", 1)[0]
    print(f"bitbylaw: webhook shim  http://127.0.0.1:{settings.web_port}/healthz")
    print(f"bitbylaw: Flower        http://127.0.0.1:{settings.flower_port}/  (user {user!r}, see FLOWER_BASIC_AUTH)")
    if with_sandbox:
        ports = {"espocrm": ("EspoCRM", settings.sandbox_espocrm_port),
                 "advoware": ("Advoware", settings.sandbox_advoware_port),
                 "google": ("Google", settings.sandbox_google_port)}
        served = "  ".join(f"{ports[name][0]} :{ports[name][1]}" for name in settings.simulated_systems)
        print(f"bitbylaw: sandbox       {served}"
              f"  (sweep every {env['SWEEP_INTERVAL']} s; edit as a user: integrations/sandbox/README.md)")
    print("bitbylaw: stop everything with Ctrl-C")
    proc = subprocess.Popen([sys.executable, "-m", "honcho", "-f", str(procfile), "-d", ".", "start"], env=env)
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
        if private is not None:
            private.stop()
