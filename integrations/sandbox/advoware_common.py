"""Small pieces the Advoware simulator's modules share: the API error and Advoware's date format."""
from __future__ import annotations

import re
from datetime import date, datetime

_DATE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(?:Z|[+-]\d{2}:?\d{2})?)?$")


class SimError(Exception):
    """A request the simulated API refuses: answered with `status` and `{"Message": message}`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def advoware_date(value, field: str = "date") -> str | None:
    """`YYYY-MM-DD` / `YYYY-MM-DDTHH:MM:SS` / a date -> Advoware's `YYYY-MM-DDT00:00:00`; empty -> None."""
    if value in (None, ""):
        return None
    if isinstance(value, (date, datetime)):
        value = value.isoformat()
    match = _DATE_RE.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise SimError(400, f"{field}: not a date")
    try:
        day = date.fromisoformat(match.group(1))
    except ValueError:
        raise SimError(400, f"{field}: not a date") from None
    return f"{day.isoformat()}T00:00:00"
