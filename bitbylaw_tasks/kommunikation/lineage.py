"""Which new EspoCRM value took the place of which vanished one (EspoCRM's arrays carry no ids).

A value edited in EspoCRM's UI keeps its place in the list; a deleted one
leaves it; an added one is appended. So a new value whose place among the
surviving values is the place a vanished synced value had is taken to be
that value, changed: it goes into the old Advoware entry (keeping that
entry's kind when it shows the same in EspoCRM: MailPrivat, FaxPrivat,
AutoTelefon) and carries its primary history. EspoCRM's new primary value
pairs with the vanished primary first; values left over after pairing by
place pair by kind (same EspoCRM type), in order. Only values whose kinds
show the same in EspoCRM are ever paired, and Advoware breaks ties: while a
type has no more new values than vanished entries Advoware still holds, an
entry Advoware deleted too is not paired (docs/kommunikation-sync.md §8a).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from .actions import Variant
from .kinds import EMAIL, PHONE, KommKz, array_for_kind, espo_type_for_kind, kinds_compatible
from .status import StatusEntry
from .worksheet import Row, Worksheet

__all__ = ["predecessors", "bind_edits"]


def predecessors(sheet: Worksheet, rows: list[Row]) -> dict[int, StatusEntry]:
    """Map id(row) of each new EspoCRM value (a Var1 row) to the synced entry it most likely replaced."""
    claimed_items = {id(item) for item in sheet.claimed if item is not None}
    gone: dict[tuple, list] = defaultdict(list)
    survivors: dict[str, int] = defaultdict(int)
    for link, item in zip(sheet.inputs.links, sheet.claimed):
        array = array_for_kind(link.kommkz)
        if item is None:
            gone[(array, survivors[array])].append(link)
        else:
            survivors[array] += 1
    new: dict[tuple, list] = defaultdict(list)
    for row in sorted((r for r in rows if r.espo is not None and id(r.espo) not in claimed_items),
                      key=lambda r: r.espo.index):
        rank = sum(1 for item in sheet.inputs.items
                   if item.array == row.array and id(item) in claimed_items and item.index < row.espo.index)
        new[(row.array, rank)].append(row)
    new_rows = [row for rows_at in new.values() for row in rows_at]  # by EspoCRM index
    gone_links = [link for links in gone.values() for link in links]  # in status order
    pairs: dict[int, StatusEntry] = {}
    # Advoware breaks the ties EspoCRM's data cannot: while a type has no more new values than vanished
    # entries Advoware still holds, none is paired with an entry Advoware deleted too (that reading
    # would restore a value both sides dropped, with a note claiming an edit).
    new_count = Counter(look(row.kind) for row in new_rows)
    held_count = Counter(look(l.kommkz) for l in gone_links if not advoware_deleted(sheet, l))
    taken: set[int] = {id(l) for l in gone_links
                       if advoware_deleted(sheet, l) and new_count[look(l.kommkz)] <= held_count[look(l.kommkz)]}

    def pair(row: Row, link: StatusEntry) -> None:
        pairs[id(row)] = link
        taken.add(id(link))

    # 1. The primary: a primary value edited in EspoCRM stays primary (and first), so EspoCRM's new
    #    primary value and the vanished primary link of its array are the same entry when the kinds fit.
    for link in (l for l in gone_links if l.primary and id(l) not in taken):
        row = next((r for r in new_rows if r.espo.primary and id(r) not in pairs
                    and kinds_compatible(link.kommkz, r.kind)), None)
        if row is not None:
            pair(row, link)
    # 2. The place: a new value where a vanished one stood, if their kinds show the same in EspoCRM
    #    (a delete and an add of different types are never one edit).
    for place, links in gone.items():
        for row in (r for r in new.get(place, ()) if id(r) not in pairs):
            link = next((l for l in links if id(l) not in taken and kinds_compatible(l.kommkz, row.kind)), None)
            if link is not None:
                pair(row, link)
    # 3. The kind. Places are a hint, not a rule: the real EspoCRM reads the arrays primary first and
    #    appends an edited value's new link row, so an edit can move. A vanished value and a new one
    #    whose kinds show the same in EspoCRM are the same entry, edited (SPEC §5: a Var2 and a Var1
    #    of one kind are one PUT into that entry anyway); leftovers pair in order.
    for row in (r for r in new_rows if id(r) not in pairs):
        link = next((l for l in gone_links if id(l) not in taken and kinds_compatible(l.kommkz, row.kind)), None)
        if link is not None:
            pair(row, link)
    return pairs


def bind_edits(sheet: Worksheet) -> Worksheet:
    """Each new EspoCRM value paired with the vanished value it replaced takes over that value's entry.

    It carries the entry's primary history, and prefers the entry itself
    when that is free and its kind shows the same in EspoCRM: blanked in
    this run for it (an edit; if Advoware had changed the value, EspoCRM's
    edit overrides it, and the note says so), or blanked by a person.
    Blanked or removed in Advoware, it is one case: EspoCRM's edit wins, the
    value comes back with the entry's kind, and a note names both values.
    """
    needs = sorted((row for row in sheet.rows if row.need), key=lambda r: (r.array != EMAIL, r.espo.index
                                                                            if r.espo is not None else -1))
    bound = {row.advo.id for row in sheet.rows if row.advo is not None}
    reserved = {row.preferred.id for row in needs if row.preferred is not None and row.preferred.id not in bound}
    lineage = predecessors(sheet, needs)
    for row in needs:
        link = lineage.get(id(row))
        if link is None:
            continue
        view = sheet.inputs.by_id.get(link.advoware_id)
        row.s_primary = link.primary  # the same entry (pairs always fit): its primary history
        row.a_online = view.online if view is not None and view.tlf else None
        if link.primary and sheet.primary_link_item.get(row.array) is None:
            sheet.primary_link_item[row.array] = row.espo
        usable = (view is not None and view.id not in reserved and view.id not in bound
                  and kinds_compatible(view.kind, row.kind))
        if view is None or not view.tlf:
            row.kind = row.status_kind = view.kind if usable and view.synced_kind else KommKz(link.kommkz)
            if usable and view.synced_kind:
                row.preferred = view
                reserved.add(view.id)
            sheet.notes.append(
                f"Kommunikation: {link.value!r} ({row.kind.name}) was deleted in Advoware but changed in EspoCRM "
                f"to {row.espo_value!r}; EspoCRM wins: restored in Advoware."
            )
            sheet.change(Variant.restore_Var3, row.kind)
        elif usable and view.id in sheet.blank_links and view.id in sheet.blanks:  # blanked in this run for it
            row.preferred = view
            reserved.add(view.id)
            if view.id in sheet.blank_notes:  # Advoware's change is overridden by EspoCRM's, not emptied
                sheet.notes.remove(sheet.blank_notes.pop(view.id))
                sheet.override_note(view.tlf, row.espo_value, view.kind)
    return sheet


def look(kind: int) -> tuple:
    """How a kind shows in EspoCRM: its array and, for a phone, its type (kinds_compatible, as a key)."""
    array = array_for_kind(kind)
    return (array, espo_type_for_kind(kind) if array == PHONE else None)


def advoware_deleted(sheet: Worksheet, link: StatusEntry) -> bool:
    """Advoware no longer holds the link's entry: a person removed or blanked it."""
    view = sheet.inputs.by_id.get(link.advoware_id)
    return view is None or not view.tlf
