"""The Advoware token's in-process copy (issue 15): no Redis read per call while it is fresh, never older than
`TOKEN_MEMORY`, never longer than Redis keeps the token, and forgotten at once on a 401 — against the
running simulator and a real Redis."""
from __future__ import annotations

import os
import time

import pytest
import redis

from integrations import advoware
from test_client_advoware import Running, cache, client_for, shared, sim  # noqa: F401  (fixtures)


class CountingRedis(redis.Redis):
    """A real Redis client that counts the round trips it makes (commands and pipelines)."""

    trips = 0

    def execute_command(self, *args, **options):
        self.trips += 1
        return super().execute_command(*args, **options)

    def pipeline(self, *args, **kwargs):
        self.trips += 1
        return super().pipeline(*args, **kwargs)


def test_calls_within_the_memory_read_the_token_from_redis_once(sim, redis_url):
    sim.kit.reset()
    counting = CountingRedis.from_url(redis_url)
    client = client_for(sim, counting)
    client.list_mitarbeiter()
    before = counting.trips
    for _ in range(5):
        client.list_mitarbeiter()
    assert counting.trips == before  # no gate here: the token was the only thing read from Redis
    assert client.token_fetches == 1 and client.calls["GET Mitarbeiter"] == 6


def test_an_operators_deletion_reaches_the_process_after_the_memory(sim, cache, monkeypatch):
    monkeypatch.setattr(advoware, "TOKEN_MEMORY", 0.3)
    sim.kit.reset()
    client = client_for(sim, cache)
    first = client.token()
    cache.set(client.token_key, "rotated-by-the-operator", px=60_000)
    assert client.token() == first  # still this process's copy
    time.sleep(0.35)
    assert client.token() == "rotated-by-the-operator"
    cache.delete(client.token_key)
    time.sleep(0.35)
    assert client.token() not in (first, "rotated-by-the-operator") and client.token_fetches == 2


def test_the_copy_never_outlives_the_cached_token(sim, cache):
    running = Running(token_lifetime=1.0)  # cached for 0.9 s: shorter than TOKEN_MEMORY
    try:
        client = client_for(running, cache)
        first = client.token()
        assert client._copy[1] - time.monotonic() <= 0.9
        time.sleep(0.95)
        assert client.token() != first and client.token_fetches == 2
    finally:
        running.server.stop()


def test_a_401_forgets_the_copy_at_once(sim, cache):
    sim.kit.reset()
    client = client_for(sim, cache)
    client.list_mitarbeiter()
    sim.tokens.revoke_all()
    assert client.list_mitarbeiter() == []
    assert client.token_fetches == 2 and sim.statuses("/Mitarbeiter") == [200, 401, 200]
    assert client.token() == cache.get(client.token_key).decode()


def test_memory_zero_reads_redis_before_every_call_and_the_setting_reaches_the_client(sim, cache, monkeypatch):
    client = client_for(sim, cache, token_memory=0)
    client.token()
    cache.set(client.token_key, "rotated", px=60_000)
    assert client.token() == "rotated" and client._copy is None
    from bitbylaw_tasks.clients import advoware_client
    from bitbylaw_tasks.settings import load_settings

    monkeypatch.setenv("ADVOWARE_TOKEN_MEMORY", "1.5")
    assert advoware_client(load_settings(env_file=os.devnull)).token_memory == 1.5
