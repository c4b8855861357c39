"""Sentry for web, worker and beat: integrations, cron monitors for beat tasks, and a secret scrubber.

A no-op without SENTRY_DSN. `send_default_pii` stays off, and `scrub_event`
(the `before_send` hook) masks anything that looks like a secret or a
personal value in request data, headers, extra data and breadcrumbs.
"""
from __future__ import annotations

import re
from typing import Any

from bitbylaw_tasks.settings import Settings

MASK = "[Filtered]"

# Keys whose values are always masked (case-insensitive substring match).
SECRET_KEY_PARTS = (
    "password", "passwd", "secret", "token", "api_key", "apikey", "api-key", "authorization",
    "signature", "cookie", "session", "hmac", "dsn", "credential", "private_key",
)
# Personal data of the domain: never needed to debug a sync; the entity id is.
PERSONAL_KEY_PARTS = (
    "email", "phone", "tlf", "firstname", "lastname", "vorname", "firmenname", "dateofbirth",
    "geburtsdatum", "bemerkung", "phonenumber", "emailaddress",
)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.I)
_BEARER = re.compile(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.I)


def _sensitive(key: str) -> bool:
    lowered = key.lower()
    return any(p in lowered for p in SECRET_KEY_PARTS) or any(p in lowered for p in PERSONAL_KEY_PARTS)


def scrub_text(text: str) -> str:
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)


def scrub(value: Any, depth: int = 0) -> Any:
    """Mask sensitive keys and credentials inside strings, recursively."""
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and _sensitive(k) else scrub(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        # header lists come as [name, value] pairs
        if len(value) == 2 and isinstance(value[0], str) and _sensitive(value[0]):
            return [value[0], MASK]
        return [scrub(v, depth + 1) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def scrub_event(event: dict, hint: dict | None = None) -> dict:
    """`before_send` / `before_send_transaction`: scrub the whole event."""
    return scrub(event)


def scrub_breadcrumb(crumb: dict, hint: dict | None = None) -> dict:
    return scrub(crumb)


def init_sentry(settings: Settings, *, component: str) -> bool:
    """Initialise Sentry for `component` (web, worker, beat). Returns False without a DSN."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.flask import FlaskIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment,
        server_name=component,
        send_default_pii=False,
        before_send=scrub_event,
        before_send_transaction=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
        integrations=[FlaskIntegration(), CeleryIntegration(monitor_beat_tasks=True)],
        traces_sample_rate=0.0,
    )
    sentry_sdk.set_tag("component", component)
    return True
