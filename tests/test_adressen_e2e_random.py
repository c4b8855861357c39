"""Adressen sync end to end, randomised and seeded: edits on both sides and faults converge.

Through both simulators and the session worker. Each seed links a party, gives it addresses on both
sides, syncs, then plays rounds of random edits — EspoCRM: add, edit a writable or a read-only field,
delete; Advoware (a person): add at a random position, edit any field of any address, remove one —
with a fault now and then (a POST whose answer is lost after the write, a failed EspoCRM write-back),
then syncs. After every round the oracle checks what a person would notice:
- no address exists twice in Advoware (each marker once) and Advoware never got a DELETE;
- every address edited in EspoCRM shows EspoCRM's value of a writable field in Advoware; a read-only one
  is either in Advoware or an open manual action naming that address;
- every field a person edited in Advoware that EspoCRM did not touch reached EspoCRM;
- where both sides edited the same field, EspoCRM's value is on both sides (writable) and a note says so;
- every Advoware address is one CAdresse (by marker or imported), or an open "deleted" manual action;
- a second sync in a row writes nothing.
`ADRESSEN_RANDOM_SEEDS=1,2,3` picks seeds (default 1..8; 1..60 run once). One fixed case of the class
the hypothesis oracle found (a Land a person changed in Advoware meeting a PLZ the user entered in EspoCRM)
runs end to end too.
"""
from __future__ import annotations

import os
import random

from bitbylaw_tasks.adressen import mapping
from test_adressen_e2e import BERLIN, DELETE, PUT, Counts, Party, _synced, assert_idle

SEEDS = [int(s) for s in os.environ.get("ADRESSEN_RANDOM_SEEDS", ",".join(map(str, range(1, 9)))).split(",")
         if s.strip()]
ROUNDS = 3
STREETS = ["Hauptstr. 1", "Ring 2", "Markt 3", "Weg 4", "Allee 5", "Gasse 6"]
TOWNS = [("10115", "Berlin"), ("20095", "Hamburg"), ("50667", "Köln"), ("80331", "München")]
WRITABLE_VALUES = {"strasse": STREETS, "plz": [t[0] for t in TOWNS] + ["1010"], "ort": [t[1] for t in TOWNS],
                   "anschrift": [None, "c/o Kanzlei", "Hinterhaus"]}
READ_ONLY_VALUES = {"land": ["DE", "AT", "CH"], "postfach": [None, "12 34", "99"]}


def _address(rnd: random.Random) -> dict:
    plz, ort = rnd.choice(TOWNS)
    return {"strasse": f"{rnd.choice(STREETS)} {rnd.randint(1, 99)}", "plz": plz, "ort": ort, "land": "DE"}


def _play(party: Party, rnd: random.Random) -> list[str]:
    problems: list[str] = []
    for _ in range(rnd.randint(0, 2)):
        party.espo_add(**_address(rnd))
    for _ in range(rnd.randint(0, 2)):
        party.advo.human_add_adresse(party.betnr, _address(rnd))
    party.sync()
    for round_no in range(ROUNDS):
        espo_edits: dict[tuple[str, str], object] = {}
        advo_edits: dict[tuple[str, str], object] = {}
        records = {r["id"]: r for r in party.records() if r.get("syncStatus") == "clean" and r.get("isActive")}
        pending = {(a.adresse_id, a.field) for a in party.actions()}  # EspoCRM's values still asked for
        for _ in range(rnd.randint(1, 4)):
            kind = rnd.choice(["espo_edit", "espo_edit", "espo_add", "espo_delete", "advo_edit", "advo_edit",
                               "advo_add", "both_edit"])
            truth = party.truth()
            if kind == "espo_edit" and records:
                rid = rnd.choice(sorted(records))
                name, values = rnd.choice(list({**WRITABLE_VALUES, **READ_ONLY_VALUES}.items()))
                value = rnd.choice(values)
                party.espo_edit(rid, **{name: value})
                espo_edits[(rid, name)] = value
            elif kind == "espo_add":
                party.espo_add(**_address(rnd))
            elif kind == "espo_delete" and len(records) > 1:
                rid = rnd.choice(sorted(records))
                party.espo_delete(rid)
                records.pop(rid)
                espo_edits = {k: v for k, v in espo_edits.items() if k[0] != rid}
            elif kind == "advo_edit" and truth:
                index = rnd.randrange(len(truth)) + 1
                name, values = rnd.choice(list({**WRITABLE_VALUES, **READ_ONLY_VALUES}.items()))
                value = rnd.choice(values)
                party.advo.human_update_adresse(party.betnr, index, **{name: value})
                rid = mapping.marker_of(truth[index - 1]["bemerkung"])
                if rid:
                    advo_edits[(rid, name)] = value
            elif kind == "both_edit" and truth:  # the same field on both sides, different values
                index = rnd.randrange(len(truth)) + 1
                rid = mapping.marker_of(truth[index - 1]["bemerkung"])
                if rid in records:
                    name = rnd.choice(sorted(WRITABLE_VALUES))
                    espo_value, advo_value = f"E{rnd.randint(1, 9)}", f"A{rnd.randint(1, 9)}"
                    party.espo_edit(rid, **{name: espo_value})
                    party.advo.human_update_adresse(party.betnr, index, **{name: advo_value})
                    espo_edits[(rid, name)], advo_edits[(rid, name)] = espo_value, advo_value
            elif kind == "advo_add":
                party.advo.human_add_adresse(party.betnr, _address(rnd), position=rnd.randint(1, len(truth) + 1))
        if rnd.random() < 0.3:
            party.sandbox.kit("advoware").add_fault(path="/api/v1/advonet/Beteiligte/*/Adressen", method="POST",
                                                    status=500, after=True, times=1)
        if rnd.random() < 0.3:
            party.sandbox.kit("espocrm").add_fault(path="/api/v1/CAdresse/*", method="PUT", status=503, times=1)
        party.sync()
        problems += [f"round {round_no}: {p}" for p in _check(party, espo_edits, advo_edits, set(records), pending)]
        try:
            assert_idle(party)
        except AssertionError as exc:
            problems.append(f"round {round_no}: the second sync wrote: {exc}")
    return problems


def _check(party: Party, espo_edits: dict, advo_edits: dict, clean_at_start: set[str],
           pending: set[tuple[str, str]]) -> list[str]:
    """What a person would notice after a round (module docstring); `clean_at_start`: the CAdresse ids that
    were in sync when the round began (an address with a change still pending is judged by the rules, not
    by this round's edits alone); `pending`: the (CAdresse, field) manual actions open when it began — a
    person setting another value there changed a field EspoCRM had changed too: EspoCRM's value still wins,
    the action stays open (seed 46 of 31..60)."""
    problems = []
    truth = party.truth()
    markers = [mapping.marker_of(a["bemerkung"]) for a in truth if mapping.marker_of(a["bemerkung"])]
    if len(markers) != len(set(markers)):
        problems.append(f"an address exists twice in Advoware: {markers}")
    records = {r["id"]: r for r in party.records()}
    by_marker = {mapping.marker_of(a["bemerkung"]): a for a in truth if mapping.marker_of(a["bemerkung"])}
    actions = party.actions()
    open_for = {(a.adresse_id, a.field) for a in actions}
    for (rid, name), value in espo_edits.items():
        advo = by_marker.get(rid)
        if rid not in records or advo is None or records[rid].get("syncStatus") == "failed":
            continue
        if name in mapping.WRITABLE:
            if mapping.text(advo[name]) != mapping.text(value):
                problems.append(f"{rid}.{name}: EspoCRM's {value!r} did not reach Advoware ({advo[name]!r})")
        elif mapping.text(advo[name]) != mapping.text(value) and (rid, name) not in open_for:
            problems.append(f"{rid}.{name}: EspoCRM's {value!r} neither in Advoware nor a manual action")
    for (rid, name), value in advo_edits.items():
        if rid not in records or rid not in clean_at_start or (rid, name) in espo_edits:
            continue
        if (rid, name) in pending:
            if mapping.text(records[rid].get(name)) != mapping.text(value) and (rid, name) not in open_for:
                problems.append(f"{rid}.{name}: EspoCRM's wanted value neither kept open nor replaced by "
                                f"Advoware's {value!r}")
            continue
        if mapping.text(records[rid].get(name)) != mapping.text(value):
            problems.append(f"{rid}.{name}: Advoware's {value!r} did not reach EspoCRM ({records[rid].get(name)!r})")
    for key in set(espo_edits) & set(advo_edits):
        rid, name = key
        if records.get(rid, {}).get("syncStatus") == "failed":
            continue
        if name in mapping.WRITABLE and rid in by_marker and espo_edits[key] != advo_edits[key]:
            if mapping.text(by_marker[rid][name]) != mapping.text(espo_edits[key]):
                record = records.get(rid, {})
                problems.append(f"{rid}.{name}: both changed, EspoCRM did not win (Advoware "
                                f"{by_marker[rid][name]!r}, EspoCRM {record.get(name)!r}, "
                                f"{record.get('syncStatus')} {record.get('syncErrorMessage')})")
            if not any(f"EspoCRM's value '{espo_edits[key]}' wins" in n for n in party.notes()):
                problems.append(f"{rid}.{name}: both changed, no note")
    if party.sandbox.kit("advoware").calls().get(DELETE):
        problems.append("Advoware received a DELETE")
    deleted_actions = sum(1 for a in actions if a.adresse_id is None)
    imported = sum(1 for r in records.values() if r.get("advowareSnapshot") and '"origin":"espocrm"' not in r[
        "advowareSnapshot"])
    if len(truth) > len(markers) + imported + len(actions):
        problems.append(f"{len(truth)} Advoware addresses but {len(markers)} marked + {imported} imported")
    if deleted_actions > len(truth):
        problems.append("more deletion actions than addresses")
    return problems


def test_random_edits_and_faults_on_both_sides_converge(sandbox, celery_worker, lock_redis):
    failures = []
    for seed in SEEDS:
        sandbox.kit("espocrm").reset()
        sandbox.kit("advoware").reset()
        lock_redis.flushdb()
        party = Party(sandbox, lock_redis)
        counts = Counts(sandbox)
        problems = _play(party, random.Random(seed))
        if problems:
            failures.append(f"seed {seed}: " + "; ".join(problems[:5]))
        print(f"seed {seed}: {len(party.truth())} Advoware addresses, {len(party.records())} CAdresse, "
              f"{len(party.actions())} open actions, advoware calls {sum(counts.delta('advoware').values())}")
    assert not failures, "\n".join(failures)


def test_a_land_changed_in_advoware_and_a_plz_entered_in_espocrm_converge_in_one_sync(sandbox, celery_worker,
                                                                                       lock_redis):
    party = Party(sandbox, lock_redis)
    (rid,) = _synced(party, BERLIN)
    party.espo_edit(rid, plz="1010", ort="Wien")
    party.advo.human_update_adresse(party.betnr, 1, land="AT")
    counts = Counts(sandbox)
    party.sync()
    assert counts.delta("advoware")[PUT] == 1
    assert (party.truth()[0]["plz"], party.truth()[0]["ort"], party.truth()[0]["land"]) == ("1010", "Wien", "AT")
    record = party.record(rid)
    assert (record["land"], record["syncStatus"], record.get("syncErrorMessage")) == ("AT", "clean", None)
    assert party.actions() == []
    assert_idle(party)
