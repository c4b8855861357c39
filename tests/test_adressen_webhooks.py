"""The shim's CAdresse route `/vmh/webhook/adressen/{action}`: the same authentication and validation as the
party's route, one coalesced `adressen.route(adresse id, action)` per id on the `adressen` queue."""
import json

from bitbylaw_tasks.web.webhooks import signature_for
from test_webhooks import ID_A, ID_B, SECRET, WEBHOOK_ID, _queued, broker, client  # noqa: F401  (fixtures)


def _post(client, action, items, secret=SECRET):
    body = json.dumps(items).encode()
    return client.post(f"/vmh/webhook/adressen/{action}", data=body,
                       headers={"Signature": signature_for(WEBHOOK_ID, secret, body)}, content_type="application/json")


def test_a_signed_cadresse_batch_queues_one_route_per_address_and_action(client, broker):
    answer = _post(client, "update", [{"id": ID_A, "ort": "Köln"}, {"id": ID_B}, {"id": ID_A, "plz": "1"}])
    assert answer.status_code == 200 and answer.get_json() == {"received": 3, "queued": 2, "coalesced": 1}
    assert _post(client, "delete", [{"id": ID_A}]).status_code == 200
    assert _queued(broker, "adressen") == [("adressen.route", (ID_A, "update")), ("adressen.route", (ID_B, "update")),
                                           ("adressen.route", (ID_A, "delete"))]
    assert _queued(broker, "beteiligte") == []


def test_an_unsigned_or_wrongly_signed_cadresse_batch_queues_nothing(client, broker):
    assert _post(client, "create", [{"id": ID_A}], secret="wrong").status_code == 401
    assert client.post("/vmh/webhook/adressen/create", data=b"[]", content_type="application/json").status_code == 401
    assert client.post("/vmh/webhook/adressen/rename", data=b"[]", content_type="application/json").status_code == 404
    assert _queued(broker, "adressen") == []
