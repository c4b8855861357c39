"""`bitbylaw beteiligte …`: the operator's commands for the Beteiligte sync (SPEC §8)."""
from __future__ import annotations

import collections
import json

from bitbylaw_tasks.cli_groups import command_group
from bitbylaw_tasks.settings import Settings


def _clients(settings: Settings):
    from bitbylaw_tasks.clients import clients_for

    return clients_for(settings)


def existing_beteiligte(settings: Settings, entity_id: str) -> dict:
    """The CBeteiligte record, or a one-line `CommandError` when EspoCRM has none with this id."""
    from bitbylaw_tasks.cli_errors import CommandError
    from integrations.errors import NotFound

    try:
        return _clients(settings).espocrm.get_beteiligte(entity_id)
    except NotFound:
        raise CommandError(f"beteiligte {entity_id}: no such record in EspoCRM") from None


def linked_beteiligte(settings: Settings, entity_id: str) -> tuple[dict, int]:
    """The CBeteiligte record and its betNr, or a one-line `CommandError` when missing or not linked."""
    from bitbylaw_tasks.beteiligte.party import linked_betnr
    from bitbylaw_tasks.cli_errors import CommandError

    record = existing_beteiligte(settings, entity_id)
    betnr = linked_betnr(record)
    if betnr is None:
        raise CommandError(f"beteiligte {entity_id}: not linked to Advoware yet (no betnr); "
                           f"`bitbylaw beteiligte sync {entity_id}` creates it first")
    return record, betnr


def cmd_status(args, settings: Settings) -> int:
    """Count CBeteiligte by syncStatus (pages through all records), then the parties' check ages."""
    import time

    from bitbylaw_tasks.beteiligte.freshness import freshness
    from bitbylaw_tasks.redis_clients import lock_redis

    counts = collections.Counter(r.get("syncStatus") or "(none)"
                                 for r in _clients(settings).espocrm.iter_beteiligte(select=["syncStatus"]))
    for status, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"{status:22s} {n}")
    print(f"{'total':22s} {sum(counts.values())}")
    for line in freshness(lock_redis(settings), time.time()).lines():  # Advoware-only changes wait this long
        print(line)
    return 0


def _enqueue(settings: Settings, ids: list[str]) -> tuple[int, int]:
    from bitbylaw_tasks.messages import beteiligte_sync
    from bitbylaw_tasks.celery_app import app
    from bitbylaw_tasks.enqueue import enqueuer_for

    flags = []
    for start in range(0, len(ids), 500):
        flags += enqueuer_for(app).enqueue([beteiligte_sync(i, "update", "manual") for i in ids[start:start + 500]])
    return sum(flags), len(flags) - sum(flags)


def cmd_sync(args, settings: Settings) -> int:
    """Queue a manual sync of one entity (or run it here with --now); the record must exist in EspoCRM."""
    existing_beteiligte(settings, args.entity_id)
    if args.now:
        from bitbylaw_tasks.beteiligte.tasks import sync

        outcome = sync.apply(args=(args.entity_id, "update", "manual")).get()
        print(json.dumps(outcome, indent=2, default=str))
        if outcome.get("path") == "missing_in_espocrm":
            from bitbylaw_tasks.cli_errors import CommandError

            raise CommandError(f"beteiligte {args.entity_id}: deleted in EspoCRM during the sync")
        return 0
    queued, coalesced = _enqueue(settings, [args.entity_id])
    print("queued" if queued else "already queued")
    return 0


def cmd_sync_all(args, settings: Settings) -> int:
    """Queue a manual sync of every CBeteiligte."""
    ids = [r["id"] for r in _clients(settings).espocrm.iter_beteiligte(select=["id"])]
    queued, coalesced = _enqueue(settings, ids)
    print(f"queued {queued}, already queued {coalesced}")
    return 0


def cmd_audit(args, settings: Settings) -> int:
    """Field-by-field diff of the two sides of one entity, and what a sync would do. Read-only."""
    from bitbylaw_tasks.beteiligte.compare import compare
    from bitbylaw_tasks.beteiligte.mapping import mapped_snapshot, snapshot_of_advoware

    clients = _clients(settings)
    espo = existing_beteiligte(settings, args.entity_id)
    print(f"EspoCRM {espo['id']}  syncStatus={espo.get('syncStatus')}  betnr={espo.get('betnr')}  "
          f"lastSync={espo.get('advowareLastSync')}  retries={espo.get('syncRetryCount')}")
    if not espo.get("betnr"):
        print("not linked to Advoware yet: a sync would create it")
        return 0
    from integrations.errors import NotFound

    try:
        advo = clients.advoware.get_beteiligte(int(espo["betnr"]))
    except NotFound:
        print(f"Advoware betNr {espo['betnr']}: not found (deleted in Advoware)")
        return 1
    e, a = mapped_snapshot(espo), snapshot_of_advoware(advo)
    print(f"{'field':16s} {'EspoCRM':30s} {'Advoware':30s}")
    for field in e:
        mark = "" if e[field] == a.get(field) else "  <- differs"
        print(f"{field:16s} {e[field][:30]:30s} {a.get(field, '')[:30]:30s}{mark}")
    print(f"rowId stored={espo.get('advowareRowId')} current={advo.get('rowId')}")
    from bitbylaw_tasks.beteiligte.put_journal import resume_from
    from bitbylaw_tasks.beteiligte.store import PutJournal
    from bitbylaw_tasks.redis_clients import lock_redis

    resume, owed = resume_from(PutJournal(lock_redis(settings), espo["id"]).get(), espo, advo)
    if resume is not None or owed:
        print(f"an earlier PUT awaits its EspoCRM write-back; notes owed for: {[o.field for o in owed]}")
    print(f"a sync would do: {compare(espo, advo, policy=settings.conflict_policy, resume=resume).summary()}")
    return 0


def cmd_reset_failed(args, settings: Settings) -> int:
    """Reset permanently_failed records (one, or all) to failed with a zero retry count, due now."""
    from datetime import datetime, timezone

    from bitbylaw_tasks.beteiligte import status
    from integrations.espocrm import W

    espocrm = _clients(settings).espocrm
    if args.entity_id:
        existing_beteiligte(settings, args.entity_id)
    ids = [args.entity_id] if args.entity_id else [
        r["id"] for r in espocrm.iter_beteiligte(W.equals("syncStatus", status.PERMANENTLY_FAILED), select=["id"])]
    for entity_id in ids:
        espocrm.update_beteiligte(entity_id, status.auto_reset(datetime.now(timezone.utc)))
    queued, _ = _enqueue(settings, ids)
    print(f"reset {len(ids)}, queued {queued}")
    return 0


def cmd_resolve_create(args, settings: Settings) -> int:
    """After an uncertain create: adopt the Advoware betNr found (--betnr N) or allow a new create (--none)."""
    from bitbylaw_tasks.beteiligte.service import resolve_create
    from bitbylaw_tasks.redis_clients import lock_redis

    existing_beteiligte(settings, args.entity_id)
    resolve_create(lock_redis(settings), args.entity_id, None if args.none else args.betnr)
    _enqueue(settings, [args.entity_id])
    print("resolved; a sync is queued")
    return 0


def cmd_deletions(args, settings: Settings) -> int:
    """List CBeteiligte deleted in EspoCRM (Advoware was left untouched, SPEC §4.5)."""
    from bitbylaw_tasks.beteiligte.store import deletions
    from bitbylaw_tasks.redis_clients import lock_redis

    recorded = deletions(lock_redis(settings))
    if not recorded:
        print("no CBeteiligte deleted in EspoCRM recorded")
    for entity_id, when in recorded:
        print(f"{entity_id}  deleted {when} UTC")
    return 0


def register(sub) -> None:
    """Add `beteiligte` and its subcommands to the top-level parser's subparsers."""
    add = command_group(sub, "beteiligte", "Beteiligte sync: status, sync, audit, resets",
                        "Operator commands for the EspoCRM <-> Advoware Beteiligte sync.")
    add("status", cmd_status)
    p = add("sync", cmd_sync)
    p.add_argument("entity_id")
    p.add_argument("--now", action="store_true", help="run in this process instead of queueing")
    add("sync-all", cmd_sync_all)
    p = add("audit", cmd_audit)
    p.add_argument("entity_id")
    p = add("reset-failed", cmd_reset_failed)
    p.add_argument("entity_id", nargs="?")
    p = add("resolve-create", cmd_resolve_create)
    p.add_argument("entity_id")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--betnr", type=int, help="the Advoware betNr that was created")
    group.add_argument("--none", action="store_true", help="nothing was created: allow a new create")
    add("deletions", cmd_deletions)
