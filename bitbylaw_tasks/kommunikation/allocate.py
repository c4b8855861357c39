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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .actions import AdvowareCreate, AdvowareUpdate, EspoEmail, EspoPhone, PendingStatusEntry, Plan
from .kinds import EMAIL, PHONE, KommKz, comparison_key
from .markers import build_slot_bemerkung, build_sync_bemerkung
from .status import StatusEntry
from .views import AdvoView, EspoItem

if TYPE_CHECKING:  # pragma: no cover
    from .plan import _Planner

__all__ = ["Row", "finish_plan"]


@dataclass(eq=False)
class Row:
    """One value as it should be after the sync, on each side and in the status."""

    array: str
    kind: KommKz  # kind of the Advoware entry that carries it
    # EspoCRM side
    espo: EspoItem | None = None  # the item it is now (None: new in EspoCRM)
    in_espo: bool = True
    espo_value: str = ""
    espo_type: str | None = None
    # Advoware side
    advo: AdvoView | None = None  # the entry that carries it
    origin: AdvoView | None = None  # the entry it came from (kept when `advo` is given up)
    need: bool = False  # wants a slot or a create
    preferred: AdvoView | None = None  # its own blank entry, for a restore
    advo_value: str | None = None  # tlf to write; None keeps tlf
    follow_primary: bool = True  # write online from the chosen primary
    # status
    status_value: str | None = None  # None: not in the new status
    status_kind: KommKz | None = None
    keep_status: StatusEntry | None = None  # pending: keep this status entry as it is
    # primary inputs (None: that side has no such entry)
    s_primary: bool | None = None
    a_online: bool | None = None
    e_primary: bool | None = None
    # bookkeeping
    candidate: bool = False  # value changed in Advoware onto a new key (see release_collisions)
    restore_note: str | None = None
    primary: bool = False
    status_primary: bool = False
    slot: AdvoView | None = None
    ref: int | None = None
    notes: list = field(default_factory=list)

    def keys(self) -> list[tuple[str, str]]:
        keys = []
        if self.in_espo:
            keys.append(comparison_key(self.array, self.espo_value))
        if self.advo is not None:
            keys.append(comparison_key(self.array, self.advo_value if self.advo_value is not None else self.advo.tlf))
        return keys


def finish_plan(planner: "_Planner") -> Plan:
    position = {view.id: index for index, view in enumerate(planner.views)}
    rows = sorted(planner.rows, key=lambda row: _espo_order(row, position))
    _allocate(planner, rows, position)
    for array in (EMAIL, PHONE):
        _choose_primary(planner, [r for r in rows if r.in_espo and r.array == array], array)
    untouched = planner.mode == "espo_wins"  # EspoCRM is the truth: never written
    emails = tuple(_render(r, untouched) for r in rows if r.in_espo and r.array == EMAIL)
    phones = tuple(_render(r, untouched) for r in rows if r.in_espo and r.array == PHONE)
    espo_changed = planner.mode != "espo_wins" and (
        _espo_shape(planner.raw_emails, planner.raw_phones) != _plan_shape(emails, phones)
    )
    status_entries = tuple(e for e in (_status_entry(r) for r in rows) if e is not None)
    old = planner.status.entries if planner.status is not None else None
    return Plan(
        actions=_advoware_actions(planner, rows, position),
        espo_changed=espo_changed,
        emails=emails,
        phones=phones,
        status_entries=status_entries,
        status_changed=old is None or status_entries != tuple(old),
        notes=tuple(planner.notes) + tuple(r.restore_note for r in rows if r.restore_note and r.need),
        changes=tuple(planner.changes),
    )


def _espo_order(row: Row, position: dict[int, int]) -> tuple:
    if row.espo is not None:
        return (0, row.espo.index, 0)
    if row.in_espo:
        return (1, position.get(row.advo.id, 0) if row.advo else 0, 0)
    return (2, position.get(row.advo.id, 0) if row.advo else 0, 0)


def _allocate(planner: "_Planner", rows: list[Row], position: dict[int, int]) -> None:
    """Give each row that needs an Advoware entry its own blank entry, a slot of its kind, or a create."""
    needs = [row for row in rows if row.need]
    if not needs:
        return
    bound = {row.advo.id for row in rows if row.advo is not None}
    used: set[int] = set()
    for row in needs:
        own = row.preferred
        if own is not None and own.id not in bound and own.id not in used:
            row.slot = own
            used.add(own.id)
    blanked = sorted((planner.by_id[i] for i in planner.blanks), key=lambda v: position[v.id])
    existing = [v for v in planner.views if v.reusable_slot and v.id not in planner.blanks and v.id not in bound]
    preferred = {row.preferred.id for row in needs if row.preferred is not None}
    candidates = [v for v in blanked + existing if v.id not in preferred]
    next_ref = 0
    for row in needs:
        if row.slot is not None:
            continue
        for view in candidates:
            if view.id not in used and view.kind == row.kind:
                row.slot = view
                used.add(view.id)
                break
        else:
            row.ref = next_ref
            next_ref += 1
    for row in needs:
        if row.slot is not None:
            planner.blanks.pop(row.slot.id, None)
            planner.change("slot_reused", row.kind)


def _choose_primary(planner: "_Planner", rows: list[Row], array: str) -> None:
    """One primary per EspoCRM array; Advoware's `online` follows it.

    EspoCRM's choice wins when EspoCRM changed it since the last sync (or on
    the first sync); else Advoware's when Advoware changed it; else the old
    one stays. Without any, the first entry is primary (EspoCRM's rule).
    """
    if not rows:
        return
    items = [item for item in planner.items if item.array == array]
    espo_primary = next((item for item in items if item.primary), items[0] if items else None)
    status_item = planner.primary_link_item.get(array)
    espo_changed = espo_primary is not status_item
    espo_row = next((r for r in rows if r.espo is not None and r.espo is espo_primary), None)
    status_row = next((r for r in rows if r.s_primary), None)
    turned_on = [r for r in rows if r.a_online and not r.s_primary]
    advo_changed = bool(turned_on) or any(r.s_primary and r.a_online is False for r in rows)
    advo_choice = turned_on[0] if turned_on else (status_row if status_row and status_row.a_online else None)
    applied = True
    if planner.mode == "espo_wins":
        choice = espo_row
    elif planner.mode == "both":
        choice = espo_row if espo_changed else (advo_choice if advo_changed else status_row)
    else:
        applied = advo_changed and not espo_changed
        choice = advo_choice if applied else espo_row
    if choice is None:
        choice = rows[0]
    for row in rows:
        row.primary = row is choice
        pending = planner.mode == "to_espocrm" and espo_changed and not applied
        row.status_primary = bool(row.s_primary) if pending else row.primary
    if planner.mode == "both" and status_row is not None and choice is not status_row:
        planner.change("primary_from_espocrm" if espo_changed else "primary_from_advoware")


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


def _status_entry(row: Row) -> StatusEntry | PendingStatusEntry | None:
    if row.keep_status is not None:
        return row.keep_status
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
