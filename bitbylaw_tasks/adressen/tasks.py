"""Celery tasks of the `adressen` queue: sync one party's addresses, route a CAdresse webhook, the sweep. Thin
adapters."""
from __future__ import annotations

import dataclasses
import logging

from bitbylaw_tasks import messages, priorities
from bitbylaw_tasks.adressen.context import ADRESSEN, sync_context
from bitbylaw_tasks.adressen.service import parties_to_sweep, party_of, sync_adressen
from bitbylaw_tasks.celery_app import app, settings_of
from bitbylaw_tasks.clients import clients_for
from bitbylaw_tasks.enqueue import enqueuer_for
from bitbylaw_tasks.exclusive import BUSY
from bitbylaw_tasks.outcomes import run_entity_task
from bitbylaw_tasks.redis_clients import lock_redis
from integrations.errors import RateLimited, Unavailable
from integrations.rategate import calls_as

log = logging.getLogger(__name__)


@app.task(bind=True, name=messages.ADRESSEN_SYNC, acks_late=True)
def sync(self, entity_id: str, source: str = "manual") -> dict:
    """Sync the addresses of one CBeteiligte (SPEC §11) under the party's lock. Ids only. The sweep's syncs
    call Advoware as background work (`priorities`)."""
    with calls_as(priorities.of_source(source)):
        outcome = run_entity_task(app, self, ADRESSEN, entity_id=entity_id, action=source,
                                  entity_task=messages.adressen_sync(entity_id, source), context=sync_context,
                                  work=lambda ctx: sync_adressen(ctx, entity_id, source))
    if outcome == BUSY:
        return {"entity_id": entity_id, "path": BUSY}
    return dataclasses.asdict(outcome)


@app.task(name=messages.ADRESSEN_ROUTE, acks_late=True, autoretry_for=(Unavailable, RateLimited),
          retry_backoff=True, max_retries=5)
def route(adresse_id: str, action: str) -> dict:
    """A CAdresse webhook: queue the sync of the address's party (a deleted address: the party it had when
    last synced; unknown: dropped, the party's next check finds it)."""
    enqueuer_for(app).mark_started(messages.adressen_route(adresse_id, action).coalesce_key)
    settings = settings_of(app)
    party = party_of(clients_for(settings).espocrm, lock_redis(settings), adresse_id, action)
    if not party:
        log.info("adressen route: CAdresse %s (%s) has no known party; left to the party's next check",
                 adresse_id, action)
        return {"adresse_id": adresse_id, "party": None}
    enqueuer_for(app).enqueue([messages.adressen_sync(party, "webhook")])
    return {"adresse_id": adresse_id, "party": party}


@app.task(name="adressen.sweep", acks_late=True)
def sweep() -> dict:
    """Beat, with the party sweep's interval: queue the sync of every party with an address that is
    `pending_sync`, `dirty` or `failed` (a lost webhook; Advoware-side changes come with the party's check)."""
    parties = parties_to_sweep(clients_for(settings_of(app)).espocrm)
    queued = enqueuer_for(app).enqueue([messages.adressen_sync(p, "sweep") for p in parties]) if parties else []
    log.info("adressen sweep: %d parties, %d queued", len(parties), sum(queued))
    return {"parties": len(parties), "queued": sum(queued)}
