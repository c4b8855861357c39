"""The operators' status page `/status`: server-rendered HTML (Jinja), behind HTTP basic auth.

What it shows (docs/operators.md, "Status page"): Beteiligte records by
`syncStatus` (counted in EspoCRM), syncs per domain and result over the last
24 h with a chart (inline SVG drawn here from the hourly counters of
`metrics.py`), the failure register with reasons and links to EspoCRM, pending
manual actions (`ops.manual`), the age of the oldest Advoware check, queue
depths and heartbeats. Each part degrades on its own: an unreachable EspoCRM
or broker shows as such, the rest still renders. Deciding what to show is
pure (`counts_24h`, `chart_svg`, `allowed`); `collect` reads.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import time
from dataclasses import dataclass

import redis
from flask import Blueprint, Response, render_template, request
from markupsafe import Markup

from bitbylaw_tasks.beteiligte import status as bstatus
from bitbylaw_tasks.beteiligte import store as beteiligte_store
from bitbylaw_tasks.metrics import hourly
from bitbylaw_tasks.notify import record_url_template
from bitbylaw_tasks.ops import failures, heartbeat, manual
from bitbylaw_tasks.redis_clients import client_for
from bitbylaw_tasks.settings import Settings
from bitbylaw_tasks.timefmt import iso_utc
from integrations.errors import ApiError

#: The syncStatus values counted in EspoCRM, in the order a person reads them.
SYNC_STATUSES = (bstatus.CLEAN, bstatus.PENDING_SYNC, bstatus.DIRTY, bstatus.SYNCING, bstatus.FAILED,
                 bstatus.PERMANENTLY_FAILED, bstatus.DELETED_IN_ADVOWARE)
RESULTS = ("ok", "failed", "retry", "busy")
#: Domains whose entity id is an EspoCRM CBeteiligte id (the failure links to the record).
RECORD_DOMAINS = frozenset({"beteiligte", "kommunikation"})
FRESH_FOR = 2 * 3600  # seconds: the freshness alert's threshold (ops/prometheus/rules.yml)
SHOWN = 200           # rows of the failure and manual-action tables (newest failures, oldest actions)


def credentials(settings: Settings) -> str:
    """`user:password` for /status: STATUS_BASIC_AUTH, else Flower's (the same operators)."""
    return settings.status_basic_auth or settings.flower_basic_auth


def allowed(header: str | None, expected: str) -> bool:
    """Whether an `Authorization` header carries exactly the expected `user:password` (basic auth)."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, expected.encode())


def counts_24h(hours: list[tuple[int, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """Per domain: syncs by result over the given hours."""
    out: dict[str, dict[str, int]] = {}
    for _, row in hours:
        for field, count in row.items():
            domain, _, result = field.partition("|")
            per = out.setdefault(domain, dict.fromkeys(RESULTS, 0))
            per[result] = per.get(result, 0) + count
    return dict(sorted(out.items()))


def chart_svg(hours: list[tuple[int, dict[str, int]]], width: int = 720, height: int = 160) -> Markup:
    """A bar chart of the hours: per hour, finished syncs (ok) and failures side by side, all domains."""
    ok = [sum(n for f, n in row.items() if f.endswith("|ok")) for _, row in hours]
    failed = [sum(n for f, n in row.items() if f.endswith("|failed")) for _, row in hours]
    top = max([*ok, *failed, 1])
    left, bottom, slot = 36, height - 22, (width - 40) / max(len(hours), 1)
    scale = (bottom - 10) / top
    parts = [f'<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="Syncs and failures per hour, last 24 hours">',
             f'<line x1="{left}" y1="{bottom}" x2="{width - 4}" y2="{bottom}" stroke="#888"/>',
             f'<text x="{left - 4}" y="14" text-anchor="end" font-size="10">{top}</text>',
             f'<text x="{left - 4}" y="{bottom}" text-anchor="end" font-size="10">0</text>']
    bar = max(slot / 2 - 1, 1)
    for i, ((start, _), n_ok, n_failed) in enumerate(zip(hours, ok, failed)):
        x = left + i * slot
        label = time.strftime("%H:00", time.gmtime(start))
        for offset, n, css, what in ((0, n_ok, "ok", "syncs"), (bar, n_failed, "failed", "failures")):
            h = n * scale
            parts.append(f'<rect class="bar-{css}" x="{x + offset:.1f}" y="{bottom - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}"><title>{label} UTC: {n} {what}</title></rect>')
        if i % 3 == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - 6}" font-size="10">{label}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@dataclass
class Page:
    """Everything the template shows; None for a part that could not be read."""

    generated_at: str
    record_status: dict[str, int] | None
    syncs: dict[str, dict[str, int]] | None
    chart: Markup | None
    failures: list[dict] | None
    manual_actions: list[dict] | None
    oldest_check: str | None
    checks_stale: bool
    checked: int | None
    queues: dict[str, int] | None
    heartbeats: dict[str, dict] | None
    failures_total: int = 0
    manual_total: int = 0


def _record_status(espocrm) -> dict[str, int] | None:
    try:
        return {s: espocrm.search_beteiligte([{"type": "equals", "attribute": "syncStatus", "value": s}],
                                             select=["id"], max_size=1)[0] for s in SYNC_STATUSES}
    except ApiError:
        return None


def collect(settings: Settings, espocrm, now: float | None = None) -> Page:
    """Read every part of the page (each on its own: one unreachable source blanks only its part)."""
    from celeryconfig import QUEUES

    now = time.time() if now is None else now
    client = client_for(settings.lock_redis_url)
    url = record_url_template(settings)
    page = Page(iso_utc(now), _record_status(espocrm), None, None, None, None, None, False, None, None, None)
    try:
        hours = hourly(client, 24, now)
        page.syncs, page.chart = counts_24h(hours), chart_svg(hours)
        entries, actions = failures.entries(client), manual.pending(client)
        page.failures_total, page.manual_total = len(entries), len(actions)
        page.failures = [{**f, "since": iso_utc(f["at"]),
                          "link": url.format(id=f["entity_id"]) if f["domain"] in RECORD_DOMAINS else None}
                         for f in entries[:SHOWN]]
        page.manual_actions = [{**a, "since": iso_utc(a["since"]),
                                "link": url.format(id=a["entity_id"]) if a["domain"] != "calendar" else None}
                               for a in actions[:SHOWN]]
        page.checked, ages = beteiligte_store.check_ages(client, now, (1.0,))
        age = ages.get(1.0)
        page.oldest_check, page.checks_stale = _age(age), age is not None and age > FRESH_FOR
        page.heartbeats = {c: {**e, "last_seen": iso_utc(e["last_seen"]), "age": _age(e["age_s"])}
                           for c, e in heartbeat.report(client, settings.heartbeat_stale_after, now).items()}
    except (redis.RedisError, OSError):
        pass
    try:
        broker = client_for(settings.broker_url)
        page.queues = {q: int(broker.llen(q)) for q in QUEUES}
    except (redis.RedisError, OSError):
        pass
    return page


def blueprint(settings: Settings) -> Blueprint:
    bp = Blueprint("status", __name__, template_folder="templates")

    @bp.before_request
    def _auth():
        if not allowed(request.headers.get("Authorization"), credentials(settings)):
            return Response("authentication required\n", 401,
                            {"WWW-Authenticate": 'Basic realm="bitbylaw status", charset="UTF-8"'})
        return None

    @bp.get("/status")
    def status_page():
        from bitbylaw_tasks.clients import clients_for

        page = collect(settings, clients_for(settings).espocrm)
        return render_template("status.html", page=page, results=RESULTS, statuses=SYNC_STATUSES)

    return bp
