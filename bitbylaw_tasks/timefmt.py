"""Timestamps as operators read them (health, CLI output): ISO-8601 in UTC to the second, never raw epochs."""
from __future__ import annotations

from datetime import datetime, timezone


def iso_utc(epoch: float | None) -> str | None:
    """"2026-12-01T01:50:11Z" for an epoch in seconds, or None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
