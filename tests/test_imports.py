"""Import order: no module of ssl4gie imports, at import time, a module that imports it back.

The resolver of backbone names (``ssl4gie.backbones``) imports the zoo, and the zoo builds timm
models through ``ssl4gie._timm``: each entry point must import first in a fresh interpreter, and
the graph of module-level imports must have no cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "ssl4gie"


def package_modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of ``package`` (a folder)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _module_level(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The imports a module runs when imported: its top level, inside ``if``/``try``/``with``
    but not under ``if TYPE_CHECKING:`` nor in functions and classes."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            found += _module_level(node.body) + _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                found += _module_level(block)
        elif isinstance(node, ast.With):
            found += _module_level(node.body)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the ssl4gie modules its module-level imports need: ``from a import b`` needs
    module ``a.b`` if there is one (Python imports it even while ``a`` is half-initialised),
    else ``a``, whose ``b`` must be defined by then."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _module_level(ast.parse(path.read_text(encoding="utf-8")).body):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
                continue
            base = node.module or ""
            if node.level:  # relative: from .x import y
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{alias.name}" for alias in node.names]
            targets |= {name if name in modules else base for name in names}
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, str] = {}  # "open" while on the current path, then "done"
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_on_hand_made_graphs():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": set(), "c": {"c2"}, "c2": {"c"}}) == ["c", "c2", "c"]


def test_import_graph_reads_module_level_imports_only(tmp_path):
    root = tmp_path / "ssl4gie"
    (root / "zoo").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "zoo" / "__init__.py").write_text("from . import load\n")
    (root / "zoo" / "load.py").write_text(
        "from typing import TYPE_CHECKING\nfrom ssl4gie import backbones, zoo\n"
        "if TYPE_CHECKING:\n    import ssl4gie.zoo\n"
    )
    (root / "backbones.py").write_text("def f():\n    from ssl4gie.zoo import load\n")
    assert import_graph(package_modules(root)) == {
        "ssl4gie": set(),
        "ssl4gie.zoo": {"ssl4gie.zoo.load"},
        "ssl4gie.zoo.load": {"ssl4gie.backbones", "ssl4gie.zoo"},
        "ssl4gie.backbones": set(),
    }


def test_no_import_cycle_between_ssl4gie_modules():
    cycle = find_cycle(import_graph(package_modules(PACKAGE)))
    assert cycle is None, "module-level import cycle: " + " -> ".join(cycle)


@pytest.mark.slow  # three interpreters import torch and timm
def test_each_entry_point_imports_first_in_a_fresh_interpreter():
    """Each of the three imported first (the three interpreters run side by side)."""
    first = ["ssl4gie.backbones", "ssl4gie.zoo", "ssl4gie.zoo.load"]
    runs = {
        module: subprocess.Popen(
            [sys.executable, "-c", f"import {module}; import ssl4gie.backbones, ssl4gie.zoo.load"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for module in first
    }
    failed = {module: run.communicate()[1] for module, run in runs.items() if run.wait()}
    assert not failed, failed
