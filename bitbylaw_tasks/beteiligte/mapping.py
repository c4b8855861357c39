"""EspoCRM <-> Advoware field mapping for Beteiligte, and the canonical form both sides are compared in.

Pure: no I/O, no clock. SPEC §4.6. The *canonical form* of a record is a dict
`{EspoCRM field name: normalised str}` over `FIELDS`, computed the same way from
either side (`mapped_snapshot(espo)`, `snapshot_of_advoware(advo)`), so that two
records hold "the same data" exactly when their canonical forms are equal. It is
also what the sync stores as its snapshot (see `compare.py`, docs/beteiligte-sync.md).

Conventions, decided once here and used by mapping *and* comparison:
- `normalise()`: None and "" are the same value (""), text is NFC and stripped.
  EspoCRM itself stores "" as null (its StringTrim sanitizer), so a comparison
  that told them apart would flip-flop.
- Towards EspoCRM an empty text is written as "", never None; an empty date is
  not written at all (EspoCRM rejects "" for a date, and SPEC §4.6 forbids None).
- Towards Advoware an empty value is sent as None (JSON null).
- Person vs company follows Advoware's rule (SPEC §3.2): a person has a
  non-empty first name (`vorname`); on the EspoCRM side a non-empty `firmenname`
  makes a company even when first/last name are (hidden) filled.
- Malformed dates never raise: they count as empty, and a line naming the
  field (never the value) is appended to the optional `report` list.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timezone

# Field groups: the unit of the conflict policy (compare.py). "name" decides
# person vs company, so it is one group; "person" holds the personal details
# (salutation and title apply to companies too, e.g. anrede "Firma");
# "company" holds what only a company has.
GROUPS: dict[str, tuple[str, ...]] = {
    "name": ("firstName", "lastName", "firmenname"),
    "person": ("salutationName", "titel", "dateOfBirth"),
    "company": ("rechtsform",),
}
FIELDS: tuple[str, ...] = tuple(f for fields in GROUPS.values() for f in fields)
GROUP_OF: dict[str, str] = {f: g for g, fields in GROUPS.items() for f in fields}
NAME_FIELDS = GROUPS["name"]

PERSON, COMPANY = "person", "company"

# SPEC §3.2: only these master-data fields can be written; the rest are ignored by Advoware.
ADVOWARE_WRITABLE = ("name", "vorname", "anrede", "titel", "briefAnrede", "geburtsdatum", "rechtsform", "zusatz")

_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
# Advoware sends 'YYYY-MM-DDT00:00:00'; accept any time part and zone, keep the calendar date as written.
_DATE_WITH_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
_DOTNET_MIN_DATE = "0001-01-01"  # .NET's DateTime.MinValue: Advoware's way of saying "no date"


def normalise(value) -> str:
    """The comparable form of a text value: None -> "", Unicode NFC, surrounding whitespace removed."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    return unicodedata.normalize("NFC", value).strip()


def normalise_date(value, report: list[str] | None = None, field: str = "date") -> str:
    """'YYYY-MM-DD' for any accepted date form (EspoCRM's, Advoware's, a `date`), else ""."""
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return value.isoformat()
    text = normalise(value)
    if not text:
        return ""
    match = _DATE_WITH_TIME.fullmatch(text)
    if match:
        try:
            iso = date(int(match[1]), int(match[2]), int(match[3])).isoformat()
        except ValueError:
            iso = ""
        if iso == _DOTNET_MIN_DATE:
            return ""
        if iso:
            return iso
    _note(report, f"{field}: malformed date treated as empty")
    return ""


def advoware_date(value, report: list[str] | None = None, field: str = "dateOfBirth") -> str | None:
    """An EspoCRM date as Advoware's 'YYYY-MM-DDT00:00:00', or None when empty/malformed."""
    iso = normalise_date(value, report, field)
    return f"{iso}T00:00:00" if iso else None


def parse_espo_datetime(value) -> datetime | None:
    """EspoCRM's 'YYYY-MM-DD HH:MM:SS' (UTC, no zone) as an aware UTC datetime; None if empty/malformed."""
    return _parse_datetime(value)


def parse_advoware_datetime(value) -> datetime | None:
    """An Advoware timestamp (ISO 8601, e.g. `geaendertAm`) as aware UTC; no zone is read as UTC."""
    return _parse_datetime(value)


def format_espo_datetime(moment: datetime) -> str:
    """An aware (or naive = UTC) datetime as EspoCRM's 'YYYY-MM-DD HH:MM:SS' in UTC."""
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%S")


def as_utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def kind_of(record: dict) -> str:
    """PERSON or COMPANY for an EspoCRM-shaped record (also a canonical dict)."""
    if normalise(record.get("firstName")) and not normalise(record.get("firmenname")):
        return PERSON
    return COMPANY


def espo_to_advoware(espo: dict, report: list[str] | None = None) -> dict:
    """The Advoware writable fields for an EspoCRM record (a POST body, or the overlay for a PUT).

    A person maps no `rechtsform` key, so a PUT keeps whatever Advoware holds there.
    A person without first name cannot exist in Advoware: it becomes a company
    named by the last name, and the report says so.
    """
    first, last = normalise(espo.get("firstName")), normalise(espo.get("lastName"))
    firm = normalise(espo.get("firmenname"))
    out = {
        "anrede": normalise(espo.get("salutationName")) or None,
        "titel": normalise(espo.get("titel")) or None,
        "geburtsdatum": advoware_date(espo.get("dateOfBirth"), report, "dateOfBirth"),
    }
    if kind_of(espo) == PERSON:
        out.update(vorname=first, name=last or None)
        return out
    if not firm and last:
        _note(report, "firstName empty: stored in Advoware as a company named by lastName")
    out.update(vorname=None, name=firm or last or None, rechtsform=normalise(espo.get("rechtsform")) or None)
    return out


def snapshot_of_advoware(advo: dict, report: list[str] | None = None) -> dict[str, str]:
    """The canonical form of an Advoware record's mapped fields (EspoCRM field names)."""
    vorname, name = normalise(advo.get("vorname")), normalise(advo.get("name"))
    out = {
        "salutationName": normalise(advo.get("anrede")),
        "titel": normalise(advo.get("titel")),
        "dateOfBirth": normalise_date(advo.get("geburtsdatum"), report, "geburtsdatum"),
    }
    if vorname:
        out.update(firstName=vorname, lastName=name, firmenname="", rechtsform="")
    else:
        out.update(firstName="", lastName="", firmenname=name, rechtsform=normalise(advo.get("rechtsform")))
    return {f: out[f] for f in FIELDS}


def mapped_snapshot(espo: dict, report: list[str] | None = None) -> dict[str, str]:
    """The canonical form of an EspoCRM record: what Advoware would hold after receiving it.

    Defined through the mapping itself, so both sides agree by construction; it is
    the identity on canonical dicts (a fixed point), which makes it `canonicalise`.
    """
    return snapshot_of_advoware(espo_to_advoware(espo, report))


canonicalise = mapped_snapshot


def canonical_to_espo(canonical: dict[str, str]) -> dict:
    """The EspoCRM data fields that represent a canonical dict: "" for empty text, empty dates left out.

    A person writes no `rechtsform` (not mapped for persons); a company clears
    first/last name (EspoCRM hides them for companies, SPEC §3.1).
    """
    out = {"salutationName": canonical["salutationName"], "titel": canonical["titel"]}
    if canonical["dateOfBirth"]:
        out["dateOfBirth"] = canonical["dateOfBirth"]
    if kind_of(canonical) == PERSON:
        out.update(firstName=canonical["firstName"], lastName=canonical["lastName"], firmenname="")
    else:
        out.update(firstName="", lastName="", firmenname=canonical["firmenname"],
                   rechtsform=canonical["rechtsform"])
    return out


def display_name(canonical: dict[str, str]) -> str:
    """EspoCRM's `name`: "First Last" for a person, the company name for a company."""
    if kind_of(canonical) == PERSON:
        return f"{canonical['firstName']} {canonical['lastName']}".strip()
    return canonical["firmenname"]


def advoware_to_espo(advo: dict, report: list[str] | None = None) -> dict:
    """The EspoCRM fields for an Advoware record: data, derived `name`, `advowareRowId`, `betnr`.

    Never contains None. An empty `name` is left out (EspoCRM may require it).
    """
    canonical = snapshot_of_advoware(advo, report)
    out = canonical_to_espo(canonical)
    name = display_name(canonical)
    if name:
        out["name"] = name
    if advo.get("rowId"):
        out["advowareRowId"] = advo["rowId"]
    if advo.get("betNr") is not None:
        out["betnr"] = advo["betNr"]
    return out


def merge_into_advoware(advo_record: dict, mapped: dict) -> dict:
    """The full PUT body: the fetched record with the mapped fields laid over it (read-modify-write).

    Advoware's PUT replaces every writable field, so fields the mapping does not
    own (`briefAnrede`, `zusatz`, a person's `rechtsform`, unknown ones) are sent
    back as fetched. Nested lists/objects (`kommunikation`) are not master data and
    are left out; read-only scalars are sent as read (Advoware ignores them).
    """
    body = {k: v for k, v in advo_record.items() if not isinstance(v, (list, dict))}
    body.update(mapped)
    return body


def _parse_datetime(value) -> datetime | None:
    if isinstance(value, datetime):
        return as_utc(value)
    text = normalise(value)
    if not _DATE.match(text):  # fromisoformat also takes week dates etc.; demand YYYY-MM-DD first
        return None
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def _note(report: list[str] | None, line: str) -> None:
    if report is not None and line not in report:
        report.append(line)
