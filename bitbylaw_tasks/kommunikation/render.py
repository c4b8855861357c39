"""Render the worksheet the phases filled into the frozen `Plan`: Advoware actions, EspoCRM arrays, status, notes.

The last step of `plan.plan_kommunikation_sync`, after every phase of
plan.PHASES: it decides nothing — each row's value and type (the `Row`),
its entry and primary flags (its `Allocation`, from allocate.py) are
already decided — and only writes them out, in the order the executor runs
them (data updates and slot fills, creates, then blanks).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from .actions import AdvowareWrite, EspoEmail, EspoPhone, PendingStatusEntry, Plan
from .kinds import EMAIL, PHONE
from .markers import build_slot_bemerkung, build_sync_bemerkung
from .status import StatusEntry
from .worksheet import ESPO_WINS, Allocation, Row, Worksheet

__all__ = ["render"]


def render(sheet: Worksheet) -> Plan:
    """The plan the worksheet describes (its rows are in EspoCRM's order: allocate.allocate_entries)."""
    rows, inputs = list(zip(sheet.rows, sheet.allocations, strict=True)), sheet.inputs
    untouched = sheet.mode == ESPO_WINS  # EspoCRM is the truth: never written
    emails = tuple(_render(r, a, untouched) for r, a in rows if r.in_espo and r.array == EMAIL)
    phones = tuple(_render(r, a, untouched) for r, a in rows if r.in_espo and r.array == PHONE)
    espo_changed = sheet.mode != ESPO_WINS and (
        _espo_shape(inputs.raw_emails, inputs.raw_phones) != _plan_shape(emails, phones)
    )
    chosen = {r.array for r, a in rows if a.status_primary}
    status_entries = tuple(e for e in (_status_entry(r, a, r.array in chosen) for r, a in rows) if e is not None)
    old = inputs.status.entries if inputs.status is not None else None
    return Plan(
        actions=_advoware_actions(sheet, rows, inputs.position),
        espo_changed=espo_changed,
        emails=emails,
        phones=phones,
        status_entries=status_entries,
        status_changed=old is None or _status_set(status_entries) != _status_set(old),
        notes=tuple(sheet.notes),
        changes=tuple(sheet.changes),
    )


def _render(row: Row, allocation: Allocation, untouched: bool = False) -> EspoEmail | EspoPhone:
    item = row.espo
    keep = item is not None and untouched
    value = item.value if keep else row.espo_value
    opt_out = item.opt_out if item is not None else False
    invalid = item.invalid if item is not None else False
    if row.array == EMAIL:
        return EspoEmail(value, allocation.primary, opt_out, invalid)
    espo_type = item.type if keep else row.espo_type
    return EspoPhone(value, espo_type, allocation.primary, opt_out, invalid)


def _espo_shape(raw_emails, raw_phones) -> tuple[Counter, Counter]:
    emails = Counter(
        (str(e.get("emailAddress") or "").strip(), bool(e.get("primary")), bool(e.get("optOut")), bool(e.get("invalid")))
        for e in raw_emails
    )
    phones = Counter(
        (str(p.get("phoneNumber") or "").strip(), p.get("type") or None, bool(p.get("primary")),
         bool(p.get("optOut")), bool(p.get("invalid")))
        for p in raw_phones
    )
    return emails, phones


def _plan_shape(emails, phones) -> tuple[Counter, Counter]:
    return (
        Counter((e.emailAddress, e.primary, e.optOut, e.invalid) for e in emails),
        Counter((p.phoneNumber, p.type or None, p.primary, p.optOut, p.invalid) for p in phones),
    )


def _status_set(entries) -> Counter:
    """Status entries compared without their order (EspoCRM may reorder its arrays)."""
    return Counter(entries)


def _status_entry(row: Row, allocation: Allocation, array_has_primary: bool) -> StatusEntry | PendingStatusEntry | None:
    """The row's entry in the new status; one primary per array, the one `_choose_primary` decided.

    A row kept pending (`keep_status`) keeps its value and kind, but not a
    primary flag that the choice of this run gave to another row. A value
    that fills an existing entry has that entry's kind (kommKz is read-only).
    """
    status_primary = allocation.status_primary
    if row.keep_status is not None:
        keep = row.keep_status
        primary = status_primary if row.in_espo or status_primary else keep.primary and not array_has_primary
        return keep if primary == keep.primary else replace(keep, primary=primary)
    if row.status_value is None:
        return None
    kind = int(allocation.slot.kind if allocation.slot is not None else row.status_kind)
    if allocation.ref is not None:
        return PendingStatusEntry(allocation.ref, row.status_value, kind, status_primary)
    carrier = row.advo or allocation.slot
    if carrier is None:
        return None
    return StatusEntry(carrier.id, row.status_value, kind, status_primary)


def _advoware_actions(sheet: Worksheet, rows: list[tuple[Row, Allocation]],
                      position: dict[int, int]) -> tuple[AdvowareWrite, ...]:
    """Data updates and slot fills in Advoware's order, then creates, then blanks (data before removal)."""
    updates: list[tuple[int, AdvowareWrite]] = []
    creates: list[AdvowareWrite] = []
    for row, allocation in rows:
        if row.advo is not None:
            view = row.advo
            tlf = row.advo_value if row.advo_value is not None else view.tlf
            online = allocation.primary if allocation.follow_primary else view.online
            marker = row.keep_status or StatusEntry(view.id, row.status_value, int(row.status_kind), False)
            bemerkung = build_sync_bemerkung(marker.value, marker.kommkz, view.user_text)
            if (tlf, bemerkung, online) != (view.tlf, view.bemerkung, view.online):
                reason = "value" if tlf != view.tlf else ("marker" if bemerkung != view.bemerkung else "primary")
                updates.append((position[view.id], AdvowareWrite(int(view.kind), tlf, bemerkung, online, reason,
                                                                 id=view.id)))
        elif allocation.slot is not None:
            view = allocation.slot
            bemerkung = build_sync_bemerkung(row.espo_value, view.kind, view.user_text)
            updates.append((position[view.id], AdvowareWrite(int(view.kind), row.espo_value, bemerkung,
                                                             allocation.primary, "fill slot", id=view.id)))
        elif allocation.ref is not None:
            creates.append(AdvowareWrite(int(row.kind), row.espo_value, build_sync_bemerkung(row.espo_value, row.kind),
                                         allocation.primary, "new", ref=allocation.ref))
    blanks: list[AdvowareWrite] = []
    for entry_id in sorted(sheet.blanks, key=lambda i: position[i]):
        view = sheet.inputs.by_id[entry_id]
        bemerkung = build_slot_bemerkung(view.kind, view.user_text)
        if (view.tlf, view.bemerkung, view.online) != ("", bemerkung, False):
            blanks.append(AdvowareWrite(int(view.kind), "", bemerkung, False, sheet.blanks[entry_id], id=view.id))
    return tuple(u for _, u in sorted(updates, key=lambda pair: pair[0])) + tuple(creates) + tuple(blanks)
