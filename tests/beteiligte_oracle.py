"""The oracle of the randomised Beteiligte end-to-end test (tests/test_beteiligte_e2e_random.py).

`Round` records what the humans did in one round (each side's canonical form before and after
its user's edits, the Advoware values a sync may have seen, the edits made during a sync);
`check_round` judges the settled pair against it, `assert_second_sync_writes_nothing` the
quiet check after it. The one accepted failure class, an Advoware edit lost in a GET->PUT
window, is recognised from the simulator's request log (`in_window`) and counted in `RESIDUAL`.
docs/beteiligte-sync.md §11 lists the checks.
"""
from __future__ import annotations

import collections
import re
from dataclasses import dataclass, field

from beteiligte_helpers import run_sync
from bitbylaw_tasks.beteiligte.mapping import FIELDS, GROUP_OF, PERSON, kind_of, mapped_snapshot, snapshot_of_advoware

ADVO_GET, ADVO_PUT = "GET /api/v1/advonet/Beteiligte/<betnr>", "PUT /api/v1/advonet/Beteiligte/<betnr>"
ADVO_POST = "POST /api/v1/advonet/Beteiligte"
WRITES = (ADVO_PUT, ADVO_POST, "PUT /api/v1/CBeteiligte/<record_id>", "POST /api/v1/Note")
NOTE_LINE = re.compile(r"^- (\w+): (.*?) value overridden \(Advoware: (.*?); EspoCRM: (.*?); now: (.*?)\)$")
READ_ONLY = ("betNr", "kurzname", "art", "angelegtAm", "geaendertAm")
RESIDUAL: collections.Counter = collections.Counter()  # edits during a sync, lost in a window, webhooks


@dataclass
class Round:
    log: list = field(default_factory=list)
    espo_base: dict = field(default_factory=dict)    # canonical EspoCRM before the round
    advo_base: dict = field(default_factory=dict)    # canonical Advoware before the round
    espo_human: dict | None = None                   # canonical EspoCRM after its user's last edit
    advo_human: dict | None = None                   # canonical Advoware after its user's last edit
    advo_seen: dict = field(default_factory=dict)    # field -> Advoware values a sync may have seen
    in_flight: list = field(default_factory=list)    # (t0, t1, kind) of Advoware edits made during a sync
    unmapped_in_flight: set = field(default_factory=set)  # unmapped fields those edits wrote
    timers: list = field(default_factory=list)        # watchers that edit while the sync runs

    def changed(self, side: str) -> dict:
        """{field: the user's value} for the fields a side's user changed this round."""
        human, base = (self.espo_human, self.espo_base) if side == "espocrm" else (self.advo_human, self.advo_base)
        if human is None:
            return {}
        # a person's rechtsform is not mapped: turning a company into a person does not clear it
        return {f: human[f] for f in FIELDS if human[f] != base[f]
                and not (f == "rechtsform" and kind_of(human) == PERSON)}


def in_window(world, r: Round) -> bool:
    """Whether an Advoware edit made during a sync fell between a GET and the PUT after it (from the
    simulator's request log: the GET's start to the PUT's end), where the full-replace PUT loses it."""
    log = [e for e in world.sandbox.kit("advoware").log if e["path"].endswith(f"/Beteiligte/{world.betnr}")]
    windows, last_get = [], None
    for entry in sorted(log, key=lambda e: e["start"]):
        if entry["method"] == "GET":
            last_get = entry["start"]
        elif entry["method"] == "PUT" and last_get is not None:
            windows.append((last_get, entry["end"]))
    return any(t1 >= start and t0 <= end for t0, t1, _ in r.in_flight for start, end in windows)


def check_agreement(world) -> dict:
    """Both sides hold the same canonical data (a date cleared in Advoware may stay in EspoCRM: the
    documented limitation), and the bookkeeping is clean. Returns Advoware's canonical form."""
    espo, advo = world.espo, world.advo
    e_final, a_final = mapped_snapshot(espo), snapshot_of_advoware(advo)
    differ = [f for f in FIELDS if e_final[f] != a_final[f] and not (f == "dateOfBirth" and not a_final[f])]
    assert not differ, f"sides differ in {differ}: {[(e_final[f], a_final[f]) for f in differ]}"
    assert espo["syncStatus"] == "clean" and espo["syncRetryCount"] == 0 and not espo["syncErrorMessage"], espo
    assert espo["advowareRowId"] == advo["rowId"]
    return a_final


def check_round(world, r: Round, notes_before: int) -> None:
    espo, advo, a_final = world.espo, world.advo, check_agreement(world)
    espo_changed, advo_changed = r.changed("espocrm"), r.changed("advoware")
    person = kind_of(a_final) == PERSON
    # 2. EspoCRM's changes survive; Advoware's survive, or a note names them, or they fell into a window
    notes = world.notes()[notes_before:]
    lines = [NOTE_LINE.match(line) for note in notes for line in note.splitlines() if line.startswith("- ")]
    assert all(lines), notes
    noted = {(m[1], "" if m[3] == "(empty)" else m[3]) for m in lines if "Advoware" in m[2]}
    # the name group is one unit (it decides person or company): a note naming any of its Advoware values
    # reports the group's override (e.g. a kind switch noted by the names it carried)
    name_noted = any(GROUP_OF[f] == "name" and value in r.advo_seen.get(f, ()) for f, value in noted)
    lost_in_window = False
    for f in FIELDS:
        if f == "rechtsform" and person:
            continue  # not mapped for persons: neither side's value is touched
        if f in espo_changed:
            assert a_final[f] == espo_changed[f], f"EspoCRM's change of {f} lost: {espo_changed[f]!r} -> {a_final[f]!r}"
        advo_value = advo_changed.get(f)
        if f in advo_changed and a_final[f] != advo_value:
            if (f, advo_value) in noted or (GROUP_OF[f] == "name" and name_noted):
                rival = [g for g in espo_changed if g == f or GROUP_OF[g] == GROUP_OF[f] == "name"]
                assert rival, f"{f}: Advoware's {advo_value!r} overridden though EspoCRM did not change it"
            elif in_window(world, r):
                lost_in_window = True
            else:
                raise AssertionError(f"Advoware's change of {f} lost without a note: {advo_value!r} -> {a_final[f]!r}")
    # 3. true notes only
    for f, value in noted:
        # a standing difference (a date cleared in Advoware that EspoCRM cannot clear) is Advoware's value too
        standing = r.advo_base[f] != r.espo_base[f]
        assert value in r.advo_seen.get(f, ()) and (value != r.advo_base[f] or standing), \
            f"note names {value!r} for {f}: Advoware's user never wrote it this round"
        assert value != a_final[f], f"note names {value!r} for {f}, which is the final value"
    if not noted:
        assert not notes, f"a note although nothing was overridden: {notes}"
    # 4. unmapped fields untouched (except an in-flight write the PUT replaced: the same residual)
    for key, value in world.unmapped.items():
        if advo[key] != value and key in r.unmapped_in_flight and in_window(world, r):
            world.unmapped[key], lost_in_window = advo[key], True
        assert advo[key] == world.unmapped[key], f"{key}: {advo[key]!r}, the Advoware user wrote {value!r}"
    # read-only fields the full-replace PUT sends back as read: never changed
    assert {k: advo[k] for k in READ_ONLY} == world.read_only, (world.read_only, {k: advo[k] for k in READ_ONLY})
    for _, _, kind in r.in_flight:
        RESIDUAL[f"edits during {kind}"] += 1
        RESIDUAL[f"lost during {kind}"] += lost_in_window


def assert_second_sync_writes_nothing(world) -> None:
    kits = [world.sandbox.kit(n) for n in ("espocrm", "advoware")]
    before = [dict(k.calls()) for k in kits]
    outcome = run_sync(world.id)
    after = [dict(k.calls()) for k in kits]
    writes = {w: sum(a.get(w, 0) - b.get(w, 0) for a, b in zip(after, before)) for w in WRITES}
    assert outcome["path"] == "no_change" and not any(writes.values()), (outcome["path"], writes)
    assert len(world.advo_state.dump_state()["beteiligte"]) == 1, "a Beteiligter was created twice"
    refused = [d["status"] for d in world.espo_state.hooks.deliveries if d["outcome"] != "success"]
    assert not refused, f"the shim refused webhooks: {refused}"
