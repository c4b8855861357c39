"""The simulators keep HTTP/1.1 connections alive as the real systems do (issue 15, third round), and still close
them when an answer is not framed, when a fault resets them, and when the server stops."""
from __future__ import annotations

import socket

import pytest
import urllib3
from flask import Response, request

from integrations.sandbox.kit import ServerThread, create_sandbox_app


@pytest.fixture
def served():
    app, kit = create_sandbox_app("keep-alive-test", __name__)

    @app.route("/echo", methods=["GET", "PUT", "POST"])
    def echo():
        return {"n": len(request.get_data())}

    @app.post("/ignores-body")
    def ignores_body():
        return "ok"

    @app.get("/streamed")
    def streamed():
        return Response((part for part in (b"a", b"b")), mimetype="text/plain")  # no Content-Length

    server = ServerThread(app, keep_alive=True).start()
    yield server, kit
    server.stop()


def test_one_connection_serves_many_calls_even_when_the_app_leaves_the_body_unread(served):
    server, _ = served
    pool = urllib3.HTTPConnectionPool("127.0.0.1", server.port, maxsize=1)
    for _ in range(3):
        answer = pool.request("PUT", "/echo", body=b"x" * 1000)
        assert answer.status == 200 and answer.json() == {"n": 1000}
        assert "close" not in (answer.headers.get("Connection") or "")
    assert pool.request("POST", "/ignores-body", body=b"y" * 5000).data == b"ok"
    assert pool.request("GET", "/echo").json() == {"n": 0}  # the unread body was not taken for a request
    assert pool.num_connections == 1


def test_an_answer_without_content_length_closes_its_connection(served):
    server, _ = served
    pool = urllib3.HTTPConnectionPool("127.0.0.1", server.port, maxsize=1)
    assert pool.request("GET", "/streamed").data == b"ab"
    assert pool.request("GET", "/echo").json() == {"n": 0}
    assert pool.num_connections == 2


def test_a_reset_fault_drops_the_connection_and_the_next_call_opens_a_new_one(served):
    server, kit = served
    pool = urllib3.HTTPConnectionPool("127.0.0.1", server.port, maxsize=1)
    assert pool.request("GET", "/echo").status == 200
    kit.add_fault(path="/echo", reset=True, times=1)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        pool.request("GET", "/echo", retries=False)
    assert pool.request("GET", "/echo").status == 200
    assert pool.num_connections == 2


def _read_answer(sock) -> bytes:
    """Up to the end of a short answer (head and body may come in two segments); b"" when closed."""
    data = b""
    while b"pong" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    return data


def test_a_stopped_server_answers_nothing_on_a_kept_connection():
    app, _ = create_sandbox_app("keep-alive-stop", __name__)
    app.add_url_rule("/ping", "ping", lambda: "pong")
    server = ServerThread(app, keep_alive=True).start()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"pong" in _read_answer(sock)
        server.stop()
        try:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_answer(sock) == b""  # closed by the server, nothing answered
        except ConnectionError:
            pass  # or reset: either way no answer
    finally:
        sock.close()
