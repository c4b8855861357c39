"""The in-memory EspoCRM the simulator serves: users, CBeteiligte records with their hooks, notes, webhooks.

Every public method is thread-safe (one re-entrant lock). Writes go through
`save()`, which reproduces what the real EspoCRM plus the project's
configured hooks do on a save (SPEC §3.1, RESEARCH §G):
- input sanitising and validation (trim, types, `syncErrorMessage` <= 2000,
  e-mail/phone arrays: `lower`, first entry primary when none is);
- the hooks: create -> `syncStatus = pending_sync` (an integration-user create
  may set its own status); a user edit of a sync-relevant field of a `clean`
  record -> `dirty`; integration-user writes never touch `syncStatus` and
  never fire webhooks;
- `modifiedAt` and `versionNumber` change on every save, anyone's;
- optimistic concurrency on `X-Version-Number` (see `_check_version`).
"""
from __future__ import annotations

import copy
import datetime as dt
import random
import re
import threading
import time

from integrations.sandbox.espocrm_adressen import ADRESSE, AdresseStore
from integrations.sandbox.espocrm_fields import (ENTITY, FIELDS, READ_ONLY, SYNC_RELEVANT, EspoError, display_name,
                                                 sanitize_value, validation_error)
from integrations.sandbox.espocrm_webhooks import WebhookHub


def _user(uid: str, user_name: str, name: str, key: str, secret: str, integration: bool) -> dict:
    return {"id": uid, "userName": user_name, "name": name, "apiKey": key, "secretKey": secret,
            "integration": integration}


USERS = (
    _user("5f0000000000000a1", "bitbylaw-sync", "bitbylaw Sync", "sandbox-integration-key",
          "sandbox-integration-secret", True),
    _user("5f0000000000000a2", "alice", "Alice Anwältin", "sandbox-alice-key", "sandbox-alice-secret", False),
    _user("5f0000000000000a3", "bob", "Bob Büro", "sandbox-bob-key", "sandbox-bob-secret", False),
)


class EspoState:
    """All data of one simulated EspoCRM instance."""

    def __init__(self, *, webhook_interval: float = 2.0, optimistic_concurrency: bool = True,
                 concurrency_rule: str = "espocrm", seed: int = 1234):
        if concurrency_rule not in ("espocrm", "fields"):
            raise ValueError("concurrency_rule must be 'espocrm' or 'fields'")
        self.lock = threading.RLock()
        self.optimistic_concurrency = optimistic_concurrency
        self.concurrency_rule = concurrency_rule
        self.seed = seed
        self.users = {u["id"]: dict(u) for u in USERS}
        self.extra_parents = lambda entity, record_id: False  # other entities' records (espocrm_crm.py)
        self.hooks = WebhookHub(new_id=self.new_id, new_secret=self._new_secret, now=self.now_string,
                                entity_types=(ENTITY, ADRESSE), interval=webhook_interval)
        self.adressen = AdresseStore(self)
        self.reset()

    # ------------------------------------------------------------ basics
    def reset(self) -> None:
        with self.lock:
            self.records: dict[str, dict] = {}
            self.field_versions: dict[str, dict[str, int]] = {}
            self.notes: list[dict] = []
            self.clock_offset = 0.0
            self.auth_failures: dict[str, list[float]] = {}
            self.random = random.Random(self.seed)
            self._last_stamp = 0
            # EspoCRM's `phoneNumberInternational` (a new install's default is true, and so here): numbers
            # are stored in E.164; the API refuses a number without a country code, the form completes it
            # with its preselected country (docs/sandbox-espocrm.md, "real EspoCRM 9.2.7").
            self.phone_number_international = True
            # A real EspoCRM keeps a number's type on the number (one `phone_number` row shared by every
            # record): a record saving a number with another type changes it for all. Off here until the
            # Kommunikation planner tells a shared number's type change from a user's edit.
            self.shared_phone_types = False
            self.phone_types: dict[str, str] = {}
            self.hooks.clear()
            if hasattr(self, "adressen"):
                self.adressen.reset()

    def close(self) -> None:
        self.hooks.stop()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.clock_offset)

    def now_string(self) -> str:
        return self.now().strftime("%Y-%m-%d %H:%M:%S")

    def new_id(self) -> str:
        """17 hex characters like PHP's `uniqid()` + 4 random: time-ordered, unique."""
        with self.lock:
            stamp = max(int(self.now().timestamp() * 1_000_000), self._last_stamp + 1)
            self._last_stamp = stamp
            return f"{stamp:013x}"[-13:] + f"{self.random.getrandbits(16):04x}"

    def _new_secret(self) -> str:
        with self.lock:
            return f"{self.random.getrandbits(128):032x}"

    def user_by_name(self, user_name: str) -> dict:
        for user in self.users.values():
            if user["userName"] == user_name:
                return user
        raise EspoError(404, f"No user '{user_name[:40]}'")

    @property
    def integration_user(self) -> dict:
        return next(u for u in self.users.values() if u["integration"])

    # ------------------------------------------------------------ reads
    def get(self, record_id: str) -> dict:
        with self.lock:
            record = self.records.get(record_id)
            if record is None:
                raise EspoError(404, "Not Found")
            return self._phone_types_of(copy.deepcopy(record))

    def all_records(self) -> list[dict]:
        with self.lock:
            return [self._phone_types_of(r) for r in copy.deepcopy(list(self.records.values()))]

    def _phone_types_of(self, record: dict) -> dict:
        """`record` with each number's shared type (when `shared_phone_types` is on)."""
        if self.shared_phone_types:
            for item in record.get("phoneNumberData") or []:
                item["type"] = self.phone_types.get(item["phoneNumber"], item["type"])
        return record

    # ------------------------------------------------------------ writes
    def save(self, record_id: str | None, data: dict, user: dict, *, version_number: int | None = None,
             silent: bool = False, typed_in_ui: bool = False) -> dict:
        """Create (record_id None) or partially update a record as `user`; returns the full record.
        `silent` is EspoCRM's SaveOption::SILENT (an import): no webhook event. `typed_in_ui`: a person entered
        the values in EspoCRM's form (the phone field's preselected country completes a national number, as
        the real front end does); API input has no such help."""
        if not isinstance(data, dict):
            raise EspoError(400, "Bad request: body must be a JSON object")
        clean = self._sanitize(data, typed_in_ui=typed_in_ui)
        with self.lock:
            creating = record_id is None
            if creating:
                stored = {name: None for name in FIELDS}
                stored.update(emailAddressData=[], phoneNumberData=[], syncRetryCount=0, versionNumber=0)
            else:
                if record_id not in self.records:
                    raise EspoError(404, "Not Found")
                stored = self.records[record_id]
                if version_number is not None and self.optimistic_concurrency:
                    self._check_version(record_id, stored, clean, version_number)
            new = copy.deepcopy(stored)
            new.update(copy.deepcopy(clean))
            if "name" not in clean and ({"firstName", "lastName", "firmenname"} & clean.keys() or creating):
                new["name"] = display_name(new)
            self._apply_hooks(new, stored, clean, user, creating)
            holder = next((r["id"] for r in self.records.values()
                           if new.get("betnr") is not None and r["betnr"] == new["betnr"]
                           and r["id"] != stored.get("id")), None)
            if holder is not None:  # the extension's BetnrUnique hook
                raise EspoError(409, f"betnr {new['betnr']} already belongs to {ENTITY} {holder}")
            changed = [name for name in FIELDS if new.get(name) != stored.get(name)]
            now = self.now_string()
            if creating:
                new["id"] = self.new_id()
                new["createdAt"] = now
                self.field_versions[new["id"]] = {}
            new["modifiedAt"] = now
            new["versionNumber"] = (stored.get("versionNumber") or 0) + 1
            for name in changed:
                self.field_versions[new["id"]][name] = new["versionNumber"]
            self.records[new["id"]] = new
            for item in clean.get("phoneNumberData") or []:
                self.phone_types[item["phoneNumber"]] = item["type"]
            new = self._phone_types_of(copy.deepcopy(new))
            if not silent:
                self._emit(creating, new, stored, changed, user)
            return copy.deepcopy(new)

    def delete(self, record_id: str, user: dict | str | None = None) -> None:
        """Delete as `user` (a user dict or user name). None deletes silently (an admin's cleanup: no
        webhook); the integration user may not delete (its role has no delete access: 403)."""
        if isinstance(user, str):
            user = self.user_by_name(user)
        if user is not None and user["integration"]:
            raise EspoError(403, "No delete access.")
        with self.lock:
            if self.records.pop(record_id, None) is None:
                raise EspoError(404, "Not Found")
            self.field_versions.pop(record_id, None)
            if user is not None:
                self.hooks.emit(f"{ENTITY}.delete", record_id, {"id": record_id}, user["id"])

    def human_update(self, record_id: str, fields: dict, user: str = "alice") -> dict:
        return self.save(record_id, fields, self.user_by_name(user), typed_in_ui=True)

    def human_create(self, fields: dict, user: str = "alice") -> dict:
        return self.save(None, fields, self.user_by_name(user), typed_in_ui=True)

    def human_delete(self, record_id: str, user: str = "alice") -> None:
        self.delete(record_id, self.user_by_name(user))

    def flush_webhooks(self) -> list[dict]:
        return self.hooks.flush()

    def _check_version(self, record_id: str, stored: dict, clean: dict, version_number: int) -> None:
        """409 `modified` with the stored values when a stale write would change something.

        Rule "espocrm" (default) is the real OptimisticProcessor: when the sent
        version differs from the stored one, every written attribute whose value
        would change is a conflict. Rule "fields" is more lenient: only attributes
        that were changed after `version_number` conflict.
        """
        current = stored.get("versionNumber")
        if current is None or version_number == current:
            return
        versions = self.field_versions.get(record_id, {})
        conflicting = [name for name, value in clean.items() if value != stored.get(name)
                       and (self.concurrency_rule == "espocrm" or versions.get(name, 0) > version_number)]
        if conflicting:
            values = {name: copy.deepcopy(stored.get(name)) for name in conflicting}
            raise EspoError(409, "modified", {"values": values, "versionNumber": current})

    def _apply_hooks(self, new: dict, stored: dict, clean: dict, user: dict, creating: bool) -> None:
        if creating:
            if not (user["integration"] and clean.get("syncStatus")):
                new["syncStatus"] = "pending_sync"
            return
        if user["integration"]:
            return
        touched = [name for name in SYNC_RELEVANT if new.get(name) != stored.get(name)]
        if touched and new.get("syncStatus") == "clean":
            new["syncStatus"] = "dirty"

    def _emit(self, creating: bool, new: dict, stored: dict, changed: list[str], user: dict) -> None:
        """Queue the webhook event of a save by `user` (every user's, the integration user's too: a webhook
        with `skipOwn` leaves out its own user's events when the job runs)."""
        if creating:
            self.hooks.emit(f"{ENTITY}.create", new["id"], new, user["id"])
            return
        data = {name: new[name] for name in changed if name not in ("modifiedAt", "versionNumber")}
        if not data:
            return  # a save that changed nothing fires no update event
        data["id"] = new["id"]
        self.hooks.emit(f"{ENTITY}.update", new["id"], data, user["id"])

    # ------------------------------------------------------------ input
    def _sanitize(self, data: dict, *, typed_in_ui: bool = False) -> dict:
        clean: dict = {}
        for name, value in data.items():
            kind = FIELDS.get(name)
            if kind is None or name in READ_ONLY:
                continue  # unknown and read-only attributes are silently ignored, as in EspoCRM
            clean[name] = sanitize_value(name, kind, value, phone_international=self.phone_number_international,
                                         typed_in_ui=typed_in_ui)
        return clean

    # ------------------------------------------------------------ notes
    def create_note(self, data: dict, user: dict) -> dict:
        if not isinstance(data, dict):
            raise EspoError(400, "Bad request: body must be a JSON object")
        if data.get("type", "Post") != "Post":
            raise EspoError(403, "Only Post notes can be created")
        post = data.get("post") or ""
        if not isinstance(post, str):
            raise validation_error("post", "valid")
        with self.lock:
            parent_type, parent_id = data.get("parentType"), data.get("parentId")
            target_type = data.get("targetType")
            if parent_type is not None or parent_id is not None:
                known = parent_id in self.records if parent_type == ENTITY else self.extra_parents(parent_type, parent_id)
                if not known:
                    raise EspoError(404, "Parent record not found")
            elif target_type not in ("users", "self", "all", "teams"):
                raise validation_error("parent", "required")
            if target_type == "users" and not data.get("usersIds"):
                raise EspoError(400, "No user IDs.")
            if target_type == "teams" and not data.get("teamsIds"):
                raise EspoError(400, "No team IDS.")
            mentions = {}
            # EspoCRM's NoteMentionHookProcessor: `@[\w@.-]+`, so a trailing "." belongs to the name
            for user_name in re.findall(r"@([\w@.-]+)", post, flags=re.ASCII):
                for candidate in self.users.values():
                    if candidate["userName"] == user_name:
                        mentions["@" + user_name] = {"id": candidate["id"], "name": candidate["name"],
                                                     "userName": user_name}
            note = {"id": self.new_id(), "type": "Post", "post": post, "parentType": parent_type,
                    "parentId": parent_id, "targetType": target_type, "usersIds": data.get("usersIds") or [],
                    "teamsIds": data.get("teamsIds") or [],
                    "data": {"mentions": mentions} if mentions else {}, "createdAt": self.now_string(),
                    "createdById": user["id"], "createdByName": user["name"]}
            self.notes.append(note)
            return copy.deepcopy(note)

    def all_notes(self) -> list[dict]:
        with self.lock:
            return copy.deepcopy(self.notes)

    # ------------------------------------------------------------ auth failures
    def auth_blocked(self, address: str, limit: int = 10, window: float = 60.0) -> bool:
        """More than `limit` failed authentications from one address within `window` seconds -> blocked."""
        with self.lock:
            recent = [t for t in self.auth_failures.get(address, []) if time.monotonic() - t < window]
            self.auth_failures[address] = recent
            return len(recent) > limit

    def note_auth_failure(self, address: str) -> None:
        with self.lock:
            self.auth_failures.setdefault(address, []).append(time.monotonic())

    # ------------------------------------------------------------ snapshot
    def dump_state(self) -> dict:
        with self.lock:
            return {"records": copy.deepcopy(list(self.records.values())), "notes": copy.deepcopy(self.notes),
                    "field_versions": copy.deepcopy(self.field_versions), "webhooks": self.hooks.dump(),
                    "adressen": self.adressen.dump()}

    def load_state(self, data: dict) -> None:
        with self.lock:
            self.reset()
            for record in data.get("records", []):
                full = {name: record.get(name) for name in FIELDS}
                self.records[full["id"]] = full
            self.notes = copy.deepcopy(data.get("notes", []))
            self.field_versions = copy.deepcopy(data.get("field_versions", {}))
            for record_id in self.records:
                self.field_versions.setdefault(record_id, {})
            self.hooks.load(data.get("webhooks", {}))
            self.adressen.load(data.get("adressen", []))
