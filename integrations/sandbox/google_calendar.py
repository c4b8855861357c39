"""The Google Calendar API v3 simulator: the HTTP routes under `/calendar/v3/` and its `/_sandbox` extras.

Built on the sandbox kit (counters, request log, generic faults, reset). The
state and its rules live in `google_calendar_state` and `google_calendar_model`;
this module parses requests the way Google's front end does (query types,
`alt=json`, `If-Match`) and renders every error in Google's JSON shape
(`{"error": {"errors": [{domain, reason, message}], "code", "message"}}`),
including the errors the kit's fault injection produces.

Auth: the sandbox accepts anonymous calls (no `Authorization` header, as
google-auth's `AnonymousCredentials` sends) and any `Bearer` token; any other
`Authorization` scheme is a 401 `authError`. There is one user, whose primary
calendar id is `state.owner`; `primary` resolves to it.
"""
from __future__ import annotations

import fnmatch
import threading
from dataclasses import asdict, dataclass

from flask import Flask, jsonify, make_response, request

from integrations.sandbox import google_calendar_model as m
from integrations.sandbox.google_calendar_model import GoogleError
from integrations.sandbox.google_calendar_listing import ListQuery
from integrations.sandbox.google_calendar_state import GoogleCalendarState
from integrations.sandbox.kit import ADMIN_PREFIX, create_sandbox_app

API = "/calendar/v3"
EVENT_LIST_PARAMS = {"alwaysIncludeEmail", "calendarId", "eventTypes", "iCalUID", "maxAttendees", "maxResults",
                     "orderBy", "pageToken", "privateExtendedProperty", "q", "sharedExtendedProperty",
                     "showDeleted", "showHiddenInvitations", "singleEvents", "syncToken", "timeMax", "timeMin",
                     "timeZone", "updatedMin"}


@dataclass
class GoogleFault:
    """An injected error with a Google-shaped body (reason chosen by the test, e.g. userRateLimitExceeded)."""

    status: int
    path: str = f"{API}/*"
    method: str | None = None
    reason: str | None = None
    message: str | None = None
    times: int | None = None
    retry_after: int | None = None
    id: int = 0


class GoogleFaults:
    def __init__(self):
        self.lock = threading.Lock()
        self.items: list[GoogleFault] = []
        self._ids = 0

    def add(self, **spec) -> GoogleFault:
        with self.lock:
            self._ids += 1
            fault = GoogleFault(**spec, id=self._ids)
            self.items.append(fault)
            return fault

    def clear(self) -> None:
        with self.lock:
            self.items.clear()

    def take(self, method: str, path: str) -> GoogleFault | None:
        with self.lock:
            for fault in self.items:
                if fault.method and fault.method.upper() != method:
                    continue
                if not fnmatch.fnmatchcase(path, fault.path):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.items.remove(fault)
                return fault
        return None


def error_response(err: GoogleError, *, retry_after: int | None = None):
    resp = jsonify(err.body())
    resp.status_code = err.status
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    return resp


def _bool(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise m.invalid(f"Invalid value for: {name}", name)


def _int(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise m.invalid(f"Invalid value for: {name}", name) from None


def _time(name: str):
    raw = request.args.get(name)
    return m.parse_rfc3339(raw, name) if raw is not None else None


def _json_body() -> dict:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise m.bad_request("Parse Error", reason="parseError")
    return body


def list_query() -> ListQuery:
    """events.list parameters, typed and checked like the discovery document declares them."""
    order_by = request.args.get("orderBy")
    if order_by not in (None, "startTime", "updated"):
        raise m.invalid("Invalid value for: orderBy", "orderBy")
    return ListQuery(
        max_results=_int("maxResults", 250),
        page_token=request.args.get("pageToken"),
        sync_token=request.args.get("syncToken"),
        show_deleted=_bool("showDeleted"),
        single_events=bool(_bool("singleEvents")),
        time_min=_time("timeMin"),
        time_max=_time("timeMax"),
        private=m.parse_property_constraints(request.args.getlist("privateExtendedProperty"),
                                             "privateExtendedProperty"),
        shared=m.parse_property_constraints(request.args.getlist("sharedExtendedProperty"),
                                            "sharedExtendedProperty"),
        ical_uid=request.args.get("iCalUID"),
        text=request.args.get("q"),
        updated_min=_time("updatedMin"),
        order_by=order_by,
        given={k for k in request.args.keys() if k in EVENT_LIST_PARAMS},
    )


def _with_etag(resource: dict, status: int = 200):
    resp = make_response(jsonify(resource), status)
    resp.headers["ETag"] = resource["etag"]
    return resp


def create_google_calendar_app(*, seed: int = 1234) -> Flask:
    """The simulator app; its state is `app.extensions["google_calendar"]` (a `GoogleCalendarState`)."""
    app, kit = create_sandbox_app("google_calendar", __name__)
    kit.seed = seed
    state = GoogleCalendarState(seed=seed)
    faults = GoogleFaults()
    app.extensions["google_calendar"] = state
    app.extensions["google_calendar_faults"] = faults
    kit.info_provider = state.info
    kit.reset_hooks.append(state.reset)
    kit.reset_hooks.append(faults.clear)

    @app.errorhandler(GoogleError)
    def _google_error(err: GoogleError):
        return error_response(err)

    @app.errorhandler(404)
    def _no_route(_err):
        return error_response(m.not_found())

    @app.errorhandler(405)
    def _bad_method(_err):
        return error_response(GoogleError(405, "httpMethodNotAllowed", "Method Not Allowed"))

    @app.before_request
    def _front_door():
        if not request.path.startswith(API):
            return None
        fault = faults.take(request.method, request.path)
        if fault is not None:
            return error_response(m.fault_error(fault.status, fault.reason, fault.message),
                                  retry_after=fault.retry_after)
        auth = request.headers.get("Authorization")
        if auth is not None and not auth.startswith("Bearer "):
            return error_response(GoogleError(401, "authError", "Invalid Credentials", location="Authorization",
                                              location_type="header"))
        if request.args.get("alt", "json") != "json":
            return error_response(m.invalid("Invalid value for: alt", "alt"))
        return None

    def _google_shape_for_kit_faults(response):
        # The kit's own status faults answer {"error": "injected fault"}; make them look like Google's.
        if (request.path.startswith(API) and response.status_code >= 400
                and response.headers.get("X-Status-Reason") == "Injected fault"):
            replaced = error_response(m.fault_error(response.status_code),
                                      retry_after=response.headers.get("Retry-After"))
            return replaced
        return response

    # Registered first in the list so that it runs last, after the kit's after-request faults.
    app.after_request_funcs.setdefault(None, []).insert(0, _google_shape_for_kit_faults)

    # --- calendars ---
    @app.post(f"{API}/calendars")
    def calendars_insert():
        return jsonify(state.insert_calendar(_json_body()))

    @app.get(f"{API}/calendars/<calendar_id>")
    def calendars_get(calendar_id):
        return jsonify(state.get_calendar(calendar_id))

    @app.delete(f"{API}/calendars/<calendar_id>")
    def calendars_delete(calendar_id):
        state.delete_calendar(calendar_id)
        return "", 204

    @app.get(f"{API}/users/me/calendarList")
    def calendar_list():
        return jsonify(state.calendar_list(max_results=_int("maxResults", 100),
                                           page_token=request.args.get("pageToken")))

    @app.get(f"{API}/users/me/calendarList/<calendar_id>")
    def calendar_list_get(calendar_id):
        cid = state.get_calendar(calendar_id)["id"]
        listing = state.calendar_list(max_results=250)
        for entry in listing["items"]:
            if entry["id"] == cid:
                return jsonify(entry)
        raise m.not_found()

    # --- events ---
    @app.get(f"{API}/calendars/<calendar_id>/events")
    def events_list(calendar_id):
        return jsonify(state.list_events(calendar_id, list_query()))

    @app.post(f"{API}/calendars/<calendar_id>/events")
    def events_insert(calendar_id):
        return _with_etag(state.insert_event(calendar_id, _json_body()))

    @app.get(f"{API}/calendars/<calendar_id>/events/<event_id>")
    def events_get(calendar_id, event_id):
        return _with_etag(state.get_event(calendar_id, event_id))

    @app.put(f"{API}/calendars/<calendar_id>/events/<event_id>")
    def events_update(calendar_id, event_id):
        return _with_etag(state.update_event(calendar_id, event_id, _json_body(),
                                             if_match=request.headers.get("If-Match")))

    @app.patch(f"{API}/calendars/<calendar_id>/events/<event_id>")
    def events_patch(calendar_id, event_id):
        return _with_etag(state.patch_event(calendar_id, event_id, _json_body(),
                                            if_match=request.headers.get("If-Match")))

    @app.delete(f"{API}/calendars/<calendar_id>/events/<event_id>")
    def events_delete(calendar_id, event_id):
        state.delete_event(calendar_id, event_id, if_match=request.headers.get("If-Match"))
        return "", 204

    _admin_routes(app, state, faults)
    return app


def _admin_routes(app: Flask, state: GoogleCalendarState, faults: GoogleFaults) -> None:
    """The simulator's own `/_sandbox` routes (the kit provides info/reset/calls/log/faults/config)."""

    @app.post(f"{ADMIN_PREFIX}/seed")
    def _seed():
        spec = request.get_json(force=True, silent=True) or {}
        made = state.seed_demo(calendars=int(spec.get("calendars", 3)),
                               events_per_calendar=int(spec.get("events_per_calendar", 6)))
        return jsonify({"calendars": made})

    @app.post(f"{ADMIN_PREFIX}/expire-sync-tokens")
    def _expire():
        spec = request.get_json(force=True, silent=True) or {}
        return jsonify({"expired": state.expire_sync_tokens(spec.get("calendarId"))})

    @app.get(f"{ADMIN_PREFIX}/state")
    def _dump():
        return jsonify(state.dump_state())

    @app.put(f"{ADMIN_PREFIX}/state")
    def _load():
        state.load_state(_json_body())
        return jsonify(state.info())

    @app.get(f"{ADMIN_PREFIX}/calendars/<calendar_id>/events")
    def _all_events(calendar_id):
        deleted = request.args.get("deleted", "false").lower() in ("1", "true")
        return jsonify(state.events_of(calendar_id, include_deleted=deleted))

    @app.post(f"{ADMIN_PREFIX}/human/calendars/<calendar_id>/events")
    def _human_insert(calendar_id):
        return jsonify(state.human_insert(calendar_id, _json_body()))

    @app.patch(f"{ADMIN_PREFIX}/human/calendars/<calendar_id>/events/<event_id>")
    def _human_patch(calendar_id, event_id):
        return jsonify(state.human_update(calendar_id, event_id, _json_body()))

    @app.delete(f"{ADMIN_PREFIX}/human/calendars/<calendar_id>/events/<event_id>")
    def _human_delete(calendar_id, event_id):
        state.human_delete(calendar_id, event_id)
        return "", 204

    @app.get(f"{ADMIN_PREFIX}/google-faults")
    def _google_faults():
        with faults.lock:
            return jsonify([asdict(f) for f in faults.items])

    @app.post(f"{ADMIN_PREFIX}/google-faults")
    def _add_google_fault():
        spec = request.get_json(force=True, silent=True)
        if not isinstance(spec, dict) or not isinstance(spec.get("status"), int):
            return jsonify({"error": "body must be a JSON object with an integer status"}), 400
        try:
            fault = faults.add(**{k: v for k, v in spec.items() if k != "id"})
        except TypeError as exc:
            return jsonify({"error": str(exc)}), 400
        return jsonify(asdict(fault))

    @app.delete(f"{ADMIN_PREFIX}/google-faults")
    def _clear_google_faults():
        faults.clear()
        return jsonify({"cleared": True})
