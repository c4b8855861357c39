"""The `bitbylaw` command line: one entry point, one subcommand per operator action.

Every subcommand reads the settings first; a configuration error prints one
line naming the variable and exits with status 2 (no traceback). While a
`bitbylaw run` lives, its effective settings (`.run/settings.env`,
`bitbylaw_tasks/runinfo.py`) fill in what the environment does not set. An
expected failure (not found, unreachable, bad argument) is one line on
stderr and exit status 1 (`bitbylaw_tasks/cli_errors.py`). The processes are
started through this interpreter (`python -m gunicorn|celery`), so they work
without an activated virtualenv.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from bitbylaw_tasks import runinfo
from bitbylaw_tasks.cli_errors import CommandError, describe
from bitbylaw_tasks.settings import Settings, SettingsError, get_settings, variables

CELERY_APP = "bitbylaw_tasks.celery_app"
DEFAULT_FLOWER_AUTH = "admin:admin"
FLOWER_TASK_COLUMNS = "name,uuid,state,args,kwargs,exception,retries,received,started,runtime,worker"


def _exec_module(module: str, args: list[str], python_options: tuple[str, ...] = ()) -> None:
    """Replace this process by `python -m module args` of this interpreter (so signals from honcho reach
    the real process, and no virtualenv needs to be on PATH)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *python_options, "-m", module, *args])


def _systems(settings: Settings) -> list[str]:
    """Which system is real and which simulated, with the URL the clients use."""
    from bitbylaw_tasks.clients import sandbox_url

    out = []
    for name, simulated, port, real in (
            ("EspoCRM", settings.espocrm_simulated, settings.sandbox_espocrm_port, settings.espocrm_base_url),
            ("Advoware", settings.advoware_simulated, settings.sandbox_advoware_port, settings.advoware_base_url),
            ("Google Calendar", settings.google_simulated, settings.sandbox_google_port,
             settings.google_calendar_endpoint or "the real API")):
        out.append(f"{name}: simulator at {sandbox_url(settings, port)}" if simulated else f"{name}: {real}")
    return out


def cmd_config(args, settings: Settings) -> int:
    """Print every setting by its environment variable with the effective value (secrets masked)."""
    shown = variables(settings)
    if args.json:
        print(json.dumps(shown, indent=2))
        return 0
    running = runinfo.running_system()
    source = f"the running system ({running.path})" if running else "no running `bitbylaw run`"
    print(f"# effective settings: environment > {source} > .env > defaults; secrets masked")
    for name, value in shown.items():
        print(f"{name}={value}")
    for line in _systems(settings):
        print(f"# {line}")
    return 0


def cmd_web(args, settings: Settings) -> int:
    _exec_module("gunicorn", ["--workers", str(args.workers), "--bind", f"{args.host}:{settings.web_port}",
                              "--access-logfile", "-", "--graceful-timeout", "10", "bitbylaw_tasks.web:wsgi_app()"])
    return 0


ROOT_WARNING = ("bitbylaw worker: running as root; run the workers as an unprivileged user in production "
                "(this line replaces Celery's multi-line superuser warning)")
# Celery's SecurityWarning for a root worker (celery/platforms.py), matched by the start of its message
ROOT_WARNING_FILTER = "ignore:You're running the worker with superuser privileges"


def cmd_worker(args, settings: Settings) -> int:
    queue = args.queue
    pool = "solo" if queue == "default" else settings.worker_pool
    concurrency = 1 if pool == "solo" else settings.worker_concurrency.get(queue, 4)
    python_options: tuple[str, ...] = ()
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # containers and the sandbox often run as root; one line says so instead of Celery's warning
        print(ROOT_WARNING, file=sys.stderr)
        python_options = ("-W", ROOT_WARNING_FILTER)
    _exec_module("celery", ["-A", CELERY_APP, "worker", "-Q", queue, "-n", f"{queue}@%h", "-P", pool, "-E",
                            "-c", str(concurrency), "--loglevel", args.loglevel or settings.log_level],
                 python_options)
    return 0


def cmd_beat(args, settings: Settings) -> int:
    _exec_module("celery", ["-A", CELERY_APP, "beat", "-S", "redbeat.RedBeatScheduler",
                            "--loglevel", args.loglevel or settings.log_level])
    return 0


def flower_auth_check(settings: Settings) -> str | None:
    """None when Flower may start; else the reason it must not (the default password with a real system)."""
    if settings.flower_basic_auth != DEFAULT_FLOWER_AUTH:
        return None
    real = [name for name in ("espocrm", "advoware", "google") if name not in settings.simulated_systems]
    if real:
        return (f"refusing to start Flower with the default FLOWER_BASIC_AUTH (admin:admin) while a real system "
                f"is configured ({', '.join(real)}): set FLOWER_BASIC_AUTH=user:a-strong-password")
    return None


FLOWER_DEFAULT_WARNING = """bitbylaw flower: ****************************************************************
bitbylaw flower: WARNING: Flower uses the default login admin:admin.
bitbylaw flower: Anyone who reaches port {port} can see every task and stop workers.
bitbylaw flower: Set FLOWER_BASIC_AUTH=user:a-strong-password (refused with real systems).
bitbylaw flower: ****************************************************************"""


def cmd_flower(args, settings: Settings) -> int:
    refusal = flower_auth_check(settings)
    if refusal:
        raise CommandError(f"bitbylaw flower: {refusal}", code=2)
    if settings.flower_basic_auth == DEFAULT_FLOWER_AUTH:
        print(FLOWER_DEFAULT_WARNING.format(port=settings.flower_port), file=sys.stderr)
    os.makedirs(os.path.dirname(settings.flower_db) or ".", exist_ok=True)
    # Basic auth goes through Flower's own FLOWER_BASIC_AUTH variable, not the
    # command line, so it never shows in `ps`.
    os.environ["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth
    _exec_module("celery", ["-A", CELERY_APP, "flower", f"--port={settings.flower_port}", "--address=127.0.0.1",
                            "--persistent=True", f"--db={settings.flower_db}", "--max_tasks=100000",
                            f"--tasks_columns={FLOWER_TASK_COLUMNS}"])
    return 0


def cmd_run(args, settings: Settings) -> int:
    from bitbylaw_tasks.run import run_all

    try:
        return run_all(settings)
    except runinfo.NoCheckout as exc:
        raise CommandError(f"bitbylaw run: {exc}") from None


def cmd_sandbox(args, settings: Settings) -> int:
    from bitbylaw_tasks.sandbox_admin import serve_sandbox

    return serve_sandbox(settings, state_file=args.state, seed=args.seed,
                         register_webhooks=args.register_webhooks, webhook_interval=args.webhook_interval,
                         advoware_latency_ms=args.advoware_latency_ms)


def cmd_health(args, settings: Settings) -> int:
    """The /healthz document; exit 0 when ok or warming up, 1 when unhealthy."""
    from bitbylaw_tasks.web import health

    running = runinfo.running_system()
    # the start of the running system decides the warm-up; without `bitbylaw run` it is unknown: no grace
    doc, healthy = health(settings, started_at=running.started_at if running else None)
    print(json.dumps(doc, indent=2))
    return 0 if healthy else 1


def cmd_lock_release(args, settings: Settings) -> int:
    from bitbylaw_tasks.locks import force_release
    from bitbylaw_tasks.redis_clients import lock_redis

    released = force_release(lock_redis(settings), args.kind, args.entity_id)
    print("released" if released else "no such lock")
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse whose bad-argument message is one line (with where to look) instead of usage + error;
    the subcommands' parsers are of this class too (argparse passes the class on)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="bitbylaw", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    add("run", cmd_run, "Start everything (web, one worker per queue, beat, Flower, and the sandbox when no "
                        "real systems are configured) under honcho; provides Redis if none answers. Ctrl-C stops all.")
    p = add("sandbox", cmd_sandbox, "Serve the EspoCRM, Advoware and Google Calendar simulators on the SANDBOX_* "
                                    "ports until stopped (see integrations/sandbox/README.md).")
    p.add_argument("--state", metavar="FILE", help="load this JSON snapshot at start and save it at exit")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed N realistic records when starting empty")
    p.add_argument("--register-webhooks", action="store_true",
                   help="subscribe the shim's webhook URLs in the EspoCRM simulator and store their secrets")
    p.add_argument("--webhook-interval", type=float, default=2.0, help="seconds between webhook deliveries")
    p.add_argument("--advoware-latency-ms", type=int, default=0, help="added latency per Advoware call")
    p = add("config", cmd_config, "Print every setting by its environment variable with the effective value "
                                  "(secrets masked), and which systems are real or simulated.")
    p.add_argument("--json", action="store_true", help="one JSON object of variable -> value")
    add("health", cmd_health, "Check Redis, broker and heartbeats like /healthz (status ok, warming_up or "
                              "unhealthy); exit 1 when unhealthy.")
    p = add("web", cmd_web, "Serve the webhook shim with gunicorn.")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--host", default="127.0.0.1")
    p = add("worker", cmd_worker, "Start a Celery worker for one queue with the pool and concurrency from settings.")
    p.add_argument("queue", choices=["beteiligte", "kommunikation", "calendar", "default", "leads", "adressen"])
    p.add_argument("--loglevel", help="default: LOG_LEVEL")
    p = add("beat", cmd_beat, "Start Celery beat with the Redis-locked redbeat scheduler.")
    p.add_argument("--loglevel", help="default: LOG_LEVEL")
    add("flower", cmd_flower, "Start Flower (basic auth and persistent state from settings; refuses the default "
                              "password while a real system is configured).")
    from bitbylaw_tasks.adressen import cli as adressen_cli
    from bitbylaw_tasks.beteiligte import cli as beteiligte_cli
    from bitbylaw_tasks.calendar import cli as calendar_cli
    from bitbylaw_tasks.espocrm import cli as espocrm_cli
    from bitbylaw_tasks.kommunikation import cli as kommunikation_cli
    from bitbylaw_tasks.proxy import cli as proxy_cli

    beteiligte_cli.register(sub)
    kommunikation_cli.register(sub)
    calendar_cli.register(sub)
    espocrm_cli.register(sub)
    proxy_cli.register(sub)
    adressen_cli.register(sub)
    p = add("lock-release", cmd_lock_release, "Release a stuck entity lock regardless of its owner.")
    p.add_argument("kind", help="e.g. cbeteiligte, kommunikation, calendar")
    p.add_argument("entity_id")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is not cmd_run:  # `run` starts a system; every other command looks at the running one
        runinfo.adopt_running_settings()
    try:
        settings = get_settings(require_complete=not getattr(args, "partial_settings", False))
        from bitbylaw_tasks.domain_settings import check_domain_settings  # the values only a domain knows

        check_domain_settings(settings)
    except SettingsError as exc:
        print(f"bitbylaw: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        return args.func(args, settings) or 0
    except BrokenPipeError:  # `bitbylaw config | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        expected = describe(exc)
        if expected is None:
            raise
        message, code = expected
        print(message if message.startswith("bitbylaw") else f"bitbylaw: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    raise SystemExit(main())
