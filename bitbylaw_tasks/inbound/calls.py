"""A 3CX call report (the template's ReportCall scenario) -> a validated `CallReport` (pure).

3CX sends, per finished call, the variables the template names: `[Number]`,
`[CallType]` (Inbound, Outbound, Missed, Notanswered), `[Agent]` (the
extension), `[Duration]` and `[CallStartTimeUTC]`, plus `[EntityId]` /
`[EntityType]` of the lookup's match. 3CX gives no call id to the template, so
a call is identified by number, extension, start and type (`CallReport.key`).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

from dateutil import parser as dateparser

from bitbylaw_tasks.inbound.lead_form import FormRejected, parse_body
from bitbylaw_tasks.inbound.phones import to_e164

CALL_TYPES = {"inbound": "Inbound", "outbound": "Outbound", "missed": "Missed", "notanswered": "Notanswered"}
STAMP = "%Y-%m-%d %H:%M:%S"
MAX_DURATION_S = 24 * 3600
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:\.\d+)?$")


@dataclass(frozen=True)
class CallReport:
    number: str          # E.164, or "" (withheld or not a phone number)
    call_type: str       # Inbound | Outbound | Missed | Notanswered
    agent: str           # the 3CX extension
    start: str           # UTC, EspoCRM's "YYYY-MM-DD HH:MM:SS"
    end: str
    duration_s: int
    entity_id: str = ""
    entity_type: str = ""

    @property
    def direction(self) -> str:
        """EspoCRM's Call.direction."""
        return "Inbound" if self.call_type in ("Inbound", "Missed") else "Outbound"

    @property
    def status(self) -> str:
        """EspoCRM's Call.status: a call that was talked is Held, one nobody answered Not Held."""
        return "Held" if self.call_type in ("Inbound", "Outbound") else "Not Held"

    @property
    def missed(self) -> bool:
        return self.call_type == "Missed"

    @property
    def key(self) -> str:
        """The same call reported twice has the same key (journaling is idempotent per call)."""
        return hashlib.sha256(f"{self.number}|{self.agent}|{self.start}|{self.call_type}".encode()).hexdigest()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CallReport":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def parse_duration(raw: str) -> int:
    """Seconds from `hh:mm:ss`, `mm:ss` or a number of seconds; FormRejected(422) otherwise."""
    text = (raw or "").strip()
    if not text:
        return 0
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        seconds = int(float(text))
    else:
        match = _CLOCK.match(text)
        if not match:
            raise FormRejected(422, "Duration: expected hh:mm:ss or seconds")
        hours, minutes, secs = (int(g or 0) for g in match.groups())
        if minutes > 59 or secs > 59:
            raise FormRejected(422, "Duration: expected hh:mm:ss or seconds")
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds > MAX_DURATION_S:
        raise FormRejected(422, "Duration: longer than a day")
    return seconds


def parse_start(raw: str) -> datetime:
    """The call's start in UTC; a time without a zone is UTC (the template sends CallStartTimeUTC)."""
    text = (raw or "").strip()
    if not text or len(text) > 40:
        raise FormRejected(422, "CallStartTimeUTC is required")
    try:
        moment = dateparser.parse(text)
    except (ValueError, OverflowError):
        raise FormRejected(422, "CallStartTimeUTC: not a date and time") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def report_from_fields(fields: dict[str, str], region: str = "DE") -> CallReport:
    call_type = CALL_TYPES.get(fields.get("CallType", "").strip().lower())
    if call_type is None:
        raise FormRejected(422, "CallType: expected Inbound, Outbound, Missed or Notanswered")
    start = parse_start(fields.get("CallStartTimeUTC", ""))
    duration = parse_duration(fields.get("Duration", ""))
    agent = fields.get("Agent", "").strip()
    if len(agent) > 20:
        raise FormRejected(422, "Agent: longer than 20 characters")
    number = to_e164(fields.get("Number", ""), region) or ""
    entity_type = fields.get("EntityType", "").strip()
    entity_id = fields.get("EntityId", "").strip()
    if not re.fullmatch(r"[0-9a-f]{17}|", entity_id) or entity_type not in ("", "CBeteiligte", "Contact", "Lead"):
        entity_id, entity_type = "", ""  # not one of ours: the worker looks the number up itself
    return CallReport(number=number, call_type=call_type, agent=agent, start=start.strftime(STAMP),
                      end=(start + timedelta(seconds=duration)).strftime(STAMP), duration_s=duration,
                      entity_id=entity_id, entity_type=entity_type)


def parse_report(content_type: str, body: bytes, region: str = "DE") -> CallReport:
    """The whole pure path from the request body (JSON or form-encoded) to the report."""
    return report_from_fields(parse_body(content_type, body), region)
