"""The Celery application: built from `Settings` with celeryconfig and beat_schedule.

Workers and beat start it with `celery -A bitbylaw_tasks.celery_app ...`;
code that enqueues imports `app` from here. Sentry is initialised in worker
and beat processes through the `celeryd_init` / `beat_init` signals.
"""
from __future__ import annotations

import sys

from celery import Celery
from celery.signals import beat_init, celeryd_init

import beat_schedule
import celeryconfig
from bitbylaw_tasks import logs
from bitbylaw_tasks.domain_settings import check_domain_settings
from bitbylaw_tasks.settings import Settings, SettingsError, get_settings

TASK_MODULES = [
    "bitbylaw_tasks.ops.tasks",
    "bitbylaw_tasks.beteiligte.tasks",
    "bitbylaw_tasks.kommunikation.tasks",
    "bitbylaw_tasks.calendar.tasks",
    "bitbylaw_tasks.inbound.tasks",
    "bitbylaw_tasks.adressen.tasks",
]


def create_celery(settings: Settings) -> Celery:
    celery = Celery("bitbylaw_tasks", include=TASK_MODULES)
    celery.conf.update(celeryconfig.build(settings))
    celery.conf.beat_schedule = beat_schedule.build(settings)
    celery.conf.bitbylaw_settings = settings
    return celery


def _settings_or_exit() -> Settings:
    try:
        settings = get_settings()
        check_domain_settings(settings)
        return settings
    except SettingsError as exc:
        print(f"bitbylaw: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


app = create_celery(_settings_or_exit())
logs.connect_celery(lambda: settings_of(app))  # quiet lines, LOG_FORMAT=json (bitbylaw_tasks/logs.py)


def settings_of(celery: Celery) -> Settings:
    return celery.conf.bitbylaw_settings


@celeryd_init.connect
def _init_worker_sentry(**_):
    from bitbylaw_tasks.sentry import init_sentry

    init_sentry(get_settings(), component="worker")


@beat_init.connect
def _init_beat_sentry(**_):
    from bitbylaw_tasks.sentry import init_sentry

    init_sentry(get_settings(), component="beat")
