"""The `/_sandbox/*` admin API every simulator shares, and a thread that serves a simulator over HTTP.

A simulator is a Flask app built with `create_sandbox_app()`. The kit adds:
- per-endpoint call counters keyed by method + route template
  (`GET /api/v1/CBeteiligte/<id>`), and a bounded request log with start/end
  times (to prove that two calls never overlapped);
- fault injection per path glob: added latency, an error rate, a fixed status
  (with optional `Retry-After`), a hang, a connection reset; each fault can be
  limited to the next N matching calls;
- `GET /_sandbox/info`, `POST /_sandbox/reset`, `GET|DELETE /_sandbox/calls`,
  `GET /_sandbox/log`, `GET|POST|DELETE /_sandbox/faults`, `POST /_sandbox/config`.
The admin paths themselves are never counted, logged or faulted.
The simulator registers what `info` reports and what `reset` clears.

`ServerThread(..., keep_alive=True)` (what `Sandbox` uses) keeps HTTP/1.1
connections open between calls as the real systems do (EspoCRM behind
Apache/nginx, Advoware on IIS); werkzeug's development server otherwise closes
every connection (see `KeepAliveHandler`).
"""
from __future__ import annotations

import collections
import fnmatch
import io
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from flask import Flask, g, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

ADMIN_PREFIX = "/_sandbox"


@dataclass
class Fault:
    path: str = "*"                 # fnmatch glob on the request path
    method: str | None = None       # None = any method
    latency_ms: int = 0             # added before the request is handled
    error_rate: float = 1.0         # probability that status/reset/hang applies
    status: int | None = None       # answer this status instead of handling the request
    retry_after: int | None = None  # with status 429 (or any): the Retry-After header
    hang_s: float = 0.0             # sleep this long before answering (longer than a client timeout)
    reset: bool = False             # drop the connection with a TCP RST
    times: int | None = None        # apply to the next N matching calls only, then expire
    after: bool = False             # apply after the request was handled (the write happened, the answer is lost)
    skip: int = 0                   # let this many matching calls through first
    id: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        return fnmatch.fnmatchcase(path, self.path)


@dataclass
class SandboxKit:
    name: str
    version: str = "sandbox-1"
    info_provider: Callable[[], dict] = lambda: {}
    reset_hooks: list[Callable[[], None]] = field(default_factory=list)
    default_latency_ms: int = 0
    seed: int = 1234

    def __post_init__(self):
        self.lock = threading.RLock()
        self.counters: collections.Counter = collections.Counter()
        self.log: collections.deque = collections.deque(maxlen=20000)
        self.faults: list[Fault] = []
        self._fault_ids = 0
        self.random = random.Random(self.seed)

    # --- faults ---
    def add_fault(self, **spec) -> Fault:
        with self.lock:
            self._fault_ids += 1
            fault = Fault(**spec, id=self._fault_ids)
            self.faults.append(fault)
            return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def take_faults(self, method: str, path: str, *, after: bool) -> list[Fault]:
        """The faults that fire for this call (consuming their `times`)."""
        fired = []
        with self.lock:
            for fault in list(self.faults):
                if fault.after != after or not fault.matches(method, path):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                if fault.error_rate < 1.0 and self.random.random() >= fault.error_rate:
                    continue
                fired.append(fault)
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
        return fired

    # --- counters ---
    def count(self, key: str) -> None:
        with self.lock:
            self.counters[key] += 1

    def calls(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counters)

    def reset_calls(self) -> None:
        with self.lock:
            self.counters.clear()
            self.log.clear()

    def reset(self) -> None:
        with self.lock:
            self.reset_calls()
            self.clear_faults()
            self.random = random.Random(self.seed)
            for hook in self.reset_hooks:
                hook()


def _endpoint_key(method: str) -> str:
    rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    return f"{method} {rule}"


def _reset_connection() -> None:
    """Close the client's socket with SO_LINGER 0, which sends a TCP RST (a 'connection reset')."""
    sock = request.environ.get("werkzeug.socket")
    if sock is None:
        raise ConnectionResetError("sandbox: injected reset")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    try:
        sock.shutdown(socket.SHUT_RDWR)  # close() alone is deferred while werkzeug still holds the socket
    except OSError:
        pass
    sock.close()
    raise ConnectionResetError("sandbox: injected reset")


def _apply(kit: SandboxKit, faults: list[Fault]):
    """Run the fired faults; return a response when one replaces the real answer."""
    for fault in faults:
        if fault.latency_ms:
            time.sleep(fault.latency_ms / 1000.0)
        if fault.hang_s:
            time.sleep(fault.hang_s)
        if fault.reset:
            _reset_connection()
        if fault.status:
            body = {"error": "injected fault", "status": fault.status}
            resp = jsonify(body)
            resp.status_code = fault.status
            resp.headers["X-Status-Reason"] = "Injected fault"
            if fault.retry_after is not None:
                resp.headers["Retry-After"] = str(fault.retry_after)
            return resp
    return None


def create_sandbox_app(name: str, import_name: str, *, version: str = "sandbox-1") -> tuple[Flask, SandboxKit]:
    """A Flask app with the admin API and the counting/fault hooks installed."""
    app = Flask(import_name)
    app.config["JSON_SORT_KEYS"] = False
    kit = SandboxKit(name=name, version=version)
    app.extensions["sandbox"] = kit

    @app.before_request
    def _before():
        if request.path.startswith(ADMIN_PREFIX):
            return None
        g.sandbox_start = time.monotonic()
        key = _endpoint_key(request.method)
        g.sandbox_key = key
        kit.count(key)
        if kit.default_latency_ms:
            time.sleep(kit.default_latency_ms / 1000.0)
        return _apply(kit, kit.take_faults(request.method, request.path, after=False))

    @app.after_request
    def _after(response):
        if request.path.startswith(ADMIN_PREFIX) or "sandbox_start" not in g:
            return response
        replaced = _apply(kit, kit.take_faults(request.method, request.path, after=True))
        if replaced is not None:
            response = replaced
        with kit.lock:
            kit.log.append({
                "method": request.method, "path": request.path, "endpoint": g.sandbox_key,
                "start": g.sandbox_start, "end": time.monotonic(), "status": response.status_code,
                "user": g.get("sandbox_user"),
            })
        return response

    @app.get(f"{ADMIN_PREFIX}/info")
    def _info():
        data = {"name": kit.name, "version": kit.version, "base_url": request.host_url.rstrip("/")}
        data.update(kit.info_provider())
        return jsonify(data)

    @app.post(f"{ADMIN_PREFIX}/reset")
    def _reset():
        kit.reset()
        return jsonify({"reset": True})

    @app.get(f"{ADMIN_PREFIX}/calls")
    def _calls():
        return jsonify(kit.calls())

    @app.delete(f"{ADMIN_PREFIX}/calls")
    def _reset_calls():
        kit.reset_calls()
        return jsonify({"reset": True})

    @app.get(f"{ADMIN_PREFIX}/log")
    def _log():
        with kit.lock:
            return jsonify(list(kit.log))

    @app.get(f"{ADMIN_PREFIX}/faults")
    def _faults():
        with kit.lock:
            return jsonify([vars(f) for f in kit.faults])

    @app.post(f"{ADMIN_PREFIX}/faults")
    def _add_fault():
        spec = request.get_json(force=True, silent=True)
        if not isinstance(spec, dict):
            return jsonify({"error": "body must be a JSON object"}), 400
        try:
            fault = kit.add_fault(**{k: v for k, v in spec.items() if k != "id"})
        except TypeError as exc:
            return jsonify({"error": str(exc)}), 400
        return jsonify(vars(fault))

    @app.delete(f"{ADMIN_PREFIX}/faults")
    def _clear_faults():
        kit.clear_faults()
        return jsonify({"cleared": True})

    @app.post(f"{ADMIN_PREFIX}/config")
    def _config():
        spec = request.get_json(force=True, silent=True) or {}
        if "latency_ms" in spec:
            kit.default_latency_ms = int(spec["latency_ms"])
        return jsonify({"latency_ms": kit.default_latency_ms})

    return app, kit


#: Seconds an idle kept-alive connection stays open (Apache's default is 5, nginx's 75, IIS' 120); also the
#: longest a started request may stall between two reads.
KEEP_ALIVE_IDLE = 60.0


class _CountingWriter:
    """The handler's socket writer, counting the bytes written (to check a response's framing)."""

    def __init__(self, raw):
        self.raw = raw
        self.written = 0

    def write(self, data) -> int:
        written = self.raw.write(data)
        self.written += len(data)
        return written

    def __getattr__(self, name):
        return getattr(self.raw, name)


class KeepAliveHandler(WSGIRequestHandler):
    """werkzeug's request handler with HTTP/1.1 keep-alive.

    werkzeug 3 sends `Connection: close` on every answer, because after a
    response it drains whatever the client sent next (it cannot tell a
    request body the app left unread from the next request). This handler
    reads the request body (by its Content-Length) before the app runs and
    hands the app that copy, so the drain finds nothing of the connection's;
    it leaves out the `Connection: close` and serves the next request on the
    same connection when the answer was framed completely: its body as long
    as its Content-Length (or none where HTTP has none: HEAD, 1xx, 204, 304).
    Anything else closes the connection after the answer as before: a
    chunked or `Expect: 100-continue` request, an answer without
    Content-Length (werkzeug chunks it), an app that failed after it started
    answering, a dropped or reset connection, a client asking to close.
    """

    protocol_version = "HTTP/1.1"
    timeout = KEEP_ALIVE_IDLE  # socketserver puts it on the socket: an idle connection is closed after this
    # TCP_NODELAY, as nginx/IIS on kept-alive connections: werkzeug writes the head and the body separately, and
    # Nagle's algorithm would hold the body back until the client's delayed ACK of the head (~40 ms a call).
    disable_nagle_algorithm = True
    _keep = False  # set while `run_wsgi` serves a request whose connection may stay open

    def setup(self) -> None:
        super().setup()
        self.wfile = _CountingWriter(self.wfile)
        self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        self.server.open_connections.discard(self.connection)
        super().finish()

    def run_wsgi(self) -> None:
        self._keep, self._status, self._length, self._body_from = False, 0, None, None
        length = self.headers.get("Content-Length", "0").strip()
        if self.headers.get("Transfer-Encoding") or self.headers.get("Expect") or not length.isdigit():
            return super().run_wsgi()  # werkzeug's own way, which closes the connection
        body = self.rfile.read(int(length)) if int(length) else b""
        if len(body) != int(length):
            self.close_connection = True  # the client went away mid-body
            return None
        from_socket, self.rfile = self.rfile, io.BytesIO(body)  # werkzeug's wsgi.input, and what it drains
        self._keep = True
        try:
            super().run_wsgi()
        finally:
            self.rfile, self._keep = from_socket, False  # http.server's own error answers still close
        if not self._framed():
            self.close_connection = True
        return None

    def _framed(self) -> bool:
        """Whether the answer went out whole and self-delimiting (so the next request can follow)."""
        if self._body_from is None:
            return False
        no_body = self.command == "HEAD" or 100 <= self._status < 200 or self._status in (204, 304)
        expected = 0 if no_body else self._length
        return expected is not None and self.wfile.written - self._body_from == expected

    def send_response(self, code, message=None) -> None:
        self._status = code
        super().send_response(code, message)

    def send_header(self, keyword, value) -> None:
        name = keyword.lower()
        if name == "content-length":
            self._length = int(value) if str(value).strip().isdigit() else None
        elif name == "connection" and str(value).lower() == "close" and self._keep:
            return  # werkzeug's unconditional close; `run_wsgi` decides after the answer
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        super().end_headers()
        self._body_from = self.wfile.written

    def connection_dropped(self, error, environ=None) -> None:
        self.close_connection = True

    def log_error(self, format: str, *args) -> None:
        if format.startswith("Request timed out"):
            return  # an idle kept-alive connection reaching KEEP_ALIVE_IDLE is not an error
        super().log_error(format, *args)


class ServerThread:
    """Serve a WSGI app on host:port (0 = a free port) in a daemon thread; `stop()` shuts it down.

    `keep_alive`: answer with HTTP/1.1 keep-alive (`KeepAliveHandler`); `stop()` then also closes the
    connections still open, so a stopped server answers nothing, as before."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, *, keep_alive: bool = False):
        handler = KeepAliveHandler if keep_alive else None
        self.server = make_server(host, port, app, threaded=True, request_handler=handler)
        self.server.daemon_threads = True
        self.server.open_connections = set()
        self.host = host
        self.port = self.server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"sandbox:{self.port}",
                                        daemon=True)

    def start(self) -> "ServerThread":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for sock in list(self.server.open_connections):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the handler's next read ends; its thread closes the socket
            except OSError:
                pass
        self._thread.join(timeout=5)
