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


# --- expected failures: one line on stderr, non-zero exit, no traceback ---
def _one_line_failure(capsys, argv, code=1) -> str:
    assert cli.main(argv) == code
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err and "\n" not in err and "Traceback" not in err, captured
    return err + captured.out


@pytest.mark.parametrize("argv", [
    ["beteiligte", "audit", "doesnotexist"],
    ["beteiligte", "sync", "doesnotexist"],
    ["beteiligte", "sync", "doesnotexist", "--now"],
    ["kommunikation", "audit", "doesnotexist"],
    ["kommunikation", "sync", "doesnotexist"],
    ["beteiligte", "reset-failed", "doesnotexist"],
    ["beteiligte", "resolve-create", "doesnotexist", "--none"],
])
def test_a_missing_record_is_one_line_and_exit_1(sandbox, capsys, argv):
    text = _one_line_failure(capsys, argv)
    assert "doesnotexist" in text and "no such record" in text and "queued" not in text


def test_sync_now_of_a_deleted_record_exits_non_zero(sandbox, celery_worker, capsys):
    espo = sandbox.state("espocrm")
    record = espo.human_create(PERSON)
    espo.hooks.clear()
    run_sync(record["id"], "create", "webhook")
    espo.human_delete(record["id"])
    assert record["id"] in _one_line_failure(capsys, ["beteiligte", "sync", record["id"], "--now"])


def test_unknown_employee_and_missing_kuerzel_are_one_line(sandbox, capsys):
    assert "XYZ" in _one_line_failure(capsys, ["calendar", "audit", "XYZ"])
    assert "XYZ" in _one_line_failure(capsys, ["calendar", "sync", "XYZ"])
    assert "--all" in _one_line_failure(capsys, ["calendar", "sync"], code=2)


def test_deletions_says_so_when_empty(sandbox, lock_redis, capsys):
    assert cli.main(["beteiligte", "deletions"]) == 0
    assert "no CBeteiligte deleted" in capsys.readouterr().out


def test_an_unreachable_system_is_one_line(sandbox, monkeypatch, capsys):
    from bitbylaw_tasks import settings as settings_module
    from bitbylaw_tasks.devredis import free_port

    monkeypatch.setenv("SANDBOX_ESPOCRM_PORT", str(free_port()))
    monkeypatch.setenv("HTTP_CONNECT_TIMEOUT", "0.5")
    settings_module.get_settings.cache_clear()
    try:
        assert "unreachable" in _one_line_failure(capsys, ["beteiligte", "status"])
    finally:
        settings_module.get_settings.cache_clear()


# --- config and health ---
def test_config_shows_variables_effective_values_and_systems(monkeypatch, capsys):
    from bitbylaw_tasks import settings as settings_module

    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:s3cret-pass")
    monkeypatch.setenv("SWEEP_INTERVAL", "60")
    settings_module.get_settings.cache_clear()
    try:
        assert cli.main(["config"]) == 0
    finally:
        settings_module.get_settings.cache_clear()
    out = capsys.readouterr().out
    assert "SWEEP_INTERVAL=60.0" in out and "REDIS_BROKER_URL=redis://" in out
    assert "s3cret-pass" not in out and "FLOWER_BASIC_AUTH=***" in out
    assert "sweep_interval" not in out  # the variables, not the attribute names
    assert "# Google Calendar: simulator at http://" in out


def test_health_warms_up_then_is_ok_with_iso_timestamps(redis_server, lock_redis):
    import time

    from bitbylaw_tasks.ops import heartbeat
    from bitbylaw_tasks.settings import get_settings
    from bitbylaw_tasks.web import health

    settings = get_settings()
    now = time.time()
    doc, healthy = health(settings, started_at=now - 1, now=now)
    assert healthy and doc["status"] == "warming_up"
    doc, healthy = health(settings, started_at=now - settings.heartbeat_stale_after - 1, now=now)
    assert not healthy and doc["status"] == "unhealthy"
    for component in heartbeat.COMPONENTS:
        heartbeat.record(lock_redis, component, now=now - 2)
    doc, healthy = health(settings, started_at=now - 1, now=now)
    assert healthy and doc["status"] == "ok"
    assert doc["heartbeats"]["beat"]["last_seen"].endswith("Z") and doc["checked_at"][:2] == "20"


# --- the README's command table and the CLI agree ---
def _readme_commands() -> list[str]:
    import re
    from pathlib import Path

    text = Path(cli.__file__).resolve().parent.parent.joinpath("README.md").read_text()
    section = text.split("\n## CLI\n", 1)[1].split("\n## ", 1)[0]
    cells = [re.split(r"(?<!\\)\|", line)[1] for line in section.splitlines() if line.startswith("| `")]
    commands = [c.replace("\\|", "|") for cell in cells for c in re.findall(r"`(bitbylaw [^`]*)`", cell)]
    assert len(commands) >= 25 and len(commands) == sum(cell.count("`") // 2 for cell in cells)
    return commands


SAMPLES = {"ID": "6a00000000000000a", "KUERZEL": "AB", "N": "1", "KIND": "cbeteiligte", "Q": "default"}


def _as_argv(command: str) -> tuple[list[str], list[str]]:
    """The documented usage as arguments (placeholders by samples, [--x] taken, a|b by its first choice),
    and the command's own words (up to the first placeholder or option)."""
    argv, words = [], []
    for word in command.split()[1:]:
        word = word.strip("[]").split("|")[0]
        if len(words) == len(argv) and word not in SAMPLES and not word.startswith("-"):
            words.append(word)
        argv.append(SAMPLES.get(word, word))
    return argv, words


@pytest.mark.parametrize("command", _readme_commands())
def test_readme_command_parses_and_has_help(command, capsys):
    argv, words = _as_argv(command)
    parser = cli.build_parser()
    parser.parse_args(argv)  # exits (fails the test) when the README documents what the CLI does not take
    with pytest.raises(SystemExit) as stop:
        cli.main([*words, "--help"])
    assert stop.value.code == 0 and "usage: bitbylaw" in capsys.readouterr().out


# --- kommunikation sync|audit, calendar sync --all ---
def test_kommunikation_audit_is_read_only_and_sync_now_applies_it(sandbox, celery_worker, capsys):
    espo = sandbox.state("espocrm")
    record = espo.human_create(PERSON)
    espo.hooks.clear()
    run_sync(record["id"], "create", "webhook")
    espo.human_update(record["id"], {"emailAddressData": [
        {"emailAddress": "max@example.test", "primary": True, "optOut": False, "invalid": False}]})
    espo.hooks.clear()
    for name in ("espocrm", "advoware"):
        sandbox.kit(name).reset_calls()
    assert cli.main(["kommunikation", "audit", record["id"]]) == 0
    out = capsys.readouterr().out
    assert "advoware: create" in out and "max@example.test" in out
    writes = [k for k in {**sandbox.kit("espocrm").calls(), **sandbox.kit("advoware").calls()}
              if not k.startswith("GET") and "Token" not in k]
    assert writes == []
    assert cli.main(["kommunikation", "sync", record["id"], "--now", "--direction", "to_advoware"]) == 0
    assert '"path": "synced"' in capsys.readouterr().out
    assert cli.main(["kommunikation", "audit", record["id"]]) == 0
    assert "a sync would change nothing" in capsys.readouterr().out


def test_kommunikation_of_an_unlinked_record_is_refused(sandbox, capsys):
    espo = sandbox.state("espocrm")
    record = espo.save(None, {"lastName": "X"}, espo.integration_user)
    assert "not linked" in _one_line_failure(capsys, ["kommunikation", "audit", record["id"]])


def test_calendar_sync_all_queues_every_active_employee(sandbox, celery_worker, capsys):
    import json

    advo = sandbox.state("advoware")
    for kuerzel in ("AB", "CD"):
        advo.add_mitarbeiter(kuerzel, f"Mitarbeiter {kuerzel}", f"{kuerzel.lower()}@kanzlei.example")
    from conftest import wait_idle
    from bitbylaw_tasks.calendar.state import CalendarState
    from bitbylaw_tasks.redis_clients import calendar_redis
    from bitbylaw_tasks.settings import get_settings

    client = calendar_redis(get_settings())
    for kuerzel in ("AB", "CD"):
        CalendarState(client, kuerzel).clear()
    assert cli.main(["calendar", "sync", "--all", "--wait", "30"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["employees"] >= 2
    wait_idle()
    assert all(CalendarState(client, kuerzel).meta().calendar_id for kuerzel in ("AB", "CD"))
    assert cli.main(["calendar", "status", "AB"]) == 0
    [summary] = json.loads(capsys.readouterr().out)
    assert summary["kuerzel"] == "AB" and summary["synced_at"].endswith("Z") and summary["full_at"][:2] == "20"


def test_a_failed_sync_task_names_the_entity_and_the_reason(sandbox, celery_worker):
    """What Flower's failed-task list shows as the exception: domain, entity id, reason."""
    espo = sandbox.state("espocrm")
    record = espo.human_create(PERSON)
    espo.hooks.clear()
    run_sync(record["id"], "create", "webhook")
    espo.human_update(record["id"], {"lastName": "Abgelehnt"})
    espo.hooks.clear()
    sandbox.kit("advoware").add_fault(path="/api/v1/advonet/Beteiligte/*", method="PUT", status=400, times=1)
    with pytest.raises(Exception) as err:
        run_sync(record["id"], "update", "webhook")
    assert str(err.value).startswith(f"beteiligte {record['id']}: sync failed: BadRequest: ")
    assert "400" in str(err.value)
    after = espo_record(sandbox, record["id"])
    assert record["id"] not in after["syncErrorMessage"]  # the record's own message needs no id


@pytest.mark.parametrize("argv", [["calendar", "status", "AB", "extra"], ["worker", "nosuchqueue"], ["nope"],
                                  ["kommunikation", "sync", "x", "--direction", "up"]])
def test_a_bad_argument_is_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and err.count("\n") == 0 and "--help" in err
