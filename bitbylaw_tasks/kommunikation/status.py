"""The per-entity Kommunikation status (entries as last synced) and the Advoware change hash.

The status is what makes per-entry decisions possible (SPEC §5.2): for every
linked pair it remembers the Advoware entry id, the value, the kind and the
primary flag as of the last sync. It is stored as compact JSON in the
EspoCRM text field `kommunikationStatus`, beside `kommunikationHash`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .kinds import as_kommkz
from .views import advoware_views

__all__ = [
    "STATUS_FIELD",
    "HASH_FIELD",
    "STATUS_FORMAT_VERSION",
    "MAX_STATUS_BYTES",
    "StatusEntry",
    "KommStatus",
    "StatusFormatError",
    "kommunikation_hash",
]

STATUS_FIELD = "kommunikationStatus"
HASH_FIELD = "kommunikationHash"
STATUS_FORMAT_VERSION = 1
#: Stays well inside a MySQL TEXT column (65,535 bytes), EspoCRM's storage for `text` fields.
MAX_STATUS_BYTES = 60_000


class StatusFormatError(ValueError):
    """A stored status that cannot be read; the caller treats it as missing (initial sync)."""


@dataclass(frozen=True)
class StatusEntry:
    """One linked pair as last synced: the Advoware entry and the value both sides held."""

    advoware_id: int
    value: str
    kommkz: int
    primary: bool


@dataclass(frozen=True)
class KommStatus:
    """The set of entries of one Beteiligter as last synced, in EspoCRM's order."""

    entries: tuple[StatusEntry, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))

    def __len__(self) -> int:
        return len(self.entries)

    def to_json(self) -> str:
        """Compact JSON: `{"v":1,"e":[[id,value,kommKz,primary 0/1],…]}`."""
        text = json.dumps(
            {
                "v": STATUS_FORMAT_VERSION,
                "e": [[e.advoware_id, e.value, int(e.kommkz), int(e.primary)] for e in self.entries],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        if len(text.encode("utf-8")) > MAX_STATUS_BYTES:
            raise ValueError(f"Kommunikation status too large ({len(self.entries)} entries)")
        return text

    @classmethod
    def from_json(cls, text: str | None) -> "KommStatus | None":
        """The status stored in EspoCRM; None when nothing is stored (empty or null field).

        Raises StatusFormatError for text that is not a status of a known version.
        """
        if text is None or not str(text).strip():
            return None
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise StatusFormatError("Kommunikation status is not JSON") from exc
        if not isinstance(data, dict) or data.get("v") != STATUS_FORMAT_VERSION:
            raise StatusFormatError("unknown Kommunikation status version")
        rows = data.get("e")
        if not isinstance(rows, list):
            raise StatusFormatError("Kommunikation status has no entry list")
        return cls(tuple(_entry_from_row(row) for row in rows))


def _entry_from_row(row: Any) -> StatusEntry:
    if not (isinstance(row, list) and len(row) == 4):
        raise StatusFormatError("malformed Kommunikation status entry")
    entry_id, value, kind, primary = row
    if isinstance(entry_id, bool) or not isinstance(entry_id, int):
        raise StatusFormatError("Kommunikation status entry id is not an integer")
    if not isinstance(value, str) or as_kommkz(kind) is None or primary not in (0, 1, True, False):
        raise StatusFormatError("malformed Kommunikation status entry")
    return StatusEntry(entry_id, value, int(kind), bool(primary))


def kommunikation_hash(advoware_entries: Iterable[Mapping[str, Any]]) -> str:
    """First 16 hex chars of the MD5 of the sorted rowIds of the sync-relevant entries (SPEC §5.2).

    Sync-relevant: a value in `tlf` and a kind that is synced to EspoCRM. Empty
    slots and blank entries never change the hash (SPEC §5.5 H3); a value typed
    into a slot makes it an entry again, and so does count.
    """
    row_ids = sorted(
        view.row_id
        for view in advoware_views(advoware_entries)
        if view.live and view.row_id
    )
    return hashlib.md5("".join(row_ids).encode("utf-8")).hexdigest()[:16]
