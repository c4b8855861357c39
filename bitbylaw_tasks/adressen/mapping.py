"""Pure mapping of one address between Advoware and EspoCRM (SPEC §11, docs/adressen-sync.md).

Both sides become a `Content`: the twelve comparable fields under EspoCRM's
names, strings stripped, `""` and null both None (Advoware answers either for
an empty field), dates `YYYY-MM-DD`. Advoware's `standardAnschrift` is
`isPrimary`; `isActive` is derived on the Advoware side from `gueltigBis`
(an address valid until yesterday is inactive). The marker `EspoCRM-ID: {id}`
lives in Advoware's `bemerkung` and is not part of the content: `bemerkung`
content is the text without the marker line. Also here: what the Advoware API
can write (`WRITABLE`), the German labels of the manual instructions, and the
validation that gives a malformed address a clear message instead of a 400.
"""
from __future__ import annotations

import re
from datetime import date

FIELDS = ("strasse", "plz", "ort", "land", "postfach", "postfachPlz", "anschrift", "bemerkung", "gueltigVon",
          "gueltigBis", "isPrimary", "isActive")
WRITABLE = ("strasse", "plz", "ort", "anschrift")            # what an Advoware PUT changes
READ_ONLY = tuple(f for f in FIELDS if f not in WRITABLE)    # set only by POST, afterwards by a person
MATCH_KEY = ("strasse", "plz", "ort", "land", "postfach", "postfachPlz", "anschrift")  # "the same address"
LABELS = {"strasse": "Straße", "plz": "PLZ", "ort": "Ort", "land": "Land", "postfach": "Postfach",
          "postfachPlz": "Postfach-PLZ", "anschrift": "Anschrift", "bemerkung": "Bemerkung",
          "gueltigVon": "Gültig von", "gueltigBis": "Gültig bis", "isPrimary": "Standardanschrift",
          "isActive": "Gültig bis"}
MARKER_RE = re.compile(r"EspoCRM-ID:\s*([A-Za-z0-9]+)")
MAX_LENGTH = {"strasse": 100, "plz": 10, "ort": 100, "land": 3, "postfach": 20, "postfachPlz": 10,
              "anschrift": 255, "bemerkung": 200}
# ISO 3166-1 alpha-2 codes Advoware's `land` accepts in this firm's data (DE first); anything else is refused
# with a clear message rather than sent (docs/adressen-sync.md, "Bad input").
COUNTRIES = frozenset("DE AT CH LI LU NL BE FR IT ES PT PL CZ DK SE NO FI GB IE US CA".split())
_PLZ = {"DE": re.compile(r"^\d{5}$"), "AT": re.compile(r"^\d{4}$"), "CH": re.compile(r"^\d{4}$")}

Content = dict  # field -> str | bool | None, keys FIELDS


def marker(espo_id: str) -> str:
    return f"EspoCRM-ID: {espo_id}"


def marker_of(bemerkung) -> str | None:
    """The EspoCRM id an Advoware `bemerkung` names, if any."""
    match = MARKER_RE.search(bemerkung or "") if isinstance(bemerkung, str) else None
    return match.group(1) if match else None


def text(value) -> str | None:
    """A text field as both sides compare it: stripped, empty -> None."""
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def day(value) -> str | None:
    value = text(value)
    return value[:10] if value else None


def _remark(bemerkung) -> str | None:
    """`bemerkung` without the marker (and the line break around it)."""
    return text(MARKER_RE.sub("", bemerkung)) if isinstance(bemerkung, str) else text(bemerkung)


def active(gueltig_bis: str | None, today: date) -> bool:
    return gueltig_bis is None or gueltig_bis >= today.isoformat()


def from_advoware(address: dict, today: date) -> Content:
    """An Advoware address as content (its position and marker are not content)."""
    out = {name: text(address.get(name)) for name in MATCH_KEY}
    out["bemerkung"] = _remark(address.get("bemerkung"))
    out["gueltigVon"], out["gueltigBis"] = day(address.get("gueltigVon")), day(address.get("gueltigBis"))
    out["isPrimary"] = bool(address.get("standardAnschrift"))
    out["isActive"] = active(out["gueltigBis"], today)
    return out


def from_espocrm(record: dict) -> Content:
    out = {name: text(record.get(name)) for name in MATCH_KEY}
    out["bemerkung"] = text(record.get("bemerkung"))
    out["gueltigVon"], out["gueltigBis"] = day(record.get("gueltigVon")), day(record.get("gueltigBis"))
    out["isPrimary"] = bool(record.get("isPrimary"))
    out["isActive"] = record.get("isActive") is not False
    return out


def to_espocrm(content: Content) -> dict:
    """EspoCRM attributes for `content` (dates as they are, empties as null)."""
    return {name: content.get(name) for name in FIELDS}


def to_advoware_post(content: Content, espo_id: str) -> dict:
    """The POST body: all 11 fields, the marker first in `bemerkung` (the only time it can be written)."""
    remark = content.get("bemerkung")
    body = {name: content.get(name) for name in MATCH_KEY}
    body["bemerkung"] = marker(espo_id) + (f"\n{remark}" if remark else "")
    body["standardAnschrift"] = bool(content.get("isPrimary"))
    body["gueltigVon"], body["gueltigBis"] = content.get("gueltigVon"), content.get("gueltigBis")
    return body


def to_advoware_put(content: Content) -> dict:
    return {name: content.get(name) for name in WRITABLE}


def match_key(content: Content) -> tuple:
    """What makes two addresses "the same" for the initial matching: the address lines, case-folded."""
    return tuple((content.get(name) or "").casefold() for name in MATCH_KEY)


def field_problems(content: Content) -> list[tuple[str, str]]:
    """Why this content cannot go to Advoware, as (field, one clear sentence); `*` is the whole address."""
    found = []
    for name, limit in MAX_LENGTH.items():
        value = content.get(name)
        if value and len(value) > limit:
            found.append((name, f"{LABELS[name]} is {len(value)} characters long; Advoware takes at most {limit}"))
    land = content.get("land")
    if land and land.upper() not in COUNTRIES:
        found.append(("land", f"Land '{land[:20]}' is not a known country code (use e.g. DE, AT, CH)"))
    pattern = _PLZ.get((land or "DE").upper())
    for name in ("plz", "postfachPlz"):
        value = content.get(name)
        if value and pattern is not None and not pattern.match(value):
            found.append((name, f"{LABELS[name]} '{value[:20]}' is not a valid postcode for {(land or 'DE').upper()}"))
    if not any(content.get(name) for name in ("strasse", "ort", "postfach", "anschrift")):
        found.append(("*", "the address is empty (no Straße, Ort, Postfach or Anschrift)"))
    return found


def problems(content: Content) -> list[str]:
    """Why this content cannot go to Advoware (empty when it can), one clear sentence each."""
    return [message for _, message in field_problems(content)]


def instruction(betnr: int, index: int | None, name: str, value) -> str:
    """The exact manual instruction for one field a person must set in Advoware."""
    where = f"in Advoware, party {betnr}, address {index}" if index else f"in Advoware, party {betnr}"
    if name == "isPrimary":
        return f"{where}: make it the main address (Standardanschrift)"
    if name == "isActive":
        return f"{where}: set Gültig bis to a past date (the address is no longer in use)"
    if value in (None, ""):
        return f"{where}: clear {LABELS[name]}"
    return f"{where}: set {LABELS[name]} to {value}"
