"""API calls per Adressen sync, by scenario (issue 11, A1–A13), counted by the EspoCRM and Advoware simulators.

Each row is one `adressen.sync(id)` through the real queue and a worker subprocess, on a party linked in
both simulators; the simulators' per-endpoint counters are reset right before the sync, after the
person's edits of the scenario. Token fetches are counted apart; stream notes are listed, not counted in
`total`. Exits 1 if a no-change run writes anything or Advoware ever receives a DELETE.

    .venv/bin/python -m bench.adressen_calls [--latency-ms 0]
"""
from __future__ import annotations

import sys

from bench.common import BenchEnv, call_bench_main, measured_sync

BERLIN = {"strasse": "Hauptstr. 1", "plz": "10115", "ort": "Berlin", "land": "DE"}
HAMBURG = {"strasse": "Alsterweg 5", "plz": "20095", "ort": "Hamburg", "land": "DE"}
ADR = "/Adressen"


class Bench:
    def __init__(self, env: BenchEnv):
        self.env = env
        self.espo = env.sandbox.state("espocrm")
        self.advo = env.sandbox.state("advoware")
        self.alice = self.espo.user_by_name("alice")
        self.rows: list[list] = []
        self.failures: list[str] = []

    def party(self, *addresses, advoware=(), synced: bool = True) -> tuple[str, int, list[str]]:
        betnr = self.advo.create_beteiligte({"name": "Mustermann", "vorname": "Max"})["betNr"]
        for fields in advoware:
            self.advo.human_add_adresse(betnr, fields)
        record = self.espo.save(None, {"firstName": "Max", "lastName": "Mustermann", "betnr": betnr,
                                       "syncStatus": "clean", "assignedUserId": self.alice["id"]},
                                self.espo.integration_user)
        ids = [self.add(record["id"], **a) for a in addresses]
        if synced:
            self.sync(record["id"])
        return record["id"], betnr, ids

    def add(self, party_id: str, **fields) -> str:
        return self.espo.adressen.save(None, {"beteiligteId": party_id, **fields}, self.alice)["id"]

    def edit(self, rid: str, **fields) -> None:
        self.espo.adressen.save(rid, fields, self.alice)

    def sync(self, party_id: str) -> dict:
        return self.env.app.send_task("adressen.sync", (party_id, "bench")).get(timeout=60)

    def measure(self, label: str, party_id: str, *, no_writes: bool = False) -> None:
        outcome, elapsed, espo, advo, token = measured_sync(self.env, lambda: self.sync(party_id))

        def count(calls, method, part=""):
            return sum(n for k, n in calls.items() if k.startswith(method + " ") and part in k)

        notes = count(espo, "POST", "/Note")
        row = {"E GET": count(espo, "GET"), "E PUT": count(espo, "PUT"), "E POST": count(espo, "POST", "/CAdresse"),
               "notes": notes, "A GET": count(advo, "GET"), "A PUT": count(advo, "PUT", ADR),
               "A POST": count(advo, "POST", ADR)}
        writes = row["E PUT"] + row["E POST"] + row["A PUT"] + row["A POST"]
        total = sum(espo.values()) + sum(advo.values()) - notes
        self.rows.append([label, *row.values(), total, writes, token, f"{elapsed * 1000:.0f} ms",
                          outcome.get("path", "?")])
        if any(k.startswith("DELETE") for k in advo):
            self.failures.append(f"{label}: Advoware received a DELETE")
        if no_writes and (writes or notes):
            self.failures.append(f"{label}: {writes} write(s) and {notes} note(s) in a run that must write nothing")


def run(bench: Bench) -> None:
    advo = bench.advo
    pid, _, _ = bench.party(synced=False)
    bench.measure("no addresses on either side", pid, no_writes=True)
    pid, _, _ = bench.party(BERLIN, synced=False)
    bench.measure("A1 new in EspoCRM (POST)", pid)
    bench.measure("no change (one address)", pid, no_writes=True)
    pid, _, _ = bench.party(BERLIN, HAMBURG, {**BERLIN, "strasse": "Ring 3"})
    bench.measure("no change (three addresses)", pid, no_writes=True)

    pid, betnr, (rid,) = bench.party(BERLIN)
    advo.human_add_adresse(betnr, {"strasse": "Vorne 1", "ort": "Köln"}, position=1)
    bench.measure("A7 created in Advoware (import)", pid)
    bench.edit(rid, strasse="Neue Str. 2")
    bench.measure("A2 writable edit after a shift (GET + PUT)", pid)
    bench.edit(rid, land="AT")
    bench.measure("A3 read-only edit (manual action + note)", pid)
    bench.measure("A3 again: the action stays open", pid, no_writes=True)
    advo.human_update_adresse(betnr, 2, land="AT")
    bench.measure("A13 Advoware now matches (action closed)", pid)

    pid, betnr, (berlin, hamburg) = bench.party(BERLIN, HAMBURG)
    bench.edit(berlin, isPrimary=False)
    bench.edit(hamburg, isPrimary=True)
    bench.measure("A4 new main address (manual action)", pid)
    bench.espo.adressen.delete(berlin, bench.alice)
    bench.measure("A5 deleted in EspoCRM (manual action)", pid)

    pid, betnr, (rid,) = bench.party(BERLIN)
    advo.human_update_adresse(betnr, 1, strasse="Geändert 3", land="NL")
    bench.measure("A6 edited in Advoware (EspoCRM write)", pid)
    advo.human_update_adresse(betnr, 1, bemerkung="Hinterhaus")
    bench.measure("A8 marker removed (recognised, action)", pid)
    bench.edit(rid, ort="Berlin-Mitte")
    advo.human_update_adresse(betnr, 1, ort="Berlin-Wedding")
    bench.measure("A10 both changed one field (PUT + note)", pid)

    pid, _, _ = bench.party(BERLIN, advoware=[BERLIN, HAMBURG], synced=False)
    bench.measure("A9 initial: one equal, one only in Advoware", pid)
    pid, _, _ = bench.party(BERLIN, synced=False)
    bench.env.sandbox.kit("advoware").add_fault(path="/api/v1/advonet/Beteiligte/*/Adressen", method="POST",
                                                status=500, after=True, times=1)
    bench.measure("A11 POST answer lost (Celery retry, resumed)", pid)
    advo.empty_as_null_ratio = 1.0
    bench.measure("A12 empties now null instead of \"\"", pid, no_writes=True)
    advo.empty_as_null_ratio = 0.5


def main(argv: list[str] | None = None) -> int:
    return call_bench_main(
        argv, __doc__, "adressen", Bench, run,
        ["run", "E GET", "E PUT", "E POST", "E notes", "A GET", "A PUT", "A POST", "total", "writes", "token", "wall",
         "path"],
        "Adressen sync: API calls per run (EspoCRM E, Advoware A; latency {latency} ms; total = API calls without "
        "notes and token fetches; writes = E PUT + E POST + A PUT + A POST)")


if __name__ == "__main__":
    sys.exit(main())
