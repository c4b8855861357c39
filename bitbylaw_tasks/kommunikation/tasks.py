"""Celery task of the `kommunikation` queue: sync one Beteiligter's phones, faxes and e-mails. Thin adapter.

Takes the same entity lock as the Beteiligte sync (the two never run at once
for one entity); failures are recorded on the record with the same back-off
rules, the message prefixed with the domain, and shown as failed tasks.
"""
from __future__ import annotations

import dataclasses

from bitbylaw_tasks import messages, priorities
from bitbylaw_tasks.beteiligte.context import KOMMUNIKATION, sync_context
from bitbylaw_tasks.celery_app import app
from bitbylaw_tasks.exclusive import BUSY
from bitbylaw_tasks.kommunikation.plan import DIRECTIONS
from bitbylaw_tasks.kommunikation.service import sync_kommunikation
from bitbylaw_tasks.outcomes import run_entity_task
from integrations.rategate import calls_as


@app.task(bind=True, name=messages.KOMMUNIKATION_SYNC, acks_late=True)
def sync(self, entity_id: str, direction: str = "both", force_espo_wins: bool = False,
         source: str = "manual") -> dict:
    """Sync the Kommunikation entries of one CBeteiligte (SPEC §5). Ids and flags only. A check's hand-off
    (`source` sweep) calls Advoware as background work (`priorities`); messages queued before `source`
    existed run as `manual`, interactive, as they did."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}")
    with calls_as(priorities.of_source(source)):
        outcome = run_entity_task(app, self, KOMMUNIKATION, entity_id=entity_id, action=direction,
                                  entity_task=messages.kommunikation_sync(entity_id, direction, force_espo_wins,
                                                                          source),
                                  context=sync_context,
                                  work=lambda ctx: sync_kommunikation(ctx, entity_id, direction, force_espo_wins))
    if outcome == BUSY:
        return {"entity_id": entity_id, "path": BUSY}
    return dataclasses.asdict(outcome)
