"""The documentation's own checks: every public symbol has a docstring, the helpers that
generate pages at build time (``docs/hooks/``) keep working, and the site builds with
``mkdocs build --strict`` (what ``nox -s docs`` runs). The ``dev`` extra installs the docs tools,
so none of these is skipped under the README's test command."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def checker():
    return _load("check_docstrings", DOCS / "check_docstrings.py")


def test_every_public_symbol_has_a_docstring(checker):
    missing = checker.missing_docstrings()
    assert not missing, "add docstrings to: " + ", ".join(
        f"{symbol.module}.{symbol.name} ({symbol.path})" for symbol in missing
    )


def test_checker_resolves_lazy_exports_constants_and_plain_modules(checker):
    paths = {(symbol.module, symbol.name): symbol.path for symbol in checker.public_symbols()}
    assert paths["ssl4gie", "load_backbone"] == "ssl4gie.zoo.load.load_backbone"
    assert paths["ssl4gie.transforms", "IMAGENET_MEAN"] == "ssl4gie.transforms.ops.IMAGENET_MEAN"
    assert ("ssl4gie.data.datamodules", "PretrainDataModule") in paths  # no __all__ there
    assert checker.source_docstring("ssl4gie.methods.METHODS").startswith("Method name")
    assert checker.source_docstring("ssl4gie.data.splits._to_list").startswith("Return a 1-D")


def test_docstring_rewriting_for_markdown():
    rst = _load("rst_docstrings", DOCS / "hooks" / "rst_docstrings.py")
    text = "Load it::\n\n    x = 1\n\n>>> f(1)  # doctest: +SKIP\n2\n\nExample:\n    >>> g()\n"
    assert rst.fence_doctests(text).splitlines() == [
        "Load it:", "", "    x = 1", "", "```pycon", ">>> f(1)", "2", "```", "",
        "Examples:", "    >>> g()",
    ]  # fmt: skip
    grouped = "Args:\n    a, b,\n        c: sizes.\n    d: other."
    assert rst.join_grouped_names(grouped) == "Args:\n    a, b, c: sizes.\n    d: other."


def test_generated_zoo_tables_and_method_sections():
    from ssl4gie.methods import METHODS
    from ssl4gie.zoo.readme import readme_table

    pages = _load("ssl4gie_docs_pages", DOCS / "hooks" / "pages.py")
    assert pages.zoo_table() == readme_table()
    sections = pages.methods()
    assert sections.count("\n### ") + sections.startswith("### ") == len(METHODS)
    assert all(f"{{ #{name} }}" in sections for name in METHODS)
    assert "1.5e-4 per 256 images" in pages.recipes()  # MAE's base lr, short form


@pytest.mark.slow
def test_site_builds_strict_and_offline(tmp_path, monkeypatch, caplog):
    """The whole site, as ``mkdocs build --strict`` (in-process: ssl4gie is imported once): any
    warning (broken link, unknown reference, missing page) aborts the build."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    monkeypatch.chdir(ROOT)  # the snippets' base_path is the checkout
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")
    build(load_config(str(ROOT / "mkdocs.yml"), site_dir=str(tmp_path), strict=True))
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert not warnings
    top_level = (tmp_path / "api" / "ssl4gie" / "index.html").read_text(encoding="utf-8")
    assert 'id="ssl4gie.zoo.load.load_backbone"' in top_level  # mkdocstrings rendered it
