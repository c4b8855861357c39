"""The HTTP transport all three clients share: the session factory, one call with its timeouts, and the
mapping of error answers to `integrations.errors` (the exception hierarchy lives there, the shared rate
gate in `integrations.rategate`). No message built here contains a header value, a token or a body."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from integrations.errors import (ApiError, AuthError, BadRequest, Conflict, Forbidden, Gone, NotFound,
                                 PreconditionFailed, RateLimited, Unavailable)

if TYPE_CHECKING:
    from integrations.rategate import RateGate

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


class Session(requests.Session):
    """A `requests.Session` that reads the proxy and CA-bundle environment once per origin.

    requests walks `os.environ` on every call (`merge_environment_settings`: the
    proxy variables twice, `no_proxy`, `REQUESTS_CA_BUNDLE`), ~10 % of a worker's
    CPU per Beteiligte sync (docs/PERFORMANCE.md, issue 15). The product's
    clients talk to one or two origins each and never pass per-call proxies,
    `verify` or `cert`, so the merged settings are kept per origin and session
    setting; a call that passes any of them takes requests' own path. The
    environment is read when an origin is first called (a process started with
    other proxy variables builds new sessions).
    """

    def __init__(self):
        super().__init__()
        self._merged: dict[tuple, dict] = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        if proxies or stream is not None or verify is not None or cert is not None:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, self.trust_env, tuple(sorted(self.proxies.items())), self.stream,
               self.verify, self.cert)
        merged = self._merged.get(key)
        if merged is None:
            merged = self._merged[key] = super().merge_environment_settings(url, {}, None, None, None)
        return {**merged, "proxies": dict(merged["proxies"])}


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
    session = Session()
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
