"""`bitbylaw adressen manual-actions|sync|audit` and the manual-action metric, against the simulators and Redis."""
from __future__ import annotations

import json

from bitbylaw_tasks import cli, metrics
from bitbylaw_tasks.adressen import manual
from bitbylaw_tasks.ops import manual as ops_manual
from test_adressen_e2e import BERLIN, Party


def test_manual_actions_are_listed_counted_and_closed(sandbox, celery_worker, lock_redis, capsys):
    party = Party(sandbox, lock_redis)
    assert cli.main(["adressen", "manual-actions"]) == 0
    assert "no open manual actions" in capsys.readouterr().out
    rid = party.espo_add(**BERLIN)
    party.sync()
    party.espo_edit(rid, land="CH")
    assert cli.main(["adressen", "audit", party.id]) == 0
    audit = capsys.readouterr().out
    assert f"by hand: in Advoware, party {party.betnr}, address 1: set Land to CH" in audit
    assert "to Advoware: land" in audit
    assert party.actions() == []  # the audit wrote nothing
    party.sync()
    assert cli.main(["adressen", "manual-actions"]) == 0
    listed = capsys.readouterr().out
    assert f"party {party.id} CAdresse {rid}: in Advoware, party {party.betnr}, address 1: set Land to CH" in listed
    assert listed.rstrip().endswith("1 open")
    assert cli.main(["adressen", "manual-actions", "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert item["field"] == "land" and item["betnr"] == party.betnr
    text = metrics.render(lock_redis, None, ())
    assert 'bitbylaw_manual_actions_total{domain="adressen",event="opened"} 1' in text
    assert "bitbylaw_manual_actions_pending 1" in text  # mirrored into the operators' register (/status)
    (pending,) = ops_manual.pending(lock_redis)
    assert (pending["domain"], pending["entity_id"]) == ("adressen", party.id) and "set Land to CH" in pending["detail"]
    party.advo.human_update_adresse(party.betnr, 1, land="CH")
    assert cli.main(["adressen", "sync", party.id, "--now"]) == 0
    assert json.loads(capsys.readouterr().out)["closed"] == 1
    assert manual.all_open(lock_redis) == []
    text = metrics.render(lock_redis, None, ())
    assert "bitbylaw_manual_actions_pending 0" in text and 'domain="adressen",event="closed"} 1' in text
    assert ops_manual.pending(lock_redis) == []


def test_sync_of_an_unlinked_party_is_refused_in_one_line(sandbox, capsys):
    record = sandbox.state("espocrm").human_create({"lastName": "Ohne"})
    assert cli.main(["adressen", "sync", record["id"]]) == 1
    assert "not linked to Advoware yet" in capsys.readouterr().err
