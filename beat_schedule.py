"""The periodic schedule Celery beat runs (loaded into celery-redbeat at beat start)."""
from __future__ import annotations

from bitbylaw_tasks.settings import Settings


def build(settings: Settings) -> dict:
    return {
        # Records when beat last fired and fans a heartbeat out to every queue's
        # workers; /healthz reports both.
        "ops-heartbeat": {
            "task": "ops.heartbeat",
            "schedule": settings.heartbeat_interval,
            "options": {"expires": settings.heartbeat_interval},
        },
        # SPEC §4.1: the safety net for lost webhooks and the only way to see
        # Advoware-side changes (Advoware has no webhooks).
        "beteiligte-sweep": {
            "task": "beteiligte.sweep",
            "schedule": settings.sweep_interval,
            "options": {"expires": settings.sweep_interval},
        },
        # Retries due by their back-off (syncNextRetry), run close to their time
        # instead of through long Celery countdowns (RESEARCH §A).
        "beteiligte-retry-due": {
            "task": "beteiligte.retry_due",
            "schedule": settings.retry_drain_interval,
            "options": {"expires": settings.retry_drain_interval},
        },
        # SPEC §4.1 rolling check / issue 15: checks the longest-unchecked parties with what the
        # shared Advoware budget leaves (docs/freshness.md).
        "beteiligte-freshness": {
            "task": "beteiligte.freshness",
            "schedule": settings.freshness_tick,
            "options": {"expires": settings.freshness_tick},
        },
        # SPEC §11: addresses a user changed whose webhook was lost (docs/adressen-sync.md).
        "adressen-sweep": {
            "task": "adressen.sweep",
            "schedule": settings.sweep_interval,
            "options": {"expires": settings.sweep_interval},
        },
        # SPEC §6: fans out one calendar.sync_employee per active employee.
        "calendar-sync-all": {
            "task": "calendar.sync_all",
            "schedule": settings.calendar_interval,
            "options": {"expires": settings.calendar_interval},
        },
        # SPEC §12: the phone index 3CX lookups read, rebuilt from EspoCRM (the syncs keep it current between).
        "leads-rebuild-phone-index": {
            "task": "leads.rebuild_phone_index",
            "schedule": settings.phone_index_rebuild_interval,
            "options": {"expires": settings.phone_index_rebuild_interval},
        },
    }
