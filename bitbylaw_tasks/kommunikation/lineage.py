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
from typing import TYPE_CHECKING

from .kinds import PHONE, array_for_kind, espo_type_for_kind, kinds_compatible

if TYPE_CHECKING:  # pragma: no cover
    from .rows import Row
    from .plan import _Planner
    from .status import StatusEntry

__all__ = ["predecessors"]


def predecessors(planner: "_Planner", rows: list["Row"]) -> dict[int, "StatusEntry"]:
    """Map id(row) of each new EspoCRM value (a Var1 row) to the synced entry it most likely replaced."""
    claimed_items = {id(item) for item in planner.claimed if item is not None}
    gone: dict[tuple, list] = defaultdict(list)
    survivors: dict[str, int] = defaultdict(int)
    for link, item in zip(planner.links, planner.claimed):
        array = array_for_kind(link.kommkz)
        if item is None:
            gone[(array, survivors[array])].append(link)
        else:
            survivors[array] += 1
    new: dict[tuple, list] = defaultdict(list)
    for row in sorted((r for r in rows if r.espo is not None and id(r.espo) not in claimed_items),
                      key=lambda r: r.espo.index):
        rank = sum(1 for item in planner.items
                   if item.array == row.array and id(item) in claimed_items and item.index < row.espo.index)
        new[(row.array, rank)].append(row)
    new_rows = [row for rows_at in new.values() for row in rows_at]  # by EspoCRM index
    gone_links = [link for links in gone.values() for link in links]  # in status order
    pairs: dict[int, "StatusEntry"] = {}
    # Advoware breaks the ties EspoCRM's data cannot: while a type has no more new values than vanished
    # entries Advoware still holds, none is paired with an entry Advoware deleted too (that reading
    # would restore a value both sides dropped, with a note claiming an edit).
    new_count = Counter(look(row.kind) for row in new_rows)
    held_count = Counter(look(l.kommkz) for l in gone_links if not advoware_deleted(planner, l))
    taken: set[int] = {id(l) for l in gone_links
                       if advoware_deleted(planner, l) and new_count[look(l.kommkz)] <= held_count[look(l.kommkz)]}

    def pair(row: "Row", link: "StatusEntry") -> None:
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


def look(kind: int) -> tuple:
    """How a kind shows in EspoCRM: its array and, for a phone, its type (kinds_compatible, as a key)."""
    array = array_for_kind(kind)
    return (array, espo_type_for_kind(kind) if array == PHONE else None)


def advoware_deleted(planner: "_Planner", link: "StatusEntry") -> bool:
    """Advoware no longer holds the link's entry: a person removed or blanked it."""
    view = planner.by_id.get(link.advoware_id)
    return view is None or not view.tlf
