"""Celery tasks of the `calendar` queue: `calendar.sync_all` fans out `calendar.sync_employee(kuerzel)`. Thin.

`sync_employee` takes the employee's Kürzel only, holds the per-employee lock
(kind `calendar`, via `run_exclusive`, so a request that finds it busy runs
once more afterwards), builds the clients and calls the service. Transient API
errors are retried through Celery with back-off and jitter; the empty-side
guard and anything else a human must see end as a failed task in Flower.
Termine the sync skipped (unreadable) are counted in the `skipped` metric.
"""
from __future__ import annotations

import dataclasses
import logging

import celeryconfig
from bitbylaw_tasks.calendar import service
from bitbylaw_tasks.calendar.state import CalendarState
from bitbylaw_tasks.celery_app import app, settings_of
from bitbylaw_tasks.clients import clients_for, google_calendar_client
from bitbylaw_tasks.enqueue import EntityTask, coalesce_key, enqueuer_for
from bitbylaw_tasks.exclusive import BUSY, run_exclusive
from bitbylaw_tasks.locks import EntityLock
from bitbylaw_tasks.metrics import record_skipped
from bitbylaw_tasks.redis_clients import calendar_redis, lock_redis
from bitbylaw_tasks.outcomes import transient_countdown as retry_countdown

log = logging.getLogger(__name__)

LOCK_KIND = "calendar"


def employee_task(kuerzel: str) -> EntityTask:
    return EntityTask("calendar.sync_employee", (kuerzel,), coalesce_key("calendar", kuerzel))


class EmployeeWithoutEmail(Exception):
    """The real Google API needs the employee's e-mail (delegation); Advoware has none for this Kürzel."""


def _subject(settings, advoware, state: CalendarState) -> str | None:
    """The employee's e-mail for Google's delegation (not needed by the sandbox's single user)."""
    if settings.google_calendar_endpoint or settings.google_simulated:
        return None
    subject = state.meta().subject
    if subject is None:
        match = [m for m in advoware.list_mitarbeiter() if m.get("kuerzel") == state.kuerzel]
        subject = (match[0].get("email") if match else None) or None
        if subject is None:
            raise EmployeeWithoutEmail(f"calendar {state.kuerzel}: no e-mail in Advoware's Mitarbeiter")
        state.set_subject(subject)
    return subject


def context_for(settings, kuerzel: str, *, force: bool = False) -> service.CalendarContext:
    advoware = clients_for(settings).advoware
    state = CalendarState(calendar_redis(settings), kuerzel)
    google = google_calendar_client(settings, _subject(settings, advoware, state))
    return service.CalendarContext(advoware, google, state, service.Policy.from_settings(settings), force=force)


@app.task(bind=True, name="calendar.sync_employee", acks_late=True)
def sync_employee(self, kuerzel: str, force: bool = False) -> dict:
    """Sync one employee's Termine with their Google calendar (SPEC §6). Arguments: the Kürzel and a flag."""
    settings = settings_of(app)
    client = lock_redis(settings)

    def body(lock: EntityLock) -> dict:
        try:
            ctx = context_for(settings, kuerzel, force=force)
            ctx.lock = lock
            result = service.sync_employee(ctx)
            if result.rejected:
                record_skipped(client, "calendar", len(result.rejected))
            return dataclasses.asdict(result)
        except Exception as exc:  # transient: ApiError.transient (timeouts, 5xx, 429) and StillChanging
            if getattr(exc, "transient", False) and self.request.retries < settings.transient_retries:
                countdown = retry_countdown(self.request.retries, exc, celeryconfig.max_countdown(settings))
                raise self.retry(exc=exc, countdown=countdown, max_retries=settings.transient_retries)
            raise

    lock = EntityLock(client, LOCK_KIND, kuerzel, ttl=settings.sync_lock_ttl)
    outcome = run_exclusive(client, enqueuer_for(app), lock, employee_task(kuerzel), body)
    if outcome == BUSY:
        return {"kuerzel": kuerzel, "path": BUSY}
    return outcome


@app.task(name="calendar.sync_all", acks_late=True)
def sync_all() -> dict:
    """Beat, every CALENDAR_INTERVAL: one sync_employee per active employee (coalesced)."""
    settings = settings_of(app)
    employees = clients_for(settings).advoware.list_mitarbeiter(aktiv=True)
    redis_state = calendar_redis(settings)
    for employee in employees:
        CalendarState(redis_state, employee["kuerzel"]).set_subject(employee.get("email"))
    queued = enqueuer_for(app).enqueue([employee_task(e["kuerzel"]) for e in employees])
    result = {"employees": len(employees), "queued": sum(queued)}
    log.info("calendar sync_all: %s", result)
    return result
