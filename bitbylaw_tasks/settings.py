"""The one settings object: every setting read once from the environment (and an optional `.env`).

Read with django-environ. Nothing else in the code base looks at `os.environ`;
components receive a `Settings` (or the part they need). A missing or malformed
setting raises `SettingsError`, whose message is one line naming the variable;
the CLI and the process entry points print it and exit instead of a traceback.
Every variable is documented in `.env.example`.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import environ


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


SCHEMES_REDIS = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class Settings:
    # --- Redis: one URL per role (SPEC §2 "Redis usage") ---
    broker_url: str = "redis://127.0.0.1:6379/0"
    lock_redis_url: str = "redis://127.0.0.1:6379/1"
    calendar_redis_url: str = "redis://127.0.0.1:6379/2"
    result_backend_url: str = "redis://127.0.0.1:6379/3"

    # --- Celery reliability (explained in celeryconfig.py) ---
    task_soft_time_limit: int = 240
    task_time_limit: int = 300
    visibility_timeout: int = 3600
    result_expires: int = 86400
    heartbeat_interval: float = 60.0
    heartbeat_stale_after: float = 300.0

    # --- Beteiligte sync ---
    sync_lock_ttl: int = 900
    transient_retries: int = 3
    conflict_policy: dict[str, str] = field(default_factory=dict)  # field group -> espocrm|advoware
    sweep_interval: float = 900.0
    retry_drain_interval: float = 30.0
    freshness_tick: float = 2.0    # seconds between the freshness checker's runs (beat): checks come paced
    freshness_headroom: int = 8    # Advoware calls per minute the checker leaves for user-triggered syncs

    # --- HTTP clients ---
    http_connect_timeout: float = 3.05
    http_read_timeout: float = 30.0

    # --- calendar sync (SPEC §6) ---
    calendar_days_back: int = 30       # the sync window starts this many days before today
    calendar_days_ahead: int = 365     # ... and ends this many days after today
    calendar_interval: float = 900.0   # seconds between calendar.sync_all runs (beat)
    calendar_delete_termine: bool = False  # a Google deletion of a Termin deletes it in Advoware (else re-create)
    calendar_empty_guard: int = 5      # stop when a side is empty while the state knows this many (0 = off)

    # --- EspoCRM ---
    espocrm_base_url: str = ""
    espocrm_api_key: str = ""
    espocrm_max_requests_per_minute: int = 600
    # webhook id -> secret key (from EspoCRM's Webhook records); several allowed
    webhook_secrets: dict[str, str] = field(default_factory=dict)
    webhook_token: str = ""
    web_public_url: str = ""           # where EspoCRM reaches the shim (`bitbylaw espocrm setup` registers it)
    espocrm_admin_user: str = "admin"  # only `bitbylaw espocrm setup` logs in as an administrator
    espocrm_admin_password: str = ""

    # --- Advoware ---
    advoware_base_url: str = ""
    advoware_token_url: str = ""  # the security gateway's token endpoint; empty = {base}/api/v1/Token
    advoware_api_key: str = ""
    advoware_app_id: str = ""
    advoware_product_id: str = ""
    advoware_kanzlei: str = ""
    advoware_database: str = ""
    advoware_user: str = ""
    advoware_role: str = ""
    advoware_password: str = ""
    advoware_max_requests_per_minute: int = 600
    advoware_token_memory: float = 2.0  # seconds a process reuses the token it read from Redis (0: read every call)
    advoware_interactive_reserve: int = 4  # calls per window background work never takes (checks, calendar)

    # --- Google Calendar ---
    google_calendar_endpoint: str = ""
    google_service_account_file: str = ""
    google_max_requests_per_minute: int = 600  # Calendar API's per-user quota is far higher; shared by workers

    # --- sandbox (used when no real system is configured) ---
    sandbox_host: str = "127.0.0.1"
    sandbox_espocrm_port: int = 8081
    sandbox_advoware_port: int = 8082
    sandbox_google_port: int = 8083

    # --- web shim, Flower, Sentry ---
    web_port: int = 8000
    webhook_max_body_bytes: int = 1_048_576
    flower_port: int = 5555
    flower_basic_auth: str = "admin:admin"
    flower_db: str = ".run/flower.db"
    sentry_dsn: str = ""
    sentry_environment: str = "development"

    # --- the Advoware proxy (SPEC §13, docs/advoware-proxy.md) ---
    proxy_max_body_bytes: int = 1_048_576       # larger request bodies get 413
    proxy_max_response_bytes: int = 8_388_608   # a larger Advoware answer gets 502 (not read to the end)
    proxy_read_timeout: float = 10.0            # Advoware slower than this per read: 504
    proxy_share_percent: int = 50               # all proxy callers together: at most this % of the Advoware budget
    proxy_key_share_percent: int = 25           # one caller key: at most this % of the Advoware budget
    proxy_audit_maxlen: int = 100_000           # audit stream entries kept (approximately)

    # --- logs (bitbylaw_tasks/logs.py) ---
    log_level: str = "INFO"
    log_format: str = "text"           # text | json (python-json-logger)

    # --- notifications and the status page (bitbylaw_tasks/notify.py, web/status.py; docs/operators.md) ---
    notify_language: str = "de"        # de | en: the headline of a stream note
    notify_operator_user: str = ""     # EspoCRM userName told when a record has no assigned user
    notify_operator_team: str = ""     # EspoCRM team id told when no operator user is set
    notify_window: int = 21600         # seconds: one note per record and reason
    status_basic_auth: str = ""        # user:password for /status; empty = FLOWER_BASIC_AUTH
    # --- inbound channels (SPEC §12, docs/inbound-channels.md) ---
    inbound_phone_region: str = "DE"   # region for phone numbers written without a country code
    lead_token: str = ""               # shared token (header X-Lead-Token) for POST /vmh/webhook/lead
    lead_hmac_secret: str = ""         # or HMAC-SHA256 of the raw body (header X-Lead-Signature: sha256=<hex>)
    lead_field_map: dict[str, str] = field(default_factory=dict)  # form field name -> lead field
    lead_honeypot_field: str = ""      # a form field humans leave empty; filled -> accepted, never queued
    lead_client_ip_field: str = ""     # form field carrying the visitor's address (else the sender's address)
    lead_rate_limit: str = "5/minute"  # per visitor address (`limits` notation), beyond it 429
    lead_dedupe_seconds: int = 86400   # a resubmission of the same content within this window creates nothing
    lead_source: str = "Web Site"      # the Lead's `source` (an option of EspoCRM's Lead.source enum)
    lead_assign_user: str = ""         # userName the new leads are assigned to ...
    lead_assign_team: str = ""         # ... or a team id: round-robin over its active users (wins when set)
    threecx_api_key: str = ""          # the key the 3CX template sends (Basic auth password or X-Api-Key)
    threecx_extension_users: dict[str, str] = field(default_factory=dict)  # 3CX extension -> EspoCRM userName
    threecx_unknown_creates_lead: bool = False  # a call from an unknown number also creates a Lead
    threecx_rate_limit: str = "600/minute"      # per client address for /3cx/*, beyond it 429
    threecx_miss_fallback: bool = True          # an index miss asks EspoCRM once (CBeteiligte by phone)
    phone_index_rebuild_interval: float = 3600.0  # seconds between phone index rebuilds (beat)
    espocrm_public_url: str = ""       # EspoCRM as browsers reach it, for ContactUrl (empty: the API base URL)

    # --- workers: pool and concurrency per queue ---
    worker_pool: str = "threads"
    worker_concurrency: dict[str, int] = field(
        default_factory=lambda: {"beteiligte": 8, "kommunikation": 8, "calendar": 4, "default": 2}
    )

    # Each system is real or simulated on its own (a real EspoCRM with simulated Advoware and Google is
    # a firm's staging system and the shape of the real-EspoCRM test tier).
    @property
    def espocrm_simulated(self) -> bool:
        """No ESPOCRM_BASE_URL: the EspoCRM simulator on SANDBOX_ESPOCRM_PORT."""
        return not self.espocrm_base_url

    @property
    def advoware_simulated(self) -> bool:
        """No ADVOWARE_BASE_URL: the Advoware simulator on SANDBOX_ADVOWARE_PORT."""
        return not self.advoware_base_url

    @property
    def google_simulated(self) -> bool:
        """Neither GOOGLE_CALENDAR_ENDPOINT nor GOOGLE_SERVICE_ACCOUNT_FILE: the Google simulator."""
        return not self.google_calendar_endpoint and not self.google_service_account_file

    @property
    def simulated_systems(self) -> tuple[str, ...]:
        """The systems the sandbox must serve, of `espocrm`, `advoware`, `google`."""
        flags = {"espocrm": self.espocrm_simulated, "advoware": self.advoware_simulated,
                 "google": self.google_simulated}
        return tuple(name for name, simulated in flags.items() if simulated)

    @property
    def uses_sandbox(self) -> bool:
        """True when at least one system is simulated (then `bitbylaw run` starts the sandbox)."""
        return bool(self.simulated_systems)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    def redacted(self) -> dict:
        """The settings as a dict with every secret masked, for `bitbylaw config`."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS and value:
                value = "***"
            elif f.name == "webhook_secrets":
                value = {k: "***" for k in value}
            elif isinstance(value, str) and "://" in value:
                value = _mask_url_password(value)
            out[f.name] = value
        return out


SECRET_FIELDS = {
    "espocrm_api_key", "espocrm_admin_password", "advoware_api_key", "advoware_password", "webhook_token",
    "flower_basic_auth", "sentry_dsn", "status_basic_auth", "lead_token", "lead_hmac_secret", "threecx_api_key",
}


def _as_variable(value) -> str:
    """A setting's value written the way its environment variable is read back (`_parse`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def variables(settings: Settings, *, masked: bool = True) -> dict[str, str]:
    """Every setting by its environment variable name, as text that reads back to the same value;
    secrets masked unless `masked=False` (for handing the settings to child processes)."""
    if masked:
        shown = settings.redacted()
    else:
        shown = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    return {name: _as_variable(shown[attr]) for name, attr, _ in _VARS}


def _mask_url_password(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


# (env var, settings field, kind); kind decides the parser and validation.
_VARS: list[tuple[str, str, str]] = [
    ("REDIS_BROKER_URL", "broker_url", "redis_url"),
    ("REDIS_LOCK_URL", "lock_redis_url", "redis_url"),
    ("REDIS_CALENDAR_URL", "calendar_redis_url", "redis_url"),
    ("REDIS_RESULT_URL", "result_backend_url", "redis_url"),
    ("TASK_SOFT_TIME_LIMIT", "task_soft_time_limit", "int"),
    ("TASK_TIME_LIMIT", "task_time_limit", "int"),
    ("BROKER_VISIBILITY_TIMEOUT", "visibility_timeout", "int"),
    ("RESULT_EXPIRES", "result_expires", "int"),
    ("HEARTBEAT_INTERVAL", "heartbeat_interval", "float"),
    ("HEARTBEAT_STALE_AFTER", "heartbeat_stale_after", "float"),
    ("SYNC_LOCK_TTL", "sync_lock_ttl", "int"),
    ("SYNC_TRANSIENT_RETRIES", "transient_retries", "int"),
    ("CONFLICT_POLICY", "conflict_policy", "policy"),
    ("FRESHNESS_TICK", "freshness_tick", "float"),
    ("FRESHNESS_HEADROOM", "freshness_headroom", "int"),
    ("SWEEP_INTERVAL", "sweep_interval", "float"),
    ("RETRY_DRAIN_INTERVAL", "retry_drain_interval", "float"),
    ("HTTP_CONNECT_TIMEOUT", "http_connect_timeout", "float"),
    ("HTTP_READ_TIMEOUT", "http_read_timeout", "float"),
    ("CALENDAR_DAYS_BACK", "calendar_days_back", "int"),
    ("CALENDAR_DAYS_AHEAD", "calendar_days_ahead", "int"),
    ("CALENDAR_INTERVAL", "calendar_interval", "float"),
    ("CALENDAR_DELETE_TERMINE", "calendar_delete_termine", "bool"),
    ("CALENDAR_EMPTY_GUARD", "calendar_empty_guard", "int"),
    ("ESPOCRM_BASE_URL", "espocrm_base_url", "http_url"),
    ("ESPOCRM_API_KEY", "espocrm_api_key", "str"),
    ("ESPOCRM_MAX_REQUESTS_PER_MINUTE", "espocrm_max_requests_per_minute", "int"),
    ("WEBHOOK_SECRETS", "webhook_secrets", "mapping"),
    ("WEBHOOK_TOKEN", "webhook_token", "str"),
    ("WEB_PUBLIC_URL", "web_public_url", "http_url"),
    ("ESPOCRM_ADMIN_USER", "espocrm_admin_user", "str"),
    ("ESPOCRM_ADMIN_PASSWORD", "espocrm_admin_password", "str"),
    ("ADVOWARE_BASE_URL", "advoware_base_url", "http_url"),
    ("ADVOWARE_TOKEN_URL", "advoware_token_url", "http_url"),
    ("ADVOWARE_API_KEY", "advoware_api_key", "str"),
    ("ADVOWARE_APP_ID", "advoware_app_id", "str"),
    ("ADVOWARE_PRODUCT_ID", "advoware_product_id", "str"),
    ("ADVOWARE_KANZLEI", "advoware_kanzlei", "str"),
    ("ADVOWARE_DATABASE", "advoware_database", "str"),
    ("ADVOWARE_USER", "advoware_user", "str"),
    ("ADVOWARE_ROLE", "advoware_role", "str"),
    ("ADVOWARE_PASSWORD", "advoware_password", "str"),
    ("ADVOWARE_MAX_REQUESTS_PER_MINUTE", "advoware_max_requests_per_minute", "int"),
    ("ADVOWARE_TOKEN_MEMORY", "advoware_token_memory", "float"),
    ("ADVOWARE_INTERACTIVE_RESERVE", "advoware_interactive_reserve", "int"),
    ("GOOGLE_CALENDAR_ENDPOINT", "google_calendar_endpoint", "http_url"),
    ("GOOGLE_SERVICE_ACCOUNT_FILE", "google_service_account_file", "str"),
    ("GOOGLE_MAX_REQUESTS_PER_MINUTE", "google_max_requests_per_minute", "int"),
    ("SANDBOX_HOST", "sandbox_host", "str"),
    ("SANDBOX_ESPOCRM_PORT", "sandbox_espocrm_port", "port"),
    ("SANDBOX_ADVOWARE_PORT", "sandbox_advoware_port", "port"),
    ("SANDBOX_GOOGLE_PORT", "sandbox_google_port", "port"),
    ("WEB_PORT", "web_port", "port"),
    ("WEBHOOK_MAX_BODY_BYTES", "webhook_max_body_bytes", "int"),
    ("FLOWER_PORT", "flower_port", "port"),
    ("FLOWER_BASIC_AUTH", "flower_basic_auth", "basic_auth"),
    ("FLOWER_DB", "flower_db", "str"),
    ("SENTRY_DSN", "sentry_dsn", "http_url"),
    ("SENTRY_ENVIRONMENT", "sentry_environment", "str"),
    ("PROXY_MAX_BODY_BYTES", "proxy_max_body_bytes", "int"),
    ("PROXY_MAX_RESPONSE_BYTES", "proxy_max_response_bytes", "int"),
    ("PROXY_READ_TIMEOUT", "proxy_read_timeout", "float"),
    ("PROXY_SHARE_PERCENT", "proxy_share_percent", "int"),
    ("PROXY_KEY_SHARE_PERCENT", "proxy_key_share_percent", "int"),
    ("PROXY_AUDIT_MAXLEN", "proxy_audit_maxlen", "int"),
    ("LOG_LEVEL", "log_level", "log_level"),
    ("LOG_FORMAT", "log_format", "log_format"),
    ("NOTIFY_LANGUAGE", "notify_language", "language"),
    ("NOTIFY_OPERATOR_USER", "notify_operator_user", "str"),
    ("NOTIFY_OPERATOR_TEAM", "notify_operator_team", "str"),
    ("NOTIFY_WINDOW", "notify_window", "int"),
    ("STATUS_BASIC_AUTH", "status_basic_auth", "basic_auth_or_empty"),
    ("INBOUND_PHONE_REGION", "inbound_phone_region", "region"),
    ("LEAD_TOKEN", "lead_token", "str"),
    ("LEAD_HMAC_SECRET", "lead_hmac_secret", "str"),
    ("LEAD_FIELD_MAP", "lead_field_map", "mapping"),  # targets: inbound.lead_form.check_settings
    ("LEAD_HONEYPOT_FIELD", "lead_honeypot_field", "str"),
    ("LEAD_CLIENT_IP_FIELD", "lead_client_ip_field", "str"),
    ("LEAD_RATE_LIMIT", "lead_rate_limit", "rate"),
    ("LEAD_DEDUPE_SECONDS", "lead_dedupe_seconds", "int"),
    ("LEAD_SOURCE", "lead_source", "str"),
    ("LEAD_ASSIGN_USER", "lead_assign_user", "str"),
    ("LEAD_ASSIGN_TEAM", "lead_assign_team", "str"),
    ("THREECX_API_KEY", "threecx_api_key", "str"),
    ("THREECX_EXTENSION_USERS", "threecx_extension_users", "mapping"),
    ("THREECX_UNKNOWN_CREATES_LEAD", "threecx_unknown_creates_lead", "bool"),
    ("THREECX_RATE_LIMIT", "threecx_rate_limit", "rate"),
    ("THREECX_MISS_FALLBACK", "threecx_miss_fallback", "bool"),
    ("PHONE_INDEX_REBUILD_INTERVAL", "phone_index_rebuild_interval", "float"),
    ("ESPOCRM_PUBLIC_URL", "espocrm_public_url", "http_url"),
    ("WORKER_POOL", "worker_pool", "pool"),
    ("WORKER_CONCURRENCY", "worker_concurrency", "int_mapping"),
]

# Settings that must be present together: when the first is set, all others are required.
_REQUIRED_WITH = {
    "ESPOCRM_BASE_URL": ["ESPOCRM_API_KEY"],
    "ADVOWARE_BASE_URL": [
        "ADVOWARE_API_KEY", "ADVOWARE_APP_ID", "ADVOWARE_PRODUCT_ID", "ADVOWARE_KANZLEI",
        "ADVOWARE_DATABASE", "ADVOWARE_USER", "ADVOWARE_PASSWORD",
    ],
}


# Celery reads these straight from os.environ, overriding its configuration.
SHADOWING_CELERY_VARS = {
    "CELERY_BROKER_URL": "REDIS_BROKER_URL", "CELERY_BROKER_READ_URL": "REDIS_BROKER_URL",
    "CELERY_BROKER_WRITE_URL": "REDIS_BROKER_URL", "CELERY_RESULT_BACKEND": "REDIS_RESULT_URL",
}


def _parse(name: str, kind: str, raw: str):
    raw = raw.strip()
    if kind == "str":
        return raw
    if kind in ("int", "port"):
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name}: expected an integer, got {raw!r}") from None
        if value < 0 or (kind == "port" and not 0 < value < 65536):
            raise SettingsError(f"{name}: out of range: {value}")
        return value
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if kind == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("", "0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}: expected true or false, got {raw!r}")
    if kind == "redis_url":
        parsed = urlparse(raw)
        if parsed.scheme not in SCHEMES_REDIS or not (parsed.hostname or parsed.path):
            raise SettingsError(f"{name}: expected a redis:// URL, got {raw!r}")
        return raw
    if kind == "http_url":
        if not raw:
            return ""
        parsed = urlparse(raw)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise SettingsError(f"{name}: expected an http(s) URL, got {raw!r}")
        return raw
    if kind == "basic_auth":
        if ":" not in raw or raw.startswith(":"):
            raise SettingsError(f"{name}: expected user:password")
        return raw
    if kind == "basic_auth_or_empty":
        return _parse(name, "basic_auth", raw) if raw else ""
    if kind == "language":
        if raw not in ("de", "en"):
            raise SettingsError(f"{name}: expected de or en, got {raw!r}")
        return raw
    if kind == "log_level":
        if raw.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"{name}: expected DEBUG, INFO, WARNING or ERROR, got {raw!r}")
        return raw.upper()
    if kind == "log_format":
        if raw not in ("text", "json"):
            raise SettingsError(f"{name}: expected text or json, got {raw!r}")
        return raw
    if kind == "pool":
        if raw not in ("threads", "gevent", "prefork", "solo"):
            raise SettingsError(f"{name}: expected threads, gevent, prefork or solo, got {raw!r}")
        return raw
    if kind == "policy":
        # The shape only: which groups exist is the domain's to say (`beteiligte.compare.check_settings`,
        # run where the Celery app starts), so this base module names no domain.
        policy = _parse(name, "mapping", raw)
        for side in policy.values():
            if side not in ("espocrm", "advoware"):
                raise SettingsError(f"{name}: expected group=espocrm|advoware[,group=...]")
        return policy
    if kind == "region":
        import phonenumbers

        if raw.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise SettingsError(f"{name}: expected a region code such as DE, got {raw!r}")
        return raw.upper()
    if kind == "rate":
        from limits import parse

        try:
            parse(raw)
        except ValueError:
            raise SettingsError(f"{name}: expected a rate such as 5/minute, got {raw!r}") from None
        return raw
    if kind in ("mapping", "int_mapping"):
        out = {}
        for part in filter(None, (p.strip() for p in raw.split(","))):
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise SettingsError(f"{name}: expected key=value[,key=value...]")
            value = value.strip()
            if kind == "int_mapping":
                if not value.isdigit() or int(value) < 1:
                    raise SettingsError(f"{name}: {key.strip()} needs a positive integer")
                value = int(value)
            out[key.strip()] = value
        return out
    raise AssertionError(kind)


def load_settings(environ_map: dict | None = None, env_file: str | Path | None = None, *,
                  require_complete: bool = True) -> Settings:
    """Build `Settings` from a mapping (default: the process environment) and an optional .env file.

    Values already in the environment win over the .env file (django-environ's rule).
    `require_complete=False` skips the "set together" rule (`bitbylaw espocrm setup` runs before
    the integration user's API key exists; it creates it).
    """
    source = dict(os.environ if environ_map is None else environ_map)

    class _Env(environ.Env):
        ENVIRON = source  # read_env() and the getters use this mapping, not os.environ

    if env_file is not None and Path(env_file).is_file():
        _Env.read_env(str(env_file), overwrite=False)  # the environment wins over the file
    env = _Env()
    for name in SHADOWING_CELERY_VARS:
        if source.get(name):
            raise SettingsError(f"{name}: not supported (Celery would read it behind the settings' back); "
                                f"use {SHADOWING_CELERY_VARS[name]}")
    values = {}
    defaults = Settings()
    for name, attr, kind in _VARS:
        raw = env.str(name, default=None)
        if raw is None:
            continue
        values[attr] = _parse(name, kind, raw)
    for trigger, needed in _REQUIRED_WITH.items():
        if require_complete and source.get(trigger, "").strip():
            for name in needed:
                if not source.get(name, "").strip():
                    raise SettingsError(f"{name}: required when {trigger} is set")
    settings = dataclasses.replace(defaults, **values)
    if settings.task_soft_time_limit >= settings.task_time_limit:
        raise SettingsError("TASK_SOFT_TIME_LIMIT: must be below TASK_TIME_LIMIT")
    if not 0 < settings.freshness_tick <= 30:
        raise SettingsError("FRESHNESS_TICK: expected seconds between 0 and 30 (the checker reads a 60 s window)")
    if not 0 <= settings.advoware_interactive_reserve < settings.advoware_max_requests_per_minute:
        raise SettingsError("ADVOWARE_INTERACTIVE_RESERVE: must be 0..ADVOWARE_MAX_REQUESTS_PER_MINUTE - 1")
    if settings.visibility_timeout <= settings.task_time_limit:
        raise SettingsError("BROKER_VISIBILITY_TIMEOUT: must exceed TASK_TIME_LIMIT")
    if not 1 <= settings.proxy_key_share_percent <= settings.proxy_share_percent <= 100:
        raise SettingsError("PROXY_KEY_SHARE_PERCENT: must be 1..PROXY_SHARE_PERCENT, and PROXY_SHARE_PERCENT 1..100")
    return settings


@functools.lru_cache(maxsize=2)
def get_settings(*, require_complete: bool = True) -> Settings:
    """The process-wide settings (environment + `.env` in the working directory)."""
    return load_settings(env_file=os.environ.get("BITBYLAW_ENV_FILE", ".env"), require_complete=require_complete)
