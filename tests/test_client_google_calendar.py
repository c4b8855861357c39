"""The product's Google Calendar client against the simulator over HTTP: paging, sync, typed errors, retries."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
import redis
import requests
from google.oauth2 import service_account

from bitbylaw_tasks.settings import Settings
from integrations.google_calendar import (GoogleCalendarClient, calendar_marker, calendar_properties,
                                          sandbox_endpoint)
from integrations.errors import (BadRequest, Conflict, Forbidden, Gone, NotFound, PreconditionFailed, RateLimited,
                                 Unavailable)
from integrations.rategate import RateGate

EVENTS = "GET /calendar/v3/calendars/<calendar_id>/events"
INSERT = "POST /calendar/v3/calendars/<calendar_id>/events"


GOOGLE_SEED = 11  # this module's own simulator (conftest `google_server`): it injects faults


@pytest.fixture
def client(google_server, google_state):
    return GoogleCalendarClient.from_settings(Settings(google_calendar_endpoint=google_server.url), num_retries=3,
                                              backoff_scale=0.001)


@pytest.fixture
def cal(client):
    return client.create_calendar("Termine AB", private_property=("kuerzel", "AB"))["id"]


def fault(google_server, **spec):
    requests.post(google_server.url + "/_sandbox/faults", json={"path": "/calendar/v3/*", **spec}).raise_for_status()


def google_fault(google_server, **spec):
    requests.post(google_server.url + "/_sandbox/google-faults", json=spec).raise_for_status()


def sim_calls(google_server) -> dict:
    return requests.get(google_server.url + "/_sandbox/calls").json()


def event(day: int, **extra) -> dict:
    return {"start": {"dateTime": f"2024-05-{day:02d}T10:00:00+02:00"},
            "end": {"dateTime": f"2024-05-{day:02d}T11:00:00+02:00"}, **extra}


# --- construction ---
def test_sandbox_endpoint_accepts_a_base_url_or_the_full_api_path():
    assert sandbox_endpoint("http://127.0.0.1:8083") == "http://127.0.0.1:8083/calendar/v3/"
    assert sandbox_endpoint("http://h:1/calendar/v3/") == "http://h:1/calendar/v3/"
    assert sandbox_endpoint("http://h:1/calendar/v3") == "http://h:1/calendar/v3/"


def test_real_mode_uses_the_service_account_delegated_to_the_subject(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = tmp_path / "sa.json"
    path.write_text(json.dumps({"type": "service_account", "project_id": "p", "private_key_id": "k",
                                "private_key": pem, "client_email": "sync@p.iam.gserviceaccount.com",
                                "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}))
    client = GoogleCalendarClient.from_settings(Settings(google_service_account_file=str(path)),
                                                subject_email="anna@kanzlei.example")
    creds = client._credentials
    assert isinstance(creds, service_account.Credentials)
    assert creds._subject == "anna@kanzlei.example"
    assert creds._scopes == ["https://www.googleapis.com/auth/calendar"]
    assert client._service._baseUrl == "https://www.googleapis.com/calendar/v3/"
    assert client.calls == 0  # nothing was sent: tokens are fetched on the first call
    with pytest.raises(ValueError, match="GOOGLE_SERVICE_ACCOUNT_FILE"):
        GoogleCalendarClient.from_settings(Settings())


# --- calendars ---
def test_calendars_are_created_found_by_marker_or_summary_and_deleted(client, google_state):
    made = client.create_calendar("Termine CD", "Kalender von CD", private_property=("kuerzel", "CD"))
    assert calendar_properties(made) == {"kuerzel": "CD"}
    assert made["description"] == "Kalender von CD\n" + calendar_marker("kuerzel", "CD")
    assert made["timeZone"] == "Europe/Berlin"
    assert client.find_calendar(private_property=("kuerzel", "CD"))["id"] == made["id"]
    assert client.find_calendar(summary="Termine CD")["id"] == made["id"]
    assert client.find_calendar(summary="Termine CD", private_property=("kuerzel", "XY")) is None
    assert client.find_calendar(private_property=("kuerzel", "C")) is None
    client.delete_calendar(made["id"])
    assert client.find_calendar(private_property=("kuerzel", "CD")) is None
    with pytest.raises(NotFound):
        client.delete_calendar(made["id"])


def test_list_calendars_pages_through_the_calendar_list(client, google_state):
    for n in range(260):
        google_state.insert_calendar({"summary": f"K{n}"})
    before = client.calls
    assert len(client.list_calendars()) == 261
    assert client.calls - before == 2


# --- events and sync ---
def test_list_events_pages_to_the_end_and_returns_the_sync_token(google_server, client, cal, google_state):
    for day in range(1, 31):
        google_state.insert_event(cal, event(day))
    events, token = client.list_events(cal, page_size=7)
    assert len({e["id"] for e in events}) == 30 and token
    assert client.calls_by_method["calendar.events.list"] == 5
    assert sim_calls(google_server)[EVENTS] == 5


def test_incremental_sync_returns_changes_including_deletions(client, cal, google_state):
    a = client.insert_event(cal, event(1, id="frnr0001", extendedProperties={"private": {"frNr": "1"}}))
    b = client.insert_event(cal, event(2, id="frnr0002"))
    _, token = client.list_events(cal)
    google_state.human_update(cal, a["id"], {"summary": "edited in Google"})
    client.delete_event(cal, b["id"])
    changes, token2 = client.list_events(cal, sync_token=token)
    assert {e["id"]: e["status"] for e in changes} == {"frnr0001": "confirmed", "frnr0002": "cancelled"}
    nothing, token3 = client.list_events(cal, sync_token=token2)
    assert nothing == [] and token3 not in (None, token2)


def test_time_window_and_private_property_filters(client, cal):
    client.insert_event(cal, event(1, extendedProperties={"private": {"frNr": "1"}}))
    client.insert_event(cal, event(20, extendedProperties={"private": {"frNr": "2"}}))
    berlin_may_10 = datetime(2024, 5, 10, tzinfo=timezone.utc)
    events, _ = client.list_events(cal, time_min=berlin_may_10, time_max="2024-06-01T00:00:00Z")
    assert [e["extendedProperties"]["private"]["frNr"] for e in events] == ["2"]
    events, _ = client.list_events(cal, private_property=("frNr", "1"))
    assert [e["extendedProperties"]["private"]["frNr"] for e in events] == ["1"]
    with pytest.raises(ValueError):
        client.list_events(cal, time_min=datetime(2024, 5, 10))  # naive datetimes are ambiguous


def test_arguments_google_forbids_with_a_sync_token_fail_before_any_call(client, cal):
    before = client.calls
    for kw in ({"time_min": "2024-01-01T00:00:00Z"}, {"private_property": ("frNr", "1")}, {"show_deleted": False}):
        with pytest.raises(ValueError):
            client.list_events(cal, sync_token="x", **kw)
    assert client.calls == before


# --- typed errors ---
def test_an_expired_sync_token_raises_gone_full_sync_required(google_server, client, cal):
    _, token = client.list_events(cal)
    requests.post(google_server.url + "/_sandbox/expire-sync-tokens", json={"calendarId": cal})
    with pytest.raises(Gone) as info:
        client.list_events(cal, sync_token=token)
    assert info.value.reason == "fullSyncRequired" and info.value.status == 410


def test_deleting_a_deleted_event_raises_gone_deleted(client, cal):
    ev = client.insert_event(cal, event(3))
    client.delete_event(cal, ev["id"])
    with pytest.raises(Gone) as info:
        client.delete_event(cal, ev["id"])
    assert info.value.reason == "deleted"
    assert client.get_event(cal, ev["id"])["status"] == "cancelled"


def test_a_stale_etag_raises_precondition_failed(client, cal, google_state):
    ev = client.insert_event(cal, event(4, summary="v1"))
    google_state.human_update(cal, ev["id"], {"summary": "human"})
    with pytest.raises(PreconditionFailed):
        client.update_event(cal, ev["id"], event(4, summary="v2"), etag=ev["etag"])
    with pytest.raises(PreconditionFailed):
        client.delete_event(cal, ev["id"], etag=ev["etag"])
    fresh = client.get_event(cal, ev["id"])
    assert client.update_event(cal, ev["id"], event(4, summary="v2"), etag=fresh["etag"])["summary"] == "v2"
    assert client.patch_event(cal, ev["id"], {"location": "Saal 3"})["location"] == "Saal 3"


def test_duplicate_invalid_and_missing_ids(client, cal):
    client.insert_event(cal, event(5, id="frnr0005"))
    with pytest.raises(Conflict) as info:
        client.insert_event(cal, event(5, id="frnr0005"))
    assert info.value.reason == "duplicate" and info.value.payload["error"]["code"] == 409
    with pytest.raises(BadRequest):
        client.insert_event(cal, event(5, id="FRNR-5"))
    with pytest.raises(NotFound):
        client.get_event(cal, "nosuchevent")


# --- retries and back-off ---
def test_a_500_once_is_retried_and_succeeds(google_server, client, cal):
    fault(google_server, status=500, times=1)
    started = time.monotonic()
    events, token = client.list_events(cal)
    assert events == [] and token
    assert time.monotonic() - started < 1.0
    assert sim_calls(google_server)[EVENTS] == 2 and client.calls_by_method["calendar.events.list"] == 2


def test_persistent_5xx_raises_unavailable_after_the_retries(google_server, client, cal):
    fault(google_server, status=503)
    started = time.monotonic()
    with pytest.raises(Unavailable) as info:
        client.get_event(cal, "whatever")
    assert info.value.reason == "backendError"
    assert time.monotonic() - started < 1.0  # unscaled, the library would sleep ~7 s on average
    assert sim_calls(google_server)["GET /calendar/v3/calendars/<calendar_id>/events/<event_id>"] == 4  # 1 + 3 retries


def test_rate_limit_403s_are_retried_other_403s_are_not(google_server, client, cal):
    google_fault(google_server, status=403, reason="rateLimitExceeded", times=2)
    assert client.list_events(cal)[0] == []
    assert sim_calls(google_server)[EVENTS] == 3
    google_fault(google_server, status=403, reason="userRateLimitExceeded")
    with pytest.raises(RateLimited) as info:
        client.list_events(cal)
    assert info.value.reason == "userRateLimitExceeded"
    requests.delete(google_server.url + "/_sandbox/google-faults")
    google_fault(google_server, status=403, reason="forbidden", times=1)
    before = sim_calls(google_server)[EVENTS]
    with pytest.raises(Forbidden):
        client.list_events(cal)
    assert sim_calls(google_server)[EVENTS] == before + 1


def test_429_raises_rate_limited_with_retry_after_and_pauses_the_shared_gate(google_server, google_state, redis_url):
    gate = RateGate(redis_url, "google_test", per_minute=1000)
    client = GoogleCalendarClient.from_settings(Settings(google_calendar_endpoint=google_server.url), num_retries=0,
                                                gate=gate)
    fault(google_server, status=429, retry_after=7)
    with pytest.raises(RateLimited) as info:
        client.list_calendars()
    assert info.value.retry_after == 7.0
    assert 6000 < redis.Redis.from_url(redis_url).pttl("rate_pause:google_test") <= 7000


def test_inserts_without_a_client_id_are_not_retried_with_one_they_are(google_server, client, cal, google_state):
    fault(google_server, status=500, times=1)
    with pytest.raises(Unavailable):
        client.insert_event(cal, event(6))
    assert sim_calls(google_server)[INSERT] == 1
    # The write happened but its answer was lost: the retry with the same id meets the first write.
    fault(google_server, status=500, times=1, after=True)
    with pytest.raises(Conflict):
        client.insert_event(cal, event(7, id="frnr0007"))
    assert sim_calls(google_server)[INSERT] == 3
    assert [e["id"] for e in google_state.events_of(cal)] == ["frnr0007"]


def test_an_unreachable_endpoint_raises_unavailable():
    client = GoogleCalendarClient.from_settings(Settings(google_calendar_endpoint="http://127.0.0.1:9"),
                                                num_retries=1, backoff_scale=0.001, timeout=2)
    with pytest.raises(Unavailable):
        client.list_calendars()
    assert client.calls == 2
