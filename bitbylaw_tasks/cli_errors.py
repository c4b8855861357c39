"""The CLI's expected failures: one line on stderr and a non-zero exit, never a traceback.

A command raises `CommandError` for what it detects itself (a record that
does not exist, a bad combination of arguments). `describe` turns the errors
every command may meet (an external system, Redis or the broker not
answering) into that one line; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class CommandError(Exception):
    """An operator-facing failure: `str(exc)` is the line to print, `code` the exit status."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def describe(exc: BaseException) -> tuple[str, int] | None:
    """(one line, exit status) for an expected failure, or None for anything else."""
    import redis
    from kombu.exceptions import OperationalError

    from bitbylaw_tasks.errors import SyncFailed
    from integrations.errors import ApiError, NotFound, Unavailable

    if isinstance(exc, CommandError):
        return str(exc), exc.code
    if isinstance(exc, NotFound):
        return f"not found: {exc}", 1
    if isinstance(exc, Unavailable):
        return f"{exc.system or 'a system'} unreachable: {exc}", 1
    if isinstance(exc, ApiError):
        return f"{exc.system or 'a system'} refused: {exc}", 1
    if isinstance(exc, SyncFailed):  # names the domain, the entity and the reason (outcomes.py)
        return str(exc), 1
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return f"Redis unreachable: {exc}", 1
    if isinstance(exc, OperationalError):
        return f"broker unreachable: {exc}", 1
    return None
