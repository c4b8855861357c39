"""EspoCRM's standard CRM entities in the simulator: Lead, Contact, Call, and User/Team reads (SPEC §12).

Shapes follow the real EspoCRM 9.2.7 (checked by tests/test_inbound_espocrm.py
on both): `emailAddress`/`phoneNumber` as the primary values plus the
`…Data` arrays on a read by id (lists leave the arrays out), `name` from first
and last name, enums refused when not an option (400 `validationFailure`),
`Call.duration` in seconds, `parentType`/`parentId` links. `register()` adds
the routes to the simulator app; a note's parent may be any of these records.
"""
from __future__ import annotations

import copy
import re

from flask import Flask, g, jsonify, request

from integrations.sandbox.espocrm_fields import EspoError, MAX_LENGTH, _emails, _phones

API = "/api/v1"
LEAD_STATUSES = ("New", "Assigned", "In Process", "Converted", "Recycled", "Dead")
LEAD_SOURCES = ("", "Call", "Email", "Existing Customer", "Partner", "Public Relations", "Web Site", "Campaign",
                "Other")
CALL_STATUSES = ("Planned", "Held", "Not Held")
CALL_DIRECTIONS = ("Outbound", "Inbound")
PARENT_TYPES = ("Account", "Lead", "Contact", "Opportunity", "Case", "CBeteiligte")
_PERSON = {"id": "id", "name": "varchar", "firstName": "varchar", "lastName": "varchar",
           "salutationName": "varchar", "description": "text", "accountName": "varchar",
           "emailAddressData": "email", "phoneNumberData": "phone", "assignedUserId": "id",
           "createdAt": "datetime", "modifiedAt": "datetime"}
FIELDS = {
    "Lead": {**_PERSON, "status": "enum", "source": "enum", "consentGiven": "bool", "consentAt": "datetime"},
    "Contact": dict(_PERSON),
    "Call": {"id": "id", "name": "varchar", "status": "enum", "direction": "enum", "dateStart": "datetime",
             "dateEnd": "datetime", "duration": "int", "description": "text", "parentType": "varchar",
             "parentId": "id", "assignedUserId": "id", "createdAt": "datetime", "modifiedAt": "datetime"},
}
ENUMS = {("Lead", "status"): LEAD_STATUSES, ("Lead", "source"): LEAD_SOURCES, ("Call", "status"): CALL_STATUSES,
         ("Call", "direction"): CALL_DIRECTIONS}
DEFAULTS = {"Lead": {"status": "New", "source": "", "consentGiven": False}, "Contact": {}, "Call": {"status": "Planned", "direction": "Outbound",
                                                                               "duration": 300}}
READ_ONLY = ("id", "createdAt", "modifiedAt")  # and a person's `name` (derived from first and last name)


def _invalid(entity: str, field: str, kind: str = "valid") -> EspoError:
    return EspoError(400, "validationFailure", {"messageTranslation": {
        "label": "validationFailure", "scope": entity, "data": {"field": field, "type": kind}}})


class CrmStore:
    """Lead, Contact and Call records and the teams, beside the simulator's `EspoState` (its lock, ids, clock)."""

    def __init__(self, state):
        self.state = state
        self.reset()

    def reset(self) -> None:
        with self.state.lock:
            self.records: dict[str, dict[str, dict]] = {entity: {} for entity in FIELDS}
            self.teams: dict[str, dict] = {}

    def exists(self, entity: str, record_id: str) -> bool:
        return record_id in self.records.get(entity, {})

    def get(self, entity: str, record_id: str) -> dict:
        with self.state.lock:
            record = self.records[entity].get(record_id)
            if record is None:
                raise EspoError(404, "Not Found")
            return copy.deepcopy(record)

    def all(self, entity: str) -> list[dict]:
        with self.state.lock:
            return copy.deepcopy(list(self.records[entity].values()))

    def create(self, entity: str, data: dict, user: dict) -> dict:
        if not isinstance(data, dict):
            raise EspoError(400, "Bad request: body must be a JSON object")
        clean = self._sanitize(entity, data)
        with self.state.lock:
            record = {name: None for name in FIELDS[entity]}
            record.update(copy.deepcopy(DEFAULTS[entity]))
            if "emailAddressData" in FIELDS[entity]:
                record.update(emailAddressData=[], phoneNumberData=[])
            record.update(clean)
            self._check(entity, record)
            record["id"] = self.state.new_id()
            record["createdAt"] = record["modifiedAt"] = self.state.now_string()
            record["createdById"] = user["id"]
            self._derive(entity, record)
            self.records[entity][record["id"]] = record
            return copy.deepcopy(record)

    def _sanitize(self, entity: str, data: dict) -> dict:
        fields = FIELDS[entity]
        clean: dict = {}
        for name, value in data.items():
            if name in READ_ONLY or (name == "name" and entity != "Call"):
                continue
            if name == "emailAddress" and "emailAddressData" in fields:
                clean["emailAddressData"] = _emails([{"emailAddress": value, "primary": True}] if value else [])
            elif name == "phoneNumber" and "phoneNumberData" in fields:
                international = self.state.phone_number_international
                clean["phoneNumberData"] = _phones([{"phoneNumber": value, "type": "Mobile", "primary": True}]
                                                   if value else [], international)
            elif name == "emailAddressData" and name in fields:
                clean[name] = _emails(value)
            elif name == "phoneNumberData" and name in fields:
                clean[name] = _phones(value, self.state.phone_number_international)
            elif name in fields:
                clean[name] = self._scalar(entity, name, fields[name], value)
        return clean

    @staticmethod
    def _scalar(entity: str, name: str, kind: str, value):
        if value is None:
            return None
        if kind == "bool":
            if not isinstance(value, bool):
                raise _invalid(entity, name)
            return value
        if kind == "datetime" and not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", str(value)):
            raise _invalid(entity, name)
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise _invalid(entity, name)
            try:
                return int(value)
            except ValueError:
                raise _invalid(entity, name) from None
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise _invalid(entity, name)
        value = str(value).strip()
        if len(value) > MAX_LENGTH.get(kind, 255):
            raise _invalid(entity, name, "maxLength")
        if (entity, name) in ENUMS and value not in ENUMS[(entity, name)]:
            raise _invalid(entity, name)
        return value

    def _check(self, entity: str, record: dict) -> None:
        if entity in ("Lead", "Contact") and not record.get("lastName"):
            raise _invalid(entity, "lastName", "required")
        if entity == "Call":
            if not record.get("name"):
                raise _invalid(entity, "name", "required")
            if not record.get("dateStart"):
                raise _invalid(entity, "dateStart", "required")
            if record.get("parentType") or record.get("parentId"):
                parent_type, parent_id = record.get("parentType"), record.get("parentId")
                known = (parent_id in self.state.records if parent_type == "CBeteiligte"
                         else self.exists(parent_type, parent_id))
                if parent_type not in PARENT_TYPES or not known:
                    raise _invalid(entity, "parent")
        if record.get("assignedUserId") and record["assignedUserId"] not in self.state.users:
            raise EspoError(403, f"Can't relate with non-existing record. entity type: {entity}, link: assignedUser.")

    def _derive(self, entity: str, record: dict) -> None:
        if entity in ("Lead", "Contact"):
            record["name"] = " ".join(p for p in (record.get("firstName"), record.get("lastName")) if p)
            emails, phones = record.get("emailAddressData") or [], record.get("phoneNumberData") or []
            record["emailAddress"] = next((e["emailAddress"] for e in emails if e["primary"]), None)
            record["phoneNumber"] = next((p["phoneNumber"] for p in phones if p["primary"]), None)
        user = self.state.users.get(record.get("assignedUserId") or "")
        record["assignedUserName"] = user["name"] if user else None

    def field_types(self, entity: str) -> dict[str, str]:
        types = dict(FIELDS[entity])
        if entity in ("Lead", "Contact"):
            types.update(emailAddress="varchar", phoneNumber="varchar")
        return types


def register(app: Flask, state, store: CrmStore) -> None:
    """The simulator routes for Lead, Contact, Call and Team (User: the main module); `search` is the simulator's list filter."""
    from integrations.sandbox.espocrm import USER_FIELDS, _json_body, _public_user, _search

    for entity in FIELDS:
        _entity_routes(app, store, entity, _json_body, _search)

    @app.get(f"{API}/Team/<team_id>/users")
    def team_users(team_id):
        team = store.teams.get(team_id)
        if team is None:
            raise EspoError(404, "Not Found")
        users = [_public_user(state.users[uid]) for uid in team["usersIds"] if uid in state.users]
        return jsonify(_search(users, USER_FIELDS, default_order=("userName", "asc")))

    @app.post("/_sandbox/teams")
    def sandbox_team():
        """Create or replace a team: `{"id", "name", "users": [userName, ...]}`."""
        spec = request.get_json(force=True, silent=True) or {}
        ids = [state.user_by_name(name)["id"] for name in spec.get("users", [])]
        team = {"id": str(spec.get("id") or state.new_id()), "name": spec.get("name") or "Team", "usersIds": ids}
        store.teams[team["id"]] = team
        return jsonify(team)

    @app.get("/_sandbox/crm/<entity>")
    def sandbox_records(entity):
        if entity not in FIELDS:
            raise EspoError(404, "Not Found")
        return jsonify(store.all(entity))


def _entity_routes(app: Flask, store: CrmStore, entity: str, json_body, search) -> None:
    def list_records():
        return jsonify(search(store.all(entity), store.field_types(entity)))

    def create_record():
        return jsonify(store.create(entity, json_body(), g.espo_user))

    def get_record(record_id):
        return jsonify(store.get(entity, record_id))

    def stream(record_id):
        store.get(entity, record_id)
        notes = [n for n in store.state.all_notes() if n["parentType"] == entity and n["parentId"] == record_id]
        from integrations.sandbox.espocrm_fields import NOTE_FIELDS

        return jsonify(search(notes, NOTE_FIELDS, default_order=("createdAt", "desc")))

    app.add_url_rule(f"{API}/{entity}", f"crm_list_{entity}", list_records, methods=["GET"])
    app.add_url_rule(f"{API}/{entity}", f"crm_create_{entity}", create_record, methods=["POST"])
    app.add_url_rule(f"{API}/{entity}/<record_id>", f"crm_get_{entity}", get_record, methods=["GET"])
    app.add_url_rule(f"{API}/{entity}/<record_id>/stream", f"crm_stream_{entity}", stream, methods=["GET"])
