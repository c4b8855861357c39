"""Values without a link (all of them on a first sync, new ones later): matched by value, else new on one side.

`pair_unlinked` is the initial-sync rule, applied every run: equal values on
both sides (exactly, then by comparison key) are one entry. What stays
unmatched is new on its side (`new_on_one_side`): Var1 (EspoCRM → an
Advoware entry, allocated later) and Var4 (Advoware → EspoCRM). Pure;
docs/kommunikation-sync.md §7.
"""

from __future__ import annotations

from .actions import BlankReason, Variant
from .kinds import espo_type_for_kind, kind_matches_espo_type
from .markers import SlotMarker, SyncMarker
from .views import AdvoView, EspoItem
from .worksheet import ESPO_WINS, TO_ESPOCRM, Row, Worksheet, type_for

__all__ = ["pair_unlinked", "new_on_one_side"]


def pair_unlinked(sheet: Worksheet) -> Worksheet:
    """The initial-sync rule, applied every run: equal values on both sides are one entry."""
    for exact in (True, False):
        for item in list(sheet.free):
            for view in sheet.pool:
                if view.array == item.array and (view.tlf == item.value if exact else view.key == item.key):
                    sheet.free.remove(item)
                    sheet.pool.remove(view)
                    _match(sheet, item, view)
                    break
    return sheet


def _match(sheet: Worksheet, item: EspoItem, view: AdvoView) -> None:
    """Link an unlinked value both sides hold: the Advoware entry's kind when known, else EspoCRM's type."""
    known = view.kind_reported or isinstance(view.marker, (SyncMarker, SlotMarker))
    kind = view.kind if known else item.kind
    row = Row(array=item.array, kind=kind, espo=item, advo=view, origin=view,
              a_online=view.online)
    if sheet.mode == ESPO_WINS and known and not kind_matches_espo_type(view.kind, item.type):
        kind = row.kind = item.kind
        row.advo, row.need = None, True
        sheet.blank(view, BlankReason.type_change)
    if sheet.mode == TO_ESPOCRM:
        row.espo_value, row.status_value, row.advo_value = item.value, view.tlf, None
        row.follow_primary = False
    else:
        row.espo_value = row.status_value = row.advo_value = item.value
    row.status_kind = kind
    row.espo_type = type_for(kind, item)
    sheet.rows.append(row)
    sheet.change(Variant.match, kind)


def new_on_one_side(sheet: Worksheet) -> Worksheet:
    """What stays unmatched: Var4 for an Advoware value (unless a person entered it twice), Var1 for EspoCRM's."""
    occupied: set[tuple[str, str]] = set()
    for row in sheet.rows:
        occupied.update(row.keys())
    for view in sheet.pool:
        if view.key in occupied and sheet.mode != ESPO_WINS:
            sheet.change(Variant.duplicate_in_advoware, view.kind)  # a person entered it twice: left alone
            continue
        occupied.add(view.key)
        if sheet.mode == ESPO_WINS:
            sheet.blank(view, BlankReason.Var4_reverted, variant=Variant.revert_Var4, note=(
                f"Kommunikation: {view.tlf!r} ({view.kind.name}) existed only in Advoware and was removed "
                f"(EspoCRM wins by operator request)."))
            continue
        sheet.rows.append(Row(array=view.array, kind=view.kind, advo=view, origin=view, espo_value=view.tlf,
                              espo_type=espo_type_for_kind(view.kind), advo_value=view.tlf,
                              follow_primary=sheet.mode != TO_ESPOCRM, status_value=view.tlf,
                              status_kind=view.kind, a_online=view.online))
        sheet.change(Variant.Var4, view.kind)
    for item in sheet.free:
        if sheet.mode == TO_ESPOCRM:
            sheet.rows.append(Row(array=item.array, kind=item.kind, espo=item, espo_value=item.value,
                                  espo_type=item.type, follow_primary=False))
            sheet.change(Variant.pending_espocrm, item.kind)
            continue
        sheet.rows.append(Row(array=item.array, kind=item.kind, espo=item, espo_value=item.value,
                              espo_type=type_for(item.kind, item), need=True, status_value=item.value,
                              status_kind=item.kind))
        sheet.change(Variant.Var1, item.kind)
    return sheet
