"""The dependency rule of the layout, checked on the source: a new arrow against it fails here.

- ``heads`` and ``losses`` import nothing of the project (plugins stay torch-only);
- ``datamodules`` imports none of ``heads``, ``losses``, ``phudge_lightning``;
- nothing imports the CLI (``phudge_lightning.cli``): it is the top of the graph;
- no module imports itself through others: the modules of every package form no circle.

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


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every ``import`` (names empty) and ``from ... import`` in the file,
    relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, [alias.name for alias in node.names]))
    return found


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in the file names (``from phudge_lightning
    import cli`` imports the submodule: both count)."""
    return {module for base, names in imports(path) for module in (base, *(f"{base}.{n}" for n in names))}


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


# -- no circle ----------------------------------------------------------------------------------
def project_imports(path: Path, modules: set[str]) -> set[str]:
    """The project's modules that ``path`` imports: ``from package import name`` names the
    submodule where ``package.name`` is one, else the package (its ``__init__``). The packages
    above an imported module, which Python runs first, are not counted (the top-level ones are
    lazy, and each subpackage's ``__init__`` is a module of its own here)."""
    found = {f"{base}.{n}" if f"{base}.{n}" in modules else base for base, names in imports(path) for n in names}
    found |= {base for base, names in imports(path) if not names}
    return found & modules


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in source_files()}
    return {name: project_imports(path, set(files)) - {name} for name, path in files.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_through_others():
    graph = import_graph()
    assert "phudge_lightning.formats.registry" in graph  # the graph sees the packages' modules
    assert circles(graph) == []


def test_the_circle_checker_sees_a_circle_through_a_function(tmp_path, monkeypatch):
    for name in PACKAGES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "phudge_lightning" / "a.py").write_text("from phudge_lightning.b import f\n")
    (tmp_path / "phudge_lightning" / "b.py").write_text("def f():\n    from phudge_lightning import a\n")
    (tmp_path / "phudge_lightning" / "c.py").write_text("from phudge_lightning import a, b\n")
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    assert circles(import_graph()) == [["phudge_lightning.a", "phudge_lightning.b"]]
