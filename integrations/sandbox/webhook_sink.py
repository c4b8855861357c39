"""A tiny HTTP server that records the webhook requests it receives (raw bytes and headers) and answers
scripted statuses — the far end of the EspoCRM simulator's webhooks in tests.

    sink = WebhookSink().start()
    sink.script = [500, 200]          # answer 500 once, then 200 (the default)
    ... sink.url ... sink.requests[0].body ... sink.stop()
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class WebhookSink:
    def __init__(self, host: str = "127.0.0.1"):
        self.requests: list[Received] = []
        self.script: list[int] = []   # statuses to answer in turn; afterwards `default_status`
        self.default_status = 200
        self.delay_s = 0.0            # sleep before answering (to provoke sender timeouts)
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with sink.lock:
                    sink.requests.append(Received(self.path, dict(self.headers.items()), body, time.monotonic()))
                    status = sink.script.pop(0) if sink.script else sink.default_status
                    delay = sink.delay_s
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up (timeout) and closed the connection

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook-sink", daemon=True)

    def start(self) -> "WebhookSink":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.script.clear()
            self.default_status = 200
            self.delay_s = 0.0

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Block until at least `count` requests arrived (or `timeout` passed); return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    break
            time.sleep(0.02)
        with self.lock:
            return list(self.requests)
