"""How a part of the product adds its command group to `bitbylaw` (`bitbylaw DOMAIN COMMAND …`).

Every group is built the same way: one sub-parser with a one-line help and a description, its commands
required, each command's help and description taken from its function's docstring (or given), and the
function stored as the parser's `func` default that `bitbylaw_tasks.cli.main` calls.
"""
from __future__ import annotations

from typing import Callable


def command_group(subparsers, name: str, help_text: str, description: str, *, metavar: str = "COMMAND"):
    """Add the group `name` and return `add(command, func, help_text=None, **defaults) -> parser`."""
    parser = subparsers.add_parser(name, help=help_text, description=description)
    commands = parser.add_subparsers(dest=f"{name.replace('-', '_')}_command", required=True, metavar=metavar)

    def add(command: str, func: Callable, help_text: str | None = None, **defaults):
        text = help_text if help_text is not None else func.__doc__
        p = commands.add_parser(command, help=text, description=text)
        p.set_defaults(func=func, **defaults)
        return p

    return add
