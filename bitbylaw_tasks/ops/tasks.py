"""Operational tasks: the heartbeat beat fires and each queue's workers answer.

`ops.heartbeat` runs on the `default` queue every HEARTBEAT_INTERVAL seconds:
it records that beat fired and sends `{queue}.heartbeat` to every domain
queue; the worker that runs it records that the queue's workers are alive.
`/healthz` reads these timestamps (see `bitbylaw_tasks.ops.heartbeat`).
"""
from __future__ import annotations

from bitbylaw_tasks.celery_app import app, settings_of
from bitbylaw_tasks.ops import heartbeat
from bitbylaw_tasks.redis_clients import lock_redis

DOMAIN_QUEUES = heartbeat.DOMAIN_QUEUES


@app.task(name="ops.heartbeat", ignore_result=True)
def heartbeat_task() -> None:
    settings = settings_of(app)
    client = lock_redis(settings)
    heartbeat.record(client, "beat")
    heartbeat.record(client, "worker:default")
    for queue in DOMAIN_QUEUES:
        app.send_task(f"{queue}.heartbeat", expires=settings.heartbeat_interval)


def _queue_heartbeat(queue: str):
    @app.task(name=f"{queue}.heartbeat", ignore_result=True)
    def _task() -> None:
        heartbeat.record(lock_redis(settings_of(app)), f"worker:{queue}")

    return _task


queue_heartbeats = {queue: _queue_heartbeat(queue) for queue in DOMAIN_QUEUES}
