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
    }
