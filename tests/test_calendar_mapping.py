"""Termin <-> Google event mapping: all-day/timed, exclusive end dates, Europe/Berlin with DST, art prefixes, stamps."""
import re
from datetime import date, datetime, time, timedelta

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from bitbylaw_tasks.calendar import mapping as m


def termin(**kw):
    base = {"frNr": 700001, "kuerzel": "AB", "art": "Termin", "datum": "2024-05-10T00:00:00",
            "uhrzeitVon": "10:00:00", "datumBis": "2024-05-10T00:00:00", "uhrzeitBis": "11:30:00",
            "ganztaegig": False, "text": "Mandantengespräch", "ort": "Kanzlei", "notiz": "Akte 12/24",
            "rowId": "r1"}
    base.update(kw)
    return base


def test_timed_termin_in_summer_has_the_cest_offset_and_time_zone():
    event = m.to_event(m.from_termin(termin()), 700001)
    assert event["start"] == {"dateTime": "2024-05-10T10:00:00+02:00", "timeZone": "Europe/Berlin"}
    assert event["end"] == {"dateTime": "2024-05-10T11:30:00+02:00", "timeZone": "Europe/Berlin"}
    assert (event["summary"], event["location"], event["description"]) == ("Mandantengespräch", "Kanzlei",
                                                                            "Akte 12/24")
    assert event["extendedProperties"]["private"] == {"advowareFrNr": "700001", "advowareArt": "Termin"}
    assert event["status"] == "confirmed" and "colorId" not in event


def test_timed_termin_in_winter_has_the_cet_offset():
    event = m.to_event(m.from_termin(termin(datum="2024-01-15", datumBis="2024-01-15")), 1)
    assert event["start"]["dateTime"] == "2024-01-15T10:00:00+01:00"


def test_all_day_frist_has_exclusive_end_date_prefix_and_colour():
    appt = m.from_termin(termin(art="Frist", ganztaegig=True, uhrzeitVon=None, uhrzeitBis=None,
                                text="Berufungsbegründung"))
    event = m.to_event(appt, 5)
    assert event["start"] == {"date": "2024-05-10"} and event["end"] == {"date": "2024-05-11"}
    assert event["summary"] == "Frist: Berufungsbegründung" and event["colorId"] == "11"
    assert m.from_event(event) == appt


def test_multi_day_all_day_and_multi_day_timed():
    allday = m.from_termin(termin(ganztaegig=True, datumBis="2024-05-12"))
    assert m.to_event(allday, 1)["end"] == {"date": "2024-05-13"}
    assert (allday.start_date, allday.end_date) == (date(2024, 5, 10), date(2024, 5, 12))
    timed = m.from_termin(termin(datumBis="2024-05-12", uhrzeitBis="09:00"))
    event = m.to_event(timed, 1)
    assert event["end"]["dateTime"] == "2024-05-12T09:00:00+02:00"
    assert m.from_event(event) == timed


def test_termin_without_start_time_is_all_day_and_without_end_time_ends_at_its_start():
    assert m.from_termin(termin(uhrzeitVon=None)).allday
    point = m.from_termin(termin(uhrzeitBis=None))
    assert not point.allday and point.end_time == point.start_time == time(10, 0)


def test_spring_forward_gap_time_moves_on_like_google_shows_it():
    appt = m.from_termin(termin(datum="2024-03-31", datumBis="2024-03-31", uhrzeitVon="02:30", uhrzeitBis="04:00"))
    assert appt.start_time == time(3, 30)
    event = m.to_event(appt, 1)
    assert event["start"]["dateTime"] == "2024-03-31T03:30:00+02:00"
    assert m.from_event(event) == appt


def test_fall_back_ambiguous_time_is_the_first_occurrence():
    appt = m.from_termin(termin(datum="2024-10-27", datumBis="2024-10-27", uhrzeitVon="02:30", uhrzeitBis="03:30"))
    event = m.to_event(appt, 1)
    assert event["start"]["dateTime"] == "2024-10-27T02:30:00+02:00"
    assert event["end"]["dateTime"] == "2024-10-27T03:30:00+01:00"
    assert m.from_event(event) == appt


def test_event_times_in_utc_or_other_zones_become_berlin_wall_time():
    base = {"summary": "x", "start": {"dateTime": "2024-07-01T08:00:00Z"}, "end": {"dateTime": "2024-07-01T09:00:00Z"}}
    appt = m.from_event(base)
    assert (appt.start_time, appt.end_time) == (time(10, 0), time(11, 0))
    ny = {"summary": "x", "start": {"dateTime": "2024-07-01T20:00:00", "timeZone": "America/New_York"},
          "end": {"dateTime": "2024-07-01T21:00:00", "timeZone": "America/New_York"}}
    appt = m.from_event(ny)
    assert (appt.start_date, appt.start_time, appt.end_date, appt.end_time) == (
        date(2024, 7, 2), time(2, 0), date(2024, 7, 2), time(3, 0))
    local = {"summary": "x", "start": {"dateTime": "2024-12-01T09:15:00"}, "end": {"dateTime": "2024-12-01T09:45:00"}}
    assert m.from_event(local).start_time == time(9, 15)  # no zone: the calendar's (Berlin)


def test_event_across_midnight_becomes_a_multi_day_timed_termin():
    event = {"summary": "Nachtsitzung", "start": {"dateTime": "2024-05-10T22:00:00+02:00"},
             "end": {"dateTime": "2024-05-11T00:00:00+02:00"}}
    appt = m.from_event(event)
    body = m.to_termin(appt, "AB")
    assert (body["datum"], body["uhrzeitVon"], body["datumBis"], body["uhrzeitBis"]) == (
        "2024-05-10", "22:00:00", "2024-05-11", "00:00:00")
    assert m.from_termin(body) == appt


@pytest.mark.parametrize("summary,art,text", [
    ("Frist: Klageerwiderung", "Frist", "Klageerwiderung"),
    ("Frist:Klageerwiderung", "Frist", "Klageerwiderung"),
    ("Frist", "Frist", ""),
    ("Klageerwiderung", "Frist", "Klageerwiderung"),       # a user removed the prefix: text unchanged
    ("Wiedervorlage: Akte 3", "Wiedervorlage", "Akte 3"),
    ("Frist: Klageerwiderung", "Termin", "Frist: Klageerwiderung"),  # a Termin's title is its text
    ("  Besprechung  ", "Termin", "Besprechung"),
    (None, "Termin", ""),
])
def test_text_from_summary(summary, art, text):
    assert m.text_from_summary(summary, art) == text


def test_art_comes_from_the_stamp_and_cannot_be_changed_from_google():
    event = m.to_event(m.from_termin(termin(art="Frist", text="Abgabe")), 9)
    event["summary"] = "Abgabe"  # prefix removed by a user
    assert m.from_event(event).art == "Frist" and m.from_event(event).text == "Abgabe"
    assert m.event_hash(event) == m.termin_hash(termin(art="Frist", text="Abgabe"))
    assert m.to_termin(m.from_event(event).with_art("Termin"), "AB", base={"art": "Frist"})["art"] == "Frist"
    unstamped = {"summary": "Frist: x", "start": {"date": "2024-05-10"}, "end": {"date": "2024-05-11"}}
    assert m.from_event(unstamped).art == "Termin" and m.event_frnr(unstamped) is None


def test_texts_none_empty_blank_and_crlf_compare_equal():
    a = termin(text=None, ort="", notiz="Zeile 1\r\nZeile 2 ")
    b = termin(text="", ort=None, notiz="Zeile 1\nZeile 2")
    assert m.termin_hash(a) == m.termin_hash(b)
    assert m.termin_hash(a) != m.termin_hash(termin(text="anders"))
    assert m.termin_hash(termin(rowId="x")) == m.termin_hash(termin(rowId="y"))  # rowId is no content


def test_to_termin_is_a_full_body():
    body = m.to_termin(m.from_termin(termin(ganztaegig=True, ort=None)), "AB")
    assert set(body) == {"kuerzel", "art", "datum", "datumBis", "ganztaegig", "uhrzeitVon", "uhrzeitBis",
                         "text", "ort", "notiz"}
    assert body["uhrzeitVon"] is None and body["ganztaegig"] is True and body["ort"] is None


def test_event_ids_are_base32hex_and_name_their_frnr():
    event_id = m.event_id_for(700123)
    assert re.fullmatch(r"[a-v0-9]{5,1024}", event_id)
    assert m.frnr_of_event_id(event_id) == 700123 and m.frnr_of_event_id("abcdef") is None


@pytest.mark.parametrize("event,ok", [
    ({"status": "cancelled", "id": "x"}, False),
    ({"start": {"date": "2024-01-01"}, "end": {"date": "2024-01-02"}, "recurrence": ["RRULE:FREQ=DAILY"]}, False),
    ({"start": {"date": "2024-01-01"}, "end": {"date": "2024-01-02"}, "eventType": "outOfOffice"}, False),
    ({"start": {"date": "2024-01-01"}}, False),
    ({"start": {"date": "2024-01-01"}, "end": {"date": "2024-01-02"}, "eventType": "default"}, True),
    ({"start": {"dateTime": "2024-01-01T10:00:00Z"}, "end": {"dateTime": "2024-01-01T11:00:00Z"}}, True),
])
def test_syncable(event, ok):
    assert m.syncable(event) is ok


def test_stamp_detection():
    event = m.to_event(m.from_termin(termin()), 700001)
    assert m.is_stamped(event, 700001, "Termin") and not m.is_stamped(event, 700002, "Termin")
    assert not m.is_stamped(event, 700001, "Frist")
    assert m.event_frnr({"extendedProperties": {"private": {"advowareFrNr": "nope"}}}) is None


# --- properties ---
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)


@st.composite
def appointments(draw):
    art = draw(st.sampled_from(m.ARTEN))
    first = date(2023, 1, 1) + timedelta(days=draw(st.integers(0, 1100)))
    last = first + timedelta(days=draw(st.integers(0, 4)))
    allday = draw(st.booleans())
    start = time(draw(st.integers(0, 23)), draw(st.integers(0, 59)))
    end = time(draw(st.integers(0, 23)), draw(st.integers(0, 59)))
    if not allday and first == last and end < start:
        start, end = end, start
    raw = {"art": art, "datum": first.isoformat(), "datumBis": last.isoformat(), "ganztaegig": allday,
           "uhrzeitVon": None if allday else start.strftime("%H:%M"),
           "uhrzeitBis": None if allday else end.strftime("%H:%M"),
           "text": draw(texts), "ort": draw(texts), "notiz": draw(texts)}
    return m.from_termin(raw)


@hsettings(max_examples=300, deadline=None)
@given(appointments(), st.integers(1, 10**7))
def test_round_trips_through_google_and_advoware(appt, frnr):
    event = m.to_event(appt, frnr)
    assert m.from_event(event) == appt
    assert m.from_termin(m.to_termin(appt, "AB")) == appt
    assert m.event_hash(event) == appt.content_hash()
    assert m.is_stamped(event, frnr, appt.art)
    if appt.allday:
        assert date.fromisoformat(event["end"]["date"]) == appt.end_date + timedelta(days=1)
    else:
        start, end = (datetime.fromisoformat(event[k]["dateTime"]) for k in ("start", "end"))
        assert start <= end and start.utcoffset() == start.astimezone(m.TZ).utcoffset()


@hsettings(max_examples=200, deadline=None)
@given(appointments(), appointments())
def test_hash_equal_exactly_when_canonical_equal(a, b):
    assert (a.content_hash() == b.content_hash()) == (a == b)


# --- issue 19: times Advoware may send, and instants Google already carries ---
def test_end_before_start_on_the_same_day_ends_the_next_day():
    appt = m.from_termin(termin(uhrzeitVon="22:00", uhrzeitBis="01:00"))
    assert (appt.start_date, appt.start_time) == (date(2024, 5, 10), time(22, 0))
    assert (appt.end_date, appt.end_time) == (date(2024, 5, 11), time(1, 0))
    body = m.to_termin(appt, "AB")
    assert (body["datumBis"], body["uhrzeitBis"]) == ("2024-05-11", "01:00:00")  # nothing lost on a write-back
    assert m.from_termin(body) == appt
    assert m.to_event(appt, 1)["end"]["dateTime"] == "2024-05-11T01:00:00+02:00"


@pytest.mark.parametrize("field", ["uhrzeitBis", "uhrzeitVon"])
def test_uhrzeit_24_00_is_the_end_of_the_day(field):
    appt = m.from_termin(termin(**{field: "24:00:00", "uhrzeitVon": "09:00" if field == "uhrzeitBis" else "24:00"}))
    moment = (appt.end_date, appt.end_time) if field == "uhrzeitBis" else (appt.start_date, appt.start_time)
    assert moment == (date(2024, 5, 11), time(0, 0))
    assert m.from_termin(m.to_termin(appt, "AB")) == appt


@pytest.mark.parametrize("changes,field", [
    ({"uhrzeitVon": "25:00"}, "uhrzeitVon"), ({"uhrzeitBis": "10"}, "uhrzeitBis"),
    ({"uhrzeitBis": "24:30"}, "uhrzeitBis"), ({"datum": "10.05.2024"}, "datum"), ({"datum": None}, "datum"),
])
def test_unreadable_termin_raises_value_error_naming_only_the_field(changes, field):
    with pytest.raises(ValueError) as caught:
        m.from_termin(termin(**changes))
    assert str(caught.value).startswith(field) and "10.05" not in str(caught.value)


def test_keep_instants_takes_the_events_second_0230_on_the_autumn_day():
    event = {"summary": "x", "start": {"dateTime": "2024-10-27T02:30:00+01:00"},
             "end": {"dateTime": "2024-10-27T03:30:00+01:00"}}
    from_google = m.from_event(event)
    wall = m.from_termin(termin(datum="2024-10-27", datumBis="2024-10-27", uhrzeitVon="02:30", uhrzeitBis="03:30"))
    assert wall.comparable()[1:6] == from_google.comparable()[1:6]  # the same wall times: nothing to sync
    kept = m.keep_instants(wall, from_google)
    assert m.to_event(kept, 1)["start"]["dateTime"] == "2024-10-27T02:30:00+01:00"
    assert m.to_event(kept, 1)["end"]["dateTime"] == "2024-10-27T03:30:00+01:00"
    moved = m.from_termin(termin(datum="2024-10-27", datumBis="2024-10-27", uhrzeitVon="02:45", uhrzeitBis="03:30"))
    assert m.to_event(m.keep_instants(moved, from_google), 1)["start"]["dateTime"] == "2024-10-27T02:45:00+02:00"
    assert m.keep_instants(wall, None) == wall


@pytest.mark.parametrize("summary,art,ok", [
    ("Frist: Klage", "Frist", True), ("Frist:Klage", "Frist", True), ("Frist", "Frist", True),
    ("Klage", "Frist", False), ("", "Wiedervorlage", False), ("Wiedervorlage: x", "Wiedervorlage", True),
    ("Klage", "Termin", True), (None, "Termin", True),
])
def test_has_label(summary, art, ok):
    assert m.has_label({"summary": summary}, art) is ok


def test_keep_instants_never_makes_an_event_end_before_it_starts():
    current = m.from_event({"start": {"dateTime": "2024-10-27T02:30:00+01:00"},
                            "end": {"dateTime": "2024-10-27T02:40:00+01:00"}})
    shorter = m.from_termin(termin(datum="2024-10-27", datumBis="2024-10-27", uhrzeitVon="02:30",
                                   uhrzeitBis="02:50"))
    event = m.to_event(m.keep_instants(shorter, current), 1)
    assert event["start"]["dateTime"] <= event["end"]["dateTime"]
    assert event["start"]["dateTime"] == "2024-10-27T02:30:00+02:00"


def test_event_ending_in_the_repeated_hour_before_its_start_wall_time_keeps_its_end():
    event = {"start": {"dateTime": "2024-10-27T02:30:00+02:00"}, "end": {"dateTime": "2024-10-27T02:10:00+01:00"}}
    appt = m.from_event(event)
    assert (appt.start_time, appt.end_time) == (time(2, 30), time(2, 10))  # 40 minutes, not zero
    assert m.to_event(appt, 1)["end"]["dateTime"] == "2024-10-27T02:10:00+01:00"
    assert m.from_termin(m.to_termin(appt, "AB")) == appt
    assert m.to_event(m.from_termin(m.to_termin(appt, "AB")), 1)["end"] == m.to_event(appt, 1)["end"]


clock = st.tuples(st.integers(0, 24), st.integers(0, 59)).map(
    lambda hm: "24:00" if hm[0] == 24 else f"{hm[0]:02d}:{hm[1]:02d}")


@hsettings(max_examples=400, deadline=None)
@given(st.integers(0, 1100), st.integers(0, 2), clock, st.one_of(st.none(), clock))
def test_any_clock_times_read_without_loss_and_round_trip(offset, length, von, bis):
    """Every HH:MM from 00:00 to 24:00, either order, DST days included: never an error, never an end before
    the start, and the write-back (Advoware and Google) means the same instants."""
    first = date(2024, 1, 1) + timedelta(days=offset)
    raw = termin(datum=first.isoformat(), datumBis=(first + timedelta(days=length)).isoformat(),
                 uhrzeitVon=von, uhrzeitBis=bis)
    appt = m.from_termin(raw)
    start = datetime.combine(appt.start_date, appt.start_time, tzinfo=m.TZ).astimezone(m.timezone.utc)
    end = datetime.combine(appt.end_date, appt.end_time, tzinfo=m.TZ).astimezone(m.timezone.utc)
    assert end >= start
    again = m.from_termin(m.to_termin(appt, "AB"))
    assert again == appt and m.to_event(again, 1) == m.to_event(appt, 1)
    event = m.to_event(appt, 1)
    assert datetime.fromisoformat(event["end"]["dateTime"]) == end
    assert datetime.fromisoformat(event["start"]["dateTime"]) == start
