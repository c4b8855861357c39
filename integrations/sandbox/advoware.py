"""The Advoware simulator: a stateful HTTP server with the real API's paths, auth and quirks (SPEC §3.2).

`create_advoware_app()` builds it on the shared sandbox kit. The API:
- `POST /api/v1/Token` (the security gateway; signed request, see `advoware_auth`);
- `GET|PUT /api/v1/advonet/Beteiligte/{betNr}`, `POST /api/v1/advonet/Beteiligte`;
- `POST /api/v1/advonet/Beteiligte/{betNr}/Kommunikationen`, `PUT|DELETE …/Kommunikationen/{id}`;
- `GET|POST /api/v1/advonet/Beteiligte/{betNr}/Adressen`, `PUT|DELETE …/Adressen/{reihenfolgeIndex}`;
- `GET /api/v1/advonet/Mitarbeiter[?aktiv=true]`;
- `GET /api/v1/advonet/Termine?kuerzel=&from=&to=` (or `?frnr=`), `POST`, `PUT` (frNr in the body),
  `DELETE ?frnr=` on the same path.
Admin routes under `/_sandbox/` are documented in docs/sandbox-advoware.md.
State lives in `app.extensions["advoware"]` (an `AdvowareState`), tokens in
`app.extensions["advoware_tokens"]` (a `TokenRegistry`).
"""
from __future__ import annotations

from flask import Flask, jsonify, request

from integrations.sandbox.advoware_auth import TOKEN_PATH, TokenRegistry, TokenRejected, credentials_info
from integrations.sandbox.advoware_seed import seed_state
from integrations.sandbox.advoware_state import AdvowareState, SimError
from integrations.sandbox.kit import ADMIN_PREFIX, create_sandbox_app

API = "/api/v1/advonet"
DENIED = "Authorization has been denied for this request."


def _body():
    data = request.get_json(silent=True)
    if data is None:
        raise SimError(400, "body must be JSON")
    return data


def _flag(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.strip().lower() in ("1", "true", "yes")


def create_advoware_app(*, token_lifetime: float = 3600, kommkz_zero_ratio: float = 0.5, seed: int = 1234,
                        latency_ms: int = 0, token_max_skew: float = 300.0) -> Flask:
    """A fresh simulator; `latency_ms` makes every API call slow on purpose (the real one is)."""
    app, kit = create_sandbox_app("advoware", __name__)
    kit.default_latency_ms = latency_ms
    app.json.sort_keys = False  # answer fields in Advoware's order, not alphabetically
    state = AdvowareState(kommkz_zero_ratio=kommkz_zero_ratio, seed=seed)
    tokens = TokenRegistry(lifetime=token_lifetime, max_skew=token_max_skew)
    app.extensions["advoware"] = state
    app.extensions["advoware_tokens"] = tokens
    kit.info_provider = lambda: {**credentials_info(tokens), "api_path": API, "quirks": _quirks()}
    defaults = {"get_returns_object": False, "kommkz_zero_ratio": kommkz_zero_ratio, "empty_as_null_ratio": 0.5,
                "lifetime": token_lifetime, "max_skew": token_max_skew}

    def _reset() -> None:
        with state.lock:
            state.get_returns_object = defaults["get_returns_object"]
            state.kommkz_zero_ratio = defaults["kommkz_zero_ratio"]
            state.empty_as_null_ratio = defaults["empty_as_null_ratio"]
            state.clear()
        tokens.lifetime, tokens.max_skew = defaults["lifetime"], defaults["max_skew"]
        tokens.reset()

    kit.reset_hooks.append(_reset)

    def _quirks() -> dict:
        return {"get_returns_object": state.get_returns_object, "kommkz_zero_ratio": state.kommkz_zero_ratio,
                "empty_as_null_ratio": state.empty_as_null_ratio,
                "token_lifetime": tokens.lifetime, "token_max_skew": tokens.max_skew}

    @app.errorhandler(SimError)
    def _sim_error(exc: SimError):
        return jsonify({"Message": exc.message}), exc.status

    @app.before_request
    def _require_token():
        if request.path.startswith(API + "/") or request.path == API:
            if not tokens.valid(request.headers.get("Authorization")):
                resp = jsonify({"Message": DENIED})
                resp.status_code = 401
                resp.headers["WWW-Authenticate"] = "Bearer"
                return resp
        return None

    # --- the security gateway ---
    @app.post(TOKEN_PATH)
    def token():
        try:
            return jsonify(tokens.issue(request.get_json(silent=True)))
        except TokenRejected as exc:
            return jsonify({"error": exc.error, "error_description": exc.description}), exc.status

    # --- Beteiligte ---
    @app.get(f"{API}/Beteiligte/<betnr>")
    def get_beteiligte(betnr):
        record = state.get_beteiligte_api(betnr)
        return jsonify(record if state.get_returns_object else [record])

    @app.post(f"{API}/Beteiligte")
    def create_beteiligte():
        return jsonify(state.create_beteiligte(_body())), 201

    @app.put(f"{API}/Beteiligte/<betnr>")
    def put_beteiligte(betnr):
        return jsonify([state.replace_beteiligte(betnr, _body())])

    @app.delete(f"{API}/Beteiligte/<betnr>")
    def delete_beteiligte(betnr):
        state.get_beteiligte_api(betnr)  # 404 first when it does not exist
        raise SimError(403, "Deleting a Beteiligter is not permitted through the API.")

    # --- Kommunikationen ---
    @app.post(f"{API}/Beteiligte/<betnr>/Kommunikationen")
    def create_kommunikation(betnr):
        return jsonify(state.create_kommunikation(betnr, _body())), 201

    @app.put(f"{API}/Beteiligte/<betnr>/Kommunikationen/<komm_id>")
    def put_kommunikation(betnr, komm_id):
        return jsonify(state.replace_kommunikation(betnr, komm_id, _body()))

    @app.delete(f"{API}/Beteiligte/<betnr>/Kommunikationen/<komm_id>")
    def delete_kommunikation(betnr, komm_id):
        raise SimError(403, "Deleting a Kommunikation is not permitted.")

    # --- Adressen (SPEC §11; integrations/sandbox/advoware_adressen.py) ---
    @app.get(f"{API}/Beteiligte/<betnr>/Adressen")
    def list_adressen(betnr):
        return jsonify(state.list_adressen_api(betnr))

    @app.post(f"{API}/Beteiligte/<betnr>/Adressen")
    def create_adresse(betnr):
        return jsonify(state.create_adresse(betnr, _body())), 201

    @app.put(f"{API}/Beteiligte/<betnr>/Adressen/<index>")
    def put_adresse(betnr, index):
        return jsonify(state.replace_adresse(betnr, index, _body()))

    @app.delete(f"{API}/Beteiligte/<betnr>/Adressen/<index>")
    def delete_adresse(betnr, index):
        raise SimError(403, "Deleting an Adresse is not permitted.")

    # --- Mitarbeiter and Termine ---
    @app.get(f"{API}/Mitarbeiter")
    def list_mitarbeiter():
        return jsonify(state.list_mitarbeiter_api(_flag(request.args.get("aktiv"))))

    @app.get(f"{API}/Termine")
    def get_termine():
        frnr = request.args.get("frnr") or request.args.get("frNr")
        if frnr:
            return jsonify([state.get_termin_api(frnr)])
        return jsonify(state.list_termine_api(request.args.get("kuerzel"), request.args.get("from"),
                                              request.args.get("to")))

    @app.post(f"{API}/Termine")
    def create_termin():
        return jsonify(state.create_termin(_body())), 201

    @app.put(f"{API}/Termine")
    def put_termin():
        data = _body()
        if not isinstance(data, dict) or data.get("frNr") in (None, ""):
            raise SimError(400, "frNr is required")
        return jsonify(state.replace_termin(data["frNr"], data))

    @app.delete(f"{API}/Termine")
    def delete_termin():
        frnr = request.args.get("frnr") or request.args.get("frNr")
        if not frnr:
            raise SimError(400, "frnr is required")
        state.delete_termin(frnr)
        return jsonify({"frNr": int(frnr), "deleted": True})

    _register_admin(app, state, tokens, _quirks)
    return app


def _register_admin(app: Flask, state: AdvowareState, tokens: TokenRegistry, quirks) -> None:
    """The simulator's own `/_sandbox/*` routes (the kit provides info, reset, calls, log, faults)."""
    p = ADMIN_PREFIX

    def _json_object() -> dict:
        data = request.get_json(silent=True)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise SimError(400, "body must be a JSON object")
        return data

    @app.post(f"{p}/seed")
    def seed():
        spec = _json_object()
        try:
            counts = {k: int(spec.get(k, 0)) for k in ("count", "employees", "termine_per_employee")}
        except (TypeError, ValueError):
            raise SimError(400, "count, employees, termine_per_employee must be integers") from None
        return jsonify(seed_state(state, **counts))

    @app.get(f"{p}/quirks")
    def get_quirks():
        return jsonify(quirks())

    @app.post(f"{p}/quirks")
    def set_quirks():
        spec = _json_object()
        with state.lock:
            if "get_returns_object" in spec:
                state.get_returns_object = bool(spec["get_returns_object"])
            if "kommkz_zero_ratio" in spec:
                state.kommkz_zero_ratio = float(spec["kommkz_zero_ratio"])
            if "empty_as_null_ratio" in spec:
                state.empty_as_null_ratio = float(spec["empty_as_null_ratio"])
        if "token_lifetime" in spec:
            tokens.lifetime = float(spec["token_lifetime"])
        if "token_max_skew" in spec:
            tokens.max_skew = float(spec["token_max_skew"])
        return jsonify(quirks())

    @app.get(f"{p}/tokens")
    def token_stats():
        return jsonify(tokens.stats())

    @app.delete(f"{p}/tokens")
    def revoke_tokens():
        return jsonify({"revoked": tokens.revoke_all()})

    @app.get(f"{p}/state")
    def dump():
        return jsonify(state.dump_state())

    @app.put(f"{p}/state")
    def load():
        state.load_state(_json_object())
        return jsonify({"loaded": True, "beteiligte": len(state.beteiligte), "termine": len(state.termine)})

    @app.get(f"{p}/beteiligte/<int:betnr>")
    def truth(betnr):
        record = state.get_beteiligte(betnr)
        if record is None:
            raise SimError(404, "Beteiligter not found")
        return jsonify(record)

    @app.delete(f"{p}/beteiligte/<int:betnr>")
    def delete(betnr):
        state.delete_beteiligte(betnr)
        return jsonify({"deleted": betnr})

    # --- act as a human user of Advoware ---
    h = f"{p}/human"

    @app.post(f"{h}/beteiligte")
    def human_create():
        record = state.create_beteiligte(_json_object())
        return jsonify(state.get_beteiligte(record["betNr"])), 201

    @app.patch(f"{h}/beteiligte/<int:betnr>")
    def human_edit(betnr):
        return jsonify(state.human_update_beteiligte(betnr, **_json_object()))

    @app.post(f"{h}/beteiligte/<int:betnr>/kommunikationen")
    def human_add_komm(betnr):
        spec = _json_object()
        return jsonify(state.human_add_kommunikation(
            betnr, spec.get("kommKz"), spec.get("tlf", ""), spec.get("bemerkung", ""),
            bool(spec.get("online", False)))), 201

    @app.patch(f"{h}/beteiligte/<int:betnr>/kommunikationen/<int:komm_id>")
    def human_edit_komm(betnr, komm_id):
        return jsonify(state.human_update_kommunikation(betnr, komm_id, **_json_object()))

    @app.delete(f"{h}/beteiligte/<int:betnr>/kommunikationen/<int:komm_id>")
    def human_delete_komm(betnr, komm_id):
        state.human_delete_kommunikation(betnr, komm_id)
        return jsonify({"deleted": komm_id})

    @app.get(f"{p}/beteiligte/<int:betnr>/adressen")
    def adressen_truth(betnr):
        return jsonify(state.adressen_truth(betnr))

    @app.post(f"{h}/beteiligte/<int:betnr>/adressen")
    def human_add_adresse(betnr):
        spec = _json_object()
        position = spec.pop("position", None)
        return jsonify(state.human_add_adresse(betnr, spec, position)), 201

    @app.patch(f"{h}/beteiligte/<int:betnr>/adressen/<int:index>")
    def human_edit_adresse(betnr, index):
        return jsonify(state.human_update_adresse(betnr, index, **_json_object()))

    @app.delete(f"{h}/beteiligte/<int:betnr>/adressen/<int:index>")
    def human_remove_adresse(betnr, index):
        state.human_remove_adresse(betnr, index)
        return jsonify({"removed": index})

    @app.post(f"{h}/mitarbeiter")
    def human_add_mitarbeiter():
        spec = _json_object()
        return jsonify(state.add_mitarbeiter(spec.get("kuerzel"), spec.get("name", ""), spec.get("email", ""),
                                             bool(spec.get("aktiv", True)))), 201

    @app.patch(f"{h}/mitarbeiter/<kuerzel>")
    def human_edit_mitarbeiter(kuerzel):
        return jsonify(state.human_update_mitarbeiter(kuerzel, **_json_object()))

    @app.post(f"{h}/termine")
    def human_add_termin():
        return jsonify(state.add_termin(**_json_object())), 201

    @app.patch(f"{h}/termine/<int:frnr>")
    def human_edit_termin(frnr):
        return jsonify(state.human_update_termin(frnr, **_json_object()))

    @app.delete(f"{h}/termine/<int:frnr>")
    def human_delete_termin(frnr):
        state.human_delete_termin(frnr)
        return jsonify({"deleted": frnr})
