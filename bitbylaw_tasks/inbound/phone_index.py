"""The phone index 3CX lookups read (Redis DB 1): E.164 number -> the records owning it.

Layout: `phoneidx:n:{e164}` is a hash `{type}:{id}` -> owner JSON (the fields a
3CX answer shows); `phoneidx:r:{type}:{id}` is the set of numbers indexed for
that record, so a record's old numbers leave the index when it changes;
`phoneidx:seen` maps `{type}:{id}` -> the `modifiedAt` last indexed, so a
rebuild reads only records changed since (docs/inbound-channels.md).

Kept current by lead intake, the Kommunikation sync (`index_after_sync`), call
journaling (a lead it creates) and the periodic rebuild (`rebuild`). Deciding
is pure (`owner_from_record`, `choose_owner`); the rest writes Redis.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import redis

from bitbylaw_tasks.inbound.phones import to_e164

log = logging.getLogger(__name__)
NUMBER_KEY = "phoneidx:n:"
RECORD_KEY = "phoneidx:r:"
SEEN_KEY = "phoneidx:seen"
#: The entity types the index covers, in the order a tie on `modifiedAt` prefers them.
ENTITY_TYPES = ("CBeteiligte", "Contact", "Lead")
BUSINESS_TYPES = ("Office", "Other", "Home")  # shown as PhoneBusiness; a fax number is indexed, never shown


@dataclass(frozen=True)
class Owner:
    """What a 3CX answer needs of a record owning a number."""

    type: str
    id: str
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    email: str = ""
    phone_business: str = ""
    phone_mobile: str = ""
    modified_at: str = ""

    @property
    def field(self) -> str:
        return f"{self.type}:{self.id}"

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: bytes | str) -> "Owner":
        return cls(**json.loads(text))


def owner_from_record(entity_type: str, record: dict, region: str = "DE") -> tuple[Owner, set[str]]:
    """The owner a full EspoCRM record (with `phoneNumberData`, or only `phoneNumber`) stands for, and its
    numbers in E.164. A CBeteiligte company has `firmenname`; a Lead/Contact may have `accountName`."""
    phones = record.get("phoneNumberData") or []
    if not phones and record.get("phoneNumber"):
        phones = [{"phoneNumber": record["phoneNumber"], "type": "Mobile", "primary": True}]
    numbers: set[str] = set()
    business = mobile = ""
    for item in sorted(phones, key=lambda p: not p.get("primary")):
        number = to_e164(str(item.get("phoneNumber") or ""), region)
        if number is None or item.get("invalid"):
            continue
        numbers.add(number)
        if item.get("type") == "Mobile":
            mobile = mobile or number
        elif item.get("type") in BUSINESS_TYPES:
            business = business or number
    emails = record.get("emailAddressData") or []
    email = next((e["emailAddress"] for e in emails if e.get("primary")), "") or record.get("emailAddress") or ""
    owner = Owner(type=entity_type, id=record["id"], first_name=record.get("firstName") or "",
                  last_name=record.get("lastName") or "",
                  company=record.get("firmenname") or record.get("accountName") or "",
                  email=email, phone_business=business, phone_mobile=mobile,
                  modified_at=record.get("modifiedAt") or "")
    return owner, numbers


def choose_owner(owners: list[Owner]) -> Owner | None:
    """Several records own a number: the most recently modified wins; on a tie a party before a contact
    before a lead (SPEC §12), then the smaller id (stable)."""
    if not owners:
        return None
    rank = {t: i for i, t in enumerate(ENTITY_TYPES)}
    newest = max(o.modified_at for o in owners)
    return min((o for o in owners if o.modified_at == newest), key=lambda o: (rank.get(o.type, 9), o.id))


def put(client: redis.Redis, owner: Owner, numbers: set[str]) -> None:
    """Index `owner` under exactly `numbers` (its earlier numbers are dropped)."""
    record_key = RECORD_KEY + owner.field
    old = {n.decode() for n in client.smembers(record_key)}
    pipe = client.pipeline(transaction=True)
    for number in old - numbers:
        pipe.hdel(NUMBER_KEY + number, owner.field)
    for number in numbers:
        pipe.hset(NUMBER_KEY + number, owner.field, owner.to_json())
    pipe.delete(record_key)
    if numbers:
        pipe.sadd(record_key, *numbers)
    pipe.hset(SEEN_KEY, owner.field, owner.modified_at)
    pipe.execute()


def add_number(client: redis.Redis, owner: Owner, number: str) -> None:
    """Index one more number of `owner` (found by a lookup's fallback) without marking the record as read:
    the next rebuild reads it in full."""
    pipe = client.pipeline(transaction=True)
    pipe.hset(NUMBER_KEY + number, owner.field, owner.to_json())
    pipe.sadd(RECORD_KEY + owner.field, number)
    pipe.execute()


def remove(client: redis.Redis, entity_type: str, record_id: str) -> None:
    put(client, Owner(type=entity_type, id=record_id), set())
    client.hdel(SEEN_KEY, f"{entity_type}:{record_id}")


def index_record(client: redis.Redis, entity_type: str, record: dict, region: str = "DE") -> Owner:
    owner, numbers = owner_from_record(entity_type, record, region)
    put(client, owner, numbers)
    return owner


def owners_of(client: redis.Redis, number: str) -> list[Owner]:
    return [Owner.from_json(v) for v in client.hvals(NUMBER_KEY + number)]


def lookup(client: redis.Redis, number: str) -> Owner | None:
    """The owner of an E.164 number, from the index alone (one round trip)."""
    return choose_owner(owners_of(client, number))


def index_after_sync(client: redis.Redis, record: dict, written: dict) -> None:
    """After the Kommunikation sync wrote `written` onto the CBeteiligte `record`: index its numbers now.
    Never fails the sync (the rebuild repairs a miss)."""
    try:
        merged = {**record, **written}
        if written:
            merged["modifiedAt"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        index_record(client, "CBeteiligte", merged)
    except (redis.RedisError, KeyError, TypeError, ValueError) as exc:
        log.warning("phone index: CBeteiligte %s not indexed after sync: %s", record.get("id"), type(exc).__name__)


@dataclass
class RebuildResult:
    listed: int = 0
    read: int = 0
    removed: int = 0


def rebuild(client: redis.Redis, records, region: str = "DE") -> RebuildResult:
    """Bring the index up to EspoCRM. `records` is an object with `list_ids(entity_type)` -> iterable of
    `(id, modifiedAt)` and `get(entity_type, id)` -> full record: records whose `modifiedAt` differs from the
    one last indexed are read by id (lists lack the phone arrays) and indexed; records gone are removed."""
    result = RebuildResult()
    seen = {k.decode(): v.decode() for k, v in client.hgetall(SEEN_KEY).items()}
    present: set[str] = set()
    for entity_type in ENTITY_TYPES:
        for record_id, modified_at in records.list_ids(entity_type):
            result.listed += 1
            field = f"{entity_type}:{record_id}"
            present.add(field)
            if seen.get(field) == (modified_at or "") and modified_at:
                continue
            index_record(client, entity_type, records.get(entity_type, record_id), region)
            result.read += 1
    for field in set(seen) - present:
        entity_type, _, record_id = field.partition(":")
        remove(client, entity_type, record_id)
        result.removed += 1
    return result
