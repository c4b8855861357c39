"""API calls per Kommunikation sync, by variant (SPEC §5.3), counted by the EspoCRM and Advoware simulators.

Each row is one `kommunikation.sync(id, "both", False)` through the real queue
and a worker subprocess, on a Beteiligter linked in both simulators and
(except the initial syncs) synced once before; the simulators' per-endpoint
counters are reset right before the sync, after the human edits of the
scenario. Token fetches and EspoCRM settings reads (the phone number format, cached per worker) are counted apart. Exits 1 if the no-change run
writes anything or Advoware ever receives a DELETE.

    .venv/bin/python -m bench.kommunikation_calls [--latency-ms 0]
"""
from __future__ import annotations

import sys

from bench.common import BenchEnv, call_bench_main, measured_sync

MOBILE, OFFICE, MAIL = "+491711111111", "+49302222222", "max@example.de"
KOMM = "/Kommunikationen"


def phone(number: str, kind: str, primary: bool = False) -> dict:
    return {"phoneNumber": number, "type": kind, "primary": primary, "optOut": False, "invalid": False}


def email(address: str, primary: bool = False) -> dict:
    return {"emailAddress": address, "primary": primary, "optOut": False, "invalid": False}


BASE_PHONES = [phone(MOBILE, "Mobile", True), phone(OFFICE, "Office")]
BASE_EMAILS = [email(MAIL, True)]


class Bench:
    def __init__(self, env: BenchEnv):
        self.env = env
        self.espo = env.sandbox.state("espocrm")
        self.advo = env.sandbox.state("advoware")
        self.rows: list[list] = []
        self.details: list[tuple[str, dict]] = []
        self.failures: list[str] = []

    def pair(self, phones=(), emails=(), advoware=(), synced: bool = True) -> tuple[str, int]:
        betnr = self.advo.create_beteiligte({"name": "Mustermann", "vorname": "Max"})["betNr"]
        for spec in advoware:
            self.advo.human_add_kommunikation(betnr, *spec)
        record = self.espo.save(None, {"firstName": "Max", "lastName": "Mustermann", "betnr": betnr,
                                       "syncStatus": "clean", "phoneNumberData": list(phones),
                                       "emailAddressData": list(emails)}, self.espo.integration_user)
        if synced:
            self.sync(record["id"])
        return record["id"], betnr

    def sync(self, entity_id: str) -> dict:
        return self.env.app.send_task("kommunikation.sync", (entity_id, "both", False)).get(timeout=60)

    def entry_id(self, betnr: int, tlf: str) -> int:
        return next(e["id"] for e in self.advo.get_beteiligte(betnr)["kommunikation"] if e["tlf"] == tlf)

    def measure(self, label: str, entity_id: str, *, no_writes: bool = False) -> None:
        outcome, elapsed, espo, advo, token = measured_sync(self.env, lambda: self.sync(entity_id))
        # EspoCRM's phone-format setting: read once per worker process and 10 minutes, not per sync
        settings_reads = sum(n for k, n in espo.items() if k.endswith(" /api/v1/Settings"))
        espo = {k: n for k, n in espo.items() if not k.endswith(" /api/v1/Settings")}

        def count(calls, method, komm=None):
            return sum(n for k, n in calls.items() if k.startswith(method + " ")
                       and (komm is None or (KOMM in k) == komm))

        notes = count(espo, "POST")
        row = {"E GET": count(espo, "GET"), "E PUT": count(espo, "PUT"), "notes": notes,
               "A GET": count(advo, "GET"), "A PUT": count(advo, "PUT", True), "A POST": count(advo, "POST", True)}
        writes = row["E PUT"] + row["A PUT"] + row["A POST"]
        total = sum(espo.values()) + sum(advo.values()) - notes
        self.rows.append([label, *row.values(), total, writes, token, settings_reads, f"{elapsed * 1000:.0f} ms",
                          outcome.get("path", "?")])
        self.details.append((label, {**{f"EspoCRM {k}": n for k, n in espo.items()},
                                     **{f"Advoware {k}": n for k, n in advo.items()}}))
        if any(k.startswith("DELETE") for k in advo):
            self.failures.append(f"{label}: Advoware received a DELETE")
        if no_writes and (writes or notes):
            self.failures.append(f"{label}: {writes} write(s) and {notes} note(s) in a run that must write nothing")


def run(bench: Bench) -> None:
    espo, advo = bench.espo, bench.advo
    rid, _ = bench.pair(BASE_PHONES, BASE_EMAILS, synced=False)
    bench.measure("initial: 3 values only in EspoCRM (I2)", rid)
    rid, _ = bench.pair(BASE_PHONES, BASE_EMAILS, [(3, MOBILE, "", True), (1, OFFICE), (4, MAIL, "", True)],
                        synced=False)
    bench.measure("initial: 3 equal values on both sides (I1, markers only)", rid)
    rid, _ = bench.pair(advoware=[(3, MOBILE, "", True), (1, OFFICE), (4, MAIL, "", True)], synced=False)
    bench.measure("initial: 3 values only in Advoware (I3)", rid)

    rid, _ = bench.pair(BASE_PHONES, BASE_EMAILS)
    bench.measure("no change (H1)", rid, no_writes=True)

    espo.human_update(rid, {"phoneNumberData": BASE_PHONES + [phone("+49403333333", "Home")]})
    bench.measure("V1 new in EspoCRM (POST)", rid)

    rid, betnr = bench.pair(BASE_PHONES, BASE_EMAILS)
    espo.human_update(rid, {"phoneNumberData": BASE_PHONES[:1]})
    bench.measure("V2 deleted in EspoCRM (blank to a slot)", rid)
    espo.human_update(rid, {"phoneNumberData": BASE_PHONES[:1] + [phone("+49306666666", "Office")]})
    bench.measure("V1 new in EspoCRM, free slot of its kind (PUT)", rid)
    espo.human_update(rid, {"phoneNumberData": BASE_PHONES[:1] + [phone("+49307777777", "Office")]})
    bench.measure("V2 + V1 of one kind in one run (one PUT)", rid)

    rid, betnr = bench.pair(BASE_PHONES, BASE_EMAILS)
    advo.human_delete_kommunikation(betnr, bench.entry_id(betnr, OFFICE))
    bench.measure("V3 deleted in Advoware", rid)
    advo.human_add_kommunikation(betnr, 3, "+491604444444", "privat")
    bench.measure("V4 new in Advoware (marker PUT)", rid)

    rid, betnr = bench.pair(BASE_PHONES, BASE_EMAILS)
    espo.human_update(rid, {"phoneNumberData": [phone(MOBILE, "Mobile"), phone("+49302222299", "Office", True)]})
    bench.measure("V5 changed in EspoCRM (value + primary)", rid)
    espo.human_update(rid, {"phoneNumberData": [phone(MOBILE, "Mobile"), phone("+49302222299", "Home", True)]})
    bench.measure("V5 type changed in EspoCRM (slot + POST)", rid)

    rid, betnr = bench.pair(BASE_PHONES, BASE_EMAILS)
    advo.human_update_kommunikation(betnr, bench.entry_id(betnr, MOBILE), tlf="+491729999999")
    bench.measure("V6 changed in Advoware", rid)
    advo.human_update_kommunikation(betnr, bench.entry_id(betnr, OFFICE), tlf="+49307777777")
    espo.human_update(rid, {"phoneNumberData": [phone("+491729999999", "Mobile", True), phone("+49308888888", "Office")]})
    bench.measure("C2 same entry changed on both sides (note)", rid)
    bench.measure("no change after the runs above", rid, no_writes=True)


def main(argv: list[str] | None = None) -> int:
    return call_bench_main(
        argv, __doc__, "kommunikation", Bench, run,
        ["run", "E GET", "E PUT", "E notes", "A GET", "A PUT", "A POST", "total", "writes", "token", "E settings",
         "wall", "path"],
        "Kommunikation sync: API calls per run (EspoCRM E, Advoware A; latency {latency} ms; total = API calls "
        "without notes, token fetches and EspoCRM settings reads (once per worker and 10 minutes); writes = E PUT "
        "+ A PUT + A POST)",
        details=lambda bench: [""] + [f"- {label}: " + ", ".join(f"{k} x{v}" for k, v in sorted(endpoints.items()))
                                      for label, endpoints in bench.details])


if __name__ == "__main__":
    sys.exit(main())
