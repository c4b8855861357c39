"""Who gets a new lead or a call: a fixed user, round-robin over a team, or a 3CX extension's user."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import redis

from integrations.espocrm_crm import EspoCrmRecords

ROUND_ROBIN_KEY = "inbound:rr:"
_USERS: dict[tuple[str, str], "User"] = {}  # (EspoCRM API, userName) -> user, per process
_USERS_LOCK = threading.Lock()


@dataclass(frozen=True)
class User:
    id: str
    user_name: str


def round_robin_pick(users: list[User], counter: int) -> User | None:
    """The user whose turn the `counter`-th assignment is (counter starts at 1)."""
    return users[(counter - 1) % len(users)] if users else None


def user_named(records: EspoCrmRecords, user_name: str) -> User | None:
    """An EspoCRM user by userName (cached per process), or None when there is none."""
    if not user_name:
        return None
    key = (records.client.api, user_name)
    with _USERS_LOCK:
        if key in _USERS:
            return _USERS[key]
    found = records.client.find_user(user_name)
    if found is None:
        return None  # not cached: the user may be created later
    user = User(found["id"], found["userName"])
    with _USERS_LOCK:
        _USERS[key] = user
    return user


def lead_assignee(records: EspoCrmRecords, client: redis.Redis, team_id: str, user_name: str) -> User | None:
    """A team set: its active users in turn (a shared counter in Redis); else the fixed user; else nobody."""
    if team_id:
        users = [User(u["id"], u["userName"]) for u in records.team_users(team_id)]
        if users:
            return round_robin_pick(users, int(client.incr(ROUND_ROBIN_KEY + team_id)))
    return user_named(records, user_name)


def extension_user(records: EspoCrmRecords, mapping: dict[str, str], extension: str) -> User | None:
    """The EspoCRM user of a 3CX extension (THREECX_EXTENSION_USERS), or None when unmapped."""
    return user_named(records, mapping.get((extension or "").strip(), ""))
