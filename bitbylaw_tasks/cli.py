"""The `bitbylaw` command line: one entry point, one subcommand per operator action.

Every subcommand reads the settings first; a configuration error prints one
line naming the variable and exits with status 2 (no traceback).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from bitbylaw_tasks.settings import Settings, SettingsError, get_settings

CELERY_APP = "bitbylaw_tasks.celery_app"


def _exec(argv: list[str]) -> None:
    """Replace this process by `argv` (so signals from honcho reach the real process)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


def cmd_config(args, settings: Settings) -> int:
    """Print the effective settings with secrets masked."""
    print(json.dumps(settings.redacted(), indent=2, default=str))
    return 0


def cmd_web(args, settings: Settings) -> int:
    workers = str(args.workers)
    _exec(["gunicorn", "--workers", workers, "--bind", f"{args.host}:{settings.web_port}",
           "--access-logfile", "-", "--graceful-timeout", "10", "bitbylaw_tasks.web:wsgi_app()"])
    return 0


def cmd_worker(args, settings: Settings) -> int:
    queue = args.queue
    concurrency = settings.worker_concurrency.get(queue, 4)
    pool = "solo" if queue == "default" else settings.worker_pool
    argv = ["celery", "-A", CELERY_APP, "worker", "-Q", queue, "-n", f"{queue}@%h",
            "-P", pool, "-E", "--loglevel", args.loglevel]
    if pool != "solo":
        argv += ["-c", str(concurrency)]
    _exec(argv)
    return 0


def cmd_beat(args, settings: Settings) -> int:
    _exec(["celery", "-A", CELERY_APP, "beat", "-S", "redbeat.RedBeatScheduler", "--loglevel", args.loglevel])
    return 0


def cmd_flower(args, settings: Settings) -> int:
    os.makedirs(os.path.dirname(settings.flower_db) or ".", exist_ok=True)
    # Basic auth goes through Flower's own FLOWER_BASIC_AUTH variable, not the
    # command line, so it never shows in `ps`.
    os.environ["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth
    _exec(["celery", "-A", CELERY_APP, "flower", f"--port={settings.flower_port}", "--address=127.0.0.1",
           "--persistent=True", f"--db={settings.flower_db}", "--max_tasks=100000"])
    return 0


def cmd_run(args, settings: Settings) -> int:
    from bitbylaw_tasks.run import run_all

    return run_all(settings)


def cmd_sandbox(args, settings: Settings) -> int:
    from bitbylaw_tasks.sandbox_admin import serve_sandbox

    return serve_sandbox(settings, state_file=args.state, seed=args.seed,
                         register_webhooks=args.register_webhooks, webhook_interval=args.webhook_interval,
                         advoware_latency_ms=args.advoware_latency_ms)


def cmd_health(args, settings: Settings) -> int:
    import time

    from bitbylaw_tasks.web import health

    doc, healthy = health(settings, started_at=time.time() - settings.heartbeat_stale_after)
    print(json.dumps(doc, indent=2))
    return 0 if healthy else 1


def cmd_lock_release(args, settings: Settings) -> int:
    from bitbylaw_tasks.locks import force_release
    from bitbylaw_tasks.redis_clients import lock_redis

    released = force_release(lock_redis(settings), args.kind, args.entity_id)
    print("released" if released else "no such lock")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitbylaw", description=__doc__.splitlines()[0])
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
    add("config", cmd_config, "Print the effective settings (secrets masked).")
    add("health", cmd_health, "Check Redis, broker and heartbeats like /healthz; exit 1 when unhealthy.")
    p = add("web", cmd_web, "Serve the webhook shim with gunicorn.")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--host", default="127.0.0.1")
    p = add("worker", cmd_worker, "Start a Celery worker for one queue with the pool and concurrency from settings.")
    p.add_argument("queue", choices=["beteiligte", "kommunikation", "calendar", "default"])
    p.add_argument("--loglevel", default="INFO")
    p = add("beat", cmd_beat, "Start Celery beat with the Redis-locked redbeat scheduler.")
    p.add_argument("--loglevel", default="INFO")
    add("flower", cmd_flower, "Start Flower (basic auth and persistent state from settings).")
    from bitbylaw_tasks.beteiligte import cli as beteiligte_cli
    from bitbylaw_tasks.calendar import cli as calendar_cli

    from bitbylaw_tasks.espocrm import cli as espocrm_cli

    beteiligte_cli.register(sub)
    calendar_cli.register(sub)
    espocrm_cli.register(sub)
    p = add("lock-release", cmd_lock_release, "Release a stuck entity lock regardless of its owner.")
    p.add_argument("kind", help="e.g. cbeteiligte, kommunikation, calendar")
    p.add_argument("entity_id")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = get_settings(require_complete=not getattr(args, "partial_settings", False))
    except SettingsError as exc:
        print(f"bitbylaw: configuration error: {exc}", file=sys.stderr)
        return 2
    return args.func(args, settings) or 0


if __name__ == "__main__":
    raise SystemExit(main())
