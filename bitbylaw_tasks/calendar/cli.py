"""`bitbylaw calendar ...`: audit, sync, clear one employee; sync all; list the state; delete the product's calendars.

`register(subparsers)` adds the `calendar` command to the main parser
(`bitbylaw_tasks/cli.py`). Every action is a function `(args, settings) -> int`;
a Kürzel Advoware does not know is refused in one line (`CommandError`).
"""
from __future__ import annotations

import json
import sys

from bitbylaw_tasks import messages
from bitbylaw_tasks.calendar import service
from bitbylaw_tasks.calendar.context import LOCK_KIND
from bitbylaw_tasks.calendar.state import CalendarState, known_employees
from bitbylaw_tasks.cli_errors import CommandError
from bitbylaw_tasks.cli_groups import command_group
from bitbylaw_tasks.settings import Settings
from bitbylaw_tasks.timefmt import iso_utc


def _print(doc) -> None:
    print(json.dumps(doc, indent=2, ensure_ascii=False, default=str))


def known_employee(settings: Settings, kuerzel: str) -> None:
    """Refuse a Kürzel that is not one of Advoware's Mitarbeiter."""
    from bitbylaw_tasks.clients import clients_for

    if not any(m.get("kuerzel") == kuerzel for m in clients_for(settings).advoware.list_mitarbeiter()):
        raise CommandError(f"calendar {kuerzel}: no employee with this Kürzel in Advoware")


def cmd_audit(args, settings: Settings) -> int:
    """Read-only: what differs between the employee's Termine and calendar (exit 1 when anything does)."""
    from bitbylaw_tasks.calendar.audit import audit
    from bitbylaw_tasks.calendar.context import context_for

    known_employee(settings, args.kuerzel)
    ctx = context_for(settings, args.kuerzel)
    report = audit(ctx.advoware, ctx.google, ctx.state, ctx.policy)
    _print(report)
    dirty = any(report.get(k) for k in ("differ", "only_advoware", "only_google_unstamped",
                                        "stamped_without_termin", "duplicates", "rejected"))
    if report["calendar"] is None:
        print(f"calendar {args.kuerzel}: no calendar in Google yet (a sync creates it)", file=sys.stderr)
    elif dirty:
        print(f"calendar {args.kuerzel}: the two sides differ (a sync would reconcile them)", file=sys.stderr)
    return 1 if dirty or report["calendar"] is None else 0


def cmd_sync(args, settings: Settings) -> int:
    """Queue `calendar.sync_employee` (default), or run it here and now under the employee's lock;
    `--all` queues `calendar.sync_all` (one sync per active employee)."""
    if (args.kuerzel is None) == (not args.all):
        raise CommandError("bitbylaw calendar sync: give a KUERZEL or --all", code=2)
    if args.all:
        if args.now or args.force:
            raise CommandError("bitbylaw calendar sync --all: queues only (no --now, no --force)", code=2)
        from bitbylaw_tasks.celery_app import app

        result = app.send_task("calendar.sync_all")
        if args.wait:
            _print(result.get(timeout=args.wait))
        else:
            print(f"queued {result.id}")
        return 0
    known_employee(settings, args.kuerzel)
    if not args.now:
        from bitbylaw_tasks.celery_app import app

        result = app.send_task(messages.CALENDAR_SYNC_EMPLOYEE, (args.kuerzel, args.force))
        if args.wait:
            _print(result.get(timeout=args.wait))
        else:
            print(f"queued {result.id}")
        return 0
    from bitbylaw_tasks.calendar.context import context_for
    from bitbylaw_tasks.locks import LockBusy, entity_lock
    from bitbylaw_tasks.redis_clients import lock_redis

    try:
        with entity_lock(lock_redis(settings), LOCK_KIND, args.kuerzel, ttl=settings.sync_lock_ttl) as lock:
            ctx = context_for(settings, args.kuerzel, force=args.force)
            ctx.lock = lock
            result = service.sync_employee(ctx)
    except LockBusy:
        print(f"{args.kuerzel}: a sync is running (lock held); try again or `bitbylaw calendar clear`")
        return 1
    except service.EmptySideGuard as exc:
        print(str(exc))
        return 1
    _print(vars(result))
    return 0


def cmd_clear(args, settings: Settings) -> int:
    """Forget the employee's state (the next sync rebuilds it from Google) and release the lock."""
    from bitbylaw_tasks.locks import force_release
    from bitbylaw_tasks.redis_clients import calendar_redis, lock_redis

    cleared = CalendarState(calendar_redis(settings), args.kuerzel).clear()
    released = force_release(lock_redis(settings), LOCK_KIND, args.kuerzel)
    _print({"kuerzel": args.kuerzel, "state_keys_deleted": cleared, "lock_released": released})
    return 0


def cmd_status(args, settings: Settings) -> int:
    from bitbylaw_tasks.redis_clients import calendar_redis

    client = calendar_redis(settings)
    kuerzel = [args.kuerzel] if args.kuerzel else known_employees(client)
    if args.kuerzel and args.kuerzel not in known_employees(client):
        raise CommandError(f"calendar {args.kuerzel}: no calendar state (never synced)")
    summaries = [CalendarState(client, k).summary() for k in kuerzel]
    for summary in summaries:
        summary.update({key: iso_utc(summary[key]) for key in ("full_at", "synced_at")})
    _print(summaries)
    return 0


def cmd_delete_calendars(args, settings: Settings) -> int:
    """Delete every calendar the product made (found by its marker) and the whole calendar state."""
    from bitbylaw_tasks.clients import clients_for, google_calendar_client
    from bitbylaw_tasks.locks import force_release
    from bitbylaw_tasks.redis_clients import calendar_redis, lock_redis
    from integrations.google_calendar import calendar_properties

    sandbox = settings.google_simulated or bool(settings.google_calendar_endpoint)
    if not sandbox and not args.yes:
        print("refusing: this deletes the employees' calendars in the real Google; add --yes to confirm")
        return 2
    if sandbox:
        subjects = [None]
    else:
        subjects = sorted({m["email"] for m in clients_for(settings).advoware.list_mitarbeiter() if m.get("email")})
    deleted = []
    for subject in subjects:
        google = google_calendar_client(settings, subject)
        for calendar in google.list_calendars():
            kuerzel = calendar_properties(calendar).get(service.CALENDAR_MARKER_KEY)
            if kuerzel:
                google.delete_calendar(calendar["id"])
                deleted.append(kuerzel)
    client = calendar_redis(settings)
    for kuerzel in set(deleted) | set(known_employees(client)):
        CalendarState(client, kuerzel).clear()
        force_release(lock_redis(settings), LOCK_KIND, kuerzel)
    _print({"deleted_calendars": len(deleted), "employees": sorted(set(deleted))})
    return 0


def register(subparsers) -> None:
    """Add `calendar audit|sync|clear|status|delete-calendars` to the main parser's subcommands."""
    add = command_group(subparsers, "calendar", "Calendar sync (Advoware Termine <-> Google): audit, sync, clear, "
                                                "status, delete-calendars.",
                        "Calendar sync operator actions (SPEC §6).", metavar="ACTION")
    p = add("audit", cmd_audit, "Show what differs between an employee's Termine and calendar (read-only).")
    p.add_argument("kuerzel")
    p = add("sync", cmd_sync, "Queue a sync of one employee (or run it now with --now), or of all with --all.")
    p.add_argument("kuerzel", nargs="?")
    p.add_argument("--all", action="store_true", help="queue calendar.sync_all: every active employee")
    p.add_argument("--now", action="store_true", help="run in this process instead of queueing")
    p.add_argument("--force", action="store_true", help="go on although the empty-side guard tripped")
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS", help="wait for the queued task's result")
    p = add("clear", cmd_clear, "Forget an employee's calendar state and release its lock.")
    p.add_argument("kuerzel")
    p = add("status", cmd_status, "List every employee's calendar state (items, token, last syncs), or one's.")
    p.add_argument("kuerzel", nargs="?")
    p = add("delete-calendars", cmd_delete_calendars,
            "Delete the product's calendars and all calendar state (sandbox; real systems need --yes).")
    p.add_argument("--yes", action="store_true", help="confirm deleting calendars in the real Google")
