"""The periodic schedule Celery beat runs (loaded into celery-redbeat at beat start)."""
from __future__ import annotations

from bitbylaw_tasks.settings import Settings


def every(task: str, seconds: float) -> dict:
    """Run `task` every `seconds`; a run not started within one period expires (the next one does its work)."""
    return {"task": task, "schedule": seconds, "options": {"expires": seconds}}


def build(settings: Settings) -> dict:
    return {
        # Records when beat last fired and fans a heartbeat out to every queue's
        # workers; /healthz reports both.
        "ops-heartbeat": every("ops.heartbeat", settings.heartbeat_interval),
        # SPEC §4.1: the safety net for lost webhooks and the only way to see
        # Advoware-side changes (Advoware has no webhooks).
        "beteiligte-sweep": every("beteiligte.sweep", settings.sweep_interval),
        # Retries due by their back-off (syncNextRetry), run close to their time
        # instead of through long Celery countdowns (RESEARCH §A).
        "beteiligte-retry-due": every("beteiligte.retry_due", settings.retry_drain_interval),
        # SPEC §4.1 rolling check / issue 15: checks the longest-unchecked parties with what the
        # shared Advoware budget leaves (docs/freshness.md).
        "beteiligte-freshness": every("beteiligte.freshness", settings.freshness_tick),
        # SPEC §11: addresses a user changed whose webhook was lost (docs/adressen-sync.md).
        "adressen-sweep": every("adressen.sweep", settings.sweep_interval),
        # SPEC §6: fans out one calendar.sync_employee per active employee.
        "calendar-sync-all": every("calendar.sync_all", settings.calendar_interval),
        # SPEC §12: the phone index 3CX lookups read, rebuilt from EspoCRM (the syncs keep it current between).
        "leads-rebuild-phone-index": every("leads.rebuild_phone_index", settings.phone_index_rebuild_interval),
    }
