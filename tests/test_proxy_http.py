"""The Advoware proxy over real HTTP: the web app (proxy included) in front of the Advoware simulator, and in front
of a hostile upstream that echoes credentials. Every rule of issue 13: 401/403/404/405/413/415/429/502/504,
headers both ways, the token never returned, the shared token refreshed once, the audit and the metrics."""
from __future__ import annotations

import json
import logging
import socket
import time

import pytest
import requests
from flask import Flask, jsonify, request

from bitbylaw_tasks import cli
from bitbylaw_tasks.proxy import audit, keys
from tests.proxy_helpers import (API, advoware_log, bearer, cached_tokens, make_key, proxy_settings, raw_call, seed,
                                 serve_web, upstream_settings)


@pytest.fixture
def web(sandbox, lock_redis):
    with serve_web() as url:
        yield url


@pytest.fixture
def read_key(lock_redis):
    return make_key(lock_redis, "assistant", "read", "Beteiligte", "Mitarbeiter", "Termine")


@pytest.fixture
def write_key(lock_redis):
    return make_key(lock_redis, "writer", "write", "Beteiligte", "Termine")


def _doc(response) -> dict:
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


# --- forwarding ---
def test_get_is_forwarded_with_the_shared_token(sandbox, web, read_key, lock_redis):
    betnr = seed(sandbox, count=2)["betNrs"][0]
    response = requests.get(f"{web}{API}/Beteiligte/{betnr}", headers=bearer(read_key), timeout=10)
    direct = sandbox.state("advoware").get_beteiligte_api(betnr)
    assert response.status_code == 200 and response.json() == [direct]
    assert response.headers["Cache-Control"] == "no-store"
    assert [(e["method"], e["path"]) for e in advoware_log(sandbox)] == [("GET", f"/api/v1/advonet/Beteiligte/{betnr}")]
    token = cached_tokens(lock_redis)
    assert len(token) == 1 and token[0] not in response.text and token[0] not in str(response.headers)


def test_x_api_key_header_and_query_string(sandbox, web, read_key):
    made = seed(sandbox, employees=2, termine_per_employee=3)
    kuerzel = made["kuerzel"][0]
    response = requests.get(f"{web}{API}/Termine", params={"kuerzel": kuerzel, "from": "2000-01-01", "to": "2100-01-01"},
                            headers={"X-Api-Key": read_key}, timeout=10)
    assert response.status_code == 200
    assert response.json() and {t["kuerzel"] for t in response.json()} == {kuerzel}
    frnr = response.json()[0]["frNr"]
    one = requests.get(f"{web}{API}/Termine?frnr={frnr}", headers={"X-Api-Key": read_key}, timeout=10)
    assert one.status_code == 200 and one.json()[0]["frNr"] == frnr


def test_write_key_creates_updates_and_sees_advoware_refusals(sandbox, web, write_key):
    created = requests.post(f"{web}{API}/Beteiligte", json={"name": "Proxy GmbH", "rechtsform": "GmbH"},
                            headers=bearer(write_key), timeout=10)
    assert created.status_code == 201
    betnr = created.json()["betNr"]
    assert sandbox.state("advoware").get_beteiligte(betnr)["name"] == "Proxy GmbH"
    record = requests.get(f"{web}{API}/Beteiligte/{betnr}", headers=bearer(write_key), timeout=10).json()[0]
    updated = requests.put(f"{web}{API}/Beteiligte/{betnr}", json={**record, "name": "Proxy AG"},
                           headers=bearer(write_key), timeout=10)
    assert updated.status_code == 200 and updated.json()[0]["name"] == "Proxy AG"
    refused = requests.delete(f"{web}{API}/Beteiligte/{betnr}", headers=bearer(write_key), timeout=10)
    assert refused.status_code == 403 and "not permitted" in _doc(refused)["Message"]   # Advoware's own 403
    missing = requests.get(f"{web}{API}/Beteiligte/999999", headers=bearer(write_key), timeout=10)
    assert missing.status_code == 404
    bad = requests.put(f"{web}{API}/Termine", json={"text": "no frNr"}, headers=bearer(write_key), timeout=10)
    assert bad.status_code == 400 and _doc(bad)["Message"] == "frNr is required"


# --- 401 ---
@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer nope"}, {"X-Api-Key": "bbp_0000000000000000_" + "a" * 43},
    {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "},
])
def test_no_or_bad_key_is_401_and_nothing_is_forwarded(sandbox, web, read_key, headers):
    seed(sandbox, count=1)
    response = requests.get(f"{web}{API}/Beteiligte/100001", headers=headers, timeout=10)
    assert response.status_code == 401 and _doc(response)["status"] == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert advoware_log(sandbox) == []


def test_a_key_differing_between_the_two_headers_is_401(sandbox, web, read_key, lock_redis):
    other = make_key(lock_redis, "other", "read", "Beteiligte")
    response = requests.get(f"{web}{API}/Mitarbeiter", headers={**bearer(read_key), "X-Api-Key": other}, timeout=10)
    assert response.status_code == 401 and advoware_log(sandbox) == []


def test_a_revoked_key_is_refused_at_once(sandbox, web, read_key, lock_redis):
    assert requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(read_key), timeout=10).status_code == 200
    keys.revoke(lock_redis, "assistant")
    assert requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(read_key), timeout=10).status_code == 401
    assert len(advoware_log(sandbox)) == 1


def test_a_secret_with_a_valid_id_but_wrong_random_part_is_401(sandbox, web, read_key):
    forged = read_key[:-5] + ("AAAAA" if not read_key.endswith("AAAAA") else "BBBBB")
    assert requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(forged), timeout=10).status_code == 401
    assert advoware_log(sandbox) == []


# --- 403 / 404 ---
@pytest.mark.parametrize("target, reason", [
    (f"{API}/Beteiligte/../../Token", "traversal"),
    (f"{API}/../Token", "traversal"),
    (f"{API}/Beteiligte/%2e%2e/%2e%2e/Token", "traversal"),
    (f"{API}/Beteiligte/%2E%2E%2FToken", "traversal"),
    (f"{API}/Beteiligte/%252e%252e/Token", "double_encoding"),
    (f"{API}/Beteiligte/..%5c..%5cToken", "backslash"),
    (f"{API}/Beteiligte\\..\\Token", "backslash"),
    ("http://127.0.0.1:1/advoware/api/v1/advonet/Beteiligte/1", "absolute_url"),
    (f"{API}/http://127.0.0.1:1/x", "absolute_url"),
    (f"{API}//127.0.0.1:1/x", "absolute_url"),
    ("/advoware/api/v1/Token", "outside_api"),
    (f"{API}/Akten/1", "allow_list"),
    (f"{API}/BeteiligteX/1", "allow_list"),
])
def test_refused_targets_are_403_and_never_forwarded(sandbox, web, read_key, target, reason):
    status, headers, body = raw_call(web, "GET", target, [("Authorization", f"Bearer {read_key}")])
    doc = json.loads(body)
    assert (status, doc["reason"]) == (403, reason) and headers["content-type"] == "application/json"
    assert advoware_log(sandbox) == []


def test_unknown_proxy_paths_are_404(sandbox, web, read_key):
    status, _, body = raw_call(web, "GET", "/advoware/api/v2/advonet/Beteiligte", [("X-Api-Key", read_key)])
    assert status == 404 and json.loads(body)["reason"] == "not_found" and advoware_log(sandbox) == []


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_read_key_may_not_write(sandbox, web, read_key, method):
    status, _, body = raw_call(web, method, f"{API}/Beteiligte" + ("" if method == "POST" else "/1"),
                               [("X-Api-Key", read_key), ("Content-Type", "application/json")],
                               b"{}" if method != "DELETE" else None)
    assert status == 403 and json.loads(body)["reason"] == "scope" and advoware_log(sandbox) == []


def test_wildcard_prefix(sandbox, web, lock_redis):
    secret = make_key(lock_redis, "komm", "write", "Beteiligte/*/Kommunikationen")
    betnr = seed(sandbox, count=1)["betNrs"][0]
    made = requests.post(f"{web}{API}/Beteiligte/{betnr}/Kommunikationen", json={"kommKz": 4, "tlf": "a@b.test"},
                         headers=bearer(secret), timeout=10)
    assert made.status_code == 201
    assert requests.get(f"{web}{API}/Beteiligte/{betnr}", headers=bearer(secret), timeout=10).status_code == 403


# --- 405, 413, 415, 400 ---
@pytest.mark.parametrize("method", ["PATCH", "OPTIONS", "HEAD", "TRACE", "PROPFIND"])
def test_other_methods_are_405(sandbox, web, write_key, method):
    status, headers, body = raw_call(web, method, f"{API}/Beteiligte/1", [("X-Api-Key", write_key)])
    assert status == 405 and headers["allow"] == "GET, POST, PUT, DELETE"
    if method != "HEAD":
        assert json.loads(body)["reason"] == "method"
    assert advoware_log(sandbox) == []


def test_oversized_bodies_are_413_declared_or_chunked(sandbox, lock_redis):
    secret = make_key(lock_redis, "writer", "write", "Beteiligte")
    with serve_web(proxy_settings(PROXY_MAX_BODY_BYTES=1000)) as web:
        big = json.dumps({"name": "x" * 2000}).encode()
        headers = [("X-Api-Key", secret), ("Content-Type", "application/json")]
        assert raw_call(web, "POST", f"{API}/Beteiligte", headers, big)[0] == 413
        assert raw_call(web, "POST", f"{API}/Beteiligte", headers, big, chunked=True)[0] == 413
        small = json.dumps({"name": "Klein KG"}).encode()
        assert raw_call(web, "POST", f"{API}/Beteiligte", headers, small, chunked=True)[0] == 201
    assert [e["method"] for e in advoware_log(sandbox)] == ["POST"]


@pytest.mark.parametrize("method, ctype, body, status", [
    ("POST", "text/plain", b"{}", 415), ("POST", "application/json", b"{nope", 400),
    ("GET", "application/json", b"{}", 400),
])
def test_bodies_must_be_json_on_post_and_put_only(sandbox, web, write_key, method, ctype, body, status):
    got = raw_call(web, method, f"{API}/Beteiligte", [("X-Api-Key", write_key), ("Content-Type", ctype)], body)
    assert got[0] == status and advoware_log(sandbox) == []


# --- 429 ---
def test_a_key_past_its_share_gets_429_with_retry_after(sandbox, lock_redis):
    secret = make_key(lock_redis, "greedy", "read", "Mitarbeiter")
    with serve_web(proxy_settings(ADVOWARE_MAX_REQUESTS_PER_MINUTE=20)) as web:  # one key: 5 a minute
        answers = [requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(secret), timeout=10) for _ in range(8)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
    assert all(1 <= int(a.headers["Retry-After"]) <= 60 for a in answers[5:])
    assert _doc(answers[-1])["reason"] == "budget"
    assert len(advoware_log(sandbox)) == 5


def test_advoware_429_is_passed_on_and_pauses_the_shared_gate(sandbox, web, read_key, lock_redis):
    requests.post(f"{sandbox.url('advoware')}/_sandbox/faults", json={"path": "/api/v1/advonet/Mitarbeiter",
                  "status": 429, "retry_after": 7, "times": 1}, timeout=5).raise_for_status()
    answer = requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(read_key), timeout=10)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    assert 0 < lock_redis.pttl("rate_pause:advoware") <= 7000
    again = requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(read_key), timeout=10)
    assert again.status_code == 429 and 1 <= int(again.headers["Retry-After"]) <= 7
    assert len(advoware_log(sandbox)) == 1  # the second call waited for the pause instead of hitting Advoware


# --- 502 / 504 ---
def _fault(sandbox, **spec):
    requests.post(f"{sandbox.url('advoware')}/_sandbox/faults", json=spec, timeout=5).raise_for_status()


def test_advoware_failing_is_502(sandbox, web, read_key):
    _fault(sandbox, path="/api/v1/advonet/Mitarbeiter", status=500, times=1)
    answer = requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(read_key), timeout=10)
    assert answer.status_code == 502 and _doc(answer)["upstream_status"] == 500
    _fault(sandbox, path="/api/v1/advonet/Mitarbeiter", reset=True, times=1)
    assert requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(read_key), timeout=10).status_code == 502
    assert len(advoware_log(sandbox)) == 2  # one request per call: no transport retry behind the caller's back


def test_advoware_unreachable_is_502(sandbox, lock_redis):
    secret = make_key(lock_redis, "a", "read", "Mitarbeiter")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with serve_web(proxy_settings(SANDBOX_ADVOWARE_PORT=closed_port)) as web:
        answer = requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(secret), timeout=10)
    assert answer.status_code == 502 and _doc(answer)["reason"] == "advoware_unavailable"


def test_advoware_slow_is_504(sandbox, lock_redis):
    secret = make_key(lock_redis, "a", "read", "Mitarbeiter")
    with serve_web(proxy_settings(PROXY_READ_TIMEOUT=0.5)) as web:
        requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(secret), timeout=10)  # token fetched, fast
        _fault(sandbox, path="/api/v1/advonet/Mitarbeiter", hang_s=1.5, times=1)
        answer = requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(secret), timeout=10)
    assert answer.status_code == 504 and _doc(answer)["reason"] == "advoware_timeout"


def test_an_answer_over_the_size_limit_is_502(sandbox, lock_redis):
    secret = make_key(lock_redis, "a", "read", "Mitarbeiter")
    seed(sandbox, employees=30)
    with serve_web(proxy_settings(PROXY_MAX_RESPONSE_BYTES=2000)) as web:
        answer = requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(secret), timeout=10)
        assert answer.status_code == 502 and _doc(answer)["reason"] == "answer_too_large"
        ok = requests.get(f"{web}{API}/Mitarbeiter?aktiv=false", headers=bearer(secret), timeout=10)
        assert ok.status_code == 200 and len(ok.content) <= 2000


# --- the shared token ---
def test_the_token_is_refreshed_once_on_401(sandbox, web, read_key, lock_redis):
    tokens_url = f"{sandbox.url('advoware')}/_sandbox/tokens"
    assert requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(read_key), timeout=10).status_code == 200
    first = cached_tokens(lock_redis)
    requests.delete(tokens_url, timeout=5)  # Advoware forgets every token (a restart)
    assert requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(read_key), timeout=10).status_code == 200
    assert requests.get(tokens_url, timeout=5).json()["fetches"] == 2
    assert cached_tokens(lock_redis) != first
    _fault(sandbox, path="/api/v1/advonet/Mitarbeiter", status=401, times=2)
    answer = requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(read_key), timeout=10)
    assert answer.status_code == 502 and _doc(answer)["upstream_status"] == 401  # never the caller's 401
    assert requests.get(tokens_url, timeout=5).json()["fetches"] == 3  # refreshed once, not in a loop


# --- a hostile upstream: headers both ways, the token, scrubbing ---
HOSTILE_TOKEN = "hostile-token-" + "Q" * 40


def hostile_advoware() -> Flask:
    """An 'Advoware' that echoes what it received, sets cookies and auth challenges, and puts the token and
    token-like strings into its answers."""
    app = Flask("hostile")

    @app.post("/api/v1/Token")
    def token():
        return jsonify({"access_token": HOSTILE_TOKEN, "token_type": "bearer", "expires_in": 3600})

    @app.route("/api/v1/advonet/<path:path>", methods=["GET", "POST", "PUT", "DELETE"])
    def echo(path):
        received = {k.lower(): v for k, v in request.headers.items()}
        headers = {"Set-Cookie": "ASP.NET_SessionId=abc", "WWW-Authenticate": "Bearer", "X-Token": HOSTILE_TOKEN,
                   "Server": "IIS", "X-Echo-Auth": received.get("authorization", ""), "ETag": '"v1"',
                   "Connection": "close, X-Token"}
        if path == "error":
            body = {"Message": f"denied for Bearer {HOSTILE_TOKEN}", "access_token": "abc",
                    "trace": "session eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln and key " + "k" * 40}
            return jsonify(body), 400, headers
        if path == "crash":
            return f"<html>stack trace token={HOSTILE_TOKEN}</html>", 500, headers
        return jsonify({"received": received, "args": request.args, "echo": HOSTILE_TOKEN}), 200, headers

    return app


@pytest.fixture
def hostile(sandbox, lock_redis):
    from integrations.sandbox.kit import ServerThread

    server = ServerThread(hostile_advoware()).start()
    settings = upstream_settings(server.url)
    secret = make_key(lock_redis, "probe", "write", "Beteiligte", "error", "crash")
    with serve_web(settings) as web:
        yield web, secret
    server.stop()


def test_headers_are_stripped_both_ways_and_the_token_never_returns(hostile):
    web, secret = hostile
    sent = [("Authorization", f"Bearer {secret}"), ("Cookie", "session=caller"), ("X-Api-Key", secret),
            ("Proxy-Authorization", "Basic eDp5"), ("Connection", "close, If-Match"), ("If-Match", '"x"'),
            ("Keep-Alive", "timeout=5"), ("Upgrade", "h2c"), ("TE", "trailers"), ("X-Forwarded-For", "10.0.0.1"),
            ("Accept-Language", "de-DE"), ("If-None-Match", '"v0"')]
    status, headers, body = raw_call(web, "GET", f"{API}/Beteiligte/1?q=1", sent)
    assert status == 200
    received = json.loads(body)["received"]
    assert received["authorization"] == "Bearer [redacted]"   # the product's token, and only that, was sent ...
    assert secret not in json.dumps(received)                  # ... never the caller's key
    for name in ("cookie", "x-api-key", "proxy-authorization", "if-match", "keep-alive", "upgrade", "te",
                 "x-forwarded-for"):
        assert name not in received, name
    assert received["accept-language"] == "de-DE" and received["if-none-match"] == '"v0"'
    for name in ("set-cookie", "www-authenticate", "x-token", "x-echo-auth", "server"):
        assert name not in headers or name == "server" and "IIS" not in headers[name], name
    assert headers["etag"] == '"v1"'
    everything = body.decode() + json.dumps(headers)
    assert HOSTILE_TOKEN not in everything and json.loads(body)["echo"] == "[redacted]"


def test_error_bodies_are_scrubbed(hostile):
    web, secret = hostile
    status, _, body = raw_call(web, "GET", f"{API}/error", [("X-Api-Key", secret)])
    doc = json.loads(body)
    assert status == 400 and HOSTILE_TOKEN not in body.decode() and "eyJ" not in body.decode()
    assert doc["access_token"] == "[redacted]" and "k" * 40 not in body.decode()
    status, _, body = raw_call(web, "GET", f"{API}/crash", [("X-Api-Key", secret)])
    assert status == 502 and HOSTILE_TOKEN not in body.decode() and json.loads(body)["upstream_status"] == 500


# --- audit, log, metrics ---
def audit_entries(lock_redis, count: int, timeout: float = 5.0) -> list:
    """The audit entries once `count` are there (each is written right after its answer was sent)."""
    deadline = time.monotonic() + timeout
    while len(entries := audit.read(lock_redis)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return entries

class _Lines(logging.Handler):
    """The audit logger's own records, caught on that logger (not through the root logger, whose handlers other
    tests of the session may have configured: the quiet filter, Celery's set-up)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_every_call_is_audited_without_bodies_or_query_values(sandbox, web, read_key, write_key, lock_redis, capsys):
    betnr = seed(sandbox, count=1)["betNrs"][0]
    proxy_log, caught = logging.getLogger("bitbylaw_tasks.proxy"), _Lines()
    old_level = proxy_log.level
    proxy_log.setLevel(logging.INFO)
    proxy_log.addHandler(caught)
    requests.get(f"{web}{API}/Beteiligte/{betnr}?secretquery=Musterfrau", headers=bearer(read_key), timeout=10)
    requests.post(f"{web}{API}/Beteiligte", json={"name": "Geheim GmbH"}, headers=bearer(read_key), timeout=10)
    requests.post(f"{web}{API}/Beteiligte", json={"name": "Geheim GmbH"}, headers=bearer(write_key), timeout=10)
    requests.get(f"{web}{API}/Beteiligte/{betnr}", timeout=10)
    entries = audit_entries(lock_redis, 4)
    proxy_log.removeHandler(caught)
    proxy_log.setLevel(old_level)
    # Each entry is written after its answer went out, so two quick calls may land in either order.
    by_call = {(e.key, e.method, e.status): e for e in entries}
    assert sorted((e.key, e.method, e.path, e.status, e.reason) for e in entries) == sorted([
        ("assistant", "GET", "advonet/Beteiligte/{id}", 200, "forwarded"),
        ("assistant", "POST", "advonet/Beteiligte", 403, "scope"),
        ("writer", "POST", "advonet/Beteiligte", 201, "forwarded"),
        ("-", "GET", "-", 401, "no_key")])
    read, written = by_call[("assistant", "GET", 200)], by_call[("writer", "POST", 201)]
    assert read.bytes_out > 0 and written.bytes_in == len(json.dumps({"name": "Geheim GmbH"}))
    assert all(e.ms >= 0 for e in entries) and read.key_id == keys.find(lock_redis, "assistant").id
    stored = json.dumps([list(f.items()) for _, f in lock_redis.xrange(audit.STREAM)], default=str)
    lines = [r.getMessage() for r in caught.records]
    assert len(lines) == 4
    for text in (stored, "\n".join(lines)):
        assert "Musterfrau" not in text and "secretquery" not in text and "Geheim" not in text
        assert str(betnr) not in text and read_key not in text
    metrics = requests.get(f"{web}/metrics", timeout=10).text
    for line in ('bitbylaw_proxy_requests_total{key="assistant",status="200"} 1',
                 'bitbylaw_proxy_requests_total{key="assistant",status="403"} 1',
                 'bitbylaw_proxy_requests_total{key="writer",status="201"} 1',
                 'bitbylaw_proxy_requests_total{key="-",status="401"} 1',
                 'bitbylaw_api_calls_total{system="advoware"} 2'):  # the two forwarded calls, counted by the audit
        assert line in metrics
    capsys.readouterr()
    assert cli.main(["proxy", "audit", "--key", "assistant", "--since", "5m"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "advonet/Beteiligte/{id}" in out[0] and " 403 " in out[1]
    assert cli.main(["proxy", "audit", "--since", "2000-01-01T00:00:00Z", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    assert cli.main(["proxy", "audit", "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out == ""


def test_forward_reuses_its_connection_and_drops_an_unread_one(sandbox, lock_redis):
    """Keep-alive to Advoware (a TLS handshake per call would cost more than the proxy), except after an answer
    that was not read to the end. The upstream is a keep-alive HTTP/1.1 server (the simulator's werkzeug server
    closes every connection) that notes which connection (client port) each call came on."""
    import http.server
    import threading

    from bitbylaw_tasks.clients import advoware_client
    from integrations.advoware import AnswerTooLarge

    ports = []

    class KeepAlive(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, doc):
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # the token
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._send({"access_token": HOSTILE_TOKEN, "expires_in": 3600})

        def do_GET(self):
            ports.append(self.client_address[1])
            self._send(["x" * int(self.path.rsplit("/", 1)[1])])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), KeepAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = advoware_client(upstream_settings(f"http://127.0.0.1:{server.server_port}"))
        for _ in range(3):
            assert client.forward("GET", "/10", admit=lambda: None).status == 200
        with pytest.raises(AnswerTooLarge):
            client.forward("GET", "/5000", admit=lambda: None, max_bytes=100)
        after = client.forward("GET", "/10", admit=lambda: None)
    finally:
        server.shutdown()
        server.server_close()
    assert json.loads(after.body) == ["x" * 10]  # not the rest of the big answer
    assert ports[0] == ports[1] == ports[2] == ports[3]  # one connection for the first four calls
    assert ports[4] != ports[3]  # the half-read answer's connection was dropped, not reused


def test_redis_down_is_503_json(sandbox):
    from bitbylaw_tasks.devredis import PrivateRedis

    private = PrivateRedis().start()
    try:
        settings = proxy_settings(REDIS_LOCK_URL=private.url(1), REDIS_BROKER_URL=private.url(0))
        import redis as redis_lib

        secret = make_key(redis_lib.Redis.from_url(private.url(1)), "a", "read", "Mitarbeiter")
        with serve_web(settings) as web:
            assert requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(secret), timeout=10).status_code == 200
            private.stop()
            down = requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(secret), timeout=30)
    finally:
        private.stop()
    assert down.status_code == 503 and _doc(down)["reason"] == "unavailable"
