"""Celery tasks of the `leads` queue: a website lead, a 3CX call, the phone index rebuild. Thin adapters.

The two entity tasks run on `outcomes.run_entity_task` (lock per submission or
call id, retries with back-off for transient EspoCRM trouble, a failed task in
Flower for a permanent one; there is no EspoCRM record to write a failure
onto, so `record_failure` is None). Arguments are ids only.
"""
from __future__ import annotations

import dataclasses

import redis

from bitbylaw_tasks import messages
from bitbylaw_tasks.celery_app import app, settings_of
from bitbylaw_tasks.exclusive import BUSY
from bitbylaw_tasks.inbound import phone_index
from bitbylaw_tasks.inbound.journal import journal_call
from bitbylaw_tasks.inbound.leads import InboundContext, process_lead
from bitbylaw_tasks.outcomes import Domain, run_entity_task
from bitbylaw_tasks.settings import Settings

LEADS = Domain("leads", "lead")
CALLS = Domain("calls", "call")


def inbound_context(settings: Settings, lock_client: redis.Redis) -> InboundContext:
    from bitbylaw_tasks.clients import clients_for
    from integrations.espocrm_crm import EspoCrmRecords

    return InboundContext(EspoCrmRecords(clients_for(settings).espocrm), lock_client, settings)


def _run(task, domain: Domain, item_id: str, action: str, entity_task, work) -> dict:
    outcome = run_entity_task(app, task, domain, entity_id=item_id, action=action, entity_task=entity_task,
                              context=inbound_context, work=lambda ctx: work(ctx, item_id))
    return {"id": item_id, "path": BUSY} if outcome == BUSY else dataclasses.asdict(outcome)


@app.task(bind=True, name=messages.LEAD_CREATE, acks_late=True)
def create_lead(self, submission_id: str) -> dict:
    """One website submission -> an EspoCRM Lead, or a note on the person's existing record."""
    return _run(self, LEADS, submission_id, "create", messages.lead_create(submission_id), process_lead)


@app.task(bind=True, name=messages.CALL_JOURNAL, acks_late=True)
def journal(self, call_id: str) -> dict:
    """One 3CX call report -> an EspoCRM Call (and a "call back" note when missed)."""
    return _run(self, CALLS, call_id, "journal", messages.call_journal(call_id), journal_call)


@app.task(name="leads.rebuild_phone_index", acks_late=True)
def rebuild_phone_index() -> dict:
    """Bring the 3CX phone index up to EspoCRM (beat, PHONE_INDEX_REBUILD_INTERVAL); reads changed records only."""
    from bitbylaw_tasks.redis_clients import lock_redis

    settings = settings_of(app)
    client = lock_redis(settings)
    lock = client.lock("lock:phone-index-rebuild", timeout=settings.task_time_limit, blocking=False)
    if not lock.acquire():
        return {"path": BUSY}
    try:
        ctx = inbound_context(settings, client)
        result = phone_index.rebuild(client, ctx.records, settings.inbound_phone_region)
    finally:
        lock.release()
    return dataclasses.asdict(result)
