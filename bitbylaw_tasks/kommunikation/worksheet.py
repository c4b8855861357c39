"""The Kommunikation planner's worksheet: what one sync read, and what its phases have decided so far.

`plan.plan_kommunikation_sync` builds a `Worksheet` from both sides and the
status (`Worksheet.start`), passes it through the phases `plan.PHASES` lists
— each takes the worksheet and returns it with its decisions added — and
renders the result (render.py). `Inputs` is what was read and never changes;
the rest is decided: one `Row` per value as it should be after the sync, the
Advoware entries to blank (each with its `BlankReason`), the notes, the
`Change` of each decision, and — from allocate.py — one frozen `Allocation`
per row (its entry and primary flags). docs/kommunikation-sync.md, "Who
decides what", names the phase that writes each field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .actions import BlankReason, Change, Variant
from .kinds import EMAIL, KommKz, array_for_kind, comparison_key, espo_type_for_kind, kind_matches_espo_type
from .status import KommStatus, StatusEntry
from .views import AdvoView, EspoItem, advoware_views, espo_items

__all__ = ["Inputs", "Worksheet", "Row", "Allocation", "BOTH", "TO_ESPOCRM", "TO_ADVOWARE", "ESPO_WINS", "DIRECTIONS",
           "type_for"]

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
    """One value as it should be after the sync, on each side and in the status.

    Made by links.py (a link) or unlinked.py (a match, Var1, Var4); moves.py
    and lineage.py may bind it to another Advoware entry (`advo`, `kind`,
    `preferred`, primary history). Its entry and primary flags are not
    written here: allocate.py returns them as the row's `Allocation`.
    docs/kommunikation-sync.md, "Who decides what", names each field's writers.
    """

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
    follow_primary: bool = True  # write online from the chosen primary (choose_primaries may extend it to all)
    # status
    status_value: str | None = None  # None: not in the new status
    status_kind: KommKz | None = None
    keep_status: StatusEntry | None = None  # pending: keep this status entry as it is
    # primary inputs (None: that side has no such entry)
    s_primary: bool | None = None
    a_online: bool | None = None
    # what links.py found when it made the row, for the later phases (written once, by links.py only)
    candidate: bool = False  # value changed in Advoware onto a new key (see moves.release_collisions)
    espo_type_changed: bool = False  # EspoCRM changed its type since the last sync
    pending_restore: bool = False  # to_espocrm: gone in Advoware, changed in EspoCRM (kept pending)
    restore_note: str | None = None  # reported when the value gets an entry (allocate_entries), not if adopted

    def keys(self) -> list[tuple[str, str]]:
        keys = []
        if self.in_espo:
            keys.append(comparison_key(self.array, self.espo_value))
        if self.advo is not None:
            keys.append(comparison_key(self.array, self.advo_value if self.advo_value is not None else self.advo.tlf))
        return keys


@dataclass(frozen=True)
class Allocation:
    """What allocate.py decided for one row (`Worksheet.allocations`, parallel to `rows`); render.py reads it.

    `allocate_entries` decides the entry (`slot` or `ref`, only for a row that
    `need`s one), `choose_primaries` the primary flags.
    """

    slot: AdvoView | None = None  # the existing entry the value goes into (its own, a freed one, a slot)
    ref: int | None = None  # else the create (POST) that makes its entry
    primary: bool = False  # primary in EspoCRM's array; Advoware's `online` when `follow_primary`
    status_primary: bool = False  # primary in the new status
    follow_primary: bool = False  # Advoware's `online` is written from `primary`


@dataclass(frozen=True)
class Inputs:
    """What one sync read, typed: the mode, the status and its links, Advoware's entries, EspoCRM's items."""

    mode: str
    status: KommStatus | None
    links: tuple[StatusEntry, ...]  # the status entries that count: one per Advoware id, of a synced array
    views: tuple[AdvoView, ...]
    by_id: Mapping[int, AdvoView]
    items: tuple[EspoItem, ...]
    raw_emails: tuple[Mapping[str, Any], ...]
    raw_phones: tuple[Mapping[str, Any], ...]

    @property
    def position(self) -> dict[int, int]:
        """Advoware entry id -> its place in Advoware's list (actions and new rows keep that order)."""
        return {view.id: index for index, view in enumerate(self.views)}


@dataclass(eq=False)
class Worksheet:
    """What the phases have decided so far (plan.PHASES, in order), on top of what was read (`inputs`)."""

    inputs: Inputs
    # links.claim_items: per link, its EspoCRM item if EspoCRM still has it; the item of each array's primary link
    claimed: list[EspoItem | None] = field(default_factory=list)
    primary_link_item: dict[str, EspoItem | None] = field(default_factory=dict)
    free: list[EspoItem] = field(default_factory=list)  # EspoCRM items without a link
    # the values as they should be after the sync
    rows: list[Row] = field(default_factory=list)
    # Advoware entries
    pool: list[AdvoView] = field(default_factory=list)  # live entries without a link
    unlinked: set[int] = field(default_factory=set)  # linked ids whose entry became a different thing
    blanks: dict[int, BlankReason] = field(default_factory=dict)  # entry id -> why it is blanked
    blank_links: dict[int, StatusEntry] = field(default_factory=dict)  # blanked because EspoCRM deleted (changed) it
    blank_notes: dict[int, str] = field(default_factory=dict)  # a blank's note (replaced if EspoCRM's edit fills it)
    override_notes: dict[int, str] = field(default_factory=dict)  # entry id -> note that its value was overridden
    # allocate.py: one `Allocation` per row, in the order of `rows` (which allocate_entries fixes)
    allocations: tuple[Allocation, ...] = ()
    # what the plan reports
    notes: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    @classmethod
    def start(cls, advoware_entries, raw_emails, raw_phones, status: KommStatus | None, mode: str) -> "Worksheet":
        seen: set[int] = set()
        links: list[StatusEntry] = []
        for entry in status.entries if status else ():
            if entry.advoware_id not in seen and array_for_kind(entry.kommkz):
                seen.add(entry.advoware_id)
                links.append(entry)
        views = advoware_views(advoware_entries, {e.advoware_id: e.kommkz for e in links})
        inputs = Inputs(mode, status, tuple(links), tuple(views), {view.id: view for view in views},
                        tuple(espo_items(raw_emails, raw_phones)), tuple(raw_emails), tuple(raw_phones))
        return cls(inputs)

    @property
    def mode(self) -> str:
        return self.inputs.mode

    def change(self, variant: Variant, kind: int | None = None) -> None:
        """Record one decision (for tests and metrics)."""
        self.changes.append(Change(variant, int(kind) if kind is not None else None))

    def blank(self, view: AdvoView, reason: BlankReason, *, variant: Variant | None = None, kind: KommKz | None = None,
              note: str | None = None) -> None:
        """Empty `view` in this run (it becomes a slot); record the decision (`variant`, for `kind`, by default
        the entry's) and the note that names what was removed."""
        self.blanks[view.id] = reason
        if variant is not None:
            self.change(variant, view.kind if kind is None else kind)
        if note is not None:
            self.notes.append(note)
            self.blank_notes[view.id] = note

    def override_note(self, advo_value: str, espo_value: str, kind: KommKz) -> str:
        """Note (and return) that EspoCRM's value overrode Advoware's in one entry."""
        why = "EspoCRM wins by operator request" if self.mode == ESPO_WINS else "changed on both sides; EspoCRM wins"
        note = (f"Kommunikation: the Advoware value {advo_value!r} ({kind.name}) was overridden by the EspoCRM "
                f"value {espo_value!r} ({why}).")
        self.notes.append(note)
        return note

    def sort_pool(self) -> None:
        """Keep the unlinked entries in Advoware's order (new values are added in that order)."""
        position = self.inputs.position
        self.pool.sort(key=lambda view: position[view.id])
