"""Change detection and the per-field merge for one Beteiligter (SPEC §4.3): records + snapshot in, a plan out.

Pure, like vdirsyncer's `_get_actions` (STYLE §1): `compare()` looks at the
EspoCRM record, the fetched Advoware record and the snapshot of the last sync,
and returns a `CompareResult` that says what to PUT to Advoware and what to write
to EspoCRM. The service applies it; `sync_write()` adds the bookkeeping so data and
status go to EspoCRM in one write.

The snapshot is the canonical form (mapping.py) of the mapped fields as EspoCRM
held them after the last sync, stored as compact JSON in the EspoCRM field
`advowareSyncSnapshot` by that same write. It answers "did a user change EspoCRM
since?" (own write-backs leave the fields equal to the snapshot, whatever
`modifiedAt` says), and per field "which side changed?" for the merge.
docs/beteiligte-sync.md explains the choices.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping

from .mapping import (
    FIELDS, GROUP_OF, GROUPS, NAME_FIELDS, PERSON, canonical_to_espo, canonicalise, display_name,
    espo_to_advoware, kind_of, mapped_snapshot, merge_into_advoware, normalise, normalise_date,
    parse_advoware_datetime, parse_espo_datetime, snapshot_of_advoware,
)
from .status import DIRTY, after_success

ESPOCRM_NEWER = "espocrm_newer"
ADVOWARE_NEWER = "advoware_newer"
CONFLICT = "conflict"
NO_CHANGE = "no_change"

ESPOCRM, ADVOWARE = "espocrm", "advoware"
DEFAULT_POLICY: dict[str, str] = {group: ESPOCRM for group in GROUPS}

# How the Advoware side's change was detected.
BY_ROW_ID = "rowId"
BY_TIMESTAMPS = "timestamps"
FIRST_SYNC = "first_sync"
RESUMED = "resumed"  # after the sync's own PUT whose EspoCRM write-back did not land (put_journal.py)

SNAPSHOT_FIELD = "advowareSyncSnapshot"
SNAPSHOT_VERSION = 1

_FROM_RECORD = object()


@dataclass(frozen=True)
class FieldDecision:
    """One mapped field: who changed it since the snapshot and which value the sync settles on."""

    field: str
    group: str
    espocrm_changed: bool
    advoware_changed: bool
    source: str  # "same" (both sides agree), ESPOCRM, ADVOWARE, or "derived" (person/company coherence)
    espocrm: str = field(repr=False)
    advoware: str = field(repr=False)
    value: str = field(repr=False)


@dataclass(frozen=True)
class Override:
    """A change that did not survive the merge (both sides changed the field, or the kind changed)."""

    field: str
    group: str
    advoware_lost: bool  # Advoware's changed value was overridden (the stream note's subject)
    espocrm_lost: bool   # EspoCRM's changed value was overridden (policy "advoware")
    advoware: str = field(repr=False)
    espocrm: str = field(repr=False)
    value: str = field(repr=False)


@dataclass(frozen=True)
class CompareResult:
    """The plan for one sync. Values are personal data: log `summary()`, not the object's fields."""

    kind: str
    detection: str
    espocrm_changed: bool
    advoware_changed: bool
    decisions: tuple[FieldDecision, ...]
    overridden: tuple[Override, ...]
    warnings: tuple[str, ...]
    had_snapshot: bool
    merged: dict = field(repr=False)                 # canonical values both sides should hold
    advoware_put: dict | None = field(repr=False)    # full PUT body, or None: Advoware already holds `merged`
    espocrm_update: dict = field(repr=False)         # EspoCRM data fields to write (maybe empty)
    snapshot: dict = field(repr=False)               # canonical form of EspoCRM after `espocrm_update`

    @property
    def advoware_overridden(self) -> tuple[Override, ...]:
        return tuple(o for o in self.overridden if o.advoware_lost)

    def summary(self) -> dict:
        """A log-safe description: field names and flags, no values."""
        return {
            "kind": self.kind,
            "detection": self.detection,
            "advoware_put": self.advoware_put is not None,
            "espocrm_fields": sorted(self.espocrm_update),
            "overridden": [o.field for o in self.overridden],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Resume:
    """A sync resumed after its own Advoware PUT whose EspoCRM write-back did not land (issue 18 A).

    Advoware held `merged` at `row_id` after that PUT, and EspoCRM still holds what it held
    at that decision (`espocrm`) plus its user's edits since: `_resumed` makes the two sides
    and the base of the merge from that.
    """

    espocrm: dict = field(repr=False)
    merged: dict = field(repr=False)
    row_id: str | None = None


def conflict_policy(policy: Mapping[str, str] | None = None) -> dict[str, str]:
    """The full per-group policy: DEFAULT_POLICY (EspoCRM wins) updated by `policy`; ValueError if invalid."""
    out = dict(DEFAULT_POLICY)
    for group, side in (policy or {}).items():
        if group not in GROUPS:
            raise ValueError(f"unknown field group {group!r} (groups: {', '.join(GROUPS)})")
        if side not in (ESPOCRM, ADVOWARE):
            raise ValueError(f"group {group!r}: expected 'espocrm' or 'advoware', got {side!r}")
        out[group] = side
    return out


def check_settings(settings) -> None:
    """Run where a process starts (`celery_app`): `CONFLICT_POLICY` names only this domain's field groups.
    The base settings module checks the setting's shape and names no domain; the groups are known here."""
    from bitbylaw_tasks.settings import SettingsError

    try:
        conflict_policy(settings.conflict_policy)
    except ValueError as exc:
        raise SettingsError(f"CONFLICT_POLICY: {exc}") from None


def dump_snapshot(canonical: Mapping[str, str]) -> str:
    """The stored form: compact JSON `{"f":{field: value},"v":1}`, keys sorted (stable, diffable)."""
    return json.dumps({"v": SNAPSHOT_VERSION, "f": {f: canonical[f] for f in FIELDS}},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def load_snapshot(text, report: list[str] | None = None) -> dict[str, str] | None:
    """The stored snapshot, or None when absent, malformed or of another version (= no snapshot).

    Fields missing from a valid snapshot (added to the mapping later) are simply
    absent; `compare` treats each of them as having no snapshot.
    """
    if text in (None, ""):
        return None
    try:
        data = json.loads(text)
        fields = data["f"] if data.get("v") == SNAPSHOT_VERSION else None
    except (TypeError, ValueError, AttributeError, KeyError):
        fields = None
    if not isinstance(fields, dict):
        if report is not None:
            report.append("snapshot unreadable or of another version: treated as missing")
        return None
    return {f: normalise(fields[f]) for f in FIELDS if isinstance(fields.get(f), str)}


def compare(espo: dict, advo: dict, snapshot=_FROM_RECORD, policy: Mapping[str, str] | None = None,
            resume: Resume | None = None) -> CompareResult:
    """Decide one sync of a linked pair (SPEC §4.3).

    `snapshot`: the canonical dict of the last sync, None for "none", or omitted
    to read it from `espo[SNAPSHOT_FIELD]`. `policy`: {group: "espocrm"|"advoware"}
    for fields changed on both sides (default: EspoCRM wins everywhere).
    `resume`: the sync's own earlier PUT whose write-back did not land (`put_journal.resume_from`).
    """
    report: list[str] = []
    policy = conflict_policy(policy)
    if snapshot is _FROM_RECORD:
        snapshot = load_snapshot(espo.get(SNAPSHOT_FIELD), report)
    e = e_now = mapped_snapshot(espo, report)
    a = snapshot_of_advoware(advo, report)

    last_sync = parse_espo_datetime(espo.get("advowareLastSync"))
    if resume is not None:
        e, snapshot = _resumed(e_now, resume)
        current, detection = normalise(advo.get("rowId")), RESUMED
        espo_changed = any(e[f] != snapshot[f] for f in snapshot)
        advo_changed = bool(current and resume.row_id and current != resume.row_id) or \
            any(a[f] != snapshot[f] for f in snapshot)
    elif last_sync is None:
        if normalise(espo.get("advowareLastSync")):
            report.append("advowareLastSync unreadable: treated as a first sync")
        # First sync of an existing pair: EspoCRM is the master, and an old snapshot means nothing.
        snapshot, detection, espo_changed, advo_changed = None, FIRST_SYNC, True, False
    else:
        espo_changed = _espocrm_changed(espo, e, snapshot, last_sync, report)
        advo_changed, detection = _advoware_changed(espo, advo, a, snapshot, last_sync, report)
    kind = _KIND[espo_changed, advo_changed]

    decisions, overrides, merged = _merge(e, a, snapshot, espo_changed, advo_changed, kind, policy)
    advoware_put = None if merged == a else merge_into_advoware(advo, espo_to_advoware(merged))
    espocrm_update = _espocrm_update(espo, e_now, merged, report)
    return CompareResult(
        kind=kind, detection=detection, espocrm_changed=espo_changed, advoware_changed=advo_changed,
        decisions=decisions, overridden=overrides, warnings=tuple(report), had_snapshot=snapshot is not None,
        merged=merged, advoware_put=advoware_put, espocrm_update=espocrm_update,
        snapshot=mapped_snapshot({**espo, **espocrm_update}),
    )


def bookkeeping(snapshot: Mapping[str, str], advoware_after: dict, now: datetime, *, betnr=None) -> dict:
    """The sync fields of a successful sync: link, rowId, status clean, counters reset, the new snapshot.

    `advoware_after` is Advoware's record after the sync: the PUT or POST response,
    or the fetched record when nothing was written there.
    """
    out = after_success(now)
    betnr = advoware_after.get("betNr") if betnr is None else betnr
    if betnr not in (None, ""):
        out["betnr"] = betnr
    if advoware_after.get("rowId"):
        out["advowareRowId"] = advoware_after["rowId"]
    out[SNAPSHOT_FIELD] = dump_snapshot(snapshot)
    return out


def sync_write(result: CompareResult, advoware_after: dict, now: datetime) -> dict:
    """The one EspoCRM write that ends an update/check sync: the merged data plus bookkeeping."""
    return {**result.espocrm_update, **bookkeeping(result.snapshot, advoware_after, now)}


def create_write(posted: Mapping[str, str], created: dict, now: datetime, espo: dict) -> dict:
    """The one EspoCRM write after Advoware's POST answered `created`: betnr, rowId, status, snapshot.

    The snapshot is `posted`, the canonical form of what the POST carried, not of the
    record EspoCRM holds now: a user edit made while the create was in flight (`espo`
    differs from `posted`) must count as an EspoCRM change at the next sync, so the
    record is left `dirty` (issue 18 C) and the service runs that sync at once.
    """
    write = bookkeeping(posted, created, now)
    if mapped_snapshot(espo) != dict(posted):
        write["syncStatus"] = DIRTY
    return write


def changes_in(write: Mapping, espo: Mapping) -> dict:
    """The part of `write` that EspoCRM does not hold yet, ignoring `advowareLastSync`.

    Empty means the write can be skipped (SPEC §4.8: two calls when nothing needs
    writing); "" and None count as equal, as EspoCRM stores "" as null.
    """
    def same(x, y):
        return x == y or (x in (None, "") and y in (None, ""))
    return {k: v for k, v in write.items() if k != "advowareLastSync" and not same(v, espo.get(k))}


def notes_due(result: CompareResult, owed: tuple[Override, ...] = ()) -> tuple[Override, ...]:
    """The overrides the stream note must name: those an earlier PUT of this sync still owes (their
    `now` brought up to date) followed by this decision's own."""
    earlier = tuple(dataclasses.replace(o, value=result.merged.get(o.field, o.value)) for o in owed)
    return earlier + result.overridden


def override_note(result: CompareResult | tuple[Override, ...], mention: str = "") -> str | None:
    """The stream-note text telling the assigned user which changes the merge overrode, or None.

    Takes a result (its own overrides) or the overrides themselves (`notes_due`)."""
    overridden = result.overridden if isinstance(result, CompareResult) else result
    if not overridden:
        return None
    lines = [f"@{mention}" if mention else "", "Sync conflict between EspoCRM and Advoware, resolved per field:"]
    for o in overridden:
        lost = " and ".join(s for s, flag in (("Advoware", o.advoware_lost), ("EspoCRM", o.espocrm_lost)) if flag)
        lines.append(f"- {o.field}: {lost} value overridden (Advoware: {o.advoware or '(empty)'}; "
                     f"EspoCRM: {o.espocrm or '(empty)'}; now: {o.value or '(empty)'})")
    return "\n".join(line for line in lines if line)


_KIND = {
    (True, True): CONFLICT, (True, False): ESPOCRM_NEWER,
    (False, True): ADVOWARE_NEWER, (False, False): NO_CHANGE,
}


def _resumed(e_now: dict, resume: Resume) -> tuple[dict, dict]:
    """EspoCRM's side and the per-field base of a resumed sync.

    EspoCRM holds what it held at the decision plus the user's edits since (`e_now` where it
    differs from `resume.espocrm`); the PUT's values stand in for the rest. The base is what
    Advoware got from the PUT, except where the user since edited a field whose PUT value came
    from Advoware (EspoCRM never showed it): there the user edited against the old value, so
    both sides changed the field and the policy decides (and the note names Advoware's value).
    """
    # A person's rechtsform was not part of that decision (not mapped): EspoCRM's stands, with no base,
    # so it counts if the user's edits since turned the record into a company again.
    undecided = {"rechtsform"} if kind_of(resume.merged) == PERSON else set()
    since = {f for f in FIELDS if e_now[f] != resume.espocrm.get(f)}
    e = canonicalise({f: e_now[f] if f in since | undecided else resume.merged[f] for f in FIELDS})
    base = {f: resume.espocrm[f] if f in since and resume.merged[f] != resume.espocrm.get(f)
            else resume.merged[f] for f in FIELDS if f not in undecided}
    return e, base


def _espocrm_changed(espo, e, snapshot, last_sync, report) -> bool:
    if snapshot is not None:
        return any(e[f] != snapshot[f] for f in FIELDS if f in snapshot)
    report.append("no snapshot: EspoCRM change detected by modifiedAt")
    modified = parse_espo_datetime(espo.get("modifiedAt"))
    return modified is None or modified > last_sync


def _advoware_changed(espo, advo, a, snapshot, last_sync, report) -> tuple[bool, str]:
    stored, current = normalise(espo.get("advowareRowId")), normalise(advo.get("rowId"))
    if stored and current:
        return stored != current, BY_ROW_ID
    report.append("rowId missing: Advoware change detected by geaendertAm and content (unreliable)")
    changed_at = parse_advoware_datetime(advo.get("geaendertAm"))
    changed = changed_at is not None and changed_at > last_sync
    if snapshot is not None:
        changed = changed or any(a[f] != snapshot[f] for f in FIELDS if f in snapshot)
    elif changed_at is None:
        report.append("no geaendertAm and no snapshot: Advoware assumed unchanged")
    return changed, BY_TIMESTAMPS


def _merge(e, a, snapshot, espo_changed, advo_changed, kind, policy):
    """Per field: one-sided change -> that side; both sides -> the group's winner; then person/company coherence."""
    raw, flags = {}, {}
    for f in FIELDS:
        winner = e if policy[GROUP_OF[f]] == ESPOCRM else a
        base = None if snapshot is None else snapshot.get(f)
        if base is not None:
            ec, ac = e[f] != base, a[f] != base
            raw[f] = (winner[f] if e[f] != a[f] else e[f]) if ec and ac else e[f] if ec else a[f]
        else:
            # No snapshot for this field: the record-level verdict decides; EspoCRM is the master.
            differ = e[f] != a[f]
            ec, ac = differ and espo_changed, differ and advo_changed
            raw[f] = {CONFLICT: winner, ADVOWARE_NEWER: a}.get(kind, e)[f]
        flags[f] = (ec, ac)
    merged = _coherent(raw, flags, e, a, policy)
    person = kind_of(merged) == PERSON
    decisions, overrides = [], []
    for f in FIELDS:
        ec, ac = flags[f]
        value = merged[f]
        source = ("same" if e[f] == a[f] == value else ESPOCRM if value == e[f]
                  else ADVOWARE if value == a[f] else "derived")
        decisions.append(FieldDecision(f, GROUP_OF[f], ec, ac, source, e[f], a[f], value))
        if f == "rechtsform" and person:
            continue  # not mapped for persons: neither side's value is touched
        advo_lost, espo_lost = ac and value != a[f], ec and value != e[f]
        if advo_lost or espo_lost:
            overrides.append(Override(f, GROUP_OF[f], advo_lost, espo_lost, a[f], e[f], value))
    return tuple(decisions), tuple(overrides), merged


def _coherent(raw, flags, e, a, policy) -> dict:
    """`raw` made a valid record (`canonicalise`). When that would drop a change of a group's policy
    winner (Advoware turned the person into a company while EspoCRM renamed her), the group takes the
    winner's values as a whole: the policy, not the person/company rule, decides a group changed on
    both sides, and the loser's values become overrides (issue 18 B)."""
    merged = canonicalise(raw)
    person = kind_of(merged) == PERSON
    for group, fields in GROUPS.items():
        side = 0 if policy[group] == ESPOCRM else 1
        winner = (e, a)[side]
        if any(flags[f][side] and merged[f] != winner[f] and not (f == "rechtsform" and person) for f in fields):
            raw = {**raw, **{f: winner[f] for f in fields}}
    return canonicalise(raw)


def _espocrm_update(espo, e, merged, report) -> dict:
    """The EspoCRM data fields whose stored value differs from the merged one (never None)."""
    target = canonical_to_espo(merged)
    update = {}
    for key, value in target.items():
        current = normalise_date(espo.get(key)) if key == "dateOfBirth" else normalise(espo.get(key))
        if current != value:
            update[key] = value
    if not merged["dateOfBirth"] and e["dateOfBirth"]:
        report.append("dateOfBirth: empty in Advoware, EspoCRM keeps its date (an empty date cannot be written)")
    if any(f in update for f in NAME_FIELDS) and display_name(merged):
        update["name"] = display_name(merged)
    return update
