"""Check that every public symbol of ssl4gie has a docstring; list the ones that do not.

``python docs/check_docstrings.py`` exits 1 and prints ``<public name> (<defining path>)`` for
each symbol without a docstring. Public symbols are the ``__all__`` of the public modules
(:data:`PUBLIC_MODULES`); a package without ``__all__`` (``ssl4gie.data``) contributes its public
submodules, and a module without ``__all__`` its public classes and functions. Docstrings are
read from the source, as griffe reads them for the API reference (mkdocstrings): a constant's
docstring is the string literal below its assignment, and a class without its own docstring
does not inherit one. Needs only the standard library and ssl4gie. ``docs/hooks/pages.py``
builds the API pages from the same list.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

PUBLIC_MODULES = (
    "ssl4gie",
    "ssl4gie.zoo",
    "ssl4gie.methods",
    "ssl4gie.tasks",
    "ssl4gie.losses",
    "ssl4gie.data",
    "ssl4gie.transforms",
    "ssl4gie.analysis",
    "ssl4gie.studies",
)


@dataclass(frozen=True)
class Symbol:
    """A public name (``module.name``) and the path of the object it is bound to."""

    module: str  # the public module whose __all__ (or content) lists it
    name: str
    path: str  # where the object is defined, e.g. ssl4gie.zoo.load.load_backbone


def _defining_path(module: str, name: str, value: object) -> str:
    """Where ``value`` is defined: from ``__module__`` for classes and functions, else the first
    loaded ssl4gie module binding ``name`` to this very object outside an import."""
    if inspect.ismodule(value):
        return value.__name__
    if inspect.isclass(value) or inspect.isfunction(value):
        return f"{value.__module__}.{value.__qualname__}"
    candidates = [
        mod_name
        for mod_name, mod in sorted(sys.modules.items())
        if mod_name.startswith("ssl4gie") and vars(mod).get(name, object()) is value
    ]
    for mod_name in candidates:  # the module whose source assigns it (not imports it)
        source = inspect.getsource(sys.modules[mod_name])
        if f"\n{name} =" in source or f"\n{name}: " in source or source.startswith(f"{name} ="):
            return f"{mod_name}.{name}"
    return f"{module}.{name}"


def _module_symbols(module: ModuleType) -> Iterator[Symbol]:
    exported = getattr(module, "__all__", None)
    if exported is not None:
        for name in exported:
            value = getattr(module, name)
            yield Symbol(module.__name__, name, _defining_path(module.__name__, name, value))
    elif hasattr(module, "__path__"):  # a package without __all__: its public submodules
        for info in pkgutil.iter_modules(module.__path__):
            if not info.name.startswith("_"):
                submodule = importlib.import_module(f"{module.__name__}.{info.name}")
                yield from _module_symbols(submodule)
    else:
        for name, value in vars(module).items():
            is_api = inspect.isclass(value) or inspect.isfunction(value)
            if is_api and not name.startswith("_") and value.__module__ == module.__name__:
                yield Symbol(module.__name__, name, f"{module.__name__}.{value.__qualname__}")


def public_symbols(modules: tuple[str, ...] = PUBLIC_MODULES) -> list[Symbol]:
    """Every public symbol of ``modules``, in order, without repeats of a public name."""
    seen: set[tuple[str, str]] = set()
    symbols = []
    for module_name in modules:
        for symbol in _module_symbols(importlib.import_module(module_name)):
            if (symbol.module, symbol.name) not in seen:
                seen.add((symbol.module, symbol.name))
                symbols.append(symbol)
    return symbols


def _split_path(path: str) -> tuple[str, list[str]]:
    """``ssl4gie.zoo.load.load_backbone`` -> (``ssl4gie.zoo.load``, ``["load_backbone"]``)."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        return ".".join(parts[:cut]), parts[cut:]
    raise ValueError(f"no module in {path!r}")


def _attribute_docstring(body: list[ast.stmt], name: str) -> str | None:
    """The string literal right below the module-level assignment of ``name``, if any."""
    for statement, following in zip(body, [*body[1:], None], strict=True):
        targets = statement.targets if isinstance(statement, ast.Assign) else []
        if isinstance(statement, ast.AnnAssign):
            targets = [statement.target]
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            value = following.value if isinstance(following, ast.Expr) else None
            is_string = isinstance(value, ast.Constant) and isinstance(value.value, str)
            return value.value if is_string else ""
    return None


def source_docstring(path: str) -> str:
    """The docstring of the object at ``path`` as written in its source (what griffe, hence
    mkdocstrings, reads): a module's, class's or function's own docstring, or for a constant
    the string literal below its assignment. ``""`` when there is none."""
    module, names = _split_path(path)
    source = Path(sys.modules[module].__file__).read_text(encoding="utf-8")
    node: ast.AST = ast.parse(source)
    for i, name in enumerate(names):
        defined = [
            child
            for child in ast.iter_child_nodes(node)
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and child.name == name
        ]
        if defined:
            node = defined[-1]
            continue
        if i == len(names) - 1:
            return (_attribute_docstring(getattr(node, "body", []), name) or "").strip()
        return ""
    return (ast.get_docstring(node) or "").strip()


def missing_docstrings(modules: tuple[str, ...] = PUBLIC_MODULES) -> list[Symbol]:
    """The public symbols of ``modules`` without a docstring."""
    symbols = public_symbols(modules)
    return [symbol for symbol in symbols if not source_docstring(symbol.path)]


def main() -> int:
    """Print the public symbols without a docstring; return 1 if there are any."""
    missing = missing_docstrings()
    if missing:
        print(f"{len(missing)} public symbols have no docstring:", file=sys.stderr)
        for symbol in missing:
            print(f"  {symbol.module}.{symbol.name} ({symbol.path})", file=sys.stderr)
        return 1
    print(f"every public symbol of {', '.join(PUBLIC_MODULES)} has a docstring")
    return 0


if __name__ == "__main__":
    sys.exit(main())
