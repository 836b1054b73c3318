"""Checked by mypy (tests/test_typing.py), never run: calls the hints must refuse."""

import funnelkit as fk

ds = fk.load("data/sample")
fk.metrics.funnel(ds, 3.5)                   # not a period form
fk.metrics.funnel("data/sample", "2026Q2")   # a path, not a Dataset
fk.load("data/sample", errors="ignore")      # not one of raise/report
