"""The HTTP transport all three clients share: the session factory, one call with its timeouts, and the
mapping of error answers to `integrations.errors` (the exception hierarchy lives there, the shared rate
gate in `integrations.rategate`). No message built here contains a header value, a token or a body.

`send` sends through the session adapter's urllib3 pool directly (issue 15: requests' per-call pipeline
was ~45 % of a worker's CPU per Beteiligte sync). The `requests.Session` stays the place where a client
is configured (headers, basic auth, the adapter with its `Retry` and pool sizes); what `send` keeps and
drops of requests' behaviour is listed in docs/PERFORMANCE.md §11 and on `send`.
"""
from __future__ import annotations

import base64
import json as jsonlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import get_netrc_auth, requote_uri, select_proxy
from urllib3.exceptions import (ConnectTimeoutError, HTTPError, LocationValueError, MaxRetryError,
                                NameResolutionError, NewConnectionError, ReadTimeoutError)
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


class Response:
    """An answer as `send` returns it: what the clients read of a `requests.Response` (`status_code`,
    `headers` (case-insensitive), `content`, `text`, `json()`, `ok`) plus `method` and `url` of the call;
    `request` is the response itself, so `response.request.method`/`.url` read as with requests."""

    __slots__ = ("status_code", "headers", "content", "method", "url")

    def __init__(self, status_code: int, headers, content: bytes, method: str, url: str):
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.method = method
        self.url = url

    @property
    def request(self) -> "Response":
        return self

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        """The body as text: the charset the Content-Type names, else UTF-8 (undecodable bytes replaced)."""
        charset = "utf-8"
        for part in (self.headers.get("Content-Type") or "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip("\"'")
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self):
        """The body parsed as JSON (UTF-8/16/32 detected as `json.loads` does); `ValueError` if it is not."""
        return jsonlib.loads(self.content)

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


def error_for_response(system: str, response) -> ApiError:
    """Map a non-2xx response (`Response` or `requests.Response`) to the exception a caller can branch on."""
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
    return urlsplit(url).path


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


# --- the direct path: one origin's settings, worked out once ---

@dataclass(frozen=True)
class _Route:
    """How calls to one origin go out: the adapter (its pool manager and `Retry`), the urllib3 pool key
    (host, TLS settings from the session and the CA environment), and the netrc credentials, if any."""

    adapter: HTTPAdapter
    host_params: dict
    pool_kwargs: dict
    netrc_auth: tuple | None


_DIRECT = "_bitbylaw_routes"  # the session attribute holding its routes: {(scheme, netloc, config): _Route | None}
_PLAIN_URL = re.compile(r"[A-Za-z0-9\-._~!#$%&'()*+,/:;=?@\[\]]*\Z")  # nothing requests would re-quote
_EXPECTED = frozenset({"params", "json", "data", "headers"})


class _ForRoute:
    """The one field of a PreparedRequest that requests' pool-key helper reads."""

    def __init__(self, url: str):
        self.url = url


def _route(session: requests.Session, url: str) -> _Route | None:
    """The route for `url`'s origin (cached on the session), or None when the call must take requests'
    own path: a proxy applies, the adapter is not an `HTTPAdapter`, or the host is not plain ASCII."""
    parts = urlsplit(url)
    config = (parts.scheme, parts.netloc, session.trust_env, tuple(sorted(session.proxies.items())),
              session.verify if isinstance(session.verify, (bool, str)) else id(session.verify),
              session.cert if isinstance(session.cert, (str, tuple, type(None))) else id(session.cert))
    routes = session.__dict__.setdefault(_DIRECT, {})
    try:
        return routes[config]
    except KeyError:
        pass
    route = None
    settings = session.merge_environment_settings(url, {}, None, None, None)
    adapter = session.get_adapter(url)
    if (isinstance(adapter, HTTPAdapter) and not select_proxy(url, settings["proxies"])
            and parts.hostname and parts.hostname.isascii() and parts.scheme in ("http", "https")):
        target = _ForRoute(url)
        host_params, pool_kwargs = adapter.build_connection_pool_key_attributes(target, settings["verify"],
                                                                                settings["cert"])
        pool = adapter.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)
        adapter.cert_verify(pool, url, settings["verify"], settings["cert"])  # a missing CA bundle fails here
        netrc = get_netrc_auth(url) if session.trust_env else None
        route = _Route(adapter, host_params, pool_kwargs, netrc)
    routes[config] = route
    return route


@lru_cache(maxsize=64)
def _timeout(connect: float, read: float) -> urllib3.Timeout:
    return urllib3.Timeout(connect=connect, read=read)


@lru_cache(maxsize=64)
def _basic(user, password) -> str:
    pair = (user if isinstance(user, bytes) else str(user).encode("latin1")) + b":" + \
        (password if isinstance(password, bytes) else str(password).encode("latin1"))
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _encode_params(params) -> str:
    """Query parameters as requests encodes them: a mapping or (key, value) pairs; a list value repeats
    its key; None values are left out."""
    if isinstance(params, (str, bytes)):
        return params.decode() if isinstance(params, bytes) else params
    items = params.items() if hasattr(params, "items") else params
    pairs = []
    for key, values in items:
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = (values,)
        pairs.extend((key, value) for value in values if value is not None)
    return urlencode(pairs)


def _headers(session: requests.Session, route: _Route, extra: dict | None) -> dict:
    """The session's headers, the call's on top (matched case-insensitively; None removes one), and the
    session's basic auth (or the netrc's) unless the call names an Authorization."""
    headers = dict(session.headers)
    if extra:
        for name, value in extra.items():
            lower = name.lower()
            for present in [k for k in headers if k.lower() == lower]:
                del headers[present]
            if value is not None:
                headers[name] = value
    auth = session.auth or route.netrc_auth
    if auth and not any(k.lower() == "authorization" for k in headers):
        headers["Authorization"] = _basic(*auth)
    return headers


def _direct_possible(session: requests.Session, kwargs: dict) -> bool:
    """Whether the call only uses what the direct path reproduces (else it takes requests' path)."""
    if not kwargs.keys() <= _EXPECTED:
        return False
    data = kwargs.get("data")
    if data is not None and not isinstance(data, (bytes, str)):
        return False
    auth = session.auth
    if auth is not None and not (isinstance(auth, tuple) and len(auth) == 2):
        return False
    return not (session.params or session.cookies or any(session.hooks.values()))


def send(system: str, session: requests.Session, method: str, url: str, *,
         timeouts: Timeouts, gate: "RateGate | None" = None, **kwargs) -> Response:
    """One HTTP call: wait for the shared rate budget, send, map failures to `ApiError`s.

    Sent through the session adapter's urllib3 pool with the adapter's `Retry` (idempotent methods only,
    see `make_session`), the connect/read timeouts, the session's headers and basic auth, `params`
    encoded as requests encodes them, `json` as a UTF-8 JSON body (NaN refused), `data` bytes/str as is.
    The proxy and CA-bundle environment is read once per origin (`Session`); an origin a proxy applies
    to, a session with cookies, hooks, default params or an auth object, and any other keyword argument
    take requests' own path, with the same error mapping. Not reproduced on the direct path: redirects
    (the APIs do not redirect; a 3xx is an `ApiError` naming it), cookies (neither stored nor sent: the
    APIs authenticate by header), response hooks. The body is read completely inside the call, so a
    failure while reading it is mapped here too.
    """
    if gate is not None:
        gate.wait()
    route = _route(session, url) if _direct_possible(session, kwargs) else None
    if route is None:
        return _send_by_requests(system, session, method, url, timeouts, kwargs)
    params = kwargs.get("params")
    if params:
        url = f"{url}{'&' if '?' in url else '?'}{_encode_params(params)}"
    if not _PLAIN_URL.match(url):
        url = requote_uri(url)
    headers = _headers(session, route, kwargs.get("headers"))
    body = kwargs.get("data")
    if kwargs.get("json") is not None and body is None:
        body = jsonlib.dumps(kwargs["json"], allow_nan=False).encode("utf-8")
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    elif isinstance(body, str):
        body = body.encode("utf-8")
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    adapter = route.adapter
    try:
        pool = adapter.poolmanager.connection_from_host(**route.host_params, pool_kwargs=route.pool_kwargs)
        answer = pool.urlopen(method, target, body=body, headers=headers, retries=adapter.max_retries,
                              redirect=False, assert_same_host=False, timeout=_timeout(*timeouts.as_tuple()),
                              preload_content=True, decode_content=True)
    except LocationValueError:
        raise
    except (HTTPError, OSError) as exc:
        raise _transport_error(system, method, url, exc) from exc
    response = Response(answer.status, answer.headers, answer.data or b"", method, url)
    if response.status_code >= 400:
        raise error_for_response(system, response)
    if response.status_code >= 300:
        raise ApiError(f"{system}: {method} {_path_of(url)} -> {response.status_code} (a redirect, not followed: "
                       f"check the configured URL)", status=response.status_code, system=system)
    return response


def _transport_error(system: str, method: str, url: str, exc: BaseException) -> Unavailable:
    """A urllib3 failure as `Unavailable`, mapped as requests' exceptions were: a connect timeout or a
    refused / unresolvable connection was never sent; anything later may have been."""
    reason = exc.reason if isinstance(exc, MaxRetryError) else exc
    where = f"{system}: {method} {_path_of(url)}"
    if isinstance(reason, (NewConnectionError, NameResolutionError)):
        return Unavailable(f"{where} connection failed", system=system, maybe_sent=False)
    if isinstance(reason, ConnectTimeoutError):
        return Unavailable(f"{where} connect timed out", system=system)
    if isinstance(reason, ReadTimeoutError):
        return Unavailable(f"{where} timed out", system=system, maybe_sent=True)
    return Unavailable(f"{where} connection failed", system=system, maybe_sent=True)


def _send_by_requests(system: str, session: requests.Session, method: str, url: str, timeouts: Timeouts,
                      kwargs: dict) -> Response:
    """The call through requests' own pipeline (proxies, cookies, auth objects, other keyword arguments)."""
    try:
        answer = session.request(method, url, timeout=timeouts.as_tuple(), **kwargs)
        response = Response(answer.status_code, answer.headers, answer.content, method, answer.request.url or url)
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
    cause = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", cause)
    return isinstance(reason, (NewConnectionError, NameResolutionError))
