"""Advoware Termin <-> Google event, pure: both sides map into one canonical `Appointment`.

The canonical form is what the sync compares and hashes. It holds the
appointment in Europe/Berlin wall time: all-day or timed, first and last day
(inclusive), start and end time, `art`, `text`, `ort`, `notiz`. Rules:

- Advoware: `ganztaegig`, or a Termin without `uhrzeitVon`, is all-day. A
  timed Termin without `uhrzeitBis` ends when it starts (no invented length);
  an `uhrzeitBis` before `uhrzeitVon` on one day ends on the next day, and
  `24:00` is the end of the day. Times are normalised through UTC, so a wall
  time that does not exist on the spring-forward day (02:30) becomes the time
  Google shows for it (03:30); an ambiguous one is its first occurrence, unless
  the event already has the other (`keep_instants`). An unreadable Termin
  raises ValueError naming the field (never the value).
- Google: `date` edges are all-day with an **exclusive** end date;
  `dateTime` edges (with an offset, or local time plus `timeZone`) are
  converted to Europe/Berlin. Events are written with the offset of their
  moment and `timeZone: Europe/Berlin`, so DST is right on both sides.
- `art` is visible in the title: `Frist: <text>`, `Wiedervorlage: <text>`;
  a Termin's title is its text. `art` and `frNr` travel in
  `extendedProperties.private` (users cannot edit those in Google's UI), so
  `art` is never changed from Google and the mapping can be rebuilt. A title
  without its label is incomplete, like a missing stamp (`is_complete`).
- Texts: None and "" are the same, CRLF becomes LF, outer blanks are dropped.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

TZ_NAME = "Europe/Berlin"
TZ = ZoneInfo(TZ_NAME)
ARTEN = ("Termin", "Frist", "Wiedervorlage")
LABELS = {"Frist": "Frist", "Wiedervorlage": "Wiedervorlage"}  # title prefixes; a Termin has none
COLORS = {"Frist": "11", "Wiedervorlage": "5"}  # Google's tomato / banana: visible at a glance
PROP_FRNR, PROP_ART = "advowareFrNr", "advowareArt"
EVENT_ID_PREFIX = "advo"  # + frNr: base32hex (a-v, 0-9), so an insert is idempotent per calendar
_EVENT_ID_RE = re.compile(r"^advo(\d+)$")


@dataclass(frozen=True)
class Appointment:
    """The canonical, comparable form of one appointment (wall time in Europe/Berlin)."""

    art: str
    allday: bool
    start_date: date
    end_date: date                  # inclusive last day
    start_time: time | None = None  # None when all-day
    end_time: time | None = None
    text: str = ""
    ort: str = ""
    notiz: str = ""

    def comparable(self) -> list:
        return [self.art, self.allday, self.start_date.isoformat(), _fmt_time(self.start_time),
                self.end_date.isoformat(), _fmt_time(self.end_time), self.text, self.ort, self.notiz]

    def content_hash(self) -> str:
        raw = json.dumps(self.comparable(), ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:24]

    def with_art(self, art: str) -> "Appointment":
        return replace(self, art=art)

    def overlaps(self, first: date, last: date) -> bool:
        return self.start_date <= last and self.end_date >= first


def _fmt_time(value: time | None) -> str | None:
    return value.strftime("%H:%M:%S") if value is not None else None


def clean_text(value) -> str:
    if value is None:
        return ""
    return str(value).replace("\r\n", "\n").replace("\r", "\n").strip()


def _parse_day(value, name: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValueError(f"{name}: not a date") from None  # the message names the field, never the value


def _parse_wall(day: date, value, name: str) -> datetime | None:
    """A Termin's wall time on `day` (naive); `24:00` is the end of the day, i.e. 00:00 of the next one."""
    if value in (None, ""):
        return None
    text = str(value)
    if "T" in text:
        text = text.split("T", 1)[1]
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        hour, minute, second = int(parts[0]), int(parts[1]), int(parts[2][:2]) if len(parts) > 2 else 0
        if (hour, minute, second) == (24, 0, 0):
            return datetime.combine(day + timedelta(days=1), time())
        return datetime.combine(day, time(hour, minute, second))
    except ValueError:
        raise ValueError(f"{name}: not a time (HH:MM[:SS], 00:00-24:00)") from None


def normalise_wall_time(day: date, moment: time) -> datetime:
    """The Berlin wall time as Google will show it: non-existent times (spring forward) move on by the gap;
    an ambiguous time (fall back) is its first occurrence."""
    local = datetime.combine(day, moment, tzinfo=TZ)
    return local.astimezone(timezone.utc).astimezone(TZ)


def _utc(day: date, moment: time) -> datetime:
    """The instant of a Berlin wall time (its `fold` picks the occurrence). Compare instants in UTC: two
    datetimes in the same zone compare by wall time, and the autumn 02:30s would look equal."""
    return datetime.combine(day, moment, tzinfo=TZ).astimezone(timezone.utc)


# --- Advoware ---
def from_termin(termin: dict) -> Appointment:
    """The canonical form of a Termin. Raises ValueError (naming the field, not its value) when unreadable."""
    start_date = _parse_day(termin.get("datum"), "datum")
    if start_date is None:
        raise ValueError("datum: missing")
    end_date = max(_parse_day(termin.get("datumBis"), "datumBis") or start_date, start_date)
    art = termin.get("art") if termin.get("art") in ARTEN else "Termin"
    texts = dict(text=clean_text(termin.get("text")), ort=clean_text(termin.get("ort")),
                 notiz=clean_text(termin.get("notiz")))
    von = None if termin.get("ganztaegig") else _parse_wall(start_date, termin.get("uhrzeitVon"), "uhrzeitVon")
    if von is None:
        return Appointment(art, True, start_date, end_date, **texts)
    bis = _parse_wall(end_date, termin.get("uhrzeitBis"), "uhrzeitBis")
    start = normalise_wall_time(von.date(), von.time())
    if bis is None:
        end = start  # no end time: it ends when it starts
    elif bis >= von:
        end = normalise_wall_time(bis.date(), bis.time())
    else:
        # 22:00-01:00 on one day: the end is past midnight, on the next day -- unless the end is in the
        # hour repeated on the autumn switch day (02:30-02:10 = 40 minutes, as Google may send it)
        end = normalise_wall_time(bis.date(), bis.time().replace(fold=1))
        if end.astimezone(timezone.utc) < start.astimezone(timezone.utc):
            end = normalise_wall_time(bis.date() + timedelta(days=1), bis.time())
    if end.astimezone(timezone.utc) < start.astimezone(timezone.utc):
        end = start  # 02:30-03:00 on the spring switch day: 02:30 does not exist and becomes 03:30
    return Appointment(art, False, start.date(), end.date(), start.time(), end.time(), **texts)


def unreadable(termin: dict) -> str | None:
    """Why the mapping cannot read this Termin (the field, never its value), or None when it can."""
    try:
        from_termin(termin)
        return None
    except (ValueError, TypeError) as exc:
        return str(exc)


def termin_hash(termin: dict) -> str:
    return from_termin(termin).content_hash()


def to_termin(appt: Appointment, kuerzel: str, base: dict | None = None) -> dict:
    """The full Advoware body (PUT is a full replace). `base` keeps what Google cannot change: `art`."""
    art = (base or {}).get("art") or appt.art
    body = {"kuerzel": kuerzel, "art": art, "datum": appt.start_date.isoformat(),
            "datumBis": appt.end_date.isoformat(), "ganztaegig": appt.allday,
            "uhrzeitVon": None if appt.allday else _fmt_time(appt.start_time),
            "uhrzeitBis": None if appt.allday else _fmt_time(appt.end_time),
            "text": appt.text or None, "ort": appt.ort or None, "notiz": appt.notiz or None}
    return body


# --- Google ---
def event_id_for(frnr: int) -> str:
    return f"{EVENT_ID_PREFIX}{int(frnr)}"


def frnr_of_event_id(event_id: str) -> int | None:
    match = _EVENT_ID_RE.match(event_id or "")
    return int(match.group(1)) if match else None


def summary_for(appt: Appointment) -> str:
    label = LABELS.get(appt.art)
    if not label:
        return appt.text
    return f"{label}: {appt.text}" if appt.text else label


def text_from_summary(summary, art: str) -> str:
    text = clean_text(summary)
    label = LABELS.get(art)
    if label:
        if text == label:
            return ""
        if text.startswith(label + ":"):
            return text[len(label) + 1:].strip()
    return text


def has_label(event: dict, art: str) -> bool:
    """Whether the event's title shows its art (`Frist: ...`); a Termin has no label, so always True."""
    label = LABELS.get(art)
    if not label:
        return True
    text = clean_text(event.get("summary"))
    return text == label or text.startswith(label + ":")


def keep_instants(appt: Appointment, current: Appointment | None) -> Appointment:
    """`appt` (e.g. from a Termin's wall times), but where an edge shows the same wall time as the event's
    current one, that event's own instant: the second 02:30 on the autumn switch day stays the second one.
    Advoware's wall times alone are read as the first occurrence (`normalise_wall_time`)."""
    if current is None or appt.allday or current.allday:
        return appt
    start_time, end_time = appt.start_time, appt.end_time
    if (appt.start_date, appt.start_time) == (current.start_date, current.start_time):
        start_time = current.start_time  # equal wall times; `fold` tells which occurrence
    if (appt.end_date, appt.end_time) == (current.end_date, current.end_time):
        end_time = current.end_time
    kept = replace(appt, start_time=start_time, end_time=end_time)
    if _utc(kept.end_date, end_time) < _utc(kept.start_date, start_time):
        return appt  # one edge kept, the other moved: the mix would end before it starts
    return kept


def _edge(appt: Appointment, day: date, moment: time | None) -> dict:
    if appt.allday:
        return {"date": day.isoformat()}
    return {"dateTime": normalise_wall_time(day, moment).isoformat(), "timeZone": TZ_NAME}


def to_event(appt: Appointment, frnr: int) -> dict:
    """The whole event body (PUT replaces; a PUT also restores a deleted event: `status` is sent)."""
    end_day = appt.end_date + timedelta(days=1) if appt.allday else appt.end_date
    body = {
        "summary": summary_for(appt),
        "description": appt.notiz,
        "location": appt.ort,
        "start": _edge(appt, appt.start_date, appt.start_time),
        "end": _edge(appt, end_day, appt.end_time),
        "status": "confirmed",
        "extendedProperties": {"private": {PROP_FRNR: str(int(frnr)), PROP_ART: appt.art}},
    }
    if appt.art in COLORS:
        body["colorId"] = COLORS[appt.art]
    return body


def event_frnr(event: dict) -> int | None:
    """The frNr the product stamped into the event, or None."""
    raw = ((event.get("extendedProperties") or {}).get("private") or {}).get(PROP_FRNR)
    try:
        return int(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        return None


def event_art(event: dict) -> str | None:
    art = ((event.get("extendedProperties") or {}).get("private") or {}).get(PROP_ART)
    return art if art in ARTEN else None


def is_stamped(event: dict, frnr: int, art: str) -> bool:
    return event_frnr(event) == int(frnr) and event_art(event) == art


def is_complete(event: dict, frnr: int, art: str) -> bool:
    """The event carries what the product writes besides the content: the frNr stamp and the art's label."""
    return is_stamped(event, frnr, art) and has_label(event, art)


def _moment(edge: dict, default_tz: str) -> datetime:
    raw = edge["dateTime"]
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(edge.get("timeZone") or default_tz))
        parsed = parsed.astimezone(timezone.utc)
    return parsed.astimezone(TZ)


def syncable(event: dict) -> bool:
    """False for what has no Advoware counterpart: cancelled, recurring, special event types, no start."""
    if event.get("status") == "cancelled" or event.get("recurrence") or event.get("recurringEventId"):
        return False
    if event.get("eventType") not in (None, "default"):
        return False
    start, end = event.get("start") or {}, event.get("end") or {}
    return ("date" in start or "dateTime" in start) and ("date" in end or "dateTime" in end)


def from_event(event: dict, default_tz: str = TZ_NAME) -> Appointment:
    """The canonical form of a (syncable) event; `art` from the stamp, else Termin."""
    art = event_art(event) or "Termin"
    start, end = event["start"], event["end"]
    texts = dict(text=text_from_summary(event.get("summary"), art), ort=clean_text(event.get("location")),
                 notiz=clean_text(event.get("description")))
    if "date" in start:
        first = date.fromisoformat(start["date"])
        last = max(date.fromisoformat(end.get("date") or start["date"]) - timedelta(days=1), first)
        return Appointment(art, True, first, last, **texts)
    begin, finish = _moment(start, default_tz), _moment(end, default_tz)
    if finish.astimezone(timezone.utc) < begin.astimezone(timezone.utc):
        finish = begin
    begin, finish = begin.replace(microsecond=0), finish.replace(microsecond=0)
    return Appointment(art, False, begin.date(), finish.date(), begin.time().replace(tzinfo=None),
                       finish.time().replace(tzinfo=None), **texts)


def event_hash(event: dict) -> str:
    return from_event(event).content_hash()
