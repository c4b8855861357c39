"""The exception hierarchy every client raises (STYLE §3): callers branch on classes, never on status codes.

No message built here or by the clients contains a header value, a token or a request body: only
method, path and status.
"""
from __future__ import annotations


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


class BudgetExhausted(RateLimited):
    """Our own shared budget (`RateGate.wait`) admitted no call within its wait: the system said nothing, so
    this is no reason to pause every other caller (only a server's 429 pauses the gate)."""


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


class TimedOut(Unavailable):
    """A connect or read timeout: the system did not answer in time (a gateway answers 504, not 502)."""
