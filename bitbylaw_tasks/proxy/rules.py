"""The Advoware proxy's rules, all pure: which request targets, methods and headers pass, the path template the
audit records, and the scrubbing of Advoware's answers. Every refusal is a `Refusal` with a status and a short
reason code; nothing here does I/O.
"""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, unquote

PREFIX = "/advoware/"                 # everything under it is the proxy's (and checked)
API_PREFIX = "api/v1/"                # /advoware/api/v1/<path> mirrors Advoware's /api/v1/<path>
FORWARDED_ROOT = "advonet"            # only Advoware's data API is forwarded (never /api/v1/Token)
METHODS = ("GET", "POST", "PUT", "DELETE")
SCOPES = {"read": frozenset({"GET"}), "write": frozenset(METHODS)}
WITH_BODY = frozenset({"POST", "PUT"})
MAX_PATH_CHARS = 1024
MAX_SEGMENTS = 16
MAX_QUERY_CHARS = 4096
MAX_QUERY_FIELDS = 64
_SEGMENT = re.compile(r"^[A-Za-z0-9_~.-]{1,128}$")
_PREFIX_SEGMENT = re.compile(r"^(?:[A-Za-z0-9_~.-]{1,128}|\*)$")
_METHOD = re.compile(r"^[A-Z]{1,16}$")

# Segments the audit keeps as they are; any other segment is an id or a value and is replaced.
RESOURCE_NAMES = frozenset({
    "advonet", "Beteiligte", "Kommunikationen", "Adressen", "Termine", "Mitarbeiter", "Akten", "Dokumente",
    "Fristen", "Wiedervorlagen", "Bankverbindungen", "Ansprechpartner",
})

# Request headers a caller may have forwarded (everything else, credentials and hop-by-hop above all, is not).
REQUEST_HEADERS = frozenset({"accept-language", "if-match", "if-none-match", "if-modified-since"})
# Advoware's response headers a caller gets back (never Set-Cookie, WWW-Authenticate, Server, hop-by-hop…).
RESPONSE_HEADERS = frozenset({"content-type", "etag", "last-modified", "content-language", "retry-after"})
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection"})
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "x-api-key", "www-authenticate",
                                "proxy-authorization", "proxy-authenticate"})
MAX_HEADER_VALUE = 512


class Refusal(Exception):
    """A request the proxy answers itself: `status`, a short machine `reason`, and a message for the caller."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def refuse(status: int, reason: str, message: str) -> Refusal:
    return Refusal(status, reason, message)


# --- the request target ---
def split_target(target: str) -> tuple[str, str]:
    """(raw path, raw query) of a request target as it came on the request line (not yet decoded)."""
    path, _, query = target.partition("?")
    return path, query


def resource_path(raw_path: str) -> str:
    """The Advoware resource a raw request path names, relative to `/api/v1/advonet/` (`Beteiligte/12`).

    The path is checked before and after one percent-decoding: an absolute URL, a backslash (raw or
    encoded), anything still encoded after one decoding (double encoding), `.`/`..` or any `..`, empty
    segments, characters outside `A-Za-z0-9_~.-`, and anything but `/advoware/api/v1/advonet/…` are
    refused with 403 (404 for a path that is not `/advoware/api/v1/…` at all).
    """
    if not raw_path.startswith("/"):
        raise refuse(403, "absolute_url", "absolute URLs are not accepted")
    if not raw_path.startswith(PREFIX):
        raise refuse(404, "not_found", "not an Advoware proxy path")
    rest = raw_path[len(PREFIX):]
    if len(rest) > MAX_PATH_CHARS:
        raise refuse(403, "path_too_long", "path too long")
    if "\\" in rest or "%5c" in rest.lower():
        raise refuse(403, "backslash", "backslashes are not accepted in paths")
    decoded = unquote(rest, errors="replace")
    if "%" in decoded:
        raise refuse(403, "double_encoding", "doubly encoded paths are not accepted")
    if "\\" in decoded:
        raise refuse(403, "backslash", "backslashes are not accepted in paths")
    if "://" in decoded or ":" in decoded:
        raise refuse(403, "absolute_url", "absolute URLs are not accepted")
    if ".." in decoded:
        raise refuse(403, "traversal", "path traversal is not accepted")
    segments = decoded.split("/")
    if any(segment in ("", ".") for segment in segments):
        raise refuse(403, "malformed_path", "empty or '.' path segments are not accepted")
    if len(segments) > MAX_SEGMENTS + 3 or not all(_SEGMENT.match(segment) for segment in segments):
        raise refuse(403, "malformed_path", "path segments may hold only A-Z a-z 0-9 _ ~ . -")
    if "/".join(segments[:2]) + "/" != API_PREFIX:
        raise refuse(404, "not_found", "not an Advoware proxy path (expected /advoware/api/v1/…)")
    if len(segments) < 4 or segments[2] != FORWARDED_ROOT:
        raise refuse(403, "outside_api", "only /advoware/api/v1/advonet/… is forwarded")
    return "/".join(segments[3:])


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """The query string's fields in order (forwarded re-encoded, never logged); 400 when too long or too many."""
    if not raw_query:
        return []
    if len(raw_query) > MAX_QUERY_CHARS:
        raise refuse(400, "query_too_long", "query string too long")
    try:
        return parse_qsl(raw_query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS, errors="replace")
    except ValueError:
        raise refuse(400, "query_too_long", "too many query fields") from None


def template(resource: str) -> str:
    """The path the audit records: resource names kept, ids as `{id}`, any other segment as `{x}`."""
    out = [FORWARDED_ROOT]
    for segment in resource.split("/"):
        out.append(segment if segment in RESOURCE_NAMES else "{id}" if segment.isdigit() else "{x}")
    return "/".join(out)


def audit_method(method: str) -> str:
    """The method as the audit records it (a request line may carry anything)."""
    return method if _METHOD.match(method) else "OTHER"


# --- keys: scope and allow-list ---
def normalise_prefix(text: str) -> str:
    """An allow-list prefix as stored: relative to `/api/v1/advonet/`, no leading or trailing slash;
    a segment `*` stands for any one segment (`Beteiligte/*/Kommunikationen`). ValueError when malformed."""
    prefix = text.strip().strip("/")
    for lead in ("advoware/api/v1/advonet/", "api/v1/advonet/", "advonet/"):
        if prefix.startswith(lead):
            prefix = prefix[len(lead):]
    segments = prefix.split("/")
    if not prefix or not all(_PREFIX_SEGMENT.match(s) and ".." not in s and s != "." for s in segments):
        raise ValueError(f"not a path prefix: {text!r} (segments of A-Z a-z 0-9 _ ~ . - or *)")
    return prefix


def allowed(resource: str, prefixes) -> bool:
    """True when `resource` lies under one of `prefixes`, segment by segment (`Termine` allows `Termine`
    and `Termine/5`, never `TermineX`)."""
    segments = resource.split("/")
    for prefix in prefixes:
        wanted = prefix.split("/")
        if len(wanted) <= len(segments) and all(w == "*" or w == s for w, s in zip(wanted, segments)):
            return True
    return False


def check_method(method: str) -> None:
    if method not in METHODS:
        raise refuse(405, "method", f"method {audit_method(method)} is not allowed")


def check_scope(scope: str, method: str) -> None:
    if method not in SCOPES.get(scope, frozenset()):
        raise refuse(403, "scope", f"a {scope} key may not {method}")


def check_body(method: str, content_type: str, body: bytes) -> None:
    """POST/PUT carry one JSON document (`application/json`); GET/DELETE carry none."""
    if method not in WITH_BODY:
        if body:
            raise refuse(400, "body", f"{method} takes no body")
        return
    mimetype = content_type.split(";", 1)[0].strip().lower()
    if mimetype != "application/json":
        raise refuse(415, "content_type", "the body must be application/json")
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise refuse(400, "body", "the body is not valid JSON") from None


# --- headers both ways ---
def _connection_tokens(headers: dict[str, str]) -> set[str]:
    return {t.strip().lower() for t in headers.get("connection", "").split(",") if t.strip()}


def _clean(headers: dict[str, str], allowed_names: frozenset[str]) -> dict[str, str]:
    named = _connection_tokens(headers)
    out = {}
    for name, value in headers.items():
        if name in allowed_names and name not in named and name not in HOP_BY_HOP | CREDENTIAL_HEADERS:
            if "\r" not in value and "\n" not in value and len(value) <= MAX_HEADER_VALUE:
                out[name] = value
    return out


def lower_keys(headers) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in dict(headers).items()}


def forwarded_request_headers(headers: dict[str, str]) -> dict[str, str]:
    """The caller's headers (lower-case names) that go on to Advoware: a short allow-list, never a credential
    or a hop-by-hop header, nor one the caller's `Connection` header names."""
    return _clean(headers, REQUEST_HEADERS)


def returned_response_headers(headers: dict[str, str]) -> dict[str, str]:
    """Advoware's headers (lower-case names) the caller gets back: content type, validators, Retry-After."""
    return _clean(headers, RESPONSE_HEADERS)


# --- scrubbing Advoware's error bodies ---
REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"token|authori[sz]ation|password|passwort|secret|api[-_ ]?key|signature|nonce|"
                         r"cookie|credential|bearer", re.IGNORECASE)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?")
_OPAQUE = re.compile(r"[A-Za-z0-9_+/=-]{32,}")
MAX_ERROR_DETAIL = 2000


def scrub_text(text: str) -> str:
    """Text with anything token-like replaced: bearer/basic credentials, JWTs, long opaque runs (≥ 32 chars)."""
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    return _OPAQUE.sub(REDACTED, text)


def scrub_json(value):
    """A JSON value with every field named like a credential blanked and every string `scrub_text`-ed."""
    if isinstance(value, dict):
        return {k: (REDACTED if _SECRET_KEY.search(str(k)) else scrub_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_json(v) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def scrub_error_body(body: bytes) -> dict | list:
    """Advoware's error body made safe to pass on: its JSON scrubbed, or its text scrubbed and cut short."""
    try:
        return scrub_json(json.loads(body))
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", errors="replace")[:MAX_ERROR_DETAIL]
        return {"error": "Advoware answered an error", "detail": scrub_text(text)}


def error_document(status: int, reason: str, message: str, **extra) -> bytes:
    return json.dumps({"error": message, "status": status, "reason": reason, **extra}).encode()
