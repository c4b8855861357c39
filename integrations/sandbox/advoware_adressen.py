"""The Advoware simulator's Adressen of a Beteiligter and their quirks (SPEC §3.2, §11).

A mixin of `AdvowareState` (it shares the lock, the random source and the
rowId generator). Each address is kept in the Beteiligter's row as a list in
Advoware's order; `reihenfolgeIndex` is the 1-based position in that list, so
it shifts when a person inserts or removes an address (the admin API), and is
not an id. The quirks:
- POST accepts all 11 fields and appends the address (a POSTed main address
  takes the flag from the old one: one main address per party);
- PUT `…/Adressen/{reihenfolgeIndex}` replaces only `strasse`, `plz`, `ort`,
  `anschrift` (unsent ones are cleared, as every Advoware PUT); every other
  field is silently ignored;
- DELETE answers 403; `gueltigBis` can never be set after creation;
- an empty field reads as `null` or as `""`, decided per address, field and
  write (a stable hash), so the same address may change its empties after a write.
Hidden from the API: each address's internal `_key` (the truth tests use).
"""
from __future__ import annotations

import hashlib

from integrations.sandbox.advoware_common import SimError, advoware_date

ADRESSE_FIELDS = ("strasse", "plz", "ort", "land", "postfach", "postfachPlz", "anschrift", "bemerkung",
                  "standardAnschrift", "gueltigVon", "gueltigBis")
ADRESSE_WRITABLE = ("strasse", "plz", "ort", "anschrift")
ADRESSE_DATES = ("gueltigVon", "gueltigBis")
# An assumption (the real limits are unknown): Advoware's address columns refuse longer text with 400.
MAX_TEXT = 255


def _text(data: dict, name: str):
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SimError(400, f"{name}: expected a string")
    if len(value) > MAX_TEXT:
        raise SimError(400, f"{name}: longer than {MAX_TEXT} characters")
    return value


class AdressenMixin:
    """Adressen storage and behaviour; mixed into `AdvowareState` (which calls `clear_adressen`)."""

    def clear_adressen(self) -> None:
        self.next_adresse_key = 1
        self.empty_as_null_ratio = getattr(self, "empty_as_null_ratio", 0.5)

    # --- rendering ---
    def _empty_as_null(self, address: dict, name: str) -> bool:
        digest = hashlib.sha256(f"{self.seed}:{address['_key']}:{address['_writes']}:{name}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2 ** 64 < self.empty_as_null_ratio

    def render_adresse(self, address: dict, index: int, *, truth: bool = False) -> dict:
        """An address as GET shows it: `reihenfolgeIndex` first, empties as null or "" (truth: None)."""
        out = {"reihenfolgeIndex": index}
        for name in ADRESSE_FIELDS:
            value = address[name]
            if value is None and name != "standardAnschrift" and not truth:
                value = None if self._empty_as_null(address, name) else ""
            out[name] = value
        if truth:
            out["_key"] = address["_key"]
        return out

    def _adressen(self, betnr) -> list[dict]:
        return self._row(betnr).setdefault("adressen", [])

    # --- the API ---
    def list_adressen_api(self, betnr) -> list[dict]:
        """GET …/Adressen: the party's addresses in `reihenfolgeIndex` order."""
        with self.lock:
            return [self.render_adresse(a, i) for i, a in enumerate(self._adressen(betnr), start=1)]

    @staticmethod
    def _adresse_values(data: dict) -> dict:
        """The 11 fields of a request body, validated; empty ones None."""
        if not isinstance(data, dict):
            raise SimError(400, "body must be a JSON object")
        address = {name: _text(data, name) for name in ADRESSE_FIELDS
                   if name not in ADRESSE_DATES and name != "standardAnschrift"}
        for name in ADRESSE_DATES:
            address[name] = advoware_date(data.get(name), name)
        main = data.get("standardAnschrift", False)
        if main is None:
            main = False
        if not isinstance(main, bool):
            raise SimError(400, "standardAnschrift: expected a boolean")
        address["standardAnschrift"] = main
        return address

    def _new_adresse(self, data: dict) -> dict:
        address = self._adresse_values(data)
        address.update(_key=self.next_adresse_key, _writes=0)
        self.next_adresse_key += 1
        return address

    def _insert_adresse(self, betnr, data: dict, position: int | None = None) -> tuple[dict, int]:
        adressen = self._adressen(betnr)
        address = self._new_adresse(data)
        if address["standardAnschrift"]:
            for other in adressen:
                other["standardAnschrift"] = False
        at = len(adressen) if position is None else max(0, min(len(adressen), position - 1))
        adressen.insert(at, address)
        return address, at + 1

    def create_adresse(self, betnr, data: dict) -> dict:
        """POST …/Adressen: a new address from all 11 fields, appended; the answer shows its position."""
        with self.lock:
            address, index = self._insert_adresse(betnr, data)
            return self.render_adresse(address, index)

    def _at(self, betnr, index) -> dict:
        adressen = self._adressen(betnr)
        try:
            position = int(index)
        except (TypeError, ValueError):
            raise SimError(404, "Adresse not found") from None
        if not 1 <= position <= len(adressen):
            raise SimError(404, "Adresse not found")
        return adressen[position - 1]

    def replace_adresse(self, betnr, index, data: dict) -> dict:
        """PUT …/Adressen/{reihenfolgeIndex}: strasse/plz/ort/anschrift replaced, the rest silently ignored."""
        if not isinstance(data, dict):
            raise SimError(400, "body must be a JSON object")
        values = {name: _text(data, name) for name in ADRESSE_WRITABLE}
        with self.lock:
            address = self._at(betnr, index)
            address.update(values)
            address["_writes"] += 1
            return self.render_adresse(address, int(index))

    # --- the Python API for tests: truth and a person's edits in Advoware ---
    def adressen_truth(self, betnr: int) -> list[dict]:
        """The stored addresses in order (empties None, with their hidden `_key`)."""
        with self.lock:
            return [self.render_adresse(a, i, truth=True) for i, a in enumerate(self._adressen(betnr), start=1)]

    def human_add_adresse(self, betnr: int, fields: dict, position: int | None = None) -> dict:
        """A person adds an address in Advoware, at `position` (1-based; None: the end)."""
        with self.lock:
            address, index = self._insert_adresse(betnr, fields, position)
            return self.render_adresse(address, index, truth=True)

    def human_update_adresse(self, betnr: int, index: int, **fields) -> dict:
        """A person edits an address in Advoware: any of the 11 fields (read-only ones included)."""
        unknown = set(fields) - set(ADRESSE_FIELDS)
        if unknown:
            raise SimError(400, "not editable: " + ", ".join(sorted(unknown)))
        with self.lock:
            address = self._at(betnr, index)
            merged = {name: address[name] for name in ADRESSE_FIELDS}
            merged.update(fields)
            fresh = self._adresse_values(merged)
            if fresh["standardAnschrift"]:
                for other in self._adressen(betnr):
                    other["standardAnschrift"] = False
            address.update({name: fresh[name] for name in ADRESSE_FIELDS})
            address["_writes"] += 1
            return self.render_adresse(address, int(index), truth=True)

    def human_remove_adresse(self, betnr: int, index: int) -> None:
        """A person removes an address in Advoware (the API answers 403): later positions shift down."""
        with self.lock:
            self._adressen(betnr).remove(self._at(betnr, index))
