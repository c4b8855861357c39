"""`events.list` for the Google Calendar simulator: full listings, incremental (sync-token) listings, paging.

A mixin of `GoogleCalendarState` (it uses the state's calendars, lock and
token tables). A listing is computed once, when its first page is asked for,
and kept as a snapshot: later pages come from that snapshot, so writes made
while a client pages are not mixed into the pages but show up in the next
incremental listing (the `nextSyncToken` on the last page carries the change
sequence of the moment the listing began).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from integrations.sandbox import google_calendar_model as m
from integrations.sandbox.google_calendar_model import GoogleError, now_utc

MAX_PAGE = 2500
MAX_PAGE_RECORDS = 500
FORBIDDEN_WITH_SYNC_TOKEN = ("iCalUID", "orderBy", "privateExtendedProperty", "q", "sharedExtendedProperty",
                             "timeMin", "timeMax", "updatedMin")


@dataclass
class ListQuery:
    """The parsed query of one `events.list` request."""

    max_results: int = 250
    page_token: str | None = None
    sync_token: str | None = None
    show_deleted: bool | None = None
    single_events: bool = False
    time_min: datetime | None = None
    time_max: datetime | None = None
    private: list = field(default_factory=list)
    shared: list = field(default_factory=list)
    ical_uid: str | None = None
    text: str | None = None
    updated_min: datetime | None = None
    order_by: str | None = None
    given: set = field(default_factory=set)  # names of the parameters present in the request


class EventListing:
    """events.list over the state's calendars (mixed into `GoogleCalendarState`)."""

    def list_events(self, calendar_id: str, query: ListQuery) -> dict:
        with self.lock:
            cal = self._calendar(calendar_id)
            cid = cal["meta"]["id"]
            if query.max_results < 1:
                raise m.invalid("Invalid value for: maxResults", "maxResults")
            page_size = min(query.max_results, MAX_PAGE)
            if query.page_token:
                rec = self._pages.get(query.page_token)
                if rec is None or rec["calendar"] != cid or rec["sync_token"] != query.sync_token:
                    raise m.invalid("Invalid page token.", "pageToken")
                return self._page(cal, rec, page_size)
            if query.sync_token is not None:
                forbidden = [p for p in FORBIDDEN_WITH_SYNC_TOKEN if p in query.given]
                if query.show_deleted is False:
                    forbidden.append("showDeleted")
                if forbidden:
                    raise m.bad_request(f"Parameter {forbidden[0]} is not allowed together with syncToken.",
                                        reason="syncTokenWithRequestRestrictions", location=forbidden[0],
                                        domain="calendar")
                token = self._sync_tokens.get(query.sync_token)
                if token is None or token["calendar"] != cid:
                    raise m.full_sync_required()
                items = self._changes(cal, token["seq"], query.single_events)
            else:
                self._check_full_query(query)
                items = self._matching(cal, query)
            rec = {"calendar": cid, "sync_token": query.sync_token, "items": items, "snapshot": self._seq,
                   "syncable": query.order_by is None}
            return self._page(cal, rec, page_size)

    def _check_full_query(self, query: ListQuery) -> None:
        if query.order_by == "startTime" and not query.single_events:
            raise m.bad_request("The requested ordering is not available for the particular query.",
                                location="orderBy")
        if query.time_min and query.time_max and query.time_min >= query.time_max:
            raise GoogleError(400, "timeRangeEmpty", "The specified time range is empty.", domain="calendar",
                              location="timeMax")

    def _page(self, cal: dict, rec: dict, page_size: int) -> dict:
        items, rest = rec["items"][:page_size], rec["items"][page_size:]
        out = {"kind": "calendar#events", "etag": self._etag(rec["snapshot"]), "summary": cal["meta"]["summary"],
               "description": cal["meta"].get("description", ""), "updated": m.format_rfc3339(now_utc()),
               "timeZone": cal["meta"]["timeZone"], "accessRole": "owner", "defaultReminders": []}
        if rest:
            token = self._new_token()
            self._remember_page(token, {**rec, "items": rest})
            out["nextPageToken"] = token
        elif rec["syncable"]:
            token = self._new_token()
            self._sync_tokens[token] = {"calendar": rec["calendar"], "seq": rec["snapshot"]}
            out["nextSyncToken"] = token
        out["items"] = items
        return out

    def _remember_page(self, token: str, rec: dict) -> None:
        self._pages[token] = rec
        while len(self._pages) > MAX_PAGE_RECORDS:
            self._pages.popitem(last=False)

    def _ordered(self, cal: dict) -> list[dict]:
        return sorted(cal["events"].values(), key=lambda e: e["_order"])

    def _changes(self, cal: dict, since: int, single_events: bool) -> list[dict]:
        out = []
        for ev in sorted((e for e in cal["events"].values() if e["_seq"] > since), key=lambda e: e["_seq"]):
            if ev["status"] == "cancelled":
                out.append(self._cancelled_stub(ev))
            elif single_events and ev.get("recurrence"):
                out.extend(m.expand_instances(self._event_resource(cal, ev), cal["meta"]["timeZone"], None, None))
            else:
                out.append(self._event_resource(cal, ev))
        return out

    def _matching(self, cal: dict, q: ListQuery) -> list[dict]:
        tz = cal["meta"]["timeZone"]
        out = []
        for ev in self._ordered(cal):
            updated_ok = q.updated_min is None or datetime.fromisoformat(ev["updated"]) >= q.updated_min
            if not updated_ok:
                continue
            if ev["status"] == "cancelled":
                # updatedMin always includes deletions; otherwise only with showDeleted=true.
                if q.show_deleted or q.updated_min is not None:
                    out.append(self._cancelled_stub(ev))
                continue
            if q.ical_uid and ev.get("iCalUID") != q.ical_uid:
                continue
            if not (m.matches_properties(ev, "private", q.private) and m.matches_properties(ev, "shared", q.shared)):
                continue
            if q.text and not any(q.text.lower() in str(ev.get(f) or "").lower()
                                  for f in ("summary", "description", "location")):
                continue
            resource = self._event_resource(cal, ev)
            if ev.get("recurrence"):
                if q.single_events:
                    out.extend(m.expand_instances(resource, tz, q.time_min, q.time_max))
                elif q.time_max is None or m.event_span(ev, tz)[0] < q.time_max:
                    out.append(resource)
            elif m.in_window(m.event_span(ev, tz), q.time_min, q.time_max):
                out.append(resource)
        if q.order_by == "startTime":
            out.sort(key=lambda e: m.event_span(e, tz)[0])
        elif q.order_by == "updated":
            out.sort(key=lambda e: e["updated"])
        return out
