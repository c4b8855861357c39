"""Plan one Kommunikation sync of one Beteiligter, deciding per entry (SPEC §5.2, §5.3).

`plan_kommunikation_sync` looks at Advoware's entries, EspoCRM's two arrays
and the status of the last sync, and returns a `Plan` (actions.py). No I/O.
The decision table, per linked pair (status entry ↔ Advoware entry by id ↔
EspoCRM item by value), in direction `both`:

| Advoware \\ EspoCRM | unchanged      | changed (type, primary, format) | gone                        |
|--------------------|----------------|----------------------------------|-----------------------------|
| unchanged          | nothing        | Var5: update Advoware            | Var2: blank to a slot       |
| changed            | Var6: update   | merge per field, EspoCRM wins    | C3: blank, note             |
|                    | EspoCRM        | where both changed, note         |                             |
| blanked / gone     | Var3: delete   | restore in Advoware, note        | forget                      |
|                    | from EspoCRM   |                                  |                             |

Unlinked entries (no status, or new since) are matched by value first (the
initial-sync rule), then are new on their side: Var1 (create in Advoware,
reusing a slot of the same kind) and Var4 (add to EspoCRM). The choice of
primary is made per array (allocate.py); values people moved between
entries are reconciled in moves.py; which new EspoCRM value replaced which
vanished one, in lineage.py. docs/kommunikation-sync.md has the reasons.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .actions import Change, Plan, Variant
from .allocate import finish_plan
from .kinds import (PHONE, KommKz, array_for_kind, comparison_key, espo_type_for_kind,
                    kind_matches_espo_type)
from .markers import SlotMarker, SyncMarker
from .lineage import bind_edits
from .moves import adopt_for_needs, prefer_holders, release_collisions, release_taken_pending
from .rows import BOTH, DIRECTIONS, ESPO_WINS, TO_ADVOWARE, TO_ESPOCRM, Row, type_for
from .status import KommStatus, StatusEntry
from .views import AdvoView, EspoItem, advoware_views, espo_items

__all__ = ["plan_kommunikation_sync", "DIRECTIONS", "BOTH", "TO_ESPOCRM", "TO_ADVOWARE"]


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
    return _Planner(advoware_entries, list(espo_emails), list(espo_phones), status, mode).plan()


class _Planner:
    def __init__(self, advoware_entries, raw_emails, raw_phones, status: KommStatus | None, mode: str):
        self.mode = mode
        self.status = status
        seen: set[int] = set()
        self.links: list[StatusEntry] = []
        for entry in status.entries if status else ():
            if entry.advoware_id not in seen and array_for_kind(entry.kommkz):
                seen.add(entry.advoware_id)
                self.links.append(entry)
        self.views = advoware_views(advoware_entries, {e.advoware_id: e.kommkz for e in self.links})
        self.by_id = {view.id: view for view in self.views}
        self.items = espo_items(raw_emails, raw_phones)
        self.raw_emails, self.raw_phones = raw_emails, raw_phones
        self.rows: list[Row] = []
        self.blanks: dict[int, str] = {}  # Advoware entry id -> reason it is blanked
        self.blank_links: dict[int, StatusEntry] = {}  # blanked because EspoCRM deleted (or changed) it
        self.blank_notes: dict[int, str] = {}  # the note a blank made (replaced if EspoCRM's new value fills it)
        self.notes: list[str] = []
        self.changes: list[Change] = []
        self.pool: list[AdvoView] = []  # live Advoware entries without a link
        self.free: list[EspoItem] = []  # EspoCRM items without a link
        self.primary_link_item: dict[str, EspoItem | None] = {}
        self.unlinked: set[int] = set()  # linked ids whose entry became a different thing
        self.claimed: list[EspoItem | None] = []  # per link: its EspoCRM item, if EspoCRM still has it

    # -- helpers --------------------------------------------------------------------------------

    def change(self, variant: Variant, kind: int | None = None) -> None:
        self.changes.append(Change(variant, int(kind) if kind is not None else None))

    def blank(self, view: AdvoView, reason: str, *, variant: Variant | None = None, kind: KommKz | None = None,
              note: str | None = None) -> None:
        """Empty `view` in this run (it becomes a slot); record the decision (`variant`, for `kind`, by default
        the entry's) and the note that names what was removed."""
        self.blanks[view.id] = reason
        if variant is not None:
            self.change(variant, view.kind if kind is None else kind)
        if note is not None:
            self.notes.append(note)
            self.blank_notes[view.id] = note

    def link_kind(self, link: StatusEntry, view: AdvoView | None) -> KommKz:
        if view is not None and view.kind_reported and view.synced_kind:
            return view.kind
        return KommKz(link.kommkz)

    # -- phases ---------------------------------------------------------------------------------

    def plan(self) -> Plan:
        claimed = self.claim_items()
        for link, item in zip(self.links, claimed):
            self.decide_link(link, self.by_id.get(link.advoware_id), item)
        linked_ids = {link.advoware_id for link in self.links}
        self.pool = [v for v in self.views if v.live and (v.id not in linked_ids or v.id in self.unlinked)]
        release_collisions(self)
        prefer_holders(self)
        adopt_for_needs(self)
        release_taken_pending(self)
        self.pair_unlinked()
        self.new_on_one_side()
        bind_edits(self)
        return finish_plan(self)

    def claim_items(self) -> list[EspoItem | None]:
        """Find each link's EspoCRM item by value: exact matches first, then by comparison key."""
        claimed: list[EspoItem | None] = [None] * len(self.links)
        free = list(self.items)
        for exact in (True, False):
            for index, link in enumerate(self.links):
                if claimed[index] is not None:
                    continue
                array = array_for_kind(link.kommkz)
                wanted = comparison_key(array, link.value)
                for item in free:
                    if item.array == array and (item.value == link.value if exact else item.key == wanted):
                        claimed[index] = item
                        free.remove(item)
                        break
        self.free = free
        self.claimed = claimed
        for link, item in zip(self.links, claimed):
            if link.primary:
                self.primary_link_item.setdefault(array_for_kind(link.kommkz), item)
        return claimed

    def decide_link(self, link: StatusEntry, view: AdvoView | None, item: EspoItem | None) -> None:
        base_kind = KommKz(link.kommkz)
        kind_a = self.link_kind(link, view)
        a_present = view is not None and view.live
        if a_present and array_for_kind(kind_a) != array_for_kind(base_kind):
            # a person turned a phone into an e-mail kind (or back): a different thing now
            a_present = False
            self.unlinked.add(view.id)
        if a_present and item is not None:
            self.both_present(link, view, item, kind_a)
        elif a_present:
            self.gone_in_espo(link, view, kind_a)
        elif item is not None:
            self.gone_in_advoware(link, view, item)
        elif self.mode == TO_ESPOCRM:
            # EspoCRM's side may be a value change (delete + add there) that waits for a `both` run:
            # keep the entry in the status so that run still knows the new value's place (lineage.py)
            self.rows.append(Row(array=array_for_kind(base_kind), kind=base_kind, in_espo=False,
                                 follow_primary=False, keep_status=link))
            self.change(Variant.pending_espocrm, base_kind)
        else:
            self.change(Variant.gone_both, base_kind)

    def both_present(self, link: StatusEntry, view: AdvoView, item: EspoItem, kind_a: KommKz) -> None:
        """Merge per field: value, kind/type (primary is per array, see allocate.py)."""
        base, a_val, e_val = link.value, view.tlf, item.value
        base_kind = KommKz(link.kommkz)
        a_changed, e_changed = a_val != base, e_val != base
        a_kind_changed = kind_a != base_kind
        type_changed = item.array == PHONE and not kind_matches_espo_type(base_kind, item.type)
        onto_new_key = comparison_key(item.array, a_val) != comparison_key(item.array, base)
        row = Row(array=item.array, kind=kind_a, espo=item, advo=view, origin=view, espo_type_changed=type_changed,
                  s_primary=link.primary, a_online=view.online, e_primary=item.primary)
        self.rows.append(row)
        if self.mode == TO_ESPOCRM:
            take_value = a_changed and not e_changed
            take_kind = a_kind_changed and not type_changed
            row.espo_value = a_val if take_value else e_val
            row.espo_type = type_for(kind_a, item) if take_kind else item.type
            row.advo_value, row.follow_primary = None, False
            row.status_value = a_val if take_value else base
            row.status_kind = kind_a if take_kind or not type_changed else base_kind
            row.candidate = take_value and onto_new_key
            if take_value or take_kind:
                self.change(Variant.Var6, kind_a)
            if e_changed or type_changed:
                self.change(Variant.pending_espocrm, kind_a)
            return
        espo_wins = self.mode == ESPO_WINS
        value = e_val if e_changed or espo_wins else a_val
        if type_changed or espo_wins:
            kind = kind_a if kind_matches_espo_type(kind_a, item.type) else item.kind
        else:
            kind = kind_a
        row.kind = row.status_kind = kind
        row.espo_value = row.advo_value = row.status_value = value
        row.espo_type = type_for(kind, item)
        row.candidate = value == a_val and a_changed and onto_new_key
        lost = comparison_key(item.array, a_val) not in {i.key for i in self.items}  # else EspoCRM keeps it elsewhere
        if a_changed and lost and value != a_val \
                and comparison_key(item.array, a_val) != comparison_key(item.array, value):
            row.notes.append(self.override_note(a_val, value, kind_a))
        if kind != kind_a:
            row.advo, row.need = None, True
            self.blank(view, "type change", variant=Variant.Var5_type, kind=kind)
        if a_changed and e_changed:
            self.change(Variant.conflict, kind)
        elif a_changed or (a_kind_changed and not type_changed):
            self.change(Variant.revert_Var6 if espo_wins else Variant.Var6, kind)
        elif e_changed or type_changed:
            self.change(Variant.Var5, kind)

    def gone_in_espo(self, link: StatusEntry, view: AdvoView, kind_a: KommKz) -> None:
        a_changed = view.tlf != link.value
        if self.mode == TO_ESPOCRM:
            self.rows.append(Row(array=array_for_kind(kind_a), kind=kind_a, in_espo=False, advo=view, origin=view,
                                 advo_value=None, follow_primary=False, keep_status=link,
                                 s_primary=link.primary, a_online=view.online))
            self.change(Variant.pending_espocrm, kind_a)
            return
        if a_changed and view.key in {item.key for item in self.items}:
            # Advoware moved the entry onto a value EspoCRM has: both sides moved to the same new value
            # (a match), or a person moved a value between entries (moves.py); not a conflict either way
            self.unlinked.add(view.id)
            self.change(Variant.moved_on_both_sides, kind_a)
            return
        note = None
        if a_changed and comparison_key(view.array, view.tlf) != comparison_key(view.array, link.value):
            note = (f"Kommunikation: the Advoware value {view.tlf!r} ({kind_a.name}) was changed in Advoware but "
                    f"deleted in EspoCRM; EspoCRM wins, the value is removed from Advoware.")
        variant = Variant.C3 if a_changed else Variant.Var2
        self.blank(view, variant, variant=variant, kind=kind_a, note=note)
        self.blank_links[view.id] = link

    def gone_in_advoware(self, link: StatusEntry, view: AdvoView | None, item: EspoItem) -> None:
        base_kind = KommKz(link.kommkz)
        type_changed = item.array == PHONE and not kind_matches_espo_type(base_kind, item.type)
        # The primary flag is not the entry's: EspoCRM moves it by itself (first-becomes-primary),
        # so a primary change never turns a deletion in Advoware into a conflict.
        e_changed = item.value != link.value or type_changed
        if self.mode != ESPO_WINS and not e_changed:
            self.change(Variant.Var3, base_kind)  # the item is not rendered: deleted from EspoCRM
            return
        if self.mode == TO_ESPOCRM:
            self.rows.append(Row(array=item.array, kind=base_kind, espo=item, espo_value=item.value,
                                 espo_type=item.type, follow_primary=False, keep_status=link,
                                 e_primary=item.primary, s_primary=link.primary, pending_restore=True))
            self.change(Variant.pending_espocrm, base_kind)
            return
        kind = base_kind if kind_matches_espo_type(base_kind, item.type) else item.kind
        own = view if view is not None and not view.tlf and view.kind == kind else None
        why = ("changed in EspoCRM; EspoCRM wins" if e_changed
               else "kept in EspoCRM (EspoCRM wins by operator request)")
        note = f"Kommunikation: {item.value!r} ({kind.name}) was deleted in Advoware but {why}: restored in Advoware."
        self.rows.append(Row(array=item.array, kind=kind, espo=item, espo_value=item.value,
                             espo_type=type_for(kind, item), need=True, preferred=own,
                             status_value=item.value, status_kind=kind, s_primary=link.primary,
                             e_primary=item.primary, restore_note=note, espo_type_changed=type_changed))
        self.change(Variant.restore_Var3, kind)

    def override_note(self, advo_value: str, espo_value: str, kind: KommKz) -> str:
        why = "EspoCRM wins by operator request" if self.mode == ESPO_WINS else "changed on both sides; EspoCRM wins"
        note = (f"Kommunikation: the Advoware value {advo_value!r} ({kind.name}) was overridden by the EspoCRM "
                f"value {espo_value!r} ({why}).")
        self.notes.append(note)
        return note

    def pair_unlinked(self) -> None:
        """The initial-sync rule, applied every run: equal values on both sides are one entry."""
        for exact in (True, False):
            for item in list(self.free):
                for view in self.pool:
                    if view.array == item.array and (view.tlf == item.value if exact else view.key == item.key):
                        self.free.remove(item)
                        self.pool.remove(view)
                        self.match(item, view)
                        break

    def match(self, item: EspoItem, view: AdvoView) -> None:
        known = view.kind_reported or isinstance(view.marker, (SyncMarker, SlotMarker))
        kind = view.kind if known else item.kind
        row = Row(array=item.array, kind=kind, espo=item, advo=view, origin=view,
                  a_online=view.online, e_primary=item.primary)
        if self.mode == ESPO_WINS and known and not kind_matches_espo_type(view.kind, item.type):
            kind = row.kind = item.kind
            row.advo, row.need = None, True
            self.blank(view, "type change")
        if self.mode == TO_ESPOCRM:
            row.espo_value, row.status_value, row.advo_value = item.value, view.tlf, None
            row.follow_primary = False
        else:
            row.espo_value = row.status_value = row.advo_value = item.value
        row.status_kind = kind
        row.espo_type = type_for(kind, item)
        self.rows.append(row)
        self.change(Variant.match, kind)

    def new_on_one_side(self) -> None:
        occupied: set[tuple[str, str]] = set()
        for row in self.rows:
            occupied.update(row.keys())
        for view in self.pool:
            if view.key in occupied and self.mode != ESPO_WINS:
                self.change(Variant.duplicate_in_advoware, view.kind)  # a person entered it twice: left alone
                continue
            occupied.add(view.key)
            if self.mode == ESPO_WINS:
                self.blank(view, "Var4 reverted", variant=Variant.revert_Var4, note=(
                    f"Kommunikation: {view.tlf!r} ({view.kind.name}) existed only in Advoware and was removed "
                    f"(EspoCRM wins by operator request)."))
                continue
            self.rows.append(Row(array=view.array, kind=view.kind, advo=view, origin=view, espo_value=view.tlf,
                                 espo_type=espo_type_for_kind(view.kind), advo_value=view.tlf,
                                 follow_primary=self.mode != TO_ESPOCRM, status_value=view.tlf,
                                 status_kind=view.kind, a_online=view.online))
            self.change(Variant.Var4, view.kind)
        for item in self.free:
            if self.mode == TO_ESPOCRM:
                self.rows.append(Row(array=item.array, kind=item.kind, espo=item, espo_value=item.value,
                                     espo_type=item.type, follow_primary=False, e_primary=item.primary))
                self.change(Variant.pending_espocrm, item.kind)
                continue
            self.rows.append(Row(array=item.array, kind=item.kind, espo=item, espo_value=item.value,
                                 espo_type=type_for(item.kind, item), need=True, status_value=item.value, status_kind=item.kind, e_primary=item.primary))
            self.change(Variant.Var1, item.kind)
