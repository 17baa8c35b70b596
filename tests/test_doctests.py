"""Every docstring example of the package runs and prints what it shows (``doctest`` per module,
as ``pytest --doctest-modules ssl4gie`` would; examples marked ``+SKIP`` download weights)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ssl4gie

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(ssl4gie.__path__, prefix="ssl4gie.")
    if not info.name.endswith(".__main__")  # runs the command line when imported
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


pytestmark = pytest.mark.usefixtures("one_thread")  # seeded by conftest._seed


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    module = importlib.import_module(name)
    runner, report = doctest.DocTestRunner(optionflags=FLAGS), []
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, name):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
