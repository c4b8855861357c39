"""Checks of settings whose valid values only a domain knows, run where a process starts.

The base `settings` module parses shapes and names no domain (tests/test_layers.py); each domain
checks its own values here: `CONFLICT_POLICY`'s field groups (Beteiligte), `LEAD_FIELD_MAP`'s
targets (leads). Run by the Celery app at import, by every CLI command (also those that read
partial settings, so this module must not build the Celery app) and by the web shim's entry point.
Each check raises `SettingsError` with one line.
"""
from __future__ import annotations

from bitbylaw_tasks.beteiligte.compare import check_settings as check_beteiligte_settings
from bitbylaw_tasks.inbound.lead_form import check_settings as check_lead_settings
from bitbylaw_tasks.settings import Settings

CHECKS = (check_beteiligte_settings, check_lead_settings)


def check_domain_settings(settings: Settings) -> None:
    for check in CHECKS:
        check(settings)
