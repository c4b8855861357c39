"""Build the product's clients from `Settings`: the real systems, or the sandbox when none is configured.

One set of clients per process (they hold keep-alive sessions); the request
budgets (`RateGate`) are shared by all processes through Redis DB 1.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from bitbylaw_tasks.redis_clients import lock_redis
from bitbylaw_tasks.settings import Settings
from integrations.advoware import AdvowareClient, AdvowareCredentials
from integrations.espocrm import EspoCrmClient
from integrations.http import Timeouts
from integrations.rategate import RateGate

# The sandbox simulators' fixed, documented credentials (they protect nothing real). Spelled out here
# rather than imported, so production code never imports the simulators (tests check they agree).
SANDBOX_ESPOCRM_KEY = "sandbox-integration-key"
SANDBOX_ADVOWARE_CREDENTIALS = {
    "app_id": "bitbylaw-sandbox", "product_id": "64", "kanzlei": "SANDBOX", "database": "ADVOWARE",
    "user": "SYNC", "role": "2", "password": "sandbox-password",
    "api_key": "Yml0YnlsYXctc2FuZGJveC1hZHZvd2FyZS1hcGkta2V5",  # base64 of the simulator's API key
}


def sandbox_url(settings: Settings, port: int) -> str:
    return f"http://{settings.sandbox_host}:{port}"


@dataclass(frozen=True)
class Clients:
    espocrm: EspoCrmClient
    advoware: AdvowareClient


def timeouts(settings: Settings) -> Timeouts:
    return Timeouts(connect=settings.http_connect_timeout, read=settings.http_read_timeout)


def espocrm_client(settings: Settings) -> EspoCrmClient:
    gate = RateGate(settings.lock_redis_url, "espocrm", settings.espocrm_max_requests_per_minute)
    if settings.espocrm_simulated:
        return EspoCrmClient(sandbox_url(settings, settings.sandbox_espocrm_port), SANDBOX_ESPOCRM_KEY, gate=gate,
                             timeouts=timeouts(settings))
    return EspoCrmClient(settings.espocrm_base_url, settings.espocrm_api_key, gate=gate, timeouts=timeouts(settings))


def advoware_client(settings: Settings, *, timeouts_: Timeouts | None = None) -> AdvowareClient:
    """The Advoware client (real or the simulator); the proxy passes its own `timeouts_`."""
    gate = RateGate(settings.lock_redis_url, "advoware", settings.advoware_max_requests_per_minute,
                    reserve=settings.advoware_interactive_reserve)
    redis = lock_redis(settings)
    limits_ = timeouts_ or timeouts(settings)
    if settings.advoware_simulated:
        return AdvowareClient(sandbox_url(settings, settings.sandbox_advoware_port),
                              AdvowareCredentials(**SANDBOX_ADVOWARE_CREDENTIALS), redis=redis, gate=gate,
                              timeouts=limits_, token_memory=settings.advoware_token_memory)
    return AdvowareClient.from_settings(settings, redis, gate=gate, timeouts=limits_)


def google_calendar_client(settings: Settings, subject_email: str | None = None):
    """A Google Calendar client acting as `subject_email` (domain-wide delegation), or the sandbox's user.

    Simulated (neither GOOGLE_CALENDAR_ENDPOINT nor GOOGLE_SERVICE_ACCOUNT_FILE set):
    the simulator at http://{SANDBOX_HOST}:{SANDBOX_GOOGLE_PORT}/calendar/v3/.
    Not cached: httplib2 connections are not thread-safe, and building one costs ~1 ms.
    """
    from integrations.google_calendar import GoogleCalendarClient

    if settings.google_simulated:
        settings = settings.replace(
            google_calendar_endpoint=sandbox_url(settings, settings.sandbox_google_port) + "/calendar/v3/")
    gate = RateGate(settings.lock_redis_url, "google", settings.google_max_requests_per_minute)
    return GoogleCalendarClient.from_settings(settings, subject_email, gate=gate)


_CACHE: dict[int, tuple[Settings, Clients]] = {}
_CACHE_LOCK = threading.Lock()


def clients_for(settings: Settings) -> Clients:
    """The process's clients for these settings (cached: one session pool per process)."""
    with _CACHE_LOCK:
        cached = _CACHE.get(id(settings))
        if cached is None or cached[0] is not settings:
            cached = (settings, Clients(espocrm=espocrm_client(settings), advoware=advoware_client(settings)))
            _CACHE[id(settings)] = cached
        return cached[1]
