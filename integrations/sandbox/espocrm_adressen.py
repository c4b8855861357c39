"""The EspoCRM simulator's `CAdresse` records: a party's addresses, their hooks and webhooks (SPEC §11).

A `CAdresse` belongs to one `CBeteiligte` (link `beteiligte`: attributes
`beteiligteId`, `beteiligteName`; the party lists them as its `adressen`).
Saves follow the same pipeline as `CBeteiligte` (`EspoState.save`): sanitising,
the extension's hooks (create -> `pending_sync` unless the integration user sets
a status; a user's change of a sync-relevant field of a `clean` address ->
`dirty`; `""` and null are the same emptiness), `modifiedAt`/`versionNumber` on
every save, optimistic concurrency, and `CAdresse.create|update|delete` webhook
events. Routes: `GET|POST /api/v1/CAdresse`, `GET|PUT|PATCH|DELETE …/{id}`,
`GET /api/v1/CBeteiligte/{id}/adressen`; admin: `POST|PATCH|DELETE /_sandbox/human/adresse[/{id}]`.
"""
from __future__ import annotations

import copy

from flask import Flask, g, jsonify, request

from integrations.sandbox.espocrm_fields import EspoError, sanitize_value, validation_error

ADRESSE = "CAdresse"
CONTENT = ("strasse", "plz", "ort", "land", "postfach", "postfachPlz", "anschrift", "bemerkung", "gueltigVon",
           "gueltigBis", "isPrimary", "isActive")
ADRESSE_FIELDS: dict[str, str] = {
    "id": "id", "name": "varchar", "beteiligteId": "id", "beteiligteName": "varchar",
    "strasse": "varchar", "plz": "varchar", "ort": "varchar", "land": "varchar", "postfach": "varchar",
    "postfachPlz": "varchar", "anschrift": "varchar", "bemerkung": "text", "gueltigVon": "date",
    "gueltigBis": "date", "isPrimary": "bool", "isActive": "bool", "assignedUserId": "id",
    "createdAt": "datetime", "modifiedAt": "datetime",
    "syncStatus": "enum", "advowareLastSync": "datetime", "syncErrorMessage": "text",
    "advowareSnapshot": "longtext", "advowareIndex": "int", "advowareManualAction": "text",
    "versionNumber": "int",
}
READ_ONLY = frozenset({"id", "createdAt", "modifiedAt", "versionNumber", "beteiligteName"})
SYNC_RELEVANT = frozenset(CONTENT)
DEFAULTS = {"isPrimary": False, "isActive": True}


def _empty(value) -> bool:
    return value is None or value == ""


def display_name(record: dict) -> str | None:
    """`strasse, plz ort` (what the list shows), else the free address line."""
    town = " ".join(p for p in (record.get("plz"), record.get("ort")) if p)
    return ", ".join(p for p in (record.get("strasse"), town) if p) or record.get("anschrift") or None


def sanitize(data: dict, *, creating: bool) -> dict:
    """The known, writable attributes of `data`, typed as EspoCRM stores them."""
    clean: dict = {}
    for name, value in data.items():
        kind = ADRESSE_FIELDS.get(name)
        if kind is None or name in READ_ONLY:
            continue
        if kind == "bool":
            if value is None:
                value = DEFAULTS[name]
            if not isinstance(value, bool):
                raise validation_error(name, "valid")
            clean[name] = value
            continue
        clean[name] = sanitize_value(name, kind, value)
    if creating:
        for name, value in DEFAULTS.items():
            clean.setdefault(name, value)
    return clean


class AdresseStore:
    """The CAdresse records of one `EspoState` (its lock, clock, ids, users and webhook hub)."""

    def __init__(self, state):
        self.state = state
        self.reset()

    def reset(self) -> None:
        self.records: dict[str, dict] = {}

    def get(self, record_id: str) -> dict:
        with self.state.lock:
            record = self.records.get(record_id)
            if record is None:
                raise EspoError(404, "Not Found")
            return self._render(record)

    def _render(self, record: dict) -> dict:
        out = copy.deepcopy(record)
        party = self.state.records.get(record.get("beteiligteId") or "")
        out["beteiligteName"] = (party or {}).get("name")  # the link's name: the party's `name` (a company's is empty)
        return out

    def all_records(self) -> list[dict]:
        with self.state.lock:
            return [self._render(r) for r in self.records.values()]

    def save(self, record_id: str | None, data: dict, user: dict, *, version_number: int | None = None) -> dict:
        if not isinstance(data, dict):
            raise EspoError(400, "Bad request: body must be a JSON object")
        state = self.state
        creating = record_id is None
        clean = sanitize(data, creating=creating)
        with state.lock:
            if creating:
                stored = {name: None for name in ADRESSE_FIELDS}
                stored["versionNumber"] = 0
            else:
                if record_id not in self.records:
                    raise EspoError(404, "Not Found")
                stored = self.records[record_id]
                current = stored.get("versionNumber")
                if version_number is not None and state.optimistic_concurrency and version_number != current:
                    conflicting = [n for n, v in clean.items() if v != stored.get(n)]
                    if conflicting:
                        raise EspoError(409, "modified", {"values": {n: stored.get(n) for n in conflicting},
                                                          "versionNumber": current})
            new = copy.deepcopy(stored)
            new.update(clean)
            new["name"] = display_name(new)
            self._hooks(new, stored, clean, user, creating)
            changed = [n for n in ADRESSE_FIELDS if new.get(n) != stored.get(n)]
            now = state.now_string()
            if creating:
                new["id"] = state.new_id()
                new["createdAt"] = now
            new["modifiedAt"] = now
            new["versionNumber"] = (stored.get("versionNumber") or 0) + 1
            self.records[new["id"]] = new
            rendered = self._render(new)
            if creating:
                state.hooks.emit(f"{ADRESSE}.create", new["id"], rendered, user["id"])
            else:
                payload = {n: rendered[n] for n in changed if n not in ("modifiedAt", "versionNumber")}
                if payload:
                    payload["id"] = new["id"]
                    state.hooks.emit(f"{ADRESSE}.update", new["id"], payload, user["id"])
            return rendered

    @staticmethod
    def _hooks(new: dict, stored: dict, clean: dict, user: dict, creating: bool) -> None:
        """The extension's `Hooks/CAdresse/SyncStatus.php`."""
        if creating:
            if not (user["integration"] and clean.get("syncStatus")):
                new["syncStatus"] = "pending_sync"
            return
        if user["integration"] or stored.get("syncStatus") != "clean" or new.get("syncStatus") != "clean":
            return
        if any(not (_empty(new.get(n)) and _empty(stored.get(n))) and new.get(n) != stored.get(n)
               for n in SYNC_RELEVANT):
            new["syncStatus"] = "dirty"

    def delete(self, record_id: str, user: dict) -> None:
        if user["integration"]:
            raise EspoError(403, "No delete access.")
        with self.state.lock:
            if self.records.pop(record_id, None) is None:
                raise EspoError(404, "Not Found")
            self.state.hooks.emit(f"{ADRESSE}.delete", record_id, {"id": record_id}, user["id"])

    def dump(self) -> list[dict]:
        with self.state.lock:
            return copy.deepcopy(list(self.records.values()))

    def load(self, records: list[dict]) -> None:
        with self.state.lock:
            self.records = {r["id"]: {n: r.get(n) for n in ADRESSE_FIELDS} for r in records}


def _version() -> int | None:
    header = request.headers.get("X-Version-Number")
    if header in (None, ""):
        return None
    try:
        return int(header)
    except ValueError:
        raise EspoError(400, "Bad X-Version-Number") from None


def register_adresse_routes(app: Flask, state, api: str, admin: str, search, json_body) -> None:
    """The CAdresse REST routes and their `/_sandbox/human/adresse` admin twins (before the catch-all)."""
    store: AdresseStore = state.adressen

    @app.get(f"{api}/{ADRESSE}")
    def list_adressen():
        return jsonify(search(store.all_records(), ADRESSE_FIELDS))

    @app.post(f"{api}/{ADRESSE}")
    def create_adresse():
        return jsonify(store.save(None, json_body(), g.espo_user))

    @app.get(f"{api}/{ADRESSE}/<record_id>")
    def get_adresse(record_id):
        return jsonify(store.get(record_id))

    @app.route(f"{api}/{ADRESSE}/<record_id>", methods=["PUT", "PATCH"])
    def update_adresse(record_id):
        return jsonify(store.save(record_id, json_body(), g.espo_user, version_number=_version()))

    @app.delete(f"{api}/{ADRESSE}/<record_id>")
    def delete_adresse(record_id):
        store.delete(record_id, g.espo_user)
        return jsonify(True)

    @app.get(f"{api}/CBeteiligte/<record_id>/adressen")
    def party_adressen(record_id):
        state.get(record_id)
        return jsonify(search([r for r in store.all_records() if r["beteiligteId"] == record_id], ADRESSE_FIELDS))

    def _user():
        return state.user_by_name(request.args.get("user", "alice"))

    @app.post(f"{admin}/human/adresse")
    def human_create_adresse():
        return jsonify(store.save(None, json_body(), _user()))

    @app.route(f"{admin}/human/adresse/<record_id>", methods=["PUT", "PATCH"])
    def human_update_adresse(record_id):
        return jsonify(store.save(record_id, json_body(), _user()))

    @app.delete(f"{admin}/human/adresse/<record_id>")
    def human_delete_adresse(record_id):
        store.delete(record_id, _user())
        return jsonify(True)
