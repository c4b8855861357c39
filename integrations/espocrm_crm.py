"""EspoCRM's standard CRM entities for the inbound channels: Lead, Contact, Call, User, Team (SPEC §12).

Speaks through an `EspoCrmClient` (its session, rate gate and exception
hierarchy); named like the API. A record is found by e-mail or phone with
EspoCRM's `emailAddress` / `phoneNumber` where attributes, which match any of
a record's addresses/numbers, not only the primary one.
"""
from __future__ import annotations

from typing import Iterator

from integrations.espocrm import MAX_SIZE, EspoCrmClient, W


class EspoCrmRecords:
    """Lead/Contact/Call/Team lookups and any entity's get and create, as the integration user (users: `client.find_user`)."""

    def __init__(self, client: EspoCrmClient):
        self.client = client

    def search(self, entity: str, where: list[dict] | dict | None = None, **kwargs) -> tuple[int, list[dict]]:
        return self.client.search(entity, where, **kwargs)

    def get(self, entity: str, record_id: str) -> dict:
        return self.client.request(f"get_{entity}", "GET", f"{entity}/{record_id}")

    def create(self, entity: str, data: dict) -> dict:
        return self.client.request(f"create_{entity}", "POST", entity, json=data)

    def find_by_email_or_phone(self, entity: str, email: str = "", phone: str = "") -> list[dict]:
        """Records of `entity` with that e-mail address or phone number (any of theirs), newest first."""
        items = ([W.equals("emailAddress", email)] if email else []) + ([W.equals("phoneNumber", phone)] if phone else [])
        if not items:
            return []
        where = items[0] if len(items) == 1 else W.or_(*items)
        _, records = self.search(entity, where, order_by="modifiedAt", order="desc", max_size=20)
        return records

    def list_ids(self, entity: str) -> Iterator[tuple[str, str]]:
        """Every record's (id, modifiedAt), keyset-paged by id."""
        for record in self.client.iter_by_id(entity, select=["id", "modifiedAt"]):
            yield record["id"], record.get("modifiedAt") or ""

    def team_users(self, team_id: str) -> list[dict]:
        """The active, regular users of a team, ordered by id (a stable round-robin order)."""
        body = self.client.request("team_users", "GET", f"Team/{team_id}/users",
                                   params=[("maxSize", str(MAX_SIZE)), ("orderBy", "id"), ("order", "asc")])
        users = [u for u in body.get("list", []) if u.get("isActive", True) and u.get("type", "regular") == "regular"]
        return sorted(users, key=lambda u: u["id"])

    def post_note(self, parent_type: str, parent_id: str, text: str) -> dict:
        return self.client.post_note(parent_id, text, parent_type=parent_type)
