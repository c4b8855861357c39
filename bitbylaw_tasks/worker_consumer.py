"""The worker's consumer: Celery's, with its task events published in batches (issue 15).

A worker with an event loop (ours: the threads pool on Redis) already buffers
task events (`task-received`, `task-started`, `task-succeeded`, ...) and
publishes what is buffered as one `task.multi` message, which Celery's event
receivers (Flower, `celery events`) unpack into the single events. But Celery
asks the loop to flush on its very next turn, so with tasks finishing apart
each event went out alone: three publishes per Beteiligte sync, each a kombu
message built and a Redis `PUBLISH` (~0.17 ms of worker CPU each). Here the
loop flushes `EVENTS_FLUSH_DELAY` after the first buffered event, so one
message carries all events of that interval. Flower shows every event as
before, up to `EVENTS_FLUSH_DELAY` later, with its own timestamp; Celery's
limit still applies (24 buffered events flush at once). Events still buffered
when the worker shuts down are flushed then.

Selected by `celeryconfig.build` (`worker_consumer`, `celeryconfig.CONSUMER`).
"""
from __future__ import annotations

import time

from celery.worker.consumer import Consumer as CeleryConsumer

#: Seconds a task event may wait for the ones after it, so they share one publish.
EVENTS_FLUSH_DELAY = 0.1

class Consumer(CeleryConsumer):
    """Celery's consumer; buffered task events are flushed `EVENTS_FLUSH_DELAY` after the first of them."""

    _events_flush_due: float | None = None  # when the pending flush was scheduled (monotonic), if one is

    def on_send_event_buffered(self):
        """Called (from the pool's threads) for every buffered event: schedule one flush for the batch.

        The event is in the buffer before this runs and the flag is cleared before a flush, so every event
        is either in a flush already due or schedules one. A flush due for 10 x the delay (its timer lost to
        an event-loop restart) is scheduled again."""
        if self.hub is None:
            return super().on_send_event_buffered()
        now = time.monotonic()
        due = self._events_flush_due
        if due is None or now - due > 10 * EVENTS_FLUSH_DELAY:
            self._events_flush_due = now
            self.hub.call_soon(self._schedule_events_flush)  # timers belong to the loop's thread
        return None

    def _schedule_events_flush(self):
        self.hub.call_later(EVENTS_FLUSH_DELAY, self._flush_due_events)

    def _flush_due_events(self):
        self._events_flush_due = None  # before the flush: an event buffered during it schedules the next
        self._flush_events()

    def shutdown(self):
        self._flush_events()
        super().shutdown()
