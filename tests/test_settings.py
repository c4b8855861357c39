"""Settings: defaults, parsing, validation errors that name the variable, and .env handling."""
import pytest

from bitbylaw_tasks.settings import Settings, SettingsError, load_settings

REAL = {
    "ESPOCRM_BASE_URL": "https://crm.example.test", "ESPOCRM_API_KEY": "k",
    "ADVOWARE_BASE_URL": "https://advo.example.test", "ADVOWARE_API_KEY": "a2V5",
    "ADVOWARE_APP_ID": "app", "ADVOWARE_PRODUCT_ID": "64", "ADVOWARE_KANZLEI": "K",
    "ADVOWARE_DATABASE": "D", "ADVOWARE_USER": "u", "ADVOWARE_PASSWORD": "p",
}


def test_defaults_use_four_redis_databases_and_the_sandbox():
    s = load_settings({})
    assert [s.broker_url[-1], s.lock_redis_url[-1], s.calendar_redis_url[-1], s.result_backend_url[-1]] == list("0123")
    assert s.uses_sandbox


def test_real_systems_configured_completely():
    s = load_settings({**REAL, "GOOGLE_SERVICE_ACCOUNT_FILE": "/etc/bitbylaw/google.json"})
    assert not s.uses_sandbox and s.simulated_systems == () and s.advoware_kanzlei == "K"


@pytest.mark.parametrize("configured,simulated", [
    ({}, ("espocrm", "advoware", "google")),
    ({"ESPOCRM_BASE_URL": "http://crm.test", "ESPOCRM_API_KEY": "k"}, ("advoware", "google")),
    ({k: v for k, v in REAL.items() if not k.startswith("ESPOCRM")}, ("espocrm", "google")),
    ({"GOOGLE_CALENDAR_ENDPOINT": "http://g.test/calendar/v3/"}, ("espocrm", "advoware")),
    ({"GOOGLE_SERVICE_ACCOUNT_FILE": "/x.json"}, ("espocrm", "advoware")),
])
def test_each_system_is_real_or_simulated_on_its_own(configured, simulated):
    s = load_settings(configured)
    assert s.simulated_systems == simulated
    assert (s.espocrm_simulated, s.advoware_simulated, s.google_simulated) == tuple(
        name in simulated for name in ("espocrm", "advoware", "google"))


def test_a_partial_load_skips_the_set_together_rule_for_espocrm_setup():
    with pytest.raises(SettingsError):
        load_settings({"ESPOCRM_BASE_URL": "http://crm.test"})
    assert load_settings({"ESPOCRM_BASE_URL": "http://crm.test"}, require_complete=False).espocrm_api_key == ""


@pytest.mark.parametrize("missing", [k for k in REAL if k not in ("ESPOCRM_BASE_URL", "ADVOWARE_BASE_URL")])
def test_missing_required_variable_is_named(missing):
    env = {k: v for k, v in REAL.items() if k != missing}
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    assert str(err.value).startswith(f"{missing}:")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name,value", [
    ("REDIS_BROKER_URL", "http://not-redis"), ("REDIS_LOCK_URL", "nonsense"),
    ("TASK_TIME_LIMIT", "ten"), ("WEB_PORT", "70000"), ("FLOWER_BASIC_AUTH", "nopassword"),
    ("WORKER_POOL", "eventlet-ish"), ("WORKER_CONCURRENCY", "beteiligte=zero"),
    ("ESPOCRM_BASE_URL", "ftp://x"), ("HEARTBEAT_INTERVAL", "often"),
])
def test_malformed_variable_is_named(name, value):
    with pytest.raises(SettingsError) as err:
        load_settings({name: value})
    assert str(err.value).startswith(f"{name}:")


def test_time_limits_must_be_ordered():
    with pytest.raises(SettingsError, match="TASK_SOFT_TIME_LIMIT"):
        load_settings({"TASK_SOFT_TIME_LIMIT": "300", "TASK_TIME_LIMIT": "300"})
    with pytest.raises(SettingsError, match="BROKER_VISIBILITY_TIMEOUT"):
        load_settings({"BROKER_VISIBILITY_TIMEOUT": "100", "TASK_TIME_LIMIT": "300"})


def test_mappings_parse():
    s = load_settings({"WEBHOOK_SECRETS": "abc=s1, def=s2", "WORKER_CONCURRENCY": "beteiligte=3,calendar=2"})
    assert s.webhook_secrets == {"abc": "s1", "def": "s2"}
    assert s.worker_concurrency == {"beteiligte": 3, "calendar": 2}


def test_env_file_is_read_and_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("WEB_PORT=9001\nFLOWER_PORT=9002\n# comment\n")
    s = load_settings({"FLOWER_PORT": "9100"}, env_file=env_file)
    assert s.web_port == 9001 and s.flower_port == 9100


def test_redacted_masks_secrets():
    s = load_settings({**REAL, "WEBHOOK_SECRETS": "abc=topsecret", "SENTRY_DSN": "https://pub@sentry.example.test/1",
                       "REDIS_BROKER_URL": "redis://:hunter2@127.0.0.1:6379/0"})
    text = repr(s.redacted())
    for secret in ("topsecret", "hunter2", "pub@sentry", "'p'"):
        assert secret not in text
    assert isinstance(s, Settings)


def test_cli_prints_one_line_for_a_bad_setting(monkeypatch, capsys):
    from bitbylaw_tasks import cli, settings as settings_module

    monkeypatch.setenv("TASK_TIME_LIMIT", "soon")
    settings_module.get_settings.cache_clear()
    try:
        assert cli.main(["config"]) == 2
    finally:
        settings_module.get_settings.cache_clear()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "TASK_TIME_LIMIT" in err


def test_env_example_documents_every_variable():
    from pathlib import Path

    from bitbylaw_tasks.settings import _VARS

    text = Path(__file__).resolve().parent.parent.joinpath(".env.example").read_text()
    documented = {line.split("=", 1)[0] for line in text.splitlines() if "=" in line and not line.startswith("#")}
    assert {name for name, _, _ in _VARS} == documented
    assert load_settings({k: v.split("#")[0].strip() for k, v in
                          (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))})


def test_celery_environment_variables_that_would_shadow_settings_are_refused():
    """Celery reads CELERY_BROKER_URL from os.environ over its config; we refuse it at start."""
    with pytest.raises(SettingsError, match="^CELERY_BROKER_URL: .*REDIS_BROKER_URL"):
        load_settings({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"})
    with pytest.raises(SettingsError, match="^CELERY_RESULT_BACKEND:"):
        load_settings({"CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/3"})
