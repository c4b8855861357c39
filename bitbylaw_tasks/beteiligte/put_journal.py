"""The write-back journal: what a sync PUT to Advoware and owes EspoCRM, until EspoCRM has it (issue 18 A).

A sync that PUTs to Advoware has decided three things: the merged values, what
EspoCRM held when it decided, and which Advoware values it overrode (the stream
note). If the EspoCRM write-back then fails (a 500, a lost answer, a 409 because a
user edited meanwhile), the retry sees Advoware already holding EspoCRM's values:
without a record of the decision it would find no conflict and post no note, or
take the sync's own PUT value for an Advoware edit. So, like the create journal,
the decision is kept in Redis DB 1 (`advoware_put:{espo id}`, stored by `store.PutJournal`):

- `putting` is written before the PUT (the overrides, the merged values, EspoCRM's
  canonical form at the decision);
- the PUT's answer adds Advoware's new rowId;
- the entry is deleted once the EspoCRM write-back and the note landed.

`resume_from()` decides, purely, what a later sync makes of an entry; this module does no I/O.
Values are personal data: never logged.
"""
from __future__ import annotations

from dataclasses import dataclass

from .compare import Override, Resume
from .mapping import normalise, snapshot_of_advoware


@dataclass(frozen=True)
class PendingPut:
    espocrm: dict                  # canonical form of EspoCRM when the sync decided
    merged: dict                   # canonical form of what the PUT carried
    overrides: tuple[Override, ...]  # Advoware values the decision overrode (the note owed)
    row_id: str | None = None      # Advoware's rowId after the PUT; None while its answer is unknown
    at: float = 0.0


def resume_from(pending, espo: dict, advo: dict) -> tuple[Resume | None, tuple[Override, ...]]:
    """What a journal entry of an earlier PUT (`put_journal.PendingPut`, or None) means for this sync:
    the `Resume` to compare with (None: compare as usual) and the overrides whose note is still owed.

    - PUT answered, and EspoCRM holds its rowId: the write-back landed; only the note may be owed.
    - PUT answered, EspoCRM does not: resume from the PUT.
    - PUT unanswered (its answer was lost): if Advoware holds exactly what was sent under a rowId
      EspoCRM does not know, the PUT landed: resume from it. Otherwise it did not land (or a person
      changed Advoware since): forget it; this sync decides, and notes, afresh.
    """
    if pending is None:
        return None, ()
    stored, current = normalise(espo.get("advowareRowId")), normalise(advo.get("rowId"))
    if pending.row_id:
        if pending.row_id == stored:
            return None, pending.overrides
        return Resume(pending.espocrm, pending.merged, pending.row_id), pending.overrides
    if current and current != stored and snapshot_of_advoware(advo) == pending.merged:
        return Resume(pending.espocrm, pending.merged, current), pending.overrides
    return None, ()
