"""Kinds of Kommunikation entries (kommKz): detection, EspoCRM mapping and value normalisation.

Pure functions only. The detection order follows SPEC §5.4 (marker kommKz,
EspoCRM type, value shape, default TelGesch); docs/kommunikation-sync.md
explains the decisions beyond it (URL shape, car phones, comparison keys).
"""

from __future__ import annotations

import enum
import re

__all__ = [
    "KommKz",
    "SYNCED_KINDS",
    "EMAIL_KINDS",
    "ESPO_PHONE_TYPES",
    "EMAIL",
    "PHONE",
    "as_kommkz",
    "array_for_kind",
    "espo_type_for_kind",
    "kind_for_espo_type",
    "kind_matches_espo_type",
    "kinds_compatible",
    "detect_kommkz",
    "kind_from_shape",
    "is_german_mobile",
    "is_plausible_email",
    "normalize_phone",
    "normalize_email",
    "comparison_key",
]


class KommKz(enum.IntEnum):
    """Advoware's kind of a Kommunikation entry (SPEC §3.2); member names are Advoware's."""

    TelGesch = 1
    FaxGesch = 2
    Mobil = 3
    MailGesch = 4
    Internet = 5
    TelPrivat = 6
    FaxPrivat = 7
    MailPrivat = 8
    AutoTelefon = 9
    Sonstige = 10
    EPost = 11
    Bea = 12


#: Kinds that appear in EspoCRM. Internet, EPost and Bea stay in Advoware only.
SYNCED_KINDS = frozenset(KommKz) - {KommKz.Internet, KommKz.EPost, KommKz.Bea}
EMAIL_KINDS = frozenset({KommKz.MailGesch, KommKz.MailPrivat})
ESPO_PHONE_TYPES = ("Mobile", "Office", "Home", "Fax", "Other")

#: The two EspoCRM arrays a synced kind can live in.
EMAIL = "email"
PHONE = "phone"

_TYPE_TO_KIND = {
    "Mobile": KommKz.Mobil,
    "Office": KommKz.TelGesch,
    "Home": KommKz.TelPrivat,
    "Fax": KommKz.FaxGesch,
    "Other": KommKz.Sonstige,
}
_KIND_TO_TYPE = {
    KommKz.TelGesch: "Office",
    KommKz.FaxGesch: "Fax",
    KommKz.Mobil: "Mobile",
    KommKz.TelPrivat: "Home",
    KommKz.FaxPrivat: "Fax",
    KommKz.AutoTelefon: "Mobile",  # a car phone is a mobile line
    KommKz.Sonstige: "Other",
}


def as_kommkz(value: object) -> KommKz | None:
    """The KommKz for a raw value, or None for 0 (Advoware's GET bug), junk or out of range."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and 1 <= value <= 12:
        return KommKz(value)
    return None


def array_for_kind(kind: KommKz | int) -> str | None:
    """`EMAIL` or `PHONE` for a synced kind, None for kinds that are not synced."""
    kind = KommKz(kind)
    if kind not in SYNCED_KINDS:
        return None
    return EMAIL if kind in EMAIL_KINDS else PHONE


def espo_type_for_kind(kind: KommKz | int) -> str | None:
    """EspoCRM phone type for a phone kind; None for e-mail kinds and unsynced kinds."""
    return _KIND_TO_TYPE.get(KommKz(kind))


def kind_for_espo_type(espo_type: str | None) -> KommKz | None:
    """Stage 2 of SPEC §5.4 for phones: the kind an EspoCRM phone type stands for."""
    return _TYPE_TO_KIND.get(espo_type) if espo_type else None


def kind_matches_espo_type(kind: KommKz | int, espo_type: str | None) -> bool:
    """True when an EspoCRM phone of `espo_type` is a faithful picture of `kind`.

    FaxPrivat shows as Fax and AutoTelefon as Mobile, so the mapping is not a
    bijection; a missing or unknown type says nothing and contradicts no kind.
    """
    kind = KommKz(kind)
    if espo_type_for_kind(kind) == espo_type:
        return True
    detected = kind_for_espo_type(espo_type)
    return detected is None or detected is kind


def kinds_compatible(a: KommKz | int, b: KommKz | int) -> bool:
    """Two kinds look the same in EspoCRM (same array, and same phone type)."""
    a, b = KommKz(a), KommKz(b)
    if array_for_kind(a) != array_for_kind(b) or array_for_kind(a) is None:
        return False
    return a in EMAIL_KINDS or espo_type_for_kind(a) == espo_type_for_kind(b)


_URL = re.compile(r"^(https?://|www\.)", re.IGNORECASE)
_SAFE_ID = re.compile(r"^[A-Z]{2}\.[A-Za-z_]+\.\S+$")  # beA/EGVP SAFE-ID, e.g. DE.BRAK.1a2b…, DE.Justiz.…
_EPOST = re.compile(r"@epost\.de$", re.IGNORECASE)


def kind_from_shape(value: str) -> KommKz | None:
    """Stage 3 of SPEC §5.4: the kind a value's shape shows, or None if it shows none.

    Beyond the spec, the kinds that are never synced are recognised too, so
    that an entry reported with kommKz 0 is not copied to EspoCRM as a phone
    or an e-mail: a web address (http://, https://, www.) is Internet, a
    SAFE-ID (`DE.BRAK…`) is Bea, an address at epost.de is EPost.
    """
    text = (value or "").strip()
    if _SAFE_ID.match(text):
        return KommKz.Bea
    if _EPOST.search(text):
        return KommKz.EPost
    if "@" in text:
        return KommKz.MailGesch
    if _URL.match(text):
        return KommKz.Internet
    if is_german_mobile(text):
        return KommKz.Mobil
    return None


def detect_kommkz(
    value: str,
    *,
    marker_kommkz: int | None = None,
    espo_type: str | None = None,
) -> KommKz:
    """The kind of an entry per SPEC §5.4, in this order.

    1. the marker's kommKz; 2. the EspoCRM type (`"email"` for the e-mail
    array, else a phone type); 3. the value's shape; 4. TelGesch.
    """
    marker = as_kommkz(marker_kommkz)
    if marker is not None:
        return marker
    if espo_type == EMAIL:
        return KommKz.MailGesch
    by_type = kind_for_espo_type(espo_type)
    if by_type is not None:
        return by_type
    by_shape = kind_from_shape(value)
    if by_shape is not None:
        return by_shape
    return KommKz.TelGesch


def normalize_phone(value: str) -> str | None:
    """A phone number reduced to digits in German national form, or None if it has no digits.

    `+49 (0)171 123`, `0049 171-123`, `+49 171/123` and `0171 123` all give
    `0171123`; other countries keep their `00` prefix (`+43 1 23` → `0043123`).
    """
    text = (value or "").strip().replace("(0)", "")
    digits = "".join(ch for ch in text if ch.isdigit() and ch.isascii())
    if not digits:
        return None
    if text.startswith("+"):
        digits = "00" + digits
    if digits.startswith("0049"):
        rest = digits[4:]
        if rest.startswith("0"):  # "+49 0171…": the trunk 0 written without parentheses
            rest = rest[1:]
        return "0" + rest
    return digits


def is_german_mobile(value: str) -> bool:
    """A German mobile number: 015x, 016x or 017x in national form (+49/0049 allowed)."""
    digits = normalize_phone(value)
    return bool(digits) and digits[:3] in ("015", "016", "017") and len(digits) >= 6


_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_plausible_email(value: str) -> bool:
    """An address EspoCRM accepts (`local@domain.tld`, no spaces); others cannot be synced to it."""
    return bool(_EMAIL_SHAPE.match((value or "").strip()))


def normalize_email(value: str) -> str:
    """E-mail addresses compare case-insensitively (EspoCRM keeps `lower` for this)."""
    return (value or "").strip().lower()


def comparison_key(array: str, value: str) -> tuple[str, str]:
    """The identity of a value inside one EspoCRM array: two values with equal keys are one entry."""
    if array == EMAIL:
        return (EMAIL, normalize_email(value))
    digits = normalize_phone(value)
    return (PHONE, digits if digits is not None else " ".join((value or "").lower().split()))
