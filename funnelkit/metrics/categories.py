"""Forecast categories (Closed, Commit, Best Case, Pipeline, Omitted, or whatever labels the data uses):
totals at an instant, and for a period that has ended, how each category actually ended next to the
model's probability for the same deals — the reps' judgement against the outcome.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ArgumentError
from ..dataset import Dataset
from ..changes import has_changes, known_at
from ..period import PeriodLike, as_instant, as_period
from ._common import group_labels
from .landing import categories_at, landing_forecast, won_between

__all__ = ["forecast_categories", "STANDARD_CATEGORIES", "CLOSED"]

#: Salesforce's standard forecast categories, in their usual order (other labels follow, A-Z).
STANDARD_CATEGORIES = ("Commit", "Best Case", "Most Likely", "Pipeline", "Omitted")
#: The row for deals already won in the period.
CLOSED = "Closed (won so far)"


def _order(labels: list[str], configured: list[str] | None) -> list[str]:
    first = list(configured) if configured else [c for c in STANDARD_CATEGORIES]
    rank = {c.lower(): i for i, c in enumerate(first)}
    return sorted(labels, key=lambda c: (rank.get(c.lower(), len(rank)), c.lower()))


def forecast_categories(ds: Dataset, period: PeriodLike, at=None, *, order: list[str] | None = None,
                        **landing_options) -> pd.DataFrame:
    """Open pipeline per forecast category at ``at``, with how each category ended.

    Parameters
    ----------
    ds
        A data set whose deals carry a ``forecast_category`` column.
    period
        The period the categories forecast.
    at
        The instant the categories are read at (default: the period's start, where a sales lead
        reads the quarter's call; any instant before the period's end).
    order
        Category labels in display order (default: Salesforce's standard order, then others A-Z).
    **landing_options
        Passed to :func:`funnelkit.metrics.landing_forecast` (its ``p_in_period`` is the model's
        probability shown next to each category).

    Returns
    -------
    DataFrame
        One row for the deals already won in the period (``Closed (won so far)``), then one per
        category among the deals open at ``at`` (with an ``expected_close_date`` column: those
        expected to close in the period; a deal without a category is ``(not set)``): ``category``,
        ``deals``, ``amount`` (known amounts), ``amount_unknown_deals``, ``model_expected_amount``
        (Σ ``p_in_period × amount``), ``model_p_in_period`` (mean over the category's deals), and
        once the period has ended in the data: ``won_in_period_deals``, ``won_in_period_amount``,
        ``won_in_period_share`` (deals won before the period's end / deals), else NaN.
        Categories and expected close dates are those known at ``at`` (with a change log; without
        one, the export's values). ``attrs["basis"]`` says which open deals count;
        ``attrs["hindsight"]`` is True when the categories are the values at export (no change of
        ``forecast_category`` in the change log).

    Examples
    --------
    >>> forecast_categories(ds, Period.quarter("2024Q2"))           # doctest: +SKIP
    """
    period = as_period(period, ds)
    known = categories_at(ds, period.start if at is None else as_instant(at, "at"))
    if known is None:
        raise ArgumentError("the deals carry no forecast_category column (import it from the CRM, or map "
                         "a column to it)")
    at = period.start if at is None else as_instant(at, "at")
    lf = landing_forecast(ds, period, at, **landing_options)
    fc = lf.open_deals
    deals = ds.deals.set_index("deal_id")
    cat = pd.Series(known.to_numpy(), index=ds.deals["deal_id"].to_numpy()).loc[fc["deal_id"]].astype(object)
    cat = group_labels(cat).to_numpy()
    basis = "every open deal"
    keep = np.ones(len(fc), dtype=bool)
    if "expected_close_date" in deals.columns or has_changes(ds, "expected_close_date"):
        exp = pd.Series(pd.to_datetime(known_at(ds, "expected_close_date", at), errors="coerce").to_numpy(),
                        index=ds.deals["deal_id"].to_numpy()).loc[fc["deal_id"]]
        keep = period.contains(exp).to_numpy()
        basis = "open deals expected to close in the period (as known then)"
    fc, cat = fc[keep].reset_index(drop=True), cat[keep]
    last = max(x for x in (ds.deals["created_at"].max(), ds.deals["closed_at"].max()) if pd.notna(x))
    ended = period.stop <= last.normalize() + pd.Timedelta(days=1)
    st = deals.loc[fc["deal_id"], "status"].astype(str).to_numpy()
    closed = deals.loc[fc["deal_id"], "closed_at"].to_numpy(dtype="datetime64[ns]")
    won_in = (st == "won") & (closed < period.stop.to_datetime64())
    amount = fc["amount"].to_numpy(dtype=float)
    won = won_between(ds, period.start, min(at, period.stop))
    rows = [{"category": CLOSED, "deals": won["deals"], "amount": won["amount"],
             "amount_unknown_deals": won["amount_unknown_deals"], "model_expected_amount": won["amount"],
             "model_p_in_period": 1.0 if won["deals"] else np.nan,
             "won_in_period_deals": won["deals"], "won_in_period_amount": won["amount"],
             "won_in_period_share": 1.0 if won["deals"] else np.nan}]
    for c in _order(sorted(set(cat.tolist())), order):
        m = cat == c
        a = amount[m]
        rows.append({
            "category": c, "deals": int(m.sum()), "amount": float(np.nansum(a)),
            "amount_unknown_deals": int(np.isnan(a).sum()),
            "model_expected_amount": float(np.nansum(fc["expected_in_period"].to_numpy(dtype=float)[m])),
            "model_p_in_period": float(np.nanmean(fc["p_in_period"].to_numpy(dtype=float)[m])),
            "won_in_period_deals": int(won_in[m].sum()) if ended else np.nan,
            "won_in_period_amount": float(np.nansum(a[won_in[m]])) if ended else np.nan,
            "won_in_period_share": float(won_in[m].mean()) if ended else np.nan,
        })
    out = pd.DataFrame(rows)
    out.attrs.update(basis=basis, at=at, hindsight=not has_changes(ds, "forecast_category"))
    return out
