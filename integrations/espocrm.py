"""The product's EspoCRM client: CBeteiligte CRUD and search, stream notes, webhook subscriptions (SPEC §3.1, §3.4).

One `requests.Session` per client (keep-alive, timeouts, urllib3 `Retry` for
idempotent methods only, see `integrations.http.make_session`); failures are
`integrations.http` exceptions, never status codes; no API key in any message.
`W` builds `where` items; `encode_where()` turns them into EspoCRM's PHP
bracket parameters (`where[0][type]=equals&where[0][attribute]=...`).
"""
from __future__ import annotations

import collections
import time
from typing import Any, Iterator

import requests
from urllib3.util.retry import Retry

from integrations.errors import ApiError, BadRequest, BudgetExhausted, Conflict, RateLimited
from integrations.http import Timeouts, make_session, send
from integrations.rategate import RateGate

SYSTEM = "espocrm"
ENTITY = "CBeteiligte"
ADRESSE = "CAdresse"  # a party's address (link `beteiligte`)
MAX_SIZE = 200
SETTINGS_TTL = 600.0  # seconds a read of EspoCRM's settings (phone number format) is trusted


def _where_item(kind: str, attribute: str | None = None, value: Any = None) -> dict:
    item: dict = {"type": kind}
    if attribute is not None:
        item["attribute"] = attribute
    if value is not None:
        item["value"] = value
    return item


def _compare(kind: str):
    """A builder `(attribute, value) -> item` for EspoCRM's comparison `kind`."""
    return staticmethod(lambda attribute, value: _where_item(kind, attribute, value))


def _test(kind: str):
    """A builder `(attribute) -> item` for EspoCRM's value-less test `kind`."""
    return staticmethod(lambda attribute: _where_item(kind, attribute))


def _group(kind: str):
    """A builder `(*items) -> item` for EspoCRM's logical `kind`."""
    return staticmethod(lambda *items: _where_item(kind, None, list(items)))


def _listed(kind: str):
    """A builder `(attribute, values) -> item` for `in`/`notIn` (an empty list is refused: PHP would drop it)."""
    def build(attribute: str, values) -> dict:
        values = list(values)
        if not values:
            raise ValueError(f"W.{kind} needs at least one value (an empty PHP array is not sent at all)")
        return _where_item(kind, attribute, values)
    return staticmethod(build)


class W:
    """Builders for EspoCRM `where` items: `W.and_(W.equals("syncStatus", "dirty"), W.is_null("betnr"))`.
    Each name stands for EspoCRM's where type of the same meaning (the string beside it)."""

    equals = _compare("equals")
    not_equals = _compare("notEquals")
    before = _compare("before")
    after = _compare("after")
    less_than = _compare("lessThan")
    greater_than = _compare("greaterThan")
    less_than_or_equals = _compare("lessThanOrEquals")
    greater_than_or_equals = _compare("greaterThanOrEquals")
    contains = _compare("contains")
    in_ = _listed("in")
    not_in = _listed("notIn")
    is_null = _test("isNull")
    is_not_null = _test("isNotNull")
    is_true = _test("isTrue")
    is_false = _test("isFalse")
    and_ = _group("and")
    or_ = _group("or")
    not_ = _group("not")

    @staticmethod
    def between(attribute: str, low, high) -> dict:
        return _where_item("between", attribute, [low, high])


def _php_scalar(value) -> str:
    """A value as PHP's `http_build_query` writes it (true -> 1, false -> 0)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def encode_where(items: list[dict] | dict | None, prefix: str = "where") -> list[tuple[str, str]]:
    """`where` items -> PHP bracket query pairs, in order (None values are left out, as PHP does)."""
    if items is None:
        return []
    if isinstance(items, dict):
        items = [items]
    pairs: list[tuple[str, str]] = []

    def walk(key: str, value) -> None:
        if value is None:
            return
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{key}[{k}]", v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{key}[{i}]", v)
        else:
            pairs.append((key, _php_scalar(value)))

    walk(prefix, list(items))
    return pairs


def is_version_conflict(exc: Conflict) -> bool:
    """A 409 from a stale `X-Version-Number` (payload `{"values", "versionNumber"}`), as opposed to any other
    409, such as the extension's duplicate-betnr refusal, which re-reading cannot cure."""
    return isinstance(exc.payload, dict) and "versionNumber" in exc.payload


class MissingFields(BadRequest):
    """EspoCRM saved the record but does not know some written attributes (it ignores unknown ones
    silently): the entity lacks fields the product relies on (the extension is missing or outdated)."""


def _all_stored(data: dict, record: dict) -> dict:
    """`record` (the save's answer: the full record); raises `MissingFields` when a written attribute is
    not in it, so the product's state never vanishes silently into an EspoCRM that lacks the field."""
    missing = sorted(k for k in data if k not in record)
    if missing:
        raise MissingFields(f"{SYSTEM}: {ENTITY} has no attribute(s) {', '.join(missing)}: is the bitbylaw EspoCRM "
                            f"extension installed and current? (`bitbylaw espocrm setup` checks)", system=SYSTEM)
    return record


def _without_429_retries(session: requests.Session) -> requests.Session:
    """Stop urllib3 from sleeping through a 429's `Retry-After` inside the call (it does so for GET when
    `respect_retry_after_header` is on): the caller must see `RateLimited` so the shared gate can pause
    every process, not just this one."""
    for adapter in session.adapters.values():
        retry = getattr(adapter, "max_retries", None)
        if isinstance(retry, Retry) and retry.respect_retry_after_header:
            adapter.max_retries = retry.new(respect_retry_after_header=False)
    return session


def api_root(base_url: str) -> str:
    """`base_url` with the API path EspoCRM serves under (`…/api/v1`), given with or without it."""
    root = base_url.rstrip("/")
    return root if root.endswith("/api/v1") else root + "/api/v1"


class EspoCrmClient:
    """Talks to one EspoCRM as the integration user. `calls` counts HTTP requests by client method."""

    def __init__(self, base_url: str, api_key: str, *, timeouts: Timeouts = Timeouts(),
                 gate: RateGate | None = None, session: requests.Session | None = None):
        self.api = api_root(base_url)
        self.timeouts = timeouts
        self.gate = gate
        self.session = session or _without_429_retries(make_session())
        self.session.headers.update({"X-Api-Key": api_key, "Accept": "application/json"})
        self.calls: collections.Counter = collections.Counter()
        self._phone_international: tuple[bool, float] | None = None  # (value, when read)

    def __repr__(self) -> str:
        return f"EspoCrmClient({self.api!r})"

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def _call(self, name: str, method: str, path: str, *, headers: dict | None = None, **kwargs):
        self.calls[name] += 1
        try:
            response = send(SYSTEM, self.session, method, f"{self.api}/{path}", timeouts=self.timeouts,
                            gate=self.gate, headers=headers, **kwargs)
        except RateLimited as exc:
            if self.gate is not None and exc.retry_after and not isinstance(exc, BudgetExhausted):
                self.gate.pause(exc.retry_after)
            raise
        return response.json()

    def request(self, name: str, method: str, path: str, **kwargs):
        """One API call (counted under `name`) for sibling modules that speak other entities
        (`integrations/espocrm_crm.py`); same session, rate gate and error mapping."""
        return self._call(name, method, path, **kwargs)

    # ------------------------------------------------------------ CBeteiligte
    def get_beteiligte(self, record_id: str) -> dict:
        """The full record, with `emailAddressData` and `phoneNumberData` (only a read by id has them)."""
        return self._call("get_beteiligte", "GET", f"{ENTITY}/{record_id}")

    def create_beteiligte(self, data: dict) -> dict:
        return _all_stored(data, self._call("create_beteiligte", "POST", ENTITY, json=data))

    def update_beteiligte(self, record_id: str, data: dict, *, version_number: int | None = None) -> dict:
        """Partial update; returns the full record. With `version_number` a stale write raises `Conflict`
        whose `payload` is `{"values": {attr: stored}, "versionNumber": n}`."""
        headers = {"X-Version-Number": str(version_number)} if version_number is not None else None
        try:
            record = self._call("update_beteiligte", "PUT", f"{ENTITY}/{record_id}", json=data, headers=headers)
        except BadRequest:
            if "phoneNumberData" in data:  # refused numbers: the phone format setting may have changed
                self.forget_server_settings()
            raise
        return _all_stored(data, record)

    def delete_beteiligte(self, record_id: str) -> bool:
        return bool(self._call("delete_beteiligte", "DELETE", f"{ENTITY}/{record_id}"))

    def search(self, entity: str, where: list[dict] | dict | None = None, *, select: list[str] | None = None,
               order_by: str | None = None, order: str = "asc", offset: int = 0, max_size: int = MAX_SIZE,
               name: str | None = None) -> tuple[int, list[dict]]:
        """One page of any entity's list: (total, records); `name` labels the call (default `search_{entity}`)."""
        params = encode_where(where)
        params += [("offset", str(offset)), ("maxSize", str(max_size))]
        if order_by:
            params += [("orderBy", order_by), ("order", order)]
        if select:
            params.append(("select", ",".join(select)))
        body = self._call(name or f"search_{entity}", "GET", entity, params=params)
        return int(body.get("total", 0)), list(body.get("list", []))

    def iter_by_id(self, entity: str, where: list[dict] | dict | None = None, *, select: list[str] | None = None,
                   name: str | None = None) -> Iterator[dict]:
        """Every matching record, keyset-paged (`id > last id`, maxSize 200): records that stop matching while
        we page cannot make us skip others."""
        base = [] if where is None else ([where] if isinstance(where, dict) else list(where))
        if select and "id" not in select:
            select = ["id", *select]
        last = None
        while True:
            page_where = base + ([W.greater_than("id", last)] if last is not None else [])
            _, page = self.search(entity, page_where, select=select, order_by="id", name=name)
            yield from page
            if len(page) < MAX_SIZE:
                return
            last = page[-1]["id"]

    def search_beteiligte(self, where: list[dict] | dict | None = None, *, select: list[str] | None = None,
                          order_by: str | None = None, order: str = "asc", offset: int = 0,
                          max_size: int = MAX_SIZE) -> tuple[int, list[dict]]:
        """One page: (total, records). List records never contain the e-mail/phone arrays."""
        return self.search(ENTITY, where, select=select, order_by=order_by, order=order, offset=offset,
                           max_size=max_size, name="search_beteiligte")

    def iter_beteiligte(self, where: list[dict] | dict | None = None, *, select: list[str] | None = None,
                        order_by: str = "id", paging: str = "keyset") -> Iterator[dict]:
        """Every matching record, page by page (maxSize 200).

        `paging="keyset"` (default, needs `order_by="id"`) asks for `id > last
        id` each time, so records that stop matching while we page (a sweep
        whose syncs change `syncStatus`) cannot make us skip others;
        `paging="offset"` is plain `offset` + `maxSize`.
        """
        if paging == "keyset":
            if order_by != "id":
                raise ValueError("keyset paging orders by id")
            yield from self.iter_by_id(ENTITY, where, select=select, name="search_beteiligte")
        elif paging == "offset":
            base = [] if where is None else ([where] if isinstance(where, dict) else list(where))
            if select and "id" not in select:
                select = ["id", *select]
            offset = 0
            while True:
                total, page = self.search_beteiligte(base, select=select, order_by=order_by, offset=offset)
                yield from page
                offset += len(page)
                if not page or offset >= total:
                    return
        else:
            raise ValueError("paging must be 'keyset' or 'offset'")

    # ------------------------------------------------------------ CAdresse
    def list_adressen(self, beteiligte_id: str) -> list[dict]:
        """Every CAdresse of one party, oldest first (a party has a handful: one page of 200 is plenty;
        more raises rather than silently dropping some)."""
        params = encode_where([W.equals("beteiligteId", beteiligte_id)])
        params += [("offset", "0"), ("maxSize", str(MAX_SIZE)), ("orderBy", "createdAt"), ("order", "asc")]
        body = self._call("list_adressen", "GET", ADRESSE, params=params)
        found = list(body.get("list", []))
        if int(body.get("total", 0)) > len(found):
            raise ApiError(f"{body.get('total')} addresses on one party: more than one page", system=SYSTEM)
        return found

    def search_adressen(self, where: list[dict] | dict | None = None, *, select: list[str] | None = None,
                        offset: int = 0, max_size: int = MAX_SIZE) -> tuple[int, list[dict]]:
        """One page of CAdresse records (ordered by id): (total, records)."""
        return self.search(ADRESSE, where, select=select, order_by="id", offset=offset, max_size=max_size,
                           name="search_adressen")

    def get_adresse(self, record_id: str) -> dict:
        return self._call("get_adresse", "GET", f"{ADRESSE}/{record_id}")

    def create_adresse(self, data: dict) -> dict:
        return self._call("create_adresse", "POST", ADRESSE, json=data)

    def update_adresse(self, record_id: str, data: dict, *, version_number: int | None = None) -> dict:
        """Partial update; with `version_number` a stale write raises `Conflict` (as `update_beteiligte`)."""
        headers = {"X-Version-Number": str(version_number)} if version_number is not None else None
        return self._call("update_adresse", "PUT", f"{ADRESSE}/{record_id}", json=data, headers=headers)

    def phone_numbers_international(self) -> bool:
        """EspoCRM's `phoneNumberInternational` (numbers stored in E.164): read on first need, then again after
        `SETTINGS_TTL` seconds or after EspoCRM refused phone numbers (an admin may have switched it)."""
        if self._phone_international is None or time.monotonic() - self._phone_international[1] > SETTINGS_TTL:
            settings = self._call("get_settings", "GET", "Settings")
            self._phone_international = (bool(settings.get("phoneNumberInternational")), time.monotonic())
        return self._phone_international[0]

    def forget_server_settings(self) -> None:
        """Read EspoCRM's settings again on next need."""
        self._phone_international = None

    def current_user(self) -> dict:
        """The user this client authenticates as (`GET App/user` -> `user`)."""
        return self._call("current_user", "GET", "App/user")["user"]

    # ------------------------------------------------------------ stream, webhooks
    def post_note(self, parent_id: str, text: str, parent_type: str = ENTITY) -> dict:
        """A stream post on the record (followers and `@username` mentions are notified)."""
        data = {"type": "Post", "parentType": parent_type, "parentId": parent_id, "post": text}
        return self._call("post_note", "POST", "Note", json=data)

    def post_to(self, text: str, *, users_ids: list[str] = (), teams_ids: list[str] = ()) -> dict:
        """A stream post on no record, addressed to users (`targetType: users`) or else teams (`teams`);
        needs the role's message permission. Mentions in `text` notify as on a record."""
        if users_ids:
            data = {"type": "Post", "targetType": "users", "usersIds": list(users_ids), "post": text}
        else:
            data = {"type": "Post", "targetType": "teams", "teamsIds": list(teams_ids), "post": text}
        return self._call("post_note", "POST", "Note", json=data)

    def get_user(self, user_id: str) -> dict:
        """A User record (`id`, `userName`, `name`, `isActive`, …)."""
        return self._call("get_user", "GET", f"User/{user_id}")

    def find_user(self, user_name: str) -> dict | None:
        """The user with this `userName`, or None."""
        found = self._call("find_user", "GET", "User",
                           params=encode_where([W.equals("userName", user_name)]) + [("maxSize", "1")])
        return (found.get("list") or [None])[0]

    def subscribe_webhook(self, event: str, url: str, *, skip_own: bool = True) -> tuple[str, str]:
        """Subscribe `url` to `event` (e.g. `CBeteiligte.update`); returns (webhook id, secret key).

        `skip_own` (EspoCRM's `skipOwn`): events caused by this user's own writes are not sent, so
        the integration user's write-backs do not come back as webhooks (the loop prevention)."""
        body = self._call("subscribe_webhook", "POST", "Webhook",
                          json={"event": event, "url": url, "skipOwn": skip_own})
        return body["id"], body["secretKey"]

    def list_webhooks(self) -> list[dict]:
        return list(self._call("list_webhooks", "GET", "Webhook").get("list", []))

    def delete_webhook(self, webhook_id: str) -> bool:
        return bool(self._call("delete_webhook", "DELETE", f"Webhook/{webhook_id}"))
