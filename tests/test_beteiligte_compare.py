"""Unit tests of bitbylaw_tasks.beteiligte.compare: change detection, per-field merge, write-back, bookkeeping.

The property tests play whole syncs against two small in-memory stores that
behave like the real systems where it matters here: EspoCRM trims text and keeps
"" as null and bumps modifiedAt on every write; Advoware's PUT replaces every
writable field and issues a new rowId.
"""
import itertools
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from bitbylaw_tasks.beteiligte.compare import (
    ADVOWARE, ADVOWARE_NEWER, BY_ROW_ID, BY_TIMESTAMPS, CONFLICT, ESPOCRM, ESPOCRM_NEWER, FIRST_SYNC, NO_CHANGE,
    SNAPSHOT_FIELD, changes_in, compare, conflict_policy, create_write, dump_snapshot, load_snapshot,
    override_note, sync_write,
)
from bitbylaw_tasks.beteiligte.mapping import (
    ADVOWARE_WRITABLE, FIELDS, GROUP_OF, GROUPS, canonical_to_espo, espo_to_advoware, format_espo_datetime,
    mapped_snapshot, snapshot_of_advoware,
)

T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=timezone.utc)
_row_ids = itertools.count(1)


# ---------------------------------------------------------------- in-memory stores
def espo_save(record: dict, write: dict, at: datetime) -> dict:
    """EspoCRM's save: text trimmed, "" stored as null (StringTrim), modifiedAt bumped; None is refused."""
    out = dict(record)
    for key, value in write.items():
        assert value is not None, f"None written to EspoCRM field {key}"
        assert not (key == "dateOfBirth" and value == ""), "empty date written to EspoCRM"
        out[key] = (value.strip() or None) if isinstance(value, str) else value
    out["modifiedAt"] = format_espo_datetime(at + timedelta(seconds=1))  # the server clock runs a bit later
    return out


def espo_user_edit(record: dict, changes: dict, at: datetime) -> dict:
    """A user's save in EspoCRM's UI: may clear anything (null), also trimmed; modifiedAt bumped."""
    out = {**record, **{k: (v.strip() or None) if isinstance(v, str) else v for k, v in changes.items()}}
    out["modifiedAt"] = format_espo_datetime(at)
    return out


def advo_put(record: dict, body: dict) -> dict:
    """Advoware's PUT: writable fields replaced (absent = cleared), a new rowId."""
    return {**record, **{k: body.get(k) for k in ADVOWARE_WRITABLE}, "rowId": f"row-{next(_row_ids)}"}


def advo_user_edit(record: dict, changes: dict) -> dict:
    return {**record, **changes, "rowId": f"row-{next(_row_ids)}"}


def run_sync(espo, advo, now, policy=None):
    result = compare(espo, advo, policy=policy)
    if result.advoware_put is not None:
        advo = advo_put(advo, result.advoware_put)
    espo = espo_save(espo, sync_write(result, advo, now), now)
    return espo, advo, result


def assert_quiet(espo, advo, now, policy=None):
    """A sync_check right after a sync: nothing changed, nothing to write anywhere."""
    result = compare(espo, advo, policy=policy)
    assert result.kind == NO_CHANGE, result.summary()
    assert result.advoware_put is None and result.espocrm_update == {} and result.overridden == ()
    assert changes_in(sync_write(result, advo, now), espo) == {}


def linked(espo_fields: dict, advo_fields: dict, snapshot: dict | None = None, **espo_extra):
    """A synced pair as the product leaves it, then optionally edited by hand."""
    espo = {"id": "e1", "betnr": 11, "advowareRowId": "row-A", "advowareLastSync": "2024-05-01 07:00:00",
            "modifiedAt": "2024-05-01 07:00:01", "syncStatus": "clean", "syncRetryCount": 0,
            "syncErrorMessage": None, **espo_fields, **espo_extra}
    if snapshot is not None:
        espo[SNAPSHOT_FIELD] = dump_snapshot(snapshot)
    advo = {"betNr": 11, "rowId": "row-A", "briefAnrede": "Sehr geehrter Herr Muster", "zusatz": "Z",
            "kurzname": "MUSTER", "kommunikation": [{"id": 1, "tlf": "030 1"}], **advo_fields}
    return espo, advo


MAX = {"firstName": "Max", "lastName": "Muster", "salutationName": "Herr", "titel": "", "dateOfBirth": "1980-02-03"}
MAX_ADVO = {"vorname": "Max", "name": "Muster", "anrede": "Herr", "titel": None, "geburtsdatum": "1980-02-03T00:00:00"}
SNAP = mapped_snapshot(MAX)


# ---------------------------------------------------------------- the kind table (rowId + snapshot)
@pytest.mark.parametrize("espo_edit, advo_row, kind", [
    ({}, "row-A", NO_CHANGE),
    ({"lastName": "Neu"}, "row-A", ESPOCRM_NEWER),
    ({}, "row-B", ADVOWARE_NEWER),
    ({"lastName": "Neu"}, "row-B", CONFLICT),
])
def test_kind_by_row_id_and_snapshot(espo_edit, advo_row, kind):
    espo, advo = linked({**MAX, **espo_edit}, {**MAX_ADVO, "rowId": advo_row}, SNAP)
    result = compare(espo, advo)
    assert (result.kind, result.detection, result.had_snapshot) == (kind, BY_ROW_ID, True)
    assert result.warnings == ()


def test_own_write_back_is_not_a_user_edit_although_modified_at_moved():
    espo, advo = linked(MAX, MAX_ADVO, SNAP, modifiedAt="2024-05-01 09:59:59")  # way after advowareLastSync
    assert compare(espo, advo).kind == NO_CHANGE


def test_first_sync_of_an_existing_pair_is_espocrm_newer_and_follows_espocrm():
    espo, advo = linked({**MAX, "titel": "Dr."}, {**MAX_ADVO, "name": "Alt", "rowId": "row-Z"}, SNAP)
    del espo["advowareLastSync"]
    result = compare(espo, advo)
    assert (result.kind, result.detection, result.had_snapshot) == (ESPOCRM_NEWER, FIRST_SYNC, False)
    assert result.advoware_put["name"] == "Muster" and result.advoware_put["titel"] == "Dr."
    assert result.overridden == () and result.espocrm_update == {}


def test_unreadable_last_sync_counts_as_first_sync_with_a_warning():
    espo, advo = linked(MAX, MAX_ADVO, SNAP, advowareLastSync="kaputt")
    result = compare(espo, advo)
    assert result.kind == ESPOCRM_NEWER and result.detection == FIRST_SYNC
    assert "advowareLastSync unreadable: treated as a first sync" in result.warnings


def test_without_snapshot_modified_at_is_the_fallback():
    espo, advo = linked(MAX, MAX_ADVO, None, modifiedAt="2024-05-01 07:00:00")
    result = compare(espo, advo)
    assert result.kind == NO_CHANGE and not result.had_snapshot
    assert "no snapshot: EspoCRM change detected by modifiedAt" in result.warnings
    espo["modifiedAt"] = "2024-05-01 07:00:01"
    assert compare(espo, advo).kind == ESPOCRM_NEWER


def test_missing_row_id_falls_back_to_geaendert_am_with_a_warning():
    espo, advo = linked(MAX, {**MAX_ADVO, "rowId": None, "geaendertAm": "2024-05-01T07:30:00"}, None,
                        modifiedAt="2024-05-01 06:00:00")
    result = compare(espo, advo)
    assert (result.kind, result.detection) == (ADVOWARE_NEWER, BY_TIMESTAMPS)
    assert any(w.startswith("rowId missing") for w in result.warnings)
    advo["geaendertAm"] = "2024-05-01T06:30:00"
    assert compare(espo, advo).kind == NO_CHANGE
    del advo["geaendertAm"]
    result = compare(espo, advo)
    assert result.kind == NO_CHANGE and "no geaendertAm and no snapshot: Advoware assumed unchanged" in result.warnings


def test_missing_row_id_with_snapshot_also_sees_content_changes():
    espo, advo = linked(MAX, {**MAX_ADVO, "titel": "Prof.", "rowId": ""}, SNAP, advowareRowId="")
    result = compare(espo, advo)
    assert (result.kind, result.detection) == (ADVOWARE_NEWER, BY_TIMESTAMPS)
    assert result.espocrm_update == {"titel": "Prof."}


# ---------------------------------------------------------------- outcomes
def test_espocrm_newer_puts_the_merged_full_record():
    espo, advo = linked({**MAX, "lastName": "Neumann"}, MAX_ADVO, SNAP)
    result = compare(espo, advo)
    put = result.advoware_put
    assert put["name"] == "Neumann" and put["vorname"] == "Max" and put["geburtsdatum"] == "1980-02-03T00:00:00"
    assert put["briefAnrede"] == "Sehr geehrter Herr Muster" and put["zusatz"] == "Z"
    assert "kommunikation" not in put
    assert result.espocrm_update == {}


def test_advoware_newer_writes_changed_fields_and_display_name_to_espocrm():
    espo, advo = linked(MAX, {**MAX_ADVO, "name": "Mustermann", "titel": "Dr.", "rowId": "row-B"}, SNAP)
    result = compare(espo, advo)
    assert result.advoware_put is None
    assert result.espocrm_update == {"lastName": "Mustermann", "titel": "Dr.", "name": "Max Mustermann"}
    assert result.snapshot == {**SNAP, "lastName": "Mustermann", "titel": "Dr."}


def test_advoware_change_outside_the_mapping_only_moves_the_row_id():
    espo, advo = linked(MAX, {**MAX_ADVO, "briefAnrede": "Hallo", "rowId": "row-B"}, SNAP)
    result = compare(espo, advo)
    assert result.kind == ADVOWARE_NEWER and result.advoware_put is None and result.espocrm_update == {}
    assert changes_in(sync_write(result, advo, T0), espo) == {"advowareRowId": "row-B"}


def test_conflict_keeps_one_sided_changes_of_both_sides():
    """SPEC §4.3's example: the Advoware user's change survives an EspoCRM edit of another field."""
    espo, advo = linked({**MAX, "lastName": "Neumann"}, {**MAX_ADVO, "titel": "Dr.", "rowId": "row-B"}, SNAP)
    result = compare(espo, advo)
    assert result.kind == CONFLICT and result.overridden == ()
    assert result.advoware_put["name"] == "Neumann" and result.advoware_put["titel"] == "Dr."
    assert result.espocrm_update == {"titel": "Dr."}
    assert override_note(result) is None


def test_conflict_on_one_field_espocrm_wins_and_reports_the_advoware_value():
    espo, advo = linked({**MAX, "lastName": "Neumann"}, {**MAX_ADVO, "name": "Altmann", "rowId": "row-B"}, SNAP)
    result = compare(espo, advo)
    assert result.advoware_put["name"] == "Neumann" and result.espocrm_update == {}
    [override] = result.advoware_overridden
    assert (override.field, override.group, override.advoware, override.espocrm) == (
        "lastName", "name", "Altmann", "Neumann")
    note = override_note(result, mention="anna")
    assert note.startswith("@anna\n") and "lastName: Advoware value overridden" in note and "Altmann" in note


def test_policy_per_group_lets_advoware_win_a_group():
    espo, advo = linked({**MAX, "lastName": "Neumann", "titel": "Dr."},
                        {**MAX_ADVO, "name": "Altmann", "titel": "Prof.", "rowId": "row-B"}, SNAP)
    result = compare(espo, advo, policy={"name": ADVOWARE})
    assert result.merged["lastName"] == "Altmann" and result.merged["titel"] == "Dr."
    lost = {o.field: (o.advoware_lost, o.espocrm_lost) for o in result.overridden}
    assert lost == {"lastName": (False, True), "titel": (True, False)}
    assert result.espocrm_update == {"lastName": "Altmann", "name": "Max Altmann"}
    assert result.advoware_put["titel"] == "Dr." and result.advoware_put["name"] == "Altmann"


def test_both_sides_changed_a_field_to_the_same_value_is_no_override():
    espo, advo = linked({**MAX, "lastName": "Neu"}, {**MAX_ADVO, "name": "Neu", "rowId": "row-B"}, SNAP)
    result = compare(espo, advo)
    assert result.kind == CONFLICT and result.overridden == ()
    assert result.advoware_put is None and result.espocrm_update == {}


def test_conflict_without_snapshot_follows_espocrm_by_default_and_the_policy_otherwise():
    espo, advo = linked({**MAX, "titel": "Dr."}, {**MAX_ADVO, "name": "Altmann", "rowId": "row-B"}, None,
                        modifiedAt="2024-05-01 07:30:00")
    result = compare(espo, advo)
    assert result.kind == CONFLICT and not result.had_snapshot
    assert result.merged == mapped_snapshot(espo)
    # without a snapshot nobody knows who changed what: every difference counts as changed on both sides
    assert [o.field for o in result.advoware_overridden] == ["lastName", "titel"]
    result = compare(espo, advo, policy={"person": ADVOWARE})
    assert result.merged["titel"] == "" and result.merged["lastName"] == "Muster"


def test_kind_change_in_advoware_company_to_person():
    acme = {"firmenname": "ACME", "rechtsform": "GmbH", "salutationName": "Firma"}
    espo, advo = linked(acme, {"vorname": "Max", "name": "Muster", "anrede": "Herr", "rechtsform": "GmbH",
                               "rowId": "row-B"}, mapped_snapshot(acme))
    result = compare(espo, advo)
    assert result.kind == ADVOWARE_NEWER and result.advoware_put is None
    assert result.espocrm_update == {"firstName": "Max", "lastName": "Muster", "firmenname": "",
                                     "salutationName": "Herr", "name": "Max Muster"}


def test_kind_change_in_espocrm_overrides_advoware_first_name_edit():
    espo, advo = linked({**MAX, "firmenname": "ACME"}, {**MAX_ADVO, "vorname": "Moritz", "rowId": "row-B"}, SNAP)
    result = compare(espo, advo)
    assert result.merged["firmenname"] == "ACME" and result.merged["firstName"] == ""
    assert [(o.field, o.advoware) for o in result.advoware_overridden] == [("firstName", "Moritz")]
    assert result.advoware_put["vorname"] is None and result.advoware_put["name"] == "ACME"
    assert result.espocrm_update == {"firstName": "", "lastName": "", "name": "ACME"}


def test_date_cleared_in_advoware_does_not_flip_flop():
    espo, advo = linked(MAX, {**MAX_ADVO, "geburtsdatum": None, "rowId": "row-B"}, SNAP)
    espo, advo, result = run_sync(espo, advo, T0)
    assert any(w.startswith("dateOfBirth: empty in Advoware") for w in result.warnings)
    assert espo["dateOfBirth"] == "1980-02-03"  # EspoCRM cannot take an empty date
    assert_quiet(espo, advo, T0)
    # a later EspoCRM edit of another field must not push the old date back
    espo = espo_user_edit(espo, {"lastName": "Neumann"}, T0)
    espo, advo, result = run_sync(espo, advo, T0 + timedelta(minutes=1))
    assert advo["name"] == "Neumann" and advo["geburtsdatum"] is None
    assert_quiet(espo, advo, T0)


def test_empty_string_and_none_do_not_flip_flop():
    espo, advo = linked({**MAX, "titel": None}, {**MAX_ADVO, "titel": ""}, SNAP)
    assert compare(espo, advo).kind == NO_CHANGE
    espo, advo = linked({**MAX, "titel": "  "}, {**MAX_ADVO, "titel": None}, SNAP)
    assert compare(espo, advo).kind == NO_CHANGE


# ---------------------------------------------------------------- snapshot storage, policy, bookkeeping
def test_snapshot_dump_is_compact_sorted_json_and_loads_back():
    text = dump_snapshot(SNAP)
    assert text.startswith('{"f":{"dateOfBirth":"1980-02-03","firmenname":"",') and text.endswith('},"v":1}')
    assert " " not in text.replace("Max Muster", "")
    assert load_snapshot(text) == SNAP
    assert json.loads(dump_snapshot(mapped_snapshot({"firmenname": "Müller & Söhne"})))["f"]["firmenname"] == \
        "Müller & Söhne"


@pytest.mark.parametrize("text", ["{", "[]", '{"v":2,"f":{}}', '{"v":1}', '{"v":1,"f":[]}', "null", "42"])
def test_unreadable_snapshot_is_no_snapshot(text):
    report = []
    assert load_snapshot(text, report) is None
    assert report == ["snapshot unreadable or of another version: treated as missing"]
    assert load_snapshot("") is None and load_snapshot(None) is None


def test_snapshot_missing_a_field_treats_only_that_field_as_unknown():
    partial = {k: v for k, v in SNAP.items() if k != "titel"}
    espo, advo = linked({**MAX, "titel": "Dr."}, {**MAX_ADVO, "name": "Neu", "rowId": "row-B"}, None)
    espo[SNAPSHOT_FIELD] = json.dumps({"v": 1, "f": partial})
    result = compare(espo, advo)
    assert result.kind == ADVOWARE_NEWER  # titel is not evidence of an EspoCRM edit
    assert result.merged["lastName"] == "Neu" and result.merged["titel"] == ""  # the record-level verdict decides


def test_conflict_policy_validation():
    assert conflict_policy() == {g: ESPOCRM for g in GROUPS}
    assert conflict_policy({"company": "advoware"})["company"] == ADVOWARE
    with pytest.raises(ValueError, match="unknown field group 'adresse'"):
        conflict_policy({"adresse": "espocrm"})
    with pytest.raises(ValueError, match="expected 'espocrm' or 'advoware'"):
        conflict_policy({"name": "newest"})


def test_sync_write_is_data_plus_bookkeeping_in_one_dict():
    espo, advo = linked(MAX, {**MAX_ADVO, "titel": "Dr.", "rowId": "row-B"}, SNAP,
                        syncStatus="failed", syncRetryCount=3, syncErrorMessage="boom")
    result = compare(espo, advo)
    write = sync_write(result, advo, T0)
    assert write == {
        "titel": "Dr.", "syncStatus": "clean", "advowareLastSync": "2024-05-01 08:00:00", "syncRetryCount": 0,
        "syncErrorMessage": "", "betnr": 11, "advowareRowId": "row-B",
        SNAPSHOT_FIELD: dump_snapshot({**SNAP, "titel": "Dr."}),
    }


def test_row_id_comes_from_the_put_response():
    espo, advo = linked({**MAX, "lastName": "Neu"}, MAX_ADVO, SNAP)
    result = compare(espo, advo)
    write = sync_write(result, {"betNr": 11, "rowId": "row-after-put"}, T0)
    assert write["advowareRowId"] == "row-after-put"
    assert "advowareRowId" not in sync_write(result, {"betNr": 11}, T0)  # never None


def test_create_write_links_the_new_record():
    espo = {"id": "e9", "firstName": "Max", "lastName": "Muster", "syncStatus": "pending_sync"}
    write = create_write(mapped_snapshot(espo), {"betNr": 123, "rowId": "row-new"}, T0, espo)
    assert write["betnr"] == 123 and write["advowareRowId"] == "row-new" and write["syncStatus"] == "clean"
    assert load_snapshot(write[SNAPSHOT_FIELD]) == mapped_snapshot(espo)
    espo = espo_save(espo, write, T0)
    advo = {"betNr": 123, "rowId": "row-new", **espo_to_advoware(espo)}
    assert_quiet(espo, advo, T0)


def test_create_write_keeps_what_was_posted_as_the_snapshot_when_espocrm_changed_meanwhile():
    """Issue 18 C: the user changed `titel` while the POST was in flight; the edit is an EspoCRM change."""
    posted = {"id": "e9", "firstName": "Max", "lastName": "Muster", "titel": "Dr."}
    espo = {**posted, "titel": "Prof."}
    write = create_write(mapped_snapshot(posted), {"betNr": 123, "rowId": "row-new"}, T0, espo)
    assert load_snapshot(write[SNAPSHOT_FIELD])["titel"] == "Dr." and write["syncStatus"] == "dirty"
    espo = espo_save(espo, write, T0)
    advo = {"betNr": 123, "rowId": "row-new", **espo_to_advoware(posted)}
    espo, advo, result = run_sync(espo, advo, T0)
    assert result.kind == ESPOCRM_NEWER and advo["titel"] == "Prof."
    assert_quiet(espo, advo, T0)


def test_changes_in_ignores_last_sync_and_empty_vs_null():
    write = {"advowareLastSync": "x", "syncErrorMessage": "", "syncStatus": "clean", "syncRetryCount": 0}
    assert changes_in(write, {"syncErrorMessage": None, "syncStatus": "clean", "syncRetryCount": 0}) == {}
    assert changes_in(write, {"syncStatus": "dirty", "syncRetryCount": 0}) == {"syncStatus": "clean"}


def test_result_repr_and_summary_carry_no_personal_data():
    espo, advo = linked({**MAX, "lastName": "Geheimrath"}, {**MAX_ADVO, "name": "Vertraulich", "rowId": "row-B"},
                        SNAP)
    result = compare(espo, advo)
    for text in (repr(result), str(result.summary()), repr(result.overridden)):
        assert "Geheimrath" not in text and "Vertraulich" not in text and "1980" not in text


# ---------------------------------------------------------------- properties
texts = st.one_of(st.none(), st.sampled_from(["", " ", "Max", " Max", "Müller", "Mu\u0308ller", "ACME", "Dr."]))
dates = st.one_of(st.none(), st.sampled_from(["", "1980-02-03", "1999-12-31", "1980-02-30"]))
espo_edits = st.fixed_dictionaries({}, optional={
    "firstName": texts, "lastName": texts, "firmenname": texts, "salutationName": texts, "titel": texts,
    "dateOfBirth": dates, "rechtsform": texts})
advo_edits = st.fixed_dictionaries({}, optional={
    "vorname": texts, "name": texts, "anrede": texts, "titel": texts, "rechtsform": texts,
    "geburtsdatum": st.one_of(st.none(), st.sampled_from(["", "1980-02-03T00:00:00", "2001-01-05T00:00:00",
                                                          "0001-01-01T00:00:00", "nie"])),
    "briefAnrede": texts})
policies = st.fixed_dictionaries({}, optional={g: st.sampled_from([ESPOCRM, ADVOWARE]) for g in GROUPS})
steps = st.lists(st.tuples(st.one_of(st.none(), espo_edits), st.one_of(st.none(), advo_edits)), max_size=4)


@given(espo_edits, advo_edits, steps, policies)
@settings(max_examples=150, deadline=None)
def test_after_any_sync_the_next_checks_are_no_change(espo_start, advo_start, history, policy):
    espo = {"id": "e1", "betnr": 11, "syncStatus": "pending_sync", **espo_start}
    advo = {"betNr": 11, "rowId": f"row-{next(_row_ids)}", **advo_start}
    now = T0
    espo, advo, _ = run_sync(espo, advo, now, policy)  # first sync of an existing pair
    for espo_edit, advo_edit in [(None, None), *history]:
        now += timedelta(minutes=5)
        if espo_edit:
            espo = espo_user_edit(espo, espo_edit, now)
        if advo_edit:
            advo = advo_user_edit(advo, advo_edit)
        espo, advo, _ = run_sync(espo, advo, now, policy)
        for _ in range(2):  # repeatedly
            assert_quiet(espo, advo, now + timedelta(minutes=1), policy)
        both = mapped_snapshot(espo), snapshot_of_advoware(advo)
        # the sides agree, except a date Advoware cleared and EspoCRM cannot clear
        assert {f for f in FIELDS if both[0][f] != both[1][f]} <= {"dateOfBirth"}
        assert both[1]["dateOfBirth"] == "" or both[0]["dateOfBirth"] == both[1]["dateOfBirth"]


person_names = st.sampled_from(["Max", "Erika", "Muster", "Schmidt"])
company_names = st.sampled_from(["ACME", "Kanzlei Süd", "Beta KG"])
details = {"salutationName": st.sampled_from(["", "Herr", "Frau"]), "titel": st.sampled_from(["", "Dr.", "Prof."]),
           "dateOfBirth": st.sampled_from(["", "1980-02-03", "1999-12-31"])}
person_states = st.fixed_dictionaries({"firstName": person_names, "lastName": person_names, "firmenname": st.just(""),
                                       "rechtsform": st.just(""), **details})
company_states = st.fixed_dictionaries({"firstName": st.just(""), "lastName": st.just(""),
                                        "firmenname": company_names,
                                        "rechtsform": st.sampled_from(["", "GmbH", "AG"]), **details})


@st.composite
def three_states(draw):
    """A snapshot and two edits of it, all of one kind (so person/company coherence never interferes)."""
    states = draw(st.sampled_from([person_states, company_states]))
    base, new = draw(states), draw(states)
    pick = lambda: {f: new[f] if draw(st.booleans()) else base[f] for f in FIELDS}  # noqa: E731
    return base, pick(), pick()


@given(three_states(), policies)
@settings(max_examples=300)
def test_per_field_merge(states, policy):
    base, e, a = states
    espo, advo = linked(canonical_to_espo(e), {**espo_to_advoware(a), "rowId": "row-B"}, base)
    result = compare(espo, advo, policy=policy)
    winners = conflict_policy(policy)
    overridden = set()
    for f in FIELDS:
        e_changed, a_changed = e[f] != base[f], a[f] != base[f]
        if e_changed and a_changed and e[f] != a[f]:
            expected = e[f] if winners[GROUP_OF[f]] == ESPOCRM else a[f]
            overridden.add(f)
        elif e_changed:
            expected = e[f]  # one-sided changes always survive
        else:
            expected = a[f]
        assert result.merged[f] == expected, f
    assert {o.field for o in result.overridden} == overridden
    assert all(o.advoware_lost == (winners[o.group] == ESPOCRM) for o in result.overridden)
    assert result.kind == (CONFLICT if e != base else ADVOWARE_NEWER)
    assert (result.advoware_put is None) == (result.merged == a)


# ---------------------------------------------------------------- issue 18 B: a kind switch against a name edit
@pytest.mark.parametrize("espo_edit", [{"lastName": "Musterfrau"}, {"firstName": "Moritz"}])
def test_kind_switch_in_advoware_does_not_beat_an_espocrm_name_edit(espo_edit):
    """Advoware clears `vorname` (person -> company), EspoCRM edits a name: the name group changed on
    both sides, so EspoCRM's whole name group wins and the note names Advoware's overridden values."""
    espo, advo = linked({**MAX, **espo_edit}, {**MAX_ADVO, "vorname": None, "rowId": "row-B"}, SNAP)
    result = compare(espo, advo)
    wanted = mapped_snapshot({**MAX, **espo_edit})
    assert result.kind == CONFLICT
    assert {f: result.merged[f] for f in GROUPS["name"]} == {f: wanted[f] for f in GROUPS["name"]}
    assert result.espocrm_update == {}
    assert result.advoware_put["vorname"] == wanted["firstName"] and result.advoware_put["name"] == wanted["lastName"]
    lost = {o.field: o.advoware for o in result.advoware_overridden}
    assert lost["firstName"] == "" and lost["firmenname"] == "Muster"
    assert not any(o.espocrm_lost for o in result.overridden)
    assert "Muster" in override_note(result)


def test_kind_switch_with_the_name_group_on_advoware_policy_notes_the_lost_espocrm_edit():
    espo, advo = linked({**MAX, "lastName": "Musterfrau"}, {**MAX_ADVO, "vorname": None, "rowId": "row-B"}, SNAP)
    result = compare(espo, advo, policy={"name": ADVOWARE})
    assert (result.merged["firmenname"], result.merged["firstName"]) == ("Muster", "")
    assert ("lastName", "Musterfrau") in {(o.field, o.espocrm) for o in result.overridden if o.espocrm_lost}
