"""The calendar reconciliation, pure: (Advoware Termine in the window, Google changes, state) -> a plan.

A decision table in the style of vdirsyncer's `_get_actions` (RESEARCH §F).
The status store remembers, per frNr, the Google event id and each side's
version (Advoware rowId, Google etag) and content hash at the last sync. A
side *changed* when its version differs **and** its canonical content hash
differs (our own writes come back with the version we stored: no change).

Policies (SPEC §6):
- both changed -> conflict: equal contents need nothing, else **Advoware wins**;
- one changed -> the other side is updated;
- new in Advoware -> event inserted (id `advo<frNr>`, so an insert is idempotent);
- new in Google (no frNr stamp, inside the window) -> a Termin (`art` Termin);
- gone from Advoware (a GET says 404, or the Termin moved to another
  employee) -> the event is deleted;
- gone from Google: a `Frist` or `Wiedervorlage` is re-created (PUT restores
  the same event id); a `Termin` too, unless `delete_termine` allows deleting
  it in Advoware; a change made in Advoware meanwhile always re-creates;
- a Termin the mapping cannot read is left alone and listed in
  `Plan.rejected` (the caller reports it): one bad Termin never stops the rest;
- empty side: a side that reports nothing while the state knows at least
  `guard_min` appointments in the window stops the sync (`Plan.guard`)
  instead of deleting everything on the other side.

The Google input is either a full listing (`full=True`: an event missing from
it is gone) or the changes since the sync token (missing = unchanged).
Termine that vanished from the Advoware listing are looked up one by one
(`Plan.missing_probes`; the caller GETs them and decides again with `probes`).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from datetime import date

from bitbylaw_tasks.calendar.mapping import (Appointment, event_frnr, event_hash, event_id_for, from_event,
                                             from_termin, is_complete, keep_instants, syncable, termin_hash,
                                             unreadable)

INSERT_EVENT, UPDATE_EVENT, DELETE_EVENT = "insert_event", "update_event", "delete_event"
CREATE_TERMIN, UPDATE_TERMIN, DELETE_TERMIN = "create_termin", "update_termin", "delete_termin"
RECORD, FORGET = "record", "forget"
WRITES = (INSERT_EVENT, UPDATE_EVENT, DELETE_EVENT, CREATE_TERMIN, UPDATE_TERMIN, DELETE_TERMIN)
GUARD_ADVOWARE_EMPTY, GUARD_GOOGLE_EMPTY = "advoware_empty", "google_empty"
NEVER_DELETED_FROM_GOOGLE = ("Frist", "Wiedervorlage")


@dataclass(frozen=True)
class Item:
    """The status of one synced pair (per frNr) after the last sync."""

    event_id: str
    art: str
    start: str                  # canonical first day (ISO), to tell when it left the window
    end: str
    a_row: str | None = None
    a_hash: str | None = None
    g_etag: str | None = None
    g_hash: str | None = None   # None: the Google side still needs our write (e.g. the frNr stamp)

    def overlaps(self, first: date, last: date) -> bool:
        return date.fromisoformat(self.start) <= last and date.fromisoformat(self.end) >= first


def item_for(event_id: str, appt: Appointment, termin: dict | None, event: dict | None) -> Item:
    """The status after a sync: each side's version and hash, taken from the records as they are now."""
    return Item(event_id, appt.art, appt.start_date.isoformat(), appt.end_date.isoformat(),
                a_row=termin.get("rowId") if termin else None, a_hash=termin_hash(termin) if termin else None,
                g_etag=event.get("etag") if event else None, g_hash=event_hash(event) if event else None)


@dataclass(frozen=True)
class Action:
    kind: str
    frnr: int | None = None
    event_id: str | None = None
    appt: Appointment | None = None  # the content to write
    etag: str | None = None          # If-Match for the Google write (None: unconditional)
    termin: dict | None = None       # Advoware's record as read (base of an update, or the other side)
    event: dict | None = None        # Google's event as read (the other side of an Advoware write)
    stamp: bool = False              # after an Advoware write: also write the frNr stamp to Google
    keep: bool = True                # record the pair afterwards (False: forget it, e.g. outside the window)
    item: Item | None = None         # RECORD: the new status
    reason: str = ""


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    missing_probes: set[int] = field(default_factory=set)
    guard: str | None = None
    skipped: collections.Counter = field(default_factory=collections.Counter)
    drop_pending: set[str] = field(default_factory=set)
    rejected: dict[int, str] = field(default_factory=dict)  # frNr -> why its Termin cannot be read (skipped)

    def kinds(self) -> collections.Counter:
        return collections.Counter(a.kind for a in self.actions)

    @property
    def writes(self) -> list[Action]:
        return [a for a in self.actions if a.kind in WRITES]


@dataclass(frozen=True)
class Inputs:
    kuerzel: str
    window: tuple[date, date]                # first and last day, inclusive
    termine: list[dict]                      # Advoware: the employee's Termine overlapping the window
    events: list[dict]                       # Google: full listing or changes since the sync token
    full: bool
    state: dict[int, Item]
    pending: frozenset[str] = frozenset()    # event ids whose Termin POST may have happened (journal)
    probes: dict[int, dict | None] = field(default_factory=dict)  # frNr -> Termin, None = 404
    delete_termine: bool = False             # a Google deletion of a Termin deletes it in Advoware
    guard_min: int = 5                       # 0 disables the empty-side guard


class _Decider:
    def __init__(self, inp: Inputs):
        self.inp = inp
        self.plan = Plan()
        self.first, self.last = inp.window
        self.advo: dict[int, dict] = {}
        for termin in inp.termine:
            if self.readable(termin):
                self.advo[int(termin["frNr"])] = termin
        self.live: dict[str, dict] = {}
        self.cancelled: set[str] = set()
        for ev in inp.events:
            if ev.get("status") == "cancelled":
                self.cancelled.add(ev["id"])
                self.live.pop(ev["id"], None)
            else:
                self.live[ev["id"]] = ev
                self.cancelled.discard(ev["id"])
        self.mapped = {item.event_id: frnr for frnr, item in inp.state.items()}
        self.claims: dict[int, str] = {}  # frNr -> unmapped event stamped with it (state lost, or adopted)

    # --- helpers ---
    def act(self, kind: str, **kw) -> None:
        appt = kw.get("appt")
        if appt is not None and not self.in_window(appt):
            kw["keep"] = False  # written, but not followed any more: it left the window
        current = self.live.get(kw.get("event_id"))
        if kind == UPDATE_EVENT and current is not None:
            kw["appt"] = keep_instants(appt, self.event_span(current))  # an exact instant Google has stays
        self.plan.actions.append(Action(kind, **kw))

    def in_window(self, appt: Appointment) -> bool:
        return appt.overlaps(self.first, self.last)

    def event_appt(self, ev: dict) -> Appointment | None:
        if not syncable(ev):
            return None
        try:
            return from_event(ev)
        except (KeyError, ValueError):
            return None

    def readable(self, termin: dict) -> bool:
        """False (and the frNr recorded in `plan.rejected`) for a Termin the mapping cannot read: it is left
        alone -- no event written or deleted, its status kept -- so one bad Termin never stops the others."""
        why = unreadable(termin)
        if why is not None:
            self.plan.rejected[int(termin["frNr"])] = why
        return why is None

    def probe(self, frnr: int):
        """(known, Termin-or-None); unknown probes are collected for the caller. An unreadable Termin
        counts as not known: nothing is decided for it."""
        if frnr in self.inp.probes:
            found = self.inp.probes[frnr]
            return found is None or self.readable(found), found
        self.plan.missing_probes.add(frnr)
        return False, None

    def event_span(self, ev: dict) -> Appointment | None:
        """Where an event lies, also for one we do not sync (recurring: its first occurrence)."""
        try:
            return from_event(ev)
        except (KeyError, ValueError, TypeError):
            return None

    def record(self, frnr: int, event_id: str, appt: Appointment, termin: dict, event: dict | None,
               old: Item | None = None) -> None:
        item = item_for(event_id, appt, termin, event)
        if event is None and old is not None:
            item = Item(**{**vars(item), "g_etag": old.g_etag, "g_hash": old.g_hash})
        if not self.in_window(appt):
            self.act(FORGET, frnr=frnr, event_id=event_id, reason="outside the window")
        elif item != old:
            self.act(RECORD, frnr=frnr, event_id=event_id, item=item)

    # --- the table ---
    def run(self) -> Plan:
        self.collect_claims()
        for frnr in sorted((set(self.inp.state) | set(self.advo) | set(self.claims)) - set(self.plan.rejected)):
            if frnr in self.inp.state:
                self.known(frnr, self.inp.state[frnr])
            else:
                self.unknown(frnr)
        self.new_in_google()
        self.check_guard()
        return self.plan

    def collect_claims(self) -> None:
        """Unmapped live events stamped with a frNr (after a state loss), and events whose Termin POST may
        have happened (journal) matched by content to an unmapped Termin, so neither is created twice."""
        for event_id, ev in self.live.items():
            frnr = event_frnr(ev)
            if event_id in self.mapped or frnr is None or frnr in self.inp.state:
                continue
            # Claimed even when we do not sync it (made recurring) or it lies outside the window: its Termin is
            # listed (Advoware's version goes back; no second event), or it is in the window (probed; an orphan
            # is deleted). Skipping it would insert a twin, or leave it stamped for ever.
            span = self.event_span(ev)
            if frnr not in self.advo and (span is None or not self.in_window(span)):
                continue
            if frnr not in self.claims or event_id == event_id_for(frnr):
                self.claims[frnr] = event_id
        unclaimed = {termin_hash(t): frnr for frnr, t in self.advo.items()
                     if frnr not in self.inp.state and frnr not in self.claims}
        for event_id in sorted(self.inp.pending):
            ev = self.live.get(event_id)
            if event_id in self.cancelled or event_id in self.mapped or (ev and event_frnr(ev) is not None):
                self.plan.drop_pending.add(event_id)  # settled: deleted, or its Termin is known
                continue
            if ev is None:
                continue
            appt = self.event_appt(ev)
            frnr = unclaimed.pop(appt.content_hash(), None) if appt else None
            if frnr is not None:
                self.claims[frnr] = event_id
                self.plan.drop_pending.add(event_id)

    def unknown(self, frnr: int) -> None:
        """No status: new in Advoware, or a stamped event whose status was lost."""
        termin = self.advo.get(frnr)
        event_id = self.claims.get(frnr)
        ev = self.live.get(event_id) if event_id else None
        if termin is None:
            known, found = self.probe(frnr)
            if not known:
                return
            if found is None or found.get("kuerzel") != self.inp.kuerzel:
                self.act(DELETE_EVENT, frnr=frnr, event_id=event_id, etag=ev.get("etag"), keep=False,
                         reason="deleted in Advoware" if found is None else "moved to another employee")
            elif from_termin(found) != self.event_appt(ev) or not is_complete(ev, frnr, found.get("art")):
                self.act(UPDATE_EVENT, frnr=frnr, event_id=event_id, appt=from_termin(found), etag=ev.get("etag"),
                         termin=found, keep=False, reason="moved outside the window in Advoware")
            return
        appt = from_termin(termin)
        if ev is None:
            self.act(INSERT_EVENT, frnr=frnr, appt=appt, termin=termin, reason="new in Advoware")
        elif self.event_appt(ev) == appt and is_complete(ev, frnr, appt.art):
            self.record(frnr, event_id, appt, termin, ev)
        else:
            self.act(UPDATE_EVENT, frnr=frnr, event_id=event_id, appt=appt, etag=ev.get("etag"), termin=termin,
                     reason="adopted: Advoware wins")

    def known(self, frnr: int, s: Item) -> None:
        termin = self.advo.get(frnr)
        ev = self.live.get(s.event_id)
        g_deleted = s.event_id in self.cancelled or (self.inp.full and ev is None)
        etag = ev.get("etag") if ev else s.g_etag
        if termin is None:
            if not s.overlaps(self.first, self.last):
                self.act(FORGET, frnr=frnr, event_id=s.event_id, reason="left the window")
                return
            known, found = self.probe(frnr)
            if not known:
                return
            if found is None or found.get("kuerzel") != self.inp.kuerzel:
                why = "deleted in Advoware" if found is None else "moved to another employee"
                if g_deleted:
                    self.act(FORGET, frnr=frnr, event_id=s.event_id, reason=why + ", gone in Google too")
                else:
                    self.act(DELETE_EVENT, frnr=frnr, event_id=s.event_id, etag=etag, keep=False, reason=why)
            elif not g_deleted and termin_hash(found) != (event_hash(ev) if ev else s.g_hash):
                self.act(UPDATE_EVENT, frnr=frnr, event_id=s.event_id, appt=from_termin(found), etag=etag,
                         termin=found, keep=False, reason="moved outside the window in Advoware")
            else:
                self.act(FORGET, frnr=frnr, event_id=s.event_id, reason="moved outside the window")
            return
        appt = from_termin(termin)
        a_changed = termin.get("rowId") != s.a_row and termin_hash(termin) != s.a_hash
        if g_deleted:
            if a_changed or termin.get("art") in NEVER_DELETED_FROM_GOOGLE or not self.inp.delete_termine:
                self.act(UPDATE_EVENT, frnr=frnr, event_id=s.event_id, appt=appt, termin=termin,
                         reason=f"{appt.art} deleted in Google: re-created")
            else:
                self.act(DELETE_TERMIN, frnr=frnr, event_id=s.event_id, termin=termin, keep=False,
                         reason="deleted in Google")
            return
        g_appt = self.event_appt(ev) if ev is not None else None
        if ev is not None and g_appt is None:
            # made recurring or otherwise unmappable in Google: Advoware's version goes back
            self.act(UPDATE_EVENT, frnr=frnr, event_id=s.event_id, appt=appt, etag=etag, termin=termin,
                     reason="unsupported change in Google: Advoware restored")
            return
        g_changed = ev is not None and ev.get("etag") != s.g_etag and event_hash(ev) != s.g_hash
        same = g_appt is not None and g_appt.with_art(appt.art) == appt
        stamped = ev is None or is_complete(ev, frnr, appt.art)  # a Frist without its `Frist: ` is written back
        if a_changed and g_changed and not same:
            self.act(UPDATE_EVENT, frnr=frnr, event_id=s.event_id, appt=appt, etag=etag, termin=termin,
                     reason="conflict: Advoware wins")
        elif a_changed and not same:
            self.act(UPDATE_EVENT, frnr=frnr, event_id=s.event_id, appt=appt, etag=etag, termin=termin,
                     reason="changed in Advoware")
        elif g_changed and not same:
            self.act(UPDATE_TERMIN, frnr=frnr, event_id=s.event_id, appt=g_appt.with_art(appt.art), etag=etag,
                     termin=termin, event=ev, stamp=not stamped, reason="changed in Google")
        elif (s.g_hash is None and not same) or not stamped:
            self.act(UPDATE_EVENT, frnr=frnr, event_id=s.event_id, appt=appt, etag=etag, termin=termin,
                     reason="Google side incomplete")
        else:
            self.record(frnr, s.event_id, appt, termin, ev, old=s)

    def new_in_google(self) -> None:
        claimed = set(self.claims.values())
        for event_id, ev in self.live.items():
            if event_id in self.mapped or event_id in claimed:
                continue
            if event_frnr(ev) is not None:
                self.plan.skipped["stamped for another frNr or outside the window"] += 1
                continue
            appt = self.event_appt(ev)
            if appt is None:
                self.plan.skipped["not mappable (recurring, special type)"] += 1
            elif not self.in_window(appt):
                self.plan.skipped["outside the window"] += 1
            else:
                self.act(CREATE_TERMIN, event_id=event_id, appt=appt.with_art("Termin"), etag=ev.get("etag"),
                         event=ev, stamp=True, reason="new in Google")

    def check_guard(self) -> None:
        inp = self.inp
        known = [s for s in inp.state.values() if s.overlaps(self.first, self.last)]
        if not inp.guard_min or len(known) < inp.guard_min:
            return
        if not inp.termine:
            self.plan.guard = GUARD_ADVOWARE_EMPTY
            return
        ids = {s.event_id for s in known}
        empty = not (ids & set(self.live)) if inp.full else ids <= self.cancelled
        if empty and any(a.kind == DELETE_TERMIN for a in self.plan.actions):
            self.plan.guard = GUARD_GOOGLE_EMPTY


def reconcile(inputs: Inputs) -> Plan:
    """The plan for one employee. Execute it only when `missing_probes` is empty and `guard` is None."""
    return _Decider(inputs).run()
