"""API calls per Beteiligte sync path, counted by the simulators, next to the SPEC §4.8 budget.

Runs every path against the sandbox through the real moving parts (signed
webhook -> shim -> queue -> worker subprocess, or the sweep or freshness task
-> queue -> worker) one at a time, resets the simulators' per-endpoint counters before
each step and prints, per path: the calls to EspoCRM and Advoware of the sync
itself, the budget and the original system's count, then separately (as
SPEC §4.8 asks) the `syncing` status writes, stream notes, Advoware token
fetches, the sweep's own list queries and the calls of the Kommunikation
sync the path hands off to (run alone afterwards), and the calls by
endpoint. Exits 1 when a path exceeds its budget or takes another path.

    .venv/bin/python -m bench.api_calls
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from bench.common import RESULT_DB, BenchEnv, queued_args, table

PERSON = {"firstName": "Max", "lastName": "Mustermann", "salutationName": "Herr", "titel": "Dr.",
          "dateOfBirth": "1970-03-15"}
# SPEC §4.8: (this product's budget, the original system's count); notes/tokens/syncing writes excluded.
BUDGET = {"create": (3, 5), "espocrm_newer": (4, 5), "advoware_newer": (3, 4), "conflict": (4, 6),
          "no_change": (3, 4)}
NO_WRITE_BUDGET = 2  # "no change ... 3 (2 when nothing needs writing)"
TOKEN = "/Token"
NOTE = "POST /api/v1/Note"
LIST = "GET /api/v1/CBeteiligte"


@dataclass
class Step:
    label: str
    trigger: str        # webhook | sweep | freshness
    expected: str       # the sync path it must take
    nothing_to_write: bool = False


@dataclass
class Measured:
    step: Step
    entity_id: str
    outcome: str
    espocrm: dict
    advoware: dict
    seconds: float
    syncing: int = 0                   # EspoCRM writes of `syncStatus = syncing` (counted separately)
    kommunikation: dict | None = None  # the hand-off's own calls, run separately (None: not registered)

    @property
    def espo_sync(self) -> int:
        return sum(n for k, n in self.espocrm.items() if k not in (NOTE, LIST)) - self.syncing

    @property
    def advo_sync(self) -> int:
        return sum(n for k, n in self.advoware.items() if TOKEN not in k)

    @property
    def budget(self) -> int:
        if self.step.expected == "no_change" and self.step.nothing_to_write:
            return NO_WRITE_BUDGET
        return BUDGET[self.step.expected][0]

    @property
    def ok(self) -> bool:
        return self.outcome == self.step.expected and self.espo_sync + self.advo_sync <= self.budget


class Runner:
    def __init__(self, env: BenchEnv, timeout: float, handoff: bool):
        self.env = env
        self.handoff = handoff
        self.timeout = timeout
        self.results = env.redis_client(RESULT_DB)
        self.espo = env.sandbox.state("espocrm")
        self.advo = env.sandbox.state("advoware")

    def _sync_results(self) -> dict[bytes, dict]:
        out = {}
        for key in self.results.scan_iter("celery-task-meta-*"):
            raw = self.results.get(key)
            if raw:
                out[key] = json.loads(raw)
        return out

    def measure(self, step: Step, entity_id: str | None, action) -> Measured:
        """Run `action` (it returns the entity id when `entity_id` is None) and count until its sync is done."""
        before = set(self._sync_results())
        self.env.reset_calls()
        start = time.monotonic()
        returned = action()
        entity_id = entity_id or returned
        deadline = start + self.timeout
        while True:
            new = [v for k, v in self._sync_results().items() if k not in before
                   and v.get("name") == "beteiligte.sync" and (v.get("args") or [None])[0] == entity_id]
            done = [v for v in new if v.get("status") in ("SUCCESS", "FAILURE")]
            if done:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"bench.api_calls: no sync result for step '{step.label}' in {self.timeout:.0f}s")
            time.sleep(0.02)
        time.sleep(0.05)  # the task stored its result after its last API call; let stragglers land
        result = done[-1]["result"]
        outcome = result.get("path", "?") if isinstance(result, dict) else f"failed: {result}"
        measured = Measured(step, entity_id, outcome, self.env.sandbox.kit("espocrm").calls(),
                            self.env.sandbox.kit("advoware").calls(), time.monotonic() - start,
                            syncing=self.env.syncing_writes[entity_id])
        measured.kommunikation = self.run_handoff(entity_id)
        return measured

    def run_handoff(self, entity_id: str) -> dict | None:
        """Run the queued `kommunikation.sync` of this entity here, alone, and count its calls separately."""
        if not self.handoff:
            return None
        broker = self.env.redis_client(0)
        messages = [m for m in broker.lrange("kommunikation", 0, -1) if entity_id.encode() in m]
        broker.delete("kommunikation")
        if not messages:
            return {"handed_off": False}
        args = queued_args(messages[0])  # coalesced: one message per entity
        self.env.reset_calls()
        self.env.app.tasks["kommunikation.sync"].apply(args=args)
        calls = {f"EspoCRM {k}": n for k, n in self.env.sandbox.kit("espocrm").calls().items()}
        calls.update({f"Advoware {k}": n for k, n in self.env.sandbox.kit("advoware").calls().items()})
        calls["handed_off"] = True
        return calls

    def sweep(self) -> dict:
        from bitbylaw_tasks.beteiligte.tasks import sweep

        return sweep()

    def freshness(self) -> dict:
        """One run of the freshness checker (the rolling check), as beat runs it every FRESHNESS_TICK s."""
        from bitbylaw_tasks.beteiligte.tasks import freshness

        return freshness()


def run(env: BenchEnv, timeout: float, handoff: bool) -> list[Measured]:
    runner = Runner(env, timeout, handoff)
    espo, advo = runner.espo, runner.advo
    out: list[Measured] = []

    # --- pass 1: everything arrives by webhook (EspoCRM's batched, signed POSTs to the shim) ---
    env.shim()
    out.append(runner.measure(Step("create", "webhook", "create"), None, lambda: espo.human_create(PERSON)["id"]))
    rid = out[-1].entity_id
    betnr = espo.get(rid)["betnr"]
    out.append(runner.measure(Step("update EspoCRM -> Advoware", "webhook", "espocrm_newer"), rid,
                              lambda: espo.human_update(rid, {"titel": "Prof."})))

    def conflict():
        advo.human_update_beteiligte(betnr, vorname="Moritz", titel="Dr.")
        espo.human_update(rid, {"titel": "Dr. h.c."}, user="bob")

    out.append(runner.measure(Step("conflict (EspoCRM wins per field)", "webhook", "conflict"), rid, conflict))
    bob = espo.user_by_name("bob")["id"]
    out.append(runner.measure(Step("no change (field not synced)", "webhook", "no_change", nothing_to_write=True),
                              rid, lambda: espo.human_update(rid, {"assignedUserId": bob})))
    mail = [{"emailAddress": "max@example.org", "primary": True, "optOut": False, "invalid": False}]
    out.append(runner.measure(Step("no change (e-mail only: dirty -> clean)", "webhook", "no_change"), rid,
                              lambda: espo.human_update(rid, {"emailAddressData": mail})))

    # --- pass 2: webhooks lost (no subscription); the sweep finds everything ---
    espo.hooks.clear()
    from bitbylaw_tasks.beteiligte.store import CHECKED_KEY

    lock_db = env.redis_client(1)
    lock_db.delete(CHECKED_KEY)  # the rolling check must see only pass 2's entity
    rid = espo.human_create({**PERSON, "firstName": "Erika", "salutationName": "Frau"})["id"]
    out.append(runner.measure(Step("create (pending_sync)", "sweep", "create"), rid, runner.sweep))
    betnr = espo.get(rid)["betnr"]
    out.append(runner.measure(Step("update EspoCRM -> Advoware (dirty)", "sweep", "espocrm_newer"), rid,
                              lambda: (espo.human_update(rid, {"lastName": "Musterfrau"}), runner.sweep())))
    out.append(runner.measure(Step("update Advoware -> EspoCRM (rolling check)", "freshness", "advoware_newer"),
                              rid, lambda: (advo.human_update_beteiligte(betnr, titel="Prof."), runner.freshness())))

    def sweep_conflict():
        advo.human_update_beteiligte(betnr, vorname="Erika Maria")
        espo.human_update(rid, {"titel": "Dr."}, user="bob")
        runner.sweep()

    out.append(runner.measure(Step("conflict (different fields: merged, no note)", "sweep", "conflict"), rid,
                              sweep_conflict))
    out.append(runner.measure(Step("no change (rolling check)", "freshness", "no_change", nothing_to_write=True),
                              rid, runner.freshness))

    def stale():
        old = (datetime.now(timezone.utc) - timedelta(hours=25)).strftime("%Y-%m-%d %H:%M:%S")
        espo.save(rid, {"advowareLastSync": old}, espo.integration_user)
        runner.sweep()

    out.append(runner.measure(Step("no change (24 h rule: refresh advowareLastSync)", "sweep", "no_change"), rid,
                              stale))
    return out


def _endpoints(m: Measured) -> str:
    def short(key: str) -> str:
        method, _, path = key.partition(" ")
        return f"{method} {path.replace('/api/v1/advonet/', '').replace('/api/v1/', '')}"

    parts = [f"EspoCRM {short(k)} x{n}" for k, n in m.espocrm.items() if k != LIST]
    parts += [f"Advoware {short(k)} x{n}" for k, n in m.advoware.items()]
    return "; ".join(parts)


def _kommunikation(m: Measured) -> tuple[str, str]:
    """(total, by endpoint) of the hand-off's Kommunikation sync."""
    if m.kommunikation is None:
        return "-", "not registered"
    if not m.kommunikation["handed_off"]:
        return "no hand-off", "not handed off (nothing due)"
    calls = {k: n for k, n in m.kommunikation.items() if k != "handed_off"}
    total = sum(n for k, n in calls.items() if TOKEN not in k and NOTE not in k)
    detail = "; ".join(f"{k.replace('/api/v1/advonet/', '').replace('/api/v1/', '')} x{n}" for k, n in calls.items())
    return str(total), detail or "no calls"


def report(measured: list[Measured]) -> str:
    rows, detail = [], []
    for m in measured:
        komm_total, komm_detail = _kommunikation(m)
        rows.append([m.step.label, m.step.trigger, m.outcome, m.espo_sync, m.advo_sync, m.espo_sync + m.advo_sync,
                     m.budget, BUDGET[m.step.expected][1], "yes" if m.ok else "NO", m.syncing,
                     m.espocrm.get(NOTE, 0), sum(n for k, n in m.advoware.items() if TOKEN in k),
                     m.espocrm.get(LIST, 0), komm_total])
        detail.append([m.step.label, m.step.trigger, _endpoints(m), komm_detail])
    main = table(["path", "trigger", "outcome", "EspoCRM", "Advoware", "sync calls", "budget", "original",
                  "within", "syncing writes", "notes", "token fetches", "sweep list queries",
                  "Kommunikation sync (separate)"], rows,
                 "API calls per sync (simulator counters; 'sync calls' = EspoCRM + Advoware, excluding `syncing` "
                 "writes, notes, token fetches and the sweep's own queries, which are shown apart)")
    by_endpoint = table(["path", "trigger", "Beteiligte sync calls by endpoint",
                         "then the Kommunikation sync (run alone)"], detail, "Calls by endpoint")
    extra = ("The hand-off to the Kommunikation sync is one message on the broker (no simulator call); the "
             "queued `kommunikation.sync` is then run alone in the bench process and its calls are the last "
             "column (SPEC §4.8: counted separately).")
    return f"{main}\n\n{by_endpoint}\n\n{extra}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for each sync")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    env = BenchEnv(webhook_interval=0.05).start()
    try:
        handoff = env.task_registered("kommunikation.sync")
        env.worker(["beteiligte"], 2)
        measured = run(env, args.timeout, handoff)
    finally:
        env.close()
    print(report(measured))
    if not handoff:
        print("kommunikation.sync is not registered yet: the hand-off messages were not run.")
    failed = [m.step.label for m in measured if not m.ok]
    if failed:
        print(f"\nOVER BUDGET or unexpected path: {', '.join(failed)}")
        return 1
    print("\nEvery path within the SPEC §4.8 budget.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
