"""Read-only views of the raw Kommunikation data of both sides, as the sync needs to see them.

Turns an Advoware entry dict and EspoCRM's `emailAddressData` /
`phoneNumberData` items into small typed values: trimmed value, effective
kind, parsed marker, comparison key. Pure; never raises on odd input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .kinds import (
    EMAIL,
    EMAIL_KINDS,
    PHONE,
    SYNCED_KINDS,
    KommKz,
    array_for_kind,
    as_kommkz,
    comparison_key,
    detect_kommkz,
    is_plausible_email,
    kind_for_espo_type,
    kind_from_shape,
)
from .markers import Bemerkung, SlotMarker, SyncMarker, parse_bemerkung

__all__ = ["AdvoView", "EspoItem", "advoware_views", "espo_items", "entry_kind"]


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def entry_kind(entry: Mapping[str, Any], parsed: Bemerkung, status_kind: int | None = None) -> KommKz | None:
    """The kind of an Advoware entry: what Advoware reports, else what we remember, else its shape.

    A non-zero kommKz from Advoware is a fact (it is read-only and never
    changes). Only when GET reports 0 do we fall back to the marker, then to
    the status of the last sync, then to the value's shape (SPEC §5.4).
    Returns None for an empty entry whose kind nobody knows.
    """
    reported = as_kommkz(entry.get("kommKz"))
    if reported is not None:
        return reported
    tlf = _text(entry.get("tlf"))
    remembered = KommKz(parsed.marker.kommkz) if parsed.marker is not None else as_kommkz(status_kind)
    if remembered is not None:
        # A remembered kind that contradicts the value (an e-mail kind without '@', a phone kind
        # with one) is stale: never let kommKz 0 turn an e-mail into a phone or back.
        if not tlf or ("@" in tlf) == (remembered in EMAIL_KINDS):
            return remembered
    if not tlf:
        return None
    return kind_from_shape(tlf) or KommKz.TelGesch


@dataclass(frozen=True)
class AdvoView:
    """One Advoware Kommunikation entry as the sync sees it."""

    id: int
    row_id: str
    tlf: str
    online: bool
    kind: KommKz | None
    kind_reported: bool
    marker: SyncMarker | SlotMarker | None
    user_text: str
    bemerkung: str

    @property
    def synced_kind(self) -> bool:
        return self.kind is not None and self.kind in SYNCED_KINDS

    @property
    def live(self) -> bool:
        """Holds a value of a kind that is shown in EspoCRM (an e-mail kind: a valid address)."""
        if not self.tlf or not self.synced_kind:
            return False
        return self.kind not in EMAIL_KINDS or is_plausible_email(self.tlf)

    @property
    def reusable_slot(self) -> bool:
        """Empty, of a known synced kind, and marked by us (slot or stale sync marker)."""
        return not self.tlf and self.synced_kind and self.marker is not None

    @property
    def array(self) -> str | None:
        return array_for_kind(self.kind) if self.synced_kind else None

    @property
    def key(self) -> tuple[str, str] | None:
        return comparison_key(self.array, self.tlf) if self.live else None


def advoware_views(entries: Iterable[Mapping[str, Any]], status_kinds: Mapping[int, int] | None = None) -> list[AdvoView]:
    """Views of Advoware entries in their given order; entries without an integer id are skipped."""
    status_kinds = status_kinds or {}
    views = []
    seen: set[int] = set()
    for entry in entries:
        entry_id = entry.get("id")
        if isinstance(entry_id, bool) or not isinstance(entry_id, int) or entry_id in seen:
            continue
        seen.add(entry_id)
        parsed = parse_bemerkung(entry.get("bemerkung"))
        views.append(
            AdvoView(
                id=entry_id,
                row_id=str(entry.get("rowId") or ""),
                tlf=_text(entry.get("tlf")),
                online=bool(entry.get("online")),
                kind=entry_kind(entry, parsed, status_kinds.get(entry_id)),
                kind_reported=as_kommkz(entry.get("kommKz")) is not None,
                marker=parsed.marker,
                user_text=parsed.user_text,
                bemerkung=entry.get("bemerkung") if isinstance(entry.get("bemerkung"), str) else "",
            )
        )
    return views


@dataclass(frozen=True)
class EspoItem:
    """One item of EspoCRM's `emailAddressData` or `phoneNumberData`."""

    array: str
    index: int
    value: str
    type: str | None
    primary: bool
    opt_out: bool
    invalid: bool

    @property
    def key(self) -> tuple[str, str]:
        return comparison_key(self.array, self.value)

    @property
    def kind(self) -> KommKz:
        """Stage 2 (type) then 3 and 4 (shape, default) of SPEC §5.4."""
        if self.array == EMAIL:
            return KommKz.MailGesch
        by_type = kind_for_espo_type(self.type)
        if by_type is not None:
            return by_type
        shaped = detect_kommkz(self.value)
        return shaped if array_for_kind(shaped) == PHONE else KommKz.TelGesch


def espo_items(emails: Iterable[Mapping[str, Any]], phones: Iterable[Mapping[str, Any]]) -> list[EspoItem]:
    """Items of both arrays (e-mails first), skipping empty values and later duplicates by key."""
    items: list[EspoItem] = []
    seen: set[tuple[str, str]] = set()
    for array, data, field in ((EMAIL, emails, "emailAddress"), (PHONE, phones, "phoneNumber")):
        for index, raw in enumerate(data or ()):
            value = _text(raw.get(field))
            if not value:
                continue
            item = EspoItem(
                array=array,
                index=index,
                value=value,
                type=(raw.get("type") or None) if array == PHONE else None,
                primary=bool(raw.get("primary")),
                opt_out=bool(raw.get("optOut")),
                invalid=bool(raw.get("invalid")),
            )
            if item.key in seen:
                continue
            seen.add(item.key)
            items.append(item)
    return items
