"""The Advoware simulator's Termine (appointments, deadlines, follow-ups) and Mitarbeiter (employees).

A mixin of `AdvowareState`: it shares the state's lock, random source and
rowId generator. Dates are Advoware-style `YYYY-MM-DDT00:00:00`, times
`HH:MM:SS`; a Termin spans `datum`..`datumBis` (inclusive, `datumBis`
defaults to `datum`). PUT is a full replace like every Advoware PUT: a field
not sent is cleared (`art` falls back to `Termin`, `datumBis` to `datum`).
"""
from __future__ import annotations

import copy
import re
from datetime import date

from integrations.sandbox.advoware_common import SimError, advoware_date

ARTEN = ("Termin", "Frist", "Wiedervorlage")
TERMIN_FIELDS = ("frNr", "kuerzel", "art", "datum", "uhrzeitVon", "datumBis", "uhrzeitBis", "ganztaegig",
                 "text", "ort", "notiz", "rowId")
TERMIN_WRITABLE = tuple(f for f in TERMIN_FIELDS if f not in ("frNr", "rowId"))
FIRST_FRNR = 700001
_TIME_RE = re.compile(r"^(?:\d{4}-\d{2}-\d{2}T)?(\d{2}):(\d{2})(?::(\d{2}))?$")


def _time(value, name: str) -> str | None:
    if value in (None, ""):
        return None
    match = _TIME_RE.match(value) if isinstance(value, str) else None
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise SimError(400, f"{name}: expected HH:MM[:SS]")
    return f"{match.group(1)}:{match.group(2)}:{match.group(3) or '00'}"


def _day(value: str) -> date:
    return date.fromisoformat(value[:10])


class TermineMixin:
    """Termine and Mitarbeiter storage and behaviour; mixed into `AdvowareState`."""

    def clear_termine(self) -> None:
        self.mitarbeiter: dict[str, dict] = {}
        self.termine: dict[int, dict] = {}
        self.next_frnr = FIRST_FRNR

    # --- Mitarbeiter ---
    def add_mitarbeiter(self, kuerzel: str, name: str, email: str = "", aktiv: bool = True) -> dict:
        if not kuerzel or not isinstance(kuerzel, str):
            raise SimError(400, "kuerzel is required")
        with self.lock:
            if kuerzel in self.mitarbeiter:
                raise SimError(409, "kuerzel exists")
            record = {"kuerzel": kuerzel, "name": name, "email": email, "aktiv": bool(aktiv)}
            self.mitarbeiter[kuerzel] = record
            return dict(record)

    def human_update_mitarbeiter(self, kuerzel: str, **fields) -> dict:
        unknown = set(fields) - {"name", "email", "aktiv"}
        if unknown:
            raise SimError(400, "not editable: " + ", ".join(sorted(unknown)))
        with self.lock:
            record = self.mitarbeiter.get(kuerzel)
            if record is None:
                raise SimError(404, "Mitarbeiter not found")
            record.update(fields)
            return dict(record)

    def list_mitarbeiter_api(self, aktiv: bool | None = None) -> list[dict]:
        with self.lock:
            return [dict(m) for m in sorted(self.mitarbeiter.values(), key=lambda m: m["kuerzel"])
                    if aktiv is None or m["aktiv"] == aktiv]

    # --- Termine ---
    def _termin_values(self, data: dict) -> dict:
        """Validated writable fields of a Termin body; absent optional ones are cleared."""
        if not isinstance(data, dict):
            raise SimError(400, "body must be a JSON object")
        kuerzel = data.get("kuerzel")
        if kuerzel not in self.mitarbeiter:
            raise SimError(400, "kuerzel: unknown Mitarbeiter")
        art = data.get("art") or "Termin"
        if art not in ARTEN:
            raise SimError(400, "art: expected Termin, Frist or Wiedervorlage")
        datum = advoware_date(data.get("datum"), "datum")
        if datum is None:
            raise SimError(400, "datum is required")
        datum_bis = advoware_date(data.get("datumBis"), "datumBis") or datum
        if _day(datum_bis) < _day(datum):
            raise SimError(400, "datumBis before datum")
        ganztaegig = data.get("ganztaegig", False)
        if not isinstance(ganztaegig, bool):
            raise SimError(400, "ganztaegig: expected a boolean")
        von = None if ganztaegig else _time(data.get("uhrzeitVon"), "uhrzeitVon")
        bis = None if ganztaegig else _time(data.get("uhrzeitBis"), "uhrzeitBis")
        if von and bis and datum == datum_bis and bis < von:
            raise SimError(400, "uhrzeitBis before uhrzeitVon")
        values = {"kuerzel": kuerzel, "art": art, "datum": datum, "uhrzeitVon": von, "datumBis": datum_bis,
                  "uhrzeitBis": bis, "ganztaegig": ganztaegig}
        for name in ("text", "ort", "notiz"):
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise SimError(400, f"{name}: expected a string")
            values[name] = value or None
        return values

    def _termin(self, frnr) -> dict:
        try:
            key = int(frnr)
        except (TypeError, ValueError):
            raise SimError(404, "Termin not found") from None
        record = self.termine.get(key)
        if record is None:
            raise SimError(404, "Termin not found")
        return record

    @staticmethod
    def _render_termin(record: dict) -> dict:
        return {name: record[name] for name in TERMIN_FIELDS}

    def create_termin(self, data: dict) -> dict:
        with self.lock:
            values = self._termin_values(data)
            record = {"frNr": self.next_frnr, **values, "rowId": self.new_row_id()}
            self.next_frnr += 1
            self.termine[record["frNr"]] = record
            return self._render_termin(record)

    def replace_termin(self, frnr, data: dict) -> dict:
        with self.lock:
            record = self._termin(frnr)
            record.update(self._termin_values(data))
            record["rowId"] = self.new_row_id()
            return self._render_termin(record)

    def delete_termin(self, frnr) -> None:
        with self.lock:
            del self.termine[self._termin(frnr)["frNr"]]

    def get_termin_api(self, frnr) -> dict:
        with self.lock:
            return self._render_termin(self._termin(frnr))

    def list_termine_api(self, kuerzel: str | None, start, end) -> list[dict]:
        """The Termine of one employee overlapping [start, end] (both inclusive), by date and time."""
        if not kuerzel:
            raise SimError(400, "kuerzel is required")
        first, last = advoware_date(start, "from"), advoware_date(end, "to")
        if first is None or last is None:
            raise SimError(400, "from and to are required")
        lo, hi = _day(first), _day(last)
        with self.lock:
            hits = [self._render_termin(t) for t in self.termine.values()
                    if t["kuerzel"] == kuerzel and _day(t["datum"]) <= hi and _day(t["datumBis"]) >= lo]
        return sorted(hits, key=lambda t: (t["datum"], t["uhrzeitVon"] or "", t["frNr"]))

    # --- the Python API for tests ---
    def add_termin(self, **fields) -> dict:
        """Create a Termin as a user of Advoware would (same validation as the API)."""
        return self.create_termin(fields)

    def human_update_termin(self, frnr: int, **fields) -> dict:
        """A user edits some fields of a Termin in Advoware (the others stay); new rowId."""
        with self.lock:
            record = self._termin(frnr)
            merged = {name: record[name] for name in TERMIN_WRITABLE}
            if "datum" in fields and "datumBis" not in fields and fields["datum"]:
                # Moving a Termin keeps its length in days, as a calendar UI does.
                length = _day(record["datumBis"]) - _day(record["datum"])
                fields = {**fields, "datumBis": (_day(advoware_date(fields["datum"], "datum")) + length).isoformat()}
            merged.update(fields)
            record.update(self._termin_values(merged))
            record["rowId"] = self.new_row_id()
            return self._render_termin(record)

    def human_delete_termin(self, frnr: int) -> None:
        self.delete_termin(frnr)

    def get_termin(self, frnr: int) -> dict | None:
        with self.lock:
            record = self.termine.get(int(frnr))
            return self._render_termin(record) if record else None

    def dump_termine(self) -> dict:
        with self.lock:
            return copy.deepcopy({"mitarbeiter": list(self.mitarbeiter.values()),
                                  "termine": list(self.termine.values()), "next_frnr": self.next_frnr})

    def load_termine(self, data: dict) -> None:
        with self.lock:
            self.mitarbeiter = {m["kuerzel"]: dict(m) for m in data.get("mitarbeiter", [])}
            self.termine = {int(t["frNr"]): dict(t) for t in data.get("termine", [])}
            self.next_frnr = int(data.get("next_frnr", max(self.termine, default=FIRST_FRNR - 1) + 1))
