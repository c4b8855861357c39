"""The operator CLI against the session's simulators: help, status counts, audit, resets, resolve-create."""
import pytest

from beteiligte_helpers import PERSON, espo_record, run_sync
from bitbylaw_tasks import cli


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("run", "sandbox", "web", "worker", "beat", "flower", "health", "beteiligte", "lock-release"):
        assert command in out


def test_status_counts_by_sync_status(sandbox, capsys):
    espo = sandbox.state("espocrm")
    for status in ("clean", "clean", "failed"):
        espo.save(None, {"lastName": "X", "syncStatus": status}, espo.integration_user)
    assert cli.main(["beteiligte", "status"]) == 0
    out = capsys.readouterr().out
    assert "clean" in out and " 2" in out and "failed" in out and "total                  3" in out


def test_audit_shows_differences_read_only(sandbox, celery_worker, capsys):
    espo = sandbox.state("espocrm")
    record = espo.human_create(PERSON)
    espo.hooks.clear()
    run_sync(record["id"], "create", "webhook")
    linked = espo_record(sandbox, record["id"])
    sandbox.state("advoware").human_update_beteiligte(linked["betnr"], vorname="Moritz")
    sandbox.kit("advoware").reset_calls()
    sandbox.kit("espocrm").reset_calls()
    assert cli.main(["beteiligte", "audit", record["id"]]) == 0
    out = capsys.readouterr().out
    assert "firstName" in out and "<- differs" in out and "advoware_newer" in out
    writes = [k for k in {**sandbox.kit("espocrm").calls(), **sandbox.kit("advoware").calls()}
              if not k.startswith("GET") and "Token" not in k]
    assert writes == []


def test_reset_failed_resets_permanently_failed(sandbox, capsys):
    espo = sandbox.state("espocrm")
    record = espo.save(None, {"lastName": "X", "syncStatus": "permanently_failed", "syncRetryCount": 5},
                       espo.integration_user)
    assert cli.main(["beteiligte", "reset-failed"]) == 0
    after = espo_record(sandbox, record["id"])
    assert (after["syncStatus"], after["syncRetryCount"]) == ("failed", 0)


def test_resolve_create_requires_a_decision(capsys):
    with pytest.raises(SystemExit):
        cli.main(["beteiligte", "resolve-create", "6a00000000000000a"])
