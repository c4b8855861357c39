"""The Google Calendar simulator's state: calendars, events, change sequence, sync and page tokens.

One `GoogleCalendarState` per simulator app (`app.extensions["google_calendar"]`),
guarded by one lock, so concurrent requests and test code see consistent
snapshots. Every write bumps a global change sequence; an event remembers the
sequence of its last write, a sync token remembers the sequence at which its
listing was taken, and an incremental list returns the events written after
it — deleted ones included, as `status: cancelled`. Tests drive "human" edits
through the same methods with `actor="human"`.
"""
from __future__ import annotations

import base64
import copy
import random
import threading
from collections import OrderedDict
from datetime import datetime

from integrations.sandbox import google_calendar_model as m
from integrations.sandbox.google_calendar_listing import EventListing
from integrations.sandbox.google_calendar_model import GoogleError, now_utc as _now

OWNER = "sandbox.user@bitbylaw.example"
BASE32HEX = "0123456789abcdefghijklmnopqrstuv"



def _etag_match(header: str | None, etag: str) -> bool:
    if header is None:
        return True
    candidates = [c.strip() for c in header.split(",")]
    plain = etag.strip('"')
    return any(c == "*" or c.removeprefix("W/").strip('"') == plain for c in candidates)


class GoogleCalendarState(EventListing):
    """Calendars and events of the sandbox's one user; every public method takes the lock."""

    def __init__(self, *, seed: int = 1234, owner: str = OWNER, time_zone: str = "Europe/Berlin"):
        self.lock = threading.RLock()
        self.seed = seed
        self.owner = owner
        self.time_zone = time_zone
        self.reset()

    # --- lifecycle ---
    def reset(self) -> None:
        with self.lock:
            self._rng = random.Random(self.seed)
            self._seq = 0
            self._order = 0
            self._calendars: dict[str, dict] = {}
            self._sync_tokens: dict[str, dict] = {}
            self._pages: OrderedDict[str, dict] = OrderedDict()
            self._insert_calendar({"summary": self.owner, "timeZone": self.time_zone}, cid=self.owner,
                                  primary=True)

    def dump_state(self) -> dict:
        with self.lock:
            return copy.deepcopy({"seq": self._seq, "order": self._order, "calendars": self._calendars,
                                  "sync_tokens": self._sync_tokens})

    def load_state(self, data: dict) -> None:
        with self.lock:
            data = copy.deepcopy(data)
            self._seq, self._order = data["seq"], data["order"]
            self._calendars, self._sync_tokens = data["calendars"], data["sync_tokens"]
            self._pages.clear()

    def info(self) -> dict:
        with self.lock:
            return {"calendars": len(self._calendars),
                    "events": sum(len(c["events"]) for c in self._calendars.values()),
                    "sync_tokens": len(self._sync_tokens), "owner": self.owner}

    def expire_sync_tokens(self, calendar_id: str | None = None) -> int:
        """Invalidate the sync tokens of one calendar (or all): their next use answers 410 fullSyncRequired."""
        with self.lock:
            cid = self._resolve(calendar_id) if calendar_id else None
            doomed = [t for t, rec in self._sync_tokens.items() if cid is None or rec["calendar"] == cid]
            for token in doomed:
                del self._sync_tokens[token]
            return len(doomed)

    # --- ids and bookkeeping ---
    def _new_id(self, length: int = 26) -> str:
        return "".join(self._rng.choice(BASE32HEX) for _ in range(length))

    def _new_token(self) -> str:
        return "C" + base64.b64encode(self._rng.randbytes(18)).decode()

    def _bump(self) -> int:
        self._seq += 1
        return self._seq

    def _etag(self, seq: int) -> str:
        return f'"{3_180_000_000_000_000 + seq * 1000}"'

    def _resolve(self, calendar_id: str) -> str:
        return self.owner if calendar_id == "primary" else calendar_id

    def _calendar(self, calendar_id: str) -> dict:
        cal = self._calendars.get(self._resolve(calendar_id))
        if cal is None:
            raise m.not_found()
        return cal

    # --- calendars ---
    def _insert_calendar(self, body: dict, *, cid: str | None = None, primary: bool = False) -> dict:
        if not isinstance(body, dict) or not body.get("summary"):
            raise m.required("Missing title.", "summary")
        tz = body.get("timeZone") or self.time_zone
        m.zone(tz)
        cid = cid or f"c_{self._new_id(26)}@group.calendar.google.com"
        self._order += 1
        meta = {"id": cid, "summary": body["summary"], "timeZone": tz}
        for key in ("description", "location"):
            if body.get(key):
                meta[key] = body[key]
        cal = {"meta": meta, "etag": self._etag(self._bump()), "primary": primary, "order": self._order,
               "events": {}}
        self._calendars[cid] = cal
        return self._calendar_resource(cal)

    def _calendar_resource(self, cal: dict) -> dict:
        return {"kind": "calendar#calendar", "etag": cal["etag"], **copy.deepcopy(cal["meta"]),
                "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]}}

    def insert_calendar(self, body: dict) -> dict:
        with self.lock:
            return self._insert_calendar(body)

    def get_calendar(self, calendar_id: str) -> dict:
        with self.lock:
            return self._calendar_resource(self._calendar(calendar_id))

    def delete_calendar(self, calendar_id: str) -> None:
        with self.lock:
            cal = self._calendar(calendar_id)
            if cal["primary"]:
                raise GoogleError(400, "cannotDeletePrimaryCalendar",
                                  "The primary calendar cannot be deleted; clear it instead.", domain="calendar")
            cid = cal["meta"]["id"]
            del self._calendars[cid]
            self._forget_tokens(cid)

    def _forget_tokens(self, cid: str) -> None:
        for token in [t for t, rec in self._sync_tokens.items() if rec["calendar"] == cid]:
            del self._sync_tokens[token]
        for token in [t for t, rec in self._pages.items() if rec["calendar"] == cid]:
            del self._pages[token]

    def calendar_list(self, *, max_results: int = 100, page_token: str | None = None) -> dict:
        with self.lock:
            if max_results < 1:
                raise m.invalid("Invalid value for: maxResults", "maxResults")
            max_results = min(max_results, 250)
            offset = 0
            if page_token:
                rec = self._pages.get(page_token)
                if rec is None or rec["calendar"] != "#calendarList":
                    raise m.invalid("Invalid page token.", "pageToken")
                offset = rec["offset"]
            cals = sorted(self._calendars.values(), key=lambda c: c["order"])
            items = [self._list_entry(c) for c in cals[offset:offset + max_results]]
            out = {"kind": "calendar#calendarList", "etag": self._etag(self._seq), "items": items}
            if offset + max_results < len(cals):
                token = self._new_token()
                self._remember_page(token, {"calendar": "#calendarList", "offset": offset + max_results})
                out["nextPageToken"] = token
            return out

    def _list_entry(self, cal: dict) -> dict:
        entry = {"kind": "calendar#calendarListEntry", "etag": cal["etag"], **copy.deepcopy(cal["meta"]),
                 "colorId": "14", "backgroundColor": "#9fe1e7", "foregroundColor": "#000000",
                 "selected": True, "accessRole": "owner", "defaultReminders": []}
        if cal["primary"]:
            entry["primary"] = True
        return entry

    # --- events: reads ---
    def _event_resource(self, cal: dict, ev: dict) -> dict:
        out = {"kind": "calendar#event", "etag": ev["etag"], "id": ev["id"]}
        out.update({k: copy.deepcopy(v) for k, v in ev.items() if not k.startswith("_") and k not in out})
        out.setdefault("creator", {"email": self.owner, "self": True})
        out.setdefault("organizer", {"email": cal["meta"]["id"], "displayName": cal["meta"]["summary"],
                                     "self": True})
        out.setdefault("reminders", {"useDefault": True})
        out.setdefault("eventType", "default")
        return out

    def _cancelled_stub(self, ev: dict) -> dict:
        # Deleted events are only guaranteed to carry their id (events reference); the simulator gives no more.
        return {"kind": "calendar#event", "etag": ev["etag"], "id": ev["id"], "status": "cancelled",
                "updated": ev["updated"]}

    def get_event(self, calendar_id: str, event_id: str) -> dict:
        with self.lock:
            cal = self._calendar(calendar_id)
            ev = cal["events"].get(event_id)
            if ev is None:
                raise m.not_found()
            return self._event_resource(cal, ev)  # a deleted event is still readable, status "cancelled"

    # --- events: writes ---
    def _write(self, ev: dict) -> None:
        seq = self._bump()
        ev["_seq"] = seq
        ev["etag"] = self._etag(seq)
        ev["updated"] = m.format_rfc3339(_now())

    def _live_event(self, cal: dict, event_id: str, if_match: str | None) -> dict:
        ev = cal["events"].get(event_id)
        if ev is None:
            raise m.not_found()
        if not _etag_match(if_match, ev["etag"]):
            raise m.condition_not_met()
        return ev

    def insert_event(self, calendar_id: str, body: dict, *, actor: str = "api") -> dict:
        with self.lock:
            cal = self._calendar(calendar_id)
            fields = m.validate_event(body, cal["meta"]["timeZone"])
            event_id = body.get("id")
            if event_id is not None:
                if not isinstance(event_id, str) or not m.EVENT_ID_RE.match(event_id):
                    raise m.invalid("Invalid resource id value.", "id")
                if event_id in cal["events"]:
                    raise m.duplicate()  # also when that event was deleted: ids are never reused
            else:
                event_id = self._new_id()
            self._order += 1
            now = m.format_rfc3339(_now())
            ev = {"id": event_id, **fields, "created": now, "sequence": fields.get("sequence", 0),
                  "iCalUID": body.get("iCalUID") or f"{event_id}@google.com", "_order": self._order,
                  "_actor": actor}
            self._write(ev)
            cal["events"][event_id] = ev
            return self._event_resource(cal, ev)

    def update_event(self, calendar_id: str, event_id: str, body: dict, *, if_match: str | None = None,
                     actor: str = "api") -> dict:
        """Full replacement of the writable fields; updating a deleted event restores it (status default)."""
        with self.lock:
            cal = self._calendar(calendar_id)
            ev = self._live_event(cal, event_id, if_match)
            fields = m.validate_event(body, cal["meta"]["timeZone"])
            return self._replace(cal, ev, fields, actor)

    def patch_event(self, calendar_id: str, event_id: str, body: dict, *, if_match: str | None = None,
                    actor: str = "api") -> dict:
        """Patch semantics: given fields merge into the event, `null` removes; a deleted event stays deleted
        unless the patch sets `status`."""
        with self.lock:
            cal = self._calendar(calendar_id)
            ev = self._live_event(cal, event_id, if_match)
            if not isinstance(body, dict):
                raise m.bad_request("Bad Request")
            current = {k: v for k, v in ev.items()
                       if not k.startswith("_") and k not in m.READ_ONLY_EVENT_FIELDS and k != "id"}
            if "sequence" not in body:
                current.pop("sequence", None)
            merged = m.merge_patch(current, body)
            fields = m.validate_event(merged, cal["meta"]["timeZone"])
            return self._replace(cal, ev, fields, actor)

    def _replace(self, cal: dict, ev: dict, fields: dict, actor: str) -> dict:
        sent_sequence = fields.pop("sequence", None)
        if sent_sequence is not None and sent_sequence < ev["sequence"]:
            raise m.invalid("Invalid sequence value. The specified sequence number is below the current "
                            "sequence number of the resource to be updated.", "sequence")
        sequence = max(ev["sequence"], sent_sequence or 0) + (1 if m.significant_change(ev, fields) else 0)
        keep = {k: ev[k] for k in ("id", "created", "iCalUID", "_order")}
        ev.clear()
        ev.update(keep)
        ev.update(fields)
        ev["sequence"] = sequence
        ev["_actor"] = actor
        self._write(ev)
        return self._event_resource(cal, ev)

    def delete_event(self, calendar_id: str, event_id: str, *, if_match: str | None = None,
                     actor: str = "api") -> None:
        with self.lock:
            cal = self._calendar(calendar_id)
            ev = cal["events"].get(event_id)
            if ev is None:
                raise m.not_found()
            if ev["status"] == "cancelled":
                raise m.deleted()
            if not _etag_match(if_match, ev["etag"]):
                raise m.condition_not_met()
            ev["status"] = "cancelled"
            ev["_actor"] = actor
            self._write(ev)

    # --- "act as a human" helpers for tests (no HTTP, no counters, no faults) ---
    def human_insert(self, calendar_id: str, body: dict) -> dict:
        return self.insert_event(calendar_id, body, actor="human")

    def human_update(self, calendar_id: str, event_id: str, changes: dict) -> dict:
        return self.patch_event(calendar_id, event_id, changes, actor="human")

    def human_delete(self, calendar_id: str, event_id: str) -> None:
        self.delete_event(calendar_id, event_id, actor="human")

    def events_of(self, calendar_id: str, *, include_deleted: bool = False) -> list[dict]:
        """Every event of a calendar as the API shows it (for assertions)."""
        with self.lock:
            cal = self._calendar(calendar_id)
            return [self._event_resource(cal, ev) for ev in self._ordered(cal)
                    if include_deleted or ev["status"] != "cancelled"]

    def calendar_ids(self) -> list[str]:
        with self.lock:
            return [c["meta"]["id"] for c in sorted(self._calendars.values(), key=lambda c: c["order"])]

    # --- seed ---
    def seed_demo(self, *, calendars: int = 3, events_per_calendar: int = 6, start: datetime | None = None) -> list[str]:
        """A few calendars with timed and all-day events around `start` (default: today), as a human made them."""
        from datetime import timedelta

        base = (start or _now()).astimezone(m.zone(self.time_zone)).replace(hour=9, minute=0, second=0,
                                                                            microsecond=0)
        topics = ["Mandantengespräch", "Gerichtstermin", "Besprechung", "Telefonkonferenz", "Akteneinsicht"]
        made = []
        with self.lock:
            for n in range(calendars):
                cal = self._insert_calendar({"summary": f"Sandbox-Kalender {n + 1}",
                                             "description": "Seeded by the sandbox", "timeZone": self.time_zone})
                made.append(cal["id"])
                for k in range(events_per_calendar):
                    day = base + timedelta(days=self._rng.randint(-20, 60), hours=self._rng.randint(0, 8))
                    if k % 4 == 3:
                        body = {"start": {"date": day.date().isoformat()},
                                "end": {"date": (day.date() + timedelta(days=1)).isoformat()}}
                    else:
                        body = {"start": {"dateTime": day.isoformat(), "timeZone": self.time_zone},
                                "end": {"dateTime": (day + timedelta(hours=1)).isoformat(),
                                        "timeZone": self.time_zone}}
                    body["summary"] = self._rng.choice(topics)
                    self.insert_event(cal["id"], body, actor="human")
        return made
