"""The read-only calendar audit (`bitbylaw calendar audit KUERZEL`): what differs between the two sides.

Reads the employee's Termine in the window, the whole calendar and the state,
and reports equal pairs, differing fields, one-sided appointments,
duplicates, Termine the sync skips because they cannot be read (`rejected`),
and how the state relates to both. Writes nothing anywhere.
"""
from __future__ import annotations

import collections
from datetime import date, datetime

from bitbylaw_tasks.calendar.mapping import TZ, event_frnr, from_event, from_termin, syncable, unreadable
from bitbylaw_tasks.calendar.service import Policy, find_calendar, window
from bitbylaw_tasks.calendar.state import CalendarState
from integrations.advoware import AdvowareClient
from integrations.google_calendar import GoogleCalendarClient


def audit(advoware: AdvowareClient, google: GoogleCalendarClient, state: CalendarState,
          policy: Policy = Policy(), today: date | None = None) -> dict:
    """The differences between an employee's Termine and calendar, without writing anything anywhere."""
    kuerzel = state.kuerzel
    first, last = window(today or datetime.now(TZ).date(), policy)
    meta, items, _ = state.snapshot()
    rejected: dict[int, str] = {}
    report: dict = {"kuerzel": kuerzel, "window": [first.isoformat(), last.isoformat()], "calendar": None}
    calendar_id = meta.calendar_id or (find_calendar(google, kuerzel) or {}).get("id")
    termine = {}
    for termin in advoware.list_termine(kuerzel, first, last):
        why = unreadable(termin)  # the sync skips these too
        if why is None:
            termine[int(termin["frNr"])] = termin
        else:
            rejected[int(termin["frNr"])] = why
    report["advoware"] = len(termine) + len(rejected)
    report["rejected"] = {str(frnr): why for frnr, why in sorted(rejected.items())}
    if calendar_id is None:
        report["only_advoware"] = sorted(termine)
        return report
    report["calendar"] = calendar_id
    events, _ = google.list_events(calendar_id)
    by_frnr: dict[int, list[dict]] = collections.defaultdict(list)
    unstamped = []
    for event in events:
        if not syncable(event):
            continue
        appt = from_event(event)
        if not appt.overlaps(first, last) and event_frnr(event) not in termine:
            continue
        frnr = event_frnr(event)
        (by_frnr[frnr].append(event) if frnr is not None else unstamped.append(event["id"]))
    report["google"] = sum(len(v) for v in by_frnr.values()) + len(unstamped)
    differ, equal = [], 0
    for frnr, termin in sorted(termine.items()):
        if frnr not in by_frnr:
            continue
        a, g = from_termin(termin), from_event(by_frnr[frnr][0]).with_art(termin.get("art") or "Termin")
        if a == g:
            equal += 1
            continue
        fields = {name: [str(getattr(a, name)), str(getattr(g, name))]
                  for name in vars(a) if getattr(a, name) != getattr(g, name)}
        differ.append({"frNr": frnr, "eventId": by_frnr[frnr][0]["id"], "fields": fields})
    report.update(
        equal=equal, differ=differ,
        only_advoware=sorted(set(termine) - set(by_frnr)),
        only_google_unstamped=sorted(unstamped),
        stamped_without_termin=sorted(f for f in by_frnr if f not in termine and f not in rejected),
        duplicates=sorted(f for f, evs in by_frnr.items() if len(evs) > 1),
        state={"items": len(items), "sync_token": bool(meta.sync_token),
               "unknown_to_state": sorted(f for f in termine if f in by_frnr and f not in items),
               "event_id_mismatch": sorted(f for f, item in items.items()
                                           if f in by_frnr and item.event_id not in {e["id"] for e in by_frnr[f]})})
    return report
