"""The CBeteiligte a dependent sync starts from (Kommunikation, Adressen): the record and its betNr, or why
there is none yet — EspoCRM has no such record (`missing`), or the party is not in Advoware yet (`not_linked`:
the Beteiligte sync creates it first)."""
from __future__ import annotations

from integrations.errors import NotFound

MISSING, NOT_LINKED = "missing", "not_linked"


class PartyNotReady(Exception):
    """The dependent sync has nothing to do; `path` (MISSING or NOT_LINKED) is its outcome's path."""

    def __init__(self, entity_id: str, path: str):
        super().__init__(f"beteiligte {entity_id}: {path}")
        self.path = path


def linked_betnr(record: dict) -> int | None:
    """The Advoware betNr a CBeteiligte record is linked to, or None while it has none."""
    value = record.get("betnr")
    return None if value in (None, "") else int(value)


def linked_party(espocrm, entity_id: str) -> tuple[dict, int]:
    """The CBeteiligte record and its betNr, read from EspoCRM; `PartyNotReady` when missing or not linked."""
    try:
        record = espocrm.get_beteiligte(entity_id)
    except NotFound:
        raise PartyNotReady(entity_id, MISSING) from None
    betnr = linked_betnr(record)
    if betnr is None:
        raise PartyNotReady(entity_id, NOT_LINKED)
    return record, betnr
