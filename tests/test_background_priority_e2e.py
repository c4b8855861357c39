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


def test_a_checks_kommunikation_hand_off_waits_at_the_reserve_like_the_check(sandbox, celery_worker, lock_redis):
    """A check that finds an Advoware-only Kommunikation change hands off a Kommunikation sync that is
    background work too (`priorities.handoff_source`): with the window at the background ceiling it waits,
    and goes through once the window empties. Before, it ran as interactive and took the reserve's places."""
    from beteiligte_helpers import espo_record, linked_record
    from conftest import wait_idle

    settings = settings_of(app)
    record = linked_record(sandbox)
    advoware = sandbox.state("advoware")
    advoware.human_add_kommunikation(int(record["betnr"]), 1, "+49 30 1234567")  # kommKz 1: Telefon
    wait_idle()
    gate = clients_for(settings).advoware.gate
    ceiling = settings.advoware_max_requests_per_minute - gate.reserve
    now, free = str(time.time()), ceiling - 1 - gate.used()
    for start in range(0, free, 10_000):  # other work fills the window to one place below the ceiling, just
        lock_redis.lpush(gate._keys[1], *[now] * min(10_000, free - start))  # now (one timestamp per call)
    assert gate.used() == ceiling - 1

    check = app.send_task(messages.BETEILIGTE_SYNC, (record["id"], "check", "sweep"))
    assert check.get(timeout=20)["path"] == "no_change"  # the check's one GET took the last place
    assert gate.used() == ceiling
    time.sleep(1.5)  # the hand-off was queued at once; as background work it waits at the ceiling
    assert "+4930" not in str(espo_record(sandbox, record["id"]).get("phoneNumberData"))
    assert gate.used() == ceiling

    lock_redis.delete(gate._keys[1])  # the window empties (a minute later)
    deadline = time.monotonic() + 20
    while "+49301234567" not in str(espo_record(sandbox, record["id"]).get("phoneNumberData")):
        assert time.monotonic() < deadline, "the handed-off Kommunikation sync never finished"
        time.sleep(0.2)
    wait_idle()
