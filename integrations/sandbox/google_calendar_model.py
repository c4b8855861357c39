"""Pure pieces of the Google Calendar simulator: Google-shaped errors, RFC3339/time-zone rules, event validation.

No Flask and no state in here: the state object (`google_calendar_state`) and
the HTTP layer (`google_calendar`) call these functions, and the unit tests
exercise them directly. The rules follow the discovery document
`calendar.v3.json` and Google's "errors" and "sync" guides (RESEARCH §E).
"""
from __future__ import annotations

import copy
import re
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EVENT_ID_RE = re.compile(r"^[a-v0-9]{5,1024}$")
EVENT_STATUSES = ("confirmed", "tentative", "cancelled")
# Fields the server owns; a client may send them but they are ignored (Google does the same).
READ_ONLY_EVENT_FIELDS = {"kind", "etag", "created", "updated", "htmlLink", "creator", "organizer",
                          "iCalUID", "recurringEventId", "originalStartTime"}
MAX_PROPERTY_KEY = 44        # longer keys are silently dropped (extended-properties guide)
MAX_PROPERTY_VALUE = 1024


class GoogleError(Exception):
    """An API error the HTTP layer renders as Google's JSON error body."""

    def __init__(self, status: int, reason: str, message: str, *, domain: str = "global",
                 location: str | None = None, location_type: str | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.domain = domain
        self.location = location
        self.location_type = location_type

    def body(self) -> dict:
        item = {"domain": self.domain, "reason": self.reason, "message": self.message}
        if self.location:
            item["locationType"] = self.location_type or "parameter"
            item["location"] = self.location
        return {"error": {"errors": [item], "code": self.status, "message": self.message}}


# The errors Google answers most often, in its words (errors guide).
def not_found() -> GoogleError:
    return GoogleError(404, "notFound", "Not Found")


def deleted() -> GoogleError:
    return GoogleError(410, "deleted", "Resource has been deleted")


def full_sync_required() -> GoogleError:
    return GoogleError(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.",
                       domain="calendar", location="syncToken")


def duplicate() -> GoogleError:
    return GoogleError(409, "duplicate", "The requested identifier already exists.")


def condition_not_met() -> GoogleError:
    return GoogleError(412, "conditionNotMet", "Precondition Failed", location="If-Match", location_type="header")


def bad_request(message: str, *, reason: str = "badRequest", location: str | None = None,
                domain: str = "global") -> GoogleError:
    return GoogleError(400, reason, message, domain=domain, location=location)


def invalid(message: str, location: str | None = None) -> GoogleError:
    return bad_request(message, reason="invalid", location=location)


def required(message: str, location: str | None = None) -> GoogleError:
    return bad_request(message, reason="required", location=location)


# Default bodies for statuses injected by fault injection (403/429 are rate limits, 5xx backend errors).
FAULT_REASONS = {
    400: ("global", "badRequest", "Bad Request"),
    401: ("global", "authError", "Invalid Credentials"),
    403: ("usageLimits", "rateLimitExceeded", "Rate Limit Exceeded"),
    404: ("global", "notFound", "Not Found"),
    409: ("global", "duplicate", "The requested identifier already exists."),
    410: ("calendar", "fullSyncRequired", "Sync token is no longer valid, a full sync is required."),
    412: ("global", "conditionNotMet", "Precondition Failed"),
    429: ("usageLimits", "rateLimitExceeded", "Rate Limit Exceeded"),
    500: ("global", "backendError", "Backend Error"),
    502: ("global", "backendError", "Bad Gateway"),
    503: ("global", "backendError", "Service Unavailable"),
    504: ("global", "backendError", "Gateway Timeout"),
}


def fault_error(status: int, reason: str | None = None, message: str | None = None) -> GoogleError:
    """The Google-shaped error for an injected status (`reason` overrides the default)."""
    domain, default_reason, default_message = FAULT_REASONS.get(
        status, ("global", "backendError" if status >= 500 else "badRequest", "Injected error"))
    if reason and reason != default_reason:
        domain = "usageLimits" if "Limit" in reason or "quota" in reason else "global"
    return GoogleError(status, reason or default_reason, message or default_message, domain=domain)


# --- time ---
def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(f"Invalid time zone definition: {name}") from None


def parse_rfc3339(value: str, location: str) -> datetime:
    """An RFC3339 timestamp with a mandatory offset (query parameters like timeMin)."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except (ValueError, AttributeError):
        raise bad_request("Bad Request", location=location) from None
    if parsed.tzinfo is None:
        raise bad_request("Bad Request", location=location)
    return parsed


def format_rfc3339(moment: datetime) -> str:
    """UTC with milliseconds, like Google's `updated`/`created`: 2024-05-01T10:00:00.000Z."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_date(value, where: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise bad_request("Invalid value for: " + where, reason="invalid") from None


def point_in_time(edge: dict, where: str, calendar_tz: str) -> datetime:
    """The instant an event `start`/`end` denotes; all-day dates start at midnight in the calendar's zone."""
    if "dateTime" in edge and edge["dateTime"] is not None:
        try:
            moment = datetime.fromisoformat(str(edge["dateTime"]).replace("z", "Z"))
        except ValueError:
            raise invalid(f"Invalid {where} time.") from None
        if moment.tzinfo is None:
            if not edge.get("timeZone"):
                raise bad_request(f"Missing time zone definition for {where} time.")
            moment = moment.replace(tzinfo=zone(edge["timeZone"]))
        return moment
    day = _parse_date(edge.get("date"), where)
    return datetime.combine(day, time(0), tzinfo=zone(calendar_tz))


def event_span(event: dict, calendar_tz: str) -> tuple[datetime, datetime]:
    return (point_in_time(event["start"], "start", calendar_tz),
            point_in_time(event["end"], "end", calendar_tz))


def _clean_edge(edge, where: str) -> dict:
    if not isinstance(edge, dict) or not (edge.get("date") or edge.get("dateTime")):
        raise required(f"Missing {where} time.")
    if edge.get("date") and edge.get("dateTime"):
        raise bad_request(f"Invalid {where} time: both date and dateTime given.")
    out = {}
    if edge.get("date"):
        out["date"] = _parse_date(edge["date"], where).isoformat()
    else:
        out["dateTime"] = str(edge["dateTime"])
    if edge.get("timeZone"):
        zone(edge["timeZone"])
        out["timeZone"] = edge["timeZone"]
    return out


def clean_properties(props) -> dict:
    """extendedProperties: string -> string maps; over-long keys dropped, over-long values rejected."""
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise invalid("Invalid extended properties.", "extendedProperties")
    out = {}
    for scope in ("private", "shared"):
        values = props.get(scope)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise invalid("Invalid extended properties.", f"extendedProperties.{scope}")
        kept = {}
        for key, value in values.items():
            if value is None:
                continue
            if not isinstance(value, str):
                value = str(value)
            if len(key) > MAX_PROPERTY_KEY:
                continue
            if len(value) > MAX_PROPERTY_VALUE:
                raise invalid("Extended property value too long.", f"extendedProperties.{scope}")
            kept[key] = value
        if kept:
            out[scope] = kept
    return out


def validate_event(body: dict, calendar_tz: str) -> dict:
    """The writable fields of an event body, checked as Google checks them (start/end, status, props)."""
    if not isinstance(body, dict):
        raise bad_request("Bad Request")
    out = {k: copy.deepcopy(v) for k, v in body.items() if k not in READ_ONLY_EVENT_FIELDS and k != "id"}
    out["start"] = _clean_edge(body.get("start"), "start")
    out["end"] = _clean_edge(body.get("end"), "end")
    if ("date" in out["start"]) != ("date" in out["end"]):
        raise bad_request("Start and end times must either both be date or both be dateTime.")
    start, end = event_span(out, calendar_tz)
    if end < start or ("date" in out["start"] and end == start):
        raise GoogleError(400, "timeRangeEmpty", "The specified time range is empty.",
                          domain="calendar", location="end")
    status = out.get("status") or "confirmed"
    if status not in EVENT_STATUSES:
        raise invalid("Invalid value for: status", "status")
    out["status"] = status
    for text in ("summary", "description", "location"):
        if text in out and out[text] is not None and not isinstance(out[text], str):
            raise invalid(f"Invalid value for: {text}", text)
    props = clean_properties(out.pop("extendedProperties", None))
    if props:
        out["extendedProperties"] = props
    if "recurrence" in out:
        rec = out["recurrence"]
        if rec in (None, []):
            out.pop("recurrence")
        elif not isinstance(rec, list) or not all(isinstance(r, str) for r in rec):
            raise invalid("Invalid recurrence rule.", "recurrence")
    if "sequence" in out and not isinstance(out["sequence"], int):
        raise invalid("Invalid value for: sequence", "sequence")
    return out


def merge_patch(target: dict, patch: dict) -> dict:
    """Google's patch semantics: objects merge recursively, `null` removes, arrays and scalars replace."""
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_patch(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def significant_change(old: dict, new: dict) -> bool:
    """Changes that bump the iCalendar SEQUENCE: the time or the recurrence of the event."""
    return any(old.get(k) != new.get(k) for k in ("start", "end", "recurrence"))


def matches_properties(event: dict, scope: str, constraints: list[tuple[str, str]]) -> bool:
    """All `name=value` constraints must match (discovery doc: 'events that match all given constraints')."""
    values = (event.get("extendedProperties") or {}).get(scope) or {}
    return all(values.get(k) == v for k, v in constraints)


def parse_property_constraints(raw: list[str], location: str) -> list[tuple[str, str]]:
    out = []
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise bad_request("Bad Request", location=location)
        out.append((key, value))
    return out


def in_window(span: tuple[datetime, datetime], time_min: datetime | None, time_max: datetime | None) -> bool:
    """timeMin is an exclusive bound on the end, timeMax an exclusive bound on the start."""
    start, end = span
    if time_min is not None and not end > time_min:
        return False
    if time_max is not None and not start < time_max:
        return False
    return True


# --- recurrence (singleEvents=true) ---
MAX_INSTANCES = 730
DEFAULT_HORIZON = timedelta(days=730)


def expand_instances(event: dict, calendar_tz: str, time_min: datetime | None,
                     time_max: datetime | None) -> list[dict]:
    """The instances of a recurring event (RRULE/EXDATE lines) as Google lists them with singleEvents=true.

    Instance ids are `<id>_<YYYYMMDD>` (all-day) or `<id>_<YYYYMMDDTHHMMSSZ>`;
    each carries `recurringEventId` and `originalStartTime`. Expansion stops at
    timeMax, or two years after the later of timeMin and the first start, and
    at 730 instances.
    """
    from dateutil.rrule import rrulestr

    start, end = event_span(event, calendar_tz)
    duration = end - start
    all_day = "date" in event["start"]
    tz = zone(event["start"].get("timeZone") or calendar_tz)
    local_start = start.astimezone(tz).replace(tzinfo=None)
    try:
        rules = rrulestr("\n".join(event.get("recurrence", [])), dtstart=local_start, forceset=True,
                         ignoretz=True)
    except (ValueError, TypeError):
        return []
    horizon = time_max or (max(time_min or start, start) + DEFAULT_HORIZON)
    instances = []
    for occurrence in rules:
        occ_start = occurrence.replace(tzinfo=tz)
        if occ_start >= horizon or len(instances) >= MAX_INSTANCES:
            break
        occ_end = occ_start + duration
        if not in_window((occ_start, occ_end), time_min, time_max):
            continue
        instance = {k: copy.deepcopy(v) for k, v in event.items() if k != "recurrence"}
        if all_day:
            suffix = occ_start.strftime("%Y%m%d")
            instance["start"] = {"date": occ_start.date().isoformat()}
            instance["end"] = {"date": (occ_start.date() + (end.date() - start.date())).isoformat()}
            instance["originalStartTime"] = {"date": occ_start.date().isoformat()}
        else:
            suffix = occ_start.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            zone_name = event["start"].get("timeZone")
            instance["start"] = {"dateTime": occ_start.isoformat(), **({"timeZone": zone_name} if zone_name else {})}
            zone_name = event["end"].get("timeZone")
            instance["end"] = {"dateTime": occ_end.isoformat(), **({"timeZone": zone_name} if zone_name else {})}
            instance["originalStartTime"] = dict(instance["start"])
        instance["id"] = f"{event['id']}_{suffix}"
        instance["recurringEventId"] = event["id"]
        instances.append(instance)
    return instances
