"""Issue 15 end to end, through the real worker and the Advoware simulator: with the shared Advoware window
filled up to per_minute - ADVOWARE_INTERACTIVE_RESERVE, a check (the freshness checker's
`beteiligte.sync(…, "check", "sweep")`) and the calendar's fan-out (`calendar.sync_all`) wait at the gate,
a webhook-triggered sync goes through at once; once the window empties the background work completes."""
from __future__ import annotations

import time

from bitbylaw_tasks import messages
from bitbylaw_tasks.celery_app import app, settings_of
from bitbylaw_tasks.clients import clients_for
from integrations.rategate import BACKGROUND, calls_as


def test_background_waits_at_the_reserve_while_a_webhook_sync_goes_through(sandbox, celery_worker, lock_redis):
    from beteiligte_helpers import linked_record
    from conftest import wait_idle

    settings = settings_of(app)
    record = linked_record(sandbox)
    edited = linked_record(sandbox, {"firstName": "Erika", "lastName": "Eilig"})
    sandbox.state("advoware").add_mitarbeiter("PR", "Paula Reserve", "pr@kanzlei.example")
    wait_idle()
    gate = clients_for(settings).advoware.gate
    assert gate.reserve == settings.advoware_interactive_reserve > 0
    with calls_as(BACKGROUND):  # other background work fills the window up to its ceiling
        while gate.try_acquire() is None:
            pass
    assert gate.used() == settings.advoware_max_requests_per_minute - gate.reserve

    check = app.send_task(messages.BETEILIGTE_SYNC, (record["id"], "check", "sweep"))
    fan_out = app.send_task("calendar.sync_all")
    started = time.monotonic()
    app.send_task(messages.BETEILIGTE_SYNC, (edited["id"], "update", "webhook")).get(timeout=20)
    assert time.monotonic() - started < 5  # interactive: the reserve admits it without waiting
    time.sleep(0.5)
    assert not check.ready() and not fan_out.ready()  # background: refused at the ceiling, waiting
    assert gate.used() > settings.advoware_max_requests_per_minute - gate.reserve  # the webhook's calls

    lock_redis.delete(gate._keys[1])  # the window empties (a minute later)
    assert fan_out.get(timeout=20)["employees"] >= 1
    check.get(timeout=20)
    wait_idle()
