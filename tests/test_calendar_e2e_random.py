"""Calendar sync end to end, randomised, against an oracle of its own (issue 19).

Each seed gives two employees (AB, CD) random Termine -- all-day, multi-day,
on DST days, ending at midnight or past it (`22:00-01:00` on one day, `24:00`,
stored as a real Advoware might send them), without `uhrzeitBis`, Fristen and
Wiedervorlagen -- and then rounds of human edits on both sides: new, changed,
moved, deleted Termine, a Termin moved to the other employee; events made in
Google (with an offset, in UTC, as local time + `timeZone`, all-day, the
second 02:30 of the autumn switch day, recurring), renamed, moved, made
recurring, deleted; the status store flushed; sync tokens expired (410). Some
edits are made while a sync runs. Half the seeds run with
`CALENDAR_DELETE_TERMINE` on. The real worker syncs both employees.

The oracle does not use the product's mapping: it reads Advoware wall times
into the UTC instants they can mean (both on the repeated autumn hour, the
shifted one in the spring gap), Google edges into instants or exclusive-end
dates, and titles with their `Frist: `/`Wiedervorlage: ` label. After every
round: each Termin in the window has exactly one live event with its content
and stamp (no duplicate), every stamped event belongs to a Termin of that
employee (no orphan), unstamped events are only recurring or outside the
window, Fristen are never deleted, Termine only when the setting allows it
and the event was deleted in Google; one side's edit reaches the other, on
both sides Advoware wins, a Google event keeps its exact instant; and a
second sync writes nothing.

`CAL_RANDOM_SEEDS=1-500` (or `3,7,9`) picks other seeds; CI runs a few.
"""
from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bitbylaw_tasks.celery_app import app
from bitbylaw_tasks.settings import get_settings
from integrations.sandbox.advoware_common import SimError
from test_calendar_e2e import TODAY, World, _dst_days, day, sync, world  # noqa: F401  (world is a fixture)

BERLIN = ZoneInfo("Europe/Berlin")
UTC = timezone.utc
LABELS = {"Frist": "Frist", "Wiedervorlage": "Wiedervorlage"}
FIRST, LAST = TODAY - timedelta(days=30), TODAY + timedelta(days=365)
EMPLOYEES = ("AB", "CD")
ROUNDS = 5
WORDS = ["Klage", "Besprechung", "Mandant Müller", "Akte 12/24", "Verhandlung", "Frist: Schein", ""]


def _seeds() -> list[int]:
    raw = os.environ.get("CAL_RANDOM_SEEDS", "1-6")
    out: list[int] = []
    for part in raw.split(","):
        lo, _, hi = part.strip().partition("-")
        if lo:
            out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return out


# --- the oracle: its own reading of both sides ---
def wall_instants(wall: datetime) -> set[datetime]:
    """Every UTC instant Berlin shows as this wall time; a wall time in the spring gap is shown an hour on."""
    found = {wall.replace(tzinfo=UTC) - timedelta(hours=h) for h in (1, 2)}
    found = {u for u in found if u.astimezone(BERLIN).replace(tzinfo=None) == wall}
    return found or {wall.replace(tzinfo=UTC) - timedelta(hours=1)}


def _wall(day_text: str, clock: str) -> datetime:
    hour, minute = int(clock[:2]), int(clock[3:5])
    base = datetime.combine(date.fromisoformat(day_text[:10]), time())
    return base + timedelta(hours=hour, minutes=minute)  # 24:00 is the next day's 00:00


@dataclass(frozen=True)
class Span:
    """Dates (all-day, end exclusive) or the instants a start and an end can mean."""

    allday: bool
    first: date | None = None
    after: date | None = None           # exclusive
    starts: frozenset = frozenset()
    ends: frozenset = frozenset()

    def days(self) -> tuple[date, date]:
        if self.allday:
            return self.first, self.after - timedelta(days=1)
        to_day = [i.astimezone(BERLIN).date() for i in (*self.starts, *self.ends)]
        return min(to_day), max(to_day)

    def in_window(self) -> bool:
        first, last = self.days()
        return first <= LAST and last >= FIRST

    def admits(self, other: "Span") -> bool:
        """`other` (an event: one instant each) is one reading of this (a Termin's wall times)."""
        if self.allday or other.allday:
            return (self.allday, self.first, self.after) == (other.allday, other.first, other.after)
        (start,), (end,) = other.starts, other.ends
        ends = {e for e in self.ends if e >= start} or {start}  # an end before every start reading: clamped
        return start in self.starts and end in ends


def termin_span(t: dict) -> Span:
    first = t["datum"][:10]
    last = (t.get("datumBis") or t["datum"])[:10]
    if t.get("ganztaegig") or not t.get("uhrzeitVon"):
        return Span(True, date.fromisoformat(first), date.fromisoformat(last) + timedelta(days=1))
    start = _wall(first, t["uhrzeitVon"])
    end = _wall(last, t["uhrzeitBis"]) if t.get("uhrzeitBis") else start
    starts = wall_instants(start)
    ends = wall_instants(end)
    if end < start:  # an end before the start on one day: past midnight (or the repeated autumn hour)
        ends = {e for e in ends if e >= min(starts)} | wall_instants(end + timedelta(days=1))
    return Span(False, starts=frozenset(starts), ends=frozenset(ends))


def _instant(edge: dict) -> datetime:
    parsed = datetime.fromisoformat(edge["dateTime"].replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(edge.get("timeZone") or "Europe/Berlin"))
    return parsed.astimezone(UTC)


def event_span(ev: dict) -> Span:
    if "date" in ev["start"]:
        return Span(True, date.fromisoformat(ev["start"]["date"]), date.fromisoformat(ev["end"]["date"]))
    return Span(False, starts=frozenset({_instant(ev["start"])}), ends=frozenset({_instant(ev["end"])}))


def title_for(art: str, text: str | None) -> str:
    label, text = LABELS.get(art), text or ""
    if not label:
        return text
    return f"{label}: {text}" if text else label


def text_of_title(art: str, title: str | None) -> str:
    title, label = (title or "").strip(), LABELS.get(art)
    if label and title == label:
        return ""
    if label and title.startswith(label + ":"):
        return title[len(label) + 1:].strip()
    return title


def stamp(ev: dict) -> tuple[str | None, str | None]:
    private = (ev.get("extendedProperties") or {}).get("private") or {}
    return private.get("advowareFrNr"), private.get("advowareArt")


def content(t: dict) -> tuple:
    return (t["art"], t["datum"][:10], (t["datumBis"] or t["datum"])[:10], bool(t["ganztaegig"]), t["uhrzeitVon"],
            t["uhrzeitBis"], t["text"] or "", t["ort"] or "", t["notiz"] or "")


# --- the round's bookkeeping ---
@dataclass
class Round:
    a_edit: dict[int, dict] = field(default_factory=dict)     # frNr -> the Termin after the human edit
    g_edit: dict[int, dict] = field(default_factory=dict)     # frNr -> the event after the human edit
    g_recur: dict[int, dict] = field(default_factory=dict)    # frNr -> the Termin when its event went recurring
    g_del: dict[int, str] = field(default_factory=dict)       # frNr -> art, event deleted in Google
    g_new: dict[str, dict] = field(default_factory=dict)      # event id -> the new unstamped event
    g_skip: set[str] = field(default_factory=set)             # texts of new recurring events (never Termine)
    a_del: set[int] = field(default_factory=set)
    moved: dict[int, str] = field(default_factory=dict)       # frNr -> the new kuerzel
    lost: bool = False
    touched: set = field(default_factory=set)                 # one change per pair per round (and conflicts)
    ops: list = field(default_factory=list)                   # what happened, for the failure message


class History:
    """Seeded human edits on both sides, and what the oracle expects of them."""

    def __init__(self, world: World, rnd: random.Random, delete_termine: bool):
        self.world, self.rnd, self.delete_termine = world, rnd, delete_termine
        self.cal = {k: world.calendar(k) for k in EMPLOYEES}
        self.fristen: set[int] = set()
        self.n = 0
        dst = _dst_days()
        self.spring = next(d for d in dst if d[5:7] == "03") if any(d[5:7] == "03" for d in dst) else None
        self.autumn = next((d for d in dst if d[5:7] != "03"), None)

    def tag(self) -> str:
        self.n += 1
        return f"{self.rnd.choice(WORDS)} {self.n}".strip()

    # --- Advoware ---
    def termin_fields(self) -> dict:
        rnd = self.rnd
        offset = rnd.randint(-20, 300)
        fields = {"art": rnd.choice(["Termin", "Termin", "Frist", "Wiedervorlage"]), "datum": day(offset),
                  "datumBis": None, "ganztaegig": False, "uhrzeitVon": None, "uhrzeitBis": None,
                  "text": self.tag(), "ort": rnd.choice([None, "Kanzlei", "LG Köln"]),
                  "notiz": rnd.choice([None, "mit Akte"])}
        shape = rnd.choice(["timed", "timed", "allday", "multi", "multitimed", "open", "dst", "midnight"])
        if shape == "timed":
            hour = rnd.randint(7, 20)
            fields.update(uhrzeitVon=f"{hour:02d}:{rnd.choice(['00', '15', '30'])}", uhrzeitBis=f"{hour + 1:02d}:00")
        elif shape in ("allday", "multi"):
            fields.update(ganztaegig=True, datumBis=day(offset + (rnd.randint(1, 3) if shape == "multi" else 0)))
        elif shape == "multitimed":
            fields.update(uhrzeitVon="16:00", datumBis=day(offset + rnd.randint(1, 2)), uhrzeitBis="09:30")
        elif shape == "open":
            fields.update(uhrzeitVon="11:45")
        elif shape == "dst" and (self.spring or self.autumn):
            fields.update(datum=rnd.choice([d for d in (self.spring, self.autumn) if d]),
                          uhrzeitVon=rnd.choice(["01:30", "02:00", "02:30"]), uhrzeitBis=rnd.choice(["03:00", "03:30"]))
        else:
            fields.update(uhrzeitVon="23:00", datumBis=day(offset + 1), uhrzeitBis="00:00")
        return fields

    def a_new(self, kuerzel: str) -> int:
        t = self.world.advo.add_termin(kuerzel=kuerzel, **self.termin_fields())
        if self.rnd.random() < 0.15:  # what a real Advoware might send: the simulator's API refuses it
            odd = self.rnd.choice([{"uhrzeitVon": "22:00:00", "uhrzeitBis": "01:00:00", "datumBis": t["datum"]},
                                   {"uhrzeitVon": "18:00:00", "uhrzeitBis": "24:00:00", "ganztaegig": False}])
            with self.world.advo.lock:
                self.world.advo.termine[t["frNr"]].update(odd)
        if t["art"] != "Termin":
            self.fristen.add(t["frNr"])
        return t["frNr"]

    def a_edit(self, r: Round, frnr: int) -> None:
        rnd = self.rnd
        change = rnd.choice([{"text": self.tag()}, {"ort": "Saal 4", "notiz": "geändert"},
                             {"datum": day(rnd.randint(-10, 200))},
                             {k: v for k, v in self.termin_fields().items() if k not in ("art", "text")}])
        before = self.world.advo.get_termin(frnr)
        try:
            after = self.world.advo.human_update_termin(frnr, **change)
        except SimError:
            return  # a Termin stored with values the simulator's API refuses (22:00-01:00, 24:00): not editable
        if content(after) != content(before):  # the same values again are no edit (only the rowId moves)
            r.a_edit[frnr] = after

    def a_del(self, r: Round, frnr: int) -> None:
        self.world.advo.human_delete_termin(frnr)
        self.fristen.discard(frnr)
        r.a_del.add(frnr)

    def a_move(self, r: Round, frnr: int, kuerzel: str) -> None:
        other = "CD" if kuerzel == "AB" else "AB"
        try:
            r.a_edit[frnr] = self.world.advo.human_update_termin(frnr, kuerzel=other)
            r.moved[frnr] = other
        except SimError:
            pass

    # --- Google ---
    def edges(self) -> tuple[dict, dict]:
        rnd = self.rnd
        offset = rnd.randint(-20, 300)
        shape = rnd.choice(["offset", "utc", "local", "allday", "multi", "fold"])
        d = TODAY + timedelta(days=offset)
        if shape in ("allday", "multi"):
            return {"date": d.isoformat()}, {"date": (d + timedelta(days=rnd.randint(1, 3))).isoformat()}
        if shape == "fold" and self.autumn:  # the second 02:30 of the autumn switch day, as an exact instant
            return ({"dateTime": f"{self.autumn}T02:30:00+01:00"},
                    {"dateTime": f"{self.autumn}T{rnd.choice(['02:50', '03:30'])}:00+01:00"})
        start = datetime.combine(d, time(rnd.randint(6, 21), rnd.choice([0, 20, 40])), BERLIN)
        end = start + timedelta(minutes=rnd.choice([0, 30, 90, 300]))
        if shape == "utc":
            return ({"dateTime": start.astimezone(UTC).isoformat().replace("+00:00", "Z")},
                    {"dateTime": end.astimezone(UTC).isoformat().replace("+00:00", "Z")})
        if shape == "local":
            return ({"dateTime": start.replace(tzinfo=None).isoformat(), "timeZone": "Europe/Berlin"},
                    {"dateTime": end.astimezone(BERLIN).replace(tzinfo=None).isoformat(), "timeZone": "Europe/Berlin"})
        return {"dateTime": start.isoformat()}, {"dateTime": end.astimezone(BERLIN).isoformat()}

    def g_new(self, r: Round, kuerzel: str) -> None:
        start, end = self.edges()
        body = {"summary": self.tag(), "location": self.rnd.choice([None, "Büro 2"]), "start": start, "end": end}
        if self.rnd.random() < 0.15:
            body["recurrence"] = ["RRULE:FREQ=WEEKLY;COUNT=3"]
            r.g_skip.add(body["summary"])
        ev = self.world.google.human_insert(self.cal[kuerzel], body)
        if "recurrence" not in body:
            r.g_new[ev["id"]] = ev

    def g_edit(self, r: Round, kuerzel: str, ev: dict) -> None:
        rnd = self.rnd
        frnr = int(stamp(ev)[0])
        kind = rnd.choice(["title", "title", "place", "move", "recur"])
        if kind == "recur":
            r.g_recur[frnr] = self.world.advo.get_termin(frnr)
            self.world.google.human_update(self.cal[kuerzel], ev["id"], {"recurrence": ["RRULE:FREQ=DAILY;COUNT=4"]})
            return
        if kind == "title":  # often without the label, as a person renaming it would
            changes = {"summary": rnd.choice([self.tag(), f"Frist: {self.tag()}", ""])}
        elif kind == "place":
            changes = {"location": "Raum 7", "description": "aus Google"}
        else:
            start, end = self.edges()
            changes = {"start": {"date": None, "dateTime": None, "timeZone": None, **start},
                       "end": {"date": None, "dateTime": None, "timeZone": None, **end}}
        r.g_edit[frnr] = self.world.google.human_update(self.cal[kuerzel], ev["id"], changes)

    def g_del(self, r: Round, kuerzel: str, ev: dict) -> None:
        self.world.google.human_delete(self.cal[kuerzel], ev["id"])
        frnr, art = stamp(ev)
        r.g_del[int(frnr)] = art

    # --- one batch of edits ---
    def edits(self, r: Round, count: int, *, chaos: bool = True) -> None:
        for _ in range(count):
            kuerzel = self.rnd.choice(EMPLOYEES)
            termine = [t for t in self.world.termine(kuerzel) if t["frNr"] not in r.touched]
            live = [e for e in self.world.events(kuerzel)
                    if stamp(e)[0] and int(stamp(e)[0]) not in r.touched and not e.get("recurrence")]
            op = self.rnd.choice(["a_new", "a_edit", "a_del", "a_move", "g_new", "g_edit", "g_edit", "g_del",
                                  "conflict", "chaos" if chaos else "g_new"])
            r.ops.append((op, kuerzel, "concurrent" if not chaos else ""))
            if op == "a_new":
                r.touched.add(self.a_new(kuerzel))
            elif op == "g_new":
                self.g_new(r, kuerzel)
            elif op == "chaos":
                if self.rnd.random() < 0.5:
                    self.world.google.expire_sync_tokens(self.cal[kuerzel])  # the next listing answers 410
                else:
                    self.world.redis.flushdb()  # the status store is lost
                    r.lost = True
            elif op in ("a_edit", "a_del", "a_move") and termine:
                t = self.rnd.choice(termine)
                r.touched.add(t["frNr"])
                if op == "a_edit":
                    self.a_edit(r, t["frNr"])
                elif op == "a_del":
                    self.a_del(r, t["frNr"])
                else:
                    self.a_move(r, t["frNr"], kuerzel)
            elif op in ("g_edit", "g_del", "conflict") and live:
                ev = self.rnd.choice(live)
                frnr = int(stamp(ev)[0])
                r.touched.add(frnr)
                if op == "g_del":
                    self.g_del(r, kuerzel, ev)
                else:
                    self.g_edit(r, kuerzel, ev)
                    if op == "conflict" and frnr not in r.g_recur and self.world.advo.get_termin(frnr):
                        self.a_edit(r, frnr)


# --- checks ---
def assert_consistent(world: World, kuerzel: str) -> None:
    """Each Termin in the window: one live event, its content, its stamp. No orphan, no stray event."""
    termine = {t["frNr"]: t for t in world.advo.list_termine_api(kuerzel, day(-400), day(800))}
    by_frnr: dict[int, list[dict]] = {}
    for ev in world.events(kuerzel):
        frnr, _ = stamp(ev)
        if frnr is None:
            assert ev.get("recurrence") or not event_span(ev).in_window(), f"unsynced event {ev['id']} in the window"
            continue
        assert int(frnr) in termine, f"{kuerzel}: orphan event {ev['id']} for frNr {frnr}"
        by_frnr.setdefault(int(frnr), []).append(ev)
    for frnr, t in termine.items():
        span = termin_span(t)
        if not span.in_window():
            continue
        events = by_frnr.get(frnr, [])
        assert len(events) == 1, f"{kuerzel}: frNr {frnr} has {len(events)} live events"
        ev = events[0]
        assert stamp(ev) == (str(frnr), t["art"]) and not ev.get("recurrence"), f"frNr {frnr}: stamp"
        assert (ev.get("summary") or "") == title_for(t["art"], t["text"]), f"frNr {frnr}: title"
        assert ((ev.get("location") or ""), (ev.get("description") or "")) == ((t["ort"] or ""), (t["notiz"] or ""))
        assert span.admits(event_span(ev)), f"frNr {frnr}: {t} vs {ev['start']} {ev['end']}"


def assert_expected(world: World, h: History, r: Round) -> None:
    everyone = {t["frNr"]: t for k in EMPLOYEES for t in world.advo.list_termine_api(k, day(-400), day(800))}
    for frnr in h.fristen:
        assert frnr in everyone, f"Frist/Wiedervorlage {frnr} was deleted"
    for frnr, art in r.g_del.items():
        if frnr in r.a_del or frnr in r.moved:
            continue
        if frnr not in everyone:
            assert art == "Termin" and h.delete_termine and frnr not in r.a_edit, f"Termin {frnr} deleted"
        elif h.delete_termine and art == "Termin" and not r.lost and frnr not in r.a_edit:
            pytest.fail(f"Termin {frnr} was deleted in Google and the setting allows it, but it is still there")
    for frnr in r.a_del:
        assert frnr not in everyone
    for frnr, kuerzel in r.moved.items():
        assert everyone[frnr]["kuerzel"] == kuerzel
    for frnr, after in r.a_edit.items():  # Advoware's edit stands, also against a Google edit (Advoware wins)
        if frnr not in r.a_del:
            assert content(everyone[frnr]) == content(after), f"Advoware's edit of {frnr} was overwritten"
    for frnr, before in r.g_recur.items():  # a mapped event made recurring gets Advoware's version back
        if frnr in everyone and frnr not in r.a_edit:
            assert content(everyone[frnr]) == content(before)
    for frnr, edited in r.g_edit.items():  # a Google-only edit reaches Advoware, and keeps its instants
        if frnr in r.a_edit or r.lost or frnr not in everyone:
            continue
        t = everyone[frnr]
        assert (t["text"] or "") == text_of_title(t["art"], edited.get("summary"))
        assert ((t["ort"] or ""), (t["notiz"] or "")) == ((edited.get("location") or ""),
                                                          (edited.get("description") or ""))
        assert termin_span(t).admits(event_span(edited)), f"frNr {frnr}: the Termin lost the Google times"
        if termin_span(t).in_window():
            (now,) = [e for e in world.events(t["kuerzel"]) if stamp(e)[0] == str(frnr)]
            assert event_span(now) == event_span(edited), f"frNr {frnr}: the event's instants were rewritten"
    texts = {(t["text"] or ""): t for t in everyone.values()}
    for event_id, ev in r.g_new.items():
        if event_span(ev).in_window():
            kuerzel = next(k for k in EMPLOYEES if any(e["id"] == event_id for e in world.events(k)))
            now = world.google.get_event(world.calendar(kuerzel), event_id)
            frnr = stamp(now)[0]
            assert frnr and int(frnr) in everyone, f"new Google event {event_id} did not become a Termin"
            t = everyone[int(frnr)]
            assert t["art"] == "Termin" and termin_span(t).admits(event_span(ev))
            assert event_span(now) == event_span(ev), f"new event {event_id}: its instants were rewritten"
    for text in r.g_skip:
        assert text not in texts, "a recurring Google event became a Termin"


@pytest.mark.parametrize("seed", _seeds())
def test_random_histories_on_both_sides_meet_the_oracle(world, seed, monkeypatch):
    rnd = random.Random(seed)
    delete_termine = seed % 2 == 0
    monkeypatch.setitem(app.conf, "bitbylaw_settings",
                        get_settings().replace(calendar_delete_termine=delete_termine))
    world.employee("CD")
    for kuerzel in EMPLOYEES:
        sync(kuerzel)
    h = History(world, rnd, delete_termine)
    for _ in range(rnd.randint(4, 9)):
        h.a_new(rnd.choice(EMPLOYEES))
    for kuerzel in EMPLOYEES:
        sync(kuerzel)
        assert_consistent(world, kuerzel)
    for round_no in range(ROUNDS):
        r = Round()
        h.edits(r, rnd.randint(1, 4))
        if round_no % 2:  # edits made while a sync runs (other pairs than the ones edited before)
            running = app.send_task("calendar.sync_employee", (rnd.choice(EMPLOYEES),))
            h.edits(r, rnd.randint(1, 3), chaos=False)
            r.ops.append(("running", running.get(timeout=60)))
        for kuerzel in EMPLOYEES:
            r.ops.append(("sync", kuerzel, sync(kuerzel)))
        try:
            for kuerzel in EMPLOYEES:
                assert_consistent(world, kuerzel)
            assert_expected(world, h, r)
        except AssertionError as exc:
            raise AssertionError(f"round {round_no} {r.ops} lost={r.lost}: {exc}") from None
        world.reset_calls()
        for kuerzel in EMPLOYEES:  # idempotence: a second sync writes nothing
            assert sync(kuerzel)["path"] == "no_change", f"round {round_no}: {kuerzel} wrote again"
        assert world.writes() == {}
