"""The Advoware simulator over real HTTP: auth, every quirk of SPEC §3.2, Termine/Mitarbeiter and the admin API."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.sandbox.advoware import create_advoware_app
from integrations.sandbox.advoware_common import SimError, advoware_date
from integrations.sandbox.kit import ServerThread

API = "/api/v1/advonet"
B64_ROWID = re.compile(r"^[A-Za-z0-9+/]{38,44}={0,2}$")


class Sim:
    """A running simulator plus helpers to talk to it as a raw HTTP client would."""

    def __init__(self, **options):
        self.app = create_advoware_app(**options)
        self.state = self.app.extensions["advoware"]
        self.server = ServerThread(self.app).start()
        self.url = self.server.url
        self.http = requests.Session()
        info = self.http.get(self.url + "/_sandbox/info").json()
        self.creds = info["credentials"]
        self._token = None

    def token_body(self, *, nonce=None, stamp=None, key=None, **overrides):
        c = self.creds
        nonce = nonce or str(uuid.uuid4())
        stamp = stamp or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        message = f"{c['product_id']}:{c['app_id']}:{nonce}:{stamp}".encode()
        sig = base64.b64encode(hmac.new(base64.b64decode(key or c["api_key"]), message, hashlib.sha512).digest())
        body = {"AppID": c["app_id"], "Kanzlei": c["kanzlei"], "Database": c["database"], "User": c["user"],
                "Role": int(c["role"]), "Product": int(c["product_id"]), "Password": c["password"],
                "Nonce": nonce, "HMAC512Signature": sig.decode(), "RequestTimeStamp": stamp}
        body.update(overrides)
        return body

    def fetch_token(self, **kw) -> requests.Response:
        return self.http.post(self.url + "/api/v1/Token", json=self.token_body(**kw))

    def token(self) -> str:
        if self._token is None:
            self._token = self.fetch_token().json()["access_token"]
        return self._token

    def api(self, method: str, path: str, *, token: str | None = "auto", **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if token == "auto":
            token = self.token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, self.url + API + path, headers=headers, **kw)

    def admin(self, method: str, path: str, **kw) -> requests.Response:
        return self.http.request(method, self.url + "/_sandbox" + path, **kw)

    def person(self, **fields) -> dict:
        body = {"name": "Müller", "vorname": "Anna", "anrede": "Frau", "titel": "Dr.",
                "briefAnrede": "Sehr geehrte Frau Dr. Müller,", "geburtsdatum": "1980-05-17",
                "rechtsform": None, "zusatz": "c/o Schmidt"}
        body.update(fields)
        response = self.api("POST", "/Beteiligte", json=body)
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture(scope="module")
def shared_sim():
    s = Sim(seed=7)
    yield s
    s.server.stop()


@pytest.fixture
def sim(shared_sim):
    """The module's simulator, reset (data, tokens, counters, quirks) before each test."""
    shared_sim.admin("POST", "/reset")
    shared_sim._token = None
    return shared_sim


# --- auth -------------------------------------------------------------------------------------------

def test_token_with_valid_signature_opens_the_api(sim):
    answer = sim.fetch_token()
    assert answer.status_code == 200
    data = answer.json()
    assert data["token_type"] == "bearer" and data["expires_in"] == 3600 and len(data["access_token"]) > 20
    assert sim.api("GET", "/Mitarbeiter", token=data["access_token"]).status_code == 200
    assert sim.admin("GET", "/tokens").json()["fetches"] == 1
    assert sim.admin("GET", "/calls").json()["POST /api/v1/Token"] == 1


def test_forged_signature_is_rejected(sim):
    wrong_key = base64.b64encode(b"not-the-api-key").decode()
    answer = sim.fetch_token(key=wrong_key)
    assert answer.status_code == 401
    assert "access_token" not in answer.json()
    tampered = sim.token_body()
    tampered["Nonce"] = str(uuid.uuid4())  # signature no longer covers this nonce
    assert sim.http.post(sim.url + "/api/v1/Token", json=tampered).status_code == 401
    assert sim.admin("GET", "/tokens").json()["fetches"] == 0
    assert sim.admin("GET", "/quirks").json() == {"get_returns_object": False, "kommkz_zero_ratio": 0.5,
                                                  "empty_as_null_ratio": 0.5, "token_lifetime": 3600, "token_max_skew": 300.0}


@pytest.mark.parametrize("field,value", [("Password", "wrong"), ("User", "NOBODY"), ("Kanzlei", "OTHER"),
                                         ("Database", "X"), ("Role", 1)])
def test_wrong_credentials_are_rejected(sim, field, value):
    assert sim.fetch_token(**{field: value}).status_code == 401


def test_missing_fields_are_a_bad_request(sim):
    body = sim.token_body()
    del body["HMAC512Signature"]
    answer = sim.http.post(sim.url + "/api/v1/Token", json=body)
    assert answer.status_code == 400 and "HMAC512Signature" in answer.json()["error_description"]


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_stale_or_future_timestamp_is_rejected(sim, offset):
    stamp = (datetime.now(timezone.utc) + offset).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert sim.fetch_token(stamp=stamp).status_code == 401
    near = (datetime.now(timezone.utc) - timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert sim.fetch_token(stamp=near).status_code == 200


def test_reused_nonce_is_rejected(sim):
    nonce = str(uuid.uuid4())
    assert sim.fetch_token(nonce=nonce).status_code == 200
    time.sleep(0.01)
    again = sim.fetch_token(nonce=nonce)  # fresh timestamp, valid signature, same nonce
    assert again.status_code == 401 and "nonce" in again.json()["error_description"]


def test_api_needs_a_live_token():
    s = Sim(token_lifetime=0.4)
    try:
        assert s.api("GET", "/Mitarbeiter", token=None).status_code == 401
        assert s.api("GET", "/Mitarbeiter", token="forged-token").status_code == 401
        answer = s.api("GET", "/Beteiligte/1", headers={"Authorization": "Basic abc"}, token=None)
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
        token = s.token()
        assert s.api("GET", "/Mitarbeiter", token=token).status_code == 200
        time.sleep(0.5)
        assert s.api("GET", "/Mitarbeiter", token=token).status_code == 401  # expired
        assert s.admin("DELETE", "/tokens").json() == {"revoked": 0}
    finally:
        s.server.stop()


def test_revoking_tokens_invalidates_them(sim):
    token = sim.token()
    assert sim.admin("DELETE", "/tokens").json() == {"revoked": 1}
    assert sim.api("GET", "/Mitarbeiter", token=token).status_code == 401


# --- Beteiligte -------------------------------------------------------------------------------------

def test_get_answers_a_one_element_list_or_an_object_when_switched(sim):
    created = sim.person()
    answer = sim.api("GET", f"/Beteiligte/{created['betNr']}").json()
    assert isinstance(answer, list) and len(answer) == 1 and answer[0]["betNr"] == created["betNr"]
    assert answer[0]["kommunikation"] == []
    assert sim.admin("POST", "/quirks", json={"get_returns_object": True}).json()["get_returns_object"] is True
    bare = sim.api("GET", f"/Beteiligte/{created['betNr']}").json()
    assert isinstance(bare, dict) and bare["rowId"] == answer[0]["rowId"]


def test_post_answers_the_created_record_with_betnr_and_rowid(sim):
    created = sim.person(betNr=5, rowId="mine", kurzname="X", art="Gegner")
    assert isinstance(created, dict) and created["betNr"] >= 100001 and B64_ROWID.match(created["rowId"])
    assert created["rowId"] != "mine" and created["kurzname"] == "MUELLER" and created["art"] == "Person"
    assert created["name"] == "Müller" and created["vorname"] == "Anna"
    second = sim.person(name="Schulz")
    assert second["betNr"] == created["betNr"] + 1


def test_put_is_a_full_replace_of_writable_fields_and_ignores_read_only_ones(sim):
    created = sim.person()
    betnr = created["betNr"]
    body = {"name": "Meier", "vorname": "Anna", "betNr": 1, "rowId": "x", "kurzname": "NEU", "art": "Gegner",
            "geaendertAm": "2020-01-01T00:00:00", "angelegtAm": "2020-01-01T00:00:00"}
    answer = sim.api("PUT", f"/Beteiligte/{betnr}", json=body)
    assert answer.status_code == 200
    data = answer.json()
    assert isinstance(data, list) and len(data) == 1
    record = data[0]
    assert record["name"] == "Meier" and record["vorname"] == "Anna"
    for cleared in ("anrede", "titel", "briefAnrede", "geburtsdatum", "zusatz"):
        assert record[cleared] is None, cleared  # not sent -> cleared
    assert record["betNr"] == betnr and record["kurzname"] == created["kurzname"] and record["art"] == "Person"
    assert record["geaendertAm"] is None and record["angelegtAm"] is None
    assert record["rowId"] != created["rowId"] and B64_ROWID.match(record["rowId"])
    assert sim.api("GET", f"/Beteiligte/{betnr}").json()[0] == record


def test_put_needs_a_name(sim):
    betnr = sim.person()["betNr"]
    assert sim.api("PUT", f"/Beteiligte/{betnr}", json={"vorname": "Anna"}).status_code == 400


def test_rowid_is_fresh_base64_on_every_write(sim):
    created = sim.person()
    betnr, seen = created["betNr"], {created["rowId"]}
    full = {k: created[k] for k in ("name", "vorname", "anrede", "titel", "briefAnrede", "geburtsdatum")}
    for _ in range(3):
        row_id = sim.api("PUT", f"/Beteiligte/{betnr}", json=full).json()[0]["rowId"]  # same content
        assert B64_ROWID.match(row_id) and len(base64.b64decode(row_id)) == 30
        seen.add(row_id)
    seen.add(sim.admin("PATCH", f"/human/beteiligte/{betnr}", json={"zusatz": "neu"}).json()["rowId"])
    assert len(seen) == 5
    assert sim.api("GET", f"/Beteiligte/{betnr}").json()[0]["rowId"] in seen


def test_geburtsdatum_is_advoware_datetime_format(sim):
    created = sim.person(geburtsdatum="1975-02-03")
    assert created["geburtsdatum"] == "1975-02-03T00:00:00"
    same = sim.person(name="B", geburtsdatum="1975-02-03T00:00:00")
    assert same["geburtsdatum"] == "1975-02-03T00:00:00"
    bad = sim.api("POST", "/Beteiligte", json={"name": "X", "geburtsdatum": "03.02.1975"})
    assert bad.status_code == 400


def test_person_or_company_is_told_by_vorname_not_by_art(sim):
    company = sim.person(name="Baufix GmbH", vorname=None, anrede="Firma", rechtsform="GmbH", titel=None)
    assert company["vorname"] is None and company["art"] == "Organisation"
    changed = sim.api("PUT", f"/Beteiligte/{company['betNr']}",
                      json={"name": "Fix", "vorname": "Bernd", "anrede": "Herr"}).json()[0]
    assert changed["vorname"] == "Bernd" and changed["art"] == "Organisation"  # art is read-only


def test_deleted_beteiligter_answers_404_and_api_delete_is_forbidden(sim):
    betnr = sim.person()["betNr"]
    assert sim.api("DELETE", f"/Beteiligte/{betnr}").status_code == 403
    assert sim.api("GET", f"/Beteiligte/{betnr}").status_code == 200
    assert sim.admin("DELETE", f"/beteiligte/{betnr}").status_code == 200
    for method, kw in (("GET", {}), ("PUT", {"json": {"name": "X"}})):
        assert sim.api(method, f"/Beteiligte/{betnr}", **kw).status_code == 404
    assert sim.api("POST", f"/Beteiligte/{betnr}/Kommunikationen", json={"kommKz": 1, "tlf": "1"}).status_code == 404
    assert sim.api("GET", "/Beteiligte/999999").status_code == 404
    assert sim.state.get_beteiligte(betnr) is None


@settings(max_examples=200, deadline=None)
@given(day=st.dates(), as_datetime=st.booleans())
def test_advoware_date_normalises_every_date(day, as_datetime):
    raw = f"{day.isoformat()}T13:45:00" if as_datetime else day.isoformat()
    assert advoware_date(raw) == f"{day.isoformat()}T00:00:00"
    assert advoware_date(day) == f"{day.isoformat()}T00:00:00"


@settings(max_examples=200, deadline=None)
@given(raw=st.text(max_size=25))
def test_advoware_date_rejects_or_normalises_any_text(raw):
    try:
        result = advoware_date(raw)
    except SimError as exc:
        assert exc.status == 400
    else:
        assert result is None or re.fullmatch(r"\d{4}-\d{2}-\d{2}T00:00:00", result)


# --- Kommunikationen --------------------------------------------------------------------------------

def test_kommunikation_post_and_put_leave_the_beteiligter_rowid(sim):
    created = sim.person()
    betnr = created["betNr"]
    entry = sim.api("POST", f"/Beteiligte/{betnr}/Kommunikationen",
                    json={"kommKz": 3, "tlf": "0171 1234567", "bemerkung": "privat", "online": True})
    assert entry.status_code == 201
    entry = entry.json()
    assert set(entry) == {"id", "rowId", "kommKz", "tlf", "bemerkung", "online"} and entry["kommKz"] == 3
    after_post = sim.state.get_beteiligte(betnr)
    assert after_post["rowId"] == created["rowId"]
    put = sim.api("PUT", f"/Beteiligte/{betnr}/Kommunikationen/{entry['id']}",
                  json={"kommKz": 4, "tlf": "0171 7654321"})
    assert put.status_code == 200
    updated = put.json()
    assert updated["kommKz"] == 3 and sim.state.true_kommkz(betnr, entry["id"]) == 3  # kommKz ignored on PUT
    assert updated["tlf"] == "0171 7654321" and updated["bemerkung"] == "" and updated["online"] is False
    assert updated["rowId"] != entry["rowId"] and B64_ROWID.match(updated["rowId"])
    assert sim.state.get_beteiligte(betnr)["rowId"] == created["rowId"]


def test_kommunikation_delete_is_forbidden(sim):
    betnr = sim.person()["betNr"]
    entry = sim.api("POST", f"/Beteiligte/{betnr}/Kommunikationen", json={"kommKz": 4, "tlf": "a@b.de"}).json()
    assert sim.api("DELETE", f"/Beteiligte/{betnr}/Kommunikationen/{entry['id']}").status_code == 403
    assert [e["id"] for e in sim.state.get_beteiligte(betnr)["kommunikation"]] == [entry["id"]]


@pytest.mark.parametrize("kz", [0, 13, "3", None])
def test_kommunikation_needs_a_valid_kind(sim, kz):
    betnr = sim.person()["betNr"]
    assert sim.api("POST", f"/Beteiligte/{betnr}/Kommunikationen", json={"kommKz": kz, "tlf": "1"}).status_code == 400


def test_get_reports_kommkz_zero_for_a_stable_subset_and_the_truth_is_kept(sim):
    betnr = sim.person()["betNr"]
    ids = [sim.api("POST", f"/Beteiligte/{betnr}/Kommunikationen",
                   json={"kommKz": kz % 12 + 1, "tlf": f"0{kz}"}).json()["id"] for kz in range(40)]
    shown = sim.api("GET", f"/Beteiligte/{betnr}").json()[0]["kommunikation"]
    again = sim.api("GET", f"/Beteiligte/{betnr}").json()[0]["kommunikation"]
    assert shown == again  # deterministic
    zeros = [e["id"] for e in shown if e["kommKz"] == 0]
    assert 8 <= len(zeros) <= 32  # about half of 40
    for entry, kz in zip(shown, range(40)):
        assert sim.state.true_kommkz(betnr, entry["id"]) == kz % 12 + 1
        assert entry["kommKz"] in (0, kz % 12 + 1)
    assert sim.state.get_beteiligte(betnr)["kommunikation"][0]["kommKz"] == 1  # truth via the sandbox
    assert sim.admin("GET", f"/beteiligte/{betnr}").json()["kommunikation"] == \
        sim.state.get_beteiligte(betnr)["kommunikation"]
    sim.admin("POST", "/quirks", json={"kommkz_zero_ratio": 0.0})
    assert all(e["kommKz"] for e in sim.api("GET", f"/Beteiligte/{betnr}").json()[0]["kommunikation"])
    sim.admin("POST", "/quirks", json={"kommkz_zero_ratio": 1.0})
    assert not any(e["kommKz"] for e in sim.api("GET", f"/Beteiligte/{betnr}").json()[0]["kommunikation"])
    assert len(ids) == 40


# --- Mitarbeiter and Termine ------------------------------------------------------------------------

def test_mitarbeiter_list_and_aktiv_filter(sim):
    sim.state.add_mitarbeiter("AB", "Anna Berg", "ab@k.de")
    sim.admin("POST", "/human/mitarbeiter", json={"kuerzel": "CD", "name": "Carl Dorn", "aktiv": False})
    everyone = sim.api("GET", "/Mitarbeiter").json()
    assert [m["kuerzel"] for m in everyone] == ["AB", "CD"]
    assert set(everyone[0]) == {"kuerzel", "name", "email", "aktiv"}
    assert [m["kuerzel"] for m in sim.api("GET", "/Mitarbeiter", params={"aktiv": "true"}).json()] == ["AB"]


def test_termine_crud_and_date_range(sim):
    sim.state.add_mitarbeiter("AB", "Anna Berg")
    sim.state.add_mitarbeiter("CD", "Carl Dorn")
    body = {"kuerzel": "AB", "art": "Termin", "datum": "2026-03-10", "uhrzeitVon": "09:30", "uhrzeitBis": "10:00",
            "text": "Besprechung", "ort": "Kanzlei", "notiz": "Az. 1/26"}
    created = sim.api("POST", "/Termine", json=body)
    assert created.status_code == 201
    termin = created.json()
    assert termin["datum"] == "2026-03-10T00:00:00" and termin["datumBis"] == "2026-03-10T00:00:00"
    assert termin["uhrzeitVon"] == "09:30:00" and termin["ganztaegig"] is False and B64_ROWID.match(termin["rowId"])
    frist = sim.state.add_termin(kuerzel="AB", art="Frist", datum="2026-03-20", ganztaegig=True, text="Frist")
    sim.state.add_termin(kuerzel="CD", art="Termin", datum="2026-03-10", text="other employee")
    multi = sim.state.add_termin(kuerzel="AB", datum="2026-02-27", datumBis="2026-03-02", ganztaegig=True, text="Urlaub")

    def listed(start, end):
        answer = sim.api("GET", "/Termine", params={"kuerzel": "AB", "from": start, "to": end})
        assert answer.status_code == 200
        return [t["frNr"] for t in answer.json()]

    assert listed("2026-03-01", "2026-03-31") == [multi["frNr"], termin["frNr"], frist["frNr"]]
    assert listed("2026-03-11", "2026-03-19") == []
    assert listed("2026-03-20T00:00:00", "2026-03-20T00:00:00") == [frist["frNr"]]
    assert sim.api("GET", "/Termine", params={"kuerzel": "AB"}).status_code == 400
    assert sim.api("GET", "/Termine", params={"frnr": termin["frNr"]}).json() == [termin]

    update = {"frNr": termin["frNr"], "kuerzel": "AB", "art": "Termin", "datum": "2026-03-11",
              "uhrzeitVon": "11:00", "uhrzeitBis": "12:00", "text": "verschoben"}
    changed = sim.api("PUT", "/Termine", json=update).json()
    assert changed["datum"] == "2026-03-11T00:00:00" and changed["notiz"] is None and changed["ort"] is None
    assert changed["rowId"] != termin["rowId"] and changed["frNr"] == termin["frNr"]
    assert sim.api("DELETE", "/Termine", params={"frnr": termin["frNr"]}).status_code == 200
    assert sim.api("GET", "/Termine", params={"frnr": termin["frNr"]}).status_code == 404
    assert sim.api("DELETE", "/Termine", params={"frnr": termin["frNr"]}).status_code == 404
    assert sim.api("PUT", "/Termine", json=update).status_code == 404


@pytest.mark.parametrize("change", [{"kuerzel": "ZZ"}, {"art": "Urlaub"}, {"datum": None},
                                    {"datumBis": "2026-03-01"}, {"uhrzeitVon": "25:00"},
                                    {"uhrzeitVon": "12:00", "uhrzeitBis": "11:00"}])
def test_termin_validation(sim, change):
    sim.state.add_mitarbeiter("AB", "Anna Berg")
    body = {"kuerzel": "AB", "art": "Termin", "datum": "2026-03-10", "uhrzeitVon": "09:00", "uhrzeitBis": "10:00"}
    body.update(change)
    assert sim.api("POST", "/Termine", json=body).status_code == 400


# --- admin API --------------------------------------------------------------------------------------

def test_seed_makes_realistic_german_data(sim):
    made = sim.admin("POST", "/seed", json={"count": 24, "employees": 5, "termine_per_employee": 12}).json()
    assert len(made["betNrs"]) == 24 and len(made["kuerzel"]) == 5 and len(made["frNrs"]) == 60
    records = [sim.state.get_beteiligte(b) for b in made["betNrs"]]
    persons = [r for r in records if r["vorname"]]
    companies = [r for r in records if not r["vorname"]]
    assert persons and companies
    assert all(r["anrede"] in ("Herr", "Frau") and r["geburtsdatum"].endswith("T00:00:00") for r in persons)
    assert all(r["rechtsform"] and r["rechtsform"] in r["name"] for r in companies)
    entries = [e for r in records for e in r["kommunikation"]]
    assert {e["kommKz"] for e in entries} == set(range(1, 13))
    mobiles = [e["tlf"] for e in entries if e["kommKz"] == 3]
    assert mobiles and all(re.search(r"(^0|\+49 ?)1[5-7]\d", m) for m in mobiles)
    assert all("@" in e["tlf"] for e in entries if e["kommKz"] in (4, 8, 11))
    mitarbeiter = sim.api("GET", "/Mitarbeiter").json()
    assert [m["aktiv"] for m in mitarbeiter].count(False) == 1
    termine = [sim.state.get_termin(f) for f in made["frNrs"]]
    assert {t["art"] for t in termine} == {"Termin", "Frist", "Wiedervorlage"}
    assert all(t["ganztaegig"] for t in termine if t["art"] == "Frist")


def test_reset_clears_data_tokens_and_counters(sim):
    token = sim.token()
    sim.admin("POST", "/quirks", json={"get_returns_object": True, "kommkz_zero_ratio": 1.0})
    sim.admin("POST", "/seed", json={"count": 3, "employees": 1, "termine_per_employee": 2})
    sim.api("GET", "/Mitarbeiter")
    assert sim.admin("POST", "/reset").json() == {"reset": True}
    assert sim.state.beteiligte == {} and sim.state.termine == {} and sim.state.mitarbeiter == {}
    assert sim.admin("GET", "/calls").json() == {}
    assert sim.api("GET", "/Mitarbeiter", token=token).status_code == 401
    assert sim.admin("GET", "/tokens").json()["fetches"] == 0
    assert sim.admin("GET", "/quirks").json() == {"get_returns_object": False, "kommkz_zero_ratio": 0.5,
                                                  "empty_as_null_ratio": 0.5, "token_lifetime": 3600, "token_max_skew": 300.0}


def test_state_snapshot_round_trip(sim):
    sim.admin("POST", "/seed", json={"count": 4, "employees": 2, "termine_per_employee": 3})
    snapshot = sim.admin("GET", "/state").json()
    other = Sim(seed=7)
    try:
        assert other.admin("PUT", "/state", json=snapshot).json()["beteiligte"] == 4
        assert other.state.dump_state() == sim.state.dump_state()
        new = other.person()
        assert new["betNr"] == max(snapshot_b["betNr"] for snapshot_b in snapshot["beteiligte"]) + 1
    finally:
        other.server.stop()


def test_human_edits_over_http(sim):
    betnr = sim.admin("POST", "/human/beteiligte", json={"name": "Lang", "vorname": "Eva"}).json()["betNr"]
    before = sim.api("GET", f"/Beteiligte/{betnr}").json()[0]
    edited = sim.admin("PATCH", f"/human/beteiligte/{betnr}", json={"titel": "Dr."}).json()
    assert edited["titel"] == "Dr." and edited["vorname"] == "Eva" and edited["rowId"] != before["rowId"]
    assert sim.admin("PATCH", f"/human/beteiligte/{betnr}", json={"kurzname": "X"}).status_code == 400
    entry = sim.admin("POST", f"/human/beteiligte/{betnr}/kommunikationen",
                      json={"kommKz": 1, "tlf": "030 123"}).json()
    changed = sim.admin("PATCH", f"/human/beteiligte/{betnr}/kommunikationen/{entry['id']}",
                        json={"kommKz": 6, "bemerkung": "privat"}).json()
    assert changed["kommKz"] == 6 and changed["tlf"] == "030 123" and changed["rowId"] != entry["rowId"]
    assert sim.state.get_beteiligte(betnr)["rowId"] == edited["rowId"]
    sim.admin("DELETE", f"/human/beteiligte/{betnr}/kommunikationen/{entry['id']}")
    assert sim.state.get_beteiligte(betnr)["kommunikation"] == []
    sim.state.add_mitarbeiter("AB", "Anna Berg")
    termin = sim.admin("POST", "/human/termine", json={"kuerzel": "AB", "datum": "2026-05-01",
                                                        "ganztaegig": True, "text": "x"}).json()
    moved = sim.admin("PATCH", f"/human/termine/{termin['frNr']}", json={"datum": "2026-05-02"}).json()
    assert moved["datum"] == "2026-05-02T00:00:00" and moved["text"] == "x" and moved["rowId"] != termin["rowId"]
    sim.admin("DELETE", f"/human/termine/{termin['frNr']}")
    assert sim.state.get_termin(termin["frNr"]) is None


def test_call_counters_and_latency():
    s = Sim(latency_ms=120)
    try:
        s.token()
        betnr = s.person()["betNr"]
        start = time.monotonic()
        s.api("GET", f"/Beteiligte/{betnr}")
        assert time.monotonic() - start >= 0.12
        calls = s.admin("GET", "/calls").json()
        assert calls == {"POST /api/v1/Token": 1, "POST /api/v1/advonet/Beteiligte": 1,
                         "GET /api/v1/advonet/Beteiligte/<betnr>": 1}
    finally:
        s.server.stop()
