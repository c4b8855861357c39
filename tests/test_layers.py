"""The base layer imports no domain (docs/architecture.md, "Layers"; issue 14).

A static check of the source: every import in the base modules (module level and inside functions),
followed through the other top-level `bitbylaw_tasks` modules they import, must never reach a sub-package
of `bitbylaw_tasks` (the domains `beteiligte`, `kommunikation`, `calendar`, … and the adapters `web`, `ops`)
— except the operational registers in `REGISTERS` (the failure register, the manual actions, the
heartbeats: Redis bookkeeping every domain writes), which are followed like base modules, so they too must
never reach a domain.
"""
import ast
from pathlib import Path

import pytest

import bitbylaw_tasks

PACKAGE = Path(bitbylaw_tasks.__file__).parent
BASE = ("settings", "outcomes", "locks", "enqueue", "exclusive", "messages", "metrics")
REGISTERS = ("ops.failures", "ops.manual", "ops.heartbeat")
REGISTER_PACKAGES = {register.split(".")[0] for register in REGISTERS}


def _imports(module: str) -> set[str]:
    """Every `bitbylaw_tasks…` module `module` (a top-level module of the package, or a register)
    imports, anywhere."""
    tree = ast.parse((PACKAGE / f"{module.replace('.', '/')}.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            name = node.module if node.level == 0 else f"bitbylaw_tasks.{node.module}"
            out.add(name)
            out |= {f"{name}.{alias.name}" for alias in node.names}  # `from bitbylaw_tasks import beteiligte`
    return {name for name in out if name.split(".")[0] == "bitbylaw_tasks"}


def _sub_package(name: str) -> str | None:
    parts = name.split(".")
    if len(parts) > 1 and (PACKAGE / parts[1] / "__init__.py").exists():
        return parts[1]
    return None


def domain_imports(module: str) -> dict[str, list[str]]:
    """{imported sub-package module: the chain of top-level modules that leads to it} from `module`."""
    found, seen, todo = {}, {module}, [(module, [module])]
    while todo:
        current, chain = todo.pop()
        for name in sorted(_imports(current)):
            inner = name.partition(".")[2]
            if inner in REGISTERS:  # a register: followed like a base module
                if inner not in seen:
                    seen.add(inner)
                    todo.append((inner, chain + [inner]))
                continue
            if inner in REGISTER_PACKAGES and "import" not in (PACKAGE / inner / "__init__.py").read_text():
                continue  # `from bitbylaw_tasks.ops import failures` also names the (empty) package
            if _sub_package(name):
                found.setdefault(name, chain)
                continue
            top = name.split(".")[1] if "." in name else None
            if top and (PACKAGE / f"{top}.py").exists() and top not in seen:
                seen.add(top)
                todo.append((top, chain + [top]))
    return found


@pytest.mark.parametrize("module", BASE)
def test_a_base_module_imports_no_domain(module):
    assert domain_imports(module) == {}


def test_the_check_sees_an_import_inside_a_function(tmp_path, monkeypatch):
    """The check must be able to fail: a function-local domain import, reached through another module."""
    (tmp_path / "beteiligte").mkdir()
    (tmp_path / "beteiligte" / "__init__.py").write_text("")
    (tmp_path / "base.py").write_text("from bitbylaw_tasks.helper import x\n")
    (tmp_path / "helper.py").write_text("def x():\n    from bitbylaw_tasks.beteiligte import service\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path)
    assert domain_imports("base") == {"bitbylaw_tasks.beteiligte": ["base", "helper"],
                                      "bitbylaw_tasks.beteiligte.service": ["base", "helper"]}


def test_a_register_is_followed_and_other_modules_of_its_package_are_not_base(tmp_path, monkeypatch):
    """A register that reaches a domain is reported; a non-register module of the same package is a domain."""
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "__init__.py").write_text('"""ops."""\n')
    (tmp_path / "ops" / "failures.py").write_text("from bitbylaw_tasks.calendar import state\n")
    (tmp_path / "ops" / "tasks.py").write_text("")
    (tmp_path / "calendar").mkdir()
    (tmp_path / "calendar" / "__init__.py").write_text("")
    (tmp_path / "base.py").write_text("from bitbylaw_tasks.ops import failures, tasks\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path)
    assert domain_imports("base") == {"bitbylaw_tasks.ops.tasks": ["base"],
                                      "bitbylaw_tasks.calendar": ["base", "ops.failures"],
                                      "bitbylaw_tasks.calendar.state": ["base", "ops.failures"]}


def test_conflict_policy_groups_are_checked_by_the_domain_where_the_app_starts():
    """Inverted: settings checks the shape, the Beteiligte domain its groups; a process still stops with one
    line naming the variable."""
    import subprocess
    import sys

    from bitbylaw_tasks.beteiligte.compare import check_settings
    from bitbylaw_tasks.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="CONFLICT_POLICY"):
        load_settings({"CONFLICT_POLICY": "name=newest"})
    unknown = load_settings({"CONFLICT_POLICY": "adresse=espocrm"})  # a group is not the base layer's to know
    with pytest.raises(SettingsError, match="CONFLICT_POLICY: unknown field group 'adresse'"):
        check_settings(unknown)
    check_settings(load_settings({"CONFLICT_POLICY": "name=advoware,company=espocrm"}))
    started = subprocess.run([sys.executable, "-c", "import bitbylaw_tasks.celery_app"], capture_output=True,
                             text=True, env={"CONFLICT_POLICY": "adresse=espocrm", "PATH": "/usr/bin:/bin",
                                             "BITBYLAW_ENV_FILE": "/nonexistent"}, timeout=60)
    assert started.returncode == 2
    assert started.stderr.strip().splitlines() == [
        "bitbylaw: configuration error: CONFLICT_POLICY: unknown field group 'adresse' (groups: name, person, company)"]
