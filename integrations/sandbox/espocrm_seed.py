"""Realistic German CBeteiligte records for the EspoCRM simulator (Faker `de_DE`, deterministic per seed).

Persons (about 70 %) with salutation, optional academic title, birth date;
companies with a Rechtsform; e-mail addresses (some with capitals, to
exercise `lower`) and phone numbers of every type, mobile numbers with the
German prefixes 015x/016x/017x in national and `+49 1xx` form.
"""
from __future__ import annotations

import random

from faker import Faker

from integrations.sandbox.espocrm_fields import UI_COUNTRY, e164

RECHTSFORMEN = ("GmbH", "AG", "KG", "GmbH & Co. KG", "e.K.", "UG (haftungsbeschränkt)", "OHG", "GbR", "e.V.")
TITEL = ("Dr.", "Prof. Dr.", "Dipl.-Ing.", "Dr. med.")
MOBILE_PREFIXES = ("0151", "0152", "0157", "0160", "0162", "0163", "0170", "0171", "0172", "0173", "0174",
                   "0175", "0176", "0177", "0178", "0179", "0159")


def mobile_number(rng: random.Random) -> str:
    """A German mobile number in one of the spellings people type."""
    prefix = rng.choice(MOBILE_PREFIXES)
    rest = "".join(str(rng.randrange(10)) for _ in range(rng.choice((7, 8))))
    style = rng.randrange(4)
    if style == 0:
        return f"{prefix} {rest}"
    if style == 1:
        return f"+49 {prefix[1:]} {rest}"
    if style == 2:
        return f"{prefix}/{rest}"
    return f"+49{prefix[1:]}{rest}"


def fake_beteiligte(faker: Faker, rng: random.Random) -> dict:
    """One record's user-entered fields (no sync bookkeeping)."""
    if rng.random() < 0.7:
        female = rng.random() < 0.5
        record = {
            "salutationName": "Frau" if female else "Herr",
            "firstName": faker.first_name_female() if female else faker.first_name_male(),
            "lastName": faker.last_name(),
            "firmenname": None,
            "titel": rng.choice(TITEL) if rng.random() < 0.12 else None,
            "dateOfBirth": faker.date_of_birth(minimum_age=18, maximum_age=95).isoformat()
            if rng.random() < 0.8 else None,
            "rechtsform": None,
        }
        local = f"{record['firstName']}.{record['lastName']}"
    else:
        rechtsform = rng.choice(RECHTSFORMEN)
        record = {
            "salutationName": "Firma", "firstName": None, "lastName": None,
            "firmenname": f"{faker.last_name()} {rng.choice(('Immobilien', 'Bau', 'Hausverwaltung', 'Handel', 'Technik'))} {rechtsform}",
            "titel": None, "dateOfBirth": None, "rechtsform": rechtsform,
        }
        local = rng.choice(("info", "kontakt", "buero", "verwaltung"))
    emails = []
    for i in range(rng.choice((0, 1, 1, 1, 2))):
        address = faker.free_email() if i else f"{_ascii(local)}@{faker.free_email_domain()}"
        if rng.random() < 0.2:
            address = address[:1].upper() + address[1:]
        emails.append({"emailAddress": address, "primary": i == 0, "optOut": False, "invalid": False})
    phones = []
    kinds = rng.sample(["Mobile", "Office", "Home", "Fax", "Other"], k=rng.choice((0, 1, 2, 2, 3)))
    for kind in kinds:
        number = mobile_number(rng) if kind == "Mobile" else faker.phone_number()
        while e164(number, UI_COUNTRY) is None:  # Faker's "(00838) 31562": EspoCRM's form refuses such a number
            number = faker.phone_number()
        phones.append({"phoneNumber": number, "type": kind, "primary": False, "optOut": False, "invalid": False})
    record["emailAddressData"] = emails
    record["phoneNumberData"] = phones
    return record


def _ascii(text: str) -> str:
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", " ": ""})
    return "".join(ch for ch in text.translate(table) if ch.isascii()).lower()


def seed_records(state, count: int, *, status: str = "pending_sync", seed: int | None = None,
                 betnr_start: int | None = None, assigned_user: str | None = "alice") -> list[dict]:
    """Create `count` records directly in `state` (no webhooks, no hooks) with the given syncStatus."""
    rng = random.Random(state.seed if seed is None else seed)
    faker = Faker("de_DE")
    faker.seed_instance(rng.randrange(2**31))
    integration = state.integration_user
    assigned = state.user_by_name(assigned_user)["id"] if assigned_user else None
    created = []
    with state.lock:
        taken = {r["betnr"] for r in state.records.values() if r.get("betnr") is not None}
        next_betnr = betnr_start
        for _ in range(count):
            fields = fake_beteiligte(faker, rng)
            fields["syncStatus"] = status
            fields["assignedUserId"] = assigned
            if next_betnr is not None:
                while next_betnr in taken:
                    next_betnr += 1
                fields["betnr"] = next_betnr
                taken.add(next_betnr)
                next_betnr += 1
            created.append(state.save(None, fields, integration, silent=True, typed_in_ui=True))
    return created
