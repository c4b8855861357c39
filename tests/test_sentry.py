"""The Sentry scrubber masks secrets and personal data; init is a no-op without a DSN."""
from hypothesis import given, strategies as st

from bitbylaw_tasks.sentry import MASK, init_sentry, scrub, scrub_event
from bitbylaw_tasks.settings import load_settings


def test_scrubs_secret_and_personal_keys_and_credentials():
    event = {
        "request": {"headers": [["X-Api-Key", "abc123"], ["Signature", "c2ln"], ["Accept", "json"]],
                    "data": {"password": "pw", "emailAddress": "max@example.de", "id": "6a1b2c3d4e5f60718"}},
        "extra": {"broker": "redis://:hunter2@127.0.0.1:6379/0", "auth": "Bearer eyJabc.def"},
        "breadcrumbs": {"values": [{"message": "GET https://user:pass@host/x", "data": {"phoneNumber": "+49171"}}]},
        "exception": {"values": [{"value": "AuthError: advoware: POST /api/v1/Token -> 401"}]},
    }
    out = scrub_event(event)
    text = repr(out)
    for secret in ("abc123", "c2ln", "'pw'", "max@example.de", "hunter2", "eyJabc", ":pass@", "+49171"):
        assert secret not in text, secret
    assert out["request"]["data"]["id"] == "6a1b2c3d4e5f60718"
    assert out["request"]["headers"][2] == ["Accept", "json"]
    assert out["request"]["headers"][0] == ["X-Api-Key", MASK]
    assert "POST /api/v1/Token -> 401" in text


@given(st.text(min_size=1, max_size=30).filter(lambda s: "\n" not in s))
def test_any_token_value_is_masked(secret):
    out = scrub({"nested": [{"access_token": secret, "client_secret": secret}]})
    assert out == {"nested": [{"access_token": MASK, "client_secret": MASK}]}


def test_init_without_dsn_is_a_noop():
    assert init_sentry(load_settings({}), component="web") is False
