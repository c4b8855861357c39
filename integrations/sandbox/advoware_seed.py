"""Realistic German demo data for the Advoware simulator (Faker `de_DE`), deterministic per state seed.

Persons and companies with titles, letter salutations and birth dates;
Kommunikationen of every kommKz (the first twelve Beteiligte cover all
twelve kinds), mobile numbers with real German prefixes, business and
private e-mails, beA ids; employees with Kürzel (every fifth one inactive);
Termine, Fristen and Wiedervorlagen between 30 days ago and half a year ahead.
"""
from __future__ import annotations

import random
from datetime import date, timedelta

from faker import Faker

from integrations.sandbox.espocrm_seed import RECHTSFORMEN, mobile_number  # one set of German fakes

BRANCHEN = ("Immobilien", "Bau", "Hausverwaltung", "Consulting", "Handel", "Logistik", "Versicherungsmakler")
_ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", " ": ""})


def _ascii(text: str) -> str:
    return "".join(ch for ch in text.translate(_ASCII).lower() if ch.isalnum() or ch in ".-")


def _komm_value(kz: int, fake: Faker, rnd: random.Random, person: dict) -> str:
    local = _ascii(f"{person.get('vorname') or 'info'}.{person['name']}")[:40].strip(".")
    domain = _ascii(person["name"].split()[0])[:20] + rnd.choice((".de", ".com", "-online.de"))
    if kz in (3, 9):
        return mobile_number(rnd)
    if kz == 4:
        return f"{local if person.get('vorname') else 'info'}@{domain}"
    if kz == 5:
        return f"https://www.{domain}"
    if kz == 8:
        return f"{local}{rnd.randint(1, 99)}@{rnd.choice(('gmx.de', 'web.de', 't-online.de', 'posteo.de'))}"
    if kz == 11:
        return f"{local}@epost.de"
    if kz == 12:
        return f"DE.BRAK_SPT.{rnd.randrange(16**6):06x}.{rnd.randrange(10**4):04d}"
    return fake.phone_number()


def _beteiligter(fake: Faker, rnd: random.Random) -> dict:
    if rnd.random() < 0.7:
        female = rnd.random() < 0.5
        titel = rnd.choices(("", "Dr.", "Prof. Dr."), weights=(85, 12, 3))[0] or None
        name = fake.last_name()
        anrede = "Frau" if female else "Herr"
        brief = ("Sehr geehrte Frau " if female else "Sehr geehrter Herr ") + (f"{titel} " if titel else "") + name
        return {"name": name, "vorname": fake.first_name_female() if female else fake.first_name_male(),
                "anrede": anrede, "titel": titel, "briefAnrede": brief + ",",
                "geburtsdatum": fake.date_of_birth(minimum_age=18, maximum_age=90).isoformat(),
                "rechtsform": None, "zusatz": rnd.choice((None, None, None, "c/o " + fake.last_name()))}
    rechtsform = rnd.choice(RECHTSFORMEN)
    return {"name": f"{fake.last_name()} {rnd.choice(BRANCHEN)} {rechtsform}", "vorname": None,
            "anrede": "Firma", "titel": None, "briefAnrede": "Sehr geehrte Damen und Herren,",
            "geburtsdatum": None, "rechtsform": rechtsform,
            "zusatz": rnd.choice((None, None, "Abteilung Recht", "z. Hd. Geschäftsführung"))}


def _kuerzel(name: str, taken: set[str]) -> str:
    """Kanzlei-style Kürzel: first letter of the first name, two of the surname (`Max Müller` -> `MMU`)."""
    first, last = (_ascii(part) for part in (name.split()[0], name.split()[-1]))
    base = (first[:1] + last[:2]).upper() or "MA"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}{n}"
    return candidate


def _termin(fake: Faker, rnd: random.Random, kuerzel: str, today: date) -> dict:
    art = rnd.choices(("Termin", "Frist", "Wiedervorlage"), weights=(60, 25, 15))[0]
    day = today + timedelta(days=rnd.randint(-30, 180))
    az = f"{rnd.randint(1, 480)}/{day.year % 100:02d}"
    if art == "Frist":
        text = rnd.choice(("Fristablauf Berufungsbegründung", "Klageerwiderung", "Stellungnahme an Gericht",
                           "Widerspruchsfrist", "Vorfrist Berufung")) + f" {az}"
        return {"kuerzel": kuerzel, "art": art, "datum": day.isoformat(), "ganztaegig": True, "text": text,
                "notiz": rnd.choice((None, "Fristenkontrolle: 2. Prüfung erfolgt"))}
    if art == "Wiedervorlage":
        return {"kuerzel": kuerzel, "art": art, "datum": day.isoformat(), "ganztaegig": True,
                "text": f"WV Akte {az}", "notiz": rnd.choice((None, "Sachstandsanfrage Gegenseite"))}
    if rnd.random() < 0.08:  # a multi-day all-day entry
        return {"kuerzel": kuerzel, "art": art, "datum": day.isoformat(),
                "datumBis": (day + timedelta(days=rnd.randint(1, 4))).isoformat(), "ganztaegig": True,
                "text": rnd.choice(("Urlaub", "Fortbildung Fachanwaltskurs", "Deutscher Anwaltstag"))}
    start = rnd.randint(16, 34) * 30  # 08:00 .. 17:00 on the half hour
    end = start + rnd.choice((30, 60, 90, 120))
    city = fake.city()
    text, ort = rnd.choice(((f"Gerichtstermin AG {city}", f"Amtsgericht {city}"),
                            (f"Besprechung Mandant {fake.last_name()}", "Kanzlei, Besprechungsraum 1"),
                            (f"Ortstermin {az}", fake.street_address() + ", " + city),
                            ("Telefonkonferenz Gegenseite", None)))
    return {"kuerzel": kuerzel, "art": art, "datum": day.isoformat(), "ganztaegig": False,
            "uhrzeitVon": f"{start // 60:02d}:{start % 60:02d}", "uhrzeitBis": f"{end // 60:02d}:{end % 60:02d}",
            "text": text, "ort": ort, "notiz": rnd.choice((None, None, f"Az. {az}"))}


def seed_state(state, count: int = 0, employees: int = 0, termine_per_employee: int = 0) -> dict:
    """Add `count` Beteiligte, `employees` Mitarbeiter and their Termine; what was made."""
    with state.lock:
        rnd = random.Random(state.random.randrange(2 ** 32))
        fake = Faker("de_DE")
        fake.seed_instance(rnd.randrange(2 ** 32))
        start_index = len(state.beteiligte) + len(state.deleted)
        betnrs = []
        for i in range(count):
            data = _beteiligter(fake, rnd)
            row = state.create_beteiligte(data)
            betnrs.append(row["betNr"])
            kinds = [((start_index + i) % 12) + 1]
            kinds += rnd.sample(range(1, 13), rnd.randint(0, 4))
            seen = set()
            for kz in kinds:
                state.human_add_kommunikation(row["betNr"], kz, _komm_value(kz, fake, rnd, data),
                                              bemerkung=rnd.choice(("", "", "", "Zentrale", "nur vormittags")),
                                              online=kz not in seen and kz in (1, 3, 4, 8))
                seen.add(kz)
        kuerzel_list = []
        today = date.today()
        for i in range(employees):
            name = f"{fake.first_name()} {fake.last_name()}"
            kuerzel = _kuerzel(name, set(state.mitarbeiter))
            position = len(state.mitarbeiter)
            state.add_mitarbeiter(kuerzel, name, f"{_ascii(name.replace(' ', '.'))}@kanzlei-sandbox.de",
                                  aktiv=position % 5 != 4)
            kuerzel_list.append(kuerzel)
        frnrs = []
        for kuerzel in kuerzel_list:
            for _ in range(termine_per_employee):
                frnrs.append(state.add_termin(**_termin(fake, rnd, kuerzel, today))["frNr"])
        return {"betNrs": betnrs, "kuerzel": kuerzel_list, "frNrs": frnrs}
