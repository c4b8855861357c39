"""Which new EspoCRM value took the place of which vanished one (EspoCRM's arrays carry no ids).

A value edited in EspoCRM's UI keeps its place in the list; a deleted one
leaves it; an added one is appended. So a new value whose place among the
surviving values is the place a vanished synced value had is taken to be
that value, changed: it goes into the old Advoware entry (keeping that
entry's kind when it shows the same in EspoCRM: MailPrivat, FaxPrivat,
AutoTelefon) and carries its primary history. EspoCRM's new primary value
pairs with the vanished primary first; values left over after pairing by
place pair by kind (same EspoCRM type), in order.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from .kinds import array_for_kind, kinds_compatible

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
    pairs: dict[int, "StatusEntry"] = {}
    # The primary first: a primary value edited in EspoCRM stays primary (and first), so EspoCRM's new
    # primary value and the vanished primary link of its array are the same entry when the kinds fit.
    for links in list(gone.values()):
        for link in [l for l in links if l.primary]:
            row = next((r for rows_at in new.values() for r in rows_at
                        if r.espo.primary and r.array == array_for_kind(link.kommkz) and id(r) not in pairs
                        and kinds_compatible(link.kommkz, r.kind)), None)
            if row is not None:
                pairs[id(row)] = link
    used = set(map(id, pairs.values()))
    for place, links in gone.items():
        left = [r for r in new.get(place, ()) if id(r) not in pairs]
        for link, row in zip([l for l in links if id(l) not in used], left):
            pairs[id(row)] = link
    # Places are a hint, not a rule: the real EspoCRM reads the arrays primary first and appends an
    # edited value's new link row, so an edit can move. A vanished value and a new one of the same
    # array whose kinds show the same in EspoCRM are the same entry, edited (SPEC §5: a Var2 and a
    # Var1 of one kind are one PUT into that entry anyway); leftovers pair in order.
    paired = set(map(id, pairs.values()))
    spare = [link for links in gone.values() for link in links if id(link) not in paired]
    for row in (r for place in sorted(new) for r in new[place] if id(r) not in pairs):
        link = next((l for l in spare if array_for_kind(l.kommkz) == row.array
                     and kinds_compatible(l.kommkz, row.kind)), None)
        if link is not None:
            spare.remove(link)
            pairs[id(row)] = link
    return pairs
