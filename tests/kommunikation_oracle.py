"""What a person would check after one Kommunikation `both` sync: kinds, primary, notes, their own text.

`check_sync(before, after, notes)` compares the two sides and the status as
the sync read them (`before`) with both sides after it (`after`) and the
notes it posted. It is shared by the planner fuzzers
(test_kommunikation_convergence.py, on the in-memory world) and the random
end-to-end test (through the simulators), so both see the same properties:

- every note is true: it names values that exist(ed) where it says, in the
  direction it says (an override names a value Advoware changed and
  EspoCRM's value that replaced it in the same entry; a deletion note names
  an entry that is empty now; a restore names a value Advoware deleted);
- a value both sides kept keeps its kind, and its Advoware user text stays
  beside it; EspoCRM's own type change survives;
- an EspoCRM edit (one value vanished, one of the same EspoCRM type
  appeared) lands in the old entry with its kind and user text; a value new
  in EspoCRM with no vanished value of its type gets the type's kind;
- the primary: who chose it (EspoCRM's deliberate move, Advoware's move,
  or nobody) decides which value is primary, and no value inherits a
  primary flag from a value of another type.

Where EspoCRM's data cannot decide (it has no ids), the accepted readings are
named in `AMBIGUOUS`, here and nowhere else; `check_sync` returns the names
of the classes a sync fell into, with the array, so a test can report them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from bitbylaw_tasks.kommunikation.kinds import (EMAIL, PHONE, KommKz, array_for_kind, comparison_key,
                                                espo_type_for_kind, is_plausible_email, kind_matches_espo_type)
from bitbylaw_tasks.kommunikation.markers import parse_bemerkung
from bitbylaw_tasks.kommunikation.status import KommStatus, StatusEntry
from bitbylaw_tasks.kommunikation.views import EspoItem, entry_kind, espo_items

#: The genuinely ambiguous classes: EspoCRM's arrays carry no ids, so these readings cannot be told apart.
AMBIGUOUS = {
    "same_type_edits": (
        "several values of one EspoCRM type (any e-mails) vanished and/or several new ones of that type "
        "appeared in one sync window: which new value replaced which vanished one is unknown (the real "
        "EspoCRM reads primary first and appends an edited value). Accepted: each new value takes the kind "
        "of one vanished entry of its type (or the type's own kind), and notes name the pairing chosen; "
        "never a pairing with an entry Advoware deleted while enough entries Advoware still holds remain."),
    "delete_add_reads_as_edit": (
        "EspoCRM deleted a value and added one of the same EspoCRM type (any e-mail) in one sync window: "
        "exactly what an edit looks like (docs §8, §14), so it is read as one. Accepted: the new value takes "
        "the old entry, its kind, its user text and its primary history (so a primary flag EspoCRM gave the "
        "new value looks like the old one's, and an Advoware primary move wins). Only a test that knows the "
        "human's actions can tell; `check_sync` checks the edit reading strictly."),
}


@dataclass(frozen=True)
class State:
    """Both sides and the stored status at one moment (Advoware entries with their true kommKz)."""

    advoware: tuple
    emails: tuple
    phones: tuple
    status: KommStatus | None
    masked: frozenset = frozenset()  # entry ids GET reports with kommKz 0: their kind is what the sync can know


def _live(entry: dict) -> bool:
    array = array_for_kind(entry["kommKz"]) if entry["kommKz"] else None
    return bool(entry["tlf"]) and array is not None and (array == PHONE or is_plausible_email(entry["tlf"]))


def _key_of_entry(entry: dict) -> tuple:
    return comparison_key(array_for_kind(entry["kommKz"]), entry["tlf"])


def _text(entry: dict) -> str:
    return parse_bemerkung(entry.get("bemerkung")).user_text


def _class(array: str, kind: int) -> str:
    return EMAIL if array == EMAIL else espo_type_for_kind(kind)


def look(kind: int) -> tuple[str, str]:
    """How a kind shows in EspoCRM: its array, and its type for a phone (kinds that look alike pair as edits)."""
    array = array_for_kind(kind)
    return array, _class(array, kind)


class _Side:
    """Lookups over one State."""

    def __init__(self, state: State):
        self.state = state
        status_kinds = {e.advoware_id: e.kommkz for e in state.status.entries} if state.status else {}
        # SPEC §5.4 / docs §14: a kind that GET hides is known only from the marker, the status or the shape
        advoware = [dict(e, kommKz=int(entry_kind(dict(e, kommKz=0), parse_bemerkung(e.get("bemerkung")),
                                                  status_kinds.get(e["id"])) or 0))
                    if e["id"] in state.masked else e for e in state.advoware]
        self.by_id = {e["id"]: e for e in advoware}
        self.live: dict[tuple, list[dict]] = {}
        for entry in advoware:
            if _live(entry):
                self.live.setdefault(_key_of_entry(entry), []).append(entry)
        self.items: dict[tuple, EspoItem] = {item.key: item for item in espo_items(state.emails, state.phones)}
        self.links: list[StatusEntry] = list(state.status.entries) if state.status else []
        self.link_keys = {comparison_key(array_for_kind(l.kommkz), l.value) for l in self.links}

    def holder(self, key) -> dict | None:
        found = self.live.get(key, [])
        return found[0] if len(found) == 1 else None

    def primary(self, array: str) -> tuple | None:
        items = [i for i in self.items.values() if i.array == array]
        chosen = next((i for i in items if i.primary), items[0] if items else None)
        return chosen.key if chosen else None

    def key(self, value: str) -> tuple:
        return comparison_key(EMAIL if "@" in value else PHONE, value)


_V = r"'([^']*)'"
_NOTES = {
    "override": re.compile(rf"the Advoware value {_V} \((\w+)\) was overridden by the EspoCRM value {_V} "
                           r"\((changed on both sides; EspoCRM wins|EspoCRM wins by operator request)\)"),
    "deleted_in_espocrm": re.compile(rf"the Advoware value {_V} \((\w+)\) was changed in Advoware but deleted in "
                                     r"EspoCRM; EspoCRM wins, the value is removed from Advoware"),
    "restored_to": re.compile(rf"{_V} \((\w+)\) was deleted in Advoware but changed in EspoCRM to {_V}; "
                              r"EspoCRM wins: restored in Advoware"),
    "restored": re.compile(rf"{_V} \((\w+)\) was deleted in Advoware but (?:changed in EspoCRM; EspoCRM wins|"
                           r"kept in EspoCRM \(EspoCRM wins by operator request\)): restored in Advoware"),
    "removed_only_in_advoware": re.compile(rf"{_V} \((\w+)\) existed only in Advoware and was removed "
                                           r"\(EspoCRM wins by operator request\)"),
    "moved_overridden": re.compile(rf"{_V} was moved to another entry \((\w+)\) in Advoware; EspoCRM's type "
                                   r"wins, it is removed from that entry"),
}


def parse_note(note: str) -> tuple[str, tuple]:
    for name, pattern in _NOTES.items():
        found = pattern.search(note)
        if found:
            return name, found.groups()
    raise AssertionError(f"a note the oracle does not know: {note!r}")


def check_sync(before: State, after: State, notes: Iterable[str]) -> set[tuple[str, str]]:
    """Assert what a person would check after one `both` sync; return the (ambiguous class, array) it met."""
    b, a = _Side(before), _Side(after)
    classes: set[tuple[str, str]] = set()
    notes = list(notes)
    paired = _check_lineage(b, a, notes, classes)
    _check_notes(b, a, notes)
    _check_kept_values(b, a, paired)
    for array in (EMAIL, PHONE):
        _check_primary(b, a, array)
    return classes


def check_notes(before: State, after: State, notes: Iterable[str]) -> None:
    """Every note of a sync in any direction is true (`check_sync` includes this for `both`)."""
    _check_notes(_Side(before), _Side(after), list(notes))


def _vanished_and_new(b: _Side, a: _Side) -> tuple[dict, dict]:
    """Per (array, EspoCRM class): the links whose value EspoCRM no longer has; EspoCRM's values new to both.

    A new EspoCRM value an Advoware entry took too is matched there (not new) — unless EspoCRM's
    side overrode that entry, so the value needs another entry after all.
    """
    vanished: dict[tuple, list[StatusEntry]] = {}
    for link in b.links:
        array = array_for_kind(link.kommkz)
        if array and comparison_key(array, link.value) not in b.items:
            vanished.setdefault((array, _class(array, link.kommkz)), []).append(link)
    new: dict[tuple, list[EspoItem]] = {}
    for item in b.items.values():
        matched = any(_live(after) and _key_of_entry(after) == item.key
                      for e in b.live.get(item.key, []) if (after := a.by_id.get(e["id"])) is not None)
        if item.key not in b.link_keys and not matched:
            new.setdefault((item.array, _class(item.array, item.kind)), []).append(item)
    return vanished, new


def _advoware_deleted(b: _Side, link: StatusEntry) -> bool:
    entry = b.by_id.get(link.advoware_id)
    return entry is None or not entry["tlf"]


def _check_lineage(b: _Side, a: _Side, notes: list[str], classes: set[tuple[str, str]]) -> set[tuple]:
    """EspoCRM edits: the new value takes the vanished value's entry, kind and user text. Returns the keys checked."""
    vanished, new = _vanished_and_new(b, a)
    checked: set[tuple] = set()
    for group, items in new.items():
        links = vanished.get(group, [])
        for item in items:
            entry = a.holder(item.key)
            assert entry is not None, f"EspoCRM's new value {item.value!r} is not in Advoware (once)"
            checked.add(item.key)
            if not links:  # nothing it could have replaced: the kind of its type
                assert entry["kommKz"] == item.kind, (item.value, entry["kommKz"], item.kind, "kind of a new value")
                continue
            if len(links) == 1 and len(items) == 1:
                _check_edit(b, entry, links[0], item, notes)
                continue
            classes.add(("same_type_edits", item.array))
            allowed = {l.kommkz for l in links} | {int(item.kind)} | {
                b.by_id[l.advoware_id]["kommKz"] for l in links if l.advoware_id in b.by_id}
            assert entry["kommKz"] in allowed, (item.value, entry["kommKz"], allowed, "same_type_edits")
        held = [l for l in links if not _advoware_deleted(b, l)]
        if len(items) <= len(held):  # the tie-break: entries Advoware still holds are paired first
            for link in links:
                if _advoware_deleted(b, link):
                    assert not any(f"{link.value!r}" in n and "deleted in Advoware" in n for n in notes), \
                        (f"paired with {link.value!r}, which Advoware deleted, while entries it holds were free",
                         notes)
    return checked


def _check_edit(b: _Side, entry: dict, link: StatusEntry, item: EspoItem, notes: list[str]) -> None:
    """One value of a type vanished, one of that type appeared: an edit (docs §8), whatever Advoware did."""
    old = b.by_id.get(link.advoware_id)
    what = f"EspoCRM edit {link.value!r} -> {item.value!r}"
    if old is not None and old["tlf"] and b.key(old["tlf"]) in b.items:
        return  # Advoware moved the entry onto a value EspoCRM has: moves.py binds it there instead
    fits = old is not None and (item.array == EMAIL or kind_matches_espo_type(old["kommKz"], item.type))
    if fits:
        assert entry["id"] == old["id"], (what, "landed in another entry", entry, old)
        assert _text(entry) == _text(old), (what, "user text not kept", _text(entry), _text(old))
        assert entry["kommKz"] == old["kommKz"], (what, "kind", entry["kommKz"], old["kommKz"])
    elif old is None:
        assert entry["kommKz"] == link.kommkz, (what, "kind of the entry Advoware removed", entry["kommKz"])
    if old is None or not old["tlf"]:
        assert any(f"{link.value!r}" in n and f"to {item.value!r}" in n for n in notes), \
            (what, "Advoware deleted the entry: a note must say EspoCRM's edit restored it", notes)


def _check_notes(b: _Side, a: _Side, notes: list[str]) -> None:
    """Every note is true: the values it names, where it says, and what became of them."""
    link_by_id = {l.advoware_id: l for l in b.links}
    for note in notes:
        name, values = parse_note(note)
        if name in ("override", "deleted_in_espocrm"):
            advo_value = values[0]
            entries = b.live.get(b.key(advo_value), [])
            assert entries, (note, "names a value Advoware did not hold")
            assert b.key(advo_value) not in b.items, (note, "EspoCRM had that value: nothing was overridden")
            assert b.key(advo_value) not in a.live and b.key(advo_value) not in a.items, (note, "it is still there")
            link = next((link_by_id[e["id"]] for e in entries if e["id"] in link_by_id), None)
            assert link is not None and b.key(link.value) != b.key(advo_value), (note, "Advoware did not change it")
            if "operator request" not in note:
                assert link.value not in {i.value for i in b.items.values()}, (note, "EspoCRM did not change it")
            if name == "override":
                espo_value = values[2]
                assert b.key(espo_value) in b.items and b.key(espo_value) in a.live, (note, "EspoCRM's value")
        elif name in ("restored_to", "restored"):
            old, new = values[0], values[2] if name == "restored_to" else values[0]
            assert b.key(new) in b.items and b.key(new) in a.live, (note, "the restored value is missing")
            links = [l for l in b.links if (l.value == old if name == "restored_to" else b.key(l.value) == b.key(old))]
            assert links, (note, "names no value as last synced")
            assert any(_advoware_deleted(b, link) for link in links), (note, "Advoware did not delete that entry")
            assert a.holder(b.key(new))["kommKz"] == KommKz[values[1]], (note, "names the wrong kind")
        elif name == "removed_only_in_advoware":
            key = b.key(values[0])
            assert key in b.live and key not in b.items and key not in a.live, (note, "not a value only Advoware had")
        else:
            key, moved = b.key(values[0]), b.live.get(b.key(values[0]), [])
            assert moved and all(_key_of_entry(a.by_id[e["id"]]) != key for e in moved if a.by_id[e["id"]]["tlf"]), \
                (note, "the moved entry still holds it")


def _check_kept_values(b: _Side, a: _Side, checked: set[tuple]) -> None:
    """A value both sides kept: same kind (unless a side changed it), user text beside it, EspoCRM's type."""
    for link in b.links:
        array = array_for_kind(link.kommkz)
        key = comparison_key(array, link.value)
        item, entry = b.items.get(key), b.by_id.get(link.advoware_id)
        if item is None or entry is None or not _live(entry) or _key_of_entry(entry) != key or key in checked:
            continue
        if len(b.live.get(key, [])) != 1:
            continue  # a person's duplicate: left alone
        after = a.holder(key)
        assert after is not None, (link.value, "kept on both sides, gone after the sync")
        type_kept = array == EMAIL or kind_matches_espo_type(entry["kommKz"], item.type)
        if type_kept:
            assert after["kommKz"] == entry["kommKz"], (link.value, "kind", after["kommKz"], entry["kommKz"])
            assert _text(after) == _text(entry), (link.value, "user text moved away", _text(after), _text(entry))
        elif entry["kommKz"] == link.kommkz:  # only EspoCRM changed the type: it survives
            item_after = a.items.get(key)
            assert item_after is not None and item_after.type == item.type, (link.value, "EspoCRM's type lost")


def _check_primary(b: _Side, a: _Side, array: str) -> None:
    """Who chose the primary decides it; a value never inherits the flag of a value of another type."""
    after = a.primary(array)
    if after is None:
        return
    status = next((comparison_key(array, l.value) for l in b.links
                   if l.primary and array_for_kind(l.kommkz) == array), None)
    espo = b.primary(array)
    online = {_key_of_entry(e) for es in b.live.values() for e in es if e["online"] and _key_of_entry(e)[0] == array}
    kept = set()  # linked values both sides still hold, in the entry they were linked to
    for link in b.links:
        key, entry = comparison_key(array, link.value), b.by_id.get(link.advoware_id)
        if key in b.items and entry is not None and _live(entry) and _key_of_entry(entry) == key:
            kept.add(key)
    stale = False  # a `to_espocrm` run may keep a vanished primary pending beside a link that took its value
    if status is not None and sum(comparison_key(array, l.value) == status for l in b.links) > 1:
        link = next(l for l in b.links if l.primary and comparison_key(array, l.value) == status)
        entry = b.by_id.get(link.advoware_id)  # the primary's own entry decides whether it still exists
        stale = entry is None or not _live(entry) or _key_of_entry(entry) != status
        if stale:
            kept.discard(status)
    if espo == status and status in kept and online == {status} and status in a.items:
        assert after == status, ("nobody moved the primary", array, after, status)
    if espo == status and status in a.items and len(online - {status}) == 1 and status in kept:
        (chosen,) = online - {status}
        if chosen in kept and chosen in a.items:
            assert after == chosen, ("Advoware moved the primary", array, after, chosen)
    if espo != status and espo in kept and status in b.items and not stale and espo in a.items:
        assert after == espo, ("EspoCRM moved the primary", array, after, espo)
    # no inheritance across types: the primary after is a value someone chose or held the flag before,
    # or an EspoCRM edit of such a value of the same type, or EspoCRM's own fallback (its first value)
    vanished, new = _vanished_and_new(b, a)
    heirs = set()
    for (arr, group), links in vanished.items():
        if any(l.primary or b.by_id.get(l.advoware_id, {}).get("online") for l in links):
            heirs |= {item.key for item in new.get((arr, group), [])}
    for link in b.links:  # such an entry, whatever value either side gave it (a kind change moves it)
        entry = b.by_id.get(link.advoware_id)
        if comparison_key(array, link.value) in {espo, status} or (entry is not None and entry["online"]):
            heirs |= {_key_of_entry(e) for e in (entry, a.by_id.get(link.advoware_id)) if e is not None and _live(e)}
            heirs.add(comparison_key(array, link.value))
    first = next((i.key for i in a.items.values() if i.array == array), None)
    allowed = {espo, status, first} | online | heirs
    assert after in allowed, ("a primary nobody chose", array, after, sorted(allowed, key=str))
