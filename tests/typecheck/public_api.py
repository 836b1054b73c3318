"""Checked by mypy (tests/test_typing.py), never run: the public API as an analyst calls it.

Every call here must type-check against funnelkit's own hints (py.typed), in each period form.
"""

from __future__ import annotations

import datetime as dt
import warnings

import pandas as pd

import funnelkit as fk
from funnelkit.errors import ArgumentError, NoDataWarning, UnknownColumnError
from funnelkit.period import PeriodLike, as_instant, as_period

ds: fk.Dataset = fk.load("data/sample")
report: fk.ValidationReport = fk.validate("data/sample")
lenient: fk.Dataset = fk.load("data/sample", errors="report")

forms: list[PeriodLike] = ["2026Q2", "2026-05", "2026", 2026, ("2026-04-01", "2026-06-30"),
                           (dt.date(2026, 4, 1), pd.Timestamp("2026-06-30")), fk.Period.quarter("2026Q2")]
for form in forms:
    p: fk.Period = as_period(form)
    funnel: pd.DataFrame = fk.metrics.funnel(ds, form)
    rate: float | None = fk.metrics.win_rate(ds, form)
    flow: pd.DataFrame = fk.metrics.stage_flow(ds, form)
    by_source: pd.DataFrame = fk.metrics.amount_by(ds, form, by=["source", "product"])
    closing: pd.DataFrame = fk.metrics.days_to_close(ds, form, by="product")
    summary: dict = fk.metrics.metrics_summary(ds, form)

q: fk.Period = fk.Period("2017-06", "2017-08", as_of="2017-09-15T12:00")
previous: fk.Period = q.previous()
start: pd.Timestamp = as_instant("2026-07-01")
slice_: fk.Dataset = ds.filter(source="Referrals", owner=["Grace Kim", "Hugo Silva"])
currency: str = ds.require_single_currency()
cached: int = ds.derived("n_deals", lambda: len(ds.deals))
text: str = fk.metrics.format_summary(summary)
forecast: pd.DataFrame = fk.metrics.win_forecast(ds, "2026-07-01")

try:
    fk.load("missing")
except fk.DataError as exc:
    problems: list[fk.Problem] = exc.problems
except (fk.FunnelkitError, ArgumentError, UnknownColumnError):
    pass
warnings.simplefilter("error", NoDataWarning)
warnings.simplefilter("ignore", fk.FunnelkitWarning)
