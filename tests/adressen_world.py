"""An in-memory party for the pure Adressen tests: both sides as plain data, a plan applied the way the service
applies it (POST appends with the marker, PUT changes the four fields of the matched address, EspoCRM writes
and imports, the tracking stored). No I/O; the oracle of `test_adressen_plan.py` checks what the plan does."""
from __future__ import annotations

import itertools
from datetime import date

from bitbylaw_tasks.adressen import mapping, tracking
from bitbylaw_tasks.adressen.plan import PartyPlan, plan_party

TODAY = date(2026, 12, 1)
BETNR = 104860


class World:
    def __init__(self):
        self.advo: list[dict] = []
        self.espo: dict[str, dict] = {}
        self._ids = itertools.count(1)

    # --- a person's actions ---
    def espo_new(self, **fields) -> str:
        rid = f"e{next(self._ids):04d}"
        self.espo[rid] = {"id": rid, "isPrimary": False, "isActive": True, "syncStatus": "pending_sync", **fields}
        return rid

    def advo_new(self, position: int | None = None, **fields) -> dict:
        address = {name: fields.get(name) for name in ("strasse", "plz", "ort", "land", "postfach", "postfachPlz",
                                                        "anschrift", "bemerkung", "gueltigVon", "gueltigBis")}
        address["standardAnschrift"] = bool(fields.get("standardAnschrift"))
        if address["standardAnschrift"]:
            for other in self.advo:
                other["standardAnschrift"] = False
        self.advo.insert(len(self.advo) if position is None else position - 1, address)
        return address

    def listed(self) -> list[dict]:
        return [{**a, "reihenfolgeIndex": i} for i, a in enumerate(self.advo, start=1)]

    def plan(self) -> PartyPlan:
        return plan_party(self.listed(), list(self.espo.values()), BETNR, TODAY)

    # --- the service's effects ---
    def apply(self, plan: PartyPlan) -> None:
        for step in plan.addresses:
            if step.post is not None:
                self.advo_new(**step.post)
            if step.put is not None:
                target = self._find(step)
                target.update(step.put)
            if step.espo_id is None and step.variant == "import":
                rid = self.espo_new(**step.espo_write)
                step.espo_id = rid
            elif step.espo_id is not None:
                self.espo[step.espo_id].update(step.espo_write)
            if step.espo_id is not None:
                record = self.espo[step.espo_id]
                if step.tracking is not None:
                    index = step.tracking.index
                    if step.post is not None:
                        index = len(self.advo)
                    record["advowareSnapshot"] = tracking.render(tracking.Tracking(
                        step.tracking.origin, step.tracking.agreed, step.tracking.seen, index))
                record["syncStatus"] = step.status
                record["syncErrorMessage"] = step.error

    def _find(self, step) -> dict:
        seen = step.advoware
        for address in self.advo:
            if all(address.get(k) == seen.get(k) for k in address):
                return address
        raise AssertionError("the PUT's address is gone")

    def sync(self) -> PartyPlan:
        plan = self.plan()
        self.apply(plan)
        return plan


def writes(plan: PartyPlan) -> list[str]:
    """Everything a plan would write, as readable lines (empty: a no-change check)."""
    out = []
    for step in plan.addresses:
        if step.post:
            out.append(f"POST {step.espo_id}")
        if step.put:
            out.append(f"PUT {step.espo_id} {step.put}")
        if step.espo_write:
            out.append(f"ESPO {step.espo_id or 'new'} {step.espo_write}")
    return out


def content(world: World, rid: str) -> dict:
    return mapping.from_espocrm(world.espo[rid])
