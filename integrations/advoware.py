"""The product's Advoware client: signed token fetch shared through Redis, Beteiligte, Kommunikationen,
Adressen, Termine, and `forward`, the generic call the Advoware proxy uses.

Auth (SPEC §3.2): a token from the security gateway (`POST /api/v1/Token`,
signed with HMAC-SHA512 over `product:app:nonce:timestamp` keyed with the
base64-decoded API key). The token is cached in Redis (DB 1) with a TTL a
little below its lifetime, so it is refreshed before it expires; one process
fetches while the others wait on a redis-py `Lock` and then read the cache.
A 401 on an API call drops the cached token (only if it is still the one
used) and retries that call once with a fresh token.

Writes are full replaces in Advoware: `update_beteiligte`, `update_kommunikation`
and `update_termin` must be given the whole merged record (read-modify-write),
or the fields left out are cleared.

No password, API key or token ever appears in a log line or exception message.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from urllib.parse import urlencode, urlsplit
from typing import Callable

import redis as redis_lib
import requests
import urllib3

from integrations.errors import (ApiError, AuthError, BudgetExhausted, NotFound, RateLimited, TimedOut,
                                 Unavailable)
from integrations.http import Timeouts, make_session, parse_retry_after, send
from integrations.rategate import RateGate

log = logging.getLogger(__name__)

SYSTEM = "advoware"
TOKEN_PATH = "/api/v1/Token"
API = "/api/v1/advonet"
FORWARD_TOKEN_MEMORY = 2.0  # seconds `forward` reuses the shared token without reading Redis again
# Default seconds any call reuses the token it last read from (or wrote to) Redis, at most as long as Redis keeps
# it: a Redis round trip less per Advoware call (issue 15; `ADVOWARE_TOKEN_MEMORY`). An operator's deletion of the
# cached token reaches a process after at most this long; a 401 forgets the copy at once (docs/PERFORMANCE.md §11).
TOKEN_MEMORY = 2.0

# Compare-and-delete: drop the cached token only if it is still the one that got a 401.
_DROP_IF_SAME = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class AdvowareCredentials:
    """What the token request needs. The secrets are left out of `repr()`."""

    app_id: str
    product_id: str
    kanzlei: str
    database: str
    user: str
    role: str
    password: str = field(repr=False)
    api_key: str = field(repr=False)  # base64, as Advoware hands it out


def signature(api_key_b64: str, product_id: str, app_id: str, nonce: str, timestamp: str) -> str:
    """`HMAC512Signature`: base64(HMAC-SHA512(base64decode(api_key), "product:app:nonce:timestamp"))."""
    key = base64.b64decode(api_key_b64)
    message = f"{product_id}:{app_id}:{nonce}:{timestamp}".encode("utf-8")
    return base64.b64encode(hmac.new(key, message, hashlib.sha512).digest()).decode("ascii")


def _number_or_text(value: str):
    """Advoware takes `Product` and `Role` as numbers; settings hold strings."""
    text = str(value).strip()
    return int(text) if text.isdigit() else text


ADRESSE_WRITABLE = ("strasse", "plz", "ort", "anschrift")  # what an address PUT changes; the rest is ignored


class AmbiguousAddress(ApiError):
    """More than one address of a party matched where exactly one was meant."""


class AddressMoved(ApiError):
    """The address at the looked-up position changed between the GET and the PUT: look again."""

    transient = True


def _one(data, what: str):
    """Advoware answers some single records as a one-element list, some as an object: accept both."""
    if isinstance(data, list):
        if not data:
            raise NotFound(f"{SYSTEM}: {what}: empty answer", status=404, system=SYSTEM)
        return data[0]
    if isinstance(data, dict):
        return data
    raise ApiError(f"{SYSTEM}: {what}: unexpected answer", system=SYSTEM)


class AnswerTooLarge(ApiError):
    """Advoware's answer exceeded the caller's size limit; it was not read to the end."""


@dataclass(frozen=True)
class RawAnswer:
    """Advoware's answer as received, whatever its status (`forward`); `headers` as Advoware sent them."""

    status: int
    headers: dict
    body: bytes


def _day(value) -> str:
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]


class AdvowareClient:
    """One Advoware API client; thread-safe, one `requests.Session`, the token shared via Redis."""

    def __init__(self, base_url: str, credentials: AdvowareCredentials, *, redis: redis_lib.Redis,
                 timeouts: Timeouts = Timeouts(), gate: RateGate | None = None,
                 session: requests.Session | None = None, token_url: str | None = None,
                 token_margin: float = 60.0, lock_timeout: float = 30.0, token_memory: float | None = None):
        self.base_url = base_url.rstrip("/")
        # The real security gateway is its own host; the sandbox serves it on the API host.
        self.token_url = token_url or self.base_url + TOKEN_PATH
        self._creds = credentials
        self._redis = redis
        self.timeouts = timeouts
        self.gate = gate
        self.session = session or make_session()
        self.token_margin = token_margin
        self.lock_timeout = lock_timeout
        self._remembered: tuple[str, float] | None = None  # forward's token and until when (monotonic)
        self._copy: tuple[str, float] | None = None  # token()'s in-process copy and until when (monotonic)
        self.token_memory = token_memory  # None: TOKEN_MEMORY
        ident = "|".join((self.token_url, credentials.kanzlei, credentials.database, credentials.user,
                          credentials.app_id))
        self.token_key = "advoware:token:" + hashlib.sha256(ident.encode()).hexdigest()[:24]
        self._drop_if_same = redis.register_script(_DROP_IF_SAME)
        self._calls_lock = threading.Lock()
        self.calls: Counter = Counter()  # "GET Beteiligte" -> n; token fetches under "POST Token"

    def __repr__(self) -> str:
        return f"AdvowareClient({self.base_url!r}, kanzlei={self._creds.kanzlei!r})"

    @classmethod
    def from_settings(cls, settings, redis: redis_lib.Redis, *, gate: RateGate | None = None,
                      timeouts: Timeouts = Timeouts(), session: requests.Session | None = None,
                      base_url: str | None = None) -> "AdvowareClient":
        """A client from `Settings` (advoware_*); `base_url` overrides it (e.g. the sandbox's URL)."""
        creds = AdvowareCredentials(
            app_id=settings.advoware_app_id, product_id=settings.advoware_product_id,
            kanzlei=settings.advoware_kanzlei, database=settings.advoware_database,
            user=settings.advoware_user, role=settings.advoware_role,
            password=settings.advoware_password, api_key=settings.advoware_api_key)
        return cls(base_url or settings.advoware_base_url, creds, redis=redis, gate=gate, timeouts=timeouts,
                   session=session, token_url=getattr(settings, "advoware_token_url", "") or None,
                   token_memory=getattr(settings, "advoware_token_memory", None))

    # --- bookkeeping ---
    def _count(self, key: str) -> None:
        with self._calls_lock:
            self.calls[key] += 1

    @property
    def token_fetches(self) -> int:
        return self.calls["POST Token"]

    @property
    def api_calls(self) -> int:
        """Calls to the API proper (token fetches not included)."""
        with self._calls_lock:
            return sum(n for key, n in self.calls.items() if key != "POST Token")

    # --- the token ---
    def _fetch_token(self) -> tuple[str, float]:
        creds = self._creds
        nonce = str(uuid.uuid4())
        stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = {
            "AppID": creds.app_id, "Kanzlei": creds.kanzlei, "Database": creds.database, "User": creds.user,
            "Role": _number_or_text(creds.role), "Product": _number_or_text(creds.product_id),
            "Password": creds.password, "Nonce": nonce, "RequestTimeStamp": stamp,
            "HMAC512Signature": signature(creds.api_key, creds.product_id, creds.app_id, nonce, stamp),
        }
        self._count("POST Token")
        try:
            response = send(SYSTEM, self.session, "POST", self.token_url, timeouts=self.timeouts, json=body)
        except AuthError:
            log.warning("advoware: token request rejected (check the Advoware credentials)")
            raise
        try:
            answer = response.json()
            token = answer["access_token"]
            lifetime = float(answer.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise AuthError(f"{SYSTEM}: token answer without access_token", system=SYSTEM) from None
        log.info("advoware: fetched a new access token (valid %.0fs)", lifetime)
        return token, lifetime

    def _cache_ttl(self, lifetime: float) -> float:
        """Keep the token a little shorter than it lives, so it is refreshed before it expires."""
        return max(lifetime - min(self.token_margin, lifetime * 0.1), 0.05)

    def token(self) -> str:
        """The shared access token: this process's copy while it is fresh (`token_memory`), else from Redis,
        else fetched once (under a lock) and cached."""
        copy = self._copy
        if copy is not None and copy[1] > time.monotonic():
            return copy[0]
        try:
            cached = self._read_cached()
            if cached:
                return cached
            lock = self._redis.lock(self.token_key + ":lock", timeout=self.lock_timeout,
                                    blocking_timeout=self.lock_timeout + self.timeouts.read)
            if not lock.acquire():
                raise Unavailable(f"{SYSTEM}: timed out waiting for the token lock", system=SYSTEM)
            try:
                cached = self._read_cached()  # someone else fetched while we waited
                if cached:
                    return cached
                token, lifetime = self._fetch_token()
                ttl = self._cache_ttl(lifetime)
                self._redis.set(self.token_key, token, px=int(ttl * 1000))
                self._keep_copy(token, ttl)
                return token
            finally:
                try:
                    lock.release()
                except redis_lib.exceptions.LockError:
                    log.warning("advoware: token lock expired before release")
        except redis_lib.RedisError as exc:
            raise Unavailable(f"{SYSTEM}: token cache unavailable ({type(exc).__name__})",
                              system=SYSTEM) from None

    def _read_cached(self) -> str | None:
        """The token in Redis (one round trip: GET and PTTL), kept as this process's copy for at most
        `token_memory` seconds and never longer than Redis keeps it."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self.token_key)
        pipe.pttl(self.token_key)
        cached, pttl = pipe.execute()
        if not cached:
            return None
        token = cached.decode()
        if pttl != -2:  # -1: no expiry set (kept for the memory); -2: gone between the two commands
            self._keep_copy(token, pttl / 1000 if pttl >= 0 else float("inf"))
        return token

    def _keep_copy(self, token: str, seconds_left: float) -> None:
        memory = TOKEN_MEMORY if self.token_memory is None else self.token_memory
        if memory > 0:
            self._copy = (token, time.monotonic() + min(memory, seconds_left))

    def _drop_token(self, token: str) -> None:
        copy = self._copy
        if copy is not None and copy[0] == token:
            self._copy = None
        try:
            self._drop_if_same(keys=[self.token_key], args=[token])
        except redis_lib.RedisError:
            log.warning("advoware: could not drop a rejected token from the cache")

    # --- one API call ---
    def _call(self, method: str, path: str, name: str, **kwargs):
        """Send one API call with the bearer token; on 401 refresh the token and retry once."""
        url = self.base_url + API + path
        for attempt in (1, 2):
            token = self.token()
            self._count(f"{method} {name}")
            try:
                response = send(SYSTEM, self.session, method, url, timeouts=self.timeouts, gate=self.gate,
                                headers={"Authorization": f"Bearer {token}"}, **kwargs)
            except AuthError:
                self._drop_token(token)
                if attempt == 2:
                    raise
                log.info("advoware: %s %s -> 401, refreshing the token once", method, name)
            except RateLimited as exc:
                if self.gate is not None and exc.retry_after and not isinstance(exc, BudgetExhausted):
                    self.gate.pause(exc.retry_after)
                raise
            else:
                if not response.content:
                    return None
                try:
                    return response.json()
                except ValueError:
                    raise ApiError(f"{SYSTEM}: {method} {name}: answer is not JSON", system=SYSTEM) from None
        raise AssertionError("unreachable")

    # --- Beteiligte ---
    def get_beteiligte(self, betnr: int) -> dict:
        """The Beteiligter with its `kommunikation` list; `NotFound` when it was deleted."""
        return _one(self._call("GET", f"/Beteiligte/{int(betnr)}", "Beteiligte"), "Beteiligte")

    def create_beteiligte(self, data: dict) -> dict:
        """Create a Beteiligter; the answer carries the new `betNr` and `rowId`."""
        return _one(self._call("POST", "/Beteiligte", "Beteiligte", json=data), "Beteiligte")

    def update_beteiligte(self, betnr: int, record: dict) -> dict:
        """PUT = full replace of the writable fields: pass the whole merged record. Returns it with its new rowId."""
        return _one(self._call("PUT", f"/Beteiligte/{int(betnr)}", "Beteiligte", json=record), "Beteiligte")

    # --- Kommunikationen (no delete: Advoware answers 403) ---
    def create_kommunikation(self, betnr: int, entry: dict) -> dict:
        return _one(self._call("POST", f"/Beteiligte/{int(betnr)}/Kommunikationen", "Kommunikationen",
                               json=entry), "Kommunikation")

    def update_kommunikation(self, betnr: int, komm_id: int, entry: dict) -> dict:
        """Replace tlf/bemerkung/online of one entry (kommKz cannot change); send the whole entry."""
        return _one(self._call("PUT", f"/Beteiligte/{int(betnr)}/Kommunikationen/{int(komm_id)}",
                               "Kommunikationen", json=entry), "Kommunikation")

    # --- Adressen (SPEC §11: no delete, PUT by position, only four fields writable) ---
    def list_adressen(self, betnr: int) -> list[dict]:
        """A party's addresses in `reihenfolgeIndex` order; `NotFound` when the party was deleted."""
        return list(self._call("GET", f"/Beteiligte/{int(betnr)}/Adressen", "Adressen") or [])

    def create_adresse(self, betnr: int, address: dict) -> dict:
        """POST an address with any of its 11 fields (the only way to set the read-only ones)."""
        return _one(self._call("POST", f"/Beteiligte/{int(betnr)}/Adressen", "Adressen", json=address), "Adresse")

    def update_adresse(self, betnr: int, match: Callable[[dict], bool], address: dict) -> dict:
        """PUT the four writable fields (`ADRESSE_WRITABLE`, all sent: a PUT clears what it lacks) of the one
        address `match` picks, at the position a GET right before shows (positions shift when a person adds
        or removes addresses). `NotFound` when no address matches, `AmbiguousAddress` when several do;
        `AddressMoved` (transient) when the PUT's answer is not the matched address any more (a person
        reordered between the GET and the PUT: a retry looks again)."""
        found = [a for a in self.list_adressen(betnr) if match(a)]
        if not found:
            raise NotFound(f"{SYSTEM}: Adresse of Beteiligter {int(betnr)} not found", status=404, system=SYSTEM)
        if len(found) > 1:
            raise AmbiguousAddress(f"{SYSTEM}: {len(found)} addresses of Beteiligter {int(betnr)} match",
                                   system=SYSTEM)
        index = int(found[0]["reihenfolgeIndex"])
        body = {name: address.get(name) for name in ADRESSE_WRITABLE}
        answer = _one(self._call("PUT", f"/Beteiligte/{int(betnr)}/Adressen/{index}", "Adressen", json=body),
                      "Adresse")
        if not match({**answer, **{name: found[0].get(name) for name in ADRESSE_WRITABLE}}):  # as before the PUT
            raise AddressMoved(f"{SYSTEM}: address {index} of Beteiligter {int(betnr)} moved during the PUT",
                               system=SYSTEM)
        return answer

    # --- Mitarbeiter and Termine ---
    def list_mitarbeiter(self, aktiv: bool | None = None) -> list[dict]:
        params = {} if aktiv is None else {"aktiv": "true" if aktiv else "false"}
        return list(self._call("GET", "/Mitarbeiter", "Mitarbeiter", params=params) or [])

    def list_termine(self, kuerzel: str, start, end) -> list[dict]:
        """The Termine of one employee overlapping the days `start`..`end` (inclusive)."""
        params = {"kuerzel": kuerzel, "from": _day(start), "to": _day(end)}
        return list(self._call("GET", "/Termine", "Termine", params=params) or [])

    def get_termin(self, frnr: int) -> dict:
        return _one(self._call("GET", "/Termine", "Termine", params={"frnr": int(frnr)}), "Termin")

    def create_termin(self, termin: dict) -> dict:
        return _one(self._call("POST", "/Termine", "Termine", json=termin), "Termin")

    def update_termin(self, frnr: int, termin: dict) -> dict:
        """Full replace of a Termin (send all fields); returns it with its new rowId."""
        return _one(self._call("PUT", "/Termine", "Termine", json={**termin, "frNr": int(frnr)}), "Termin")

    def delete_termin(self, frnr: int) -> None:
        self._call("DELETE", "/Termine", "Termine", params={"frnr": int(frnr)})

    # --- the generic call (the Advoware proxy) ---
    def forward(self, method: str, path: str, *, params=None, body: bytes | None = None,
                extra_headers: dict | None = None, max_bytes: int = 8 << 20, admit=None) -> RawAnswer:
        """One call to `API + path` with the shared token, answered as received (any status).

        `admit()` runs before every attempt (default: the rate gate's polite wait); a 401 drops the token
        and retries once with a fresh one (admitted again). The answer is read up to `max_bytes`
        (`AnswerTooLarge` beyond); transport failures raise `Unavailable` (`TimedOut` for timeouts).
        No redirect is followed and nothing is retried at the transport level. The token is sent only to
        Advoware: should Advoware echo it, it is replaced in the body and its headers are dropped, so it is
        in nothing this returns.

        It goes through the session's urllib3 pool directly rather than `requests` (the proxy's hot path:
        requests' own work per call costs ~0.8 ms here, docs/advoware-proxy.md).
        """
        url = self.base_url + API + path + (f"?{urlencode(params)}" if params else "")
        admit = admit or (self.gate.wait if self.gate is not None else (lambda: None))
        headers = {**(extra_headers or {}), "Accept": "application/json", "Accept-Encoding": "gzip, deflate"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        pool = self.session.get_adapter(url).poolmanager
        timeout = urllib3.Timeout(connect=self.timeouts.connect, read=self.timeouts.read)
        for attempt in (1, 2):
            admit()
            token = self._forward_token()
            self._count(f"{method} forward")
            response = _urlopen(pool, method, url, body, {**headers, "Authorization": f"Bearer {token}"}, timeout)
            read = False
            try:
                if response.status == 401 and attempt == 1:
                    self._remembered = None
                    self._drop_token(token)
                    log.info("advoware: %s forward -> 401, refreshing the token once", method)
                    continue
                if response.status == 429 and self.gate is not None:
                    self.gate.pause(parse_retry_after(response.headers.get("Retry-After")) or 0)
                answer = RawAnswer(response.status, dict(response.headers), _read_limited(response, max_bytes))
                read = True
                return _without_token(answer, token)
            finally:
                if not read:  # an answer not read to the end leaves its connection unusable: drop it
                    response.close()
                response.release_conn()  # a fully read one goes back to the pool (keep-alive)
        raise AssertionError("unreachable")

    def _forward_token(self) -> str:
        """The shared token, remembered in this process for FORWARD_TOKEN_MEMORY seconds (a Redis read less per
        proxied call; the token lives far longer than that, and a 401 forgets it at once)."""
        remembered = self._remembered
        if remembered is not None and remembered[1] > time.monotonic():
            return remembered[0]
        token = self.token()
        self._remembered = (token, time.monotonic() + FORWARD_TOKEN_MEMORY)
        return token


def _urlopen(pool, method: str, url: str, body, headers: dict, timeout) -> "urllib3.BaseHTTPResponse":
    """One request on the pool, failures mapped like `integrations.http.send` maps them."""
    from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError

    where = f"{SYSTEM}: {method} {urlsplit(url).path}"
    try:
        return pool.urlopen(method, url, body=body, headers=headers, retries=False, redirect=False,
                            timeout=timeout, preload_content=False)
    except NewConnectionError:  # before ConnectTimeoutError: urllib3 makes it a subclass of it
        raise Unavailable(f"{where} connection failed", system=SYSTEM) from None
    except ConnectTimeoutError:
        raise TimedOut(f"{where} connect timed out", system=SYSTEM) from None
    except ReadTimeoutError:
        raise TimedOut(f"{where} timed out", system=SYSTEM, maybe_sent=True) from None
    except HTTPError:
        raise Unavailable(f"{where} connection failed", system=SYSTEM, maybe_sent=True) from None


def _without_token(answer: RawAnswer, token: str) -> RawAnswer:
    """The answer with every copy of the token replaced (also JSON-escaped) and headers naming it dropped."""
    body = answer.body
    for form in {token, token.replace("/", "\\/")}:
        body = body.replace(form.encode(), b"[redacted]")
    headers = {k: v for k, v in answer.headers.items() if token not in v}
    return RawAnswer(answer.status, headers, body)


def _read_limited(response, max_bytes: int) -> bytes:
    """The (decoded) body of a streamed answer, at most `max_bytes` (else `AnswerTooLarge`, the rest unread)."""
    from urllib3.exceptions import HTTPError, ReadTimeoutError

    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise AnswerTooLarge(f"{SYSTEM}: answer of {declared} bytes exceeds {max_bytes}", system=SYSTEM)
    try:
        data = response.read(max_bytes + 1, decode_content=True)
    except ReadTimeoutError:
        raise TimedOut(f"{SYSTEM}: reading the answer timed out", system=SYSTEM, maybe_sent=True) from None
    except HTTPError:
        raise Unavailable(f"{SYSTEM}: reading the answer failed", system=SYSTEM, maybe_sent=True) from None
    if len(data) > max_bytes:
        raise AnswerTooLarge(f"{SYSTEM}: answer exceeds {max_bytes} bytes", system=SYSTEM)
    return data
