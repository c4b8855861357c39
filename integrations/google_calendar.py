"""The product's Google Calendar client: calendars and events of one user, on google-api-python-client.

Real API: a service account with domain-wide delegation (`with_subject(email)`),
scope `calendar`. Sandbox: anonymous credentials and the simulator's endpoint.
`GoogleCalendarClient.from_settings()` decides (a `GOOGLE_CALENDAR_ENDPOINT`
means the sandbox or another endpoint).

Failures surface as `integrations.http` exceptions, never as status codes:
410 -> `Gone` (`.reason` is `fullSyncRequired` for an expired sync token,
`deleted` for an event deleted before), 412 -> `PreconditionFailed`,
409 -> `Conflict`, 404 -> `NotFound`, rate limits (403 `rateLimitExceeded` /
`userRateLimitExceeded`, 429) -> `RateLimited`, 5xx and transport errors ->
`Unavailable`. Rate limits and 5xx are retried first with the library's own
exponential back-off (`execute(num_retries=N)`); a POST that creates something
without a client-chosen id is never retried (a lost answer could duplicate it).

Calendars have no `extendedProperties` in the real API (only events do), so a
calendar the product owns is marked by a line `bitbylaw:<key>=<value>` in its
description; `find_calendar(private_property=(key, value))` looks for it.

One client per thread: httplib2 connections are not thread-safe.
"""
from __future__ import annotations

import collections
import json
import random
from datetime import datetime, timezone

import httplib2
from google.auth.credentials import AnonymousCredentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest

from integrations.errors import (ApiError, AuthError, BadRequest, Conflict, Forbidden, Gone, NotFound,
                                 PreconditionFailed, RateLimited, Unavailable)
from integrations.http import parse_retry_after

SYSTEM = "google_calendar"
SCOPES = ("https://www.googleapis.com/auth/calendar",)
MARKER_PREFIX = "bitbylaw:"
RATE_LIMIT_REASONS = ("rateLimitExceeded", "userRateLimitExceeded")
FORBIDDEN_WITH_SYNC_TOKEN = ("time_min", "time_max", "private_property")


def calendar_marker(key: str, value: str) -> str:
    """The description line that marks a calendar as the product's (calendars have no extendedProperties)."""
    return f"{MARKER_PREFIX}{key}={value}"


def calendar_properties(calendar: dict) -> dict[str, str]:
    """The `bitbylaw:` marker lines of a calendar's description, as a dict."""
    out = {}
    for line in (calendar.get("description") or "").splitlines():
        line = line.strip()
        if line.startswith(MARKER_PREFIX):
            key, sep, value = line[len(MARKER_PREFIX):].partition("=")
            if sep:
                out[key] = value
    return out


def sandbox_endpoint(url: str) -> str:
    """The `api_endpoint` for a base URL: google-api-python-client wants it to include `/calendar/v3/`."""
    url = url.rstrip("/")
    if not url.endswith("/calendar/v3"):
        url += "/calendar/v3"
    return url + "/"


def rfc3339(moment: datetime | str) -> str:
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        raise ValueError("time bounds must be timezone-aware datetimes")
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def error_from_http(exc: HttpError, method_id: str) -> ApiError:
    """Map google-api-python-client's `HttpError` to the exception a caller can branch on."""
    status = exc.resp.status
    reason = ""
    payload = None
    try:
        payload = json.loads(exc.content.decode("utf-8"))
        reason = payload["error"]["errors"][0].get("reason", "")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        pass
    message = f"{SYSTEM}: {method_id} -> {status}" + (f" ({reason})" if reason else "")
    kw = {"status": status, "reason": reason, "system": SYSTEM}
    retry_after = parse_retry_after(exc.resp.get("retry-after"))
    if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS):
        return RateLimited(message, retry_after=retry_after, **kw)
    if status >= 500:
        return Unavailable(message, **kw)
    if status == 409:
        return Conflict(message, payload=payload, **kw)
    cls = {400: BadRequest, 401: AuthError, 403: Forbidden, 404: NotFound, 410: Gone,
           412: PreconditionFailed}.get(status, BadRequest)
    return cls(message, **kw)


class _CountingHttp:
    """Wraps the authorized http object: counts every HTTP request (retries included), waits for the
    shared rate gate before each, and spreads a 429's `Retry-After` to every process through the gate."""

    def __init__(self, inner, client: "GoogleCalendarClient"):
        self._inner = inner
        self._client = client

    def request(self, uri, method="GET", *args, **kwargs):
        client = self._client
        if client.gate is not None:
            client.gate.wait()
        client.calls += 1
        client.calls_by_method[client._current_method] += 1
        resp, content = self._inner.request(uri, method, *args, **kwargs)
        if resp.status == 429 and client.gate is not None:
            seconds = parse_retry_after(resp.get("retry-after"))
            if seconds:
                client.gate.pause(seconds)
        return resp, content

    def __getattr__(self, name):
        return getattr(self._inner, name)


class GoogleCalendarClient:
    """Calendars and events of one Google user (the delegated subject, or the sandbox's user)."""

    def __init__(self, credentials, *, api_endpoint: str | None = None, num_retries: int = 4,
                 backoff_scale: float = 1.0, timeout: float = 30.0, gate=None):
        """`backoff_scale` multiplies the library's back-off (random() * 2**attempt seconds); tests use 0.001.
        `gate` is an optional `integrations.rategate.RateGate` shared by every worker process."""
        self.num_retries = num_retries
        self.backoff_scale = backoff_scale
        self.gate = gate
        self.calls = 0
        self.calls_by_method: collections.Counter = collections.Counter()
        self._current_method = "?"
        self._credentials = credentials
        http = _CountingHttp(AuthorizedHttp(credentials, http=httplib2.Http(timeout=timeout)), self)
        options = {"api_endpoint": api_endpoint} if api_endpoint else None
        self._service = build("calendar", "v3", http=http, client_options=options, static_discovery=True,
                              cache_discovery=False, requestBuilder=self._request)

    @classmethod
    def from_settings(cls, settings, subject_email: str | None = None, **kw) -> "GoogleCalendarClient":
        """Sandbox/endpoint mode when `settings.google_calendar_endpoint` is set, else the real API with the
        service account in `settings.google_service_account_file`, delegated to `subject_email`."""
        if settings.google_calendar_endpoint:
            return cls(AnonymousCredentials(), api_endpoint=sandbox_endpoint(settings.google_calendar_endpoint),
                       **kw)
        if not settings.google_service_account_file:
            raise ValueError("GOOGLE_SERVICE_ACCOUNT_FILE: required when GOOGLE_CALENDAR_ENDPOINT is not set")
        from google.oauth2 import service_account

        credentials = service_account.Credentials.from_service_account_file(
            settings.google_service_account_file, scopes=list(SCOPES))
        if subject_email:
            credentials = credentials.with_subject(subject_email)
        return cls(credentials, **kw)

    # --- plumbing ---
    def _request(self, *args, **kwargs) -> HttpRequest:
        request = HttpRequest(*args, **kwargs)
        scale = self.backoff_scale
        request._rand = lambda: random.random() * scale  # the library sleeps _rand() * 2**attempt
        return request

    def _execute(self, request: HttpRequest, *, retry: bool = True, headers: dict | None = None):
        if headers:
            request.headers.update(headers)
        self._current_method = request.methodId or "?"
        try:
            return request.execute(num_retries=self.num_retries if retry else 0)
        except HttpError as exc:
            raise error_from_http(exc, self._current_method) from None
        except (OSError, httplib2.HttpLib2Error) as exc:
            raise Unavailable(f"{SYSTEM}: {self._current_method} failed ({type(exc).__name__})",
                              system=SYSTEM) from exc

    # --- calendars ---
    def list_calendars(self) -> list[dict]:
        """Every entry of the user's calendar list (all pages)."""
        items, page_token = [], None
        while True:
            page = self._execute(self._service.calendarList().list(maxResults=250, pageToken=page_token))
            items.extend(page.get("items", []))
            page_token = page.get("nextPageToken")
            if not page_token:
                return items

    def find_calendar(self, *, summary: str | None = None,
                      private_property: tuple[str, str] | None = None) -> dict | None:
        """The first calendar (in calendar-list order) matching all given criteria, or None.

        `private_property=(key, value)` matches the `bitbylaw:key=value` line of the
        description (see `calendar_marker`); `summary` matches the title exactly.
        """
        if summary is None and private_property is None:
            raise ValueError("find_calendar needs summary or private_property")
        for calendar in self.list_calendars():
            if summary is not None and calendar.get("summary") != summary:
                continue
            if private_property is not None:
                key, value = private_property
                if calendar_properties(calendar).get(key) != value:
                    continue
            return calendar
        return None

    def create_calendar(self, summary: str, description: str = "", *, time_zone: str = "Europe/Berlin",
                        private_property: tuple[str, str] | None = None) -> dict:
        """A new secondary calendar; `private_property` is written as a marker line into the description.
        Not retried: calendars get server-chosen ids, so a retry after a lost answer could make two."""
        lines = [description] if description else []
        if private_property is not None:
            lines.append(calendar_marker(*private_property))
        body = {"summary": summary, "timeZone": time_zone}
        if lines:
            body["description"] = "\n".join(lines)
        return self._execute(self._service.calendars().insert(body=body), retry=False)

    def delete_calendar(self, calendar_id: str) -> None:
        self._execute(self._service.calendars().delete(calendarId=calendar_id))

    # --- events ---
    def list_events(self, calendar_id: str, *, sync_token: str | None = None, time_min=None, time_max=None,
                    private_property: tuple[str, str] | None = None, show_deleted: bool | None = None,
                    single_events: bool = False, page_size: int = 2500) -> tuple[list[dict], str | None]:
        """All events of a full or incremental listing, paging to the end, and the `nextSyncToken`.

        With `sync_token` the result holds only changes since that token, deleted
        events included (`status: cancelled`, often nothing but the id); Google
        forbids time bounds and property filters then (ValueError here). A
        stale token raises `Gone` with `.reason == "fullSyncRequired"`: drop
        the token and list again without it.
        """
        params: dict = {"calendarId": calendar_id, "maxResults": page_size}
        if sync_token is not None:
            given = [n for n, v in zip(FORBIDDEN_WITH_SYNC_TOKEN, (time_min, time_max, private_property)) if v]
            if given:
                raise ValueError(f"{given[0]} cannot be combined with sync_token (Google answers 400)")
            if show_deleted is False:
                raise ValueError("show_deleted=False cannot be combined with sync_token")
            params["syncToken"] = sync_token
        if time_min is not None:
            params["timeMin"] = rfc3339(time_min)
        if time_max is not None:
            params["timeMax"] = rfc3339(time_max)
        if private_property is not None:
            params["privateExtendedProperty"] = f"{private_property[0]}={private_property[1]}"
        if show_deleted is not None:
            params["showDeleted"] = show_deleted
        if single_events:
            params["singleEvents"] = True
        events, page_token = [], None
        while True:
            page = self._execute(self._service.events().list(**params, pageToken=page_token))
            events.extend(page.get("items", []))
            page_token = page.get("nextPageToken")
            if not page_token:
                return events, page.get("nextSyncToken")

    def get_event(self, calendar_id: str, event_id: str) -> dict:
        """The event; a deleted one is still returned, with `status: cancelled`."""
        return self._execute(self._service.events().get(calendarId=calendar_id, eventId=event_id))

    def insert_event(self, calendar_id: str, body: dict) -> dict:
        """Create an event. With a client-chosen `id` (base32hex, 5-1024 chars) the call is retried safely:
        a repeat after a lost answer raises `Conflict` (reason `duplicate`) instead of creating a twin.
        Ids are never reused, even after deletion: restore a deleted event with `update_event`."""
        return self._execute(self._service.events().insert(calendarId=calendar_id, body=body),
                             retry="id" in body)

    def update_event(self, calendar_id: str, event_id: str, body: dict, etag: str | None = None) -> dict:
        """Replace the event (PUT). With `etag`, `If-Match` makes a concurrent change a `PreconditionFailed`."""
        request = self._service.events().update(calendarId=calendar_id, eventId=event_id, body=body)
        return self._execute(request, headers={"If-Match": etag} if etag else None)

    def patch_event(self, calendar_id: str, event_id: str, body: dict, etag: str | None = None) -> dict:
        """Change only the given fields (PATCH; `None` removes a field or property)."""
        request = self._service.events().patch(calendarId=calendar_id, eventId=event_id, body=body)
        return self._execute(request, headers={"If-Match": etag} if etag else None)

    def delete_event(self, calendar_id: str, event_id: str, etag: str | None = None) -> None:
        """Delete (cancel) the event. Deleting it again raises `Gone` with `.reason == "deleted"`."""
        request = self._service.events().delete(calendarId=calendar_id, eventId=event_id)
        self._execute(request, headers={"If-Match": etag} if etag else None)
