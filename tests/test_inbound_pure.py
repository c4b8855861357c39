"""The inbound channels' pure parts: form parsing and validation, call reports, the phone index's choices,
assignment, and the EspoCRM payloads (docs/inbound-channels.md)."""
from __future__ import annotations

import json
import string

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from bitbylaw_tasks.domain_settings import check_domain_settings
from bitbylaw_tasks.inbound.assign import User, round_robin_pick
from bitbylaw_tasks.inbound.calls import CallReport, parse_duration, parse_report, report_from_fields
from bitbylaw_tasks.inbound.journal import call_back_text, call_payload
from bitbylaw_tasks.inbound.lead_form import (FormRejected, LeadSubmission, map_fields, parse_body,
                                              submission_from_form, validate)
from bitbylaw_tasks.inbound.leads import lead_payload, note_text
from bitbylaw_tasks.inbound.phone_index import Owner, choose_owner, owner_from_record
from bitbylaw_tasks.inbound.phones import to_e164
from bitbylaw_tasks.settings import SettingsError, load_settings

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
CF7_MAP = {"your-name": "name", "your-email": "emailAddress", "your-phone": "phoneNumber",
           "your-message": "description", "datenschutz": "consent"}


# ------------------------------------------------------------------ phones
@pytest.mark.parametrize("raw,expected", [
    ("030 1234567", "+49301234567"), ("+49 30 1234567", "+49301234567"), ("0049 30 1234567", "+49301234567"),
    ("0171 2345678", "+491712345678"), ("(030) 123-4567", "+49301234567"), ("+43 1 5321234", "+4315321234"),
    ("+1 212 555 0100", "+12125550100"), ("", None), ("abc", None), ("12", None), ("+49" + "1" * 40, None),
])
def test_phone_numbers_become_e164_with_region_de(raw, expected):
    assert to_e164(raw, "DE") == expected


@given(st.text(alphabet="0123456789 +-()/", max_size=25))
def test_to_e164_returns_a_parseable_e164_or_none_and_is_idempotent(raw):
    out = to_e164(raw, "DE")
    if out is not None:
        assert out.startswith("+") and out[1:].isdigit()
        assert phonenumbers.is_possible_number(phonenumbers.parse(out, None))
        assert to_e164(out, "DE") == out


# ------------------------------------------------------------------ forms
def test_json_and_form_bodies_give_the_same_fields():
    fields = {"your-name": "Erika Mustermann", "your-email": "Erika@Example.DE", "your-phone": "030 1234567"}
    from urllib.parse import urlencode

    assert parse_body(JSON, json.dumps(fields).encode()) == fields
    assert parse_body(f"{FORM}; charset=UTF-8", urlencode(fields).encode()) == fields


@pytest.mark.parametrize("ctype,body,status", [
    ("text/plain", b"a=b", 415), ("", b"{}", 415), (JSON, b"{not json", 400), (JSON, b"[1,2]", 400),
    (JSON, b"\xff\xfe", 400), ("multipart/form-data", b"", 415),
])
def test_unparseable_bodies_are_refused_with_a_4xx(ctype, body, status):
    with pytest.raises(FormRejected) as err:
        parse_body(ctype, body)
    assert err.value.status == status


def test_json_plugin_metadata_and_unmapped_fields_are_dropped_booleans_become_text():
    fields = parse_body(JSON, json.dumps({"form": {"id": 7}, "datenschutz": True, "x": None, "n": 3}).encode())
    assert fields == {"datenschutz": "true", "x": "", "n": "3"}
    assert map_fields({"your-name": " A B ", "utm_source": "g", "secret": "x"}, CF7_MAP) == {"name": "A B"}


def test_the_field_map_lays_over_the_lead_field_names():
    assert map_fields({"lastName": "Muster", "tel": "0301234567"}, {"tel": "phoneNumber"}) == {
        "lastName": "Muster", "phoneNumber": "0301234567"}


def test_a_full_name_is_split_at_the_last_space_and_email_lower_cased_phone_normalised():
    sub = validate(map_fields({"your-name": "Anna Maria Schmidt", "your-email": "Anna@Example.DE",
                               "your-phone": "0171 2345678", "datenschutz": "1"}, CF7_MAP))
    assert (sub.first_name, sub.last_name, sub.email, sub.phone, sub.consent) == (
        "Anna Maria", "Schmidt", "anna@example.de", "+491712345678", True)


@pytest.mark.parametrize("mapped,problem", [
    ({"emailAddress": "a@b.de"}, "lastName"),
    ({"lastName": "X"}, "emailAddress or phoneNumber"),
    ({"lastName": "X", "emailAddress": "not-an-address"}, "emailAddress"),
    ({"lastName": "X", "emailAddress": "a@b"}, "emailAddress"),
    ({"lastName": "X", "phoneNumber": "hello"}, "phoneNumber"),
    ({"lastName": "X" * 101, "emailAddress": "a@b.de"}, "lastName"),
    ({"lastName": "X", "emailAddress": "a@b.de", "description": "d" * 5001}, "description"),
])
def test_invalid_leads_are_422_naming_the_field(mapped, problem):
    with pytest.raises(FormRejected) as err:
        validate(mapped)
    assert err.value.status == 422 and problem in err.value.message


def test_a_filled_honeypot_means_no_submission_an_empty_one_is_ignored():
    body = json.dumps({"lastName": "Bot", "emailAddress": "b@o.t", "website-url": "http://spam"}).encode()
    assert submission_from_form(JSON, body, {}, "website-url") is None
    body = json.dumps({"lastName": "Human", "emailAddress": "h@u.de", "website-url": ""}).encode()
    assert submission_from_form(JSON, body, {}, "website-url").last_name == "Human"


@pytest.mark.parametrize("value,consent", [("1", True), ("on", True), ("Ja", True), ("true", True),
                                           ("", False), ("0", False), ("no", False)])
def test_consent_values(value, consent):
    assert validate({"lastName": "X", "emailAddress": "a@b.de", "consent": value}).consent is consent


_text = st.text(alphabet=string.ascii_letters + " äöüß-", min_size=1, max_size=30)


@hsettings(max_examples=200, deadline=None)
@given(first=_text, last=_text, local=st.from_regex(r"[a-z0-9.]{1,12}", fullmatch=True),
       message=st.text(max_size=80), consent=st.booleans(), form=st.booleans())
def test_any_wellformed_submission_round_trips_and_its_fingerprint_is_content_only(first, last, local, message,
                                                                                 consent, form):
    from urllib.parse import urlencode

    fields = {"vorname": first, "nachname": last, "mail": f"{local}@kanzlei.de", "text": message,
              "ok": "1" if consent else ""}
    mapping = {"vorname": "firstName", "nachname": "lastName", "mail": "emailAddress", "text": "description",
               "ok": "consent"}
    body = urlencode(fields).encode() if form else json.dumps(fields).encode()
    if not last.strip():
        with pytest.raises(FormRejected):
            submission_from_form(FORM if form else JSON, body, mapping, "")
        return
    sub = submission_from_form(FORM if form else JSON, body, mapping, "")
    assert sub.last_name == last.strip() and sub.first_name == first.strip()
    assert sub.email == f"{local}@kanzlei.de".lower() and sub.consent is consent
    assert sub.description == message.strip()
    again = LeadSubmission.from_dict(json.loads(json.dumps(sub.to_dict())))
    assert again == sub and again.fingerprint() == sub.fingerprint()
    other = LeadSubmission.from_dict({**sub.to_dict(), "description": sub.description + "!"})
    assert other.fingerprint() != sub.fingerprint()


# ------------------------------------------------------------------ settings
def test_inbound_settings_parse_and_refuse_bad_values():
    s = load_settings({"LEAD_FIELD_MAP": "your-email=emailAddress,tel=phoneNumber", "LEAD_RATE_LIMIT": "3/hour",
                       "THREECX_EXTENSION_USERS": "101=alice,102=bob", "INBOUND_PHONE_REGION": "at",
                       "THREECX_UNKNOWN_CREATES_LEAD": "true"})
    assert s.lead_field_map == {"your-email": "emailAddress", "tel": "phoneNumber"}
    assert s.threecx_extension_users == {"101": "alice", "102": "bob"}
    assert (s.inbound_phone_region, s.lead_rate_limit, s.threecx_unknown_creates_lead) == ("AT", "3/hour", True)
    for env in ({"LEAD_RATE_LIMIT": "often"}, {"INBOUND_PHONE_REGION": "XX"}):
        with pytest.raises(SettingsError):
            load_settings(env)
    with pytest.raises(SettingsError, match="LEAD_FIELD_MAP: x maps to 'password'"):
        check_domain_settings(load_settings({"LEAD_FIELD_MAP": "x=password"}))  # the domain's check, at start
    check_domain_settings(s)
    assert load_settings({"LEAD_TOKEN": "t", "THREECX_API_KEY": "k"}).redacted()["lead_token"] == "***"


# ------------------------------------------------------------------ 3CX call reports
@pytest.mark.parametrize("raw,seconds", [("00:01:05", 65), ("1:00:00", 3600), ("02:03", 123), ("42", 42),
                                         ("", 0), ("00:00:07.250", 7)])
def test_durations(raw, seconds):
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["1:61:00", "abc", "-5", "25:00:00:00", "90000"])
def test_bad_durations_are_422(raw):
    with pytest.raises(FormRejected):
        parse_duration(raw)


@pytest.mark.parametrize("call_type,direction,status,missed", [
    ("Inbound", "Inbound", "Held", False), ("Outbound", "Outbound", "Held", False),
    ("Missed", "Inbound", "Not Held", True), ("Notanswered", "Outbound", "Not Held", False),
    ("missed", "Inbound", "Not Held", True),
])
def test_call_type_gives_direction_and_status(call_type, direction, status, missed):
    report = report_from_fields({"CallType": call_type, "Number": "030 1234567", "Agent": "101",
                                 "Duration": "00:02:00", "CallStartTimeUTC": "2026-11-30 14:05:00"})
    assert (report.direction, report.status, report.missed) == (direction, status, missed)
    assert (report.number, report.start, report.end, report.duration_s) == (
        "+49301234567", "2026-11-30 14:05:00", "2026-11-30 14:07:00", 120)


def test_start_times_with_a_zone_are_converted_to_utc_and_the_key_is_per_call():
    a = report_from_fields({"CallType": "Inbound", "Number": "+4930111", "CallStartTimeUTC": "2026-11-30T15:05:00+01:00"})
    b = report_from_fields({"CallType": "Inbound", "Number": "+4930111", "CallStartTimeUTC": "11/30/2026 14:05:00"})
    assert a.start == b.start == "2026-11-30 14:05:00" and a.key == b.key
    c = report_from_fields({"CallType": "Inbound", "Number": "+4930111", "CallStartTimeUTC": "2026-11-30 14:05:01"})
    assert c.key != a.key
    assert CallReport.from_dict(json.loads(json.dumps(a.to_dict()))) == a


@pytest.mark.parametrize("fields,problem", [
    ({"CallType": "Transferred", "CallStartTimeUTC": "2026-11-30 14:05:00"}, "CallType"),
    ({"CallType": "Inbound"}, "CallStartTimeUTC"),
    ({"CallType": "Inbound", "CallStartTimeUTC": "yesterday-ish"}, "CallStartTimeUTC"),
    ({"CallType": "Inbound", "CallStartTimeUTC": "2026-11-30 14:05:00", "Agent": "1" * 21}, "Agent"),
])
def test_bad_call_reports_are_422(fields, problem):
    with pytest.raises(FormRejected) as err:
        report_from_fields(fields)
    assert err.value.status == 422 and problem in err.value.message


def test_a_withheld_number_and_foreign_entity_ids_are_kept_out():
    report = parse_report(JSON, json.dumps({"CallType": "Missed", "Number": "anonymous", "EntityId": "abc",
                                            "EntityType": "Lead", "CallStartTimeUTC": "2026-11-30 14:05"}).encode())
    assert (report.number, report.entity_id, report.entity_type) == ("", "", "")
    report = parse_report(JSON, json.dumps({"CallType": "Missed", "Number": "+4930111", "EntityId": "6618a630d680cf769",
                                            "EntityType": "Lead", "CallStartTimeUTC": "2026-11-30 14:05"}).encode())
    assert (report.entity_type, report.entity_id) == ("Lead", "6618a630d680cf769")


# ------------------------------------------------------------------ phone index decisions
def test_owner_from_a_record_indexes_every_valid_number_and_picks_business_and_mobile():
    record = {"id": "r1", "firstName": "A", "lastName": "B", "firmenname": "", "modifiedAt": "2026-01-01 00:00:00",
              "emailAddressData": [{"emailAddress": "x@y.de", "primary": False}, {"emailAddress": "p@y.de", "primary": True}],
              "phoneNumberData": [{"phoneNumber": "030 111111", "type": "Office", "primary": False},
                                  {"phoneNumber": "0171 2222222", "type": "Mobile", "primary": True},
                                  {"phoneNumber": "030 333333", "type": "Fax", "primary": False},
                                  {"phoneNumber": "0304444444", "type": "Home", "primary": False, "invalid": True},
                                  {"phoneNumber": "n/a", "type": "Other", "primary": False}]}
    owner, numbers = owner_from_record("CBeteiligte", record)
    assert numbers == {"+4930111111", "+491712222222", "+4930333333"}
    assert (owner.phone_business, owner.phone_mobile, owner.email) == ("+4930111111", "+491712222222", "p@y.de")
    lead, lead_numbers = owner_from_record("Lead", {"id": "l1", "lastName": "C", "phoneNumber": "12", "accountName": "ACME"})
    assert lead.company == "ACME" and lead_numbers == set()  # "12" is not a possible number


def test_the_most_recently_modified_owner_wins_ties_prefer_party_contact_lead():
    old = Owner("Lead", "a", modified_at="2026-01-01 00:00:00")
    new = Owner("Contact", "b", modified_at="2026-02-01 00:00:00")
    assert choose_owner([old, new]) == new and choose_owner([new, old]) == new
    tie = [Owner("Lead", "c", modified_at="2026-02-01 00:00:00"), Owner("CBeteiligte", "d", modified_at="2026-02-01 00:00:00"), new]
    assert choose_owner(tie).type == "CBeteiligte"
    assert choose_owner([]) is None
    assert choose_owner([Owner("Lead", "x", modified_at=""), old]) == old


@given(st.lists(st.tuples(st.sampled_from(["CBeteiligte", "Contact", "Lead"]), st.integers(0, 5),
                          st.integers(0, 9)), min_size=1, max_size=8, unique_by=lambda t: (t[0], t[1])))
def test_choose_owner_is_order_independent_and_newest(items):
    owners = [Owner(t, f"id{i}", modified_at=f"2026-01-0{d + 1} 00:00:00" if d < 9 else "2026-01-10 00:00:00")
              for t, i, d in items]
    chosen = choose_owner(owners)
    assert chosen == choose_owner(list(reversed(owners)))
    assert chosen.modified_at == max(o.modified_at for o in owners)


# ------------------------------------------------------------------ assignment and payloads
def test_round_robin_cycles_through_the_team():
    users = [User("u1", "a"), User("u2", "b"), User("u3", "c")]
    assert [round_robin_pick(users, n).id for n in range(1, 8)] == ["u1", "u2", "u3", "u1", "u2", "u3", "u1"]
    assert round_robin_pick([], 1) is None


def test_the_lead_payload_carries_status_source_assignee_and_consent():
    sub = LeadSubmission("Erika", "Muster", "e@m.de", "+49301234567", "Bitte Rückruf", "", True)
    data = lead_payload(sub, "Web Site", "2026-11-30 10:00:00", User("u1", "alice"))
    assert data == {"firstName": "Erika", "lastName": "Muster", "status": "New", "source": "Web Site",
                    "description": "Bitte Rückruf\n\nConsent (website form): given 2026-11-30 10:00:00 UTC",
                    "emailAddress": "e@m.de", "phoneNumber": "+49301234567", "assignedUserId": "u1",
                    "consentGiven": True, "consentAt": "2026-11-30 10:00:00"}
    bare = lead_payload(LeadSubmission("", "M", "", "+4930111", "", "ACME", False), "Web Site", "t", None)
    assert "assignedUserId" not in bare and "emailAddress" not in bare and bare["accountName"] == "ACME"
    assert "consentGiven" not in bare and "consentAt" not in bare
    assert bare["description"] == ""
    assert note_text("new", sub, "t", User("u1", "alice")).startswith("@alice ")
    again = note_text("again", sub, "t", None)
    assert "@" not in again.split("\n")[0] and "Bitte Rückruf" in again and "Consent" in again


def test_the_call_payload_and_the_call_back_note():
    report = report_from_fields({"CallType": "Missed", "Number": "030 1234567", "Agent": "101",
                                 "CallStartTimeUTC": "2026-11-30 14:05:00"})
    data = call_payload(report, ("CBeteiligte", "p1"), User("u2", "bob"))
    assert data == {"name": "Call from +49301234567", "status": "Not Held", "direction": "Inbound",
                    "dateStart": "2026-11-30 14:05:00", "dateEnd": "2026-11-30 14:05:00", "duration": 0,
                    "description": "3CX: Missed, extension 101", "parentType": "CBeteiligte", "parentId": "p1",
                    "assignedUserId": "u2"}
    out = report_from_fields({"CallType": "Outbound", "Number": "", "CallStartTimeUTC": "2026-11-30 14:05:00"})
    assert call_payload(out, None, None)["name"] == "Call to an unknown number"
    assert "parentType" not in call_payload(out, None, None)
    assert call_back_text(report, User("u2", "bob")) == (
        "@bob Call back: missed call from +49301234567 at 2026-11-30 14:05:00 UTC.")


# ------------------------------------------------------------------ the phone index against a model (real Redis)
_numbers = st.sampled_from(["+4930111111", "+4930222222", "+491713333333", "+4940444444"])
_ops = st.lists(st.tuples(st.sampled_from(["put", "remove"]), st.sampled_from(["CBeteiligte", "Contact", "Lead"]),
                          st.sampled_from(["a", "b", "c"]), st.sets(_numbers, max_size=3), st.integers(0, 3)),
                max_size=25)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_the_index_answers_like_a_model_after_any_puts_and_removes(redis_url, ops):
    import redis as redis_lib

    from bitbylaw_tasks.inbound import phone_index

    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    model: dict[tuple[str, str], tuple[Owner, set[str]]] = {}
    for op, entity, rid, numbers, day in ops:
        if op == "put":
            owner = Owner(entity, rid, last_name=f"{entity}{rid}{day}", modified_at=f"2026-01-0{day + 1} 00:00:00")
            phone_index.put(client, owner, set(numbers))
            model[(entity, rid)] = (owner, set(numbers))
        else:
            phone_index.remove(client, entity, rid)
            model.pop((entity, rid), None)
        for number in ["+4930111111", "+4930222222", "+491713333333", "+4940444444"]:
            expected = choose_owner([o for o, ns in model.values() if number in ns])
            assert phone_index.lookup(client, number) == expected
    for (entity, rid), (_, numbers) in model.items():
        assert {n.decode() for n in client.smembers(phone_index.RECORD_KEY + f"{entity}:{rid}")} == numbers
