"""One calendar sync of one employee (SPEC §6): read both sides, let `reconcile` decide, apply the plan.

Thin and effectful; no Celery here (the task holds the lock and maps errors).
A round: find (or create) the employee's calendar; list Google's changes with
the stored sync token (a full listing when there is none, when Google answers
410, or once a day); list the employee's Advoware Termine in the window;
decide; apply. A 412 on a Google write (someone edited the event after we
read it) or a Termin that vanished under us ends the round, and the next round
re-reads and re-decides (at most `MAX_ROUNDS`). Every applied action is
recorded in the state right away; the new sync token is stored only when the
whole plan went through, so an interrupted sync sees the same changes again.
"""
from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable

from bitbylaw_tasks import notify
from bitbylaw_tasks.calendar import reconcile as rc
from bitbylaw_tasks.calendar.mapping import (TZ, event_id_for, from_event, from_termin, keep_instants, to_event,
                                             to_termin)
from bitbylaw_tasks.calendar.state import CalendarState
from bitbylaw_tasks.locks import EntityLock
from integrations.advoware import AdvowareClient
from integrations.google_calendar import GoogleCalendarClient, calendar_properties
from integrations.errors import BadRequest, Conflict, Gone, NotFound, PreconditionFailed

log = logging.getLogger(__name__)

MAX_ROUNDS = 3
# Advoware has no If-Match: before writing a Termin, the listing must be at most this old, or it is read
# again; a Termin whose rowId moved meanwhile (a user edit during the sync) makes the round re-decide, so a
# slow sync never overwrites a newer Advoware edit with an older Google version.
ADVOWARE_FRESH_FOR = 2.0
FULL_RESYNC_AFTER = 24 * 3600  # a full listing once a day heals anything an incremental one cannot see
CALENDAR_MARKER_KEY = "kuerzel"


class EmptySideGuard(Exception):
    """A side reports no appointments while the state knows many: nothing was written (SPEC §6 safety)."""


class StillChanging(Exception):
    """Google events kept changing under the sync for MAX_ROUNDS rounds; retry later."""

    transient = True


class _Redecide(Exception):
    """The world changed after we read it (412, or a Termin gone): read again and decide again."""


@dataclass
class _AdvowareView:
    """The Termine listing a round decided on, re-read when it is older than ADVOWARE_FRESH_FOR."""

    window: tuple[date, date]
    termine: dict[int, dict]
    read_at: float = field(default_factory=time.monotonic)

    def ensure_unchanged(self, ctx: "CalendarContext", frnr: int, row_id: str | None) -> None:
        if time.monotonic() - self.read_at > ADVOWARE_FRESH_FOR:
            self.termine = {int(t["frNr"]): t for t in ctx.advoware.list_termine(ctx.kuerzel, *self.window)}
            self.read_at = time.monotonic()
        current = self.termine.get(int(frnr))
        if current is None or current.get("rowId") != row_id:
            raise _Redecide(f"Termin {frnr} changed in Advoware during the sync")


@dataclass(frozen=True)
class Policy:
    days_back: int = 30
    days_ahead: int = 365
    delete_termine: bool = False
    guard_min: int = 5

    @classmethod
    def from_settings(cls, settings) -> "Policy":
        return cls(settings.calendar_days_back, settings.calendar_days_ahead, settings.calendar_delete_termine,
                   settings.calendar_empty_guard)


@dataclass
class CalendarContext:
    advoware: AdvowareClient
    google: GoogleCalendarClient
    state: CalendarState
    policy: Policy = field(default_factory=Policy)
    lock: EntityLock | None = None
    today: Callable[[], date] = lambda: datetime.now(TZ).date()
    force: bool = False  # run even when the empty-side guard trips (operator decision)
    view: _AdvowareView | None = None  # the current round's Advoware listing
    notifier: notify.Notifier | None = None  # who hears of a tripped guard (notify.of)

    @property
    def kuerzel(self) -> str:
        return self.state.kuerzel

    def before_write(self) -> None:
        """Fencing: raises LockLost when our lease expired; extends it otherwise."""
        if self.lock is not None:
            self.lock.extend()


@dataclass
class SyncResult:
    kuerzel: str
    path: str = "no_change"            # no_change | synced
    full: bool = False
    rounds: int = 0
    actions: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    rejected: dict = field(default_factory=dict)  # frNr -> why it was skipped (unreadable, or a write refused)
    google_calls: int = 0
    advoware_calls: int = 0


def calendar_summary(kuerzel: str) -> str:
    return f"Advoware {kuerzel}"


def window(today: date, policy: Policy) -> tuple[date, date]:
    return today - timedelta(days=policy.days_back), today + timedelta(days=policy.days_ahead)


def find_calendar(google: GoogleCalendarClient, kuerzel: str) -> dict | None:
    """The employee's calendar by its description marker, else by its title (a user may edit descriptions).
    One calendar-list read for both."""
    calendars = google.list_calendars()
    for calendar in calendars:
        if calendar_properties(calendar).get(CALENDAR_MARKER_KEY) == kuerzel:
            return calendar
    return next((c for c in calendars if c.get("summary") == calendar_summary(kuerzel)), None)


def ensure_calendar(ctx: CalendarContext) -> str:
    meta = ctx.state.meta()
    if meta.calendar_id:
        return meta.calendar_id
    found = find_calendar(ctx.google, ctx.kuerzel)
    if found is None:
        ctx.before_write()
        found = ctx.google.create_calendar(calendar_summary(ctx.kuerzel),
                                           "Termine und Fristen aus Advoware (bitbylaw-tasks)",
                                           private_property=(CALENDAR_MARKER_KEY, ctx.kuerzel))
        log.info("calendar %s: created the employee's calendar", ctx.kuerzel)
    ctx.state.set_calendar(found["id"])
    return found["id"]


def _list_google(ctx: CalendarContext, calendar_id: str, meta) -> tuple[list[dict], str | None, bool]:
    due = meta.full_at is None or time.time() - meta.full_at > FULL_RESYNC_AFTER
    if meta.sync_token and not due:
        try:
            events, token = ctx.google.list_events(calendar_id, sync_token=meta.sync_token)
            return events, token, False
        except Gone:
            log.info("calendar %s: sync token expired (410), full resync", ctx.kuerzel)
            ctx.state.drop_sync_token()
    events, token = ctx.google.list_events(calendar_id)
    return events, token, True


def sync_employee(ctx: CalendarContext) -> SyncResult:
    """Sync one employee's Termine with their calendar. Raises EmptySideGuard, StillChanging, ApiError."""
    result = SyncResult(ctx.kuerzel)
    calls_before = sum(ctx.advoware.calls.values()), ctx.google.calls
    totals: collections.Counter = collections.Counter()
    try:
        for result.rounds in range(1, MAX_ROUNDS + 1):
            try:
                _round(ctx, result, totals)
                break
            except _Redecide as exc:
                log.info("calendar %s: %s; reading again", ctx.kuerzel, exc)
        else:
            raise StillChanging(f"calendar {ctx.kuerzel}: events changed during {MAX_ROUNDS} rounds")
    finally:
        result.advoware_calls = sum(ctx.advoware.calls.values()) - calls_before[0]
        result.google_calls = ctx.google.calls - calls_before[1]
    result.actions = dict(totals)
    if any(kind in rc.WRITES for kind in totals):
        result.path = "synced"
    log.info("calendar %s: %s full=%s rounds=%d actions=%s", ctx.kuerzel, result.path, result.full,
             result.rounds, result.actions)
    return result


def _round(ctx: CalendarContext, result: SyncResult, totals: collections.Counter) -> None:
    calendar_id = ensure_calendar(ctx)
    meta, items, pending = ctx.state.snapshot()
    if meta.calendar_id != calendar_id:
        raise _Redecide("the state changed under us (lost?)")
    try:
        events, token, full = _list_google(ctx, calendar_id, meta)
    except NotFound:
        log.warning("calendar %s: the calendar is gone; starting over with a new one", ctx.kuerzel)
        ctx.state.clear()
        raise _Redecide("calendar deleted") from None
    result.full = result.full or full
    first, last = window(ctx.today(), ctx.policy)
    termine = ctx.advoware.list_termine(ctx.kuerzel, first, last)
    ctx.view = _AdvowareView((first, last), {int(t["frNr"]): t for t in termine})
    inputs = rc.Inputs(kuerzel=ctx.kuerzel, window=(first, last), termine=termine, events=events, full=full,
                       state=items, pending=pending,
                       delete_termine=ctx.policy.delete_termine, guard_min=ctx.policy.guard_min)
    plan = rc.reconcile(inputs)
    if plan.missing_probes:
        probes = {frnr: _probe(ctx, frnr) for frnr in sorted(plan.missing_probes)}
        plan = rc.reconcile(rc.Inputs(**{**vars(inputs), "probes": probes}))
    if plan.guard and not ctx.force:
        log.error("calendar %s: empty-side guard (%s): nothing written", ctx.kuerzel, plan.guard)
        notify.of(ctx).record(notify.CALENDAR_GUARD, ctx.kuerzel, f"{plan.guard}; `bitbylaw calendar sync "
                                                                 f"{ctx.kuerzel} --force` after a check")
        raise EmptySideGuard(f"calendar {ctx.kuerzel}: {plan.guard}: a side reports no appointments while "
                             f"the state knows many; check, then `bitbylaw calendar sync {ctx.kuerzel} --force`")
    result.skipped = dict(plan.skipped)
    rejected = dict(plan.rejected)
    for action in plan.actions:
        try:
            APPLY[action.kind](ctx, calendar_id, action)
        except BadRequest as exc:  # this one write is refused as invalid: skip it, never the whole employee
            key = action.frnr if action.frnr is not None else f"event {action.event_id}"  # a Termin not made yet
            rejected[key] = f"{action.kind} refused ({exc.system} {exc.status})"
            continue
        totals[action.kind] += 1
        if action.kind in rc.WRITES:
            log.info("calendar %s: frNr %s event %s: %s (%s)", ctx.kuerzel, action.frnr, action.event_id,
                     action.kind, action.reason)
    _report_rejected(ctx, result, rejected)
    ctx.state.end_create(*plan.drop_pending)
    if not ctx.state.finish(calendar_id, token, full=full):
        log.warning("calendar %s: the state was lost during the sync; the next sync rebuilds it", ctx.kuerzel)


def _report_rejected(ctx: CalendarContext, result: SyncResult, rejected: dict) -> None:
    """Tell the operator about skipped Termine: a log line each (frNr and field, never a value), the task
    result, and the state (`bitbylaw calendar status`); the task counts them as a metric."""
    for frnr, why in sorted(rejected.items(), key=lambda kv: str(kv[0])):
        log.warning("calendar %s: frNr %s skipped: %s", ctx.kuerzel, frnr, why)
    result.rejected = {str(frnr): why for frnr, why in rejected.items()}
    ctx.state.set_rejected(result.rejected)


def _probe(ctx: CalendarContext, frnr: int) -> dict | None:
    try:
        return ctx.advoware.get_termin(frnr)
    except NotFound:
        return None


# --- applying actions ---
def _keep(ctx: CalendarContext, action: rc.Action, frnr: int, item: rc.Item) -> None:
    if action.keep:
        ctx.state.put(frnr, item)
    else:
        ctx.state.forget(frnr)


def _insert_event(ctx: CalendarContext, calendar_id: str, a: rc.Action) -> None:
    event_id = event_id_for(a.frnr)
    body = to_event(a.appt, a.frnr)
    ctx.before_write()
    try:
        event = ctx.google.insert_event(calendar_id, {**body, "id": event_id})
    except Conflict:
        # Google never frees an id: the event exists (maybe deleted). A PUT restores and overwrites it.
        try:
            event = ctx.google.update_event(calendar_id, event_id, body)
        except NotFound:
            # Deleted events "eventually disappear" (events reference) while their id may stay taken.
            event_id = f"{event_id}v{int(time.time())}"
            event = ctx.google.insert_event(calendar_id, {**body, "id": event_id})
    _keep(ctx, a, a.frnr, rc.item_for(event_id, a.appt, a.termin, event))


def _update_event(ctx: CalendarContext, calendar_id: str, a: rc.Action) -> None:
    ctx.before_write()
    try:
        event = ctx.google.update_event(calendar_id, a.event_id, to_event(a.appt, a.frnr), etag=a.etag)
    except PreconditionFailed:
        raise _Redecide(f"event of frNr {a.frnr} changed in Google") from None
    except NotFound:
        _insert_event(ctx, calendar_id, a)  # the event is gone for good (purged): a new one
        return
    _keep(ctx, a, a.frnr, rc.item_for(a.event_id, a.appt, a.termin, event))


def _delete_event(ctx: CalendarContext, calendar_id: str, a: rc.Action) -> None:
    ctx.before_write()
    try:
        ctx.google.delete_event(calendar_id, a.event_id, etag=a.etag)
    except (Gone, NotFound):
        pass  # already deleted
    except PreconditionFailed:
        raise _Redecide(f"event of frNr {a.frnr} changed in Google") from None
    ctx.state.forget(a.frnr)


def _stamp(ctx: CalendarContext, calendar_id: str, a: rc.Action, termin: dict) -> None:
    """Write the Termin's content and frNr stamp to the Google event it came from."""
    frnr = int(termin["frNr"])
    appt = keep_instants(from_termin(termin), from_event(a.event) if a.event else None)
    ctx.before_write()
    try:
        event = ctx.google.update_event(calendar_id, a.event_id, to_event(appt, frnr), etag=a.etag)
    except PreconditionFailed:
        raise _Redecide(f"event of frNr {frnr} changed in Google before the stamp") from None
    _keep(ctx, a, frnr, rc.item_for(a.event_id, appt, termin, event))


def _create_termin(ctx: CalendarContext, calendar_id: str, a: rc.Action) -> None:
    ctx.before_write()
    ctx.state.begin_create(a.event_id)  # journal first: a lost answer must not lead to a second POST
    termin = ctx.advoware.create_termin(to_termin(a.appt, ctx.kuerzel))
    frnr = int(termin["frNr"])
    ctx.state.put(frnr, rc.item_for(a.event_id, from_termin(termin), termin, None))
    ctx.state.end_create(a.event_id)
    _stamp(ctx, calendar_id, a, termin)


def _update_termin(ctx: CalendarContext, calendar_id: str, a: rc.Action) -> None:
    ctx.view.ensure_unchanged(ctx, a.frnr, a.termin.get("rowId"))
    ctx.before_write()
    try:
        termin = ctx.advoware.update_termin(a.frnr, to_termin(a.appt, ctx.kuerzel, base=a.termin))
    except NotFound:
        raise _Redecide(f"Termin {a.frnr} deleted in Advoware meanwhile") from None
    if a.stamp:
        _stamp(ctx, calendar_id, a, termin)
    else:
        _keep(ctx, a, a.frnr, rc.item_for(a.event_id, from_termin(termin), termin, a.event))


def _delete_termin(ctx: CalendarContext, calendar_id: str, a: rc.Action) -> None:
    ctx.view.ensure_unchanged(ctx, a.frnr, a.termin.get("rowId"))
    ctx.before_write()
    try:
        ctx.advoware.delete_termin(a.frnr)
    except NotFound:
        pass
    ctx.state.forget(a.frnr)


APPLY = {
    rc.INSERT_EVENT: _insert_event,
    rc.UPDATE_EVENT: _update_event,
    rc.DELETE_EVENT: _delete_event,
    rc.CREATE_TERMIN: _create_termin,
    rc.UPDATE_TERMIN: _update_termin,
    rc.DELETE_TERMIN: _delete_termin,
    rc.RECORD: lambda ctx, calendar_id, a: ctx.state.put(a.frnr, a.item),
    rc.FORGET: lambda ctx, calendar_id, a: ctx.state.forget(a.frnr),
}
