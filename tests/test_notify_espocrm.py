"""How EspoCRM really takes the notices `notify.py` posts, on the simulator and on the real EspoCRM 9.2.7
(marker `real_espocrm`): a Post on a record whose `@userName` becomes a mention and a notification of the
mentioned user, EspoCRM's mention pattern (a trailing "." belongs to the name), User look-ups, and a
Post addressed to users (the operator) — the simulator must answer as the real server does."""
from __future__ import annotations

import pytest
import redis

from bitbylaw_tasks import notify
from bitbylaw_tasks.notify import Notice, Notifier, NotifyPolicy
from espocrm_backends import real_backend, simulator_backend, unique


@pytest.fixture(params=["simulator", pytest.param("real", marks=pytest.mark.real_espocrm)])
def backend(request):
    if request.param == "simulator":
        return simulator_backend(request.getfixturevalue("sandbox"))
    return real_backend(request.getfixturevalue("real_espocrm"))


def _alice(backend) -> dict:
    return backend.user("GET", "App/user").json()["user"]


def _my_notifications(backend) -> list[dict]:
    response = backend.user("GET", "Notification", params={"maxSize": 50})
    assert response.status_code == 200, response.status_code
    return response.json()["list"]


def test_a_record_post_mentions_the_assigned_user_and_notifies_them(backend, redis_url):
    alice = _alice(backend)
    record = backend.client.create_beteiligte({"lastName": unique("Notiz"), "assignedUserId": alice["id"]})
    assert backend.client.get_user(alice["id"])["userName"] == "alice"
    assert backend.client.find_user("alice")["id"] == alice["id"] and backend.client.find_user(unique()) is None
    notifier = Notifier(backend.client, redis.Redis.from_url(redis_url), NotifyPolicy(language="de"))
    delivery = notifier.record(notify.PERMANENT_FAILURE, record["id"], "Last error: 400", alice["id"])
    assert delivery.mention == "alice"
    stream = backend.raw("GET", f"CBeteiligte/{record['id']}/stream").json()["list"]
    (note,) = [n for n in stream if n.get("type") == "Post"]
    assert note["post"] == delivery.text
    mention = note["data"]["mentions"]["@alice"]
    assert mention["id"] == alice["id"] and mention["userName"] == "alice"
    mine = [n for n in _my_notifications(backend) if n["type"] == "MentionInPost" and n["relatedId"] == note["id"]]
    assert len(mine) == 1 and mine[0]["data"]["noteId"] == note["id"] and mine[0]["relatedType"] == "Note"
    assert mine[0]["noteData"]["post"] == delivery.text


def test_a_trailing_dot_is_part_of_the_name_so_the_notice_puts_a_space_after_it(backend):
    record = backend.client.create_beteiligte({"lastName": unique("Punkt")})
    dotted = backend.client.post_note(record["id"], "Bitte prüfen, @alice.")
    spaced = backend.client.post_note(record["id"], "@alice Bitte prüfen.")
    assert "mentions" not in (dotted.get("data") or {})
    assert "@alice" in spaced["data"]["mentions"]


def test_a_post_addressed_to_the_operator_reaches_them_without_a_record(backend, redis_url):
    alice = _alice(backend)
    kuerzel = unique("K")
    notifier = Notifier(backend.client, redis.Redis.from_url(redis_url), NotifyPolicy(operator_user="alice",
                                                                                         language="en"))
    delivery = notifier.send(Notice(notify.CALENDAR_GUARD, kuerzel, "advoware_empty"))
    assert delivery.to_user == "alice"
    mine = [n for n in _my_notifications(backend) if n["type"] == "MentionInPost"]
    (found,) = [n for n in mine if kuerzel in (n["noteData"].get("post") or "")]
    note = backend.user("GET", f"Note/{found['data']['noteId']}").json()
    assert note["targetType"] == "users" and note.get("parentId") is None
    assert f"The calendar sync of {kuerzel} was stopped" in note["post"]
    assert alice["id"] in (note.get("usersIds") or [])
