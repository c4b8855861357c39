"""An EspoCRM administrator's client: what `bitbylaw espocrm setup` reads and writes (SPEC §3.1).

Basic auth as an admin user (never the integration user's key); the same
transport, timeouts and exception hierarchy as `integrations.espocrm`. Only
what setting up the product needs: the caller, metadata, roles, API users,
and the application settings.
"""
from __future__ import annotations

import requests

from integrations.espocrm import W, api_root, encode_where
from integrations.http import Timeouts, make_session, send

SYSTEM = "espocrm"


class EspoCrmAdminClient:
    """Talks to one EspoCRM as an administrator (basic auth)."""

    def __init__(self, base_url: str, user: str, password: str, *, timeouts: Timeouts = Timeouts(),
                 session: requests.Session | None = None):
        self.api = api_root(base_url)
        self.timeouts = timeouts
        self.session = session or make_session()
        self.session.auth = (user, password)
        self.session.headers.update({"Accept": "application/json"})

    def __repr__(self) -> str:
        return f"EspoCrmAdminClient({self.api!r})"

    def _call(self, method: str, path: str, **kwargs):
        response = send(SYSTEM, self.session, method, f"{self.api}/{path}", timeouts=self.timeouts, **kwargs)
        return response.json() if response.content else None  # Metadata answers an empty body for no such key

    def whoami(self) -> dict:
        """The authenticated user (`GET App/user` -> `user`)."""
        return self._call("GET", "App/user")["user"]

    def metadata(self, key: str):
        """One metadata branch, e.g. `scopes.CBeteiligte` (None when it does not exist)."""
        return self._call("GET", "Metadata", params={"key": key}) or None

    def find_one(self, entity: str, attribute: str, value: str) -> dict | None:
        params = encode_where([W.equals(attribute, value)]) + [("maxSize", "2")]
        found = self._call("GET", entity, params=params).get("list", [])
        return found[0] if found else None

    def get(self, entity: str, record_id: str) -> dict:
        return self._call("GET", f"{entity}/{record_id}")

    def create(self, entity: str, data: dict) -> dict:
        return self._call("POST", entity, json=data)

    def update(self, entity: str, record_id: str, data: dict) -> dict:
        return self._call("PUT", f"{entity}/{record_id}", json=data)

    def settings(self) -> dict:
        return self._call("GET", "Settings")

    def update_settings(self, data: dict) -> dict:
        return self._call("PUT", "Settings", json=data)
