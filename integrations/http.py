"""What all three HTTP clients share: the exception hierarchy, the session factory, the shared rate gate.

Callers branch on exception classes, never on status codes (STYLE §3). No
exception message or log line built here contains a header value, a token or
a request body: only method, path and status.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Any failure talking to an external system. `status` is None for transport errors."""

    transient = False

    def __init__(self, message: str, *, status: int | None = None, reason: str = "", system: str = ""):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.system = system


class BadRequest(ApiError):
    """400: the request was malformed; retrying will not help."""


class AuthError(ApiError):
    """401: missing, wrong or expired credentials."""


class Forbidden(ApiError):
    """403: the user may not do this (e.g. Advoware DELETE, EspoCRM maxSize > 200)."""


class NotFound(ApiError):
    """404: the resource does not exist (any more)."""


class Conflict(ApiError):
    """409: a duplicate or a version conflict; `payload` holds the server's body when JSON."""

    def __init__(self, message: str, *, payload=None, **kw):
        super().__init__(message, **kw)
        self.payload = payload


class PreconditionFailed(ApiError):
    """412: an If-Match precondition failed (Google Calendar etags)."""


class Gone(ApiError):
    """410: gone for good (Google: sync token expired, or event already deleted)."""


class RateLimited(ApiError):
    """429 (or a rate-limit 403): wait `retry_after` seconds, then try again."""

    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Unavailable(ApiError):
    """5xx, timeout or connection failure: the system is (temporarily) not answering.

    `maybe_sent` is True when the request may have reached the server and been
    acted on although no answer came back (a read timeout, a connection dropped
    after sending). A caller must then not repeat a non-idempotent POST blindly.
    """

    transient = True

    def __init__(self, message: str, *, maybe_sent: bool = False, **kw):
        super().__init__(message, **kw)
        self.maybe_sent = maybe_sent


_BY_STATUS = {400: BadRequest, 401: AuthError, 403: Forbidden, 404: NotFound, 409: Conflict,
              410: Gone, 412: PreconditionFailed, 429: RateLimited}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds form only; dates are treated as unknown)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_for_response(system: str, response: requests.Response) -> ApiError:
    """Map a non-2xx response to the exception a caller can branch on."""
    status = response.status_code
    reason = response.headers.get("X-Status-Reason", "")[:200]
    message = f"{system}: {response.request.method} {_path_of(response.request.url)} -> {status}"
    if reason:
        message += f" ({reason})"
    cls = _BY_STATUS.get(status)
    if status == 429:
        return RateLimited(message, status=status, reason=reason, system=system,
                           retry_after=parse_retry_after(response.headers.get("Retry-After")))
    if status == 409:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        return Conflict(message, status=status, reason=reason, system=system, payload=payload)
    if cls is not None:
        return cls(message, status=status, reason=reason, system=system)
    if status >= 500:
        return Unavailable(message, status=status, reason=reason, system=system)
    return BadRequest(message, status=status, reason=reason, system=system)


def _path_of(url: str | None) -> str:
    """The path of a URL without its query string (query strings may carry search values)."""
    if not url:
        return "?"
    from urllib.parse import urlparse

    return urlparse(url).path


@dataclass(frozen=True)
class Timeouts:
    connect: float = 3.05
    read: float = 30.0

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


def make_session(*, retry_idempotent: int = 2, pool_size: int = 16) -> requests.Session:
    """A keep-alive session that retries only what is safe to retry.

    urllib3 `Retry` retries connection errors and 502/503/504 for idempotent
    methods (GET, PUT, DELETE, HEAD, OPTIONS) only; POST is never retried at
    this level because a POST whose response was lost may have created
    something (the callers decide). 429 is not retried here either: the
    caller's rate gate and Celery's back-off honour `Retry-After`.
    """
    retry = Retry(
        total=retry_idempotent,
        connect=retry_idempotent,
        read=0,  # a read timeout may mean the write happened; let the caller decide
        status=retry_idempotent,
        status_forcelist=(502, 503, 504),
        allowed_methods=frozenset({"GET", "PUT", "DELETE", "HEAD", "OPTIONS"}),
        backoff_factor=0.2,
        # False: urllib3 would otherwise retry a 429 itself (sleeping Retry-After inside the
        # session), hiding it from the shared RateGate and from Celery's back-off.
        respect_retry_after_header=False,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def send(system: str, session: requests.Session, method: str, url: str, *,
         timeouts: Timeouts, gate: "RateGate | None" = None, **kwargs) -> requests.Response:
    """One HTTP call: wait for the shared rate budget, send, map failures to `ApiError`s."""
    if gate is not None:
        gate.wait()
    try:
        response = session.request(method, url, timeout=timeouts.as_tuple(), **kwargs)
    except requests.ConnectTimeout as exc:
        raise Unavailable(f"{system}: {method} {_path_of(url)} connect timed out", system=system) from exc
    except requests.Timeout as exc:
        raise Unavailable(f"{system}: {method} {_path_of(url)} timed out", system=system,
                          maybe_sent=True) from exc
    except requests.ConnectionError as exc:
        refused = _connect_refused(exc)
        raise Unavailable(f"{system}: {method} {_path_of(url)} connection failed", system=system,
                          maybe_sent=not refused) from exc
    if response.status_code >= 400:
        raise error_for_response(system, response)
    return response


def _connect_refused(exc: requests.ConnectionError) -> bool:
    """True when the connection was never established (nothing can have been sent)."""
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    cause = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", cause)
    return isinstance(reason, (NewConnectionError, NameResolutionError))


class RateGate:
    """A request budget shared by every process and machine, kept in Redis (`limits` moving window).

    `wait()` blocks politely until the budget allows one more call instead of
    failing; `pause(seconds)` makes every caller hold off after a 429's
    `Retry-After`.
    """

    def __init__(self, redis_url: str, name: str, per_minute: int, *, max_wait: float = 120.0):
        from limits import RateLimitItemPerMinute
        from limits.storage import RedisStorage
        from limits.strategies import MovingWindowRateLimiter

        self._storage = RedisStorage(redis_url)
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._item = RateLimitItemPerMinute(max(1, per_minute))
        self._name = name
        self._pause_key = f"rate_pause:{name}"
        self._max_wait = max_wait
        import redis

        self._redis = redis.Redis.from_url(redis_url)

    def wait(self) -> None:
        """Block until the shared budget admits one more call; count the admitted call."""
        deadline = time.monotonic() + self._max_wait
        while True:
            paused_ms = self._redis.pttl(self._pause_key)
            if paused_ms and paused_ms > 0:
                time.sleep(min(paused_ms / 1000.0, 5.0))
            elif self._limiter.hit(self._item, "bitbylaw", self._name):
                self._count()
                return
            else:
                stats = self._limiter.get_window_stats(self._item, "bitbylaw", self._name)
                time.sleep(min(max(stats.reset_time - time.time(), 0.05), 5.0))
            if time.monotonic() > deadline:
                raise RateLimited(f"{self._name}: local rate budget exhausted for {self._max_wait:.0f}s",
                                  system=self._name, retry_after=5.0)

    def _count(self) -> None:
        """Per-system call count for the product's metrics (`metrics:api_calls`); never fails a call."""
        try:
            self._redis.hincrby("metrics:api_calls", self._name, 1)
        except Exception:  # noqa: BLE001 - metrics must not break a call
            log.debug("rate gate: could not count a call")

    def pause(self, seconds: float) -> None:
        if seconds and seconds > 0:
            self._redis.set(self._pause_key, "1", px=int(seconds * 1000))
