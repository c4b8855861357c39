"""Plan one Kommunikation sync of one Beteiligter, deciding per entry (SPEC §5.2, §5.3).

`plan_kommunikation_sync` looks at Advoware's entries, EspoCRM's two arrays
and the status of the last sync, and returns a `Plan` (actions.py). No I/O.
It builds a `Worksheet` (worksheet.py: what was read), runs
`PHASES` over it in order — each phase takes the worksheet and returns it
with its decisions — and renders the result (render.py), which decides
nothing. The phases: the per-link decision table (links.py), values people
moved between Advoware entries (moves.py), unlinked values matched or new
on one side (unlinked.py), which new EspoCRM value replaced which vanished
one (lineage.py), entries and primaries (allocate.py).
docs/kommunikation-sync.md has the reasons.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from .actions import Plan
from .allocate import allocate_entries, choose_primaries
from .lineage import bind_edits
from .links import claim_items, decide_links
from .moves import adopt_for_needs, prefer_holders, release_collisions, release_taken_pending
from .render import render
from .status import KommStatus
from .unlinked import new_on_one_side, pair_unlinked
from .worksheet import BOTH, DIRECTIONS, ESPO_WINS, TO_ADVOWARE, TO_ESPOCRM, Worksheet

__all__ = ["plan_kommunikation_sync", "PHASES", "DIRECTIONS", "BOTH", "TO_ESPOCRM", "TO_ADVOWARE"]

#: The phases of planning, in order. Each takes the worksheet and returns it with its decisions added;
#: one value's fate reads top to bottom (docs/architecture.md, "One Kommunikation decision").
PHASES: tuple[Callable[[Worksheet], Worksheet], ...] = (
    claim_items,            # links.py: each status link finds its EspoCRM item by value
    decide_links,           # links.py: per link, the decision table (Var2, Var3, Var5, Var6, conflicts)
    release_collisions,     # moves.py: an Advoware change onto a value EspoCRM has is a match
    prefer_holders,         # moves.py: a value to write is bound to the entry already holding it
    adopt_for_needs,        # moves.py: a value to restore or re-kind that Advoware holds is taken
    release_taken_pending,  # moves.py: one value, one link (to_espocrm)
    pair_unlinked,          # unlinked.py: the initial-sync rule, every run
    new_on_one_side,        # unlinked.py: Var1, Var4
    bind_edits,             # lineage.py: which new EspoCRM value replaced which vanished one
    allocate_entries,       # allocate.py: an entry for each value that needs one (own, freed, slot, POST)
    choose_primaries,       # allocate.py: one primary per array, Advoware's online follows
)


def plan_kommunikation_sync(
    advoware_entries: Iterable[Mapping[str, Any]],
    espo_emails: Iterable[Mapping[str, Any]] | None,
    espo_phones: Iterable[Mapping[str, Any]] | None,
    status: KommStatus | None,
    *,
    direction: str = BOTH,
    force_espo_wins: bool = False,
) -> Plan:
    """Decide what one sync does; `status` None means initial sync (nothing is ever deleted).

    `direction="to_espocrm"` applies only Advoware's changes and leaves
    EspoCRM's pending; `"to_advoware"` and `force_espo_wins` make Advoware
    match EspoCRM (Advoware-side changes reverted, each with a note).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}")
    if espo_emails is None or espo_phones is None:
        raise ValueError("emailAddressData/phoneNumberData missing: load the record by id, not from a list")
    advoware_entries = list(advoware_entries)
    mode = ESPO_WINS if force_espo_wins or direction == TO_ADVOWARE else direction
    sheet = Worksheet.start(advoware_entries, list(espo_emails), list(espo_phones), status, mode)
    for phase in PHASES:
        sheet = phase(sheet)
    return render(sheet)
