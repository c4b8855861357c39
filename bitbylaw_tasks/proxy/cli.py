"""`bitbylaw proxy …`: create, list and revoke the Advoware proxy's caller keys; print its audit.

`register(subparsers)` adds the `proxy` command to the main parser (`bitbylaw_tasks/cli.py`).
"""
from __future__ import annotations

import json

from bitbylaw_tasks.cli_errors import CommandError
from bitbylaw_tasks.proxy import audit, keys
from bitbylaw_tasks.proxy.rules import SCOPES
from bitbylaw_tasks.redis_clients import lock_redis
from bitbylaw_tasks.settings import Settings
from bitbylaw_tasks.timefmt import iso_utc


def _key_doc(key: keys.ProxyKey) -> dict:
    return {"id": key.id, "name": key.name, "scope": key.scope, "allow": list(key.allow),
            "created_at": iso_utc(key.created_at), "revoked_at": iso_utc(key.revoked_at)}


def cmd_create(args, settings: Settings) -> int:
    """Create a key and print its secret, this once (Redis keeps only its hash)."""
    try:
        key, secret = keys.create(lock_redis(settings), args.name, args.scope, args.allow)
    except keys.KeyRefused as exc:
        raise CommandError(f"bitbylaw proxy keys create: {exc}", code=2) from None
    print(json.dumps(_key_doc(key), indent=2))
    print(f"secret (shown once, store it now): {secret}")
    return 0


def cmd_list(args, settings: Settings) -> int:
    docs = [_key_doc(k) for k in keys.list_keys(lock_redis(settings)) if args.all or k.active]
    print(json.dumps(docs, indent=2))
    return 0


def cmd_revoke(args, settings: Settings) -> int:
    try:
        key = keys.revoke(lock_redis(settings), args.name)
    except keys.KeyRefused as exc:
        raise CommandError(f"bitbylaw proxy keys revoke: {exc}") from None
    print(f"revoked {key.name} ({key.id}); calls with it now get 401")
    return 0


def cmd_audit(args, settings: Settings) -> int:
    """One line per proxied call (oldest first): time, key, method, path template, status, duration, bytes."""
    try:
        since = audit.parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise CommandError(f"bitbylaw proxy audit: {exc}", code=2) from None
    entries = audit.read(lock_redis(settings), key=args.key, since=since, limit=args.limit)
    for e in entries:
        if args.json:
            print(json.dumps({**vars(e), "at": iso_utc(e.at)}))
        else:
            print(f"{iso_utc(e.at)}  {e.key:<16} {e.method:<6} {e.path:<48} {e.status}  {e.ms:7.1f} ms  "
                  f"in={e.bytes_in} out={e.bytes_out}  {e.reason}")
    return 0


def register(sub) -> None:
    proxy = sub.add_parser("proxy", help="The Advoware proxy: caller keys and the audit.",
                           description="The Advoware proxy (/advoware/api/v1/…): caller keys and the audit.")
    commands = proxy.add_subparsers(dest="proxy_command", required=True, metavar="COMMAND")
    key_parser = commands.add_parser("keys", help="Create, list or revoke caller keys.",
                                     description="Create, list or revoke the proxy's caller keys.")
    key_commands = key_parser.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    p = key_commands.add_parser("create", help="Create a key; its secret is printed once.",
                                description="Create a caller key; its secret is printed once.")
    p.add_argument("name", help="a name for the caller (a-z 0-9 _ . -)")
    p.add_argument("--scope", required=True, choices=list(SCOPES), help="read: GET only; write: GET POST PUT DELETE")
    p.add_argument("--allow", required=True, nargs="+", metavar="PREFIX",
                   help="path prefixes under /advoware/api/v1/advonet/ (e.g. Beteiligte Termine Beteiligte/*/Kommunikationen)")
    p.set_defaults(func=cmd_create)
    p = key_commands.add_parser("list", help="List the keys (never their secrets).",
                                description="List the caller keys (never their secrets).")
    p.add_argument("--all", action="store_true", help="include revoked keys")
    p.set_defaults(func=cmd_list)
    p = key_commands.add_parser("revoke", help="Revoke a key at once.", description="Revoke a caller key at once.")
    p.add_argument("name")
    p.set_defaults(func=cmd_revoke)
    p = commands.add_parser("audit", help="Print the audit of proxied calls.",
                            description="Print the audit of proxied calls (no bodies, no query values).")
    p.add_argument("--key", metavar="NAME", help="only this key's calls")
    p.add_argument("--since", metavar="WHEN", help="30m, 2h, 7d or an ISO date/time (default: all kept)")
    p.add_argument("--limit", type=int, default=1000, help="at most this many (the newest)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_audit)
