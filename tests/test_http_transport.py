"""`integrations.http.send` on its direct urllib3 path, against real local HTTP servers (werkzeug and a raw
socket server): what reaches the server equals what requests sends (query, JSON body, headers, basic auth),
the error mapping, urllib3 `Retry` for idempotent methods only, timeouts, refused and dropped connections,
redirects not followed, and the proxy environment taking requests' path."""
from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections import Counter

import pytest
import requests
from werkzeug.wrappers import Request, Response

from integrations.errors import (ApiError, AuthError, BadRequest, Conflict, Forbidden, Gone, NotFound,
                                 PreconditionFailed, RateLimited, Unavailable)
from integrations.http import Response as Answer
from integrations.http import Timeouts, make_session, send
from integrations.sandbox.kit import ServerThread

QUICK = Timeouts(connect=1.0, read=0.5)


class Script:
    """What the test server answers: per path a list of (status, headers, body) or ("hang", seconds);
    the last entry repeats. Every request is recorded."""

    def __init__(self):
        self.answers: dict[str, list] = {}
        self.seen: list[dict] = []
        self.lock = threading.Lock()

    def app(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            self.seen.append({"method": request.method, "path": request.path, "query": environ["QUERY_STRING"],
                              "headers": dict(request.headers), "body": request.get_data()})
            queue = self.answers.get(request.path) or [(200, {}, b'{"ok": true}')]
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if answer[0] == "hang":
            time.sleep(answer[1])
            answer = (200, {}, b"{}")
        status, headers, body = answer
        headers = dict(headers)
        response = Response(body, status=status, headers=headers,
                            content_type=headers.pop("Content-Type", "application/json"))
        return response(environ, start_response)

    def count(self) -> Counter:
        with self.lock:
            return Counter(f"{s['method']} {s['path']}" for s in self.seen)


@pytest.fixture(scope="module")
def served():
    script = Script()
    server = ServerThread(script.app).start()
    yield script, server.url
    server.stop()


@pytest.fixture
def server(served):
    script, url = served
    with script.lock:
        script.answers.clear()
        script.seen.clear()
    return script, url


def test_query_body_and_headers_reach_the_server_as_requests_sends_them(server):
    script, url = server
    session = make_session()
    session.headers.update({"X-Api-Key": "key-1", "Accept": "application/json"})
    reference = requests.Session()
    reference.headers.update({"X-Api-Key": "key-1", "Accept": "application/json"})
    cases = [
        {"params": [("where[0][type]", "equals"), ("where[0][value]", "Müller & Söhne"), ("maxSize", "2")]},
        {"params": {"kuerzel": "AB C", "from": "2024-05-01", "none": None, "many": ["1", "2"], "n": 7}},
        {"json": {"name": "Ünal", "list": [1, 2.5, None], "nested": {"a": "ß"}}},
        {"json": {"x": 1}, "headers": {"x-api-key": None, "X-Version-Number": "4", "accept": "text/plain"}},
    ]
    for kwargs in cases:
        for sender in ("ours", "requests"):
            if sender == "ours":
                answer = send("test", session, "PUT", f"{url}/api/v1/Thing/1?a=b", timeouts=QUICK, **kwargs)
                assert isinstance(answer, Answer) and answer.json() == {"ok": True}
            else:
                reference.put(f"{url}/api/v1/Thing/1?a=b", timeout=5, **kwargs).raise_for_status()
        ours, theirs = script.seen[-2], script.seen[-1]
        assert ours["query"] == theirs["query"] and ours["body"] == theirs["body"]
        assert ours["path"] == theirs["path"] == "/api/v1/Thing/1"
        skip = {"User-Agent", "Content-Length", "Connection"}  # same product, different library defaults
        assert {k: v for k, v in ours["headers"].items() if k not in skip} == \
            {k: v for k, v in theirs["headers"].items() if k not in skip}, kwargs


def test_basic_auth_and_a_call_with_its_own_authorization(server):
    script, url = server
    session = make_session()
    session.auth = ("admin", "pässwort")
    send("test", session, "GET", f"{url}/x", timeouts=QUICK)
    assert script.seen[-1]["headers"]["Authorization"] == requests.Request(
        "GET", f"{url}/x", auth=("admin", "pässwort")).prepare().headers["Authorization"]
    send("test", session, "GET", f"{url}/x", timeouts=QUICK, headers={"Authorization": "Bearer t"})
    assert script.seen[-1]["headers"]["Authorization"] == "Bearer t"


def test_nan_in_a_json_body_is_refused_before_sending(server):
    script, url = server
    with pytest.raises(ValueError):
        send("test", make_session(), "POST", f"{url}/x", timeouts=QUICK, json={"v": math.nan})
    assert script.seen == []


@pytest.mark.parametrize("status, cls", [(400, BadRequest), (401, AuthError), (403, Forbidden), (404, NotFound),
                                         (409, Conflict), (410, Gone), (412, PreconditionFailed),
                                         (418, BadRequest), (429, RateLimited), (500, Unavailable),
                                         (501, Unavailable)])
def test_error_answers_map_to_the_exception_classes(server, status, cls):
    script, url = server
    body = json.dumps({"versionNumber": 3}).encode() if status == 409 else b"secret body"
    script.answers["/api/v1/Thing/9"] = [(status, {"X-Status-Reason": "why", "Retry-After": "7"}, body)]
    with pytest.raises(ApiError) as caught:
        send("espocrm", make_session(), "POST", f"{url}/api/v1/Thing/9?q=searched", timeouts=QUICK)
    error = caught.value
    assert type(error) is cls and error.status == status and error.reason == "why" and error.system == "espocrm"
    assert str(error) == f"espocrm: POST /api/v1/Thing/9 -> {status} (why)"  # no query string, no body
    if status == 429:
        assert error.retry_after == 7
    if status == 409:
        assert error.payload == {"versionNumber": 3}
    assert error.transient == (status in (429, 500, 501))


def test_502_503_504_are_retried_for_idempotent_methods_only(server):
    script, url = server
    for method in ("GET", "PUT", "DELETE", "POST"):
        script.answers["/flaky"] = [(503, {}, b"")]
        with script.lock:
            script.seen.clear()
        with pytest.raises(Unavailable) as caught:
            send("test", make_session(), method, f"{url}/flaky", timeouts=QUICK)
        assert caught.value.status == 503
        assert script.count()[f"{method} /flaky"] == (1 if method == "POST" else 3), method
    script.answers["/flaky"] = [(502, {}, b""), (504, {}, b""), (200, {}, b'{"n": 1}')]
    with script.lock:
        script.seen.clear()
    assert send("test", make_session(), "GET", f"{url}/flaky", timeouts=QUICK).json() == {"n": 1}
    assert script.count()["GET /flaky"] == 3


def test_429_is_not_retried_inside_the_call(server):
    script, url = server
    script.answers["/limited"] = [(429, {"Retry-After": "1"}, b"")]
    started = time.monotonic()
    with pytest.raises(RateLimited):
        send("test", make_session(), "GET", f"{url}/limited", timeouts=QUICK)
    assert script.count()["GET /limited"] == 1 and time.monotonic() - started < 0.9


def test_a_read_timeout_may_have_been_sent_and_is_not_retried(server):
    script, url = server
    for method in ("GET", "POST"):
        script.answers["/slow"] = [("hang", 1.2)]
        with script.lock:
            script.seen.clear()
        started = time.monotonic()
        with pytest.raises(Unavailable) as caught:
            send("test", make_session(), method, f"{url}/slow", timeouts=QUICK)
        assert time.monotonic() - started < 1.0
        assert caught.value.maybe_sent and caught.value.status is None and "timed out" in str(caught.value)
        assert script.count()[f"{method} /slow"] == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_was_not_sent(server):
    url = f"http://127.0.0.1:{_free_port()}"
    for method in ("GET", "POST"):
        with pytest.raises(Unavailable) as caught:
            send("test", make_session(), method, f"{url}/x", timeouts=QUICK)
        assert not caught.value.maybe_sent and caught.value.status is None
        assert str(caught.value) == f"test: {method} /x connection failed"


class Dropper:
    """A raw TCP server that reads a request and closes the connection without answering."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.recv(65536)
            conn.close()


def test_a_connection_dropped_after_sending_may_have_been_sent_and_is_not_retried():
    dropper = Dropper()
    try:
        for method in ("GET", "POST"):
            before = dropper.accepted
            with pytest.raises(Unavailable) as caught:
                send("test", make_session(), method, f"{dropper.url}/x", timeouts=QUICK)
            assert caught.value.maybe_sent and "connection failed" in str(caught.value)
            time.sleep(0.05)
            assert dropper.accepted - before == 1, method
    finally:
        dropper.sock.close()


def test_a_redirect_is_not_followed(server):
    script, url = server
    script.answers["/moved"] = [(301, {"Location": "https://elsewhere.example/moved"}, b"")]
    with pytest.raises(ApiError) as caught:
        send("test", make_session(), "GET", f"{url}/moved", timeouts=QUICK)
    assert caught.value.status == 301 and not caught.value.transient and "redirect" in str(caught.value)
    assert script.count()["GET /moved"] == 1


def test_answer_reads_like_a_requests_response(server):
    script, url = server
    script.answers["/text"] = [(200, {"Content-Type": "text/plain; charset=latin-1", "X-Thing": "1"},
                                "Grüße".encode("latin-1"))]
    answer = send("test", make_session(), "GET", f"{url}/text", timeouts=QUICK)
    assert answer.status_code == 200 and answer.ok and answer.headers["x-thing"] == "1"
    assert answer.text == "Grüße" and answer.content == "Grüße".encode("latin-1")
    assert answer.request.method == "GET" and answer.request.url == f"{url}/text"
    with pytest.raises(ValueError):
        answer.json()


def test_a_proxy_from_the_environment_is_used_and_no_proxy_bypasses_it(server, monkeypatch):
    """An origin a proxy applies to goes through requests (which speaks to the proxy); NO_PROXY bypasses."""
    script, url = server
    monkeypatch.setenv("HTTP_PROXY", url)  # the test server plays the proxy: it answers itself
    monkeypatch.setenv("NO_PROXY", "")
    send("test", make_session(), "GET", "http://crm.invalid/api/v1/Thing/5", timeouts=QUICK)
    assert script.seen[-1]["path"] == "/api/v1/Thing/5" and script.seen[-1]["headers"]["Host"] == "crm.invalid"
    monkeypatch.setenv("NO_PROXY", "crm.invalid")
    with pytest.raises(Unavailable) as caught:  # bypassed: the direct path cannot resolve the name
        send("test", make_session(), "GET", "http://crm.invalid/api/v1/Thing/6", timeouts=QUICK)
    assert not caught.value.maybe_sent
    assert script.seen[-1]["path"] == "/api/v1/Thing/5"
