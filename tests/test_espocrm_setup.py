"""`bitbylaw espocrm build-extension` and `setup`: the pure decisions densely, the command against a real EspoCRM."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from bitbylaw_tasks.espocrm import extension
from bitbylaw_tasks.espocrm.provision import (ROLE_NAME, extension_problem, missing_fields, plan_webhooks,
                                              required_fields, role_needs_update, role_payload, secrets_setting,
                                              set_env_vars, webhook_urls)
from integrations.sandbox.espocrm_fields import FIELDS

URLS = webhook_urls("https://sync.kanzlei.test/")


def _hook(event, url=None, skip_own=True, active=True, hook_id=None):
    return {"id": hook_id or f"h-{event}-{url}", "event": event, "url": url or URLS[event],
            "skipOwn": skip_own, "isActive": active, "secretKey": "s"}


# ------------------------------------------------------------------ the package
def test_the_package_defines_every_field_the_simulator_and_the_product_use():
    defined = extension.entity_fields()
    system = {"id", "name", "createdAt", "modifiedAt", "versionNumber", "assignedUserId"}
    attributes = {"emailAddressData": "emailAddress", "phoneNumberData": "phoneNumber"}
    for name in FIELDS:
        if name not in system:
            assert attributes.get(name, name) in defined, name
    assert defined["lastName"].get("required") is False
    assert defined["salutationName"]["type"] == "varchar"
    assert set(defined["syncStatus"]["options"]) == {"pending_sync", "dirty", "syncing", "clean", "failed",
                                                     "permanently_failed", "conflict", "deleted_in_advoware"}
    assert defined["syncStatus"]["default"] == "pending_sync"


def test_build_writes_an_installable_zip_with_the_same_bytes_each_time(tmp_path):
    first = extension.build(tmp_path / "a")
    second = extension.build(tmp_path / "b")
    assert first.name == f"bitbylaw-espocrm-extension-{extension.manifest()['version']}.zip"
    assert first.read_bytes() == second.read_bytes()
    names = zipfile.ZipFile(first).namelist()
    assert "manifest.json" in names
    assert "files/custom/Espo/Modules/Bitbylaw/Hooks/CBeteiligte/SyncStatus.php" in names
    assert "files/custom/Espo/Modules/Bitbylaw/Resources/metadata/entityDefs/CBeteiligte.json" in names


# ------------------------------------------------------------------ pure decisions
def test_extension_problem_names_what_is_missing():
    fields = {name: {} for name in required_fields()}
    assert extension_problem({"module": "Bitbylaw"}, fields) is None
    assert extension_problem(None, None) == "the entity CBeteiligte"
    partial = {k: v for k, v in fields.items() if k not in ("betnr", "syncStatus")}
    assert extension_problem({"module": "Bitbylaw"}, partial) == "the fields betnr, syncStatus"
    assert "made by hand" in extension_problem({"module": "Custom"}, fields)
    assert missing_fields(None) == required_fields()


def test_plan_webhooks_keeps_right_ones_replaces_wrong_ones_and_creates_the_rest():
    right = _hook("CBeteiligte.update")
    stale_url = _hook("CBeteiligte.create", url="http://old.test/vmh/webhook/beteiligte/create")
    echoing = _hook("CBeteiligte.delete", skip_own=False)
    doubled = _hook("CBeteiligte.update", hook_id="second")
    foreign = _hook("Contact.update", url="http://x.test/")
    plan = plan_webhooks([right, stale_url, echoing, doubled, foreign], URLS)
    assert plan.keep == {"CBeteiligte.update": right}
    assert {h["id"] for h in plan.delete} == {stale_url["id"], echoing["id"], "second"}
    assert plan.create == ["CBeteiligte.create", "CBeteiligte.delete",
                           "CAdresse.create", "CAdresse.update", "CAdresse.delete"]
    assert plan.changes


def test_plan_webhooks_on_a_set_up_system_changes_nothing():
    hooks = [_hook(event) for event in URLS]
    plan = plan_webhooks(hooks, URLS)
    assert not plan.changes and set(plan.keep) == set(URLS)
    inactive = plan_webhooks([_hook(e, active=(e != "CBeteiligte.delete")) for e in URLS], URLS)
    assert inactive.create == ["CBeteiligte.delete"]


def test_webhook_urls_point_at_the_shims_routes():
    assert URLS == {f"{entity}.{a}": f"https://sync.kanzlei.test/vmh/webhook/{route}/{a}"
                    for entity, route in (("CBeteiligte", "beteiligte"), ("CAdresse", "adressen"))
                    for a in ("create", "update", "delete")}


def test_role_needs_update_only_when_a_right_differs():
    wanted = role_payload()
    stored = {**wanted, "data": {**wanted["data"], "Account": {"read": "all"}}, "id": "r1",
              "portalPermission": "not-set"}
    assert not role_needs_update(stored, wanted)  # extra scopes and fields EspoCRM adds don't count
    less = {**stored, "data": {**stored["data"], "CBeteiligte": {**wanted["data"]["CBeteiligte"], "edit": "own"}}}
    assert role_needs_update(less, wanted)
    assert role_needs_update({**stored, "data": {**stored["data"], "Webhook": False}}, wanted)
    assert role_needs_update({**stored, "mentionPermission": "no"}, wanted)
    assert role_needs_update({**stored, "messagePermission": "not-set"}, wanted)  # notices to the operator
    assert wanted["name"] == ROLE_NAME and wanted["data"]["CBeteiligte"]["delete"] == "no"


def test_set_env_vars_replaces_in_place_appends_new_and_keeps_the_rest():
    text = "# comment\nREDIS_BROKER_URL=redis://x/0\nexport WEBHOOK_SECRETS=old\nOTHER=1"
    out = set_env_vars(text, {"WEBHOOK_SECRETS": "a=b", "ESPOCRM_API_KEY": "k"})
    assert out == "# comment\nREDIS_BROKER_URL=redis://x/0\nWEBHOOK_SECRETS=a=b\nOTHER=1\nESPOCRM_API_KEY=k\n"
    assert set_env_vars(out, {"WEBHOOK_SECRETS": "a=b"}) == out
    assert set_env_vars("", {"A": "1"}) == "A=1\n"


def test_secrets_setting_is_ordered_so_reruns_write_the_same_line():
    assert secrets_setting({"b2": "y", "a1": "x"}) == "a1=x,b2=y"


# ------------------------------------------------------------------ the command against a real EspoCRM
def _setup(real, tmp_path, redis_server, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ESPOCRM_", "WEB_PUBLIC"))}
    base.update({"BITBYLAW_ENV_FILE": os.devnull, "ESPOCRM_BASE_URL": real.url, "ESPOCRM_ADMIN_PASSWORD":
                 "Admin-Passw0rd", "WEB_PUBLIC_URL": "http://127.0.0.1:9/shim", "REDIS_LOCK_URL": redis_server.url(9)})
    base.update(env)
    return subprocess.run([sys.executable, "-m", "bitbylaw_tasks.cli", "espocrm", "setup", "--env-file",
                           str(tmp_path / ".env"), "--api-user", "setup-test"], env=base, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.real_espocrm
def test_setup_creates_the_user_and_webhooks_and_a_second_run_changes_nothing(real_espocrm, tmp_path, redis_server):
    first = _setup(real_espocrm, tmp_path, redis_server)
    assert first.returncode == 0, first.stderr
    assert "created API user 'setup-test'" in first.stdout and "registered webhook CBeteiligte.update" in first.stdout
    written = (tmp_path / ".env").read_text()
    key = [line.split("=", 1)[1] for line in written.splitlines() if line.startswith("ESPOCRM_API_KEY=")][0]
    secrets = [line for line in written.splitlines() if line.startswith("WEBHOOK_SECRETS=")][0]
    assert secrets.count("=") == 7 and (tmp_path / ".env").stat().st_mode & 0o777 == 0o600
    second = _setup(real_espocrm, tmp_path, redis_server, ESPOCRM_API_KEY=key)
    assert second.returncode == 0, second.stderr
    assert "nothing to change" in second.stdout and "registered" not in second.stdout
    assert (tmp_path / ".env").read_text() == written
    moved = _setup(real_espocrm, tmp_path, redis_server, ESPOCRM_API_KEY=key, WEB_PUBLIC_URL="http://127.0.0.1:9/new")
    assert moved.returncode == 0 and moved.stdout.count("registered webhook") == 6
    assert moved.stdout.count("deleted webhook") == 6


@pytest.mark.real_espocrm
@pytest.mark.parametrize("env,expected", [
    ({"ESPOCRM_ADMIN_PASSWORD": "wrong"}, "refused the admin login"),
    ({"ESPOCRM_BASE_URL": "http://127.0.0.1:9"}, "is not reachable"),
    ({"ESPOCRM_API_KEY": "not-a-key"}, "does not accept ESPOCRM_API_KEY"),
    ({"WEB_PUBLIC_URL": ""}, "needs WEB_PUBLIC_URL"),
])
def test_setup_failures_are_one_line_and_non_zero(real_espocrm, tmp_path, redis_server, env, expected):
    done = _setup(real_espocrm, tmp_path, redis_server, **env)
    assert done.returncode != 0 and expected in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / ".env").exists()
