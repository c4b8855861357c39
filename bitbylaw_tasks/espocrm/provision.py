"""`bitbylaw espocrm setup`: connect a real EspoCRM to the product, idempotently (docs/espocrm-extension.md).

Deciding is pure (`missing_fields`, `role_payload`, `role_needs_update`,
`plan_webhooks`, `set_env_vars`); `run_setup` reads the EspoCRM, checks
everything it can before it writes anything, and then applies only what
differs, so a second run changes nothing. A webhook it created is deleted
again when a later step fails: nothing half-registered is left behind.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from bitbylaw_tasks.espocrm import extension
from integrations.errors import ApiError, AuthError, Forbidden, NotFound, Unavailable

ROLE_NAME = "bitbylaw-tasks integration"
WEBHOOK_ACTIONS = ("create", "update", "delete")
INTEGRATION_USER_PARAM = "bitbylawIntegrationUserId"
# The attributes the product writes or reads besides the template's own (name, ids, timestamps).
TEMPLATE_FIELDS = frozenset({"name", "createdAt", "modifiedAt", "createdBy", "modifiedBy", "assignedUser",
                             "teams", "description"})


class SetupError(Exception):
    """Setup cannot go on; the message is one line for the operator, naming the cause."""


def required_fields() -> list[str]:
    """Every CBeteiligte field the product relies on (the extension's own list)."""
    return sorted(f for f in extension.entity_fields() if f not in TEMPLATE_FIELDS)


def missing_fields(present: dict | None) -> list[str]:
    """Fields of `required_fields()` absent from a server's `entityDefs.CBeteiligte.fields`."""
    present = present or {}
    return [name for name in required_fields() if name not in present]


def role_payload() -> dict:
    """The integration user's role: full access to CBeteiligte and its stream, webhooks, users readable
    (for @mentions in stream notes), posts to users and teams (operator notices), and for the inbound
    channels Lead/Call create, Contact read, teams readable; nothing else."""
    return {
        "name": ROLE_NAME,
        "data": {
            extension.ENTITY: {"create": "yes", "read": "all", "edit": "all", "delete": "no", "stream": "all"},
            extension.ADRESSE: {"create": "yes", "read": "all", "edit": "all", "delete": "no"},
            "Webhook": True,
            "User": {"read": "all"},
            # The inbound channels (docs/inbound-channels.md): leads and calls are created, a known person is
            # found by e-mail/phone, and a team's users are read for round-robin assignment.
            "Lead": {"create": "yes", "read": "all", "edit": "all", "delete": "no", "stream": "all"},
            "Contact": {"create": "no", "read": "all", "edit": "all", "delete": "no", "stream": "all"},
            "Call": {"create": "yes", "read": "all", "edit": "all", "delete": "no", "stream": "all"},
            "Team": {"read": "all"},
        },
        "fieldData": {},
        "assignmentPermission": "all",
        "userPermission": "all",
        "mentionPermission": "all",
        "messagePermission": "all",  # stream posts addressed to the operator user/team (notify.py)
    }


def role_needs_update(role: dict, payload: dict) -> bool:
    """True when a stored role grants something other than `payload` (ignores fields EspoCRM adds)."""
    data = role.get("data") or {}
    for scope, wanted in payload["data"].items():
        have = data.get(scope)
        if isinstance(wanted, dict):
            if not isinstance(have, dict) or any(have.get(k) != v for k, v in wanted.items()):
                return True
        elif have != wanted:
            return True
    return any(role.get(k) != payload[k] for k in ("assignmentPermission", "userPermission", "mentionPermission",
                                                "messagePermission"))


def webhook_urls(public_url: str) -> dict[str, str]:
    """The shim's URL per webhook event, e.g. `CBeteiligte.update` -> `https://…/vmh/webhook/beteiligte/update`,
    `CAdresse.update` -> `…/vmh/webhook/adressen/update`."""
    base = public_url.rstrip("/")
    return {f"{entity}.{action}": f"{base}/vmh/webhook/{route}/{action}"
            for entity, route in ((extension.ENTITY, "beteiligte"), (extension.ADRESSE, "adressen"))
            for action in WEBHOOK_ACTIONS}


@dataclass(frozen=True)
class WebhookPlan:
    keep: dict[str, dict]      # event -> the integration user's existing webhook that is right
    delete: list[dict]         # the integration user's CBeteiligte webhooks that are wrong or doubled
    create: list[str]          # events without a right webhook

    @property
    def changes(self) -> bool:
        return bool(self.delete or self.create)


def plan_webhooks(existing: list[dict], urls: dict[str, str]) -> WebhookPlan:
    """Which of the integration user's webhooks to keep, delete and create so that each event has exactly
    one active webhook to the right URL with `skipOwn` (its own writes never come back)."""
    keep: dict[str, dict] = {}
    delete: list[dict] = []
    for hook in existing:
        event = hook.get("event")
        if event not in urls and not str(event or "").startswith((f"{extension.ENTITY}.", f"{extension.ADRESSE}.")):
            continue  # not ours to judge
        right = (event in urls and hook.get("url") == urls[event] and hook.get("isActive", True)
                 and bool(hook.get("skipOwn")))
        if right and event not in keep:
            keep[event] = hook
        else:
            delete.append(hook)
    return WebhookPlan(keep=keep, delete=delete, create=[e for e in urls if e not in keep])


_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def set_env_vars(text: str, values: dict[str, str]) -> str:
    """`text` (a .env file) with each of `values` set: an existing line replaced in place, else appended."""
    lines = text.splitlines()
    done = set()
    for i, line in enumerate(lines):
        match = _ENV_LINE.match(line)
        if match and match.group(1) in values:
            name = match.group(1)
            lines[i] = f"{name}={values[name]}"
            done.add(name)
    lines += [f"{name}={value}" for name, value in values.items() if name not in done]
    return "\n".join(lines) + "\n"


def secrets_setting(secrets: dict[str, str]) -> str:
    """`WEBHOOK_SECRETS`'s format: `id=secret,id=secret` (ordered by id, so reruns write the same line)."""
    return ",".join(f"{hook_id}={secret}" for hook_id, secret in sorted(secrets.items()))


@dataclass
class SetupResult:
    user_id: str = ""
    user_name: str = ""
    webhook_secrets: dict[str, str] = field(default_factory=dict)
    new_api_key: str = ""             # set only when setup created the integration user
    actions: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def _explain(exc: ApiError, base_url: str, who: str) -> SetupError:
    if isinstance(exc, AuthError):
        return SetupError(f"EspoCRM at {base_url} refused {who} (wrong user name, password or API key)")
    if isinstance(exc, Unavailable):
        return SetupError(f"EspoCRM at {base_url} is not reachable ({exc})")
    if isinstance(exc, NotFound):
        return SetupError(f"no EspoCRM API at {base_url} ({exc})")
    if isinstance(exc, Forbidden):
        return SetupError(f"EspoCRM at {base_url}: {who} lacks access ({exc})")
    return SetupError(f"EspoCRM at {base_url}: {exc}")


def extension_problem(scope: dict | None, fields: dict | None) -> str | None:
    """What is missing of the extension, given a server's `scopes.CBeteiligte` and its field defs; None if
    nothing is."""
    if not scope:
        return "the entity CBeteiligte"
    missing = missing_fields(fields)
    if missing:
        return f"the fields {', '.join(missing)}"
    if scope.get("module") != extension.MODULE:
        return f"CBeteiligte from the module {extension.MODULE} (this one was made by hand)"
    return None


def check_extension(admin) -> None:
    """Raise `SetupError` naming what is missing when the extension is not installed."""
    problem = extension_problem(admin.metadata(f"scopes.{extension.ENTITY}"),
                                admin.metadata(f"entityDefs.{extension.ENTITY}.fields"))
    if problem:
        raise SetupError(f"the bitbylaw EspoCRM extension is not installed (missing {problem}): run "
                         f"`bitbylaw espocrm build-extension` and install the zip in EspoCRM")


def run_setup(admin, integration_client: Callable[[str], object], *, base_url: str, public_url: str,
              api_key: str, api_user: str) -> SetupResult:
    """Check and configure EspoCRM; returns what it did. `integration_client(key)` builds the product's
    client for an API key (webhooks must be created by the integration user itself)."""
    result = SetupResult()
    try:
        me = admin.whoami()
    except ApiError as exc:
        raise _explain(exc, base_url, "the admin login") from None
    if me.get("type") not in ("admin", "super-admin") and not me.get("isAdmin"):
        raise SetupError(f"EspoCRM user {me.get('userName')!r} is not an administrator")
    try:
        check_extension(admin)
        role = _ensure_role(admin, result)
        client, user = _ensure_user(admin, integration_client, api_key, api_user, role["id"], result, base_url)
        _ensure_integration_param(admin, user["id"], result)
        _ensure_webhooks(client, webhook_urls(public_url), result)
    except ApiError as exc:
        raise _explain(exc, base_url, "the request") from None
    return result


def _ensure_role(admin, result: SetupResult) -> dict:
    wanted = role_payload()
    role = admin.find_one("Role", "name", ROLE_NAME)
    if role is None:
        result.actions.append(f"created role {ROLE_NAME!r}")
        return admin.create("Role", wanted)
    role = admin.get("Role", role["id"])
    if role_needs_update(role, wanted):
        result.actions.append(f"updated role {ROLE_NAME!r}")
        return admin.update("Role", role["id"], wanted)
    return role


def _ensure_user(admin, integration_client, api_key: str, api_user: str, role_id: str,
                 result: SetupResult, base_url: str):
    if api_key:
        client = integration_client(api_key)
        try:
            user = client.current_user()
        except AuthError:
            raise SetupError(f"EspoCRM at {base_url} does not accept ESPOCRM_API_KEY") from None
        if user.get("type") != "api":
            raise SetupError(f"ESPOCRM_API_KEY belongs to {user.get('userName')!r}, which is not an API user")
    else:
        user = admin.find_one("User", "userName", api_user)
        if user is None:
            user = admin.create("User", {"userName": api_user, "lastName": api_user, "type": "api",
                                         "authMethod": "ApiKey", "isActive": True, "rolesIds": [role_id]})
            result.actions.append(f"created API user {api_user!r}")
        elif user.get("type") != "api":
            raise SetupError(f"EspoCRM user {api_user!r} exists and is not an API user")
        result.new_api_key = admin.get("User", user["id"])["apiKey"]
        client = integration_client(result.new_api_key)
    full = admin.get("User", user["id"])
    if role_id not in (full.get("rolesIds") or []) or not full.get("isActive", True):
        admin.update("User", user["id"], {"rolesIds": sorted({*(full.get("rolesIds") or []), role_id}),
                                          "isActive": True})
        result.actions.append(f"gave {full.get('userName')!r} the role {ROLE_NAME!r}")
    result.user_id, result.user_name = user["id"], full.get("userName", "")
    return client, user


def _ensure_integration_param(admin, user_id: str, result: SetupResult) -> None:
    if admin.settings().get(INTEGRATION_USER_PARAM) != user_id:
        admin.update_settings({INTEGRATION_USER_PARAM: user_id})
        result.actions.append(f"set {INTEGRATION_USER_PARAM} (the hooks' integration user)")


def _ensure_webhooks(client, urls: dict[str, str], result: SetupResult) -> None:
    plan = plan_webhooks(client.list_webhooks(), urls)
    created: list[str] = []
    try:
        secrets = {hook["id"]: hook["secretKey"] for hook in plan.keep.values()}
        for event in plan.create:
            hook_id, secret = client.subscribe_webhook(event, urls[event], skip_own=True)
            created.append(hook_id)
            secrets[hook_id] = secret
            result.actions.append(f"registered webhook {event} -> {urls[event]}")
    except Exception:
        for hook_id in created:  # nothing half-registered: undo this run's subscriptions
            try:
                client.delete_webhook(hook_id)
            except ApiError:
                pass
        raise
    for hook in plan.delete:
        client.delete_webhook(hook["id"])
        result.actions.append(f"deleted webhook {hook.get('event')} -> {hook.get('url')}")
    result.webhook_secrets = secrets
