"""Log setup of every process: the level (LOG_LEVEL), text or JSON lines (LOG_FORMAT), and what stays quiet.

Quiet means: at INFO a running system logs one line per sync decision that
changed something, plus warnings and errors. These go to DEBUG instead:

- the simulators' HTTP access lines (werkzeug);
- a sync decision that changed nothing (`path=no_change`, per record per sweep);
- Celery's per-task "received" / "succeeded" lines (Flower and the decision
  line say the same; retries and failures keep their level), and beat's
  "Sending due task" line per periodic run.

JSON lines come from python-json-logger (`time`, `level`, `logger`, `message`,
plus any `extra`). Celery workers and beat get this through Celery's logging
signals (`connect_celery`), the simulators and the web shim through
`configure_logging`.
"""
from __future__ import annotations

import logging

from bitbylaw_tasks.settings import Settings

NO_CHANGE = "no_change"
QUIET_LOGGERS = ("werkzeug",)
CELERY_TASK_LINES = ("celery.worker.strategy", "celery.app.trace", "celery.beat")
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


class QuietFilter(logging.Filter):
    """Demote the routine lines above to DEBUG, then let through what reaches `threshold`."""

    def __init__(self, threshold: int):
        super().__init__()
        self.threshold = threshold

    @staticmethod
    def routine(record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return False
        if record.name.startswith(QUIET_LOGGERS):
            return True
        if record.name.startswith("bitbylaw_tasks.") and isinstance(record.args, tuple):
            return NO_CHANGE in record.args
        if record.name in CELERY_TASK_LINES:
            text = str(record.msg)
            return text.endswith(" received") or " succeeded in " in text or text.startswith("Scheduler: Sending due")
        return False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.routine(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= self.threshold


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})


def _level(level: int | str) -> int:
    return level if isinstance(level, int) else logging.getLevelName(str(level).upper())


def apply_to_handlers(logger: logging.Logger, settings: Settings, level: int | str | None = None) -> None:
    """Give `logger`'s handlers the quiet filter and, with LOG_FORMAT=json, the JSON formatter."""
    threshold = _level(level if level is not None else settings.log_level)
    for handler in logger.handlers:
        if not any(isinstance(f, QuietFilter) for f in handler.filters):
            handler.addFilter(QuietFilter(threshold))
        if settings.log_format == "json":
            handler.setFormatter(json_formatter())


def configure_logging(settings: Settings) -> None:
    """For processes Celery does not set up (simulators, web shim): one stderr handler on the root logger."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    apply_to_handlers(root, settings)
    for name in ("gunicorn.error", "gunicorn.access"):  # gunicorn's own handlers, when running under it
        apply_to_handlers(logging.getLogger(name), settings)


def connect_celery(settings_source) -> None:
    """Hook the setup into Celery's logging signals; `settings_source()` returns the Settings."""
    from celery.signals import after_setup_logger, after_setup_task_logger

    def _setup(logger=None, loglevel=None, **_):
        if logger is not None:
            apply_to_handlers(logger, settings_source(), loglevel)

    after_setup_logger.connect(_setup, weak=False)
    after_setup_task_logger.connect(_setup, weak=False)
