"""The create journal as a pure state machine: what the product knows about an Advoware POST it made for
an EspoCRM record, and what a sync or an operator may do next.

Advoware has no idempotency key and no search by an external id, so a POST
whose outcome got lost must never simply be repeated. Before POSTing, the
sync records `posting`; as soon as Advoware answers it records `created` with
the new betNr/rowId (one Redis write, before the slower EspoCRM write-back).
The next sync of the record then:
- `created` -> adopts that betNr instead of POSTing again (worker died, or the
  EspoCRM write-back failed), with the canonical form of what was POSTed as the
  snapshot: an EspoCRM edit made meanwhile then counts as an EspoCRM change;
  an entry an operator wrote (`assigned`: no snapshot) is adopted with what
  Advoware holds as the base;
- `posting` -> the POST may or may not have created a record: stop and ask an
  operator (`bitbylaw beteiligte resolve-create`), never POST a second time;
- `cleared` -> an operator confirmed that nothing was created: POST again.
Because Redis may lose data, the journal is anchored in EspoCRM too: before a
create the sync writes an intent naming this Redis server's `run_id` (which
changes at every restart). An intent from another `run_id` with no journal
entry means the journal was lost mid-create: ask an operator, never guess.

`step(state, event)` is the whole rule: the next state and the one effect the
executor (`service._create`, `service.resolve_create`) carries out; it does
no I/O. The entry's storage is `store.CreateJournal`. Tests:
`tests/test_beteiligte_journal.py` (every state x event).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

# The stored states (`store.CreateJournal` keeps these strings in Redis).
POSTING, CREATED, CLEARED = "posting", "created", "cleared"


@dataclass(frozen=True)
class JournalEntry:
    state: str
    at: float
    betnr: int | None = None
    row_id: str | None = None
    snapshot: dict | None = None  # canonical form of the POSTed record (None: adopted by an operator)


class State(enum.Enum):
    ABSENT = "absent"       # no entry: nothing in flight (or the journal was lost)
    POSTING = "posting"     # the POST is (or was) on its way; its outcome is unknown
    CREATED = "created"     # Advoware answered with a betNr; the EspoCRM write-back is owed
    ASSIGNED = "assigned"   # an operator named the betNr (no snapshot of what was POSTed)
    CLEARED = "cleared"     # an operator confirmed that nothing was created


class Intent(enum.Enum):
    """The create intent on the EspoCRM record (`advowareCreateIntent`)."""

    NONE = "none"           # no create in flight as far as EspoCRM knows
    OURS = "ours"           # written under this Redis server's run id
    FOREIGN = "foreign"     # written under another run id: Redis restarted since


class Event(enum.Enum):
    START_NO_INTENT = "start, no intent"            # a sync of a record without betnr begins ...
    START_OUR_INTENT = "start, our intent"          # ... the record carries an intent of this Redis run
    START_FOREIGN_INTENT = "start, foreign intent"  # ... an intent from before a Redis restart
    ANSWERED = "answered"          # Advoware answered the POST with a betNr
    NOT_SENT = "not sent"          # the POST got an error answer or never connected: nothing created
    MAYBE_SENT = "maybe sent"      # the POST may have reached Advoware (read timeout, reset after sending)
    WRITTEN_BACK = "written back"  # EspoCRM holds the betNr
    RESOLVED_NONE = "resolved: none"    # operator: nothing was created
    RESOLVED_BETNR = "resolved: betnr"  # operator: this betNr is the record


class Effect(enum.Enum):
    ANNOUNCE_AND_POST = "announce and post"  # write the intent to EspoCRM, record `posting`, POST
    POST = "post"                            # record `posting`, POST (the intent is already ours)
    ADOPT = "adopt"                          # take the journal's betNr; what was POSTed is the base
    ADOPT_ASSIGNED = "adopt assigned"        # GET the operator's betNr; what Advoware holds is the base
    ASK_UNCERTAIN = "ask: uncertain"         # fail, asking an operator: the POST may have created a record
    ASK_JOURNAL_LOST = "ask: journal lost"   # fail, asking an operator: Redis lost the journal mid-create
    RECORD_CREATED = "record created"        # record `created` (betNr, rowId, snapshot), then write back
    WITHDRAW = "withdraw"                    # forget the entry and the intent; the error stands
    KEEP = "keep"                            # leave the entry as it is; the error stands
    FORGET = "forget"                        # delete the entry: nothing more is owed
    RECORD_CLEARED = "record cleared"        # the operator's "none"
    RECORD_ASSIGNED = "record assigned"      # the operator's betNr


class InvalidTransition(Exception):
    """An event that cannot happen in this state (a bug in the executor)."""


_START = {Event.START_NO_INTENT, Event.START_OUR_INTENT, Event.START_FOREIGN_INTENT}

_TABLE: dict[tuple[State, Event], tuple[State, Effect]] = {
    (State.ABSENT, Event.START_NO_INTENT): (State.POSTING, Effect.ANNOUNCE_AND_POST),
    (State.ABSENT, Event.START_OUR_INTENT): (State.POSTING, Effect.POST),
    (State.ABSENT, Event.START_FOREIGN_INTENT): (State.ABSENT, Effect.ASK_JOURNAL_LOST),
    **{(State.POSTING, e): (State.POSTING, Effect.ASK_UNCERTAIN) for e in _START},
    **{(State.CREATED, e): (State.CREATED, Effect.ADOPT) for e in _START},
    **{(State.ASSIGNED, e): (State.ASSIGNED, Effect.ADOPT_ASSIGNED) for e in _START},
    # an operator's "none" allows a new POST whatever intent EspoCRM still shows; it is written anew
    **{(State.CLEARED, e): (State.POSTING, Effect.ANNOUNCE_AND_POST) for e in _START},
    (State.POSTING, Event.ANSWERED): (State.CREATED, Effect.RECORD_CREATED),
    (State.POSTING, Event.NOT_SENT): (State.ABSENT, Effect.WITHDRAW),
    (State.POSTING, Event.MAYBE_SENT): (State.POSTING, Effect.KEEP),
    (State.CREATED, Event.WRITTEN_BACK): (State.ABSENT, Effect.FORGET),
    (State.ASSIGNED, Event.WRITTEN_BACK): (State.ABSENT, Effect.FORGET),
    **{(s, Event.RESOLVED_NONE): (State.CLEARED, Effect.RECORD_CLEARED) for s in State},
    **{(s, Event.RESOLVED_BETNR): (State.ASSIGNED, Effect.RECORD_ASSIGNED) for s in State},
}


def step(state: State, event: Event) -> tuple[State, Effect]:
    """The next state and the effect to carry out; `InvalidTransition` for an impossible event."""
    try:
        return _TABLE[(state, event)]
    except KeyError:
        raise InvalidTransition(f"create journal: {event.value!r} in state {state.value!r}") from None


def state_of(entry: JournalEntry | None) -> State:
    """The machine's state of a stored entry."""
    if entry is None:
        return State.ABSENT
    if entry.state == CREATED:
        return State.CREATED if entry.snapshot is not None else State.ASSIGNED
    return {POSTING: State.POSTING, CLEARED: State.CLEARED}[entry.state]


def intent_of(text: str | None, run_id: str) -> Intent:
    """The kind of the intent `text` ("{run id}:{time}") for this Redis server's `run_id`."""
    if not text:
        return Intent.NONE
    return Intent.OURS if text.startswith(run_id + ":") else Intent.FOREIGN


START_EVENT = {Intent.NONE: Event.START_NO_INTENT, Intent.OURS: Event.START_OUR_INTENT,
               Intent.FOREIGN: Event.START_FOREIGN_INTENT}


def post_failed(maybe_sent: bool) -> Event:
    """The event of a POST that raised: it may have been sent, or it certainly created nothing."""
    return Event.MAYBE_SENT if maybe_sent else Event.NOT_SENT
