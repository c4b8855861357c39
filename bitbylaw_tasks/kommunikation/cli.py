"""`bitbylaw kommunikation sync|audit ID`: the operator's commands for one party's Kommunikation (SPEC §5).

`sync` queues (or with `--now` runs here) `kommunikation.sync` in a chosen
direction; `audit` reads both sides and prints what the planner would do,
writing nothing. Both refuse, in one line, a record that does not exist or is
not linked to Advoware yet.
"""
from __future__ import annotations

import json

from bitbylaw_tasks import messages
from bitbylaw_tasks.cli_errors import CommandError
from bitbylaw_tasks.kommunikation.plan import BOTH, DIRECTIONS
from bitbylaw_tasks.beteiligte.cli import linked_beteiligte
from bitbylaw_tasks.cli_groups import command_group
from bitbylaw_tasks.settings import Settings


def cmd_sync(args, settings: Settings) -> int:
    """Queue a Kommunikation sync of one CBeteiligte (or run it here with --now)."""
    from bitbylaw_tasks.kommunikation import tasks

    linked_beteiligte(settings, args.entity_id)
    if args.now:
        outcome = tasks.sync.apply(args=(args.entity_id, args.direction, args.force_espo_wins)).get()
        print(json.dumps(outcome, indent=2, default=str))
        if outcome.get("path") in ("missing", "not_linked"):
            raise CommandError(f"beteiligte {args.entity_id}: {outcome['path']} during the sync")
        return 0
    from bitbylaw_tasks.celery_app import app
    from bitbylaw_tasks.enqueue import enqueuer_for

    queued = enqueuer_for(app).enqueue([messages.kommunikation_sync(args.entity_id, args.direction, args.force_espo_wins)])
    print("queued" if sum(queued) else "already queued")
    return 0


def cmd_audit(args, settings: Settings) -> int:
    """What a Kommunikation sync would do for one CBeteiligte, from both sides as they are now. Read-only."""
    from bitbylaw_tasks.clients import clients_for
    from bitbylaw_tasks.kommunikation.service import advoware_entries, load_status, plan_for
    from integrations.errors import NotFound

    espo, betnr = linked_beteiligte(settings, args.entity_id)
    try:
        advo = clients_for(settings).advoware.get_beteiligte(betnr)
    except NotFound:
        raise CommandError(f"beteiligte {args.entity_id}: Advoware betNr {betnr} not found "
                           f"(deleted in Advoware)") from None
    status = load_status(espo)
    print(f"EspoCRM {espo['id']}  betnr={betnr}  "
          f"e-mails={len(espo.get('emailAddressData') or [])}  phones={len(espo.get('phoneNumberData') or [])}  "
          f"status entries={len(status.entries) if status else '(none: initial sync)'}")
    print(f"Advoware betNr {betnr}  Kommunikation entries={len(advoware_entries(advo))}")
    plan = plan_for(espo, advo, direction=args.direction, force_espo_wins=args.force_espo_wins)
    print(f"direction={args.direction}  force_espo_wins={args.force_espo_wins}")
    print("a sync would change nothing" if plan.is_empty else str(plan))
    return 0


def register(sub) -> None:
    """Add `kommunikation sync|audit` to the top-level parser's subparsers."""
    add = command_group(sub, "kommunikation", "Kommunikation sync of one party: sync, audit",
                        "Operator commands for the Kommunikation sync (phones, faxes, e-mails).")
    for name, func in (("sync", cmd_sync), ("audit", cmd_audit)):
        p = add(name, func)
        p.add_argument("entity_id", help="the CBeteiligte id in EspoCRM")
        p.add_argument("--direction", choices=DIRECTIONS, default=BOTH,
                       help="both (default), to_espocrm (Advoware wins) or to_advoware (EspoCRM wins)")
        p.add_argument("--force-espo-wins", action="store_true", help="EspoCRM wins every conflict")
        if name == "sync":
            p.add_argument("--now", action="store_true", help="run in this process instead of queueing")
