"""Each system real or simulated on its own: the sandbox serves only the simulated ones, the clients
follow the same rule (a real EspoCRM with simulated Advoware and Google is a firm's staging system)."""
from __future__ import annotations

import pytest
import requests

from bitbylaw_tasks.clients import advoware_client, espocrm_client, google_calendar_client, sandbox_url
from bitbylaw_tasks.settings import load_settings
from integrations.sandbox.server import Sandbox


def test_the_sandbox_serves_only_the_systems_it_is_asked_for(tmp_path):
    sandbox = Sandbox(systems=("advoware", "google")).start()
    try:
        assert set(sandbox.servers) == {"advoware", "google"}
        for name in ("advoware", "google"):
            assert requests.get(sandbox.url(name) + "/_sandbox/info", timeout=5).status_code == 200
        sandbox.save_state(tmp_path / "state.json")
        assert sandbox.load_state(tmp_path / "state.json")
    finally:
        sandbox.stop()
    with pytest.raises(ValueError):
        Sandbox(systems=("espocrm", "sap")).start()


def test_clients_go_to_the_real_system_or_the_simulator_each_on_its_own(redis_server):
    lock_url = redis_server.url(1)
    settings = load_settings({"ESPOCRM_BASE_URL": "https://crm.kanzlei.test", "ESPOCRM_API_KEY": "k",
                              "REDIS_LOCK_URL": lock_url})
    assert settings.simulated_systems == ("advoware", "google")
    assert espocrm_client(settings).api == "https://crm.kanzlei.test/api/v1"
    assert advoware_client(settings).base_url == sandbox_url(settings, settings.sandbox_advoware_port)
    google_calendar_client(settings)  # the simulator: no service account needed
    real_google = load_settings({"GOOGLE_SERVICE_ACCOUNT_FILE": "/nonexistent/google.json", "REDIS_LOCK_URL": lock_url})
    assert real_google.simulated_systems == ("espocrm", "advoware")
    assert espocrm_client(real_google).api == sandbox_url(real_google, real_google.sandbox_espocrm_port) + "/api/v1"
    with pytest.raises(FileNotFoundError):  # the real API, with the configured service account
        google_calendar_client(real_google, "anwalt@kanzlei.test")
