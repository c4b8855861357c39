"""Markers in Advoware's `bemerkung`: build/parse round trips, user text kept, odd input survived."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitbylaw_tasks.kommunikation.markers import (
    Bemerkung,
    SlotMarker,
    SyncMarker,
    build_slot_bemerkung,
    build_sync_bemerkung,
    decode_value,
    encode_value,
    parse_bemerkung,
)

kinds = st.integers(min_value=1, max_value=12)
marker_like = st.sampled_from(["[ESPOCRM:", "[ESPOCRM-SLOT:3]", "[ESPOCRM:MDE3MQ==:3]", "]", "[", ":", " ", "\n"])
texts = st.one_of(st.text(), st.lists(st.one_of(st.text(max_size=5), marker_like), max_size=8).map("".join))


def test_sync_marker_format_is_the_spec_format():
    assert build_sync_bemerkung("+49 171 1234567", 3, "Sekretariat") == "[ESPOCRM:KzQ5IDE3MSAxMjM0NTY3:3] Sekretariat"


def test_no_trailing_space_without_user_text():
    assert build_sync_bemerkung("a@b.de", 4) == "[ESPOCRM:YUBiLmRl:4]"
    assert build_slot_bemerkung(2) == "[ESPOCRM-SLOT:2]"


def test_slot_marker_keeps_user_text():
    assert build_slot_bemerkung(6, "privat") == "[ESPOCRM-SLOT:6] privat"
    assert parse_bemerkung("[ESPOCRM-SLOT:6] privat") == Bemerkung(SlotMarker(6), "privat")


def test_parse_sync_marker():
    assert parse_bemerkung("[ESPOCRM:YUBiLmRl:4] Zentrale") == Bemerkung(SyncMarker("a@b.de", 4), "Zentrale")


@pytest.mark.parametrize("bemerkung", [None, "", "nur vormittags", "[ESPOCRM:", "[ESPOCRM:!!!:3] x",
                                       "[ESPOCRM:YUBiLmRl:0] x", "[ESPOCRM:YUBiLmRl:13] x", "[ESPOCRM:YUBiLmR:4] x",
                                       "[ESPOCRM:YUBiLmRl:4 x", "[ESPOCRM-SLOT:99]", "[ESPOCRM-SLOT:] x",
                                       "x [ESPOCRM:YUBiLmRl:4]", "[espocrm:YUBiLmRl:4] x", "[ESPOCRM:/w==:4] bad utf8",
                                       "[ESPOCRM-SLOT:٣] arabic digit", 17])
def test_anything_that_is_not_a_marker_is_user_text(bemerkung):
    parsed = parse_bemerkung(bemerkung)
    assert parsed.marker is None
    assert parsed.user_text == (bemerkung if isinstance(bemerkung, str) else "")


def test_a_marker_later_in_the_text_is_not_a_marker():
    parsed = parse_bemerkung("Notiz [ESPOCRM-SLOT:3]")
    assert parsed == Bemerkung(None, "Notiz [ESPOCRM-SLOT:3]")


def test_leading_whitespace_before_a_marker_is_tolerated():
    assert parse_bemerkung("  [ESPOCRM-SLOT:1] x") == Bemerkung(SlotMarker(1), "x")


def test_rebuilding_keeps_a_stacked_marker_as_text():
    parsed = parse_bemerkung("[ESPOCRM:YUBiLmRl:4] [ESPOCRM:Yg==:4] alt")
    assert parsed.user_text == "[ESPOCRM:Yg==:4] alt"
    assert build_sync_bemerkung("c@d.de", 4, parsed.user_text) == "[ESPOCRM:Y0BkLmRl:4] [ESPOCRM:Yg==:4] alt"


def test_out_of_range_kind_is_refused_when_building():
    with pytest.raises(ValueError):
        build_sync_bemerkung("x", 0)
    with pytest.raises(ValueError):
        build_slot_bemerkung(13)


def test_decode_rejects_garbage():
    assert decode_value("!!") is None
    assert decode_value("/w==") is None  # valid base64, not UTF-8
    assert decode_value(encode_value("Müller")) == "Müller"


@settings(max_examples=300, deadline=None)
@given(value=st.text(), kind=kinds, text=texts)
def test_round_trip_sync(value, kind, text):
    assert parse_bemerkung(build_sync_bemerkung(value, kind, text)) == Bemerkung(SyncMarker(value, kind), text)


@settings(max_examples=200, deadline=None)
@given(kind=kinds, text=texts)
def test_round_trip_slot(kind, text):
    assert parse_bemerkung(build_slot_bemerkung(kind, text)) == Bemerkung(SlotMarker(kind), text)


@settings(max_examples=300, deadline=None)
@given(bemerkung=texts, value=st.text(min_size=1), kind=kinds)
def test_rewriting_any_bemerkung_never_loses_user_text(bemerkung, value, kind):
    parsed = parse_bemerkung(bemerkung)
    if parsed.marker is None:
        assert parsed.user_text == bemerkung
    else:
        assert bemerkung.rstrip().endswith(parsed.user_text.rstrip()) or not parsed.user_text.strip()
    rewritten = build_sync_bemerkung(value, kind, parsed.user_text)
    again = parse_bemerkung(rewritten)
    assert again == Bemerkung(SyncMarker(value, kind), parsed.user_text)
    # rewriting a second time changes nothing (no marker stacking)
    assert build_sync_bemerkung(value, kind, again.user_text) == rewritten
