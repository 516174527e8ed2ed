"""The dependency rule of the layout, checked on the source: a new arrow against it fails here.

- ``heads`` and ``losses`` import nothing of the project (plugins stay torch-only);
- ``datamodules`` imports none of ``heads``, ``losses``, ``phudge_lightning``;
- nothing imports the CLI (``phudge_lightning.cli``): it is the top of the graph.

Imports inside functions count too (``ast.walk`` sees every ``import`` statement).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("phudge_lightning", "heads", "losses", "datamodules")
FORBIDDEN = {
    "heads": {"losses", "datamodules", "phudge_lightning"},
    "losses": {"heads", "datamodules", "phudge_lightning"},
    "datamodules": {"heads", "losses", "phudge_lightning"},
}
CLI = "phudge_lightning.cli"
# Scripts that drive the CLI as a user does (above the top of the graph; nothing imports them).
CLI_DRIVERS = {"phudge_lightning.bench.gpu.paper_path"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in the file names, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # ``from phudge_lightning import cli`` imports the submodule
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def violations() -> list[str]:
    found = []
    for path in source_files():
        top = module_name(path).split(".")[0]
        for name in sorted(imported_modules(path)):
            root = name.split(".")[0]
            if root in FORBIDDEN.get(top, set()):
                found.append(f"{path.relative_to(REPO)} imports {name} ({top} must not import {root})")
            if (name == CLI or name.startswith(CLI + ".")) and module_name(path) not in {CLI, *CLI_DRIVERS}:
                found.append(f"{path.relative_to(REPO)} imports the CLI ({name})")
    return found


def test_the_layout_keeps_its_dependency_rule():
    assert source_files(), "no source files found"
    assert violations() == []


@pytest.mark.parametrize(("package", "line", "forbidden"), [
    ("heads", "from phudge_lightning.judge import Judge", True),
    ("losses", "import datamodules.records", True),
    ("datamodules", "from losses import get_loss", True),
    ("datamodules", "from . import records", False),
    ("phudge_lightning", "from datamodules import records", False),
    ("phudge_lightning", "from phudge_lightning import cli", True),
])
def test_the_checker_sees_a_new_arrow(tmp_path, monkeypatch, package, line, forbidden):
    # A fake repository with one offending (or harmless) module: the checker must tell them apart.
    for name in PACKAGES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / package / "new_plugin.py").write_text(f"def f():\n    {line}\n")
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    assert bool(violations()) is forbidden
