"""Phone numbers as the inbound channels compare them: E.164, parsed by `phonenumbers` with a default region."""
from __future__ import annotations

import functools

import phonenumbers


@functools.lru_cache(maxsize=8192)  # pure, and the same callers ring again: the lookup's hot path
def to_e164(raw: str, region: str = "DE") -> str | None:
    """`raw` in E.164 (`+4930123456`), or None when it is not a possible (dialable from anywhere) number.

    A national number (`030 123456`) is read in `region`; `00` and `+` prefixes
    are international. 3CX may send a number without its `+` (template `Prefix`
    settings): a leading `00` is read as international too.
    """
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if not text or len(text) > 40:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    # IS_POSSIBLE only: a number that is "possible local only" (a bare extension such as 12) is no caller id
    if phonenumbers.is_possible_number_with_reason(parsed) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
