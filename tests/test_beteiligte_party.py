"""The party a dependent sync starts from: `linked_betnr` (pure), and the Kommunikation and Adressen syncs of a
party EspoCRM does not have (`missing`) or that is not in Advoware yet (`not_linked`), against the simulators:
nothing is written on either side."""
import pytest

from beteiligte_helpers import PERSON, api_calls, calls
from bitbylaw_tasks.adressen.service import sync_adressen
from bitbylaw_tasks.beteiligte import service
from bitbylaw_tasks.beteiligte.party import linked_betnr
from bitbylaw_tasks.clients import clients_for
from bitbylaw_tasks.kommunikation.service import sync_kommunikation
from bitbylaw_tasks.settings import get_settings


@pytest.mark.parametrize("record,expected", [
    ({"betnr": 1234}, 1234), ({"betnr": "1234"}, 1234), ({"betnr": 0}, 0),
    ({"betnr": None}, None), ({"betnr": ""}, None), ({}, None),
])
def test_linked_betnr(record, expected):
    assert linked_betnr(record) == expected


@pytest.mark.parametrize("sync", [sync_kommunikation, sync_adressen], ids=["kommunikation", "adressen"])
def test_a_dependent_sync_of_a_missing_or_unlinked_party_writes_nothing(sandbox, lock_redis, sync):
    clients = clients_for(get_settings())
    ctx = service.SyncContext(clients.espocrm, clients.advoware, lock_redis)
    unlinked = sandbox.state("espocrm").human_create(PERSON)["id"]   # no betnr: the Beteiligte sync creates it
    before = calls(sandbox, "espocrm")
    assert sync(ctx, unlinked).path == "not_linked"
    assert sync(ctx, "0000unknown00000").path == "missing"
    assert api_calls(sandbox, "advoware") == 0
    writes = {k: n - before.get(k, 0) for k, n in calls(sandbox, "espocrm").items() if not k.startswith("GET")}
    assert not any(writes.values()), writes
