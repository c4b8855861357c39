"""`bitbylaw espocrm …`: build the EspoCRM extension, and connect a real EspoCRM (docs/espocrm-extension.md)."""
from __future__ import annotations

import getpass
import sys
from pathlib import Path

from bitbylaw_tasks.cli_groups import command_group
from bitbylaw_tasks.settings import Settings


def cmd_build_extension(args, settings: Settings) -> int:
    """Write the installable EspoCRM extension zip (CBeteiligte, its sync fields, hooks and layouts)."""
    from bitbylaw_tasks.espocrm import extension

    path = extension.build(args.out)
    print(path)
    return 0


def _env_file(args) -> Path | None:
    return None if args.no_env_file else Path(args.env_file)


def cmd_setup(args, settings: Settings) -> int:
    """Check the extension, create or check the integration user's role, register the CBeteiligte webhooks
    at the shim and store their secrets. Idempotent: a second run changes nothing."""
    from bitbylaw_tasks.clients import timeouts
    from bitbylaw_tasks.espocrm.provision import SetupError, run_setup, secrets_setting, set_env_vars
    from integrations.espocrm import EspoCrmClient
    from integrations.espocrm_admin import EspoCrmAdminClient

    base_url = settings.espocrm_base_url
    public_url = args.public_url or settings.web_public_url
    if not base_url:
        print("bitbylaw: espocrm setup needs ESPOCRM_BASE_URL (the real EspoCRM)", file=sys.stderr)
        return 2
    if not public_url:
        print("bitbylaw: espocrm setup needs WEB_PUBLIC_URL or --public-url (where EspoCRM reaches the shim)",
              file=sys.stderr)
        return 2
    password = settings.espocrm_admin_password
    if not password and sys.stdin.isatty():
        password = getpass.getpass(f"EspoCRM password of {settings.espocrm_admin_user!r}: ")
    if not password:
        print("bitbylaw: espocrm setup needs ESPOCRM_ADMIN_PASSWORD (or a terminal to ask for it)", file=sys.stderr)
        return 2
    admin = EspoCrmAdminClient(base_url, settings.espocrm_admin_user, password, timeouts=timeouts(settings))

    def integration_client(key: str):  # no shared rate gate: setup must not need Redis
        return EspoCrmClient(base_url, key, timeouts=timeouts(settings))

    try:
        result = run_setup(admin, integration_client, base_url=base_url, public_url=public_url,
                           api_key=settings.espocrm_api_key, api_user=args.api_user)
    except SetupError as exc:
        print(f"bitbylaw: espocrm setup failed: {exc}", file=sys.stderr)
        return 1
    for line in result.actions:
        print(f"  {line}")
    _store_secrets(settings, result.webhook_secrets)
    values = {"WEBHOOK_SECRETS": secrets_setting(result.webhook_secrets)}
    if result.new_api_key and result.new_api_key != settings.espocrm_api_key:
        values["ESPOCRM_API_KEY"] = result.new_api_key
    env_file = _env_file(args)
    if env_file is not None:
        old = env_file.read_text() if env_file.is_file() else ""
        new = set_env_vars(old, values)
        if new != old:
            env_file.write_text(new)
            env_file.chmod(0o600)
            print(f"  wrote {', '.join(values)} to {env_file}")
    else:
        print("  set these in the environment of every process (secrets, keep them out of logs):")
        for name in values:
            print(f"    {name}=…")
    summary = "changed" if result.changed else "nothing to change"
    print(f"bitbylaw: EspoCRM at {base_url} is set up ({summary}); integration user {result.user_name!r}, "
          f"webhooks -> {public_url}")
    return 0


def _store_secrets(settings: Settings, secrets: dict[str, str]) -> None:
    """Also put the secrets where running web workers read them at once (Redis), when Redis answers."""
    import redis as redis_lib

    from bitbylaw_tasks.redis_clients import lock_redis
    from bitbylaw_tasks.web.webhooks import register_secret

    try:
        client = lock_redis(settings)
        for hook_id, secret in secrets.items():
            register_secret(client, hook_id, secret)
    except redis_lib.RedisError:
        print("  (Redis not reachable: the web shim reads the secrets from WEBHOOK_SECRETS at its next start)")


def register(sub) -> None:
    """Add `espocrm` and its subcommands to the top-level parser's subparsers."""
    add = command_group(sub, "espocrm", "The EspoCRM half: build the extension, set up a real EspoCRM",
                        "Build the EspoCRM extension and connect a real EspoCRM to the product.")
    p = add("build-extension", cmd_build_extension)
    p.add_argument("--out", default="dist", help="folder to write the zip into (default: dist)")
    p = add("setup", cmd_setup, partial_settings=True)
    p.add_argument("--public-url", help="the shim's URL as EspoCRM reaches it (default: WEB_PUBLIC_URL)")
    p.add_argument("--api-user", default="bitbylaw-sync",
                   help="the integration API user to create when ESPOCRM_API_KEY is empty (default: bitbylaw-sync)")
    p.add_argument("--env-file", default=".env", help="write WEBHOOK_SECRETS (and a new ESPOCRM_API_KEY) here")
    p.add_argument("--no-env-file", action="store_true", help="write no file; only Redis and the summary")
