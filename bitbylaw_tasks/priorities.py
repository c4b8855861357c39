"""Which work is background at the shared rate gates and which is interactive (issue 15): one place, pure.

`integrations.rategate` admits a BACKGROUND call only while the window holds fewer than
`per_minute - reserve` calls (ADVOWARE_INTERACTIVE_RESERVE); an INTERACTIVE one up to the limit. What
a person waits for is interactive: a sync a webhook triggered (a user's edit in EspoCRM), an operator's
command (`manual`), the drain of a user's failed sync (`retry`), the Kommunikation and address syncs
handed off from those (source `handoff`). What nobody waits for is background: the freshness checker's
checks and the sweeps (source `sweep`), the Kommunikation and address syncs a check hands off (they carry
`sweep` on: `handoff_source`), and the calendar's periodic syncs (beat). The task modules wrap their work in
`rategate.calls_as(...)` with the answer; `bench/freshness.py` asks the same functions.
"""
from __future__ import annotations

from integrations.rategate import BACKGROUND, INTERACTIVE

BACKGROUND_SOURCES = frozenset({"sweep"})  # beteiligte.sync(…, "check", "sweep"), adressen.sync(…, "sweep")
CALENDAR = BACKGROUND                      # calendar.sync_all and calendar.sync_employee: beat's work


def of_source(source: str | None) -> str:
    """The priority of a sync whose message says `source` (webhook|sweep|manual|retry|handoff)."""
    return BACKGROUND if source in BACKGROUND_SOURCES else INTERACTIVE


def handoff_source(parent_source: str | None) -> str:
    """The source of a Kommunikation or Adressen sync a Beteiligte sync of `parent_source` hands off: a
    background sync hands off background work (a check's finding waits like the check did), anything else
    hands off `handoff` (interactive: a person may be waiting for the party's numbers)."""
    return parent_source if parent_source in BACKGROUND_SOURCES else "handoff"
