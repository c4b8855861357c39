"""Entries and primaries: an Advoware entry for every value that needs one, and one primary per array.

The last two phases of planning (plan.PHASES). `allocate_entries` gives
every value that needs an Advoware entry (Var1, a restore, a kind change)
its own entry, the entry of the value it replaced, an entry blanked in the
same run of its kind (so a Var2 and a Var1 of one kind become one PUT), an
older slot of its kind, or a create. `choose_primaries` picks one primary
per EspoCRM array, three-way; Advoware's `online` follows it. Neither
writes a row: the decisions are returned as one frozen `Allocation` per row
(`Worksheet.allocations`), which render.py reads beside the rows. Pure;
docs/kommunikation-sync.md §8, §10.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from .actions import Variant
from .kinds import EMAIL, PHONE
from .lineage import predecessors
from .views import AdvoView
from .worksheet import BOTH, ESPO_WINS, TO_ESPOCRM, Allocation, Row, Worksheet

__all__ = ["allocate_entries", "choose_primaries"]


def _espo_order(row: Row, position: dict[int, int]) -> tuple:
    """E-mails, then phones, each in EspoCRM's order with new ones appended; then Advoware-only rows."""
    advo = position.get(row.advo.id, 0) if row.advo is not None else 0
    if not row.in_espo:
        return (2, 0, advo)
    array = 0 if row.array == EMAIL else 1
    return (array, 0, row.espo.index) if row.espo is not None else (array, 1, advo)


def allocate_entries(sheet: Worksheet) -> Worksheet:
    """Give each row that needs an Advoware entry an entry: its own, a freed one, a slot, or a create.

    In order: the entry a row prefers — a restore its own blank entry, an
    EspoCRM edit the entry of the value it replaced (lineage.bind_edits);
    then an entry blanked in this run of the same kind (a Var2 and a Var1 of
    one kind: one PUT); then an older slot of the same kind; else a create.
    The rows are put into the order EspoCRM shows them (e-mails, then
    phones, new ones appended; then rows only Advoware holds) first: the
    order of allocation and of the rendered plan. The decisions become
    `sheet.allocations` (one `Allocation` per row; the rows are not
    written). A filled entry is no longer blanked; a restore's note counts
    once its value has an entry.
    """
    position = sheet.inputs.position
    sheet.rows.sort(key=lambda row: _espo_order(row, position))
    needs = [row for row in sheet.rows if row.need]
    slots, refs = _entries(sheet, needs, position) if needs else ({}, {})
    for row in needs:
        if row in slots:
            sheet.blanks.pop(slots[row].id, None)
            sheet.change(Variant.slot_reused, slots[row].kind)
    sheet.notes.extend(row.restore_note for row in needs if row.restore_note)
    sheet.allocations = tuple(Allocation(slot=slots.get(row), ref=refs.get(row)) for row in sheet.rows)
    return sheet


def _entries(sheet: Worksheet, needs: list[Row],
             position: dict[int, int]) -> tuple[dict[Row, AdvoView], dict[Row, int]]:
    """The entry of each row in `needs`: an existing one to fill (first map), else a create ref (second)."""
    bound = {row.advo.id for row in sheet.rows if row.advo is not None}
    slots: dict[Row, AdvoView] = {}
    used: set[int] = set()
    for row in needs:
        own = row.preferred
        if own is not None and own.id not in bound and own.id not in used:
            slots[row] = own
            used.add(own.id)
    preferred = {row.preferred.id for row in needs if row.preferred is not None}
    blanked = [v for v in sorted((sheet.inputs.by_id[i] for i in sheet.blanks), key=lambda v: position[v.id])
               if v.id not in preferred]
    existing = [v for v in sheet.inputs.views
                if v.reusable_slot and v.id not in sheet.blanks and v.id not in bound and v.id not in preferred]
    refs: dict[Row, int] = {}
    for row in needs:
        if row in slots:
            continue
        view = next((v for v in blanked + existing if v.kind == row.kind and v.id not in used), None)
        if view is not None:
            slots[row] = view
            used.add(view.id)
        else:
            refs[row] = len(refs)
    return slots, refs


def _pending_carriers(sheet: Worksheet, rows: list[Row]) -> dict[int, Row]:
    """`to_espocrm`: id(row) of an entry whose EspoCRM edit is pending -> the row of EspoCRM's new value for it.

    Only new values without an Advoware entry of their own count (one matched with an unlinked entry
    has its own status entry, and its own primary history).
    """
    shown = [r for r in rows if r.in_espo and r.advo is None]
    lineage = predecessors(sheet, shown)
    by_link = {id(link): row for row in shown if (link := lineage.get(id(row))) is not None}
    return {id(r): by_link[id(r.keep_status)] for r in rows
            if not r.in_espo and r.keep_status is not None and id(r.keep_status) in by_link}


class _Flags(NamedTuple):
    """One row's primary flags, as `choose_primaries` puts them into its `Allocation`."""

    primary: bool
    status_primary: bool
    follow_primary: bool


def choose_primaries(sheet: Worksheet) -> Worksheet:
    """One primary per EspoCRM array (`_choose_primary`): each row's `Allocation` gets its primary flags."""
    carriers = _pending_carriers(sheet, sheet.rows) if sheet.mode == TO_ESPOCRM else {}
    flags: dict[Row, _Flags] = {}
    for array in (EMAIL, PHONE):
        flags.update(_choose_primary(sheet, [r for r in sheet.rows if r.array == array], array, carriers))
    sheet.allocations = tuple(replace(allocation, **flags[row]._asdict())
                              for row, allocation in zip(sheet.rows, sheet.allocations, strict=True))
    return sheet


def _choose_primary(sheet: Worksheet, rows: list[Row], array: str, carriers: dict[int, Row]) -> dict[Row, _Flags]:
    """One primary per EspoCRM array; Advoware's `online` follows it. Returns each row's flags.

    EspoCRM's choice wins when EspoCRM changed it since the last sync (or on
    the first sync); else Advoware's when Advoware changed it; else the old
    one stays. Without any, the first entry is primary (EspoCRM's rule).
    `rows` are all rows of the array; only those shown in EspoCRM can be
    chosen. Under `to_espocrm`, Advoware's choice of an entry whose EspoCRM
    edit is pending is shown on EspoCRM's new value for it (`carriers`, by
    lineage), and the status records the choice on that entry — what the
    next `both` run would choose too. A choice that cannot be applied now
    (EspoCRM moved the primary; Advoware's entry has no new value) leaves
    EspoCRM's primary and the status's as they are: the next `both` run
    decides, knowing who chose what.
    """
    primary = {row: False for row in rows}
    status_primary = {row: False for row in rows}
    follow_primary = {row: row.follow_primary for row in rows}
    shown = [r for r in rows if r.in_espo]
    if not shown:
        return {row: _Flags(primary[row], status_primary[row], follow_primary[row]) for row in rows}
    items = [item for item in sheet.inputs.items if item.array == array]
    espo_primary = next((item for item in items if item.primary), items[0] if items else None)
    status_item = sheet.primary_link_item.get(array)
    espo_row = next((r for r in shown if r.espo is not None and r.espo is espo_primary), None)
    # EspoCRM's choice counts only while the entry it chose still exists (Advoware may have deleted it)
    espo_changed = espo_primary is not status_item and espo_row is not None
    status_row = next((r for r in shown if r.s_primary), None)
    turned_on = [r for r in rows if r.a_online and not r.s_primary]
    advo_changed = bool(turned_on) or any(r.s_primary and r.a_online is False for r in rows)
    advo_choice = turned_on[0] if turned_on else (status_row if status_row and status_row.a_online else None)
    applied = True
    if sheet.mode == ESPO_WINS:
        choice = espo_row
    elif sheet.mode == BOTH:
        choice = espo_row if espo_changed else (advo_choice if advo_changed else status_row)
    else:
        carried = advo_choice if advo_choice is not None and not advo_choice.in_espo else None
        if carried is not None:
            advo_choice = carriers.get(id(carried))
        applied = advo_changed and not espo_changed and (advo_choice is not None or carried is None)
        choice = advo_choice if applied else espo_row
        if applied and carried is not None:
            status_primary[carried] = True  # the entry Advoware chose, as last synced
    pending = sheet.mode == TO_ESPOCRM and not applied and (espo_changed or advo_changed)
    invented = choice is None
    if invented:
        # EspoCRM needs a primary (its rule: the first). When the choice that counts waits for a
        # `both` run, prefer an entry the status knows and record it there as last synced, so that
        # run does not take this placeholder for EspoCRM's choice.
        choice = next((r for r in shown if pending and _has_status(r)), shown[0])
    for row in shown:
        primary[row] = row is choice
        status_primary[row] = primary[row] if not pending or (invented and row is choice) else bool(row.s_primary)
    if sheet.mode == TO_ESPOCRM and not pending:
        # Advoware's own choice (or EspoCRM's first-becomes-primary rule applied to it), made
        # consistent on Advoware's side too, pending entries included: one online entry per array
        for row in rows:
            follow_primary[row] = True
            if not row.in_espo:
                primary[row] = status_primary[row]
    if sheet.mode == BOTH and status_row is not None and choice is not status_row:
        sheet.change(Variant.primary_from_espocrm if espo_changed else Variant.primary_from_advoware)
    return {row: _Flags(primary[row], status_primary[row], follow_primary[row]) for row in rows}


def _has_status(row: Row) -> bool:
    """The row has an entry in the new status (a linked Advoware entry, or a pending one kept)."""
    return row.keep_status is not None or (row.status_value is not None and row.advo is not None)
