"""EspoCRM's form of a phone number (`phoneNumberInternational`), and reading it back as the value we know.

A real EspoCRM (new installs: `phoneNumberInternational` on) stores every number
in E.164 (`+49 221 987654` -> `+49221987654`) and refuses one without a country
code (`0221 987654` -> 400). Advoware keeps what its users typed. So:

- `render_phones` turns the values the sync writes into EspoCRM's form (German
  numbers by default: `0221 987654` -> `+49221987654`), and names what cannot be
  rendered (too short, letters) instead of letting one number fail the whole write;
- `recognise_phones` reads EspoCRM's items back: an item holding exactly the E.164
  form of a value the sync knows (the status of the last sync, Advoware's entries)
  *is* that value, so a rendering never looks like a user's edit and never rewrites
  Advoware's formatting. A number a user typed in EspoCRM stays as EspoCRM holds it.

Pure; `phonenumbers` (libphonenumber) does the parsing, as EspoCRM's own
brick/phonenumber does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import phonenumbers

DEFAULT_REGION = "DE"


def e164(value: str, region: str = DEFAULT_REGION) -> str | None:
    """`value` in E.164 (a number without country code is read as `region`'s), or None when it is not a
    possible number."""
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def recognise_phones(items: Iterable[Mapping], known: Iterable[str]) -> list[dict]:
    """EspoCRM's `phoneNumberData` with every item that holds the E.164 form of a known value given that
    value back (first known value wins; an item already equal to a known value is left alone)."""
    known = [v for v in known if isinstance(v, str) and v.strip()]
    exact = set(known)
    by_form: dict[str, str] = {}
    for value in known:
        form = e164(value)
        if form is not None and form != value:
            by_form.setdefault(form, value)
    out = []
    for item in items or ():
        value = item.get("phoneNumber")
        if isinstance(value, str) and value not in exact and value in by_form:
            item = {**item, "phoneNumber": by_form[value]}
        out.append(dict(item))
    return out


@dataclass(frozen=True)
class Rendered:
    phone_number_data: list[dict]
    refused: list[str]          # the EspoCRM types of the numbers that have no E.164 form


def render_phones(items: Iterable[Mapping]) -> Rendered:
    """The `phoneNumberData` to write to an EspoCRM with `phoneNumberInternational`: values in E.164;
    the types of the values that have none (EspoCRM would refuse the whole write) listed apart."""
    out, refused = [], []
    for item in items or ():
        form = e164(str(item.get("phoneNumber") or ""))
        if form is None:
            refused.append(str(item.get("type") or "phone"))
            continue
        out.append({**item, "phoneNumber": form})
    return Rendered(out, refused)
