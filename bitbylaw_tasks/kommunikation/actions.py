"""The value a Kommunikation plan is made of: Advoware actions, EspoCRM arrays, new status, notes.

Everything here is frozen and printable. `Plan` is what
`plan_kommunikation_sync` returns and what the executor applies: run the
Advoware actions in order, collect the ids of created entries, then write
EspoCRM once (arrays if `espo_changed`, `kommunikationStatus` from
`resolve_status(created_ids)` if `status_changed`, and the hash).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Mapping

from .kinds import KommKz
from .status import KommStatus, StatusEntry

__all__ = [
    "AdvowareWrite",
    "EspoEmail",
    "EspoPhone",
    "PendingStatusEntry",
    "Change",
    "Variant",
    "BlankReason",
    "Plan",
]


def _kind_name(kommkz: int) -> str:
    return KommKz(kommkz).name


@dataclass(frozen=True)
class AdvowareWrite:
    """One Advoware write: PUT the entry `id`, or — without an id — POST a new one that `ref` names.

    `ref` is how `Plan.resolve_status` finds the created entry's id. kommKz
    is read-only on PUT (sent for information); a POST sets it.
    """

    kommkz: int
    tlf: str
    bemerkung: str
    online: bool
    reason: str  # a `BlankReason` for a blank; "value", "marker", "primary", "fill slot" or "new" otherwise
    id: int | None = None
    ref: int | None = None

    def __post_init__(self) -> None:
        if (self.id is None) == (self.ref is None):
            raise ValueError("an Advoware write has either an entry id (PUT) or a create ref (POST)")

    @property
    def creates(self) -> bool:
        return self.id is None

    def payload(self) -> dict:
        """The JSON body of the POST or PUT."""
        return {"kommKz": int(self.kommkz), "tlf": self.tlf, "bemerkung": self.bemerkung, "online": self.online}

    def __str__(self) -> str:
        target = f"create #{self.ref}" if self.creates else f"update id={self.id}"
        return f"{target} {_kind_name(self.kommkz)} tlf={self.tlf!r} online={self.online} ({self.reason})"


@dataclass(frozen=True)
class _ArrayItem:
    """An item of one of EspoCRM's arrays as the plan wants it; its fields carry EspoCRM's names: its API form."""

    def to_api(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EspoEmail(_ArrayItem):
    """One item of `emailAddressData` as the plan wants it."""

    emailAddress: str
    primary: bool
    optOut: bool = False
    invalid: bool = False

    def to_api(self) -> dict:
        """With `lower`, which EspoCRM keeps beside each address (after `emailAddress`, as it sends it)."""
        return {"emailAddress": self.emailAddress, "lower": self.emailAddress.lower(), **super().to_api()}


@dataclass(frozen=True)
class EspoPhone(_ArrayItem):
    """One item of `phoneNumberData` as the plan wants it."""

    phoneNumber: str
    type: str
    primary: bool
    optOut: bool = False
    invalid: bool = False


@dataclass(frozen=True)
class PendingStatusEntry:
    """A status entry whose Advoware id is known only after the create `AdvowareWrite` #ref ran."""

    ref: int
    value: str
    kommkz: int
    primary: bool


class Variant(StrEnum):
    """The kinds of per-entry decision a plan records (SPEC §5.3 and what docs/kommunikation-sync.md adds)."""

    Var1 = "Var1"  # new in EspoCRM: created in Advoware (a slot or a POST)
    Var2 = "Var2"  # deleted in EspoCRM: the Advoware entry is blanked to a slot
    Var3 = "Var3"  # deleted in Advoware: deleted from EspoCRM
    Var4 = "Var4"  # new in Advoware: added to EspoCRM, marker set
    Var5 = "Var5"  # changed in EspoCRM (value, type that fits): Advoware updated
    Var5_type = "Var5_type"  # EspoCRM's type needs another kind: old entry blanked, value moves
    Var6 = "Var6"  # changed in Advoware: EspoCRM updated
    C3 = "C3"  # deleted in EspoCRM, changed in Advoware: EspoCRM wins, a note
    conflict = "conflict"  # the same field changed on both sides: EspoCRM wins, a note
    match = "match"  # an unlinked value on both sides: linked (initial-sync rule)
    gone_both = "gone_both"  # deleted on both sides: forgotten
    pending_espocrm = "pending_espocrm"  # to_espocrm: EspoCRM's change waits for a `both` run
    restore_Var3 = "restore_Var3"  # deleted in Advoware, changed in EspoCRM: restored, a note
    revert_Var4 = "revert_Var4"  # EspoCRM wins: a value only in Advoware is removed
    revert_Var6 = "revert_Var6"  # EspoCRM wins: Advoware's change is reverted
    revert_move = "revert_move"  # EspoCRM's type wins over a value moved in Advoware
    moved_in_advoware = "moved_in_advoware"  # the value is bound to the entry a person moved it to
    moved_on_both_sides = "moved_on_both_sides"  # Advoware's change onto a value EspoCRM has: not a conflict
    Var6_onto_existing = "Var6_onto_existing"  # Advoware's change onto a value EspoCRM has unlinked
    duplicate_in_advoware = "duplicate_in_advoware"  # a person entered a value twice: left alone
    adopted = "adopted"  # a value to restore or re-kind that Advoware holds unlinked: taken
    slot_reused = "slot_reused"  # a value filled an empty slot (no POST)
    primary_from_espocrm = "primary_from_espocrm"  # EspoCRM moved the primary
    primary_from_advoware = "primary_from_advoware"  # Advoware moved the primary


class BlankReason(StrEnum):
    """Why the plan empties an Advoware entry to a slot: the `reason` of that entry's `AdvowareWrite`.

    The values are the texts `str(plan)` has always shown for a blank.
    """

    Var2 = "Var2"  # deleted in EspoCRM
    C3 = "C3"  # deleted in EspoCRM, changed in Advoware
    type_change = "type change"  # EspoCRM's type needs another kind: the value moves to another entry
    Var4_reverted = "Var4 reverted"  # EspoCRM wins: a value only in Advoware is removed
    moved_value_overridden = "moved value overridden"  # EspoCRM's type wins over a value moved in Advoware


@dataclass(frozen=True)
class Change:
    """One per-entry decision, for logs and metrics: no values, so no personal data."""

    variant: Variant
    kommkz: int | None = None

    def __str__(self) -> str:
        return self.variant if self.kommkz is None else f"{self.variant}[{_kind_name(self.kommkz)}]"


@dataclass(frozen=True)
class Plan:
    """The outcome of planning one sync; applying it makes both sides agree with `resolve_status`."""

    actions: tuple[AdvowareWrite, ...] = ()
    espo_changed: bool = False
    emails: tuple[EspoEmail, ...] = ()
    phones: tuple[EspoPhone, ...] = ()
    status_entries: tuple[StatusEntry | PendingStatusEntry, ...] = ()
    status_changed: bool = False
    notes: tuple[str, ...] = ()
    changes: tuple[Change, ...] = field(default=())

    @property
    def is_empty(self) -> bool:
        """Nothing to write anywhere (SPEC §5.5 H1)."""
        return not self.actions and not self.espo_changed and not self.status_changed

    @property
    def email_address_data(self) -> list[dict]:
        return [item.to_api() for item in self.emails]

    @property
    def phone_number_data(self) -> list[dict]:
        return [item.to_api() for item in self.phones]

    def espo_arrays(self) -> dict:
        """The arrays to put into the one EspoCRM write; empty when EspoCRM needs no change."""
        if not self.espo_changed:
            return {}
        return {"emailAddressData": self.email_address_data, "phoneNumberData": self.phone_number_data}

    def resolve_status(self, created_ids: Mapping[int, int] | None = None) -> KommStatus:
        """The status to store after applying; `created_ids` maps create refs to new entry ids.

        A create whose id is missing (it failed) is left out: its value is then
        unlinked on the next run and found again by value (never duplicated).
        """
        created_ids = created_ids or {}
        entries = []
        for entry in self.status_entries:
            if isinstance(entry, PendingStatusEntry):
                if entry.ref not in created_ids:
                    continue
                entry = StatusEntry(int(created_ids[entry.ref]), entry.value, entry.kommkz, entry.primary)
            entries.append(entry)
        return KommStatus(tuple(entries))

    @property
    def new_status(self) -> KommStatus:
        """The status to store when the plan creates nothing (else use `resolve_status`)."""
        if any(isinstance(e, PendingStatusEntry) for e in self.status_entries):
            raise ValueError("plan creates Advoware entries: use resolve_status(created_ids)")
        return self.resolve_status({})

    def summary(self) -> dict[str, int]:
        """Counts for logs and metrics (no values)."""
        counts = Counter(change.variant for change in self.changes)
        counts["advoware_creates"] = sum(a.creates for a in self.actions)
        counts["advoware_updates"] = sum(not a.creates for a in self.actions)
        counts["espo_writes"] = int(self.espo_changed)
        counts["notes"] = len(self.notes)
        return dict(counts)

    def __str__(self) -> str:
        lines = [f"Plan: {len(self.actions)} Advoware action(s), espo_changed={self.espo_changed}, "
                 f"status_changed={self.status_changed}"]
        lines += [f"  advoware: {action}" for action in self.actions]
        if self.espo_changed:
            lines += [f"  espo email: {e.emailAddress!r}{' (primary)' if e.primary else ''}" for e in self.emails]
            lines += [f"  espo phone: {p.phoneNumber!r} {p.type}{' (primary)' if p.primary else ''}" for p in self.phones]
        lines += [f"  status: {e}" for e in self.status_entries]
        lines += [f"  note: {note}" for note in self.notes]
        lines.append("  changes: " + ", ".join(str(c) for c in self.changes))
        return "\n".join(lines)
