"""The 3CX lookup: a caller's number -> the owning party, contact or lead, in the JSON the template maps.

Served from the phone index: the rate limit, the index read and the request
count are one Redis round trip (a fixed window per client address, written
here rather than with `limits`, whose check is a round trip of its own). A miss may ask EspoCRM
once (THREECX_MISS_FALLBACK: CBeteiligte by phone number, short timeout); a
number EspoCRM does not know either is remembered as a miss for a minute, so a
ringing phone never asks twice (docs/inbound-channels.md).
"""
from __future__ import annotations

import functools
import logging
import threading
import time

import redis

from bitbylaw_tasks.inbound import phone_index
from bitbylaw_tasks.inbound.phone_index import Owner
from bitbylaw_tasks.inbound.phones import to_e164
from bitbylaw_tasks.settings import Settings
from integrations.errors import ApiError

log = logging.getLogger(__name__)
MISS_KEY = "phoneidx:miss:"
MISS_TTL = 60
FALLBACK_TIMEOUT = (0.3, 0.5)  # connect, read (s): the phone is ringing
_RECORDS: dict[int, object] = {}
_RECORDS_LOCK = threading.Lock()


def contact_url(settings: Settings, owner: Owner) -> str:
    """Where the record opens in EspoCRM's UI (`…/#Lead/view/{id}`)."""
    from bitbylaw_tasks.clients import sandbox_url

    base = settings.espocrm_public_url or settings.espocrm_base_url or sandbox_url(settings, settings.sandbox_espocrm_port)
    base = base.rstrip("/")
    if base.endswith("/api/v1"):
        base = base[: -len("/api/v1")]
    return f"{base}/#{owner.type}/view/{owner.id}"


def contact_doc(settings: Settings, owner: Owner) -> dict:
    """One entry of the answer; the template's Variables read these paths (`contacts.firstName`, …)."""
    return {"id": owner.id, "entityType": owner.type, "firstName": owner.first_name, "lastName": owner.last_name,
            "company": owner.company, "email": owner.email, "phoneBusiness": owner.phone_business,
            "phoneMobile": owner.phone_mobile, "contactUrl": contact_url(settings, owner)}


def answer(settings: Settings, client: redis.Redis, raw_number: str, address: str) -> tuple[int, dict, list]:
    """(status, document, extra headers): 200 `{"number": e164, "contacts": [one entry] or []}`, or 429
    when `address` spent its THREECX_RATE_LIMIT."""
    from bitbylaw_tasks.metrics import INBOUND_KEY, record_inbound

    limit = _rate(settings.threecx_rate_limit)
    window = limit.get_expiry()
    slot = int(time.time() // window)
    number = to_e164(raw_number, settings.inbound_phone_region)
    pipe = client.pipeline(transaction=False)
    pipe.incr(f"inbound:rl:3cx-lookup:{address}:{slot}")
    pipe.expire(f"inbound:rl:3cx-lookup:{address}:{slot}", window + 1)
    pipe.hincrby(INBOUND_KEY, "lookup|answered", 1)
    if number:
        pipe.hvals(phone_index.NUMBER_KEY + number)
    used, *_, owners = pipe.execute()
    if used > limit.amount:
        retry_after = str(max(1, int((slot + 1) * window - time.time()) + 1))
        return 429, {"error": "too many requests from this address", "status": 429}, [("Retry-After", retry_after)]
    if number is None:
        return 200, {"number": "", "contacts": []}, []
    owner = phone_index.choose_owner([Owner.from_json(v) for v in owners])
    if owner is None and settings.threecx_miss_fallback and not client.exists(MISS_KEY + number):
        owner = _fallback(settings, client, number)
    if owner is None:
        record_inbound(client, "lookup", "miss")
    return 200, {"number": number, "contacts": [contact_doc(settings, owner)] if owner else []}, []


@functools.lru_cache(maxsize=8)
def _rate(text: str):
    from limits import parse

    return parse(text)


def _records(settings: Settings):
    from bitbylaw_tasks.clients import espocrm_client
    from integrations.espocrm_crm import EspoCrmRecords
    from integrations.http import Timeouts

    with _RECORDS_LOCK:
        if id(settings) not in _RECORDS:
            client = espocrm_client(settings)
            client.timeouts = Timeouts(connect=FALLBACK_TIMEOUT[0], read=FALLBACK_TIMEOUT[1])
            _RECORDS[id(settings)] = EspoCrmRecords(client)
        return _RECORDS[id(settings)]


def _fallback(settings: Settings, client: redis.Redis, number: str) -> Owner | None:
    """One EspoCRM query for a number the index does not know; the answer is indexed either way."""
    try:
        found = _records(settings).find_by_email_or_phone("CBeteiligte", phone=number)
    except ApiError as exc:
        log.warning("3cx lookup: EspoCRM fallback failed (%s); answering no match", type(exc).__name__)
        return None
    if not found:
        client.set(MISS_KEY + number, "1", ex=MISS_TTL)
        return None
    owner, _ = phone_index.owner_from_record("CBeteiligte", found[0], settings.inbound_phone_region)
    phone_index.add_number(client, owner, number)
    return owner
