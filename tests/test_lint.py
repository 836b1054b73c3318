"""No unused imports or variables, no undefined names, in the package, the tests and the benchmarks."""

from __future__ import annotations

import io
from pathlib import Path

from pyflakes.api import checkRecursive
from pyflakes.reporter import Reporter

ROOT = Path(__file__).resolve().parents[1]


def test_pyflakes_finds_nothing():
    out = io.StringIO()
    found = checkRecursive([str(ROOT / d) for d in ("funnelkit", "tests", "benchmarks")], Reporter(out, out))
    assert found == 0, out.getvalue()
