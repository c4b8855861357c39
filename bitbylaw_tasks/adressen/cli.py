"""`bitbylaw adressen manual-actions|sync|audit`: the operator's commands for the Adressen sync (SPEC §11).

`manual-actions` lists every open manual action (what a person must change in Advoware because the API
cannot), oldest first, from the durable list (`adressen/manual.py`); `sync ID` queues (or with `--now`
runs here) one party's address sync; `audit ID` prints what a sync would do, writing nothing.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from bitbylaw_tasks import messages
from bitbylaw_tasks.cli_errors import CommandError
from bitbylaw_tasks.beteiligte.cli import linked_beteiligte
from bitbylaw_tasks.cli_groups import command_group
from bitbylaw_tasks.settings import Settings


def cmd_manual_actions(args, settings: Settings) -> int:
    """List the open manual actions (what a person must change in Advoware by hand), oldest first."""
    from bitbylaw_tasks.adressen import manual
    from bitbylaw_tasks.redis_clients import lock_redis

    actions = manual.all_open(lock_redis(settings))
    if args.json:
        print(json.dumps([a.__dict__ for a in actions], indent=2, ensure_ascii=False))
        return 0
    if not actions:
        print("no open manual actions")
        return 0
    for action in actions:
        address = f" CAdresse {action.adresse_id}" if action.adresse_id else ""
        print(f"{action.opened_at}  party {action.party_id}{address}: {action.instruction}")
    print(f"{len(actions)} open")
    return 0


def cmd_sync(args, settings: Settings) -> int:
    """Queue the address sync of one CBeteiligte (or run it here with --now)."""
    from bitbylaw_tasks.adressen import tasks

    linked_beteiligte(settings, args.entity_id)
    if args.now:
        outcome = tasks.sync.apply(args=(args.entity_id, "manual")).get()
        print(json.dumps(outcome, indent=2, default=str))
        return 0
    from bitbylaw_tasks.celery_app import app
    from bitbylaw_tasks.enqueue import enqueuer_for

    queued = enqueuer_for(app).enqueue([messages.adressen_sync(args.entity_id, "manual")])
    print("queued" if sum(queued) else "already queued")
    return 0


def cmd_audit(args, settings: Settings) -> int:
    """What an address sync of one CBeteiligte would do, from both sides as they are now. Read-only."""
    from bitbylaw_tasks.adressen.plan import plan_party
    from bitbylaw_tasks.clients import clients_for
    from integrations.errors import NotFound

    espo, betnr = linked_beteiligte(settings, args.entity_id)
    clients = clients_for(settings)
    try:
        advoware = clients.advoware.list_adressen(betnr)
    except NotFound:
        raise CommandError(f"beteiligte {args.entity_id}: Advoware betNr {betnr} not found") from None
    records = clients.espocrm.list_adressen(args.entity_id)
    plan = plan_party(advoware, records, betnr, datetime.now(timezone.utc).date())
    print(f"EspoCRM {espo['id']}  betnr={betnr}  CAdresse={len(records)}  Advoware Adressen={len(advoware)}")
    for step in plan.addresses:
        does = [w for w, on in (("POST", step.post), ("PUT", step.put), ("EspoCRM", step.espo_write)) if on]
        ways = "".join(f"  {label}: {', '.join(names)}" for label, names in
                       (("to Advoware", step.pushed), ("to EspoCRM", step.pulled)) if names)
        print(f"  {step.variant:<20} {step.espo_id or '(new in EspoCRM)'}  {' '.join(does) or 'nothing to write'}"
              + ways + (f"  error: {step.error}" if step.error else ""))
        for action in step.manual:
            print(f"      by hand: {action.instruction}")
    return 0


def register(sub) -> None:
    """Add `adressen manual-actions|sync|audit` to the top-level parser's subparsers."""
    add = command_group(sub, "adressen", "Adressen sync: manual-actions, sync, audit",
                        "Operator commands for the Adressen sync (a party's addresses).")
    add("manual-actions", cmd_manual_actions).add_argument("--json", action="store_true", help="print JSON")
    for name, func in (("sync", cmd_sync), ("audit", cmd_audit)):
        p = add(name, func)
        p.add_argument("entity_id", help="the CBeteiligte id in EspoCRM")
        if name == "sync":
            p.add_argument("--now", action="store_true", help="run in this process instead of queueing")
