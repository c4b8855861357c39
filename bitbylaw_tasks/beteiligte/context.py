"""The task-side wiring of a CBeteiligte sync (Beteiligte and Kommunikation share it): its context built from
the settings, and the `Domain`s that tell the shared task runner (`outcomes.run_entity_task`) how to lock
and how to record a failure on the EspoCRM record."""
from __future__ import annotations

import redis

from bitbylaw_tasks.beteiligte import service
from bitbylaw_tasks.beteiligte.status import failure_prefix
from bitbylaw_tasks.beteiligte.sweep import LOCK_KIND  # one lock per CBeteiligte: the two domains never interleave
from bitbylaw_tasks.notify import notifier_for
from bitbylaw_tasks.ops import failures
from bitbylaw_tasks.outcomes import Domain
from bitbylaw_tasks.settings import Settings



def sync_context(settings: Settings, lock_client: redis.Redis) -> service.SyncContext:
    """The clients of this process and the locks' Redis, as a Beteiligte/Kommunikation sync needs them."""
    from bitbylaw_tasks.clients import clients_for

    clients = clients_for(settings)
    return service.SyncContext(clients.espocrm, clients.advoware, lock_client, policy=settings.conflict_policy,
                               notifier=notifier_for(settings, clients.espocrm, lock_client))


def _recorder(domain: str):
    def record(ctx: service.SyncContext, entity_id: str, error: Exception) -> None:
        outcome = service.record_failure(ctx, entity_id, error, prefix=failure_prefix(domain))
        if outcome is not None and outcome.permanent:
            failures.mark_permanent(ctx.redis, domain, entity_id, str(error))
    return record


BETEILIGTE = Domain("beteiligte", LOCK_KIND, record_failure=_recorder("beteiligte"))
KOMMUNIKATION = Domain("kommunikation", LOCK_KIND, record_failure=_recorder("kommunikation"))
