"""The durable list of open manual actions (what Advoware's API cannot write; docs/adressen-sync.md).

Redis DB 1 (the locks' Redis, persistent like the retry schedule): one hash per
party `adressen:manual:{party id}` (action key -> JSON) and the set
`adressen:manual:parties` of parties with open actions, so `bitbylaw adressen
manual-actions` lists them without scanning. Each sync of a party passes the
actions its plan still wants; `reconcile` opens the new ones (the caller posts
their note) and closes those no longer wanted (Advoware now matches, or the
EspoCRM side gave the change up). The people-facing copy is the stream note
and the CAdresse's `advowareManualAction` field. Every open action is mirrored
into the operators' register (`ops.manual`, field `adressen|{party id}|{action
key}`), so `/status` lists it and `bitbylaw_manual_actions_pending` counts it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

import redis

from bitbylaw_tasks.adressen.plan import ManualAction
from bitbylaw_tasks.metrics import MANUAL_KEY as METRIC_KEY
from bitbylaw_tasks.ops import manual as register

PARTIES_KEY = "adressen:manual:parties"
DOMAIN = "adressen"


def _key(party_id: str) -> str:
    return f"adressen:manual:{party_id}"


@dataclass(frozen=True)
class OpenAction:
    key: str
    party_id: str
    betnr: int
    adresse_id: str | None
    field: str
    instruction: str
    opened_at: str


@dataclass(frozen=True)
class Reconciled:
    opened: list[OpenAction]
    closed: list[OpenAction]


def _load(raw: bytes) -> OpenAction:
    return OpenAction(**json.loads(raw))


def open_actions(client: redis.Redis, party_id: str) -> list[OpenAction]:
    return [_load(v) for _, v in sorted(client.hgetall(_key(party_id)).items())]


def reconcile(client: redis.Redis, party_id: str, betnr: int, wanted: list[ManualAction],
              now: datetime) -> Reconciled:
    """Make the stored list of `party_id` exactly `wanted`; an action whose instruction changed is replaced
    (closed and opened again, so its new text reaches the person)."""
    stored = {a.key: a for a in open_actions(client, party_id)}
    want = {a.key: a for a in wanted}
    opened, closed = [], []
    for key, action in want.items():
        have = stored.get(key)
        if have is not None and have.instruction == action.instruction:
            continue
        if have is not None:
            closed.append(have)
        opened.append(OpenAction(key, party_id, int(betnr), action.adresse_id, action.field, action.instruction,
                                 now.strftime("%Y-%m-%d %H:%M:%S")))
    closed += [a for key, a in stored.items() if key not in want]
    pipe = client.pipeline(transaction=True)
    for action in closed:
        pipe.hdel(_key(party_id), action.key)
    for action in opened:
        pipe.hset(_key(party_id), action.key, json.dumps(asdict(action), ensure_ascii=False))
    if want:
        pipe.sadd(PARTIES_KEY, party_id)
    else:
        pipe.srem(PARTIES_KEY, party_id)
    if opened:
        pipe.hincrby(METRIC_KEY, f"{DOMAIN}|opened", len(opened))
    if closed:
        pipe.hincrby(METRIC_KEY, f"{DOMAIN}|closed", len(closed))
    if opened or closed:
        pipe.execute()
    for action in closed:
        register.resolve(client, DOMAIN, party_id, action.key)
    for action in opened:
        register.add(client, DOMAIN, party_id, action.key, action.instruction)
    return Reconciled(opened, closed)


def all_open(client: redis.Redis) -> list[OpenAction]:
    """Every open action of every party, oldest first."""
    found = []
    for party in sorted(client.smembers(PARTIES_KEY)):
        found += open_actions(client, party.decode())
    return sorted(found, key=lambda a: (a.opened_at, a.party_id, a.key))


def counts(client: redis.Redis) -> dict[str, int]:
    """{"open", "opened", "closed"} of this domain."""
    totals = {k.decode(): int(v) for k, v in client.hgetall(METRIC_KEY).items()}
    return {"open": sum(client.hlen(_key(p.decode())) for p in client.smembers(PARTIES_KEY)),
            "opened": totals.get(f"{DOMAIN}|opened", 0), "closed": totals.get(f"{DOMAIN}|closed", 0)}
