"""Notifications that reach people: the pure decision (every combination), the poster against the EspoCRM
simulator and real Redis, and the call sites through the real Celery worker."""
from __future__ import annotations

import itertools
import time

import pytest
import requests

from beteiligte_helpers import PERSON, espo_record, run_sync
from bitbylaw_tasks import notify
from bitbylaw_tasks.beteiligte import status
from bitbylaw_tasks.celery_app import app
from bitbylaw_tasks.clients import clients_for
from bitbylaw_tasks.notify import HEADLINES, WITHOUT_RECORD, Notice, Notifier, NotifyPolicy, decide
from bitbylaw_tasks.ops import failures
from bitbylaw_tasks.settings import get_settings

URL = "https://crm.example/#CBeteiligte/view/{id}"


def _expected(reason, assigned, op_user, op_team, first):
    """The rule of docs/operators.md, written out: (where, mention, link) or None."""
    if not first and reason != notify.CONFLICT:
        return None
    if reason in WITHOUT_RECORD:
        if op_user:
            return ("user", op_user, True)
        return ("team", None, True) if op_team else None
    person = (assigned or op_user or None) if first else None
    if person is None and first and op_team:
        return ("team", None, True)
    return ("record", person, False)


def test_decide_every_combination_of_recipient_window_and_language():
    seen = set()
    for reason, assigned, op_user, op_team, first, language in itertools.product(
            HEADLINES, (None, "alice"), ("", "bob"), ("", "team1"), (True, False), ("de", "en")):
        policy = NotifyPolicy(language=language, operator_user=op_user, operator_team=op_team, record_url=URL)
        delivery = decide(Notice(reason, "rec1", "Last error: 400"), policy, assigned_user=assigned, first=first)
        expected = _expected(reason, assigned, op_user, op_team, first)
        case = (reason, assigned, op_user, op_team, first, language)
        if expected is None:
            assert delivery is None, case
            continue
        where, mention, link = expected
        seen.add(where)
        assert delivery.mention == mention, case
        assert (delivery.record_id, delivery.to_user, delivery.to_team) == {
            "record": ("rec1", None, None), "user": (None, op_user, None), "team": (None, None, op_team)}[where], case
        text = delivery.text
        headline = HEADLINES[reason][language].format(subject="rec1")
        other = HEADLINES[reason]["en" if language == "de" else "de"].format(subject="rec1")
        assert headline in text and other not in text and "Last error: 400" in text, case
        assert ("https://crm.example/#CBeteiligte/view/rec1" in text) == link, case
        if mention:
            assert text.startswith(f"@{mention} ") and text.count("@") == 1, case
        else:
            assert "@" not in text, case
    assert seen == {"record", "user", "team"}


def test_calendar_headline_names_the_employee_and_the_link_is_the_records():
    policy = NotifyPolicy(language="en", operator_user="bob", record_url=URL)
    text = decide(Notice(notify.CALENDAR_GUARD, "AB"), policy, assigned_user=None, first=True).text
    assert "calendar sync of AB was stopped" in text
    assert notify.record_url_template(get_settings()).endswith("/#CBeteiligte/view/{id}")


# ------------------------------------------------------------------ the poster, simulator and real Redis
def _notifications(sandbox, user: str) -> list[dict]:
    key = sandbox.state("espocrm").user_by_name(user)["apiKey"]
    response = requests.get(f"{sandbox.url('espocrm')}/api/v1/Notification", headers={"X-Api-Key": key}, timeout=5)
    response.raise_for_status()
    return response.json()["list"]


def _notes(sandbox, record_id=None) -> list[dict]:
    notes = sandbox.state("espocrm").all_notes()
    return [n for n in notes if record_id is None or n["parentId"] == record_id]


def test_the_assigned_user_is_mentioned_once_per_window_and_conflict_notes_still_post(sandbox, lock_redis):
    espo = sandbox.state("espocrm")
    alice = espo.user_by_name("alice")
    record = espo.human_create({**PERSON, "assignedUserId": alice["id"]})
    notifier = Notifier(clients_for(get_settings()).espocrm, lock_redis, NotifyPolicy(window=60))
    first = notifier.record(notify.PERMANENT_FAILURE, record["id"], "Last error: 400", alice["id"])
    assert first.mention == "alice" and notifier.record(notify.PERMANENT_FAILURE, record["id"], "again") is None
    (note,) = _notes(sandbox, record["id"])
    assert "@alice" in note["data"]["mentions"] and "Last error: 400" in note["post"]
    assert [n["data"]["noteId"] for n in _notifications(sandbox, "alice")] == [note["id"]]
    for _ in range(2):
        notifier.record(notify.CONFLICT, record["id"], "- titel: Advoware value overridden", alice["id"])
    conflicts = [n for n in _notes(sandbox, record["id"]) if "titel" in n["post"]]
    assert len(conflicts) == 2 and [bool(n["data"]) for n in conflicts] == [True, False]
    assert len(_notifications(sandbox, "alice")) == 2


def test_every_manual_action_mentions_the_person_even_within_the_window(sandbox, lock_redis):
    """Each manual action is an instruction posted once by its caller: a second one on the same record within
    the window must reach the person as surely as the first (not rate-limited, unlike the other reasons)."""
    espo = sandbox.state("espocrm")
    alice = espo.user_by_name("alice")
    record = espo.human_create({**PERSON, "assignedUserId": alice["id"]})
    notifier = Notifier(clients_for(get_settings()).espocrm, lock_redis, NotifyPolicy(window=600))
    for field in ("Land", "Postfach"):
        sent = notifier.manual_action(record["id"], f"in Advoware, party 1, address 1: set {field}", alice["id"])
        assert sent.mention == "alice" and sent.record_id == record["id"]
    assert sorted(n["post"].split("set ")[1] for n in _notes(sandbox, record["id"])) == ["Land", "Postfach"]
    assert len(_notifications(sandbox, "alice")) == 2


def test_the_window_expires_and_the_operator_stands_in_for_an_unknown_user(sandbox, lock_redis):
    record = sandbox.state("espocrm").human_create(PERSON)
    notifier = Notifier(clients_for(get_settings()).espocrm, lock_redis, NotifyPolicy(operator_user="bob", window=1))
    assert notifier.record(notify.DELETED_IN_ADVOWARE, record["id"], "", "no-such-user").mention == "bob"
    assert notifier.record(notify.DELETED_IN_ADVOWARE, record["id"]) is None
    time.sleep(1.2)
    assert notifier.record(notify.DELETED_IN_ADVOWARE, record["id"]).mention == "bob"
    assert len(_notes(sandbox, record["id"])) == 2 and len(_notifications(sandbox, "bob")) == 2


def test_a_refused_post_never_raises(sandbox, lock_redis):
    notifier = Notifier(clients_for(get_settings()).espocrm, lock_redis, NotifyPolicy())
    assert notifier.record(notify.PERMANENT_FAILURE, "no-such-record", "x") is None  # 404 from EspoCRM
    team = Notifier(clients_for(get_settings()).espocrm, lock_redis, NotifyPolicy(operator_team="team1"))
    delivery = team.send(Notice(notify.CALENDAR_GUARD, "AB", "advoware_empty"))
    (note,) = _notes(sandbox)
    assert delivery.to_team == "team1" and note["targetType"] == "teams" and note["teamsIds"] == ["team1"]


# ------------------------------------------------------------------ through the real worker
@pytest.fixture
def operator_settings():
    """The worker's settings with an operator user (the session worker runs in this process)."""
    before = app.conf.bitbylaw_settings
    app.conf.bitbylaw_settings = before.replace(notify_operator_user="bob", notify_language="en")
    yield app.conf.bitbylaw_settings
    app.conf.bitbylaw_settings = before


def test_permanent_failure_through_the_worker_mentions_the_assigned_user(sandbox, lock_redis, celery_worker):
    espo = sandbox.state("espocrm")
    alice = espo.user_by_name("alice")
    record = espo.save(None, {**PERSON, "assignedUserId": alice["id"], "syncStatus": status.FAILED,
                              "syncRetryCount": status.MAX_FAILURES - 1}, espo.integration_user)
    sandbox.kit("advoware").add_fault(path="/api/v1/advonet/Beteiligte", method="POST", status=400)
    with pytest.raises(Exception, match=record["id"]):
        run_sync(record["id"], "update", "retry")
    assert espo_record(sandbox, record["id"])["syncStatus"] == status.PERMANENTLY_FAILED
    (note,) = _notes(sandbox, record["id"])
    assert note["post"].startswith("@alice ") and "keeps failing" not in note["post"]  # German by default
    assert "Abgleich mit Advoware schlägt immer wieder fehl" in note["post"]
    assert [n["data"]["noteId"] for n in _notifications(sandbox, "alice")] == [note["id"]]
    (entry,) = failures.entries(lock_redis)
    assert (entry["domain"], entry["entity_id"], entry["permanent"]) == ("beteiligte", record["id"], True)
    assert "400" in entry["reason"]


def test_deletion_in_espocrm_through_the_worker_tells_the_operator(sandbox, lock_redis, celery_worker,
                                                                  operator_settings):
    record = sandbox.state("espocrm").human_create(PERSON)
    assert run_sync(record["id"], "delete", "webhook")["path"] == "deleted_in_espocrm"
    (note,) = [n for n in _notes(sandbox) if n["parentId"] is None]
    bob = sandbox.state("espocrm").user_by_name("bob")
    assert note["targetType"] == "users" and note["usersIds"] == [bob["id"]]
    assert f"The party {record['id']} was deleted in EspoCRM" in note["post"]
    assert f"#CBeteiligte/view/{record['id']}" in note["post"]
    assert [n["data"]["noteId"] for n in _notifications(sandbox, "bob")] == [note["id"]]


def test_a_tripped_calendar_guard_through_the_worker_tells_the_operator_team(sandbox, lock_redis, celery_worker,
                                                                          redis_server):
    import redis as redis_lib
    from conftest import CALENDAR_DB

    redis_lib.Redis.from_url(redis_server.url(CALENDAR_DB)).flushdb()
    advo = sandbox.state("advoware")
    advo.add_mitarbeiter("NT", "Mitarbeiter NT", "nt@kanzlei.example")
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 3 * 86400))
    termine = [advo.add_termin(kuerzel="NT", art="Termin", datum=day, uhrzeitVon=f"{10 + i}:00",
                               uhrzeitBis=f"{10 + i}:30", text=f"T{i}") for i in range(6)]
    before = app.conf.bitbylaw_settings
    app.conf.bitbylaw_settings = before.replace(notify_operator_team="team-ops")
    try:
        app.send_task("calendar.sync_employee", ("NT", False)).get(timeout=60)
        for t in termine:
            advo.human_delete_termin(t["frNr"])
        with pytest.raises(Exception, match="NT"):
            app.send_task("calendar.sync_employee", ("NT", False)).get(timeout=60)
    finally:
        app.conf.bitbylaw_settings = before
    (note,) = _notes(sandbox)
    assert note["targetType"] == "teams" and note["teamsIds"] == ["team-ops"]
    assert "Kalender-Abgleich von NT wurde angehalten" in note["post"] and "--force" in note["post"]
    (entry,) = failures.entries(lock_redis)
    assert entry["domain"] == "calendar" and entry["entity_id"] == "NT" and "EmptySideGuard" not in entry["reason"]


def test_a_conflict_through_the_worker_mentions_the_assigned_user_once_and_keeps_every_note(sandbox, lock_redis,
                                                                                           celery_worker):
    from beteiligte_helpers import advoware_record, linked_record

    espo, advo = sandbox.state("espocrm"), sandbox.state("advoware")
    record = linked_record(sandbox, {**PERSON, "assignedUserId": espo.user_by_name("alice")["id"]})
    for titel_advo, titel_espo in (("Prof.", "Dr. med."), ("Prof. Dr.", "Dr. jur.")):
        advo.human_update_beteiligte(record["betnr"], titel=titel_advo)
        espo.human_update(record["id"], {"titel": titel_espo}, user="bob")
        espo.hooks.clear()
        assert run_sync(record["id"], "update", "webhook")["path"] == "conflict"
        assert advoware_record(sandbox, record["betnr"])["titel"] == titel_espo
    first, second = _notes(sandbox, record["id"])
    assert first["post"].startswith("@alice ") and "Advoware: Prof.;" in first["post"]
    assert "@" not in second["post"] and "Prof. Dr." in second["post"]  # within the window: posted, no mention
    assert "Details: Sync conflict between EspoCRM and Advoware" in first["post"]
    assert len(_notifications(sandbox, "alice")) == 1


def test_a_mass_deletion_reaches_the_operator_at_most_the_burst_limit_per_window(sandbox, lock_redis):
    notifier = Notifier(clients_for(get_settings()).espocrm, lock_redis, NotifyPolicy(operator_team="team-ops"))
    posted = [notifier.record(notify.DELETED_IN_ESPOCRM, f"gone{i}") for i in range(notify.OPERATOR_BURST + 5)]
    assert [p is not None for p in posted] == [True] * notify.OPERATOR_BURST + [False] * 5
    assert len(_notes(sandbox)) == notify.OPERATOR_BURST
    assert notifier.record(notify.CALENDAR_GUARD, "AB") is not None  # another reason has its own budget
