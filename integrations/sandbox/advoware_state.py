"""The Advoware simulator's data: Beteiligte with their Kommunikationen, and the quirks of reading/writing them.

`AdvowareState` keeps the truth (the real kommKz of every entry, deleted
rows) and renders what the API shows (kommKz 0 for a deterministic subset).
Every method takes the one re-entrant lock, so HTTP handlers and tests may
call it from any thread. Termine and Mitarbeiter live in `advoware_termine`.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import random
import re
import threading

from integrations.sandbox.advoware_adressen import AdressenMixin
from integrations.sandbox.advoware_common import SimError, advoware_date
from integrations.sandbox.advoware_termine import TermineMixin

WRITABLE = ("name", "vorname", "anrede", "titel", "briefAnrede", "geburtsdatum", "rechtsform", "zusatz")
READ_ONLY = ("betNr", "rowId", "kurzname", "art", "angelegtAm", "geaendertAm")
KOMM_WRITABLE = ("tlf", "bemerkung", "online")
KOMM_KINDS = {1: "TelGesch", 2: "FaxGesch", 3: "Mobil", 4: "MailGesch", 5: "Internet", 6: "TelPrivat",
              7: "FaxPrivat", 8: "MailPrivat", 9: "AutoTelefon", 10: "Sonstige", 11: "EPost", 12: "Bea"}
FIRST_BETNR = 100001
_FOLD = str.maketrans({"Ä": "AE", "Ö": "OE", "Ü": "UE", "ß": "SS", "ẞ": "SS"})


class AdvowareState(TermineMixin, AdressenMixin):
    """All simulated Advoware data, thread-safe; the Python API tests use to act as a human."""

    def __init__(self, *, kommkz_zero_ratio: float = 0.5, seed: int = 1234, get_returns_object: bool = False):
        self.lock = threading.RLock()
        self.seed = seed
        self.kommkz_zero_ratio = kommkz_zero_ratio
        self.get_returns_object = get_returns_object
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self.random = random.Random(self.seed)
            self.beteiligte: dict[int, dict] = {}
            self.deleted: set[int] = set()
            self.next_betnr = FIRST_BETNR
            self.next_komm_id = 1
            self.clear_termine()
            self.clear_adressen()

    # --- helpers ---
    def new_row_id(self) -> str:
        """A fresh base64 rowId (40 characters), as Advoware hands out on every write of a row."""
        with self.lock:
            return base64.b64encode(self.random.randbytes(30)).decode("ascii")

    def reports_kommkz_zero(self, komm_id: int) -> bool:
        """Whether GET shows kommKz 0 for this entry: a stable hash of (seed, id) below the ratio."""
        digest = hashlib.sha256(f"{self.seed}:{komm_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2 ** 64 < self.kommkz_zero_ratio

    def _row(self, betnr) -> dict:
        try:
            key = int(betnr)
        except (TypeError, ValueError):
            raise SimError(404, "Beteiligter not found") from None
        row = self.beteiligte.get(key)
        if row is None:
            raise SimError(404, "Beteiligter not found")
        return row

    def _entry(self, row: dict, komm_id) -> dict:
        for entry in row["kommunikation"]:
            if str(entry["id"]) == str(komm_id):
                return entry
        raise SimError(404, "Kommunikation not found")

    @staticmethod
    def _writable_values(data: dict, *, require_name: bool = True) -> dict:
        """The writable fields of a request body, validated; absent ones are None (= cleared)."""
        values = {}
        for name in WRITABLE:
            value = data.get(name)
            if name == "geburtsdatum":
                value = advoware_date(value, "geburtsdatum")
            elif value is not None and not isinstance(value, str):
                raise SimError(400, f"{name}: expected a string")
            values[name] = value if value != "" else None
        if require_name and not values["name"]:
            raise SimError(400, "name is required")
        return values

    def render(self, row: dict, *, truth: bool = False) -> dict:
        """A Beteiligter as the API shows it (kommKz 0 for the masked subset unless `truth`)."""
        out = {key: row[key] for key in ("betNr", "rowId", "kurzname", "art")}
        out.update({key: row[key] for key in WRITABLE})
        out.update({"angelegtAm": row["angelegtAm"], "geaendertAm": row["geaendertAm"]})
        kommunikation = []
        for entry in row["kommunikation"]:
            shown = dict(entry)
            if not truth and self.reports_kommkz_zero(entry["id"]):
                shown["kommKz"] = 0
            kommunikation.append(shown)
        out["kommunikation"] = kommunikation
        return out

    # --- Beteiligte through the API ---
    def create_beteiligte(self, data: dict) -> dict:
        """POST: a new Beteiligter from the writable fields (read-only ones are ignored)."""
        if not isinstance(data, dict):
            raise SimError(400, "body must be a JSON object")
        values = self._writable_values(data)
        with self.lock:
            betnr = self.next_betnr
            self.next_betnr += 1
            person = bool(values["vorname"])
            folded = (values["name"] or "").upper().translate(_FOLD)
            kurz = re.sub(r"[^A-Z0-9]", "", folded)[:12] or f"BET{betnr}"
            row = {"betNr": betnr, "rowId": self.new_row_id(), "kurzname": kurz,
                   # `art` is fixed at creation: the person/company signal is `vorname`, not this.
                   "art": "Person" if person else "Organisation",
                   # The original found that Advoware delivers no usable timestamps: rowId is the signal.
                   "angelegtAm": None, "geaendertAm": None, "kommunikation": []}
            row.update(values)
            # A nested `kommunikation` list is ignored: entries are created through their own endpoint.
            self.beteiligte[betnr] = row
            return self.render(row)

    def get_beteiligte_api(self, betnr) -> dict:
        with self.lock:
            return self.render(self._row(betnr))

    def replace_beteiligte(self, betnr, data: dict) -> dict:
        """PUT: full replace of the writable fields; unsent writable fields are cleared, others ignored."""
        if not isinstance(data, dict):
            raise SimError(400, "body must be a JSON object")
        values = self._writable_values(data)
        with self.lock:
            row = self._row(betnr)
            row.update(values)
            row["rowId"] = self.new_row_id()
            return self.render(row)

    # --- Kommunikationen through the API ---
    def _add_kommunikation(self, row: dict, data: dict) -> dict:
        if not isinstance(data, dict):
            raise SimError(400, "body must be a JSON object")
        kz = data.get("kommKz")
        if not isinstance(kz, int) or isinstance(kz, bool) or kz not in KOMM_KINDS:
            raise SimError(400, "kommKz must be one of 1..12")
        entry = {"id": self.next_komm_id, "rowId": self.new_row_id(), "kommKz": kz}
        self.next_komm_id += 1
        entry.update(self._komm_values(data))
        row["kommunikation"].append(entry)
        return entry

    @staticmethod
    def _komm_values(data: dict) -> dict:
        tlf, bemerkung, online = data.get("tlf"), data.get("bemerkung"), data.get("online", False)
        for name, value in (("tlf", tlf), ("bemerkung", bemerkung)):
            if value is not None and not isinstance(value, str):
                raise SimError(400, f"{name}: expected a string")
        if not isinstance(online, bool):
            raise SimError(400, "online: expected a boolean")
        return {"tlf": tlf or "", "bemerkung": bemerkung or "", "online": online}

    def create_kommunikation(self, betnr, data: dict) -> dict:
        """POST …/Kommunikationen: a new entry; the Beteiligter's rowId stays as it is."""
        with self.lock:
            return dict(self._add_kommunikation(self._row(betnr), data))

    def replace_kommunikation(self, betnr, komm_id, data: dict) -> dict:
        """PUT …/Kommunikationen/{id}: tlf/bemerkung/online replaced, kommKz ignored, new entry rowId."""
        if not isinstance(data, dict):
            raise SimError(400, "body must be a JSON object")
        with self.lock:
            entry = self._entry(self._row(betnr), komm_id)
            entry.update(self._komm_values(data))
            entry["rowId"] = self.new_row_id()
            return dict(entry)

    # --- the Python API for tests: truth and human edits ---
    def get_beteiligte(self, betnr: int) -> dict | None:
        """The stored truth (real kommKz everywhere), or None when deleted/unknown."""
        with self.lock:
            row = self.beteiligte.get(int(betnr))
            return self.render(row, truth=True) if row else None

    def true_kommkz(self, betnr: int, komm_id: int) -> int:
        with self.lock:
            return self._entry(self._row(betnr), komm_id)["kommKz"]

    def human_update_beteiligte(self, betnr: int, **fields) -> dict:
        """A user edits the Beteiligter in Advoware: only the given writable fields change; new rowId."""
        unknown = set(fields) - set(WRITABLE)
        if unknown:
            raise SimError(400, "not editable: " + ", ".join(sorted(unknown)))
        with self.lock:
            row = self._row(betnr)
            for name, value in fields.items():
                row[name] = advoware_date(value, name) if name == "geburtsdatum" else (value or None)
            row["rowId"] = self.new_row_id()
            return self.render(row, truth=True)

    def human_add_kommunikation(self, betnr: int, kommKz: int, tlf: str, bemerkung: str = "",
                                online: bool = False) -> dict:
        with self.lock:
            return dict(self._add_kommunikation(
                self._row(betnr), {"kommKz": kommKz, "tlf": tlf, "bemerkung": bemerkung, "online": online}))

    def human_update_kommunikation(self, betnr: int, komm_id: int, **fields) -> dict:
        """A user edits one entry in Advoware (a human may even change its kind); new entry rowId."""
        unknown = set(fields) - set(KOMM_WRITABLE) - {"kommKz"}
        if unknown:
            raise SimError(400, "not editable: " + ", ".join(sorted(unknown)))
        if "kommKz" in fields and fields["kommKz"] not in KOMM_KINDS:
            raise SimError(400, "kommKz must be one of 1..12")
        with self.lock:
            entry = self._entry(self._row(betnr), komm_id)
            entry.update(fields)
            entry["rowId"] = self.new_row_id()
            return dict(entry)

    def human_delete_kommunikation(self, betnr: int, komm_id: int) -> None:
        """A user removes an entry in the Advoware UI (the API itself answers 403 to DELETE)."""
        with self.lock:
            row = self._row(betnr)
            row["kommunikation"].remove(self._entry(row, komm_id))

    def delete_beteiligte(self, betnr: int) -> None:
        """Deletion as it happens in practice: only in Advoware itself, never through the API."""
        with self.lock:
            self._row(betnr)
            del self.beteiligte[int(betnr)]
            self.deleted.add(int(betnr))

    # --- snapshots ---
    def dump_state(self) -> dict:
        with self.lock:
            return copy.deepcopy({
                "beteiligte": list(self.beteiligte.values()), "deleted": sorted(self.deleted),
                "next_betnr": self.next_betnr, "next_komm_id": self.next_komm_id,
                "next_adresse_key": self.next_adresse_key,
                **self.dump_termine(),
            })

    def load_state(self, data: dict) -> None:
        with self.lock:
            self.clear()
            for row in data.get("beteiligte", []):
                self.beteiligte[int(row["betNr"])] = copy.deepcopy(row)
            self.deleted = {int(b) for b in data.get("deleted", [])}
            self.next_betnr = int(data.get("next_betnr", max(self.beteiligte, default=FIRST_BETNR - 1) + 1))
            ids = [e["id"] for r in self.beteiligte.values() for e in r["kommunikation"]]
            self.next_komm_id = int(data.get("next_komm_id", max(ids, default=0) + 1))
            keys = [a["_key"] for r in self.beteiligte.values() for a in r.get("adressen", [])]
            self.next_adresse_key = int(data.get("next_adresse_key", max(keys, default=0) + 1))
            self.load_termine(data)
