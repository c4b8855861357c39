"""The task-side wiring of a calendar sync: whom to act as on Google, and the context built from the settings
(used by the task and the CLI)."""
from __future__ import annotations

from bitbylaw_tasks.calendar import service
from bitbylaw_tasks.calendar.state import CalendarState
from bitbylaw_tasks.clients import clients_for, google_calendar_client
from bitbylaw_tasks.notify import notifier_for
from bitbylaw_tasks.outcomes import Domain
from bitbylaw_tasks.redis_clients import calendar_redis, lock_redis

LOCK_KIND = "calendar"
#: The calendar has no record to write a failure to: a failed task in Flower says it all.
CALENDAR = Domain("calendar", LOCK_KIND)


class EmployeeWithoutEmail(Exception):
    """The real Google API needs the employee's e-mail (delegation); Advoware has none for this Kürzel."""


def delegates(settings) -> bool:
    """The real Google API acts as each employee (domain-wide delegation); a simulator or another endpoint
    serves one user."""
    return not (settings.google_calendar_endpoint or settings.google_simulated)


def subject_for(kuerzel: str, remembered: str | None, mitarbeiter: list[dict] | None) -> str | None:
    """The employee's e-mail: what the state remembers, else Advoware's Mitarbeiter record (None: unknown)."""
    if remembered:
        return remembered
    match = [m for m in mitarbeiter or () if m.get("kuerzel") == kuerzel]
    return (match[0].get("email") if match else None) or None


def _subject(settings, advoware, state: CalendarState) -> str | None:
    if not delegates(settings):
        return None
    remembered = state.meta().subject
    subject = subject_for(state.kuerzel, remembered, None if remembered else advoware.list_mitarbeiter())
    if subject is None:
        raise EmployeeWithoutEmail(f"calendar {state.kuerzel}: no e-mail in Advoware's Mitarbeiter")
    if subject != remembered:
        state.set_subject(subject)
    return subject


def context_for(settings, kuerzel: str, *, force: bool = False) -> service.CalendarContext:
    advoware = clients_for(settings).advoware
    state = CalendarState(calendar_redis(settings), kuerzel)
    google = google_calendar_client(settings, _subject(settings, advoware, state))
    notifier = notifier_for(settings, clients_for(settings).espocrm, lock_redis(settings))
    return service.CalendarContext(advoware, google, state, service.Policy.from_settings(settings), force=force,
                                   notifier=notifier)
