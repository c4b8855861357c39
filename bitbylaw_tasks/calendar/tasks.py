"""Celery tasks of the `calendar` queue: `calendar.sync_all` fans out `calendar.sync_employee(kuerzel)`. Thin.

`sync_employee` takes the employee's Kürzel only and runs on the shared task
shape (`outcomes.run_entity_task`): the per-employee lock (kind `calendar`, so a
request that finds it busy runs once more afterwards), transient errors retried
through Celery with back-off and jitter, the empty-side guard and anything else
a human must see as a failed task in Flower, and the sync metrics. Termine the
sync skipped (unreadable) are counted in the `skipped` metric.

Both tasks are beat's work: they call Advoware as background work (`priorities.CALENDAR`), admitted
at the shared gate only below `per_minute - ADVOWARE_INTERACTIVE_RESERVE`, so the fan-out never makes
a webhook sync wait (docs/calendar-sync.md, "The shared Advoware budget").
"""
from __future__ import annotations

import dataclasses
import logging

from bitbylaw_tasks import messages, priorities
from bitbylaw_tasks.calendar import service
from bitbylaw_tasks.calendar.context import CALENDAR, context_for
from bitbylaw_tasks.calendar.state import CalendarState
from bitbylaw_tasks.celery_app import app, settings_of
from bitbylaw_tasks.clients import clients_for
from bitbylaw_tasks.enqueue import enqueuer_for
from bitbylaw_tasks.exclusive import BUSY
from bitbylaw_tasks.metrics import record_calendar_actions, record_skipped
from bitbylaw_tasks.outcomes import run_entity_task
from bitbylaw_tasks.redis_clients import calendar_redis, lock_redis
from integrations.rategate import calls_as

log = logging.getLogger(__name__)


@app.task(bind=True, name=messages.CALENDAR_SYNC_EMPLOYEE, acks_late=True)
def sync_employee(self, kuerzel: str, force: bool = False) -> dict:
    """Sync one employee's Termine with their Google calendar (SPEC §6). Arguments: the Kürzel and a flag."""
    with calls_as(priorities.CALENDAR):
        outcome = run_entity_task(app, self, CALENDAR, entity_id=kuerzel, action="sync",
                                  entity_task=messages.calendar_sync_employee(kuerzel),
                                  context=lambda settings, _lock_redis: context_for(settings, kuerzel, force=force),
                                  work=service.sync_employee)
    if outcome == BUSY:
        return {"kuerzel": kuerzel, "path": BUSY}
    if outcome.rejected:
        record_skipped(lock_redis(settings_of(app)), "calendar", len(outcome.rejected))
    record_calendar_actions(lock_redis(settings_of(app)), outcome.actions)
    return dataclasses.asdict(outcome)


@app.task(name="calendar.sync_all", acks_late=True)
def sync_all() -> dict:
    """Beat, every CALENDAR_INTERVAL: one sync_employee per active employee (coalesced)."""
    settings = settings_of(app)
    with calls_as(priorities.CALENDAR):
        employees = clients_for(settings).advoware.list_mitarbeiter(aktiv=True)
    redis_state = calendar_redis(settings)
    for employee in employees:
        CalendarState(redis_state, employee["kuerzel"]).set_subject(employee.get("email"))
    queued = enqueuer_for(app).enqueue([messages.calendar_sync_employee(e["kuerzel"]) for e in employees])
    result = {"employees": len(employees), "queued": sum(queued)}
    log.info("calendar sync_all: %s", result)
    return result
