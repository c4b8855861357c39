"""One face for the two EspoCRM backends of the contract tests: the simulator and the real server.

A `Backend` offers the product's client as the integration user (`client`),
an ordinary user's REST session (`user(method, path, ...)`), webhook delivery
now (`deliver_webhooks()`), and a receiving sink. Everything goes over real
HTTP on both; only how a user logs in and how the webhook job is kicked differ.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Callable

import requests

from integrations.espocrm import EspoCrmClient

SIM_INTEGRATION_KEY = "sandbox-integration-key"
SIM_ALICE_KEY = "sandbox-alice-key"


@dataclass
class Backend:
    name: str
    url: str                                  # base URL, without /api/v1
    client: EspoCrmClient
    user_session: requests.Session
    deliver_webhooks: Callable[[], object]
    integration_user_id: str

    @property
    def api(self) -> str:
        return f"{self.url}/api/v1"

    def user(self, method: str, path: str, **kwargs) -> requests.Response:
        """One REST call as the ordinary user `alice` (a user edit)."""
        return self.user_session.request(method, f"{self.api}/{path}", timeout=30, **kwargs)

    def raw(self, method: str, path: str, **kwargs) -> requests.Response:
        """One REST call as the integration user, without the client's error mapping."""
        return self.client.session.request(method, f"{self.api}/{path}", timeout=30, **kwargs)

    def user_create(self, fields: dict, entity: str = "CBeteiligte") -> dict:
        response = self.user("POST", entity, json=fields)
        assert response.status_code == 200, (response.status_code, response.headers.get("X-Status-Reason"))
        return response.json()

    def user_update(self, record_id: str, fields: dict, entity: str = "CBeteiligte") -> dict:
        response = self.user("PUT", f"{entity}/{record_id}", json=fields)
        assert response.status_code == 200, (response.status_code, response.headers.get("X-Status-Reason"))
        return response.json()


def unique(prefix: str = "T") -> str:
    """A last name no other test uses (records are not deleted between tests on the real server)."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def simulator_backend(sandbox) -> Backend:
    state = sandbox.state("espocrm")
    url = sandbox.url("espocrm")
    session = requests.Session()
    session.headers["X-Api-Key"] = SIM_ALICE_KEY
    return Backend("simulator", url, EspoCrmClient(url, SIM_INTEGRATION_KEY), session, state.flush_webhooks,
                   state.integration_user["id"])


def real_backend(real) -> Backend:
    return Backend("real", real.url, real.client(), real.user_session(), real.run_job, real.integration_user_id)
