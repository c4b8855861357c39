"""The Advoware simulator's security gateway: fixed credentials, the signed token endpoint, bearer checks.

Mirrors the real flow (the original product's client and advoware's API
guide): `POST /api/v1/Token` with a JSON body
`{AppID, Kanzlei, Database, User, Role, Product, Password, Nonce,
HMAC512Signature, RequestTimeStamp}` where the signature is
`base64(HMAC-SHA512(key=base64decode(api_key), msg="product:app:nonce:timestamp"))`.
The answer is `{"access_token", "token_type": "bearer", "expires_in"}`.
The registry rejects a forged signature, wrong credentials, a timestamp more
than `max_skew` seconds off and a nonce seen before; tokens expire after
`lifetime` seconds.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

TOKEN_PATH = "/api/v1/Token"

# Fixed sandbox credentials, reported by /_sandbox/info (they protect nothing real).
SANDBOX_CREDENTIALS = {
    "app_id": "bitbylaw-sandbox",
    "product_id": "64",
    "kanzlei": "SANDBOX",
    "database": "ADVOWARE",
    "user": "SYNC",
    "role": "2",
    "password": "sandbox-password",
    "api_key": base64.b64encode(b"bitbylaw-sandbox-advoware-api-key").decode("ascii"),
}

# Body field of the token request -> credential it must equal.
_BODY_FIELDS = {
    "AppID": "app_id", "Product": "product_id", "Kanzlei": "kanzlei", "Database": "database",
    "User": "user", "Role": "role", "Password": "password",
}


class TokenRejected(Exception):
    """The token request is refused; `status` is 400 (malformed) or 401 (not authenticated)."""

    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


def expected_signature(api_key_b64: str, product: str, app: str, nonce: str, timestamp: str) -> str:
    """The server-side computation of `HMAC512Signature` (independent of the product's client)."""
    key = base64.b64decode(api_key_b64)
    message = f"{product}:{app}:{nonce}:{timestamp}".encode("utf-8")
    return base64.b64encode(hmac.new(key, message, hashlib.sha512).digest()).decode("ascii")


def _parse_timestamp(raw: str) -> float:
    """Seconds since the epoch of an ISO-8601 UTC timestamp (`2026-02-08T10:00:00.123Z`)."""
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


@dataclass
class TokenRegistry:
    """Issued tokens, seen nonces and a count of successful token fetches. Thread-safe."""

    lifetime: float = 3600.0
    max_skew: float = 300.0
    credentials: dict = field(default_factory=lambda: dict(SANDBOX_CREDENTIALS))

    def __post_init__(self):
        self.lock = threading.Lock()
        self.tokens: dict[str, float] = {}   # token -> expiry (time.time())
        self.nonces: dict[str, float] = {}   # nonce -> when seen
        self.fetches = 0
        self.rejections = 0

    def issue(self, body: object) -> dict:
        """Check a token request body; return the token answer or raise `TokenRejected`."""
        try:
            return self._issue(body)
        except TokenRejected:
            with self.lock:
                self.rejections += 1
            raise

    def _issue(self, body: object) -> dict:
        if not isinstance(body, dict):
            raise TokenRejected(400, "invalid_request", "body must be a JSON object")
        required = list(_BODY_FIELDS) + ["Nonce", "HMAC512Signature", "RequestTimeStamp"]
        missing = [name for name in required if body.get(name) in (None, "")]
        if missing:
            raise TokenRejected(400, "invalid_request", "missing fields: " + ", ".join(missing))
        creds = self.credentials
        for name, cred in _BODY_FIELDS.items():
            if not hmac.compare_digest(str(body[name]), str(creds[cred])):
                raise TokenRejected(401, "invalid_client", "unknown app, Kanzlei, user or password")
        nonce, stamp = str(body["Nonce"]), str(body["RequestTimeStamp"])
        try:
            when = _parse_timestamp(stamp)
        except ValueError:
            raise TokenRejected(400, "invalid_request", "RequestTimeStamp is not ISO-8601") from None
        now = time.time()
        if abs(now - when) > self.max_skew:
            raise TokenRejected(401, "invalid_request", "RequestTimeStamp outside the allowed window")
        try:
            expected = expected_signature(creds["api_key"], creds["product_id"], creds["app_id"], nonce, stamp)
        except (binascii.Error, ValueError):
            raise TokenRejected(401, "invalid_client", "signature mismatch") from None
        if not hmac.compare_digest(str(body["HMAC512Signature"]), expected):
            raise TokenRejected(401, "invalid_client", "signature mismatch")
        with self.lock:
            self._forget_old_nonces(now)
            if nonce in self.nonces:
                raise TokenRejected(401, "invalid_request", "nonce already used")
            self.nonces[nonce] = now
            token = secrets.token_urlsafe(32)
            self.tokens[token] = now + self.lifetime
            self.fetches += 1
        return {"access_token": token, "token_type": "bearer", "expires_in": self.lifetime}

    def _forget_old_nonces(self, now: float) -> None:
        # A nonce older than twice the skew window can never be replayed successfully anyway.
        horizon = now - 2 * self.max_skew
        for nonce in [n for n, seen in self.nonces.items() if seen < horizon]:
            del self.nonces[nonce]

    def valid(self, authorization: str | None) -> bool:
        """True when the `Authorization: Bearer <token>` header names a live token."""
        if not authorization or not authorization.startswith("Bearer "):
            return False
        token = authorization[len("Bearer "):].strip()
        with self.lock:
            expiry = self.tokens.get(token)
            if expiry is None:
                return False
            if expiry <= time.time():
                del self.tokens[token]
                return False
            return True

    def revoke_all(self) -> int:
        """Forget every issued token (as after a server restart); the number revoked."""
        with self.lock:
            count = len(self.tokens)
            self.tokens.clear()
            return count

    def stats(self) -> dict:
        with self.lock:
            now = time.time()
            return {"fetches": self.fetches, "rejections": self.rejections,
                    "active": sum(1 for exp in self.tokens.values() if exp > now),
                    "lifetime": self.lifetime}

    def reset(self) -> None:
        with self.lock:
            self.tokens.clear()
            self.nonces.clear()
            self.fetches = 0
            self.rejections = 0


def credentials_info(registry: TokenRegistry) -> dict:
    """What `/_sandbox/info` reports: the credentials a client needs and where the token comes from."""
    return {"credentials": dict(registry.credentials), "token_path": TOKEN_PATH,
            "token_lifetime": registry.lifetime, "token_max_skew": registry.max_skew}


__all__ = ["SANDBOX_CREDENTIALS", "TOKEN_PATH", "TokenRegistry", "TokenRejected", "expected_signature",
           "credentials_info"]
