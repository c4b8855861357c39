"""Values that moved between Advoware entries: the planner's reconciliation so nothing is held twice.

People move values: an Advoware user types a number into another entry
(perhaps onto a value EspoCRM already has), or blanks one entry and re-uses
its value elsewhere. These phases run after the per-link decisions
(links.py) and before the unlinked values are matched (unlinked.py), and
bind each value to the Advoware entry that already holds it instead of
writing it twice (plan.PHASES).
"""

from __future__ import annotations

from collections import Counter

from .actions import BlankReason, Variant
from .kinds import comparison_key, kinds_compatible
from .status import StatusEntry
from .worksheet import ESPO_WINS, TO_ESPOCRM, Row, Worksheet, type_for

__all__ = ["release_collisions", "prefer_holders", "adopt_for_needs", "release_taken_pending"]


def release_collisions(sheet: Worksheet) -> Worksheet:
    """An Advoware value change onto a value EspoCRM already has is a match, not a second entry."""
    candidates = [row for row in sheet.rows if row.candidate]
    occupied = Counter(item.key for item in sheet.free)
    for row in sheet.rows:
        if not row.candidate:
            occupied.update(row.keys())
    for row in candidates:
        key = comparison_key(row.array, row.espo_value)
        if not occupied[key]:
            occupied.update(row.keys())
            continue
        sheet.rows.remove(row)
        sheet.blanks.pop(row.origin.id, None)
        sheet.pool.append(row.origin)
        sheet.change(Variant.Var6_onto_existing, row.kind)
    sheet.sort_pool()
    return sheet


def prefer_holders(sheet: Worksheet) -> Worksheet:
    """A value the sync would write into an entry is rather bound to an unlinked entry holding it.

    (A value moved to another entry in Advoware while the old entry is
    reverted or overridden.) The old entry is then unlinked with its own
    value. The holder's kind is taken unless EspoCRM's type rules (it
    changed the type, or EspoCRM wins outright) and does not fit; then the
    holder is blanked. Either way Advoware never holds one value twice.
    Under `to_espocrm` the same holds for the value as last synced of an
    entry whose new Advoware value waits for EspoCRM's pending change: the
    link moves to the holder and the entry's new value is new in Advoware.
    """
    for row in sheet.rows:
        view = row.advo
        wanted = _wanted_value(sheet, row)
        if view is None or wanted is None:
            continue
        key = comparison_key(row.array, wanted)
        holder = next((v for v in sheet.pool if v.key == key), None)
        if view.key == key or holder is None:
            continue
        espo_type_rules = row.espo_type_changed or sheet.mode == ESPO_WINS
        if sheet.mode == TO_ESPOCRM and row.espo_type_changed and not kinds_compatible(holder.kind, row.kind):
            continue  # EspoCRM's pending type change does not fit the holder: the next `both` run decides
        sheet.pool.remove(holder)
        if espo_type_rules and not kinds_compatible(holder.kind, row.kind):
            sheet.blank(holder, BlankReason.moved_value_overridden, variant=Variant.revert_move, note=(
                f"Kommunikation: {holder.tlf!r} was moved to another entry ({holder.kind.name}) in Advoware; "
                f"EspoCRM's type wins, it is removed from that entry."))
            continue
        sheet.pool.append(view)  # its own value is not overridden: it stays, as new in Advoware
        note = sheet.override_notes.pop(view.id, None)
        if note is not None:  # its value was not overridden after all: it stays, as new in Advoware
            sheet.notes.remove(note)
        row.advo = row.origin = holder
        row.kind = row.status_kind = holder.kind
        if not (sheet.mode == TO_ESPOCRM and row.espo_type_changed):
            row.espo_type = type_for(holder.kind, row.espo)
        row.a_online = holder.online
        sheet.change(Variant.moved_in_advoware, holder.kind)
    sheet.sort_pool()
    return sheet


def _wanted_value(sheet: Worksheet, row: Row) -> str | None:
    """The value the row's Advoware entry should hold after this run, when that may differ from what it holds.

    `to_espocrm` writes no values, but a row whose Advoware value changed
    while EspoCRM's change of it is pending still stands for the value as
    last synced: if another entry holds that value now, it was moved there.
    """
    if row.advo_value is not None:
        return row.advo_value
    if sheet.mode == TO_ESPOCRM and row.keep_status is None and row.status_value is not None:
        return row.status_value
    return None


def adopt_for_needs(sheet: Worksheet) -> Worksheet:
    """A value to restore or re-kind that Advoware already holds unlinked is taken, not created.

    The entry keeps its kind unless EspoCRM changed the type (or EspoCRM wins
    outright) and the kinds do not fit; then EspoCRM's kind wins and the
    entry is blanked, so that the value is never held twice in Advoware.
    """
    for row in sheet.rows:
        if row.pending_restore:
            _adopt_pending(sheet, row)
        if not row.need:
            continue
        key = comparison_key(row.array, row.espo_value)
        view = next((v for v in sheet.pool if v.key == key), None)
        if view is None:
            continue
        sheet.pool.remove(view)
        if (row.espo_type_changed or sheet.mode == ESPO_WINS) and not kinds_compatible(view.kind, row.kind):
            sheet.blank(view, BlankReason.type_change, variant=Variant.Var5_type, kind=row.kind)
            continue
        row.advo, row.need, row.kind, row.status_kind = view, False, view.kind, view.kind
        row.advo_value = row.espo_value  # (its restore note is not reported: it no longer needs an entry)
        row.espo_type = type_for(view.kind, row.espo)
        row.a_online = view.online
        sheet.change(Variant.adopted, view.kind)
    return sheet


def _adopt_pending(sheet: Worksheet, row: Row) -> None:
    """`to_espocrm`: a value blanked in Advoware but now held by another entry is linked to that one.

    EspoCRM's pending change stays pending (the status keeps the old value);
    the Advoware entry id and its real kind move in. A type that does not
    fit that kind then shows as EspoCRM's change on the next run.
    """
    link = row.keep_status
    key = comparison_key(row.array, link.value)
    view = next((v for v in sheet.pool if v.key == key), None)
    if view is None:
        return
    sheet.pool.remove(view)
    row.advo = row.origin = view
    row.keep_status = StatusEntry(view.id, link.value, int(view.kind), link.primary)
    row.a_online = view.online
    sheet.change(Variant.moved_in_advoware, view.kind)


def release_taken_pending(sheet: Worksheet) -> Worksheet:
    """`to_espocrm`: one value, one link — a pending link whose value a person moved to another entry follows it.

    The next run finds each link's EspoCRM item by value, so two status
    entries with one value would hand the item to either and take the other
    for deleted in EspoCRM. A link kept pending (EspoCRM's change of it
    waits for a `both` run) whose entry no longer holds the value as last
    synced, while another entry does, no longer stands for that entry:

    - another link's row takes the value into the status (this run shows it
      from there): the pending link is dropped — Advoware's move overrides
      EspoCRM's pending change of the value, as a `both` run would;
    - else an unlinked entry holds it: the link, and EspoCRM's pending
      change with it, moves to that holder (as `prefer_holders` does for a
      link whose change is applied).

    Either way the old entry's own new value is new in Advoware.
    """
    if sheet.mode != TO_ESPOCRM:
        return sheet
    taken = {comparison_key(row.array, row.status_value) for row in sheet.rows
             if row.keep_status is None and row.status_value is not None}
    for row in [r for r in sheet.rows if r.keep_status is not None]:
        link, view = row.keep_status, row.advo
        key = comparison_key(row.array, link.value)
        if view is not None and view.key == key:
            continue
        holder = next((v for v in sheet.pool if v.key == key), None)
        if key in taken:
            if row.in_espo:  # EspoCRM's new value stays shown, as new in EspoCRM (the next run matches it)
                row.keep_status, row.s_primary = None, None
            else:
                sheet.rows.remove(row)
            sheet.change(Variant.moved_in_advoware, link.kommkz)
        elif holder is not None:
            sheet.pool.remove(holder)
            row.advo = row.origin = holder
            row.kind = holder.kind
            row.keep_status = StatusEntry(holder.id, link.value, int(holder.kind), link.primary)
            row.a_online = holder.online
            sheet.change(Variant.moved_in_advoware, holder.kind)
        else:
            continue
        if view is not None and view.live:
            sheet.pool.append(view)  # its own new value: new in Advoware
    sheet.sort_pool()
    return sheet
