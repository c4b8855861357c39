"""Every task message a producer sends, declared once: the task's name, its arguments (ids and flags only;
Flower shows them) and its coalescing key.

The shim, the sweep, the hand-offs, the retry drain, the CLI and the benches build their messages here,
never by hand; `tests/test_messages.py` checks each against the registered task's signature. Light on
purpose: the web shim imports it without the sync code.
"""
from __future__ import annotations

from bitbylaw_tasks.enqueue import EntityTask, coalesce_key

BETEILIGTE_SYNC = "beteiligte.sync"
KOMMUNIKATION_SYNC = "kommunikation.sync"
CALENDAR_SYNC_EMPLOYEE = "calendar.sync_employee"
ADRESSEN_SYNC = "adressen.sync"
ADRESSEN_ROUTE = "adressen.route"


def beteiligte_sync(entity_id: str, action: str, source: str) -> EntityTask:
    """Sync one CBeteiligte: `action` create|update|delete|check, `source` webhook|sweep|manual|retry.
    Create, update and check coalesce together; a delete has its own key."""
    return EntityTask(BETEILIGTE_SYNC, (entity_id, action, source), coalesce_key("beteiligte", entity_id, action))


def kommunikation_sync(entity_id: str, direction: str = "both", force_espo_wins: bool = False,
                       source: str = "manual") -> EntityTask:
    """Sync one CBeteiligte's Kommunikation (SPEC §5.3 `direction`, `force_espo_wins`); `source`
    manual|handoff|sweep decides its priority at the Advoware gate (`priorities`). One key whatever the
    source: a hand-off arriving while another waits folds into it and runs with the waiting one's source."""
    return EntityTask(KOMMUNIKATION_SYNC, (entity_id, direction, force_espo_wins, source),
                      coalesce_key("kommunikation", entity_id))


def calendar_sync_employee(kuerzel: str) -> EntityTask:
    """Sync one employee's Termine with their Google calendar."""
    return EntityTask(CALENDAR_SYNC_EMPLOYEE, (kuerzel,), coalesce_key("calendar", kuerzel))


LEAD_CREATE = "leads.create_lead"
CALL_JOURNAL = "leads.journal_call"


def lead_create(submission_id: str) -> EntityTask:
    """Turn one stored website submission (`bitbylaw_tasks.inbound.store`, kind `lead`) into an EspoCRM Lead."""
    return EntityTask(LEAD_CREATE, (submission_id,), coalesce_key("lead", submission_id))


def call_journal(call_id: str) -> EntityTask:
    """Journal one stored 3CX call report (kind `call`) as an EspoCRM Call."""
    return EntityTask(CALL_JOURNAL, (call_id,), coalesce_key("call", call_id))


def adressen_sync(entity_id: str, source: str = "manual") -> EntityTask:
    """Sync the addresses of one CBeteiligte (SPEC §11); `source` webhook|handoff|manual|sweep."""
    return EntityTask(ADRESSEN_SYNC, (entity_id, source), coalesce_key("adressen", entity_id))


def adressen_route(adresse_id: str, action: str) -> EntityTask:
    """A CAdresse webhook: find the address's party and queue its `adressen_sync`."""
    return EntityTask(ADRESSEN_ROUTE, (adresse_id, action), coalesce_key("adressen-route", adresse_id, action))
