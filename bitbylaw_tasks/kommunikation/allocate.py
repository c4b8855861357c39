"""Second half of planning: slots for new values, the primary per array, and the rendered plan.

plan.py decides per entry what each side should hold (a list of `Row`);
this module turns the rows into a `Plan`: it gives every value that needs
an Advoware entry an empty slot of its kind (a slot blanked in the same run
first, so a Var2 and a Var1 of one kind become one PUT) or a create, picks
one primary per EspoCRM array, and renders EspoCRM's arrays, the Advoware
actions and the new status. Pure.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING

from .actions import AdvowareCreate, AdvowareUpdate, EspoEmail, EspoPhone, PendingStatusEntry, Plan, Variant
from .kinds import EMAIL, PHONE
from .lineage import predecessors
from .markers import build_slot_bemerkung, build_sync_bemerkung
from .rows import ESPO_WINS, TO_ESPOCRM, BOTH, Row
from .status import StatusEntry
from .views import AdvoView

if TYPE_CHECKING:  # pragma: no cover
    from .plan import _Planner

__all__ = ["finish_plan"]


def finish_plan(planner: "_Planner") -> Plan:
    position = {view.id: index for index, view in enumerate(planner.views)}
    rows = sorted(planner.rows, key=lambda row: _espo_order(row, position))
    _allocate(planner, rows, position)
    carriers = _pending_carriers(planner, rows) if planner.mode == TO_ESPOCRM else {}
    for array in (EMAIL, PHONE):
        _choose_primary(planner, [r for r in rows if r.array == array], array, carriers)
    untouched = planner.mode == ESPO_WINS  # EspoCRM is the truth: never written
    emails = tuple(_render(r, untouched) for r in rows if r.in_espo and r.array == EMAIL)
    phones = tuple(_render(r, untouched) for r in rows if r.in_espo and r.array == PHONE)
    espo_changed = planner.mode != ESPO_WINS and (
        _espo_shape(planner.raw_emails, planner.raw_phones) != _plan_shape(emails, phones)
    )
    chosen = {r.array for r in rows if r.status_primary}
    status_entries = tuple(e for e in (_status_entry(r, r.array in chosen) for r in rows) if e is not None)
    old = planner.status.entries if planner.status is not None else None
    return Plan(
        actions=_advoware_actions(planner, rows, position),
        espo_changed=espo_changed,
        emails=emails,
        phones=phones,
        status_entries=status_entries,
        status_changed=old is None or _status_set(status_entries) != _status_set(old),
        notes=tuple(planner.notes) + tuple(r.restore_note for r in rows if r.restore_note and r.need),
        changes=tuple(planner.changes),
    )


def _espo_order(row: Row, position: dict[int, int]) -> tuple:
    """E-mails, then phones, each in EspoCRM's order with new ones appended; then Advoware-only rows."""
    advo = position.get(row.advo.id, 0) if row.advo is not None else 0
    if not row.in_espo:
        return (2, 0, advo)
    array = 0 if row.array == EMAIL else 1
    return (array, 0, row.espo.index) if row.espo is not None else (array, 1, advo)


def _allocate(planner: "_Planner", rows: list[Row], position: dict[int, int]) -> None:
    """Give each row that needs an Advoware entry an entry: its own, a freed one, a slot, or a create.

    In order: the entry a row prefers — a restore its own blank entry, an
    EspoCRM edit the entry of the value it replaced (lineage.bind_edits);
    then an entry blanked in this run of the same kind (a Var2 and a Var1 of
    one kind: one PUT); then an older slot of the same kind; else a create.
    Allocation only: what each row is and which notes it makes is decided
    before.
    """
    needs = [row for row in rows if row.need]
    if not needs:
        return
    bound = {row.advo.id for row in rows if row.advo is not None}
    used: set[int] = set()
    for row in needs:
        own = row.preferred
        if own is not None and own.id not in bound and own.id not in used:
            _take(row, own, used)
    preferred = {row.preferred.id for row in needs if row.preferred is not None}
    blanked = [v for v in sorted((planner.by_id[i] for i in planner.blanks), key=lambda v: position[v.id])
               if v.id not in preferred]
    existing = [v for v in planner.views
                if v.reusable_slot and v.id not in planner.blanks and v.id not in bound and v.id not in preferred]
    next_ref = 0
    for row in needs:
        if row.slot is not None:
            continue
        view = next((v for v in blanked + existing if v.kind == row.kind and v.id not in used), None)
        if view is not None:
            _take(row, view, used)
        else:
            row.ref = next_ref
            next_ref += 1
    for row in needs:
        if row.slot is not None:
            planner.blanks.pop(row.slot.id, None)
            planner.change(Variant.slot_reused, row.kind)


def _take(row: Row, view: AdvoView, used: set[int]) -> None:
    row.slot = view
    used.add(view.id)
    row.kind = row.status_kind = view.kind  # the same, or a compatible kind the entry keeps


def _pending_carriers(planner: "_Planner", rows: list[Row]) -> dict[int, Row]:
    """`to_espocrm`: id(row) of an entry whose EspoCRM edit is pending -> the row of EspoCRM's new value for it.

    Only new values without an Advoware entry of their own count (one matched with an unlinked entry
    has its own status entry, and its own primary history).
    """
    shown = [r for r in rows if r.in_espo and r.advo is None]
    lineage = predecessors(planner, shown)
    by_link = {id(link): row for row in shown if (link := lineage.get(id(row))) is not None}
    return {id(r): by_link[id(r.keep_status)] for r in rows
            if not r.in_espo and r.keep_status is not None and id(r.keep_status) in by_link}


def _choose_primary(planner: "_Planner", rows: list[Row], array: str, carriers: dict[int, Row]) -> None:
    """One primary per EspoCRM array; Advoware's `online` follows it.

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
    shown = [r for r in rows if r.in_espo]
    if not shown:
        return
    items = [item for item in planner.items if item.array == array]
    espo_primary = next((item for item in items if item.primary), items[0] if items else None)
    status_item = planner.primary_link_item.get(array)
    espo_row = next((r for r in shown if r.espo is not None and r.espo is espo_primary), None)
    # EspoCRM's choice counts only while the entry it chose still exists (Advoware may have deleted it)
    espo_changed = espo_primary is not status_item and espo_row is not None
    status_row = next((r for r in shown if r.s_primary), None)
    turned_on = [r for r in rows if r.a_online and not r.s_primary]
    advo_changed = bool(turned_on) or any(r.s_primary and r.a_online is False for r in rows)
    advo_choice = turned_on[0] if turned_on else (status_row if status_row and status_row.a_online else None)
    applied = True
    if planner.mode == ESPO_WINS:
        choice = espo_row
    elif planner.mode == BOTH:
        choice = espo_row if espo_changed else (advo_choice if advo_changed else status_row)
    else:
        carried = advo_choice if advo_choice is not None and not advo_choice.in_espo else None
        if carried is not None:
            advo_choice = carriers.get(id(carried))
        applied = advo_changed and not espo_changed and (advo_choice is not None or carried is None)
        choice = advo_choice if applied else espo_row
        if applied and carried is not None:
            carried.status_primary = True  # the entry Advoware chose, as last synced
    pending = planner.mode == TO_ESPOCRM and not applied and (espo_changed or advo_changed)
    invented = choice is None
    if invented:
        # EspoCRM needs a primary (its rule: the first). When the choice that counts waits for a
        # `both` run, prefer an entry the status knows and record it there as last synced, so that
        # run does not take this placeholder for EspoCRM's choice.
        choice = next((r for r in shown if pending and _has_status(r)), shown[0])
    for row in shown:
        row.primary = row is choice
        row.status_primary = row.primary if not pending or (invented and row is choice) else bool(row.s_primary)
    if planner.mode == TO_ESPOCRM and not pending:
        # Advoware's own choice (or EspoCRM's first-becomes-primary rule applied to it), made
        # consistent on Advoware's side too, pending entries included: one online entry per array
        for row in rows:
            row.follow_primary = True
            if not row.in_espo:
                row.primary = row.status_primary
    if planner.mode == BOTH and status_row is not None and choice is not status_row:
        planner.change(Variant.primary_from_espocrm if espo_changed else Variant.primary_from_advoware)


def _has_status(row: Row) -> bool:
    """The row has an entry in the new status (a linked Advoware entry, or a pending one kept)."""
    return row.keep_status is not None or (row.status_value is not None and row.advo is not None)


def _render(row: Row, untouched: bool = False) -> EspoEmail | EspoPhone:
    item = row.espo
    keep = item is not None and untouched
    value = item.value if keep else row.espo_value
    opt_out = item.opt_out if item is not None else False
    invalid = item.invalid if item is not None else False
    if row.array == EMAIL:
        return EspoEmail(value, row.primary, opt_out, invalid)
    espo_type = item.type if keep else row.espo_type
    return EspoPhone(value, espo_type, row.primary, opt_out, invalid)


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


def _status_entry(row: Row, array_has_primary: bool) -> StatusEntry | PendingStatusEntry | None:
    """The row's entry in the new status; one primary per array, the one `_choose_primary` decided.

    A row kept pending (`keep_status`) keeps its value and kind, but not a
    primary flag that the choice of this run gave to another row.
    """
    if row.keep_status is not None:
        keep = row.keep_status
        primary = row.status_primary if row.in_espo or row.status_primary else keep.primary and not array_has_primary
        return keep if primary == keep.primary else replace(keep, primary=primary)
    if row.status_value is None:
        return None
    kind, primary = int(row.status_kind), row.status_primary
    if row.ref is not None:
        return PendingStatusEntry(row.ref, row.status_value, kind, primary)
    carrier = row.advo or row.slot
    if carrier is None:
        return None
    return StatusEntry(carrier.id, row.status_value, kind, primary)


def _advoware_actions(planner: "_Planner", rows: list[Row], position: dict[int, int]) -> tuple:
    updates: list[tuple[int, AdvowareUpdate]] = []
    creates: list[AdvowareCreate] = []
    for row in rows:
        if row.advo is not None:
            view = row.advo
            tlf = row.advo_value if row.advo_value is not None else view.tlf
            online = row.primary if row.follow_primary else view.online
            marker = row.keep_status or StatusEntry(view.id, row.status_value, int(row.status_kind), False)
            bemerkung = build_sync_bemerkung(marker.value, marker.kommkz, view.user_text)
            if (tlf, bemerkung, online) != (view.tlf, view.bemerkung, view.online):
                reason = "value" if tlf != view.tlf else ("marker" if bemerkung != view.bemerkung else "primary")
                updates.append((position[view.id], AdvowareUpdate(view.id, int(view.kind), tlf, bemerkung, online, reason)))
        elif row.slot is not None:
            view = row.slot
            bemerkung = build_sync_bemerkung(row.espo_value, row.kind, view.user_text)
            updates.append((position[view.id], AdvowareUpdate(view.id, int(view.kind), row.espo_value, bemerkung,
                                                              row.primary, "fill slot")))
        elif row.ref is not None:
            creates.append(AdvowareCreate(row.ref, int(row.kind), row.espo_value,
                                          build_sync_bemerkung(row.espo_value, row.kind), row.primary, "new"))
    blanks: list[AdvowareUpdate] = []
    for entry_id in sorted(planner.blanks, key=lambda i: position[i]):
        view = planner.by_id[entry_id]
        bemerkung = build_slot_bemerkung(view.kind, view.user_text)
        if (view.tlf, view.bemerkung, view.online) != ("", bemerkung, False):
            blanks.append(AdvowareUpdate(view.id, int(view.kind), "", bemerkung, False, planner.blanks[entry_id]))
    return tuple(u for _, u in sorted(updates, key=lambda pair: pair[0])) + tuple(creates) + tuple(blanks)
