"""Notifications that reach people: who is told what, in which words, how often — and the thin poster.

A `Notice` (reason, subject, technical detail) becomes an EspoCRM stream post
(docs/operators.md, "Notifications"):

- about a record that still exists: a post on the record, `@mention`ing its
  assigned user, else the operator user (NOTIFY_OPERATOR_USER); with neither,
  a post to the operator team (NOTIFY_OPERATOR_TEAM) naming and linking the
  record, else a post on the record without a mention (its followers see it);
- about no record (a tripped calendar guard) or a record gone from EspoCRM: a
  post addressed to the operator user, else the operator team (`targetType`
  `users` / `teams`); with neither configured, only the log line;
- the headline in plain German or English (NOTIFY_LANGUAGE), the detail below.

Rate limit, per subject and reason, one window (NOTIFY_WINDOW seconds, Redis
`SET NX EX`): within it a repeated notice posts nothing — except a conflict
note, which is the only record of the values a merge overrode: it is posted,
but mentions nobody; notices to the operator are capped per reason and window
(`OPERATOR_BURST`). `decide` is pure; `Notifier` reads the assigned user's
name, takes the rate-limit slot and posts. Notifying never fails a sync.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from integrations.errors import ApiError

log = logging.getLogger(__name__)

CONFLICT = "conflict_overridden"
DELETED_IN_ADVOWARE = "deleted_in_advoware"
PERMANENT_FAILURE = "permanent_failure"
MANUAL_ACTION = "manual_action"
CALENDAR_GUARD = "calendar_guard"
DELETED_IN_ESPOCRM = "deleted_in_espocrm"

#: The headline of each reason, in the languages NOTIFY_LANGUAGE offers.
HEADLINES = {
    CONFLICT: {
        "de": "Dieser Datensatz wurde in EspoCRM und in Advoware zugleich geändert; der Abgleich hat einen Wert "
              "überschrieben. Bitte prüfen Sie die Angaben unten.",
        "en": "This record was changed in EspoCRM and in Advoware at the same time; the sync overwrote a value. "
              "Please check the details below.",
    },
    DELETED_IN_ADVOWARE: {
        "de": "Dieser Beteiligte wurde in Advoware gelöscht. Der EspoCRM-Datensatz bleibt erhalten; "
              "ein manueller Abgleich legt ihn in Advoware neu an.",
        "en": "This party was deleted in Advoware. The EspoCRM record is kept; a manual sync creates it in "
              "Advoware again.",
    },
    PERMANENT_FAILURE: {
        "de": "Der Abgleich mit Advoware schlägt immer wieder fehl und ist vorerst angehalten.",
        "en": "The sync with Advoware keeps failing and is paused for now.",
    },
    MANUAL_ACTION: {
        "de": "Der Abgleich braucht eine Entscheidung von Ihnen.",
        "en": "The sync needs a decision from you.",
    },
    CALENDAR_GUARD: {
        "de": "Der Kalender-Abgleich von {subject} wurde angehalten: eine Seite meldet keine Termine, obwohl "
              "viele bekannt sind. Es wurde nichts geschrieben.",
        "en": "The calendar sync of {subject} was stopped: one side reports no appointments although many are "
              "known. Nothing was written.",
    },
    DELETED_IN_ESPOCRM: {
        "de": "Der Beteiligte {subject} wurde in EspoCRM gelöscht. In Advoware bleibt er unverändert.",
        "en": "The party {subject} was deleted in EspoCRM. Advoware keeps it unchanged.",
    },
}
LANGUAGES = ("de", "en")
DETAIL_LABEL = {"de": "Details", "en": "Details"}
RECORD_LABEL = {"de": "Datensatz", "en": "Record"}
#: Notices about a subject that has no EspoCRM record to post on.
WITHOUT_RECORD = frozenset({CALENDAR_GUARD, DELETED_IN_ESPOCRM})
#: Notices posted even within the rate-limit window (without mention): they record data a merge overwrote.
ALWAYS_POSTED = frozenset({CONFLICT})
# Posted with a mention every time: the caller posts each one exactly once (`adressen.manual.reconcile` opens
# an action once), and a second action on the same record must reach the person as surely as the first.
UNTHROTTLED = frozenset({MANUAL_ACTION})
RATE_KEY = "notify:sent:{reason}:{subject}"
BURST_KEY = "notify:burst:{reason}"
#: Notices without a record all reach the same operator: at most this many per reason and window (a mass
#: deletion in EspoCRM must not bury them; `bitbylaw beteiligte deletions` and /status list the rest).
OPERATOR_BURST = 20
#: The EspoCRM client methods a notice uses (outside a sync's call budget, SPEC §4.8).
CLIENT_CALLS = frozenset({"post_note", "get_user", "find_user"})


@dataclass(frozen=True)
class NotifyPolicy:
    """The settings of notifying (NOTIFY_* variables)."""

    language: str = "de"
    operator_user: str = ""      # userName in EspoCRM
    operator_team: str = ""      # team id in EspoCRM
    window: int = 6 * 3600       # seconds: one notice per subject and reason
    record_url: str = ""         # "{id}" in it becomes the record id; empty: no links

    @classmethod
    def from_settings(cls, settings) -> "NotifyPolicy":
        return cls(settings.notify_language, settings.notify_operator_user, settings.notify_operator_team,
                   settings.notify_window, record_url_template(settings))


def record_url_template(settings) -> str:
    """The EspoCRM web address of a CBeteiligte record, with `{id}` for the id (`…/#CBeteiligte/view/{id}`)."""
    from bitbylaw_tasks.clients import sandbox_url

    base = settings.espocrm_base_url or sandbox_url(settings, settings.sandbox_espocrm_port)
    base = base.rstrip("/")
    if base.endswith("/api/v1"):
        base = base[: -len("/api/v1")]
    return base + "/#CBeteiligte/view/{id}"


@dataclass(frozen=True)
class Notice:
    """What happened: `subject` is the record id (or the employee's Kürzel for the calendar)."""

    reason: str
    subject: str
    detail: str = ""


@dataclass(frozen=True)
class Delivery:
    """How a notice is posted: on the record (`record_id`) or addressed to users/teams; `text` is final."""

    text: str
    record_id: str | None = None
    mention: str | None = None        # the userName the text @mentions
    to_user: str | None = None        # userName a record-less post is addressed to
    to_team: str | None = None        # team id a record-less post is addressed to


def compose(notice: Notice, policy: NotifyPolicy, mention: str | None, link: bool) -> str:
    """The post's text: mention and headline, the record's link when posted elsewhere, the detail."""
    language = policy.language if policy.language in LANGUAGES else "de"
    headline = HEADLINES[notice.reason][language].format(subject=notice.subject)
    lines = [f"@{mention} {headline}" if mention else headline]
    if link:
        where = policy.record_url.format(id=notice.subject) if policy.record_url else notice.subject
        lines.append(f"{RECORD_LABEL[language]}: {where}")
    if notice.detail:
        lines += ["", f"{DETAIL_LABEL[language]}: {notice.detail}"]
    return "\n".join(lines)


def decide(notice: Notice, policy: NotifyPolicy, *, assigned_user: str | None, first: bool) -> Delivery | None:
    """Where and how to post `notice`, or None (rate-limited, or nobody to address).

    `assigned_user`: the record's assigned user's userName (None: none); `first`: no notice of this
    subject and reason within the window."""
    if not first and notice.reason not in ALWAYS_POSTED:
        return None
    if notice.reason in WITHOUT_RECORD:
        if policy.operator_user:
            return Delivery(compose(notice, policy, policy.operator_user, True), mention=policy.operator_user,
                            to_user=policy.operator_user)
        if policy.operator_team:
            return Delivery(compose(notice, policy, None, True), to_team=policy.operator_team)
        return None
    person = (assigned_user or policy.operator_user or None) if first else None
    if person is None and first and policy.operator_team:
        return Delivery(compose(notice, policy, None, True), to_team=policy.operator_team)
    return Delivery(compose(notice, policy, person, False), record_id=notice.subject, mention=person)


class Notifier:
    """Posts notices through one EspoCRM client, rate-limited in Redis (DB 1)."""

    def __init__(self, espocrm, client: redis.Redis | None, policy: NotifyPolicy = NotifyPolicy()):
        self.espocrm, self.redis, self.policy = espocrm, client, policy

    def _first(self, notice: Notice) -> bool:
        """Takes the window's slot for this subject and reason; True when it was free."""
        if self.redis is None or self.policy.window <= 0:
            return True
        key = RATE_KEY.format(reason=notice.reason, subject=notice.subject)
        try:
            if not self.redis.set(key, "1", nx=True, ex=self.policy.window):
                return False
            if notice.reason not in WITHOUT_RECORD:
                return True
            burst = BURST_KEY.format(reason=notice.reason)
            self.redis.set(burst, 0, nx=True, ex=self.policy.window)
            return int(self.redis.incr(burst)) <= OPERATOR_BURST
        except redis.RedisError:
            return True  # better a repeated note than a lost one

    def _user_name(self, user_id: str | None) -> str | None:
        if not user_id:
            return None
        try:
            user = self.espocrm.get_user(user_id)
        except ApiError:
            return None
        return user.get("userName") if user.get("isActive", True) else None

    def send(self, notice: Notice, assigned_user_id: str | None = None) -> Delivery | None:
        """Decide and post; returns what was posted (None: nothing). Never raises."""
        if self.espocrm is None:
            return None
        first = notice.reason in UNTHROTTLED or self._first(notice)
        assigned = self._user_name(assigned_user_id) if first and notice.reason not in WITHOUT_RECORD else None
        delivery = decide(notice, self.policy, assigned_user=assigned, first=first)
        if delivery is None:
            log.info("notify %s %s: not posted (%s)", notice.reason, notice.subject,
                     "within the rate-limit window" if not first else "no operator configured")
            return None
        try:
            self._post(delivery)
        except ApiError as exc:
            log.warning("notify %s %s: EspoCRM refused the post (%s)", notice.reason, notice.subject, exc)
            return None
        log.info("notify %s %s: posted%s", notice.reason, notice.subject,
                 f" mentioning {delivery.mention}" if delivery.mention else "")
        return delivery

    def _post(self, delivery: Delivery) -> None:
        if delivery.record_id is not None:
            self.espocrm.post_note(delivery.record_id, delivery.text)
        elif delivery.to_user is not None:
            user = self.espocrm.find_user(delivery.to_user)
            if user is None:
                raise ApiError(f"operator user {delivery.to_user!r} not found in EspoCRM")
            self.espocrm.post_to(delivery.text, users_ids=[user["id"]])
        else:
            self.espocrm.post_to(delivery.text, teams_ids=[delivery.to_team])

    # The calls the domains make (one line each at their call sites).
    def record(self, reason: str, entity_id: str, detail: str = "", assigned_user_id: str | None = None):
        return self.send(Notice(reason, entity_id, detail), assigned_user_id)

    def manual_action(self, entity_id: str, detail: str, assigned_user_id: str | None = None):
        """For helpers that leave a decision to a person (Adressen…): tell them on the record. Pair it with
        `ops.manual.add` so the status page lists the action until it is resolved."""
        return self.send(Notice(MANUAL_ACTION, entity_id, detail), assigned_user_id)


def of(ctx) -> Notifier:
    """The notifier of a sync context (`ctx.notifier`), else one with the default policy over its clients."""
    notifier = getattr(ctx, "notifier", None)
    if notifier is not None:
        return notifier
    return Notifier(getattr(ctx, "espocrm", None), getattr(ctx, "redis", None))


def notifier_for(settings, espocrm, client: redis.Redis) -> Notifier:
    return Notifier(espocrm, client, NotifyPolicy.from_settings(settings))
