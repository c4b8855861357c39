"""The task-side wiring of an Adressen sync: the party's context and lock, and the `Domain` for the runner.

The same context (`beteiligte.context.sync_context`) and the same lock kind as the Beteiligte and
Kommunikation syncs: one lock per CBeteiligte, so an address sync never interleaves its Advoware writes
with a party sync. No failure is recorded on the party (its status belongs to the party sync): a failed
address carries its own message on the CAdresse, a failed task names the party in Flower.
"""
from __future__ import annotations

from bitbylaw_tasks.beteiligte.context import sync_context
from bitbylaw_tasks.beteiligte.sweep import LOCK_KIND
from bitbylaw_tasks.outcomes import Domain

ADRESSEN = Domain("adressen", LOCK_KIND)

__all__ = ["ADRESSEN", "sync_context"]
