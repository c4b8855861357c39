"""Markers in an Advoware Kommunikation's `bemerkung`: build and parse, keeping the user's text.

A synced entry carries `[ESPOCRM:{base64(value)}:{kommKz}] {user text}` (the
value as last synced and its kind, SPEC §5.1); an empty slot carries
`[ESPOCRM-SLOT:{kommKz}] {user text}`. Anything that is not exactly such a
marker at the start (malformed base64, a kommKz outside 1..12, foreign
brackets) is user text and is kept verbatim. Parsing never raises.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

__all__ = [
    "SyncMarker",
    "SlotMarker",
    "Bemerkung",
    "parse_bemerkung",
    "build_sync_bemerkung",
    "build_slot_bemerkung",
    "encode_value",
    "decode_value",
]

# Leading whitespace before a marker is tolerated (and dropped); nothing else is.
_SYNC = re.compile(r"\A\s*\[ESPOCRM:([A-Za-z0-9+/]*={0,2}):([0-9]{1,2})\]")
_SLOT = re.compile(r"\A\s*\[ESPOCRM-SLOT:([0-9]{1,2})\]")


@dataclass(frozen=True)
class SyncMarker:
    """The value and kind an entry had when it was last synced."""

    value: str
    kommkz: int


@dataclass(frozen=True)
class SlotMarker:
    """An entry blanked by the sync (Advoware forbids DELETE), reusable for its kind."""

    kommkz: int


@dataclass(frozen=True)
class Bemerkung:
    """A parsed `bemerkung`: the marker (if any) and the user's own text."""

    marker: SyncMarker | SlotMarker | None
    user_text: str


def encode_value(value: str) -> str:
    """Standard base64 of the UTF-8 value (the marker's middle part)."""
    return base64.b64encode(value.encode("utf-8")).decode("ascii")


def decode_value(encoded: str) -> str | None:
    """The value from a marker's base64, or None if it is not valid base64 of UTF-8."""
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def _valid_kind(digits: str) -> int | None:
    kind = int(digits)
    return kind if 1 <= kind <= 12 else None


def _text_after(bemerkung: str, end: int) -> str:
    rest = bemerkung[end:]
    return rest[1:] if rest.startswith(" ") else rest


def parse_bemerkung(bemerkung: str | None) -> Bemerkung:
    """Split a `bemerkung` into marker and user text; never raises, never drops user text."""
    if not isinstance(bemerkung, str):
        return Bemerkung(None, "")
    match = _SYNC.match(bemerkung)
    if match:
        value = decode_value(match.group(1))
        kind = _valid_kind(match.group(2))
        if value is not None and kind is not None:
            return Bemerkung(SyncMarker(value, kind), _text_after(bemerkung, match.end()))
        return Bemerkung(None, bemerkung)
    match = _SLOT.match(bemerkung)
    if match:
        kind = _valid_kind(match.group(1))
        if kind is not None:
            return Bemerkung(SlotMarker(kind), _text_after(bemerkung, match.end()))
    return Bemerkung(None, bemerkung)


def _join(marker: str, user_text: str) -> str:
    return f"{marker} {user_text}" if user_text else marker


def build_sync_bemerkung(value: str, kommkz: int, user_text: str = "") -> str:
    """`[ESPOCRM:{base64(value)}:{kommKz}] {user text}` (no trailing space without text)."""
    if _valid_kind(str(int(kommkz))) is None:
        raise ValueError(f"kommKz out of range: {kommkz}")
    return _join(f"[ESPOCRM:{encode_value(value)}:{int(kommkz)}]", user_text or "")


def build_slot_bemerkung(kommkz: int, user_text: str = "") -> str:
    """`[ESPOCRM-SLOT:{kommKz}] {user text}` for an entry the sync has blanked."""
    if _valid_kind(str(int(kommkz))) is None:
        raise ValueError(f"kommKz out of range: {kommkz}")
    return _join(f"[ESPOCRM-SLOT:{int(kommkz)}]", user_text or "")
