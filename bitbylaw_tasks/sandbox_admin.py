"""`bitbylaw sandbox`: run the simulators as a process, seed them, and wire the shim's webhooks into them."""
from __future__ import annotations

import signal
import threading

from bitbylaw_tasks.settings import Settings

WEBHOOK_ACTIONS = ("create", "update", "delete")


def register_shim_webhooks(settings: Settings, espocrm) -> list[str]:
    """Subscribe `CBeteiligte.{create,update,delete}` to the shim and store each secret for the web workers."""
    from bitbylaw_tasks.redis_clients import lock_redis
    from bitbylaw_tasks.web.webhooks import register_secret

    urls = {action: f"http://127.0.0.1:{settings.web_port}/vmh/webhook/beteiligte/{action}"
            for action in WEBHOOK_ACTIONS}
    for hook in espocrm.list_webhooks():  # a restored state already has them: replace, never duplicate
        if hook.get("url") in urls.values():
            espocrm.delete_webhook(hook["id"])
    ids = []
    for action, url in urls.items():
        webhook_id, secret = espocrm.subscribe_webhook(f"CBeteiligte.{action}", url)
        register_secret(lock_redis(settings), webhook_id, secret)
        ids.append(webhook_id)
    return ids


def _wait_for_shim(settings: Settings, timeout: float = 30.0) -> None:
    """Give the web shim (started alongside by honcho) time to come up before webhooks are sent to it."""
    import time

    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{settings.web_port}/healthz", timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.5)


def seed_demo(sandbox, count: int) -> None:
    """Demo data: `count` parties created in EspoCRM *as a user* (so webhooks fire and the sync
    creates them in Advoware), and employees with Termine in Advoware for the calendar sync."""
    import random

    from faker import Faker

    from integrations.sandbox.advoware_seed import seed_state
    from integrations.sandbox.espocrm_seed import fake_beteiligte

    rng, faker = random.Random(7), Faker("de_DE")
    faker.seed_instance(7)
    if "espocrm" in sandbox.servers:
        espo = sandbox.state("espocrm")
        for _ in range(count):
            espo.human_create(fake_beteiligte(faker, rng))
    if "advoware" in sandbox.servers:
        seed_state(sandbox.state("advoware"), employees=3, termine_per_employee=10)


def serve_sandbox(settings: Settings, *, state_file: str | None = None, seed: int = 0,
                  register_webhooks: bool = False, webhook_interval: float = 2.0,
                  advoware_latency_ms: int = 0) -> int:
    from bitbylaw_tasks.clients import espocrm_client
    from bitbylaw_tasks.logs import configure_logging
    from integrations.sandbox.server import Sandbox

    configure_logging(settings)  # before the first request: werkzeug then keeps its access lines at DEBUG
    sandbox = Sandbox(host=settings.sandbox_host, espocrm_port=settings.sandbox_espocrm_port,
                      advoware_port=settings.sandbox_advoware_port, google_port=settings.sandbox_google_port,
                      webhook_interval=webhook_interval, advoware_latency_ms=advoware_latency_ms,
                      systems=settings.simulated_systems).start()
    loaded = bool(state_file) and sandbox.load_state(state_file)
    register_webhooks = register_webhooks and settings.espocrm_simulated  # a real EspoCRM: `espocrm setup`
    if register_webhooks:
        _wait_for_shim(settings)
        register_shim_webhooks(settings, espocrm_client(settings))
    if seed and not loaded:
        seed_demo(sandbox, seed)
        if register_webhooks:  # under `make run`: show the calendar sync at once, not after 15 minutes
            from bitbylaw_tasks.celery_app import app

            app.send_task("calendar.sync_all")
    for name in sandbox.servers:
        print(f"sandbox: {name:9s} {sandbox.url(name)}  (GET /_sandbox/info for credentials)", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    if state_file:
        sandbox.save_state(state_file)
    sandbox.stop()
    return 0
