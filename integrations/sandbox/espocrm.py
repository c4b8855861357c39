"""The EspoCRM simulator: a stateful HTTP server with the real API's paths, auth and quirks (SPEC §3.1, RESEARCH §G).

`create_espocrm_app()` builds it on the shared sandbox kit. The API under `/api/v1`:
- `GET|POST CBeteiligte`, `GET|PUT|PATCH|DELETE CBeteiligte/{id}`, `GET CBeteiligte/{id}/stream`;
- `GET|POST CAdresse`, `GET|PUT|PATCH|DELETE CAdresse/{id}`, `GET CBeteiligte/{id}/adressen` (`espocrm_adressen`);
- `GET|POST Webhook`, `GET|DELETE Webhook/{id}`;
- `GET|POST Note`, `GET Note/{id}`; `GET Notification` (own), `POST Notification` -> 403; `GET App/user`;
- `GET User`, `GET User/{id}` (no keys).
Auth: `X-Api-Key`, or `X-Hmac-Authorization`; 401 without; more than 10
failures from one address within 60 s -> 403 for that address.
State lives in `app.extensions["espocrm"]` (an `EspoState`). The admin API
under `/_sandbox/` and every quirk are documented in docs/sandbox-espocrm.md.
"""
from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import socket
from urllib.parse import parse_qsl

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from integrations.sandbox.espocrm_adressen import register_adresse_routes
from integrations.sandbox.espocrm_seed import seed_records
from integrations.sandbox.espocrm_fields import ENTITY, FIELDS, NOTE_FIELDS, EspoError
from integrations.sandbox.espocrm_state import EspoState
from integrations.sandbox.espocrm_where import MAX_SIZE, SearchError, compile_where, order_records, search_params
from integrations.sandbox.kit import ADMIN_PREFIX, create_sandbox_app

API = "/api/v1"
LIST_HIDDEN = ("emailAddressData", "phoneNumberData")


def _error(status: int, reason: str, body=None) -> Response:
    """An EspoCRM error: the status, the reason in `X-Status-Reason`, an empty body unless one is defined."""
    resp = jsonify(body) if body is not None else Response("", mimetype="application/json")
    resp.status_code = status
    resp.headers["X-Status-Reason"] = reason
    return resp


def _json_body():
    data = request.get_json(silent=True, force=True)
    if data is None:
        raise EspoError(400, "Bad request: body is not JSON")
    return data


def _query_pairs() -> list[tuple[str, str]]:
    return parse_qsl(request.query_string.decode("utf-8", "replace"), keep_blank_values=True)


def _search(records: list[dict], field_types: dict[str, str], *, default_order=("createdAt", "desc")) -> dict:
    """Apply where/order/offset/maxSize/select of the current request to `records`."""
    try:
        params = search_params(_query_pairs())
        if params["maxSize"] > MAX_SIZE:
            raise EspoError(403, f"Max size should not exceed {MAX_SIZE}. Use offset and limit.")
        matches_where = compile_where(params["where"], field_types)
        matches = [r for r in records if matches_where(r)]
        order_by = params["orderBy"] or default_order[0]
        descending = (params["order"] or ("asc" if params["orderBy"] else default_order[1])) == "desc"
        matches = order_records(matches, order_by, descending, field_types)
    except SearchError as exc:
        raise EspoError(400, str(exc)) from None
    page = matches[params["offset"]: params["offset"] + params["maxSize"]]
    select = params["select"]
    items = []
    for record in page:
        item = {k: v for k, v in record.items() if k not in LIST_HIDDEN}
        if select:
            item = {k: v for k, v in item.items() if k == "id" or k in select}
        items.append(item)
    return {"total": len(matches), "list": items}


USER_FIELDS = {"id": "id", "userName": "varchar", "name": "varchar", "type": "varchar", "isActive": "bool"}


def _public_user(user: dict) -> dict:
    """A User record as the REST API shows it (no keys)."""
    return {"id": user["id"], "userName": user["userName"], "name": user["name"],
            "type": "api" if user["integration"] else "regular", "isActive": True}


def _hmac_user(state: EspoState, header: str):
    """The user an `X-Hmac-Authorization` header proves, or None."""
    try:
        decoded = base64.b64decode(header, validate=True)
    except (binascii.Error, ValueError):
        return None
    key, sep, proof = decoded.partition(b":")
    if not sep:
        return None
    user = next((u for u in state.users.values() if u["apiKey"].encode() == key), None)
    if user is None:
        return None
    signed = f"{request.method} /{request.path[len(API) + 1:]}".encode()
    digest = hmac.new(user["secretKey"].encode(), signed, hashlib.sha256)
    if hmac.compare_digest(proof, digest.hexdigest().encode()) or hmac.compare_digest(proof, digest.digest()):
        return user
    return None


def create_espocrm_app(*, webhook_interval: float = 2.0, optimistic_concurrency: bool = True, seed: int = 1234,
                       concurrency_rule: str = "espocrm") -> Flask:
    """A fresh simulator. `webhook_interval` 0 disables the background webhook job (flush by hand)."""
    app, kit = create_sandbox_app("espocrm", __name__)
    app.json.sort_keys = False
    state = EspoState(webhook_interval=webhook_interval, optimistic_concurrency=optimistic_concurrency,
                      concurrency_rule=concurrency_rule, seed=seed)
    kit.seed = seed
    app.extensions["espocrm"] = state
    kit.reset_hooks.append(state.reset)
    kit.info_provider = lambda: {
        "api_path": API, "entity": ENTITY,
        "integration_user": {k: state.integration_user[k] for k in ("id", "userName", "apiKey", "secretKey")},
        "users": [{k: u[k] for k in ("id", "userName", "name", "apiKey", "secretKey", "integration")}
                  for u in state.users.values()],
        "optimistic_concurrency": state.optimistic_concurrency, "concurrency_rule": state.concurrency_rule,
        "webhooks": _hook_config(),
    }

    def _hook_config() -> dict:
        hooks = state.hooks
        return {name: getattr(hooks, name) for name in ("interval", "retry_interval", "batch_size",
                                                        "event_portion_size", "max_attempts", "timeout")}

    @app.post("/_sandbox/espocrm-settings")
    def espocrm_settings():
        """EspoCRM's own settings the simulator can switch (until reset): `phoneNumberInternational`, and
        `sharedPhoneNumberTypes` (a number's type shared by every record, as the real EspoCRM stores it)."""
        data = request.get_json(force=True, silent=True) or {}
        if "phoneNumberInternational" in data:
            state.phone_number_international = bool(data["phoneNumberInternational"])
        if "sharedPhoneNumberTypes" in data:  # not an EspoCRM setting: how the real one always behaves
            state.shared_phone_types = bool(data["sharedPhoneNumberTypes"])
        return jsonify({"phoneNumberInternational": state.phone_number_international,
                        "sharedPhoneNumberTypes": state.shared_phone_types})

    @app.errorhandler(EspoError)
    def _espo_error(exc: EspoError):
        return _error(exc.status, exc.reason, exc.body)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return _error(exc.code or 500, exc.name)

    @app.errorhandler(Exception)
    def _internal(exc: Exception):
        if isinstance(exc, ConnectionResetError):
            # The kit's injected reset closes a socket object that werkzeug still holds through its
            # file objects, so the fd stays open and a 500 would still go out; shut it down for real.
            sock = request.environ.get("werkzeug.socket")
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            raise exc
        app.logger.exception("espocrm sandbox: internal error")
        return _error(500, "Internal Server Error")

    @app.before_request
    def _authenticate():
        if not request.path.startswith(API + "/"):
            return None
        address = request.remote_addr or "?"
        if state.auth_blocked(address):
            return _error(403, "Max failed authentication attempts exceeded")
        user = None
        key = request.headers.get("X-Api-Key")
        if key:
            user = next((u for u in state.users.values() if hmac.compare_digest(u["apiKey"], key)), None)
        elif request.headers.get("X-Hmac-Authorization"):
            user = _hmac_user(state, request.headers["X-Hmac-Authorization"])
        if user is None:
            state.note_auth_failure(address)
            return _error(401, "Unauthorized")
        g.espo_user = user
        g.sandbox_user = user["userName"]
        return None

    # ---------------------------------------------------------------- CBeteiligte
    @app.get(f"{API}/{ENTITY}")
    def list_beteiligte():
        return jsonify(_search(state.all_records(), FIELDS))

    @app.post(f"{API}/{ENTITY}")
    def create_beteiligte():
        return jsonify(state.save(None, _json_body(), g.espo_user))

    @app.get(f"{API}/{ENTITY}/<record_id>")
    def get_beteiligte(record_id):
        return jsonify(state.get(record_id))

    @app.route(f"{API}/{ENTITY}/<record_id>", methods=["PUT", "PATCH"])
    def update_beteiligte(record_id):
        header = request.headers.get("X-Version-Number")
        version = None
        if header not in (None, ""):
            try:
                version = int(header)
            except ValueError:
                raise EspoError(400, "Bad X-Version-Number") from None
        return jsonify(state.save(record_id, _json_body(), g.espo_user, version_number=version))

    @app.delete(f"{API}/{ENTITY}/<record_id>")
    def delete_beteiligte(record_id):
        state.delete(record_id, g.espo_user)
        return jsonify(True)

    @app.get(f"{API}/{ENTITY}/<record_id>/stream")
    def stream(record_id):
        state.get(record_id)
        notes = [n for n in state.all_notes() if n["parentType"] == ENTITY and n["parentId"] == record_id]
        return jsonify(_search(notes, NOTE_FIELDS, default_order=("createdAt", "desc")))

    # ---------------------------------------------------------------- Webhook, Note, Notification
    @app.post(f"{API}/Webhook")
    def subscribe():
        data = _json_body()
        if not isinstance(data, dict):
            raise EspoError(400, "Bad request: body must be a JSON object")
        try:
            return jsonify(state.hooks.subscribe(data.get("event"), data.get("url"), g.espo_user,
                                                 skip_own=bool(data.get("skipOwn"))))
        except ValueError as exc:
            raise EspoError(400, str(exc)) from None

    @app.get(f"{API}/Webhook")
    def list_webhooks():
        own = [w for w in state.hooks.list() if w["userId"] == g.espo_user["id"]]
        return jsonify({"total": len(own), "list": own})

    @app.get(f"{API}/Webhook/<webhook_id>")
    def get_webhook(webhook_id):
        hook = next((w for w in state.hooks.list() if w["id"] == webhook_id), None)
        if hook is None:
            raise EspoError(404, "Not Found")
        return jsonify(hook)

    @app.delete(f"{API}/Webhook/<webhook_id>")
    def delete_webhook(webhook_id):
        if not state.hooks.delete(webhook_id):
            raise EspoError(404, "Not Found")
        return jsonify(True)

    @app.post(f"{API}/Note")
    def create_note():
        return jsonify(state.create_note(_json_body(), g.espo_user))

    @app.get(f"{API}/Note")
    def list_notes():
        return jsonify(_search(state.all_notes(), NOTE_FIELDS))

    @app.get(f"{API}/Note/<note_id>")
    def get_note(note_id):
        note = next((n for n in state.all_notes() if n["id"] == note_id), None)
        if note is None:
            raise EspoError(404, "Not Found")
        return jsonify(note)

    @app.post(f"{API}/Notification")
    def create_notification():
        raise EspoError(403, "No create access")

    @app.get(f"{API}/Notification")
    def list_notifications():
        me = g.espo_user
        # The real shape (EspoCRM 9.2.7): the note's id in `data.noteId` and `relatedId`, the note in `noteData`;
        # newest first. Only mentions are simulated (the real server also notifies of stream updates).
        mine = [{"id": "n" + n["id"], "type": "MentionInPost", "data": {"noteId": n["id"]}, "noteData": n,
                 "relatedType": "Note", "relatedId": n["id"], "relatedParentType": None, "relatedParentId": None,
                 "read": False, "createdAt": n["createdAt"], "userId": me["id"], "userName": me["name"]}
                for n in reversed(state.all_notes())
                if "@" + me["userName"] in (n.get("data") or {}).get("mentions", {}) and n["createdById"] != me["id"]]  # EspoCRM does not notify the poster of their own mention
        return jsonify({"total": len(mine), "list": mine})

    @app.get(f"{API}/User")
    def list_users():
        return jsonify(_search([_public_user(u) for u in state.users.values()], USER_FIELDS,
                               default_order=("userName", "asc")))

    @app.get(f"{API}/User/<user_id>")
    def get_user(user_id):
        user = state.users.get(user_id)
        if user is None:
            raise EspoError(404, "Not Found")
        return jsonify(_public_user(user))

    @app.get(f"{API}/App/user")
    def app_user():
        me = g.espo_user
        return jsonify({"user": {"id": me["id"], "userName": me["userName"], "name": me["name"],
                                 "type": "api" if me["integration"] else "regular"}})

    @app.get(f"{API}/Settings")
    def settings():
        """The part of EspoCRM's settings any user reads (the real answer has ~150 more)."""
        return jsonify({"phoneNumberInternational": state.phone_number_international, "phoneNumberExtensions": False,
                        "phoneNumberMaxCount": 10, "emailAddressMaxCount": 10, "timeZone": "UTC"})

    from integrations.sandbox import espocrm_crm

    crm = espocrm_crm.CrmStore(state)
    app.extensions["espocrm_crm"] = crm
    kit.reset_hooks.append(crm.reset)
    state.extra_parents = crm.exists
    espocrm_crm.register(app, state, crm)
    register_adresse_routes(app, state, API, ADMIN_PREFIX, _search, _json_body)

    @app.route(f"{API}/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def unknown(rest):
        raise EspoError(404, "Not Found")

    _admin_routes(app, state)
    return app


def _admin_routes(app: Flask, state: EspoState) -> None:
    """`/_sandbox/*` routes specific to EspoCRM (the kit adds info, reset, calls, log, faults, config)."""

    def _user_param() -> str:
        return request.args.get("user", "alice")

    @app.post(f"{ADMIN_PREFIX}/seed")
    def seed():
        spec = request.get_json(silent=True, force=True) or {}
        status = spec.get("status", "pending_sync")
        try:
            count = int(spec.get("count", 10))
            created = seed_records(state, count, status=status, seed=spec.get("seed"),
                                   betnr_start=spec.get("betnr_start"),
                                   assigned_user=spec.get("assigned_user", "alice"))
        except (TypeError, ValueError) as exc:
            raise EspoError(400, f"Bad seed request: {exc}") from None
        return jsonify({"created": len(created), "records": created})

    @app.post(f"{ADMIN_PREFIX}/human")
    def human_create():
        return jsonify(state.human_create(_json_body(), user=_user_param()))

    @app.route(f"{ADMIN_PREFIX}/human/<record_id>", methods=["PUT", "PATCH"])
    def human_update(record_id):
        return jsonify(state.human_update(record_id, _json_body(), user=_user_param()))

    @app.delete(f"{ADMIN_PREFIX}/human/<record_id>")
    def human_delete(record_id):
        state.human_delete(record_id, user=_user_param())
        return jsonify(True)

    @app.get(f"{ADMIN_PREFIX}/records")
    def records():
        return jsonify(state.all_records())

    @app.get(f"{ADMIN_PREFIX}/records/<record_id>")
    def record(record_id):
        data = state.get(record_id)
        with state.lock:
            data["_fieldVersions"] = copy.deepcopy(state.field_versions.get(record_id, {}))
        return jsonify(data)

    @app.get(f"{ADMIN_PREFIX}/notes")
    def notes():
        return jsonify(state.all_notes())

    @app.get(f"{ADMIN_PREFIX}/webhooks")
    def webhooks():
        hooks = state.hooks
        with hooks.lock:
            deliveries = list(hooks.deliveries)
        return jsonify({"subscriptions": hooks.list(), "pending": hooks.pending(), "deliveries": deliveries})

    @app.post(f"{ADMIN_PREFIX}/webhooks/flush")
    def flush():
        return jsonify(state.flush_webhooks())

    @app.post(f"{ADMIN_PREFIX}/webhooks/config")
    def webhook_config():
        spec = request.get_json(silent=True, force=True) or {}
        hooks = state.hooks
        for name in ("interval", "retry_interval", "timeout", "connect_timeout"):
            if name in spec:
                setattr(hooks, name, float(spec[name]))
        for name in ("batch_size", "event_portion_size", "portion_size", "max_attempts"):
            if name in spec:
                setattr(hooks, name, int(spec[name]))
        if hooks.webhooks:
            hooks.ensure_worker()
        return jsonify({name: getattr(hooks, name) for name in (
            "interval", "retry_interval", "timeout", "connect_timeout", "batch_size", "event_portion_size",
            "portion_size", "max_attempts")})

    @app.route(f"{ADMIN_PREFIX}/clock", methods=["GET", "POST"])
    def clock():
        if request.method == "POST":
            spec = request.get_json(silent=True, force=True) or {}
            with state.lock:
                if "offset_s" in spec:
                    state.clock_offset = float(spec["offset_s"])
                if "advance_s" in spec:
                    state.clock_offset += float(spec["advance_s"])
        return jsonify({"now": state.now_string(), "offset_s": state.clock_offset})
