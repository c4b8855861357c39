"""The product's Advoware client against the running simulator and a real Redis: token sharing, calls, errors."""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import redis

from bitbylaw_tasks.settings import Settings
from integrations.advoware import AdvowareClient, AdvowareCredentials, signature
from integrations.errors import AuthError, BadRequest, BudgetExhausted, Forbidden, NotFound, RateLimited
from integrations.http import Timeouts
from integrations.rategate import RateGate
from integrations.sandbox.advoware import create_advoware_app
from integrations.sandbox.advoware_auth import SANDBOX_CREDENTIALS, expected_signature
from integrations.sandbox.kit import ServerThread

CREDS = AdvowareCredentials(**SANDBOX_CREDENTIALS)
SECRETS = (CREDS.password, CREDS.api_key)


class Running:
    def __init__(self, **options):
        self.app = create_advoware_app(**options)
        self.state = self.app.extensions["advoware"]
        self.tokens = self.app.extensions["advoware_tokens"]
        self.kit = self.app.extensions["sandbox"]
        self.server = ServerThread(self.app).start()
        self.url = self.server.url

    def statuses(self, path_part: str) -> list[int]:
        with self.kit.lock:
            return [entry["status"] for entry in self.kit.log if path_part in entry["path"]]


@pytest.fixture(scope="module")
def shared():
    running = Running()
    yield running
    running.server.stop()


@pytest.fixture
def sim(shared):
    shared.kit.reset()
    return shared


@pytest.fixture
def cache(redis_url):
    return redis.Redis.from_url(redis_url)


def client_for(sim, cache, **kw) -> AdvowareClient:
    return AdvowareClient(sim.url, kw.pop("credentials", CREDS), redis=cache,
                          timeouts=kw.pop("timeouts", Timeouts(connect=2, read=5)), **kw)


# --- signing ------------------------------------------------------------------------------------------

def test_signature_is_hmac_sha512_over_product_app_nonce_timestamp():
    key = base64.b64encode(b"secret-key").decode()
    message = b"64:app-1:nonce-1:2026-02-08T10:00:00.000Z"
    expected = base64.b64encode(hmac.new(b"secret-key", message, hashlib.sha512).digest()).decode()
    assert signature(key, "64", "app-1", "nonce-1", "2026-02-08T10:00:00.000Z") == expected
    assert expected_signature(key, "64", "app-1", "nonce-1", "2026-02-08T10:00:00.000Z") == expected
    assert signature(key, "64", "app-1", "nonce-2", "2026-02-08T10:00:00.000Z") != expected


@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=1, max_size=64), product=st.text(max_size=8), app=st.text(max_size=20),
       nonce=st.uuids().map(str), stamp=st.datetimes().map(lambda d: d.isoformat() + "Z"))
def test_client_and_server_agree_on_the_signature(key, product, app, nonce, stamp):
    api_key = base64.b64encode(key).decode()
    assert signature(api_key, product, app, nonce, stamp) == expected_signature(api_key, product, app, nonce, stamp)


# --- the token ----------------------------------------------------------------------------------------

def test_token_is_cached_in_redis_below_its_lifetime_and_shared(sim, cache):
    first = client_for(sim, cache)
    first.list_mitarbeiter()
    ttl_ms = cache.pttl(first.token_key)
    assert 3_000_000 < ttl_ms <= 3_540_000  # one minute below the 3600 s lifetime
    second = client_for(sim, cache)  # another worker process, same Redis
    second.list_mitarbeiter()
    first.list_mitarbeiter()
    assert first.token_fetches == 1 and second.token_fetches == 0
    assert sim.tokens.stats()["fetches"] == 1
    assert first.calls["GET Mitarbeiter"] == 2 and second.api_calls == 1


def test_token_is_refreshed_before_it_expires(cache):
    running = Running(token_lifetime=1.0)
    try:
        client = client_for(running, cache)
        client.list_mitarbeiter()
        assert 0 < cache.pttl(client.token_key) <= 900
        threading.Event().wait(0.95)  # cache entry gone, server token not yet (or barely) expired
        client.list_mitarbeiter()
        assert client.token_fetches == 2
        assert 401 not in running.statuses("/advonet/")
    finally:
        running.server.stop()


def test_a_401_drops_the_token_and_retries_once(sim, cache):
    client = client_for(sim, cache)
    client.list_mitarbeiter()
    old = cache.get(client.token_key)
    sim.tokens.revoke_all()  # e.g. the server restarted: the cached token is dead
    assert client.list_mitarbeiter() == []
    assert client.token_fetches == 2 and client.calls["GET Mitarbeiter"] == 3
    assert sim.statuses("/Mitarbeiter") == [200, 401, 200]
    assert cache.get(client.token_key) not in (None, old)


def test_a_second_401_is_an_auth_error(sim, cache):
    client = client_for(sim, cache)
    sim.kit.add_fault(path="/api/v1/advonet/*", status=401, times=2)
    with pytest.raises(AuthError):
        client.list_mitarbeiter()
    assert client.calls["GET Mitarbeiter"] == 2 and client.token_fetches == 2
    assert client.list_mitarbeiter() == []


def test_a_dropped_token_is_only_deleted_when_it_is_still_the_cached_one(sim, cache):
    client = client_for(sim, cache)
    client.token()
    cache.set(client.token_key, "newer-token-from-another-process")
    client._drop_token("the-token-that-got-401")
    assert cache.get(client.token_key) == b"newer-token-from-another-process"


def test_eight_concurrent_callers_fetch_the_token_once(sim, cache, redis_url):
    sim.kit.add_fault(path="/api/v1/Token", latency_ms=300)  # widen the race window
    # As if in eight processes: each with its own Redis connection.
    clients = [client_for(sim, redis.Redis.from_url(redis_url)) for _ in range(8)]
    barrier, errors = threading.Barrier(8), []

    def work(client):
        try:
            barrier.wait()
            client.list_mitarbeiter()
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert sum(c.token_fetches for c in clients) == 1
    assert sim.tokens.stats()["fetches"] == 1
    assert sim.kit.calls()["POST /api/v1/Token"] == 1
    assert sim.kit.calls()["GET /api/v1/advonet/Mitarbeiter"] == 8


# --- Beteiligte and Kommunikationen -------------------------------------------------------------------

def test_beteiligte_create_get_update_and_list_or_object(sim, cache):
    client = client_for(sim, cache)
    created = client.create_beteiligte({"name": "Krause", "vorname": "Jan", "geburtsdatum": "1990-01-02"})
    assert created["betNr"] and created["rowId"]
    got = client.get_beteiligte(created["betNr"])
    assert got["geburtsdatum"] == "1990-01-02T00:00:00" and got["kommunikation"] == []
    merged = {**got, "titel": "Dr."}
    updated = client.update_beteiligte(created["betNr"], merged)
    assert updated["titel"] == "Dr." and updated["vorname"] == "Jan" and updated["rowId"] != got["rowId"]
    sim.state.get_returns_object = True
    assert client.get_beteiligte(created["betNr"]) == updated
    sim.state.get_returns_object = False
    assert client.get_beteiligte(created["betNr"]) == updated
    assert client.calls["GET Beteiligte"] == 3 and client.calls["PUT Beteiligte"] == 1


def test_deleted_beteiligter_is_not_found(sim, cache):
    client = client_for(sim, cache)
    betnr = client.create_beteiligte({"name": "Weg"})["betNr"]
    sim.state.delete_beteiligte(betnr)
    with pytest.raises(NotFound):
        client.get_beteiligte(betnr)


def test_kommunikation_create_and_update(sim, cache):
    client = client_for(sim, cache)
    betnr = client.create_beteiligte({"name": "Krause", "vorname": "Jan"})["betNr"]
    before = client.get_beteiligte(betnr)["rowId"]
    entry = client.create_kommunikation(betnr, {"kommKz": 8, "tlf": "jan@web.de", "bemerkung": "", "online": True})
    changed = client.update_kommunikation(betnr, entry["id"], {**entry, "kommKz": 4, "tlf": "jan@gmx.de"})
    assert changed["tlf"] == "jan@gmx.de" and changed["kommKz"] == 8 and changed["rowId"] != entry["rowId"]
    assert client.get_beteiligte(betnr)["rowId"] == before
    with pytest.raises(BadRequest):
        client.create_kommunikation(betnr, {"kommKz": 99, "tlf": "x"})


# --- Mitarbeiter and Termine --------------------------------------------------------------------------

def test_termine_and_mitarbeiter(sim, cache):
    client = client_for(sim, cache)
    sim.state.add_mitarbeiter("AB", "Anna Berg", "ab@kanzlei.de")
    sim.state.add_mitarbeiter("XY", "Xaver Y", aktiv=False)
    assert [m["kuerzel"] for m in client.list_mitarbeiter(aktiv=True)] == ["AB"]
    assert len(client.list_mitarbeiter()) == 2
    created = client.create_termin({"kuerzel": "AB", "art": "Frist", "datum": "2026-04-01", "ganztaegig": True,
                                    "text": "Berufungsbegründung"})
    assert client.list_termine("AB", date(2026, 3, 1), date(2026, 4, 30)) == [created]
    assert client.list_termine("AB", "2026-04-02", "2026-04-30") == []
    assert client.get_termin(created["frNr"]) == created
    updated = client.update_termin(created["frNr"], {**created, "datum": "2026-04-03", "datumBis": None})
    assert updated["datum"] == "2026-04-03T00:00:00" and updated["rowId"] != created["rowId"]
    client.delete_termin(created["frNr"])
    with pytest.raises(NotFound):
        client.get_termin(created["frNr"])
    assert client.calls["DELETE Termine"] == 1 and client.calls["POST Termine"] == 1


# --- errors, rate limits, secrets ---------------------------------------------------------------------

def test_errors_and_logs_never_contain_secrets(sim, cache, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = AdvowareCredentials(**{**SANDBOX_CREDENTIALS, "password": "Geheim-Passwort-42"})
    bad_client = client_for(sim, cache, credentials=wrong)
    messages = []
    with pytest.raises(AuthError) as failed_auth:
        bad_client.list_mitarbeiter()
    messages.append(str(failed_auth.value))
    client = client_for(sim, cache)
    betnr = client.create_beteiligte({"name": "Krause"})["betNr"]
    token = cache.get(client.token_key).decode()
    entry = client.create_kommunikation(betnr, {"kommKz": 1, "tlf": "030 1"})
    with pytest.raises(Forbidden) as forbidden:
        client._call("DELETE", f"/Beteiligte/{betnr}/Kommunikationen/{entry['id']}", "Kommunikationen")
    with pytest.raises(NotFound) as missing:
        client.get_beteiligte(1)
    sim.tokens.revoke_all()
    sim.kit.add_fault(path="/api/v1/advonet/*", status=401, times=2)
    with pytest.raises(AuthError) as expired:
        client.get_beteiligte(betnr)
    for exc in (forbidden.value, missing.value, expired.value):
        messages.append(str(exc))
        messages.append(repr(exc))
    messages.append(repr(client))
    messages.append(repr(CREDS))
    text = "\n".join(messages + [record.getMessage() for record in caplog.records])
    issued = list(sim.tokens.tokens)  # the token fetched after the revocation
    assert issued
    for secret in (*SECRETS, "Geheim-Passwort-42", token, *issued):
        assert secret not in text
    assert "DELETE /api/v1/advonet/Beteiligte" in str(forbidden.value) and "403" in str(forbidden.value)


def test_rate_limit_answer_pauses_the_shared_gate(sim, cache, redis_url):
    gate = RateGate(redis_url, "advoware-test", per_minute=1000)
    client = client_for(sim, cache, gate=gate)
    # A POST (never retried by the session) shows what the client itself does with a 429.
    sim.kit.add_fault(path="/api/v1/advonet/Beteiligte", method="POST", status=429, retry_after=2, times=1)
    with pytest.raises(RateLimited) as limited:
        client.create_beteiligte({"name": "Zu schnell"})
    assert limited.value.retry_after == 2.0
    assert 0 < cache.pttl("rate_pause:advoware-test") <= 2000
    assert sim.state.beteiligte == {}


def test_our_own_budget_running_out_pauses_nobody(sim, cache, redis_url):
    """`RateGate.wait` giving up is ours, not Advoware's: the caller hears it (`BudgetExhausted`, a
    `RateLimited`), but no other caller is paused — only a server's 429 pauses the shared gate."""
    gate = RateGate(redis_url, "advoware-own", per_minute=1, max_wait=0.2)
    client = client_for(sim, cache, gate=gate)
    client.create_beteiligte({"name": "Erster"})          # takes the minute's one call
    with pytest.raises(BudgetExhausted) as spent:
        client.create_beteiligte({"name": "Zweiter"})
    assert isinstance(spent.value, RateLimited) and spent.value.status is None
    assert cache.pttl("rate_pause:advoware-own") < 0 and not gate.paused()
    assert [b["name"] for b in sim.state.beteiligte.values()] == ["Erster"]


def test_from_settings(sim, cache):
    settings = Settings().replace(**{f"advoware_{k}": v for k, v in SANDBOX_CREDENTIALS.items()},
                                  advoware_base_url=sim.url)
    client = AdvowareClient.from_settings(settings, cache)
    assert client.list_mitarbeiter() == [] and client.token_fetches == 1
    assert "sandbox-password" not in repr(client)
