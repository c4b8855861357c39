"""Hypothesis fuzz of the Advoware proxy over real HTTP (web app + Advoware simulator): random methods, request
targets (traversal in every encoding, absolute URLs, ids, resource names), headers (keys in both headers, hop-by-hop,
credentials, junk) and bodies. For every request the oracle checks:

- never a 5xx of the proxy's own making: a 502/504 only when the simulator logged a 5xx for that very call;
- a request reaches Advoware only when the key is valid, the method in its scope and the path inside its allow-list
  (checked against the simulator's own request log), at most one request per call, and only under /api/v1/advonet/;
- a refusal of the proxy's own forwards nothing;
- neither Advoware's token nor the caller's key is ever in an answer (body or headers);
- every error answer is a JSON document.
"""
from __future__ import annotations

import json
import posixpath
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from tests.proxy_helpers import cached_tokens, make_key, proxy_settings, raw_call, seed, serve_web

READ_ALLOW = ("Beteiligte", "Mitarbeiter")
WRITE_ALLOW = ("Termine", "Beteiligte/*/Kommunikationen")
PROXY_REASONS = {"no_key", "bad_key", "method", "absolute_url", "not_found", "path_too_long", "backslash",
                 "double_encoding", "traversal", "malformed_path", "outside_api", "scope", "allow_list",
                 "query_too_long", "body_too_large", "body", "content_type", "budget"}

SEGMENTS = st.one_of(
    st.sampled_from(["Beteiligte", "Kommunikationen", "Mitarbeiter", "Termine", "Adressen", "Token", "advonet",
                     "100001", "100002", "1", "0", "-1", "..", ".", "", "%2e%2e", "%2E%2e", ".%2e", "%252e%252e",
                     "%5c", "\\", "..\\..", "%2f", "..%2f..", "http:", "%3a", "%00", "%c0%ae%c0%ae", "~", "a.b",
                     "%42eteiligte", "beteiligte", "BETEILIGTE", "Beteiligte%2f..%2fToken", "%25", ";x", "@h"]),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e, exclude_characters="?#"), max_size=6),
)
ROOTS = st.sampled_from(["/advoware/api/v1/advonet/", "/advoware/api/v1/", "/advoware/", "/advoware/api/v1/advonet",
                         "http://127.0.0.1:1/advoware/api/v1/advonet/", "//127.0.0.1:1/advoware/api/v1/advonet/",
                         "/advoware/api/v1/advonet/../"])
QUERIES = st.one_of(st.just(""), st.sampled_from(["?aktiv=true", "?frnr=700001", "?kuerzel=AA&from=2000-01-01&to=2100-01-01",
                                                  "?x=%2e%2e%2f", "?a", "?" + "&".join(["k=v"] * 80)]))
GOOD_PATHS = st.sampled_from(["Beteiligte", "Beteiligte/100001", "Beteiligte/100002", "Beteiligte/999",
                              "Beteiligte/100001/Kommunikationen", "Beteiligte/100001/Kommunikationen/1",
                              "Mitarbeiter", "Termine", "Termine/700001", "Adressen", "Beteiligte/x",
                              # allowed-looking starts that climb out (a key allows Beteiligte or Termine)
                              "Beteiligte/../Termine", "Beteiligte/%2e%2e/Termine", "Termine/../../Token",
                              "Beteiligte/..%2f..%2fToken", "Beteiligte/100001/../../../Token", "Termine/%2e%2e",
                              "Beteiligte/.%2e/Mitarbeiter", "Termine/..\\Beteiligte", "Beteiligte%2f..%2fTermine"])
TARGETS = st.one_of(
    st.tuples(st.just("/advoware/api/v1/advonet/"), GOOD_PATHS.map(lambda p: [p])),   # what callers do
    st.tuples(st.just("/advoware/api/v1/advonet/"), st.lists(SEGMENTS, max_size=5)),  # mutated
    st.tuples(ROOTS, st.lists(SEGMENTS, max_size=5)),                                 # anything
)
REAL_METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE"])
METHODS = st.one_of(REAL_METHODS,
                    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"]),
                    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8))
HEADER_VALUES = st.one_of(st.just("application/json"), st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=30))
EXTRA_HEADERS = st.lists(st.tuples(st.sampled_from(["Content-Type", "Content-Type", "Cookie", "Connection", "Keep-Alive", "TE", "Upgrade",
                                                    "Proxy-Authorization", "X-Forwarded-Host", "Accept-Language",
                                                    "If-Match", "Content-Type", "X-Junk"]), HEADER_VALUES), max_size=4)
BODIES = st.one_of(st.none(), st.binary(max_size=64), st.just(b'{"kommKz": 4, "tlf": "fuzz@example.test"}'),
                   st.dictionaries(st.sampled_from(["name", "kommKz", "tlf", "frNr", "kuerzel", "text", "datum"]),
                                   st.one_of(st.integers(-5, 800000), st.text(max_size=10), st.none()),
                                   max_size=4).map(lambda d: json.dumps(d).encode()))


@pytest.fixture(scope="module")
def fuzz_world(sandbox_session, redis_server):
    """One web app, the simulator seeded once, a read key, a write key (module-wide: hypothesis runs many
    examples per test)."""
    import redis as redis_lib

    lock = redis_lib.Redis.from_url(proxy_settings().lock_redis_url)
    lock.flushdb()
    for name in ("advoware",):
        sandbox_session.kit(name).reset()
    seed(sandbox_session, count=3, employees=2, termine_per_employee=2)
    world = {"read": make_key(lock, "fuzz-read", "read", *READ_ALLOW),
             "write": make_key(lock, "fuzz-write", "write", *WRITE_ALLOW), "lock": lock, "sandbox": sandbox_session}
    with serve_web() as url:
        world["url"] = url
        status, _, _ = raw_call(url, "GET", "/advoware/api/v1/advonet/Mitarbeiter", [("X-Api-Key", world["read"])])
        assert status == 200  # the shared token is fetched now: later simulator log entries are all forwarded calls
        yield world


def _may_reach(key: str, method: str, logged_path: str) -> bool:
    """The oracle's own reading of a key (independent of `rules`): may this key make this call, as Advoware
    logged it? Read: GET only; write: the four methods; the path, resolved, lies under an allowed prefix."""
    if method not in (("GET",) if key == "read" else ("GET", "POST", "PUT", "DELETE")):
        return False
    resolved = posixpath.normpath(unquote(logged_path))
    if resolved != logged_path or not resolved.startswith("/api/v1/advonet/"):
        return False
    segments = resolved[len("/api/v1/advonet/"):].split("/")
    for prefix in READ_ALLOW if key == "read" else WRITE_ALLOW:
        wanted = prefix.split("/")
        if len(segments) >= len(wanted) and all(w in ("*", s) for w, s in zip(wanted, segments)):
            return True
    return False


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=METHODS, root_segments=TARGETS, query=QUERIES, key=st.sampled_from(["read", "write", None, "bogus"]),
       key_header=st.sampled_from(["bearer", "x-api-key", "both"]), extra=EXTRA_HEADERS, body=BODIES)
def test_fuzz_anything(fuzz_world, method, root_segments, query, key, key_header, extra, body):
    root, segments = root_segments
    check_one_call(fuzz_world, method, root + "/".join(segments) + query, key, key_header, extra, body)


WRITE_PATHS = st.sampled_from(["Termine", "Termine/700001", "Beteiligte/100001/Kommunikationen",
                               "Beteiligte/100002/Kommunikationen/1", "Beteiligte/999/Kommunikationen"])


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), query=QUERIES, key_header=st.sampled_from(["bearer", "x-api-key", "both"]),
       extra=EXTRA_HEADERS)
def test_fuzz_calls_a_tool_would_make(fuzz_world, data, query, key_header, extra):
    """Valid keys on paths they mostly may use, real methods, JSON bodies where they belong, random headers and
    queries: most of these reach Advoware."""
    key = data.draw(st.sampled_from(["read", "write"]))
    if key == "read":
        method, path = data.draw(st.sampled_from(["GET", "GET", "GET", "POST"])), data.draw(GOOD_PATHS)
    else:
        method, path = data.draw(REAL_METHODS), data.draw(st.one_of(WRITE_PATHS, GOOD_PATHS))
    body = data.draw(BODIES) if method in ("POST", "PUT") else data.draw(st.sampled_from([None] * 9 + [b"{}"]))
    if body is not None:
        extra = [("Content-Type", "application/json"), *extra]
    check_one_call(fuzz_world, method, "/advoware/api/v1/advonet/" + path + query, key, key_header, extra, body)


def check_one_call(fuzz_world, method, target, key, key_header, extra, body):
    """Send one request and apply the oracle of the module docstring."""
    url = fuzz_world["url"]
    secret = {"read": fuzz_world["read"], "write": fuzz_world["write"], "bogus": "bbp_" + "0" * 16 + "_" + "x" * 43,
              None: None}[key]
    headers = list(extra)
    if secret:
        if key_header in ("bearer", "both"):
            headers.append(("Authorization", f"Bearer {secret}"))
        if key_header in ("x-api-key", "both"):
            headers.append(("X-Api-Key", secret))
    kit = fuzz_world["sandbox"].kit("advoware")
    kit.reset_calls()
    status, answer_headers, answer = raw_call(url, method, target, headers, body)
    with kit.lock:  # everything that reached the simulator (the token was fetched before: none of it is ours)
        forwarded = list(kit.log)

    event(f"status {status}, forwarded {len(forwarded)}")
    valid_key = key in ("read", "write")
    # at most one request per call, only what the key may reach, and the very path the caller named
    assert len(forwarded) <= 1, forwarded
    for entry in forwarded:
        assert valid_key and _may_reach(key, entry["method"], entry["path"]), (key, target, entry)
        assert entry["method"] == method
        assert entry["path"] == unquote(target.split("?", 1)[0])[len("/advoware"):]
    # never a 5xx of the proxy's own making
    if status >= 500:
        assert status in (502, 504) and forwarded and forwarded[0]["status"] >= 500, (status, answer)
    # the proxy's own refusals forward nothing
    if status >= 400 and method != "HEAD":
        doc = json.loads(answer)
        if isinstance(doc, dict) and doc.get("reason") in PROXY_REASONS:
            assert forwarded == [] and doc["status"] == status
    if not valid_key:  # 401, or Flask's 404 for a target whose path is not under /advoware/ at all
        assert status == 401 or (status == 404 and not target.startswith("/advoware/")), (status, target)
    # nothing secret comes back
    everything = answer.decode("utf-8", "replace") + json.dumps(answer_headers)
    for token in cached_tokens(fuzz_world["lock"]):
        assert token not in everything
    for secret_ in (fuzz_world["read"], fuzz_world["write"]):
        assert secret_ not in everything
    assert "set-cookie" not in answer_headers

