"""Task messages are declared once (`bitbylaw_tasks.messages`) and each one binds to its registered task."""
from __future__ import annotations

import inspect

import pytest

from bitbylaw_tasks import messages
from bitbylaw_tasks.beteiligte.service import Followups, SyncOutcome, followups
from bitbylaw_tasks.calendar.context import delegates, subject_for
from bitbylaw_tasks.settings import load_settings

BUILT = [messages.beteiligte_sync("6618aa00000000001", "update", "webhook"),
         messages.beteiligte_sync("6618aa00000000001", "delete", "webhook"),
         messages.kommunikation_sync("6618aa00000000001", "to_advoware", True),
         messages.calendar_sync_employee("AB"),
         messages.adressen_sync("6618aa00000000001", "webhook"),
         messages.adressen_route("6618aa00000000002", "update")]


@pytest.mark.parametrize("message", BUILT, ids=lambda m: m.task_name)
def test_each_message_binds_to_its_registered_tasks_signature(celery_app, message):
    celery_app.loader.import_default_modules()  # the task modules of `include`, as a worker imports them
    task = celery_app.tasks[message.task_name]
    inspect.signature(task.run).bind(*message.args)
    assert all(isinstance(a, (str, bool, int)) for a in message.args)  # ids and flags only (Flower shows them)


def test_coalescing_keys_a_delete_apart_and_the_domains_apart():
    update, delete, komm, cal, adressen, route = (m.coalesce_key for m in BUILT)
    assert update != delete and update != komm and len({update, delete, komm, cal, adressen, route}) == 6
    assert messages.beteiligte_sync("x", "check", "sweep").coalesce_key == messages.beteiligte_sync(
        "x", "create", "webhook").coalesce_key


@pytest.mark.parametrize("path,due,expected", [
    ("create", True, Followups(True, False, True, True)),
    ("no_change", False, Followups(True, False, False, True)),
    ("conflict", True, Followups(True, False, True, True)),
    ("missing_in_espocrm", False, Followups(False, True, False)),
    ("deleted_in_advoware", False, Followups(False, False, False)),
    ("backoff", True, Followups(False, False, False)),
])
def test_what_follows_a_beteiligte_sync(path, due, expected):
    assert followups(SyncOutcome("e1", path, kommunikation_due=due)) == expected


def test_whom_the_calendar_acts_as():
    assert not delegates(load_settings({}))  # the simulator serves one user
    assert not delegates(load_settings({"GOOGLE_CALENDAR_ENDPOINT": "http://g.test/calendar/v3/"}))
    assert delegates(load_settings({"GOOGLE_SERVICE_ACCOUNT_FILE": "/etc/g.json"}))
    staff = [{"kuerzel": "AB", "email": "ab@kanzlei.test"}, {"kuerzel": "CD", "email": ""}]
    assert subject_for("AB", None, staff) == "ab@kanzlei.test"
    assert subject_for("AB", "remembered@kanzlei.test", None) == "remembered@kanzlei.test"
    assert subject_for("CD", None, staff) is None and subject_for("XY", None, staff) is None
