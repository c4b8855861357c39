"""The per-link decisions of one Kommunikation sync (SPEC §5.2, §5.3): the decision table.

A link is a status entry (the value both sides held at the last sync) ↔ the
Advoware entry by id ↔ the EspoCRM item by value (`claim_items`).
`decide_links` looks at each side of each link — unchanged, changed, gone —
and adds the row the value should be after the sync, in direction `both`:

| Advoware \\ EspoCRM | unchanged      | changed (type, primary, format) | gone                        |
|--------------------|----------------|----------------------------------|-----------------------------|
| unchanged          | nothing        | Var5: update Advoware            | Var2: blank to a slot       |
| changed            | Var6: update   | merge per field, EspoCRM wins    | C3: blank, note             |
|                    | EspoCRM        | where both changed, note         |                             |
| blanked / gone     | Var3: delete   | restore in Advoware, note        | forget                      |
|                    | from EspoCRM   |                                  |                             |

`to_espocrm` applies Advoware's side only and keeps EspoCRM's changes
pending; EspoCRM-wins (`to_advoware`, `force_espo_wins`) reverts Advoware's.
Pure; docs/kommunikation-sync.md §6 has the reasons.
"""

from __future__ import annotations

from .actions import BlankReason, Variant
from .kinds import PHONE, KommKz, array_for_kind, comparison_key, kind_matches_espo_type
from .status import StatusEntry
from .views import AdvoView, EspoItem
from .worksheet import ESPO_WINS, TO_ESPOCRM, Row, Worksheet, type_for

__all__ = ["claim_items", "decide_links"]


def claim_items(sheet: Worksheet) -> Worksheet:
    """Find each link's EspoCRM item by value: exact matches first, then by comparison key."""
    claimed: list[EspoItem | None] = [None] * len(sheet.inputs.links)
    free = list(sheet.inputs.items)
    for exact in (True, False):
        for index, link in enumerate(sheet.inputs.links):
            if claimed[index] is not None:
                continue
            array = array_for_kind(link.kommkz)
            wanted = comparison_key(array, link.value)
            for item in free:
                if item.array == array and (item.value == link.value if exact else item.key == wanted):
                    claimed[index] = item
                    free.remove(item)
                    break
    sheet.free = free
    sheet.claimed = claimed
    for link, item in zip(sheet.inputs.links, claimed):
        if link.primary:
            sheet.primary_link_item.setdefault(array_for_kind(link.kommkz), item)
    return sheet


def decide_links(sheet: Worksheet) -> Worksheet:
    """Per link, the decision table above; then the live Advoware entries left without a link form the pool."""
    for link, item in zip(sheet.inputs.links, sheet.claimed):
        _decide_link(sheet, link, sheet.inputs.by_id.get(link.advoware_id), item)
    linked_ids = {link.advoware_id for link in sheet.inputs.links}
    sheet.pool = [v for v in sheet.inputs.views if v.live and (v.id not in linked_ids or v.id in sheet.unlinked)]
    return sheet


def _link_kind(link: StatusEntry, view: AdvoView | None) -> KommKz:
    """The kind of a linked entry: Advoware's when it reports a synced kind, else the status's."""
    if view is not None and view.kind_reported and view.synced_kind:
        return view.kind
    return KommKz(link.kommkz)


def _decide_link(sheet: Worksheet, link: StatusEntry, view: AdvoView | None, item: EspoItem | None) -> None:
    """One row of the decision table: which sides still hold the link's entry."""
    base_kind = KommKz(link.kommkz)
    kind_a = _link_kind(link, view)
    a_present = view is not None and view.live
    if a_present and array_for_kind(kind_a) != array_for_kind(base_kind):
        # a person turned a phone into an e-mail kind (or back): a different thing now
        a_present = False
        sheet.unlinked.add(view.id)
    if a_present and item is not None:
        _both_present(sheet, link, view, item, kind_a)
    elif a_present:
        _gone_in_espo(sheet, link, view, kind_a)
    elif item is not None:
        _gone_in_advoware(sheet, link, view, item)
    elif sheet.mode == TO_ESPOCRM:
        # EspoCRM's side may be a value change (delete + add there) that waits for a `both` run:
        # keep the entry in the status so that run still knows the new value's place (lineage.py)
        sheet.rows.append(Row(array=array_for_kind(base_kind), kind=base_kind, in_espo=False,
                              follow_primary=False, keep_status=link))
        sheet.change(Variant.pending_espocrm, base_kind)
    else:
        sheet.change(Variant.gone_both, base_kind)


def _both_present(sheet: Worksheet, link: StatusEntry, view: AdvoView, item: EspoItem, kind_a: KommKz) -> None:
    """Both sides hold it: merge per field — value, kind/type (the primary is per array: allocate.py)."""
    base, a_val, e_val = link.value, view.tlf, item.value
    base_kind = KommKz(link.kommkz)
    a_changed, e_changed = a_val != base, e_val != base
    a_kind_changed = kind_a != base_kind
    type_changed = item.array == PHONE and not kind_matches_espo_type(base_kind, item.type)
    onto_new_key = comparison_key(item.array, a_val) != comparison_key(item.array, base)
    row = Row(array=item.array, kind=kind_a, espo=item, advo=view, origin=view, espo_type_changed=type_changed,
              s_primary=link.primary, a_online=view.online)
    sheet.rows.append(row)
    if sheet.mode == TO_ESPOCRM:
        take_value = a_changed and not e_changed
        take_kind = a_kind_changed and not type_changed
        row.espo_value = a_val if take_value else e_val
        row.espo_type = type_for(kind_a, item) if take_kind else item.type
        row.advo_value, row.follow_primary = None, False
        row.status_value = a_val if take_value else base
        row.status_kind = kind_a if take_kind or not type_changed else base_kind
        row.candidate = take_value and onto_new_key
        if take_value or take_kind:
            sheet.change(Variant.Var6, kind_a)
        if e_changed or type_changed:
            sheet.change(Variant.pending_espocrm, kind_a)
        return
    espo_wins = sheet.mode == ESPO_WINS
    value = e_val if e_changed or espo_wins else a_val
    if type_changed or espo_wins:
        kind = kind_a if kind_matches_espo_type(kind_a, item.type) else item.kind
    else:
        kind = kind_a
    row.kind = row.status_kind = kind
    row.espo_value = row.advo_value = row.status_value = value
    row.espo_type = type_for(kind, item)
    row.candidate = value == a_val and a_changed and onto_new_key
    # (else EspoCRM keeps it elsewhere)
    lost = comparison_key(item.array, a_val) not in {i.key for i in sheet.inputs.items}
    if a_changed and lost and value != a_val \
            and comparison_key(item.array, a_val) != comparison_key(item.array, value):
        sheet.override_notes[view.id] = sheet.override_note(a_val, value, kind_a)
    if kind != kind_a:
        row.advo, row.need = None, True
        sheet.blank(view, BlankReason.type_change, variant=Variant.Var5_type, kind=kind)
    if a_changed and e_changed:
        sheet.change(Variant.conflict, kind)
    elif a_changed or (a_kind_changed and not type_changed):
        sheet.change(Variant.revert_Var6 if espo_wins else Variant.Var6, kind)
    elif e_changed or type_changed:
        sheet.change(Variant.Var5, kind)


def _gone_in_espo(sheet: Worksheet, link: StatusEntry, view: AdvoView, kind_a: KommKz) -> None:
    """EspoCRM no longer has the value: Var2 (blank), C3 if Advoware changed it (note), or a move (moves.py)."""
    a_changed = view.tlf != link.value
    if sheet.mode == TO_ESPOCRM:
        sheet.rows.append(Row(array=array_for_kind(kind_a), kind=kind_a, in_espo=False, advo=view, origin=view,
                              advo_value=None, follow_primary=False, keep_status=link,
                              s_primary=link.primary, a_online=view.online))
        sheet.change(Variant.pending_espocrm, kind_a)
        return
    if a_changed and view.key in {item.key for item in sheet.inputs.items}:
        # Advoware moved the entry onto a value EspoCRM has: both sides moved to the same new value
        # (a match), or a person moved a value between entries (moves.py); not a conflict either way
        sheet.unlinked.add(view.id)
        sheet.change(Variant.moved_on_both_sides, kind_a)
        return
    note = None
    if a_changed and comparison_key(view.array, view.tlf) != comparison_key(view.array, link.value):
        note = (f"Kommunikation: the Advoware value {view.tlf!r} ({kind_a.name}) was changed in Advoware but "
                f"deleted in EspoCRM; EspoCRM wins, the value is removed from Advoware.")
    reason, variant = (BlankReason.C3, Variant.C3) if a_changed else (BlankReason.Var2, Variant.Var2)
    sheet.blank(view, reason, variant=variant, kind=kind_a, note=note)
    sheet.blank_links[view.id] = link


def _gone_in_advoware(sheet: Worksheet, link: StatusEntry, view: AdvoView | None, item: EspoItem) -> None:
    """Advoware blanked or removed the entry: Var3 (delete from EspoCRM), or restored if EspoCRM changed it."""
    base_kind = KommKz(link.kommkz)
    type_changed = item.array == PHONE and not kind_matches_espo_type(base_kind, item.type)
    # The primary flag is not the entry's: EspoCRM moves it by itself (first-becomes-primary),
    # so a primary change never turns a deletion in Advoware into a conflict.
    e_changed = item.value != link.value or type_changed
    if sheet.mode != ESPO_WINS and not e_changed:
        sheet.change(Variant.Var3, base_kind)  # the item is not rendered: deleted from EspoCRM
        return
    if sheet.mode == TO_ESPOCRM:
        sheet.rows.append(Row(array=item.array, kind=base_kind, espo=item, espo_value=item.value,
                              espo_type=item.type, follow_primary=False, keep_status=link,
                              s_primary=link.primary, pending_restore=True))
        sheet.change(Variant.pending_espocrm, base_kind)
        return
    kind = base_kind if kind_matches_espo_type(base_kind, item.type) else item.kind
    own = view if view is not None and not view.tlf and view.kind == kind else None
    why = ("changed in EspoCRM; EspoCRM wins" if e_changed
           else "kept in EspoCRM (EspoCRM wins by operator request)")
    note = f"Kommunikation: {item.value!r} ({kind.name}) was deleted in Advoware but {why}: restored in Advoware."
    sheet.rows.append(Row(array=item.array, kind=kind, espo=item, espo_value=item.value,
                          espo_type=type_for(kind, item), need=True, preferred=own,
                          status_value=item.value, status_kind=kind, s_primary=link.primary,
                          restore_note=note, espo_type_changed=type_changed))
    sheet.change(Variant.restore_Var3, kind)
