"""A tiny in-memory world for driving the Kommunikation planner in tests: both sides, the status, user edits.

`World.sync()` plans with `plan_kommunikation_sync` and applies the plan the
way the executor will: Advoware PUT keeps kommKz (read-only) and gives a new
rowId, POST appends an entry, EspoCRM stores the arrays with its own rules
(duplicates dropped, exactly one primary: the first flagged, else the first),
the status goes through its JSON form. Advoware reports kommKz 0 on GET for
the entries in `masked`. No I/O; used by the plan and convergence tests.
"""

from __future__ import annotations

import copy
import itertools

from bitbylaw_tasks.kommunikation.actions import AdvowareWrite
from bitbylaw_tasks.kommunikation.kinds import normalize_email
from bitbylaw_tasks.kommunikation.plan import plan_kommunikation_sync
from bitbylaw_tasks.kommunikation.status import KommStatus, kommunikation_hash
from kommunikation_oracle import State, check_sync


def _espo_normalise(items: list[dict], field: str) -> list[dict]:
    seen, result = set(), []
    for item in items:
        value = item[field].strip()
        key = normalize_email(value) if field == "emailAddress" else value
        if not value or key in seen:
            continue
        seen.add(key)
        result.append(dict(item, **{field: value}))
    first = next((i for i, e in enumerate(result) if e.get("primary")), 0)
    for i, item in enumerate(result):
        item["primary"] = i == first
    return result


class World:
    """Advoware entries, EspoCRM arrays and the stored status of one Beteiligter."""

    def __init__(self, advoware=(), emails=(), phones=(), status=None, masked=()):
        self.ids = itertools.count(1000)
        self.rows = itertools.count(1)
        self.advoware: list[dict] = []
        for entry in advoware:
            entry = dict(entry)
            entry.setdefault("id", next(self.ids))
            entry.setdefault("rowId", f"row{next(self.rows)}")
            entry.setdefault("bemerkung", "")
            entry.setdefault("online", False)
            self.advoware.append(entry)
        self.emails = _espo_normalise([dict(e) for e in emails], "emailAddress")
        self.phones = _espo_normalise([dict(p) for p in phones], "phoneNumber")
        self.status_json = status.to_json() if status is not None else None
        self.masked = set(masked)
        self.hash = None
        self.notes: list[str] = []
        self.writes = {"advoware_put": 0, "advoware_post": 0, "espocrm_put": 0}

    # --- what the clients would read ----------------------------------------------------------
    def advoware_get(self) -> list[dict]:
        shown = copy.deepcopy(self.advoware)
        for entry in shown:
            if entry["id"] in self.masked:
                entry["kommKz"] = 0
        return shown

    @property
    def status(self) -> KommStatus | None:
        return KommStatus.from_json(self.status_json)

    def entry(self, entry_id: int) -> dict:
        return next(e for e in self.advoware if e["id"] == entry_id)

    # --- the sync --------------------------------------------------------------------------------
    def plan(self, direction="both", force_espo_wins=False):
        return plan_kommunikation_sync(self.advoware_get(), copy.deepcopy(self.emails), copy.deepcopy(self.phones),
                                       self.status, direction=direction, force_espo_wins=force_espo_wins)

    def sync(self, direction="both", force_espo_wins=False):
        plan = self.plan(direction, force_espo_wins)
        self.apply(plan)
        return plan

    def state(self) -> State:
        """Both sides (true kinds) and the status now, for `kommunikation_oracle.check_sync`."""
        return State(tuple(copy.deepcopy(self.advoware)), tuple(copy.deepcopy(self.emails)),
                     tuple(copy.deepcopy(self.phones)), self.status, frozenset(self.masked))

    def checked_sync(self) -> set[tuple[str, str]]:
        """A `both` sync checked by the oracle (kinds, primary, notes, user text); the ambiguous classes met."""
        before = self.state()
        plan = self.sync()
        return check_sync(before, self.state(), plan.notes)

    def apply(self, plan) -> None:
        created = {}
        for action in plan.actions:
            assert isinstance(action, AdvowareWrite)
            if not action.creates:
                entry = self.entry(action.id)
                entry.update(tlf=action.tlf, bemerkung=action.bemerkung, online=action.online,
                             rowId=f"row{next(self.rows)}")
                self.writes["advoware_put"] += 1
            else:
                new_id = next(self.ids)
                self.advoware.append({"id": new_id, "rowId": f"row{next(self.rows)}", "kommKz": action.kommkz,
                                      "tlf": action.tlf, "bemerkung": action.bemerkung, "online": action.online})
                created[action.ref] = new_id
                self.writes["advoware_post"] += 1
        espo_write = False
        if plan.espo_changed:
            self.emails = _espo_normalise(plan.email_address_data, "emailAddress")
            self.phones = _espo_normalise(plan.phone_number_data, "phoneNumber")
            espo_write = True
        if plan.status_changed:
            self.status_json = plan.resolve_status(created).to_json()
            espo_write = True
        new_hash = kommunikation_hash(self.advoware_get())
        if new_hash != self.hash:
            self.hash = new_hash
            espo_write = True
        self.writes["espocrm_put"] += int(espo_write)
        self.notes.extend(plan.notes)

    # --- user edits in EspoCRM ----------------------------------------------------------------
    def _espo_list(self, value):
        return self.emails if "@" in value else self.phones

    def espo_add(self, value, type_="Office", primary=False):
        items = self._espo_list(value)
        if primary:
            for item in items:
                item["primary"] = False
        if "@" in value:
            items.append({"emailAddress": value, "lower": value.lower(), "primary": primary, "optOut": False,
                          "invalid": False})
        else:
            items.append({"phoneNumber": value, "type": type_, "primary": primary, "optOut": False, "invalid": False})
        self._renormalise()

    def espo_find(self, value):
        field = "emailAddress" if "@" in value else "phoneNumber"
        return next(i for i in self._espo_list(value) if i[field] == value)

    def espo_delete(self, value):
        items = self._espo_list(value)
        items.remove(self.espo_find(value))
        self._renormalise()

    def espo_change(self, old, new):
        item = self.espo_find(old)
        item["emailAddress" if "@" in old else "phoneNumber"] = new
        if "@" in old:
            item["lower"] = new.lower()
        self._renormalise()

    def espo_set_type(self, value, type_):
        self.espo_find(value)["type"] = type_

    def espo_set_primary(self, value):
        for item in self._espo_list(value):
            item["primary"] = False
        self.espo_find(value)["primary"] = True

    def _renormalise(self):
        self.emails = _espo_normalise(self.emails, "emailAddress")
        self.phones = _espo_normalise(self.phones, "phoneNumber")

    @property
    def espo_values(self) -> set[str]:
        return {e["emailAddress"] for e in self.emails} | {p["phoneNumber"] for p in self.phones}

    # --- user edits in Advoware ----------------------------------------------------------------
    def advo_add(self, kommkz, tlf, online=False, bemerkung="") -> int:
        new_id = next(self.ids)
        self.advoware.append({"id": new_id, "rowId": f"row{next(self.rows)}", "kommKz": kommkz, "tlf": tlf,
                              "bemerkung": bemerkung, "online": online})
        return new_id

    def advo_edit(self, entry_id, **fields):
        entry = self.entry(entry_id)
        entry.update(fields)
        entry["rowId"] = f"row{next(self.rows)}"

    def advo_id_of(self, tlf) -> int:
        return next(e["id"] for e in self.advoware if e["tlf"] == tlf)

    @property
    def advo_live(self) -> dict[str, dict]:
        return {e["tlf"]: e for e in self.advoware if e["tlf"]}
