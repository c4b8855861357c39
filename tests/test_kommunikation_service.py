"""The executor's one pure helper: Advoware's entries after this run's writes, from the PUT/POST answers.

The hash stored after a sync is computed from them instead of a re-read
(docs/PERFORMANCE.md §6); it must equal the hash a fresh GET would give.
"""

from __future__ import annotations

from bitbylaw_tasks.kommunikation.service import entries_after_writes
from bitbylaw_tasks.kommunikation.status import kommunikation_hash

BEFORE = [
    {"id": 1, "rowId": "r1", "kommKz": 3, "tlf": "0171 1", "bemerkung": "", "online": True},
    {"id": 2, "rowId": "r2", "kommKz": 0, "tlf": "030 2", "bemerkung": "", "online": False},
]


def test_an_update_answer_replaces_values_and_rowid_but_keeps_the_reported_kind():
    answer = {"id": 2, "rowId": "r9", "kommKz": 1, "tlf": "030 3", "bemerkung": "x", "online": True}
    after = entries_after_writes(BEFORE, [answer])
    assert after[1] == {"id": 2, "rowId": "r9", "kommKz": 0, "tlf": "030 3", "bemerkung": "x", "online": True}
    assert after[0] == BEFORE[0] and BEFORE[1]["rowId"] == "r2"  # the input is not changed


def test_a_create_answer_is_appended_and_changes_the_hash():
    answer = {"id": 7, "rowId": "r7", "kommKz": 6, "tlf": "089 7", "bemerkung": "", "online": False}
    after = entries_after_writes(BEFORE, [answer])
    assert [e["id"] for e in after] == [1, 2, 7]
    assert kommunikation_hash(after) == kommunikation_hash(BEFORE + [answer]) != kommunikation_hash(BEFORE)


def test_an_answer_without_id_or_rowid_asks_for_a_re_read():
    assert entries_after_writes(BEFORE, [{"id": 1, "tlf": "x"}]) is None
    assert entries_after_writes(BEFORE, [{"rowId": "r5"}]) is None
    assert entries_after_writes(BEFORE, [None]) is None


def test_no_answers_leave_the_entries_as_read():
    assert entries_after_writes(BEFORE, []) == BEFORE
