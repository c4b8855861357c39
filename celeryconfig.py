"""Celery configuration: broker, result backend, queues and routes, reliability settings.

`build(settings)` returns the configuration as a dict for `app.conf.update()`;
every value comes from `Settings` (environment), every choice is explained
next to it. See docs/celery.md for the reasoning in one place.
"""
from __future__ import annotations

from kombu import Exchange, Queue

from bitbylaw_tasks.settings import Settings

#: Celery resolves this "module:Class" name itself (so a process that only enqueues does not import it).
CONSUMER = "bitbylaw_tasks.worker_consumer:Consumer"

#: The per-domain queues plus `default` for operational tasks (heartbeat, ...); `leads` carries both
#: inbound channels, website leads and 3CX (docs/inbound-channels.md).
QUEUES = ("beteiligte", "kommunikation", "calendar", "default", "leads", "adressen")

#: Route by task-name prefix: `beteiligte.sync` -> queue `beteiligte`, `ops.*` -> `default`.
TASK_ROUTES = {f"{q}.*": {"queue": q} for q in QUEUES if q != "default"}
TASK_ROUTES["ops.*"] = {"queue": "default"}


def build(settings: Settings) -> dict:
    transport_options = {
        # With a Redis broker an unacked message returns to its queue only after
        # this many seconds (e.g. when a worker was SIGKILLed). It must exceed the
        # hard time limit, or a task still running would be handed to a second
        # worker. Countdowns/ETAs longer than this re-deliver forever (RESEARCH §A),
        # so the product never schedules further ahead than MAX_COUNTDOWN below.
        "visibility_timeout": settings.visibility_timeout,
    }
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend_url,
        # Set in all three places (celery #7651, #9339): the broker transport, the
        # result backend transport, and the top-level key older code paths read.
        "broker_transport_options": dict(transport_options),
        "result_backend_transport_options": dict(transport_options),
        "visibility_timeout": settings.visibility_timeout,
        # Retry the broker connection at start-up instead of crashing the worker
        # when Redis comes up a moment later than the worker.
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        # JSON only: task arguments are ids and flags, readable in Flower, no pickle.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Results are only for operators and tests; they expire.
        "result_expires": settings.result_expires,
        "result_extended": True,
        # Queues and routing.
        "task_queues": [Queue(q, Exchange(q, type="direct"), routing_key=q) for q in QUEUES],
        "task_default_queue": "default",
        "task_default_exchange": "default",
        "task_default_routing_key": "default",
        "task_routes": TASK_ROUTES,
        "task_create_missing_queues": False,
        # Reliability: ack after the task ran, so a worker that dies mid-task gives
        # the message back (after the visibility timeout). Tasks are idempotent
        # (entity lock + re-read + compare), so running twice is safe.
        "task_acks_late": True,
        # A task whose worker *child* is lost is not re-queued automatically: that
        # would loop a poison task forever without a redelivery count (celery
        # discussion #8969). The sweep recovers such entities instead.
        "task_reject_on_worker_lost": False,
        # Reserve only what is being run, so a killed worker holds back at most its
        # running tasks and long syncs do not starve behind a prefetched batch.
        "worker_prefetch_multiplier": 1,
        # Soft limit raises SoftTimeLimitExceeded inside the task so it can record
        # the failure and release its lock; the hard limit kills it after that.
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        # Events for Flower: workers send task events, and publishers send
        # task-sent so Flower shows queued tasks before a worker takes them.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        # Celery's consumer, but buffered task events go out together every 0.1 s instead of one publish
        # per event (bitbylaw_tasks/worker_consumer.py; Flower shows the same events).
        "worker_consumer": CONSUMER,
        # Flower shows a running task from the worker's `task-started` event; the
        # result backend's own STARTED record (a GET and a SETEX + PUBLISH per
        # task) had no reader: off (issue 15, docs/PERFORMANCE.md).
        "task_track_started": False,
        # Stop consuming and hand back late-ack tasks when the broker link drops;
        # they run again elsewhere (tasks are idempotent).
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_heartbeat": 0,
        "worker_hijack_root_logger": False,
        # Beat: celery-redbeat keeps the schedule in Redis and holds a lock, so a
        # second beat started by mistake waits instead of firing everything twice.
        "beat_scheduler": "redbeat.RedBeatScheduler",
        "redbeat_redis_url": settings.lock_redis_url,
        "redbeat_key_prefix": "redbeat:",
        "redbeat_lock_key": "redbeat::lock",
        "redbeat_lock_timeout": max(30, int(settings.heartbeat_interval * 5)),
        "beat_max_loop_interval": 5,
        "timezone": "UTC",
        "enable_utc": True,
    }


#: The longest countdown/ETA the product may schedule (a safe fraction of the
#: visibility timeout); longer waits go through a durable schedule instead.
def max_countdown(settings: Settings) -> int:
    return max(1, settings.visibility_timeout // 4)
