"""The sync's memory of one address, kept on the CAdresse (`advowareSnapshot`, JSON; docs/adressen-sync.md).

`Tracking` holds where the address came from (`origin`: espocrm = we POSTed it
with the marker; advoware = a person created it there and we imported it;
matched = found equal on both sides at the first sync), the `agreed` content
(what both sides held after the last sync: the base of the 3-way compare), the
Advoware content last `seen` (how an address without a marker is recognised
again) and its last position. Pure: parse and render only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from bitbylaw_tasks.adressen.mapping import FIELDS, Content

VERSION = 1
ORIGINS = ("espocrm", "advoware", "matched")


@dataclass(frozen=True)
class Tracking:
    origin: str
    agreed: Content
    seen: Content
    index: int | None


def _content(data) -> Content:
    data = data if isinstance(data, dict) else {}
    return {name: data.get(name) for name in FIELDS}


def parse(text) -> Tracking | None:
    """The tracking stored in `advowareSnapshot`, or None (never synced, or unreadable: treated as new)."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("v") != VERSION or data.get("origin") not in ORIGINS:
        return None
    index = data.get("index")
    return Tracking(data["origin"], _content(data.get("agreed")), _content(data.get("seen")),
                    index if isinstance(index, int) else None)


def render(tracking: Tracking) -> str:
    """Stable JSON (sorted keys): the same tracking always renders the same text, so "unchanged" is cheap."""
    return json.dumps({"v": VERSION, "origin": tracking.origin, "agreed": tracking.agreed, "seen": tracking.seen,
                       "index": tracking.index}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
