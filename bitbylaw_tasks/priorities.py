"""Which work is background at the shared rate gates and which is interactive (issue 15): one place, pure.

`integrations.rategate` admits a BACKGROUND call only while the window holds fewer than
`per_minute - reserve` calls (ADVOWARE_INTERACTIVE_RESERVE); an INTERACTIVE one up to the limit. What
a person waits for is interactive: a sync a webhook triggered (a user's edit in EspoCRM), an operator's
command (`manual`), the drain of a user's failed sync (`retry`), the Kommunikation and address syncs
handed off from those. What nobody waits for is background: the freshness checker's checks and the
sweeps (source `sweep`), and the calendar's periodic syncs (beat). The task modules wrap their work in
`rategate.calls_as(...)` with the answer; `bench/freshness.py` asks the same functions.
"""
from __future__ import annotations

from integrations.rategate import BACKGROUND, INTERACTIVE

BACKGROUND_SOURCES = frozenset({"sweep"})  # beteiligte.sync(…, "check", "sweep"), adressen.sync(…, "sweep")
CALENDAR = BACKGROUND                      # calendar.sync_all and calendar.sync_employee: beat's work
KOMMUNIKATION = INTERACTIVE                # its message carries no source; mostly a webhook's hand-off


def of_source(source: str | None) -> str:
    """The priority of a sync whose message says `source` (webhook|sweep|manual|retry|handoff)."""
    return BACKGROUND if source in BACKGROUND_SOURCES else INTERACTIVE
