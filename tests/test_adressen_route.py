"""Which party a CAdresse webhook concerns (`adressen.service.party_of`): EspoCRM's link, else the party the
address had when last synced — the only source left for a deleted address."""
from __future__ import annotations

from beteiligte_helpers import PERSON
from bitbylaw_tasks.adressen.service import PARTY_OF_KEY, party_of
from bitbylaw_tasks.clients import clients_for
from bitbylaw_tasks.settings import get_settings


def test_the_party_comes_from_espocrm_else_from_the_last_sync(sandbox, lock_redis):
    espo = sandbox.state("espocrm")
    alice = espo.user_by_name("alice")
    party = espo.human_create(PERSON)["id"]
    rid = espo.adressen.save(None, {"beteiligteId": party, "strasse": "Hauptstr. 1", "ort": "Berlin"}, alice)["id"]
    client = clients_for(get_settings()).espocrm
    assert party_of(client, lock_redis, rid, "update") == party          # EspoCRM's link
    assert party_of(client, lock_redis, rid, "delete") is None           # a delete never asks EspoCRM
    lock_redis.hset(PARTY_OF_KEY, rid, party)                            # what the last sync remembered
    assert party_of(client, lock_redis, rid, "delete") == party
    espo.adressen.delete(rid, alice)
    assert party_of(client, lock_redis, rid, "update") == party          # gone in EspoCRM: the memory
    assert party_of(client, lock_redis, "0000unknown00000", "update") is None
