"""The broker transport: kombu's Redis transport with one client per channel for its own calls (issue 15).

kombu's Redis `Channel` builds a new `redis.Redis` object for every call it
makes outside its long-lived BRPOP and pub/sub clients (`conn_or_acquire`):
every publish (task events for Flower, results of `basic_publish`), every
ack, every delivered message's unacked-index entry. With redis-py 7 such an
object costs ~60 µs of CPU to build (its response-callback tables), about a
quarter of a millisecond per Beteiligte sync. The client holds no connection
of its own: it borrows one from the channel's connection pool per command,
as the throw-away clients did, so keeping it changes nothing about how
commands reach Redis, reconnect after a Redis restart (redis-py's pool checks
a connection before handing it out and reconnects a dead one) or are shared
between threads (a `redis.Redis` over a pool is thread-safe). A channel whose
pool is replaced gets a client over the new pool.

`celeryconfig.build` selects `Transport` for `redis://` and `unix://` broker
URLs through Celery's `broker_transport` setting (`celeryconfig.TRANSPORT`); other schemes (`rediss://`,
`sentinel://`) keep kombu's own transport, whose TLS and sentinel handling
depend on the URL's scheme.
"""
from __future__ import annotations

from contextlib import contextmanager

from kombu.transport import redis as kombu_redis

class Channel(kombu_redis.Channel):
    """kombu's Redis channel; `conn_or_acquire` hands out one client over the channel's pool."""

    _shared_client = None

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        pool = self.pool
        shared = self._shared_client
        if shared is None or shared.connection_pool is not pool:
            shared = self._shared_client = self._create_client()
        yield shared


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with `Channel` above."""

    Channel = Channel
