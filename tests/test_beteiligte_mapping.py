"""Unit tests of bitbylaw_tasks.beteiligte.mapping: normalisation, dates, person/company, round trips."""
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from bitbylaw_tasks.beteiligte.mapping import (
    ADVOWARE_WRITABLE, FIELDS, GROUP_OF, GROUPS, advoware_date, advoware_to_espo, canonical_to_espo, display_name,
    espo_to_advoware, format_espo_datetime, kind_of, mapped_snapshot, merge_into_advoware, normalise,
    normalise_date, parse_advoware_datetime, parse_espo_datetime, snapshot_of_advoware,
)

# ---------------------------------------------------------------- strategies
texts = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "Max", " Max ", "Müller", "Mu\u0308ller", "O'Neil", "ACME GmbH", "Herr", "Firma", "\u00a0x"]),
    st.text(max_size=10),
)
names = st.sampled_from(["Max", "Erika", "Müller", "Schmidt-Weber", "ACME GmbH", "Kanzlei Süd", "Ö"])
valid_dates = st.dates(min_value=date(1000, 1, 1), max_value=date(2100, 12, 31))
espo_dates = st.one_of(st.none(), st.just(""), valid_dates.map(date.isoformat),
                       st.sampled_from(["1980-02-30", "gestern", "1980-13-01", "0001-01-01"]), st.text(max_size=12))
advo_dates = st.one_of(st.none(), st.just(""), valid_dates.map(lambda d: f"{d.isoformat()}T00:00:00"),
                       st.just("0001-01-01T00:00:00"), st.text(max_size=12))
espo_records = st.fixed_dictionaries({}, optional={
    "firstName": texts, "lastName": texts, "firmenname": texts, "salutationName": texts, "titel": texts,
    "dateOfBirth": espo_dates, "rechtsform": texts,
})
advo_records = st.fixed_dictionaries({"betNr": st.integers(1, 10**6), "rowId": st.text(min_size=1, max_size=8)}, optional={
    "vorname": texts, "name": texts, "anrede": texts, "titel": texts, "geburtsdatum": advo_dates,
    "rechtsform": texts, "briefAnrede": texts, "zusatz": texts, "kurzname": texts,
})
persons = st.fixed_dictionaries({"firstName": names, "lastName": names}, optional={
    "salutationName": st.sampled_from(["Herr", "Frau", ""]), "titel": st.sampled_from(["Dr.", "Prof. Dr.", ""]),
    "dateOfBirth": valid_dates.map(date.isoformat)})
companies = st.fixed_dictionaries({"firmenname": names}, optional={
    "salutationName": st.just("Firma"), "rechtsform": st.sampled_from(["GmbH", "AG", "KG", ""]),
    "dateOfBirth": valid_dates.map(date.isoformat)})


def put(advo: dict, body: dict) -> dict:
    """Advoware's PUT: every writable field replaced by the body's value (absent = cleared)."""
    return {**advo, **{k: body.get(k) for k in ADVOWARE_WRITABLE}}


# ---------------------------------------------------------------- normalise
@pytest.mark.parametrize("raw, expected", [
    (None, ""), ("", ""), ("  ", ""), (" Max ", "Max"), ("Mu\u0308ller", "Müller"), ("\u00a0Max\t", "Max"),
    (42, "42"), ("Müller-Lüdenscheidt", "Müller-Lüdenscheidt"),
])
def test_normalise(raw, expected):
    assert normalise(raw) == expected


@given(st.one_of(st.none(), st.text(), st.integers()))
def test_normalise_is_idempotent_and_never_none(value):
    once = normalise(value)
    assert isinstance(once, str)
    assert normalise(once) == once


def test_none_and_empty_string_are_the_same_value_everywhere():
    assert mapped_snapshot({"titel": None, "firstName": "A"}) == mapped_snapshot({"titel": "", "firstName": "A"})
    assert snapshot_of_advoware({"titel": None, "vorname": "A"}) == snapshot_of_advoware({"titel": "", "vorname": "A"})


# ---------------------------------------------------------------- dates
@pytest.mark.parametrize("raw, expected", [
    ("1980-02-03", "1980-02-03"),
    ("1980-02-03T00:00:00", "1980-02-03"),
    ("1980-02-03T00:00:00Z", "1980-02-03"),
    ("1980-02-03T00:00:00.0000000+01:00", "1980-02-03"),
    ("1980-02-03 12:30", "1980-02-03"),
    (" 1980-02-03 ", "1980-02-03"),
    (date(1980, 2, 3), "1980-02-03"),
    (datetime(1980, 2, 3, 5, 6), "1980-02-03"),
    ("0001-01-01T00:00:00", ""),  # .NET DateTime.MinValue = no date
    (None, ""), ("", ""),
])
def test_normalise_date_accepts_both_formats(raw, expected):
    report = []
    assert normalise_date(raw, report) == expected
    assert report == []


@pytest.mark.parametrize("raw", ["1980-02-30", "1980-13-01", "gestern", "03.02.1980", "1980-2-3", "19800203",
                                 "1980-02-03Tfoo", 19800203])
def test_malformed_date_is_empty_and_reported_without_the_value(raw):
    report = []
    assert normalise_date(raw, report, "geburtsdatum") == ""
    assert report == ["geburtsdatum: malformed date treated as empty"]
    assert str(raw) not in report[0]


@given(st.one_of(st.none(), st.text(max_size=30), valid_dates))
def test_normalise_date_never_raises_and_is_idempotent(value):
    once = normalise_date(value, [])
    assert once == "" or date.fromisoformat(once)
    assert normalise_date(once) == once


def test_advoware_date_conversion_both_ways():
    assert advoware_date("1980-02-03") == "1980-02-03T00:00:00"
    assert advoware_date("") is None
    report = []
    assert advoware_date("1980-02-31", report) is None
    assert report == ["dateOfBirth: malformed date treated as empty"]
    assert normalise_date(advoware_date("2001-01-05")) == "2001-01-05"


@given(valid_dates)
def test_date_round_trip(d):
    assert normalise_date(advoware_date(d.isoformat())) == d.isoformat()


def test_espo_datetime_parse_and_format():
    moment = parse_espo_datetime("2024-03-01 10:20:30")
    assert moment == datetime(2024, 3, 1, 10, 20, 30, tzinfo=timezone.utc)
    assert format_espo_datetime(moment) == "2024-03-01 10:20:30"
    assert format_espo_datetime(datetime(2024, 3, 1, 10, 20, 30)) == "2024-03-01 10:20:30"  # naive = UTC
    berlin = timezone(timedelta(hours=1))
    assert format_espo_datetime(datetime(2024, 3, 1, 11, 20, 30, tzinfo=berlin)) == "2024-03-01 10:20:30"
    for bad in (None, "", "yesterday", "2024-W01-1", "2024-02-30 10:00:00", 17):
        assert parse_espo_datetime(bad) is None


def test_advoware_datetime_parse():
    assert parse_advoware_datetime("2024-03-01T10:20:30") == datetime(2024, 3, 1, 10, 20, 30, tzinfo=timezone.utc)
    assert parse_advoware_datetime("2024-03-01T11:20:30.123+01:00") == datetime(
        2024, 3, 1, 10, 20, 30, 123000, tzinfo=timezone.utc)
    assert parse_advoware_datetime("nie") is None


# ---------------------------------------------------------------- person / company
def test_person_to_advoware():
    espo = {"firstName": " Max ", "lastName": "Muster", "firmenname": None, "salutationName": "Herr",
            "titel": "", "dateOfBirth": "1980-02-03", "rechtsform": "GmbH"}
    assert espo_to_advoware(espo) == {"vorname": "Max", "name": "Muster", "anrede": "Herr", "titel": None,
                                      "geburtsdatum": "1980-02-03T00:00:00"}  # no rechtsform for a person


def test_company_to_advoware_ignores_hidden_person_names():
    espo = {"firstName": "Max", "lastName": "Muster", "firmenname": "ACME", "rechtsform": "GmbH",
            "salutationName": "Firma"}
    assert espo_to_advoware(espo) == {"vorname": None, "name": "ACME", "rechtsform": "GmbH", "anrede": "Firma",
                                      "titel": None, "geburtsdatum": None}
    assert kind_of(espo) == "company"


def test_person_without_first_name_becomes_a_company_and_says_so():
    report = []
    mapped = espo_to_advoware({"lastName": "Muster"}, report)
    assert mapped["vorname"] is None and mapped["name"] == "Muster"
    assert report == ["firstName empty: stored in Advoware as a company named by lastName"]
    assert mapped_snapshot({"lastName": "Muster"})["firmenname"] == "Muster"


def test_advoware_person_to_espo():
    advo = {"betNr": 7, "rowId": "AAA=", "vorname": "Erika", "name": "Muster", "anrede": "Frau", "titel": "Dr.",
            "geburtsdatum": "1964-08-12T00:00:00", "rechtsform": "e.K.", "briefAnrede": "Sehr geehrte Frau Dr."}
    assert advoware_to_espo(advo) == {
        "firstName": "Erika", "lastName": "Muster", "firmenname": "", "name": "Erika Muster",
        "salutationName": "Frau", "titel": "Dr.", "dateOfBirth": "1964-08-12",
        "advowareRowId": "AAA=", "betnr": 7,
    }


def test_advoware_company_to_espo():
    advo = {"betNr": 8, "rowId": "BBB=", "vorname": "", "name": "ACME", "anrede": "Firma", "rechtsform": "GmbH",
            "geburtsdatum": None}
    assert advoware_to_espo(advo) == {
        "firstName": "", "lastName": "", "firmenname": "ACME", "name": "ACME", "rechtsform": "GmbH",
        "salutationName": "Firma", "titel": "", "advowareRowId": "BBB=", "betnr": 8,
    }


@given(advo_records)
def test_advoware_to_espo_never_writes_none_nor_empty_dates(advo):
    out = advoware_to_espo(advo, [])
    assert None not in out.values()
    assert out.get("dateOfBirth", "x") != ""
    assert out.get("name", "x") != ""
    assert (out["firmenname"] == "") or (out["firstName"] == out["lastName"] == "")


def test_merge_into_advoware_keeps_unmapped_fields_and_drops_nested_lists():
    fetched = {"betNr": 3, "rowId": "R", "vorname": "Max", "name": "Alt", "briefAnrede": "Lieber Max",
               "zusatz": "z", "rechtsform": "e.K.", "kurzname": "MAX", "kommunikation": [{"id": 1}],
               "adressen": {"x": 1}}
    body = merge_into_advoware(fetched, espo_to_advoware({"firstName": "Max", "lastName": "Neu"}))
    assert body["name"] == "Neu" and body["vorname"] == "Max"
    assert body["briefAnrede"] == "Lieber Max" and body["zusatz"] == "z" and body["rechtsform"] == "e.K."
    assert body["betNr"] == 3 and body["rowId"] == "R"
    assert "kommunikation" not in body and "adressen" not in body
    assert fetched["name"] == "Alt"  # the fetched record is not mutated


def test_groups_cover_every_field_once():
    assert sorted(FIELDS) == sorted(f for fs in GROUPS.values() for f in fs)
    assert len(FIELDS) == len(set(FIELDS)) == len(GROUP_OF)
    assert set(GROUPS) == {"name", "person", "company"}


def test_display_name():
    assert display_name(mapped_snapshot({"firstName": "Max", "lastName": "Muster"})) == "Max Muster"
    assert display_name(mapped_snapshot({"firmenname": "ACME", "firstName": "x"})) == "ACME"
    assert display_name(mapped_snapshot({"firstName": "Max"})) == "Max"


# ---------------------------------------------------------------- canonical form and round trips
@given(espo_records)
def test_canonical_form_is_a_fixed_point(espo):
    canonical = mapped_snapshot(espo, [])
    assert set(canonical) == set(FIELDS) and all(isinstance(v, str) for v in canonical.values())
    assert mapped_snapshot(canonical) == canonical
    assert mapped_snapshot(canonical_to_espo(canonical)) == canonical


@given(espo_records, advo_records)
@settings(max_examples=200)
def test_espo_to_advoware_to_espo_is_stable(espo, fetched):
    advo = put(fetched, merge_into_advoware(fetched, espo_to_advoware(espo, [])))
    assert snapshot_of_advoware(advo) == mapped_snapshot(espo)
    back = {**espo, **advoware_to_espo(advo)}
    assert mapped_snapshot(back) == mapped_snapshot(espo)


@given(st.one_of(persons, companies), advo_records)
def test_well_formed_records_come_back_unchanged(espo, fetched):
    advo = put(fetched, merge_into_advoware(fetched, espo_to_advoware(espo)))
    back = advoware_to_espo(advo)
    for key, value in espo.items():
        if key == "rechtsform" and kind_of(espo) == "person":
            continue
        if value or key != "dateOfBirth":
            assert back.get(key, "") == value, key


@given(advo_records)
@settings(max_examples=200)
def test_advoware_to_espo_to_advoware_is_stable(advo):
    espo = advoware_to_espo(advo, [])  # a fresh EspoCRM record holding the Advoware data
    again = put(advo, merge_into_advoware(advo, espo_to_advoware(espo)))
    assert snapshot_of_advoware(again) == snapshot_of_advoware(advo)
    for key in ("briefAnrede", "zusatz", "kurzname", "betNr"):
        assert again.get(key) == advo.get(key)
