"""The proxy's one-round-trip admission (key still active, gate pause, the key's and all callers' windows, the
shared gate's window, in one Lua script) against a real Redis, the per-process key memory, and over real HTTP
that a remembered key costs no lookup yet a revoked one is refused on its very next call, whatever it asks."""
from __future__ import annotations

import time

import pytest
import requests

from bitbylaw_tasks.proxy import audit, keys
from bitbylaw_tasks.proxy.budget import ALL_WINDOW, KEY_WINDOW, KeyGone, ProxyBudget
from bitbylaw_tasks.settings import get_settings
from integrations.errors import RateLimited
from integrations.rategate import RateGate
from tests.proxy_helpers import API, advoware_log, bearer, make_key, serve_web

PER_MINUTE = 8   # the proxy may take 4 a minute, one key 2


@pytest.fixture
def gate(lock_redis):
    return RateGate(get_settings().lock_redis_url, "advoware", PER_MINUTE, max_wait=0.3)


@pytest.fixture
def budget(gate, lock_redis):
    return ProxyBudget(gate, lock_redis, PER_MINUTE, 50, 25)


@pytest.fixture
def key(lock_redis):
    made, secret = keys.create(lock_redis, "caller", "read", ["Beteiligte"])
    return made, keys.digest(secret)


def _windows(lock_redis, key_id: str) -> tuple[int, int]:
    return lock_redis.zcard(KEY_WINDOW + key_id), lock_redis.zcard(ALL_WINDOW)


def test_an_admitted_call_charges_both_proxy_windows_and_the_gate_as_limits_reads_it(budget, gate, key, lock_redis):
    budget.admit(key[0].id, key[1])
    assert _windows(lock_redis, key[0].id) == (1, 1)
    assert gate.used() == 1   # `limits`' own reader sees the proxy's unit in the gate's window


def test_the_key_share_refuses_without_charging_the_gate(budget, gate, key, lock_redis):
    budget.admit(key[0].id, key[1])
    budget.admit(key[0].id, key[1])
    with pytest.raises(RateLimited) as refused:
        budget.admit(key[0].id, key[1])
    assert 0 < refused.value.retry_after <= 60
    assert _windows(lock_redis, key[0].id) == (2, 2) and gate.used() == 2


def test_a_spent_gate_refuses_and_charges_nothing(budget, gate, key, lock_redis):
    for _ in range(PER_MINUTE):   # the syncs took the whole budget
        assert gate.try_acquire() is None
    with pytest.raises(RateLimited) as refused:
        budget.admit(key[0].id, key[1])
    assert 55 < refused.value.retry_after <= 60   # until the oldest of the gate's units leaves the window
    assert _windows(lock_redis, key[0].id) == (0, 0) and gate.used() == PER_MINUTE
    with pytest.raises(RateLimited):   # and the gate is still exactly as full: a sync still cannot pass
        gate.wait()


def test_the_gate_is_charged_by_the_proxy_for_the_syncs_too(budget, gate, key, lock_redis):
    other, other_secret = keys.create(lock_redis, "other", "read", ["Beteiligte"])
    for _ in range(2):
        budget.admit(key[0].id, key[1])
        budget.admit(other.id, keys.digest(other_secret))
    for _ in range(PER_MINUTE - 4):
        assert gate.try_acquire() is None
    assert gate.try_acquire() is not None   # 4 proxied + 4 syncs = the budget


def test_a_paused_gate_refuses_and_charges_nothing(budget, gate, key, lock_redis):
    gate.pause(3)
    with pytest.raises(RateLimited) as refused:
        budget.admit(key[0].id, key[1])
    assert 2 < refused.value.retry_after <= 3
    assert _windows(lock_redis, key[0].id) == (0, 0) and gate.used() == 0


@pytest.mark.parametrize("change", ["revoked", "deleted", "wrong digest"])
def test_a_key_no_longer_valid_is_refused_before_any_window(budget, gate, key, lock_redis, change):
    made, key_digest = key
    gate.pause(3)   # the key check comes first: a revoked key hears 401, not 429
    if change == "revoked":
        keys.revoke(lock_redis, "caller")
    elif change == "deleted":
        lock_redis.delete(keys.KEY_PREFIX + made.id)
    else:
        key_digest = keys.digest("bbp_" + made.id + "_" + "A" * 43)
    with pytest.raises(KeyGone):
        budget.admit(made.id, key_digest)
    lock_redis.delete(gate.pause_key)
    assert _windows(lock_redis, made.id) == (0, 0) and gate.used() == 0


def test_key_memory_recalls_only_the_right_secret_and_stays_bounded(lock_redis):
    memory = keys.KeyMemory(max_keys=2)
    made, secret = keys.create(lock_redis, "one", "read", ["Beteiligte"])
    assert memory.recall(secret) is None
    memory.remember(made, keys.digest(secret))
    assert memory.recall(secret) == (made, keys.digest(secret))
    assert memory.recall(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None   # same id, wrong secret
    assert memory.recall("not-a-key") is None
    for n in range(2):
        other, other_secret = keys.create(lock_redis, f"k{n}", "read", ["Beteiligte"])
        memory.remember(other, keys.digest(other_secret))
    assert len(memory._known) <= 2
    memory.forget(other.id)
    assert memory.recall(other_secret) is None


def _command_calls(lock_redis) -> dict[str, int]:
    return {name: stats["calls"] for name, stats in lock_redis.info("commandstats").items()}


def test_a_remembered_key_costs_one_round_trip_per_call(sandbox, lock_redis):
    secret = make_key(lock_redis, "assistant", "read", "Mitarbeiter")
    with serve_web() as url, requests.Session() as session:
        assert session.get(f"{url}{API}/Mitarbeiter", headers=bearer(secret), timeout=10).status_code == 200
        time.sleep(0.2)   # the first call's audit write (after its answer)
        before = _command_calls(lock_redis)
        for _ in range(5):
            assert session.get(f"{url}{API}/Mitarbeiter", headers=bearer(secret), timeout=10).status_code == 200
        time.sleep(0.2)
        after = _command_calls(lock_redis)
    spent = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    assert "cmdstat_hgetall" not in spent   # no key lookup
    assert spent["cmdstat_evalsha"] == 5    # one admission script per call, nothing else before the answer
    assert len(advoware_log(sandbox)) == 6


@pytest.mark.parametrize("target", ["/Mitarbeiter", "/Termine", "/../Mitarbeiter"],
                         ids=["forwarded", "allow-list refusal", "traversal refusal"])
def test_a_remembered_key_revoked_is_refused_on_its_very_next_call(sandbox, lock_redis, target):
    secret = make_key(lock_redis, "assistant", "read", "Mitarbeiter")
    with serve_web() as url:
        assert requests.get(f"{url}{API}/Mitarbeiter", headers=bearer(secret), timeout=10).status_code == 200
        keys.revoke(lock_redis, "assistant")
        from tests.proxy_helpers import raw_call

        status, _, body = raw_call(url, "GET", API + target, [("Authorization", f"Bearer {secret}")])
        time.sleep(0.2)
    assert status == 401 and b"bad_key" in body
    assert len(advoware_log(sandbox)) == 1
    last = audit.read(lock_redis)[-1]
    assert (last.status, last.key, last.reason) == (401, audit.NO_KEY, "bad_key")


def test_a_remembered_write_key_revoked_cannot_send_a_body(sandbox, lock_redis):
    secret = make_key(lock_redis, "writer", "write", "Termine", "Mitarbeiter")
    with serve_web() as url:
        assert requests.get(f"{url}{API}/Mitarbeiter", headers=bearer(secret), timeout=10).status_code == 200
        keys.revoke(lock_redis, "writer")
        # bodies the checks after the key would refuse (415, 400, 413): the key is refused first, unread
        answers = [requests.post(f"{url}{API}/Termine", headers={**bearer(secret), "Content-Type": "text/plain"},
                                 data=b"not json", timeout=10),
                   requests.post(f"{url}{API}/Termine", headers={**bearer(secret), "Content-Type": "application/json"},
                                 data=iter([b'{"betreff": ', b'"x"']), timeout=10),
                   requests.put(f"{url}{API}/Termine/1", headers={**bearer(secret), "Content-Type": "application/json"},
                                data=b"[" * (2 << 20), timeout=10)]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert len(advoware_log(sandbox)) == 1


def test_a_new_process_memory_never_outlives_a_revocation_across_workers(sandbox, lock_redis):
    """Two web processes (two apps, two memories) both remember the key; a revocation reaches both at once."""
    secret = make_key(lock_redis, "assistant", "read", "Mitarbeiter")
    with serve_web() as first, serve_web() as second:
        for url in (first, second):
            assert requests.get(f"{url}{API}/Mitarbeiter", headers=bearer(secret), timeout=10).status_code == 200
        keys.revoke(lock_redis, "assistant")
        assert [requests.get(f"{url}{API}/Mitarbeiter", headers=bearer(secret), timeout=10).status_code
                for url in (first, second)] == [401, 401]
    assert len(advoware_log(sandbox)) == 2


def test_the_body_of_a_remembered_key_revoked_is_never_read(sandbox, lock_redis):
    """At the service itself: the body is read only once Redis confirmed the key during this call."""
    from bitbylaw_tasks.proxy.service import AdvowareProxy, ProxyRequest

    secret = make_key(lock_redis, "writer", "write", "Termine", "Mitarbeiter")
    proxy = AdvowareProxy.from_settings(get_settings())
    read = []

    def request(method, path, length=None, transfer=None):
        headers = {"x-api-key": secret, "content-type": "application/json",
                   **({"transfer-encoding": transfer} if transfer else {})}
        body = b'{"betreff": "x"}' if method != "GET" else b""
        return ProxyRequest(method, "/advoware/api/v1/advonet" + path, headers, length,
                            lambda limit: read.append(limit) or body)

    assert proxy.handle(request("GET", "/Mitarbeiter")).status == 200
    assert proxy.handle(request("POST", "/Termine", length=16)).status != 401 and read  # read while active
    read.clear()
    keys.revoke(lock_redis, "writer")
    assert [proxy.handle(request("POST", "/Termine", length=16)).status,
            proxy.handle(request("PUT", "/Termine/1", transfer="chunked")).status] == [401, 401]
    assert read == []


def test_concurrent_admissions_and_syncs_never_exceed_any_window(lock_redis):
    """16 threads, 4 keys and 4 sync threads race for a budget of 40 a minute: every window holds exactly."""
    import threading

    per_minute = 40
    gate = RateGate(get_settings().lock_redis_url, "advoware", per_minute, max_wait=0.3)
    budget = ProxyBudget(gate, lock_redis, per_minute, 50, 25)   # proxy 20, one key 10
    made = [keys.create(lock_redis, f"racer-{n}", "read", ["Beteiligte"]) for n in range(4)]
    admitted, synced, lock = {k.id: 0 for k, _ in made}, [0], threading.Lock()

    def caller(key, secret):
        for _ in range(15):
            try:
                budget.admit(key.id, keys.digest(secret))
            except RateLimited:
                continue
            with lock:
                admitted[key.id] += 1

    def sync():
        for _ in range(15):
            if gate.try_acquire() is None:
                with lock:
                    synced[0] += 1

    threads = [threading.Thread(target=caller, args=made[n % 4]) for n in range(16)]
    threads += [threading.Thread(target=sync) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    proxied = sum(admitted.values())
    assert 0 < proxied <= 20 and max(admitted.values()) <= 10         # the proxy's share, one key's share
    assert gate.used() == proxied + synced[0] == per_minute             # 60 sync attempts alone fill the gate
    assert lock_redis.zcard(ALL_WINDOW) == proxied                      # nothing charged for a refusal
    assert all(lock_redis.zcard(KEY_WINDOW + key_id) == n for key_id, n in admitted.items())
