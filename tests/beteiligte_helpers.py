"""Helpers for the Beteiligte end-to-end tests: the shim on a real port, waiting, running a sync."""
from __future__ import annotations

import threading
import time


from bitbylaw_tasks.celery_app import app
from bitbylaw_tasks.settings import get_settings
from bitbylaw_tasks.web import create_app
from bitbylaw_tasks.web.webhooks import register_secret
from conftest import wait_idle
from integrations.sandbox.kit import ServerThread

PERSON = {"firstName": "Max", "lastName": "Mustermann", "salutationName": "Herr", "titel": "Dr.",
          "dateOfBirth": "1970-03-15"}
COMPANY = {"firmenname": "Müller Bau GmbH", "rechtsform": "GmbH", "salutationName": "Firma"}


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")


def run_sync(entity_id: str, action: str = "check", source: str = "sweep", timeout: float = 30.0,
             task: str = "beteiligte.sync", args: tuple | None = None) -> dict:
    """Queue a sync like the sweep does, wait for its result, then for the worker to be idle again.

    Starting from an idle worker means the sync meets no leftover task holding
    the entity's lock; ending idle means whatever it handed off (the
    Kommunikation sync) has finished too, so the test sees a settled state.
    """
    wait_idle(timeout)
    result = app.send_task(task, args or (entity_id, action, source)).get(timeout=timeout)
    wait_idle(timeout)
    return result


def start_shim(sandbox, lock_redis) -> ServerThread:
    """The webhook shim on a free port, subscribed in the EspoCRM simulator for create/update/delete."""
    server = ServerThread(create_app(get_settings())).start()
    espo = sandbox.state("espocrm")
    for action in ("create", "update", "delete"):
        hook = espo.hooks.subscribe(f"CBeteiligte.{action}", f"{server.url}/vmh/webhook/beteiligte/{action}",
                                    espo.integration_user, skip_own=True)
        register_secret(lock_redis, hook["id"], hook["secretKey"])
    return server


def linked_record(sandbox, fields: dict = PERSON) -> dict:
    """A created, linked record, with the Kommunikation sync handed off by the create already finished
    (webhooks cleared: the test drives every later sync itself)."""
    espo = sandbox.state("espocrm")
    record = espo.human_create(fields)
    espo.hooks.clear()
    run_sync(record["id"], "create", "webhook")
    wait_idle()
    return espo_record(sandbox, record["id"])


def advoware_record(sandbox, betnr: int) -> dict | None:
    return sandbox.state("advoware").get_beteiligte(int(betnr))


def espo_record(sandbox, entity_id: str) -> dict:
    return sandbox.state("espocrm").get(entity_id)


def calls(sandbox, name: str) -> dict[str, int]:
    return sandbox.kit(name).calls()


def api_calls(sandbox, name: str) -> int:
    """Calls to the system's API proper (the Advoware token endpoint is counted separately)."""
    return sum(n for key, n in calls(sandbox, name).items() if "/Token" not in key)


class OnCall(threading.Thread):
    """Run `action` `delay` s after the simulator behind `kit` received its next `endpoint` call (which a
    fault holds open meanwhile, so the action lands inside it); never, if no such call comes before
    `finish()`."""

    def __init__(self, kit, endpoint: str, action, delay: float = 0.1):
        super().__init__(daemon=True)
        self.kit, self.endpoint, self.action, self.delay = kit, endpoint, action, delay
        self.before = kit.calls().get(endpoint, 0)
        self.stopped = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.stopped.wait(0.005):
            if self.kit.calls().get(self.endpoint, 0) > self.before:
                time.sleep(self.delay)
                self.action()
                return

    def finish(self) -> None:
        self.stopped.set()
        self.join()
