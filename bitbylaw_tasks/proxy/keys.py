"""The proxy callers' API keys, stored hashed in Redis DB 1: create (the secret is shown once), look up, list, revoke.

A secret is `bbp_<key id>_<43 random url-safe chars>` (256 bits from `secrets`). Redis keeps only its SHA-256:
a slow password hash (bcrypt, argon2) protects guessable passwords, not 256 random bits, and would cost
more than the whole proxy call. The key id inside the secret finds the record in one read; the hash is
compared in constant time. A revoked key stays listed (the audit names it) and never authenticates again.

`KeyMemory` lets a web process skip the lookup on a key it has seen: it remembers only what never changes
after `create` (name, scope, allow-list, hash); whether the key is still active is asked of Redis on every
call all the same, by the proxy's admission script (`budget.py`) or by `lookup` (`service.py`).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass

import redis

from bitbylaw_tasks.proxy.rules import SCOPES, normalise_prefix

KEY_PREFIX = "proxy:key:"     # hash per key id: name, scope, allow (JSON), hash, created_at, revoked_at
NAMES = "proxy:key_names"     # hash name -> key id (the newest key of that name)
_SECRET = re.compile(r"^bbp_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


class KeyRefused(ValueError):
    """A key operation the operator asked for cannot be done (bad name, duplicate, unknown key)."""


@dataclass(frozen=True)
class ProxyKey:
    id: str
    name: str
    scope: str
    allow: tuple[str, ...]
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def digest(secret: str) -> str:
    """The SHA-256 of a secret, as stored (hex)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _from_hash(key_id: str, raw: dict) -> ProxyKey:
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    revoked = fields.get("revoked_at")
    return ProxyKey(id=key_id, name=fields["name"], scope=fields["scope"], allow=tuple(json.loads(fields["allow"])),
                    created_at=float(fields["created_at"]), revoked_at=float(revoked) if revoked else None)


def create(client: redis.Redis, name: str, scope: str, allow, *, now: float | None = None) -> tuple[ProxyKey, str]:
    """A new key and its secret (returned here only: Redis keeps the hash)."""
    name = name.strip().lower()
    if not _NAME.match(name):
        raise KeyRefused(f"key name {name!r}: 1-40 of a-z 0-9 _ . - (starting with a letter or digit)")
    if scope not in SCOPES:
        raise KeyRefused(f"scope {scope!r}: expected {' or '.join(SCOPES)}")
    try:
        prefixes = tuple(dict.fromkeys(normalise_prefix(p) for p in allow))
    except ValueError as exc:
        raise KeyRefused(str(exc)) from None
    if not prefixes:
        raise KeyRefused("a key needs at least one --allow prefix")
    existing = client.hget(NAMES, name)
    if existing and find(client, name).active:
        raise KeyRefused(f"a key named {name!r} exists; revoke it first")
    key_id = secrets.token_hex(8)
    secret = f"bbp_{key_id}_{secrets.token_urlsafe(32)}"
    key = ProxyKey(key_id, name, scope, prefixes, time.time() if now is None else now)
    pipe = client.pipeline()
    pipe.hset(KEY_PREFIX + key_id, mapping={"name": name, "scope": scope, "allow": json.dumps(list(prefixes)),
                                            "hash": digest(secret), "created_at": repr(key.created_at)})
    pipe.hset(NAMES, name, key_id)
    pipe.execute()
    return key, secret


def lookup(client: redis.Redis, secret: str) -> ProxyKey | None:
    """The active key this secret belongs to, else None (malformed, unknown, wrong or revoked)."""
    match = _SECRET.match(secret)
    if not match:
        return None
    key_id = match.group(1)
    raw = client.hgetall(KEY_PREFIX + key_id)
    if not raw or not hmac.compare_digest(raw.get(b"hash", b"").decode(), digest(secret)):
        return None
    key = _from_hash(key_id, raw)
    return key if key.active else None


class KeyMemory:
    """Key records this process has looked up, by key id, with the digest they were verified against.

    `recall(secret)` gives a remembered key when the secret hashes to the remembered digest (compared in constant
    time), else None (then `lookup`). Safe to keep without expiry because nothing in it can change: a key's
    name, scope, allow-list and hash are fixed at `create`, revocation only adds `revoked_at`, which the caller
    checks in Redis on every call. Bounded (cleared when full: an attacker's unknown ids are never remembered,
    only keys whose secret was right)."""

    def __init__(self, max_keys: int = 1024):
        self.max_keys = max_keys
        self._known: dict[str, tuple[str, ProxyKey]] = {}

    def recall(self, secret: str) -> tuple[ProxyKey, str] | None:
        match = _SECRET.match(secret)
        known = self._known.get(match.group(1)) if match else None
        if known is None:
            return None
        presented = digest(secret)
        return (known[1], presented) if hmac.compare_digest(known[0], presented) else None

    def remember(self, key: ProxyKey, key_digest: str) -> None:
        if len(self._known) >= self.max_keys:
            self._known.clear()
        self._known[key.id] = (key_digest, key)

    def forget(self, key_id: str) -> None:
        self._known.pop(key_id, None)


def find(client: redis.Redis, name: str) -> ProxyKey | None:
    key_id = client.hget(NAMES, name.strip().lower())
    if not key_id:
        return None
    raw = client.hgetall(KEY_PREFIX + key_id.decode())
    return _from_hash(key_id.decode(), raw) if raw else None


def list_keys(client: redis.Redis) -> list[ProxyKey]:
    """Every key, revoked ones included, oldest first."""
    keys = []
    for redis_key in client.scan_iter(match=KEY_PREFIX + "*", count=500):
        key_id = redis_key.decode()[len(KEY_PREFIX):]
        raw = client.hgetall(redis_key)
        if raw:
            keys.append(_from_hash(key_id, raw))
    return sorted(keys, key=lambda k: (k.created_at, k.name))


def revoke(client: redis.Redis, name: str, *, now: float | None = None) -> ProxyKey:
    """Revoke the active key of this name at once (the next call with it gets 401)."""
    key = find(client, name)
    if key is None or not key.active:
        raise KeyRefused(f"no active key named {name.strip().lower()!r}")
    when = time.time() if now is None else now
    client.hset(KEY_PREFIX + key.id, "revoked_at", repr(when))
    return ProxyKey(key.id, key.name, key.scope, key.allow, key.created_at, when)


def presented_secret(authorization: str, api_key: str) -> str | None:
    """The secret a request presents (`Authorization: Bearer …` or `X-Api-Key`); None when none, or when
    both headers are given and disagree."""
    bearer = ""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        bearer = value.strip()
    api_key = api_key.strip()
    if bearer and api_key and not hmac.compare_digest(bearer, api_key):
        return None
    return bearer or api_key or None
