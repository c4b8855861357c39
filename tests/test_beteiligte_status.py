"""Unit tests of bitbylaw_tasks.beteiligte.status: back-off, permanent failure, auto-reset, sweep rules."""
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from bitbylaw_tasks.beteiligte.mapping import format_espo_datetime
from bitbylaw_tasks.beteiligte.status import (
    AUTO_RESET_AFTER, BACKOFF, FAILED, PERMANENTLY_FAILED, RULE_AUTO_RESET, RULE_CLEAN_STALE, RULE_FAILED_DUE,
    RULE_PENDING, RULE_SYNCING_STALE, after_failure, after_success, auto_reset, backoff, deleted_in_advoware,
    is_due, retry_not_before, truncate_error,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def at(delta: timedelta) -> str:
    return format_espo_datetime(NOW + delta)


def test_backoff_table_is_exact():
    assert BACKOFF == (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
                       timedelta(hours=4))
    assert [backoff(n) for n in range(1, 8)] == [
        timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
        timedelta(hours=4), timedelta(hours=4), timedelta(hours=4)]
    with pytest.raises(ValueError):
        backoff(0)


def test_five_failures_in_a_row():
    record, seen = {"syncStatus": "dirty"}, []
    for _ in range(5):
        outcome = after_failure(record, NOW, "Advoware 500")
        record = {**record, **outcome.update}
        seen.append((outcome.retry_count, outcome.update["syncStatus"], outcome.update["syncNextRetry"],
                     outcome.permanent))
    assert seen == [
        (1, FAILED, "2024-05-01 12:01:00", False),
        (2, FAILED, "2024-05-01 12:05:00", False),
        (3, FAILED, "2024-05-01 12:15:00", False),
        (4, FAILED, "2024-05-01 13:00:00", False),
        (5, PERMANENTLY_FAILED, "2024-05-02 12:00:00", True),
    ]
    assert record["syncAutoResetAt"] == "2024-05-02 12:00:00"
    assert record["syncErrorMessage"] == "Advoware 500"
    assert outcome.next_attempt == NOW + AUTO_RESET_AFTER


def test_failure_outcome_for_a_failed_record_only_sets_auto_reset_when_permanent():
    outcome = after_failure({"syncRetryCount": 2}, NOW, "x")
    assert outcome.update == {"syncRetryCount": 3, "syncErrorMessage": "x", "syncStatus": FAILED,
                              "syncNextRetry": "2024-05-01 12:15:00"}
    assert outcome.next_attempt == NOW + timedelta(minutes=15)


def test_failing_again_after_permanent_stays_permanent():
    outcome = after_failure({"syncStatus": PERMANENTLY_FAILED, "syncRetryCount": 5}, NOW, "again")
    assert outcome.permanent and outcome.retry_count == 6 and outcome.update["syncStatus"] == PERMANENTLY_FAILED


def test_the_four_hour_step_is_used_when_more_failures_are_allowed():
    outcome = after_failure({"syncRetryCount": 4}, NOW, "x", max_failures=6)
    assert not outcome.permanent and outcome.update["syncNextRetry"] == "2024-05-01 16:00:00"


@pytest.mark.parametrize("garbage", [None, "", "drei", -4, 1.5])
def test_unreadable_retry_count_starts_from_zero(garbage):
    assert after_failure({"syncRetryCount": garbage}, NOW, "x").retry_count == (2 if garbage == 1.5 else 1)


def test_now_may_be_naive_utc_or_any_zone():
    berlin = timezone(timedelta(hours=2))
    for now in (NOW, NOW.replace(tzinfo=None), NOW.astimezone(berlin)):
        assert after_failure({}, now, "x").update["syncNextRetry"] == "2024-05-01 12:01:00"
        assert after_success(now)["advowareLastSync"] == "2024-05-01 12:00:00"


def test_success_resets_counters_and_clears_the_error_with_empty_string():
    assert after_success(NOW) == {"syncStatus": "clean", "advowareLastSync": "2024-05-01 12:00:00",
                                  "syncRetryCount": 0, "syncErrorMessage": ""}


def test_auto_reset_and_deleted_in_advoware():
    assert auto_reset(NOW) == {"syncStatus": FAILED, "syncRetryCount": 0, "syncNextRetry": "2024-05-01 12:00:00"}
    update = deleted_in_advoware(NOW, "Beteiligter 42 not found in Advoware (404)")
    assert update == {"syncStatus": "deleted_in_advoware", "advowareDeletedAt": "2024-05-01 12:00:00",
                      "syncErrorMessage": "Beteiligter 42 not found in Advoware (404)"}


def test_error_message_truncation():
    assert truncate_error("a" * 2000) == "a" * 2000
    long = truncate_error("a" * 2001)
    assert len(long) == 2000 and long.endswith("…")
    assert truncate_error(None) == "" and truncate_error(ValueError("boom")) == "boom"
    assert len(after_failure({}, NOW, "x" * 5000).update["syncErrorMessage"]) == 2000


@given(st.text(max_size=3000), st.integers(0, 10))
def test_failure_update_is_always_valid_for_espocrm(message, count):
    outcome = after_failure({"syncRetryCount": count}, NOW, message)
    assert len(outcome.update["syncErrorMessage"]) <= 2000
    assert None not in outcome.update.values()
    assert outcome.next_attempt - NOW in (*BACKOFF, AUTO_RESET_AFTER)
    assert outcome.permanent == (count + 1 >= 5)


def test_retry_not_before():
    assert retry_not_before({"syncStatus": FAILED, "syncNextRetry": at(timedelta(minutes=3))}, NOW) == \
        NOW + timedelta(minutes=3)
    assert retry_not_before({"syncStatus": FAILED, "syncNextRetry": at(timedelta(0))}, NOW) is None
    assert retry_not_before({"syncStatus": FAILED, "syncNextRetry": None}, NOW) is None
    assert retry_not_before({"syncStatus": "dirty", "syncNextRetry": at(timedelta(hours=1))}, NOW) is None


# ---------------------------------------------------------------- sweep rules (SPEC §4.1)
@pytest.mark.parametrize("record, lock_alive, rule", [
    ({"syncStatus": "pending_sync"}, False, RULE_PENDING),
    ({"syncStatus": "dirty"}, True, RULE_PENDING),
    ({"syncStatus": FAILED, "syncNextRetry": at(timedelta(seconds=-1))}, False, RULE_FAILED_DUE),
    ({"syncStatus": FAILED, "syncNextRetry": at(timedelta(0))}, False, RULE_FAILED_DUE),
    ({"syncStatus": FAILED, "syncNextRetry": at(timedelta(seconds=1))}, False, None),
    ({"syncStatus": FAILED}, False, RULE_FAILED_DUE),
    ({"syncStatus": PERMANENTLY_FAILED, "syncAutoResetAt": at(timedelta(seconds=-1))}, False, RULE_AUTO_RESET),
    ({"syncStatus": PERMANENTLY_FAILED, "syncAutoResetAt": at(timedelta(hours=3))}, False, None),
    ({"syncStatus": PERMANENTLY_FAILED}, False, RULE_AUTO_RESET),
    ({"syncStatus": "clean", "betnr": 5, "advowareLastSync": at(-timedelta(hours=24, seconds=1))}, False,
     RULE_CLEAN_STALE),
    ({"syncStatus": "clean", "betnr": 5, "advowareLastSync": at(-timedelta(hours=24))}, False, None),
    ({"syncStatus": "clean", "betnr": 5}, False, RULE_CLEAN_STALE),
    ({"syncStatus": "clean", "betnr": None}, False, None),
    ({"syncStatus": "syncing", "modifiedAt": at(-timedelta(minutes=16))}, False, RULE_SYNCING_STALE),
    ({"syncStatus": "syncing", "modifiedAt": at(-timedelta(minutes=16))}, True, None),
    ({"syncStatus": "syncing", "modifiedAt": at(-timedelta(minutes=14))}, False, None),
    ({"syncStatus": "syncing"}, False, RULE_SYNCING_STALE),
    ({"syncStatus": "deleted_in_advoware"}, False, None),
    ({"syncStatus": "conflict"}, False, None),
    ({}, False, None),
])
def test_sweep_rules(record, lock_alive, rule):
    assert is_due(record, NOW, lock_alive=lock_alive) == rule


def test_sweep_rule_thresholds_are_parameters():
    record = {"syncStatus": "clean", "betnr": 5, "advowareLastSync": at(-timedelta(hours=2))}
    assert is_due(record, NOW, check_after=timedelta(hours=1)) == RULE_CLEAN_STALE
    record = {"syncStatus": "syncing", "modifiedAt": at(-timedelta(minutes=6))}
    assert is_due(record, NOW, lock_ttl=timedelta(minutes=5)) == RULE_SYNCING_STALE


def test_a_whole_failure_cycle_with_a_controlled_clock():
    record, now = {"syncStatus": "dirty", "betnr": 5}, NOW
    for _ in range(5):
        assert is_due(record, now) in (RULE_PENDING, RULE_FAILED_DUE)
        outcome = after_failure(record, now, "down")
        record = {**record, **outcome.update}
        assert is_due(record, now) is None  # not before its time
        now = outcome.next_attempt
    assert record["syncStatus"] == PERMANENTLY_FAILED and now == NOW + timedelta(minutes=81) + AUTO_RESET_AFTER
    assert is_due(record, now - timedelta(seconds=1)) is None
    assert is_due(record, now) == RULE_AUTO_RESET
    record = {**record, **auto_reset(now)}
    assert is_due(record, now) == RULE_FAILED_DUE and record["syncRetryCount"] == 0
    record = {**record, **after_success(now)}
    assert is_due(record, now) is None and is_due(record, now + timedelta(hours=25)) == RULE_CLEAN_STALE
