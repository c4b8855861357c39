"""The proxy and the syncs share one Advoware budget (ADVOWARE_MAX_REQUESTS_PER_MINUTE): 20 concurrent callers
with their own keys and sync traffic through the product's Advoware client, against the simulator's request log.

With 40 calls a minute the proxy may take 20 (PROXY_SHARE_PERCENT=50), one key 10 (PROXY_KEY_SHARE_PERCENT=25).
"""
from __future__ import annotations

import threading
import time

import pytest
import requests

from bitbylaw_tasks.clients import advoware_client
from integrations.errors import RateLimited
from integrations.rategate import RateGate
from tests.proxy_helpers import API, advoware_log, bearer, make_key, proxy_settings, seed, serve_web

PER_MINUTE = 40
CALLERS = 20
SYNC_THREADS, SYNC_CALLS = 4, 5


def _callers(url: str, secrets: list[str], attempts: int, answers: list) -> list[threading.Thread]:
    def call(secret):
        with requests.Session() as session:
            for _ in range(attempts):
                answer = session.get(f"{url}{API}/Mitarbeiter", headers=bearer(secret), timeout=15)
                answers.append((secret, answer.status_code, answer.headers.get("Retry-After")))
                time.sleep(0.02)

    return [threading.Thread(target=call, args=(s,)) for s in secrets]


def _syncs(settings, betnrs: list[int], done: list) -> list[threading.Thread]:
    client = advoware_client(settings)  # what a sync uses: the shared gate's polite wait

    def run(offset):
        for i in range(SYNC_CALLS):
            client.get_beteiligte(betnrs[(offset + i) % len(betnrs)])
            done.append(time.monotonic())

    return [threading.Thread(target=run, args=(n,)) for n in range(SYNC_THREADS)]


@pytest.mark.parametrize("syncs_start_late", [False, True], ids=["together", "after-the-callers"])
def test_twenty_callers_and_the_syncs_share_the_gate(sandbox, lock_redis, syncs_start_late):
    betnrs = seed(sandbox, count=5, employees=2)["betNrs"]
    settings = proxy_settings(ADVOWARE_MAX_REQUESTS_PER_MINUTE=PER_MINUTE)
    secrets = [make_key(lock_redis, f"caller-{n}", "read", "Mitarbeiter") for n in range(CALLERS)]
    answers, done = [], []
    with serve_web(settings) as url:
        callers = _callers(url, secrets, attempts=4, answers=answers)
        syncs = _syncs(settings, betnrs, done)
        started = time.monotonic()
        for thread in callers + ([] if syncs_start_late else syncs):
            thread.start()
        if syncs_start_late:  # the callers had every chance to take the whole budget first
            for thread in callers:
                thread.join(30)
            for thread in syncs:
                thread.start()
        for thread in callers + syncs:
            thread.join(60)
        elapsed = time.monotonic() - started
        # the budget is spent: one more call of any kind is refused (a sync would wait for the window)
        with pytest.raises(RateLimited):
            RateGate(settings.lock_redis_url, "advoware", PER_MINUTE, max_wait=0.5).wait()
        late = requests.get(f"{url}{API}/Mitarbeiter", headers=bearer(secrets[0]), timeout=10)
        assert late.status_code == 429 and int(late.headers["Retry-After"]) >= 1

    log = advoware_log(sandbox)
    proxied = [e for e in log if e["path"].endswith("/Mitarbeiter")]
    synced = [e for e in log if "/Beteiligte/" in e["path"]]
    assert elapsed < 60  # everything happened inside one window of the moving minute
    assert len(log) <= PER_MINUTE
    assert len(proxied) <= PER_MINUTE // 2 and len(proxied) == sum(1 for a in answers if a[1] == 200)
    assert len(synced) == SYNC_THREADS * SYNC_CALLS == len(done)  # the syncs were never starved
    assert max(done) - started < 20  # ... nor left waiting for the next window
    refused = [a for a in answers if a[1] == 429]
    assert refused and all(a[2] and int(a[2]) >= 1 for a in refused)
    assert {a[1] for a in answers} <= {200, 429}
    per_key = {s: sum(1 for a in answers if a[0] == s and a[1] == 200) for s in secrets}
    assert max(per_key.values()) <= PER_MINUTE // 4


def test_one_greedy_key_cannot_take_the_other_callers_share(sandbox, lock_redis):
    settings = proxy_settings(ADVOWARE_MAX_REQUESTS_PER_MINUTE=PER_MINUTE)
    greedy = make_key(lock_redis, "greedy", "read", "Mitarbeiter")
    polite = make_key(lock_redis, "polite", "read", "Mitarbeiter")
    with serve_web(settings) as url:
        greedy_answers = [requests.get(f"{url}{API}/Mitarbeiter", headers=bearer(greedy), timeout=10).status_code
                          for _ in range(25)]
        polite_answers = [requests.get(f"{url}{API}/Mitarbeiter", headers=bearer(polite), timeout=10).status_code
                          for _ in range(10)]
    assert greedy_answers == [200] * 10 + [429] * 15
    assert polite_answers == [200] * 10
    assert len(advoware_log(sandbox)) == 20
