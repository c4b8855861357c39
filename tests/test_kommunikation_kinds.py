"""kommKz detection (SPEC §5.4), the EspoCRM type mapping, and value normalisation for comparing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitbylaw_tasks.kommunikation.kinds import (
    EMAIL,
    PHONE,
    SYNCED_KINDS,
    KommKz,
    array_for_kind,
    as_kommkz,
    comparison_key,
    detect_kommkz,
    espo_type_for_kind,
    is_german_mobile,
    is_plausible_email,
    kind_for_espo_type,
    kind_matches_espo_type,
    kinds_compatible,
    normalize_email,
    normalize_phone,
)


def test_enum_values_are_advowares():
    assert [k.value for k in KommKz] == list(range(1, 13))
    assert KommKz.Mobil == 3 and KommKz.MailPrivat == 8 and KommKz.Bea == 12


def test_internet_epost_bea_are_not_synced():
    assert SYNCED_KINDS == set(KommKz) - {KommKz.Internet, KommKz.EPost, KommKz.Bea}
    for kind in (5, 11, 12):
        assert array_for_kind(kind) is None and espo_type_for_kind(kind) is None


@pytest.mark.parametrize("raw, expected", [(3, KommKz.Mobil), ("3", KommKz.Mobil), (0, None), (13, None),
                                           (-1, None), (None, None), (True, None), ("x", None), (3.0, None)])
def test_as_kommkz(raw, expected):
    assert as_kommkz(raw) == expected


# --- stage 1: the marker wins -------------------------------------------------------------------
def test_k1_marker_kind_beats_everything():
    assert detect_kommkz("030 123", marker_kommkz=3, espo_type="Office") == KommKz.Mobil
    assert detect_kommkz("a@b.de", marker_kommkz=8) == KommKz.MailPrivat


def test_an_invalid_marker_kind_falls_through():
    assert detect_kommkz("0171 1234567", marker_kommkz=0) == KommKz.Mobil


# --- stage 2: the EspoCRM type ------------------------------------------------------------------
@pytest.mark.parametrize("espo_type, kind", [("Fax", 2), ("Home", 6), ("Office", 1), ("Mobile", 3), ("Other", 10)])
def test_k2_espo_type(espo_type, kind):
    assert detect_kommkz("030 123", espo_type=espo_type) == kind
    assert kind_for_espo_type(espo_type) == kind


def test_espo_type_beats_value_shape():
    assert detect_kommkz("0171 1234567", espo_type="Office") == KommKz.TelGesch
    assert detect_kommkz("x@y.de", espo_type=EMAIL) == KommKz.MailGesch


# --- stage 3 and 4: shape, default ----------------------------------------------------------------
def test_k3_at_sign_is_email():
    assert detect_kommkz("kanzlei@example.de") == KommKz.MailGesch


@pytest.mark.parametrize("value", ["+49 171 1234567", "0151 1234567", "+49 (0)160 1234567", "0049 172-1234567",
                                   "0176/12345678", "+49 0157 1234567", "(0170) 123 45 67", "+491521234567"])
def test_k4_german_mobile_shapes(value):
    assert is_german_mobile(value)
    assert detect_kommkz(value) == KommKz.Mobil


@pytest.mark.parametrize("value", ["030 1234567", "+49 30 1234567", "0221-123456", "+43 171 1234567", "01805 123",
                                   "0180 5123", "12345", "Zentrale", "0171"])
def test_k5_other_numbers_are_telgesch(value):
    assert detect_kommkz(value) == KommKz.TelGesch


@pytest.mark.parametrize("value", ["www.kanzlei.de", "https://kanzlei.de", "HTTP://x.de"])
def test_web_addresses_are_internet_not_phones(value):
    assert detect_kommkz(value) == KommKz.Internet


# --- mapping ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, espo_type", [(1, "Office"), (2, "Fax"), (3, "Mobile"), (6, "Home"), (7, "Fax"),
                                             (9, "Mobile"), (10, "Other"), (4, None), (8, None)])
def test_kind_to_espo_type(kind, espo_type):
    assert espo_type_for_kind(kind) == espo_type


def test_arrays():
    assert array_for_kind(4) == array_for_kind(8) == EMAIL
    assert {array_for_kind(k) for k in (1, 2, 3, 6, 7, 9, 10)} == {PHONE}


def test_kind_matches_espo_type_is_not_fooled_by_the_lossy_mapping():
    assert kind_matches_espo_type(KommKz.FaxPrivat, "Fax")
    assert kind_matches_espo_type(KommKz.AutoTelefon, "Mobile")
    assert not kind_matches_espo_type(KommKz.TelGesch, "Mobile")
    assert kind_matches_espo_type(KommKz.TelGesch, None)  # no type: no contradiction
    assert kind_matches_espo_type(KommKz.TelGesch, "Pager")  # unknown type: no contradiction


def test_kinds_compatible():
    assert kinds_compatible(2, 7) and kinds_compatible(4, 8) and kinds_compatible(3, 9)
    assert not kinds_compatible(1, 3) and not kinds_compatible(1, 4) and not kinds_compatible(5, 5)


# --- normalisation for comparing --------------------------------------------------------------------
@pytest.mark.parametrize("a, b", [("+49 171 1234567", "0171 1234567"), ("0049 (0)171/1234567", "0171-1234567"),
                                  ("+49 (0)30 123", "030 123"), ("+43 1 234", "0043 1 234")])
def test_equal_numbers_compare_equal(a, b):
    assert normalize_phone(a) == normalize_phone(b)
    assert comparison_key(PHONE, a) == comparison_key(PHONE, b)


def test_different_numbers_differ():
    assert normalize_phone("+43 171 123") != normalize_phone("0171 123")
    assert normalize_phone("030 123") != normalize_phone("030 1234")


def test_phone_without_digits():
    assert normalize_phone("n/a") is None
    assert comparison_key(PHONE, " Siehe  Akte ") == comparison_key(PHONE, "siehe akte")


def test_email_compares_case_insensitively():
    assert normalize_email(" Max@Example.DE ") == "max@example.de"
    assert comparison_key(EMAIL, "A@b.de") == comparison_key(EMAIL, "a@B.de")
    assert comparison_key(EMAIL, "a@b.de") != comparison_key(PHONE, "a@b.de")


@pytest.mark.parametrize("value, ok", [("a@b.de", True), ("a@b", False), ("a b@c.de", False), ("", False),
                                       ("@b.de", False)])
def test_plausible_email(value, ok):
    assert is_plausible_email(value) is ok


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_detection_and_keys_never_raise(value):
    assert detect_kommkz(value) in KommKz
    comparison_key(PHONE, value)
    comparison_key(EMAIL, value)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=" -/()0123456789", max_size=20), st.sampled_from(["+49 ", "0049 ", "0"]))
def test_national_and_international_forms_agree(rest, prefix):
    digits = "".join(ch for ch in rest if ch.isdigit())
    if not digits or digits.startswith("0") or "(0)" in rest:
        return
    assert normalize_phone(prefix + rest) == "0" + digits
