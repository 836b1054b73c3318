"""The package's docstring examples run as tests (what ``pytest --doctest-modules funnelkit`` does,
inside the ordinary suite so every run includes them). Examples read ``data/sample`` relative to the
repository root, as a user in a clone would."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Importing __main__ runs the CLI.
SKIP = {"funnelkit.__main__"}
MODULES = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                 for p in (ROOT / "funnelkit").rglob("*.py"))
MODULES = [m for m in MODULES if m not in SKIP]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    failures: list[str] = []
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, name):
        runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)
