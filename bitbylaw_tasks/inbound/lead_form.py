"""A website form submission -> a validated lead (pure): body parsing, field mapping, validation, fingerprint.

WordPress form plugins send JSON or `application/x-www-form-urlencoded` with
field names the site owner chose; `LEAD_FIELD_MAP` maps them to the lead
fields below (docs/inbound-channels.md). Everything here is pure: the shim
calls it, then stores the result and queues its id.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from urllib.parse import parse_qsl

from bitbylaw_tasks.inbound.phones import to_e164

#: The lead fields a form may fill, with their maximum lengths.
LEAD_FIELDS = {"firstName": 100, "lastName": 100, "name": 200, "emailAddress": 254, "phoneNumber": 40,
               "description": 5000, "accountName": 200, "consent": 20}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$")
_CONSENT_YES = {"1", "true", "yes", "on", "ja", "accepted", "checked", "y"}
FORM_TYPES = ("application/json", "application/x-www-form-urlencoded")


def check_settings(settings) -> None:
    """Run where a process starts (`domain_settings.CHECKS`): LEAD_FIELD_MAP maps only to lead
    fields this domain knows (the base settings module checks the shape and names no domain)."""
    from bitbylaw_tasks.settings import SettingsError

    for form_name, lead_field in settings.lead_field_map.items():
        if lead_field not in LEAD_FIELDS:
            raise SettingsError(f"LEAD_FIELD_MAP: {form_name} maps to {lead_field!r}, "
                                f"expected one of {', '.join(LEAD_FIELDS)}")


class FormRejected(Exception):
    """The submission cannot be accepted: `status` (400/415/422) and a message safe to return to the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class LeadSubmission:
    """A validated lead: names split, e-mail lower-cased, phone in E.164, consent as a flag."""

    first_name: str
    last_name: str
    email: str
    phone: str
    description: str
    account_name: str
    consent: bool

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LeadSubmission":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def fingerprint(self) -> str:
        """Equal for a resubmission of the same form content (the idempotency key)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def parse_body(content_type: str, body: bytes) -> dict[str, str]:
    """The submitted fields as a flat `{name: text}`; JSON objects and url-encoded forms (last value wins)."""
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if mimetype not in FORM_TYPES:
        raise FormRejected(415, "Content-Type must be application/json or application/x-www-form-urlencoded")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FormRejected(400, "body is not UTF-8") from None
    if mimetype == "application/json":
        try:
            data = json.loads(text)
        except ValueError:
            raise FormRejected(400, "body is not valid JSON") from None
        if not isinstance(data, dict):
            raise FormRejected(400, "body must be a JSON object")
        fields = {}
        for key, value in data.items():
            if isinstance(value, (dict, list)):
                continue  # plugin metadata (form id, page…): never a lead field
            fields[str(key)] = "" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
        return fields
    return dict(parse_qsl(text, keep_blank_values=True))


def map_fields(fields: dict[str, str], field_map: dict[str, str]) -> dict[str, str]:
    """Form field names -> lead field names: `field_map` (form name -> lead field) over the identity for the
    lead field names themselves. Unmapped form fields are dropped (they are never stored)."""
    names = {name: name for name in LEAD_FIELDS}
    names.update(field_map)
    mapped: dict[str, str] = {}
    for form_name, value in fields.items():
        target = names.get(form_name)
        if target in LEAD_FIELDS and value.strip():
            mapped[target] = value.strip()
    return mapped


def _split_name(full: str) -> tuple[str, str]:
    parts = full.split()
    if len(parts) == 1:
        return "", parts[0]
    return " ".join(parts[:-1]), parts[-1]


def validate(mapped: dict[str, str], region: str = "DE") -> LeadSubmission:
    """The lead, or `FormRejected(422)` naming the first problem: a last name (or a full name) and an e-mail
    or a phone are required; the e-mail must look like one; the phone must be a possible number; lengths."""
    for name, value in mapped.items():
        if len(value) > LEAD_FIELDS[name]:
            raise FormRejected(422, f"{name}: longer than {LEAD_FIELDS[name]} characters")
    first, last = mapped.get("firstName", ""), mapped.get("lastName", "")
    if not last and mapped.get("name"):
        split_first, last = _split_name(mapped["name"])
        first = first or split_first
    if not last:
        raise FormRejected(422, "lastName (or name) is required")
    email = mapped.get("emailAddress", "").lower()
    if email and not _EMAIL.match(email):
        raise FormRejected(422, "emailAddress: not an e-mail address")
    phone = ""
    if mapped.get("phoneNumber"):
        phone = to_e164(mapped["phoneNumber"], region) or ""
        if not phone:
            raise FormRejected(422, "phoneNumber: not a phone number")
    if not email and not phone:
        raise FormRejected(422, "emailAddress or phoneNumber is required")
    return LeadSubmission(first_name=first, last_name=last, email=email, phone=phone,
                          description=mapped.get("description", ""), account_name=mapped.get("accountName", ""),
                          consent=mapped.get("consent", "").strip().lower() in _CONSENT_YES)


def submission_from_form(content_type: str, body: bytes, field_map: dict[str, str], honeypot: str,
                         region: str = "DE") -> LeadSubmission | None:
    """The whole pure path; None when the honeypot field is filled (a bot: accepted, never queued)."""
    fields = parse_body(content_type, body)
    if honeypot and fields.get(honeypot, "").strip():
        return None
    return validate(map_fields(fields, field_map), region)
