"""The CBeteiligte field set of the EspoCRM simulator and how it sanitises and validates input.

Mirrors EspoCRM's save pipeline: strings are trimmed, unknown and read-only
attributes are ignored by the caller, types are checked (`validationFailure`
400 with EspoCRM's `messageTranslation` body), `syncErrorMessage` is capped at
2000 characters, and the e-mail/phone arrays are normalised: `lower` on
e-mail entries, duplicates dropped, exactly one primary entry (the first
flagged one, else the first).
"""
from __future__ import annotations

import datetime as dt
import re

ENTITY = "CBeteiligte"
FIELDS: dict[str, str] = {
    "id": "id", "name": "varchar", "firstName": "varchar", "lastName": "varchar", "firmenname": "varchar",
    "salutationName": "varchar", "titel": "varchar", "dateOfBirth": "date", "rechtsform": "varchar",
    "emailAddressData": "email", "phoneNumberData": "phone", "assignedUserId": "id",
    "createdAt": "datetime", "modifiedAt": "datetime",
    "betnr": "int", "advowareRowId": "varchar", "syncStatus": "enum", "advowareLastSync": "datetime",
    "advowareDeletedAt": "datetime", "syncErrorMessage": "text", "syncRetryCount": "int",
    "syncNextRetry": "datetime", "syncAutoResetAt": "datetime", "kommunikationHash": "varchar",
    # The product's durable sync state (docs/beteiligte-sync.md, docs/kommunikation-sync.md): text
    # fields hidden from and read-only for users in the real EspoCRM's entity definition.
    "advowareSyncSnapshot": "longtext", "kommunikationStatus": "longtext", "advowareCreateIntent": "varchar",
    "versionNumber": "int",
}
READ_ONLY = frozenset({"id", "createdAt", "modifiedAt", "versionNumber"})
SYNC_RELEVANT = frozenset({"firstName", "lastName", "firmenname", "salutationName", "titel", "dateOfBirth",
                           "rechtsform", "emailAddressData", "phoneNumberData"})
SYNC_STATUSES = ("pending_sync", "clean", "dirty", "syncing", "failed", "permanently_failed", "conflict",
                 "deleted_in_advoware")
PHONE_TYPES = ("Mobile", "Office", "Home", "Fax", "Other")
MAX_LENGTH = {"varchar": 255, "text": 2000, "longtext": 65535}
NOTE_FIELDS = {"id": "id", "type": "varchar", "post": "text", "parentType": "varchar", "parentId": "id",
               "createdAt": "datetime", "createdById": "id", "targetType": "varchar"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


class EspoError(Exception):
    """An error the API answers with `status`, `X-Status-Reason: reason` and an optional JSON body."""

    def __init__(self, status: int, reason: str, body=None):
        super().__init__(reason)
        self.status, self.reason, self.body = status, reason, body


def validation_error(field: str, kind: str) -> EspoError:
    body = {"messageTranslation": {"label": "validationFailure", "scope": ENTITY,
                                   "data": {"field": field, "type": kind}}}
    return EspoError(400, "validationFailure", body)


def display_name(record: dict) -> str | None:
    """The Person template's `name`: first and last name only (a company, with both empty, has none)."""
    parts = [record.get("firstName"), record.get("lastName")]
    return " ".join(p for p in parts if p) or None


UI_COUNTRY = "DE"  # the country EspoCRM's phone field preselects for the firm's users (Settings)


def e164(number: str, region: str | None = None) -> str | None:
    """EspoCRM's `phoneNumberInternational` reading of a number: its E.164 form, or None when it has no
    country code or is not a possible number (then the save is a validation failure). `region`: the country
    the UI's phone field had selected while a person typed it (the front end sends E.164; the API has none)."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def sanitize_value(name: str, kind: str, value, *, phone_international: bool = False, typed_in_ui: bool = False):
    if kind == "email":
        return _emails(value)
    if kind == "phone":
        return _phones(value, phone_international, UI_COUNTRY if typed_in_ui else None)
    if value is None:
        if name == "syncStatus":
            raise validation_error(name, "valid")
        return None
    if kind in ("varchar", "text", "longtext", "id"):
        if not isinstance(value, str):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise validation_error(name, "valid")
            value = str(value)
        value = value.strip()
        if len(value) > MAX_LENGTH.get(kind, 255):
            raise validation_error(name, "maxLength")
        return value
    if kind == "enum":
        if value not in SYNC_STATUSES:
            raise validation_error(name, "valid")
        return value
    if kind == "int":
        if isinstance(value, bool):
            raise validation_error(name, "valid")
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
        raise validation_error(name, "valid")
    if kind in ("date", "datetime"):
        if value == "":
            return None
        pattern = _DATE if kind == "date" else _DATETIME
        if not isinstance(value, str) or not pattern.match(value):
            raise validation_error(name, "valid")
        try:
            dt.datetime.strptime(value, "%Y-%m-%d" if kind == "date" else "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise validation_error(name, "valid") from None
        return value
    raise validation_error(name, "valid")


def _flag(entry: dict, key: str) -> bool:
    value = entry.get(key, False)
    return bool(value) and value not in ("0", "false")


def _mark_primary(entries: list[dict]) -> list[dict]:
    """Exactly one primary entry when there are entries: the first flagged one, else the first."""
    first = next((i for i, e in enumerate(entries) if e["primary"]), 0)
    for i, entry in enumerate(entries):
        entry["primary"] = i == first
    return entries


def _emails(value) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise validation_error("emailAddress", "valid")
    result, seen = [], set()
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("emailAddress"), str):
            raise validation_error("emailAddress", "valid")
        address = entry["emailAddress"].strip()
        if not _EMAIL.match(address):
            raise validation_error("emailAddress", "emailAddress")
        if address.lower() in seen:
            continue
        seen.add(address.lower())
        result.append({"emailAddress": address, "lower": address.lower(), "primary": _flag(entry, "primary"),
                       "optOut": _flag(entry, "optOut"), "invalid": _flag(entry, "invalid")})
    return _mark_primary(result)


def _phones(value, international: bool = False, region: str | None = None) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise validation_error("phoneNumber", "valid")
    result, seen = [], set()
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("phoneNumber"), str):
            raise validation_error("phoneNumber", "valid")
        number = entry["phoneNumber"].strip()
        kind = entry.get("type") or "Mobile"
        if not number or kind not in PHONE_TYPES:
            raise validation_error("phoneNumber", "valid")
        if international:
            number = e164(number, region)
            if number is None:
                raise validation_error("phoneNumber", "valid")
        if number in seen:
            continue
        seen.add(number)
        result.append({"phoneNumber": number, "type": kind, "primary": _flag(entry, "primary"),
                       "optOut": _flag(entry, "optOut"), "invalid": _flag(entry, "invalid")})
    return _mark_primary(result)
