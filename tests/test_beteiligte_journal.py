"""The create journal's state machine (`beteiligte/journal.py`), cell by cell: every state x every event.

Pure: no Redis, no simulator. The end-to-end behaviour of the executor (`service._create`) is covered
by `test_beteiligte_faults.py` and `test_beteiligte_windows.py`.
"""
import pytest

from bitbylaw_tasks.beteiligte.journal import (CLEARED, CREATED, POSTING, START_EVENT, Effect, Event, Intent,
                                               InvalidTransition, JournalEntry, State, intent_of, post_failed,
                                               state_of, step)

S, E, X = State, Event, Effect
INVALID = None

# (state, event) -> (next state, effect), or INVALID. Written out in full, one row per state, so a change of
# any cell is a visible change of this table.
TABLE = {
    S.ABSENT: {
        E.START_NO_INTENT: (S.POSTING, X.ANNOUNCE_AND_POST),
        E.START_OUR_INTENT: (S.POSTING, X.POST),
        E.START_FOREIGN_INTENT: (S.ABSENT, X.ASK_JOURNAL_LOST),
        E.ANSWERED: INVALID, E.NOT_SENT: INVALID, E.MAYBE_SENT: INVALID, E.WRITTEN_BACK: INVALID,
        E.RESOLVED_NONE: (S.CLEARED, X.RECORD_CLEARED),
        E.RESOLVED_BETNR: (S.ASSIGNED, X.RECORD_ASSIGNED),
    },
    S.POSTING: {
        E.START_NO_INTENT: (S.POSTING, X.ASK_UNCERTAIN),
        E.START_OUR_INTENT: (S.POSTING, X.ASK_UNCERTAIN),
        E.START_FOREIGN_INTENT: (S.POSTING, X.ASK_UNCERTAIN),
        E.ANSWERED: (S.CREATED, X.RECORD_CREATED),
        E.NOT_SENT: (S.ABSENT, X.WITHDRAW),
        E.MAYBE_SENT: (S.POSTING, X.KEEP),
        E.WRITTEN_BACK: INVALID,
        E.RESOLVED_NONE: (S.CLEARED, X.RECORD_CLEARED),
        E.RESOLVED_BETNR: (S.ASSIGNED, X.RECORD_ASSIGNED),
    },
    S.CREATED: {
        E.START_NO_INTENT: (S.CREATED, X.ADOPT),
        E.START_OUR_INTENT: (S.CREATED, X.ADOPT),
        E.START_FOREIGN_INTENT: (S.CREATED, X.ADOPT),
        E.ANSWERED: INVALID, E.NOT_SENT: INVALID, E.MAYBE_SENT: INVALID,
        E.WRITTEN_BACK: (S.ABSENT, X.FORGET),
        E.RESOLVED_NONE: (S.CLEARED, X.RECORD_CLEARED),
        E.RESOLVED_BETNR: (S.ASSIGNED, X.RECORD_ASSIGNED),
    },
    S.ASSIGNED: {
        E.START_NO_INTENT: (S.ASSIGNED, X.ADOPT_ASSIGNED),
        E.START_OUR_INTENT: (S.ASSIGNED, X.ADOPT_ASSIGNED),
        E.START_FOREIGN_INTENT: (S.ASSIGNED, X.ADOPT_ASSIGNED),
        E.ANSWERED: INVALID, E.NOT_SENT: INVALID, E.MAYBE_SENT: INVALID,
        E.WRITTEN_BACK: (S.ABSENT, X.FORGET),
        E.RESOLVED_NONE: (S.CLEARED, X.RECORD_CLEARED),
        E.RESOLVED_BETNR: (S.ASSIGNED, X.RECORD_ASSIGNED),
    },
    S.CLEARED: {
        E.START_NO_INTENT: (S.POSTING, X.ANNOUNCE_AND_POST),
        E.START_OUR_INTENT: (S.POSTING, X.ANNOUNCE_AND_POST),
        E.START_FOREIGN_INTENT: (S.POSTING, X.ANNOUNCE_AND_POST),
        E.ANSWERED: INVALID, E.NOT_SENT: INVALID, E.MAYBE_SENT: INVALID, E.WRITTEN_BACK: INVALID,
        E.RESOLVED_NONE: (S.CLEARED, X.RECORD_CLEARED),
        E.RESOLVED_BETNR: (S.ASSIGNED, X.RECORD_ASSIGNED),
    },
}


def test_the_table_covers_every_state_and_event():
    assert set(TABLE) == set(State)
    assert all(set(row) == set(Event) for row in TABLE.values())


@pytest.mark.parametrize("state,event", [(s, e) for s in State for e in Event],
                         ids=lambda v: v.value.replace(" ", "_").replace(",", "").replace(":", ""))
def test_step(state, event):
    expected = TABLE[state][event]
    if expected is INVALID:
        with pytest.raises(InvalidTransition, match=event.value):
            step(state, event)
    else:
        assert step(state, event) == expected


def test_a_post_is_never_repeated_while_its_outcome_is_unknown():
    """From any state, no sequence of sync events reaches a second POST before an answer, a 'not sent'
    or an operator's word: the property the journal exists for."""
    posts = {X.POST, X.ANNOUNCE_AND_POST}
    sync_events = [e for e in Event if e not in (E.RESOLVED_NONE, E.RESOLVED_BETNR)]
    frontier, seen = [S.POSTING], {S.POSTING}
    while frontier:  # every state reachable from POSTING without an answer / not-sent / operator
        state = frontier.pop()
        for event in sync_events:
            if event in (E.ANSWERED, E.NOT_SENT):
                continue
            try:
                nxt, effect = step(state, event)
            except InvalidTransition:
                continue
            assert effect not in posts, (state, event)
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == {S.POSTING}


def test_a_whole_create_ends_absent():
    state, effect = step(S.ABSENT, E.START_NO_INTENT)
    assert effect is X.ANNOUNCE_AND_POST
    state, effect = step(state, E.ANSWERED)
    assert effect is X.RECORD_CREATED
    assert step(state, E.WRITTEN_BACK) == (S.ABSENT, X.FORGET)


@pytest.mark.parametrize("entry,state", [
    (None, S.ABSENT),
    (JournalEntry(POSTING, 1.0), S.POSTING),
    (JournalEntry(CREATED, 1.0, 7, "r", {"lastName": "Muster"}), S.CREATED),
    (JournalEntry(CREATED, 1.0, 7, None, None), S.ASSIGNED),  # written by `resolve-create --betnr`
    (JournalEntry(CLEARED, 1.0), S.CLEARED),
])
def test_state_of_a_stored_entry(entry, state):
    assert state_of(entry) == state


@pytest.mark.parametrize("text,intent", [
    (None, Intent.NONE), ("", Intent.NONE),
    ("abc123:2026-01-01 10:00:00", Intent.OURS),
    ("zzz999:2026-01-01 10:00:00", Intent.FOREIGN),
    ("abc1234:2026-01-01 10:00:00", Intent.FOREIGN),  # a run id that merely starts like ours
])
def test_intent_of(text, intent):
    assert intent_of(text, "abc123") == intent
    assert START_EVENT[intent] in (E.START_NO_INTENT, E.START_OUR_INTENT, E.START_FOREIGN_INTENT)


def test_post_failed():
    assert post_failed(True) is E.MAYBE_SENT and post_failed(False) is E.NOT_SENT
