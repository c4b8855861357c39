"""The working values of planning: one `Row` per value as it should be after the sync, and the modes.

Internal to the Kommunikation planner (plan.py decides rows, moves.py
reconciles values that moved, allocate.py finds entries and renders).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .kinds import EMAIL, KommKz, comparison_key, espo_type_for_kind, kind_matches_espo_type
from .status import StatusEntry
from .views import AdvoView, EspoItem

__all__ = ["Row", "BOTH", "TO_ESPOCRM", "TO_ADVOWARE", "ESPO_WINS", "DIRECTIONS", "type_for"]

BOTH, TO_ESPOCRM, TO_ADVOWARE = "both", "to_espocrm", "to_advoware"
DIRECTIONS = (BOTH, TO_ESPOCRM, TO_ADVOWARE)
ESPO_WINS = "espo_wins"  # the planner's mode for to_advoware, or force_espo_wins in any direction


def type_for(kind: KommKz, item: EspoItem | None) -> str | None:
    """The EspoCRM type to show for `kind`: the item's own type when it fits, else the canonical one."""
    if item is not None and (item.array == EMAIL or kind_matches_espo_type(kind, item.type)):
        return item.type
    return espo_type_for_kind(kind)


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
    espo_type_changed: bool = False  # EspoCRM changed its type since the last sync
    pending_restore: bool = False  # to_espocrm: gone in Advoware, changed in EspoCRM (kept pending)
    restore_note: str | None = None
    primary: bool = False
    status_primary: bool = False
    slot: AdvoView | None = None
    ref: int | None = None
    notes: list = field(default_factory=list)  # the override notes made for it (dropped if it moves)

    def keys(self) -> list[tuple[str, str]]:
        keys = []
        if self.in_espo:
            keys.append(comparison_key(self.array, self.espo_value))
        if self.advo is not None:
            keys.append(comparison_key(self.array, self.advo_value if self.advo_value is not None else self.advo.tlf))
        return keys
