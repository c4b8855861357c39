"""The proxy's pure rules: request targets, allow-lists, scopes, bodies, headers both ways, scrubbing, shares."""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings, strategies as st

from bitbylaw_tasks.proxy import rules
from bitbylaw_tasks.proxy.budget import retry_after_header, shares
from bitbylaw_tasks.proxy.keys import presented_secret
from bitbylaw_tasks.proxy.rules import Refusal

P = "/advoware/api/v1/advonet/"


def refused(raw_path: str) -> tuple[int, str]:
    with pytest.raises(Refusal) as info:
        rules.resource_path(raw_path)
    return info.value.status, info.value.reason


# --- paths ---
@pytest.mark.parametrize("raw, resource", [
    (P + "Beteiligte/12", "Beteiligte/12"),
    (P + "Beteiligte", "Beteiligte"),
    (P + "Beteiligte/12/Kommunikationen/5", "Beteiligte/12/Kommunikationen/5"),
    (P + "Mitarbeiter", "Mitarbeiter"),
    (P + "Termine", "Termine"),
    (P + "%42eteiligte/12", "Beteiligte/12"),     # an encoded harmless letter is decoded once
    (P + "a.b~c_d-e", "a.b~c_d-e"),
])
def test_resource_paths_that_pass(raw, resource):
    assert rules.resource_path(raw) == resource


@pytest.mark.parametrize("raw, status, reason", [
    (P + "Beteiligte/../Termine", 403, "traversal"),
    (P + "../Token", 403, "traversal"),
    (P + "..", 403, "traversal"),
    (P + "Beteiligte/..%2fToken", 403, "traversal"),
    (P + "%2e%2e/Token", 403, "traversal"),
    (P + "%2E%2E/Token", 403, "traversal"),
    (P + ".%2e/Token", 403, "traversal"),
    (P + "Beteiligte/a..b", 403, "traversal"),
    (P + "%252e%252e/Token", 403, "double_encoding"),
    (P + "%25", 403, "double_encoding"),
    (P + "Beteiligte%255c..", 403, "double_encoding"),
    (P + "Beteiligte\\..\\Token", 403, "backslash"),
    (P + "Beteiligte%5c12", 403, "backslash"),
    (P + "Beteiligte%5C12", 403, "backslash"),
    ("http://evil.example/advoware/api/v1/advonet/Beteiligte", 403, "absolute_url"),
    ("//evil.example/x", 404, "not_found"),
    (P + "http://evil.example/x", 403, "absolute_url"),
    (P + "http:%2f%2fevil.example", 403, "absolute_url"),
    (P + "Beteiligte//12", 403, "malformed_path"),
    (P + "/evil.example", 403, "malformed_path"),
    (P + "Beteiligte/", 403, "malformed_path"),
    (P + "./Beteiligte", 403, "malformed_path"),
    (P + "Beteiligte/1;x=2", 403, "malformed_path"),
    (P + "Beteiligte/%00", 403, "malformed_path"),
    (P + "Beteiligte/%0d%0aX-Injected:1", 403, "absolute_url"),
    (P + "Beteiligte/%0d%0a", 403, "malformed_path"),
    (P + "Beteiligte/%c0%ae%c0%ae", 403, "malformed_path"),   # overlong UTF-8 dots
    (P + "Beteiligte/\uff0e\uff0e", 403, "malformed_path"),     # full-width dots
    (P + "Beteiligte/%ef%bc%8e%ef%bc%8e", 403, "malformed_path"),
    (P + "Beteiligte/x y", 403, "malformed_path"),
    (P + "Beteiligte/@evil", 403, "malformed_path"),
    (P + "B" * 2000, 403, "path_too_long"),
    ("/advoware/api/v1/Token", 403, "outside_api"),
    ("/advoware/api/v1/advonet", 403, "outside_api"),
    ("/advoware/api/v1/ADVONET/Beteiligte", 403, "outside_api"),
    ("/advoware/api/v2/advonet/Beteiligte", 404, "not_found"),
    ("/advoware/Beteiligte", 404, "not_found"),
    ("/elsewhere", 404, "not_found"),
])
def test_refused_paths(raw, status, reason):
    assert refused(raw) == (status, reason)


_SAFE = st.text(alphabet=st.sampled_from("AZaz09_~.-"), min_size=1, max_size=8)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_SAFE, st.sampled_from(["..", ".", "%2e%2e", "%2E.", "%252e%252e", "%5c", "\\", "",
                                                      "%2f..", "a%00", "http:", "%25"])), min_size=1, max_size=6))
def test_a_passing_path_never_climbs_out_of_advonet(segments):
    """Whatever passes resolves (as a server or a URL library would) to a path under /api/v1/advonet/."""
    import posixpath
    from urllib.parse import unquote

    raw = P + "/".join(segments)
    try:
        resource = rules.resource_path(raw)
    except Refusal as exc:
        assert exc.status in (403, 404)
        return
    resolved = posixpath.normpath("/api/v1/advonet/" + unquote(unquote(resource)))
    assert resolved.startswith("/api/v1/advonet/") and ".." not in resource and "%" not in resource
    assert "\\" not in resource and "//" not in resource
    assert re.fullmatch(r"[A-Za-z0-9_~./-]+", resource)


def test_query_pairs_are_parsed_and_bounded():
    assert rules.query_pairs("") == []
    assert rules.query_pairs("kuerzel=AB&from=2026-01-01&x=") == [("kuerzel", "AB"), ("from", "2026-01-01"), ("x", "")]
    assert rules.query_pairs("a=%2e%2e%2f") == [("a", "../")]  # a value, never a path: harmless
    with pytest.raises(Refusal) as too_long:
        rules.query_pairs("a=" + "x" * 5000)
    with pytest.raises(Refusal) as too_many:
        rules.query_pairs("&".join(f"k{i}=1" for i in range(100)))
    assert too_long.value.status == too_many.value.status == 400


def test_split_target():
    assert rules.split_target(P + "Termine?kuerzel=AB?x") == (P + "Termine", "kuerzel=AB?x")
    assert rules.split_target(P + "Termine") == (P + "Termine", "")


@pytest.mark.parametrize("resource, expected", [
    ("Beteiligte/100001", "advonet/Beteiligte/{id}"),
    ("Beteiligte/100001/Kommunikationen/7", "advonet/Beteiligte/{id}/Kommunikationen/{id}"),
    ("Mitarbeiter", "advonet/Mitarbeiter"),
    ("Beteiligte/Mustermann", "advonet/Beteiligte/{x}"),   # a name in a path never reaches the audit
    ("Erika.Musterfrau", "advonet/{x}"),
])
def test_template_keeps_only_resource_names(resource, expected):
    assert rules.template(resource) == expected


def test_audit_method():
    assert rules.audit_method("GET") == "GET"
    assert rules.audit_method("get") == "OTHER"
    assert rules.audit_method("X" * 40) == "OTHER"
    assert rules.audit_method("") == "OTHER"


# --- allow-list and scope ---
@pytest.mark.parametrize("text, prefix", [
    ("Beteiligte", "Beteiligte"), ("/Beteiligte/", "Beteiligte"), ("advonet/Termine", "Termine"),
    ("/advoware/api/v1/advonet/Mitarbeiter", "Mitarbeiter"), ("Beteiligte/*/Kommunikationen", "Beteiligte/*/Kommunikationen"),
])
def test_normalise_prefix(text, prefix):
    assert rules.normalise_prefix(text) == prefix


@pytest.mark.parametrize("text", ["", "/", "..", "Beteiligte/..", "Beteiligte//x", "a b", "Bet*", "x\\y", "%2e%2e", "."])
def test_normalise_prefix_refuses(text):
    with pytest.raises(ValueError):
        rules.normalise_prefix(text)


@pytest.mark.parametrize("resource, prefixes, ok", [
    ("Beteiligte", ["Beteiligte"], True),
    ("Beteiligte/5", ["Beteiligte"], True),
    ("Beteiligte/5/Kommunikationen/2", ["Beteiligte"], True),
    ("BeteiligteX", ["Beteiligte"], False),
    ("Beteiligt", ["Beteiligte"], False),
    ("beteiligte/5", ["Beteiligte"], False),
    ("Termine", ["Beteiligte"], False),
    ("Beteiligte", ["Beteiligte/5"], False),
    ("Beteiligte/6", ["Beteiligte/5"], False),
    ("Beteiligte/5/Kommunikationen", ["Beteiligte/*/Kommunikationen"], True),
    ("Beteiligte/5/Kommunikationen/3", ["Beteiligte/*/Kommunikationen"], True),
    ("Beteiligte/5", ["Beteiligte/*/Kommunikationen"], False),
    ("Beteiligte/5/Adressen", ["Beteiligte/*/Kommunikationen"], False),
    ("Termine", ["Beteiligte", "Termine"], True),
    ("Termine", [], False),
])
def test_allowed(resource, prefixes, ok):
    assert rules.allowed(resource, prefixes) is ok


@settings(max_examples=300, deadline=None)
@given(st.lists(_SAFE, min_size=1, max_size=5), st.lists(st.lists(_SAFE, min_size=1, max_size=3), max_size=3))
def test_allowed_means_a_prefix_of_segments(resource, prefixes):
    expected = any(resource[:len(p)] == p for p in prefixes)
    assert rules.allowed("/".join(resource), ["/".join(p) for p in prefixes]) is expected


def test_scopes_and_methods():
    for method in ("GET", "POST", "PUT", "DELETE"):
        rules.check_method(method)
        rules.check_scope("write", method)
    rules.check_scope("read", "GET")
    for method in ("POST", "PUT", "DELETE"):
        with pytest.raises(Refusal) as info:
            rules.check_scope("read", method)
        assert info.value.status == 403 and info.value.reason == "scope"
    with pytest.raises(Refusal):
        rules.check_scope("admin", "GET")
    for method in ("PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "get", ""):
        with pytest.raises(Refusal) as info:
            rules.check_method(method)
        assert info.value.status == 405


@pytest.mark.parametrize("method, ctype, body, status", [
    ("GET", "", b"", None), ("DELETE", "", b"", None), ("GET", "application/json", b"{}", 400),
    ("POST", "application/json", b'{"name": "x"}', None), ("PUT", "application/json; charset=utf-8", b"[]", None),
    ("POST", "text/plain", b"{}", 415), ("POST", "", b"{}", 415), ("POST", "application/json", b"{", 400),
    ("POST", "application/json", b"", 400), ("PUT", "application/json", b"\xff\xfe", 400),
])
def test_check_body(method, ctype, body, status):
    if status is None:
        rules.check_body(method, ctype, body)
    else:
        with pytest.raises(Refusal) as info:
            rules.check_body(method, ctype, body)
        assert info.value.status == status


# --- headers ---
def test_request_headers_forward_only_the_allow_list():
    given_headers = {"authorization": "Bearer bbp_x", "x-api-key": "bbp_x", "cookie": "s=1", "connection": "keep-alive, if-match",
                     "keep-alive": "5", "te": "trailers", "transfer-encoding": "chunked", "upgrade": "h2c",
                     "proxy-authorization": "Basic eA==", "host": "evil", "x-forwarded-for": "1.2.3.4",
                     "accept-language": "de", "if-match": "abc", "if-none-match": "\"e\"", "content-length": "5"}
    assert rules.forwarded_request_headers(given_headers) == {"accept-language": "de", "if-none-match": "\"e\""}


def test_response_headers_return_only_the_allow_list():
    upstream = {"content-type": "application/json", "set-cookie": "ASP.NET_SessionId=x", "www-authenticate": "Bearer",
                "server": "Microsoft-IIS/10.0", "x-powered-by": "ASP.NET", "connection": "close, etag",
                "transfer-encoding": "chunked", "etag": "\"1\"", "retry-after": "3", "authorization": "Bearer t",
                "last-modified": "x" * 600}
    assert rules.returned_response_headers(upstream) == {"content-type": "application/json", "retry-after": "3"}


def test_lower_keys():
    assert rules.lower_keys({"Content-Type": "a", "ETag": "b"}) == {"content-type": "a", "etag": "b"}


def test_presented_secret():
    assert presented_secret("Bearer abc", "") == "abc"
    assert presented_secret("bearer  abc ", "") == "abc"
    assert presented_secret("", "abc") == "abc"
    assert presented_secret("Bearer abc", "abc") == "abc"
    assert presented_secret("Bearer abc", "xyz") is None
    assert presented_secret("Basic abc", "") is None
    assert presented_secret("", "") is None
    assert presented_secret("Bearer", "") is None


# --- scrubbing ---
TOKEN = "Zm9vYmFyYmF6cXV4LXRva2VuLXRoYXQtaXMtbG9uZy1lbm91Z2g"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize("text", [
    f"Authorization has been denied for token {TOKEN}", f"header was Bearer {TOKEN}", f"jwt {JWT} rejected",
    f"basic {TOKEN[:10]}", f"bearer {TOKEN[:12]}x",
])
def test_scrub_text_removes_token_like_strings(text):
    out = rules.scrub_text(text)
    assert TOKEN not in out and TOKEN[:10] not in out and JWT not in out and rules.REDACTED in out


def test_scrub_text_keeps_ordinary_messages():
    text = "Beteiligter 100001 not found (Kommunikation 7)."
    assert rules.scrub_text(text) == text


def test_scrub_json_blanks_credential_fields_and_scrubs_strings():
    doc = {"Message": f"denied: Bearer {TOKEN}", "access_token": "short", "Password": "x", "nested": [{"ApiKey": 1},
           {"text": "fine"}], "HMAC512Signature": "s", "count": 3, "ok": True, "none": None}
    out = rules.scrub_json(doc)
    assert out == {"Message": f"denied: Bearer {rules.REDACTED}", "access_token": rules.REDACTED,
                   "Password": rules.REDACTED, "nested": [{"ApiKey": rules.REDACTED}, {"text": "fine"}],
                   "HMAC512Signature": rules.REDACTED, "count": 3, "ok": True, "none": None}


def test_scrub_error_body_json_and_text():
    assert rules.scrub_error_body(json.dumps({"Message": "not found"}).encode()) == {"Message": "not found"}
    text = rules.scrub_error_body(f"<html>token={TOKEN}</html>".encode() + b"x" * 5000)
    assert TOKEN not in json.dumps(text) and len(text["detail"]) <= rules.MAX_ERROR_DETAIL
    assert rules.scrub_error_body(b"\xff\xfe") == {"error": "Advoware answered an error", "detail": "\ufffd\ufffd"}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.text(alphabet=st.sampled_from("ABCDEFabcdef0123456789-_"), min_size=32, max_size=64),
       st.text(max_size=60), st.sampled_from(["", "Bearer ", "bearer  "]))
def test_scrubbed_text_never_holds_a_long_opaque_run(before, token, after, scheme):
    out = rules.scrub_text(before + " " + scheme + token + " " + after)
    assert token not in out
    assert not re.search(r"[A-Za-z0-9_+/=-]{32,}", out)


# --- budget shares ---
@pytest.mark.parametrize("per_minute, share, key_share, expected", [
    (600, 50, 25, (300, 150)), (40, 50, 25, (20, 10)), (1, 50, 25, (1, 1)), (100000, 100, 100, (100000, 100000)),
    (10, 30, 30, (3, 3)), (7, 50, 10, (3, 1)),
])
def test_shares(per_minute, share, key_share, expected):
    assert shares(per_minute, share, key_share) == expected


@pytest.mark.parametrize("seconds, header", [(0.01, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60"), (0, "1")])
def test_retry_after_header(seconds, header):
    assert retry_after_header(seconds) == header


def test_a_request_repr_never_shows_the_key():
    from bitbylaw_tasks.proxy.service import ProxyRequest

    secret = "bbp_0123456789abcdef_" + "s" * 43
    request = ProxyRequest("GET", P + "Termine", {"x-api-key": secret, "authorization": f"Bearer {secret}"}, None,
                           lambda limit: b"")
    assert secret not in repr(request) and "Termine" in repr(request)
