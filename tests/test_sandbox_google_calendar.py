"""The Google Calendar simulator, driven over HTTP by google-api-python-client itself (and requests for raw checks)."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import google.auth.credentials
import pytest
import requests
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.sandbox import google_calendar_model as m

UTC = timezone.utc


GOOGLE_SEED = 7  # this module's own simulator (conftest `google_server`): it injects faults


@pytest.fixture
def svc(google_server, google_state):
    return build("calendar", "v3", credentials=google.auth.credentials.AnonymousCredentials(),
                 client_options={"api_endpoint": google_server.url + "/calendar/v3/"}, static_discovery=True)


@pytest.fixture
def cal(svc):
    return svc.calendars().insert(body={"summary": "Termine TEST", "timeZone": "Europe/Berlin"}).execute()["id"]


def timed(start: str, end: str, **extra) -> dict:
    return {"start": {"dateTime": start}, "end": {"dateTime": end}, **extra}


def error_of(call) -> HttpError:
    with pytest.raises(HttpError) as info:
        call.execute()
    return info.value


def reason(err: HttpError) -> str:
    return err.error_details[0]["reason"]


def full_sync(svc, cal, **params):
    """Page through a listing the way a client must: returns (items, pages, nextSyncToken)."""
    pages, items = [], []
    request = svc.events().list(calendarId=cal, **params)
    while request is not None:
        page = request.execute()
        pages.append(page)
        items.extend(page["items"])
        request = svc.events().list_next(request, page)
    return items, pages, pages[-1].get("nextSyncToken")


# --- listings and sync ---
def test_full_sync_over_several_pages_gives_the_sync_token_only_on_the_last_page(svc, cal):
    for n in range(23):
        svc.events().insert(calendarId=cal, body=timed(f"2024-05-{n + 1:02d}T10:00:00+02:00",
                                                       f"2024-05-{n + 1:02d}T11:00:00+02:00", summary=f"T{n}")).execute()
    items, pages, token = full_sync(svc, cal, maxResults=5)
    assert len(pages) == 5 and [len(p["items"]) for p in pages] == [5, 5, 5, 5, 3]
    assert len({e["id"] for e in items}) == 23
    for page in pages[:-1]:
        assert "nextPageToken" in page and "nextSyncToken" not in page
    assert "nextPageToken" not in pages[-1] and token
    assert all(e["etag"] and e["updated"] and e["iCalUID"] and e["sequence"] == 0 for e in items)


def test_default_page_size_is_250_and_the_maximum_2500(svc, cal, google_state):
    for n in range(260):
        google_state.insert_event(cal, {"start": {"date": "2024-01-01"}, "end": {"date": "2024-01-02"}})
    first = svc.events().list(calendarId=cal).execute()
    assert len(first["items"]) == 250 and "nextPageToken" in first
    assert len(svc.events().list(calendarId=cal, maxResults=5000).execute()["items"]) == 260
    assert reason(error_of(svc.events().list(calendarId=cal, maxResults=0))) == "invalid"


def test_incremental_sync_sees_an_update_a_deletion_and_an_insert(svc, cal, google_state):
    a = svc.events().insert(calendarId=cal, body=timed("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z")).execute()
    b = svc.events().insert(calendarId=cal, body=timed("2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z")).execute()
    svc.events().insert(calendarId=cal, body=timed("2024-05-03T10:00:00Z", "2024-05-03T11:00:00Z")).execute()
    _, _, token = full_sync(svc, cal)

    google_state.human_update(cal, a["id"], {"summary": "moved by a human"})
    svc.events().delete(calendarId=cal, eventId=b["id"]).execute()
    c = svc.events().insert(calendarId=cal, body=timed("2024-05-04T10:00:00Z", "2024-05-04T11:00:00Z")).execute()

    changes, _, token2 = full_sync(svc, cal, syncToken=token)
    by_id = {e["id"]: e for e in changes}
    assert set(by_id) == {a["id"], b["id"], c["id"]}
    assert by_id[a["id"]]["summary"] == "moved by a human" and by_id[a["id"]]["etag"] != a["etag"]
    assert by_id[b["id"]]["status"] == "cancelled"
    assert token2 and token2 != token
    nothing, _, token3 = full_sync(svc, cal, syncToken=token2)
    assert nothing == [] and token3


def test_incremental_sync_pages_too(svc, cal, google_state):
    _, _, token = full_sync(svc, cal)
    for n in range(7):
        google_state.human_insert(cal, timed(f"2024-06-0{n + 1}T08:00:00Z", f"2024-06-0{n + 1}T09:00:00Z"))
    changes, pages, token2 = full_sync(svc, cal, syncToken=token, maxResults=3)
    assert len(changes) == 7 and len(pages) == 3
    assert all("nextSyncToken" not in p for p in pages[:-1]) and token2


def test_a_change_made_while_paging_is_not_missed(svc, cal, google_state):
    slot = timed("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z")
    ids = [google_state.insert_event(cal, dict(slot))["id"] for _ in range(4)]
    request = svc.events().list(calendarId=cal, maxResults=2)
    first = request.execute()
    google_state.human_update(cal, ids[0], {"summary": "edited during paging"})
    rest = svc.events().list_next(request, first).execute()
    token = rest["nextSyncToken"]
    changes, _, _ = full_sync(svc, cal, syncToken=token)
    assert [e["id"] for e in changes] == [ids[0]] and changes[0]["summary"] == "edited during paging"


def test_expired_unknown_or_foreign_sync_tokens_answer_410_full_sync_required(google_server, svc, cal, google_state):
    _, _, token = full_sync(svc, cal)
    other = svc.calendars().insert(body={"summary": "other"}).execute()["id"]
    err = error_of(svc.events().list(calendarId=other, syncToken=token))
    assert err.status_code == 410 and reason(err) == "fullSyncRequired"
    assert reason(error_of(svc.events().list(calendarId=cal, syncToken="1" + token))) == "fullSyncRequired"

    expired = requests.post(google_server.url + "/_sandbox/expire-sync-tokens", json={"calendarId": cal}).json()
    assert expired["expired"] == 1
    err = error_of(svc.events().list(calendarId=cal, syncToken=token))
    assert err.status_code == 410
    assert err.error_details[0] == {"domain": "calendar", "reason": "fullSyncRequired", "locationType": "parameter",
                                    "location": "syncToken",
                                    "message": "Sync token is no longer valid, a full sync is required."}
    _, _, fresh = full_sync(svc, cal)  # the way out: a full sync without token
    assert full_sync(svc, cal, syncToken=fresh)[0] == []


@pytest.mark.parametrize("param", [
    {"timeMin": "2024-01-01T00:00:00Z"}, {"timeMax": "2024-01-01T00:00:00Z"},
    {"privateExtendedProperty": "frNr=1"}, {"sharedExtendedProperty": "a=b"}, {"q": "x"},
    {"orderBy": "updated"}, {"iCalUID": "x@google.com"}, {"updatedMin": "2024-01-01T00:00:00Z"},
    {"showDeleted": False},
])
def test_parameters_forbidden_with_a_sync_token_answer_400(svc, cal, param):
    _, _, token = full_sync(svc, cal)
    err = error_of(svc.events().list(calendarId=cal, syncToken=token, **param))
    assert err.status_code == 400
    assert full_sync(svc, cal, syncToken=token, showDeleted=True, singleEvents=False)[2]  # these stay allowed


# --- filters ---
def test_time_min_bounds_the_end_and_time_max_the_start_both_exclusive(svc, cal):
    def add(summary, start, end):
        svc.events().insert(calendarId=cal, body=timed(start, end, summary=summary)).execute()

    add("ends at timeMin", "2024-05-01T08:00:00Z", "2024-05-01T10:00:00Z")
    add("crosses timeMin", "2024-05-01T09:00:00Z", "2024-05-01T10:00:01Z")
    add("inside", "2024-05-01T12:00:00+02:00", "2024-05-01T13:00:00+02:00")
    add("starts at timeMax", "2024-05-01T14:00:00Z", "2024-05-01T15:00:00Z")
    add("crosses timeMax", "2024-05-01T13:59:59Z", "2024-05-01T15:00:00Z")
    svc.events().insert(calendarId=cal, body={"summary": "all day (Berlin)", "start": {"date": "2024-05-01"},
                                              "end": {"date": "2024-05-02"}}).execute()
    items, _, _ = full_sync(svc, cal, timeMin="2024-05-01T12:00:00+02:00", timeMax="2024-05-01T16:00:00+02:00")
    assert sorted(e["summary"] for e in items) == ["all day (Berlin)", "crosses timeMax", "crosses timeMin", "inside"]
    # the all-day event spans 2024-04-30T22:00Z .. 2024-05-01T22:00Z in the calendar's zone
    late, _, _ = full_sync(svc, cal, timeMin="2024-05-01T22:00:00Z")
    assert late == []
    assert reason(error_of(svc.events().list(calendarId=cal, timeMin="2024-05-02T00:00:00Z",
                                             timeMax="2024-05-01T00:00:00Z"))) == "timeRangeEmpty"
    assert error_of(svc.events().list(calendarId=cal, timeMin="2024-05-01T00:00:00")).status_code == 400


def test_private_extended_property_filter_matches_all_constraints_and_only_private_ones(svc, cal):
    def add(private=None, shared=None):
        props = {k: v for k, v in (("private", private), ("shared", shared)) if v}
        return svc.events().insert(calendarId=cal, body=timed("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z",
                                                               extendedProperties=props)).execute()["id"]

    one = add({"frNr": "1", "art": "Frist"})
    add({"frNr": "2"})
    add(shared={"frNr": "1"})
    add()
    assert [e["id"] for e in full_sync(svc, cal, privateExtendedProperty="frNr=1")[0]] == [one]
    both = full_sync(svc, cal, privateExtendedProperty=["frNr=1", "art=Frist"])[0]
    assert [e["id"] for e in both] == [one]
    assert full_sync(svc, cal, privateExtendedProperty=["frNr=1", "art=Termin"])[0] == []
    assert full_sync(svc, cal, privateExtendedProperty="frNr=1")[2]  # a filtered full sync still yields a token


def test_show_deleted_and_single_events(svc, cal):
    gone = svc.events().insert(calendarId=cal, body=timed("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z")).execute()
    svc.events().delete(calendarId=cal, eventId=gone["id"]).execute()
    weekly = svc.events().insert(calendarId=cal, body={
        **timed("2024-05-06T09:00:00+02:00", "2024-05-06T10:00:00+02:00"), "summary": "Jour fixe",
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"]}).execute()
    assert [e["id"] for e in full_sync(svc, cal)[0]] == [weekly["id"]]
    with_deleted = full_sync(svc, cal, showDeleted=True)[0]
    assert {e["id"]: e["status"] for e in with_deleted} == {gone["id"]: "cancelled", weekly["id"]: "confirmed"}
    instances, _, token = full_sync(svc, cal, singleEvents=True, orderBy="startTime")
    assert [e["start"]["dateTime"][:10] for e in instances] == ["2024-05-06", "2024-05-13", "2024-05-20"]
    assert all(e["recurringEventId"] == weekly["id"] and e["id"].startswith(weekly["id"] + "_") for e in instances)
    assert token is None  # an ordered listing gives no sync token
    assert error_of(svc.events().list(calendarId=cal, orderBy="startTime")).status_code == 400


# --- writes: ids, etags, deletion ---
def test_client_supplied_ids_must_be_base32hex_of_5_to_1024_chars(svc, cal):
    body = timed("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z")
    for good in ("abcde", "0v" * 512, "frnr0000012345"):
        assert svc.events().insert(calendarId=cal, body={**body, "id": good}).execute()["id"] == good
    for bad in ("abcd", "ABCDE1", "wxyz12", "abc-def", "v" * 1025):
        err = error_of(svc.events().insert(calendarId=cal, body={**body, "id": bad}))
        assert err.status_code == 400 and reason(err) == "invalid"


def test_duplicate_ids_answer_409_even_after_the_event_was_deleted(svc, cal):
    body = {**timed("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"), "id": "frnr42"}
    svc.events().insert(calendarId=cal, body=body).execute()
    err = error_of(svc.events().insert(calendarId=cal, body=body))
    assert err.status_code == 409 and reason(err) == "duplicate"
    svc.events().delete(calendarId=cal, eventId="frnr42").execute()
    assert error_of(svc.events().insert(calendarId=cal, body=body)).status_code == 409
    restored = svc.events().update(calendarId=cal, eventId="frnr42", body=body).execute()  # the way back
    assert restored["status"] == "confirmed"


def test_if_match_with_a_stale_etag_answers_412(svc, cal, google_state):
    ev = svc.events().insert(calendarId=cal, body=timed("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z")).execute()
    stale = ev["etag"]
    google_state.human_update(cal, ev["id"], {"summary": "a human was faster"})
    fresh = svc.events().get(calendarId=cal, eventId=ev["id"]).execute()
    assert fresh["etag"] != stale

    request = svc.events().update(calendarId=cal, eventId=ev["id"], body={**ev, "summary": "mine"})
    request.headers["If-Match"] = stale
    err = error_of(request)
    assert err.status_code == 412 and reason(err) == "conditionNotMet"
    request = svc.events().patch(calendarId=cal, eventId=ev["id"], body={"summary": "mine"})
    request.headers["If-Match"] = fresh["etag"]
    assert request.execute()["summary"] == "mine"
    delete = svc.events().delete(calendarId=cal, eventId=ev["id"])
    delete.headers["If-Match"] = fresh["etag"]
    assert error_of(delete).status_code == 412


def test_deleting_twice_answers_410_deleted_and_the_deleted_event_stays_readable(svc, cal):
    ev = svc.events().insert(calendarId=cal, body=timed("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z")).execute()
    svc.events().delete(calendarId=cal, eventId=ev["id"]).execute()
    err = error_of(svc.events().delete(calendarId=cal, eventId=ev["id"]))
    assert err.status_code == 410 and reason(err) == "deleted"
    assert svc.events().get(calendarId=cal, eventId=ev["id"]).execute()["status"] == "cancelled"
    assert error_of(svc.events().get(calendarId=cal, eventId="nosuchevent")).status_code == 404


def test_patch_merges_and_null_removes_update_replaces_and_checks_the_sequence(svc, cal):
    ev = svc.events().insert(calendarId=cal, body={
        **timed("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"), "summary": "s", "location": "Köln",
        "extendedProperties": {"private": {"frNr": "5", "hash": "x"}}}).execute()
    patched = svc.events().patch(calendarId=cal, eventId=ev["id"], body={
        "extendedProperties": {"private": {"hash": None, "rowId": "r2"}}, "location": None}).execute()
    assert patched["extendedProperties"]["private"] == {"frNr": "5", "rowId": "r2"}
    assert "location" not in patched and patched["summary"] == "s" and patched["sequence"] == 0
    moved = svc.events().patch(calendarId=cal, eventId=ev["id"], body={"end": {"dateTime": "2024-05-01T12:00:00Z"}})
    moved = moved.execute()
    assert moved["sequence"] == 1 and moved["start"] == ev["start"]
    replaced = svc.events().update(calendarId=cal, eventId=ev["id"], body=timed(
        "2024-05-01T10:00:00Z", "2024-05-01T12:00:00Z", summary="only this")).execute()
    assert "extendedProperties" not in replaced and replaced["summary"] == "only this"
    err = error_of(svc.events().update(calendarId=cal, eventId=ev["id"], body={**replaced, "sequence": 0}))
    assert err.status_code == 400 and reason(err) == "invalid"


@pytest.mark.parametrize("body,expected", [
    ({"start": {"dateTime": "2024-05-01T10:00:00Z"}}, "required"),
    (timed("2024-05-01T10:00:00Z", "2024-05-01T09:00:00Z"), "timeRangeEmpty"),
    ({"start": {"date": "2024-05-01"}, "end": {"date": "2024-05-01"}}, "timeRangeEmpty"),
    ({"start": {"date": "2024-05-01"}, "end": {"dateTime": "2024-05-01T10:00:00Z"}}, "badRequest"),
    ({"start": {"dateTime": "2024-05-01T10:00:00"}, "end": {"dateTime": "2024-05-01T11:00:00"}}, "badRequest"),
    ({**timed("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"), "status": "done"}, "invalid"),
])
def test_invalid_event_bodies_answer_400(svc, cal, body, expected):
    err = error_of(svc.events().insert(calendarId=cal, body=body))
    assert err.status_code == 400 and reason(err) == expected


def test_local_date_time_with_a_time_zone_across_the_dst_change(svc, cal):
    ev = svc.events().insert(calendarId=cal, body={
        "start": {"dateTime": "2024-03-31T01:30:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2024-03-31T03:30:00", "timeZone": "Europe/Berlin"}}).execute()
    # 01:30 CET is 00:30Z, 03:30 CEST is 01:30Z: one hour, visible from 01:00Z only through its end
    assert [e["id"] for e in full_sync(svc, cal, timeMin="2024-03-31T01:00:00Z")[0]] == [ev["id"]]
    assert full_sync(svc, cal, timeMin="2024-03-31T01:30:00Z")[0] == []


# --- calendars, auth, errors, faults ---
def test_calendars_insert_get_list_delete(svc, google_state):
    assert reason(error_of(svc.calendars().insert(body={"description": "no title"}))) == "required"
    made = [svc.calendars().insert(body={"summary": f"K{n}", "description": f"d{n}"}).execute() for n in range(3)]
    assert svc.calendars().get(calendarId=made[0]["id"]).execute()["summary"] == "K0"
    first = svc.calendarList().list(maxResults=2).execute()
    rest = svc.calendarList().list_next(svc.calendarList().list(maxResults=2), first).execute()
    listed = first["items"] + rest["items"]
    assert [c["id"] for c in listed] == [google_state.owner] + [c["id"] for c in made]
    assert listed[0]["primary"] is True and all(c["accessRole"] == "owner" for c in listed)
    svc.calendars().delete(calendarId=made[1]["id"]).execute()
    assert error_of(svc.calendars().get(calendarId=made[1]["id"])).status_code == 404
    assert error_of(svc.events().list(calendarId=made[1]["id"])).status_code == 404
    assert error_of(svc.calendars().delete(calendarId="primary")).status_code == 400
    assert svc.events().list(calendarId="primary").execute()["items"] == []


def test_calendars_ignore_extended_properties_like_the_real_api(svc):
    made = svc.calendars().insert(body={"summary": "K", "extendedProperties": {"private": {"k": "v"}}}).execute()
    assert "extendedProperties" not in svc.calendars().get(calendarId=made["id"]).execute()


def test_anonymous_and_bearer_calls_are_accepted_other_schemes_answer_401(google_server, google_state):
    url = google_server.url + "/calendar/v3/users/me/calendarList"
    assert requests.get(url).status_code == 200
    assert requests.get(url, headers={"Authorization": "Bearer anything"}).status_code == 200
    bad = requests.get(url, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert bad.status_code == 401 and bad.json()["error"]["errors"][0]["reason"] == "authError"
    assert requests.get(url, params={"alt": "json"}).status_code == 200
    assert requests.get(url, params={"alt": "media"}).status_code == 400
    missing = requests.get(google_server.url + "/calendar/v3/nothing/here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404


def test_kit_faults_get_google_shaped_bodies_and_the_library_retries_them(google_server, svc, cal):
    requests.post(google_server.url + "/_sandbox/faults", json={"path": "/calendar/v3/*", "status": 500, "times": 1})
    err = error_of(svc.events().list(calendarId=cal))
    assert err.status_code == 500 and reason(err) == "backendError"
    assert err.error_details[0]["domain"] == "global"

    requests.post(google_server.url + "/_sandbox/faults", json={"path": "/calendar/v3/*", "status": 503, "times": 1,
                                                          "after": True, "method": "POST"})
    lost = error_of(svc.events().insert(calendarId=cal, body={**timed("2024-05-01T10:00:00Z",
                                                                      "2024-05-01T11:00:00Z"), "id": "lost0data1"}))
    assert lost.status_code == 503 and reason(lost) == "backendError"
    assert svc.events().get(calendarId=cal, eventId="lost0data1").execute()["id"] == "lost0data1"  # it was written

    requests.post(google_server.url + "/_sandbox/faults", json={"path": "/calendar/v3/*", "status": 429, "times": 1,
                                                          "retry_after": 3})
    raw = requests.get(google_server.url + f"/calendar/v3/calendars/{cal}/events")
    assert raw.status_code == 429 and raw.headers["Retry-After"] == "3"
    assert raw.json()["error"]["errors"][0]["reason"] == "rateLimitExceeded"

    requests.post(google_server.url + "/_sandbox/google-faults", json={"status": 403, "reason": "userRateLimitExceeded",
                                                                 "times": 2})
    request = svc.events().list(calendarId=cal)
    request._sleep = lambda seconds: None  # the library would sleep random() * 2**n seconds
    assert [e["id"] for e in request.execute(num_retries=2)["items"]] == ["lost0data1"]  # the 403s were retried
    calls = requests.get(google_server.url + "/_sandbox/calls").json()
    assert calls["GET /calendar/v3/calendars/<calendar_id>/events"] == 5

    requests.post(google_server.url + "/_sandbox/google-faults",
                  json={"status": 403, "reason": "forbidden", "times": 1})
    request = svc.events().list(calendarId=cal)
    request._sleep = lambda seconds: None
    assert reason(error_of_retrying(request)) == "forbidden"  # a plain 403 is not retried


def error_of_retrying(request) -> HttpError:
    with pytest.raises(HttpError) as info:
        request.execute(num_retries=3)
    return info.value


def test_seed_human_routes_reset_and_state_round_trip(google_server, svc, google_state):
    made = requests.post(google_server.url + "/_sandbox/seed", json={"calendars": 2, "events_per_calendar": 4}).json()
    assert len(made["calendars"]) == 2
    cal = made["calendars"][0]
    assert len(full_sync(svc, cal)[0]) == 4
    human = requests.post(google_server.url + f"/_sandbox/human/calendars/{cal}/events",
                          json=timed("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z", summary="h")).json()
    assert requests.patch(google_server.url + f"/_sandbox/human/calendars/{cal}/events/{human['id']}",
                          json={"summary": "h2"}).json()["summary"] == "h2"
    url = google_server.url + f"/_sandbox/human/calendars/{cal}/events/{human['id']}"
    assert requests.delete(url).status_code == 204
    dumped = google_state.dump_state()
    assert requests.post(google_server.url + "/_sandbox/reset").status_code == 200
    assert google_state.calendar_ids() == [google_state.owner]
    google_state.load_state(dumped)
    assert len(google_state.events_of(cal, include_deleted=True)) == 5
    info = requests.get(google_server.url + "/_sandbox/info").json()
    assert info["name"] == "google_calendar" and info["calendars"] == 3


def test_concurrent_writers_get_distinct_ids_and_etags(google_server, google_state):
    cal = google_state.insert_calendar({"summary": "busy"})["id"]
    url = google_server.url + f"/calendar/v3/calendars/{cal}/events"
    results = []

    def writer():
        with requests.Session() as session:
            for _ in range(15):
                results.append(session.post(url, json=timed("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z")).json())

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r["id"] for r in results}) == 90 and len({r["etag"] for r in results}) == 90


# --- the pure rules ---
@given(st.text(alphabet="0123456789abcdefghijklmnopqrstuvwxyzABC-_", min_size=0, max_size=12))
@settings(max_examples=200, deadline=None)
def test_event_id_rule(candidate):
    expected = 5 <= len(candidate) and all(c in "0123456789abcdefghijklmnopqrstuv" for c in candidate)
    assert bool(m.EVENT_ID_RE.match(candidate)) == expected


@given(st.integers(0, 100), st.integers(0, 100), st.integers(0, 100), st.integers(0, 100))
def test_window_rule_matches_the_definition(start, length, lo, width):
    base = datetime(2024, 1, 1, tzinfo=UTC)
    span = (base + timedelta(minutes=start), base + timedelta(minutes=start + length))
    t_min, t_max = base + timedelta(minutes=lo), base + timedelta(minutes=lo + width + 1)
    assert m.in_window(span, t_min, t_max) == (span[1] > t_min and span[0] < t_max)


def test_merge_patch_semantics():
    target = {"a": 1, "nested": {"x": 1, "y": 2}, "list": [1, 2]}
    assert m.merge_patch(target, {"nested": {"y": None, "z": 3}, "list": [3], "a": None}) == {
        "nested": {"x": 1, "z": 3}, "list": [3]}
    assert target["nested"] == {"x": 1, "y": 2}
