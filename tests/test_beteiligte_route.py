"""What a Beteiligte sync does first (`status.route`) and when a clean check refreshes its stamp — pure."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bitbylaw_tasks.beteiligte.mapping import format_espo_datetime
from bitbylaw_tasks.beteiligte.status import Route, last_sync_stale, route

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
LATER = format_espo_datetime(NOW + timedelta(minutes=5))
EARLIER = format_espo_datetime(NOW - timedelta(minutes=5))


@pytest.mark.parametrize("record,source,expected", [
    ({"syncStatus": "failed", "syncNextRetry": LATER, "betnr": 7}, "webhook",
     Route("backoff", not_before=NOW + timedelta(minutes=5))),
    ({"syncStatus": "failed", "syncNextRetry": LATER, "betnr": 7}, "retry", Route("update")),
    ({"syncStatus": "failed", "syncNextRetry": LATER, "betnr": 7}, "manual", Route("update")),
    ({"syncStatus": "failed", "syncNextRetry": EARLIER, "betnr": 7}, "sweep", Route("update")),
    ({"syncStatus": "deleted_in_advoware", "betnr": 7}, "sweep", Route("deleted_in_advoware")),
    ({"syncStatus": "deleted_in_advoware", "betnr": 7}, "manual", Route("create", recreate=True)),
    ({"syncStatus": "pending_sync", "betnr": None}, "webhook", Route("create")),
    ({"syncStatus": "pending_sync", "betnr": ""}, "sweep", Route("create")),
    ({"syncStatus": "dirty", "betnr": 7}, "webhook", Route("update")),
])
def test_route(record, source, expected):
    assert route(record, source, NOW) == expected


def test_a_clean_check_refreshes_its_stamp_once_a_day():
    assert last_sync_stale({}, NOW)
    assert last_sync_stale({"advowareLastSync": format_espo_datetime(NOW - timedelta(hours=25))}, NOW)
    assert not last_sync_stale({"advowareLastSync": format_espo_datetime(NOW - timedelta(hours=23))}, NOW)
