"""Average deal size, win rate, outlier deals and the target planner.

Definitions are in ``docs/metrics.md`` (section 4). The cohort is the deals won in P, as seen at
``period.as_of`` (:func:`funnelkit.engine.views.closed_in`, as for
:func:`funnelkit.metrics.closing.closed_in_period`); the statistics are computed by the data set's
engine (:mod:`funnelkit.engine`).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd

from ..dataset import Dataset
from ..engine.tables import tables_of, to_frame, to_scalar
from ..engine.views import DAYS_SCALE, closed_in, count_if, deals_as_of, exact_mean, exact_quantile, in_period
from ..errors import ArgumentError
from ..period import Period, PeriodLike, as_period

__all__ = ["win_rate", "deal_size", "deal_size_by_month", "outlier_deals", "target_plan", "sales_velocity",
           "TRIM"]

#: Share cut from each end for the trimmed mean (as ``scipy.stats.trim_mean(x, 0.1)``).
TRIM = 0.1


def _won(ds: Dataset, period: Period):
    """The engine's deals won in P (as seen at ``as_of``)."""
    c = closed_in(tables_of(ds), period)
    return c.filter(c.status == "won")


def _size_stats(ds: Dataset, won, by: str | None = None) -> pd.DataFrame:
    """Per group ``by`` of the won deals (one row without): ``deals``, ``amount_unknown``, ``mean``,
    ``median`` and ``trimmed_mean`` of the known amounts, computed by the engine. The trimmed mean
    is ``scipy.stats.trim_mean(amounts, TRIM)``: with n known amounts, the ``floor(TRIM * n)``
    smallest and largest (in amount order) are dropped and the rest averaged."""
    import ibis

    known = won.amount.notnull()
    part = [won[by]] if by else []
    order = ibis.window(group_by=part + [known], order_by=[won.amount, won.deal_row])
    w = won.mutate(_pos=ibis.row_number().over(order),
                   _n=won.amount.count().over(ibis.window(group_by=part)).cast("float64"))
    cut = (w._n * TRIM).floor()
    kept = w.amount.notnull() & (w._pos >= cut) & (w._pos < w._n - cut)
    aggs = dict(deals=w.count(), amount_unknown=count_if(w.amount.isnull()), mean=exact_mean(w.amount),
                median=exact_quantile(w.amount, 0.5, tables_of(ds).backend),
                trimmed_mean=exact_mean(w.amount, where=kept))
    out = to_frame(w.group_by(by).aggregate(**aggs) if by else w.aggregate(**aggs))
    for col in ("mean", "median", "trimmed_mean"):
        out[col] = out[col].astype("float64")
    return out


def _none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def win_rate(ds: Dataset, period: PeriodLike) -> float | None:
    """won / (won + lost) over the deals closed in P (as seen at ``as_of``); None when none closed.

    Examples
    --------
    >>> win_rate(ds, Period.quarter("2026Q3"))   # doctest: +SKIP
    0.41
    """
    period = as_period(period, ds)
    c = closed_in(tables_of(ds), period)
    got = to_frame(c.aggregate(n=c.count(), won=count_if(c.status == "won"))).iloc[0]
    n = int(got["n"])
    return None if n == 0 else float(int(got["won"]) / n)


def deal_size(ds: Dataset, period: PeriodLike) -> dict:
    """Size of the deals won in P: ``{deals, mean, median, trimmed_mean, amount_unknown}``.

    ``deals`` counts every won deal, ``amount_unknown`` those of unknown amount; the statistics use
    the known amounts (None when there are none). ``trimmed_mean`` is ``scipy.stats.trim_mean(amounts, 0.1)``: it drops
    ``int(0.1 * n)`` amounts from each end and averages the rest.

    Examples
    --------
    >>> deal_size(ds, Period.quarter("2026Q3"))   # doctest: +SKIP
    {'deals': 41, 'mean': 23150.0, 'median': 18000.0, 'trimmed_mean': 20311.1}
    """
    period = as_period(period, ds)
    ds.require_single_currency("deal size")
    got = _size_stats(ds, _won(ds, period)).iloc[0]
    return {"deals": int(got["deals"]), "mean": _none(got["mean"]), "median": _none(got["median"]),
            "trimmed_mean": _none(got["trimmed_mean"]), "amount_unknown": int(got["amount_unknown"])}


def deal_size_by_month(ds: Dataset, period: PeriodLike) -> pd.DataFrame:
    """Deal size per calendar month of ``closed_at``, for the deals won in P.

    Returns
    -------
    DataFrame
        ``month`` (text ``YYYY-MM``; every month touching P, in order, partial months at the ends
        of P covering only their days in P), ``deals``, ``mean``, ``median``, ``trimmed_mean``
        (NaN for a month with no known amounts).
    """
    period = as_period(period, ds)
    ds.require_single_currency("deal size by month")
    won = _won(ds, period)
    won = won.mutate(_month=won.closed_at.year() * 100 + won.closed_at.month())
    got = _size_stats(ds, won, "_month")
    got.index = [f"{int(m) // 100:04d}-{int(m) % 100:02d}" for m in got["_month"]]
    months = pd.period_range(period.start, period.end, freq="M").astype(str)
    out = got.reindex(list(months))[["deals", "mean", "median", "trimmed_mean"]]
    out["deals"] = out["deals"].fillna(0).astype("int64")
    return out.rename_axis("month").reset_index()


def outlier_deals(ds: Dataset, period: PeriodLike, *, k: float = 1.5,
                  flagged_only: bool = True) -> pd.DataFrame:
    """Won deals in P whose amount is unusual on a log scale (Tukey's fences on ``ln(amount)``).

    With q1, q3 the quartiles (linear interpolation) of ``ln(amount)`` over the won deals in P with
    a positive amount, and IQR = q3 - q1, a deal is an outlier when ``ln(amount) < q1 - k*IQR``
    (``side="low"``) or ``> q3 + k*IQR`` (``side="high"``). Deals with an unknown or zero amount
    take no part (a logarithm needs a positive amount).

    Returns
    -------
    DataFrame
        ``deal_id``, ``closed_at``, ``amount``, ``owner``, ``source``, ``product``, ``side``
        (high/low, or None when not an outlier), ``low_fence``, ``high_fence`` (the fences in amount
        units: ``exp(q1 - k*IQR)``, ``exp(q3 + k*IQR)``), sorted by amount descending. Only the
        outliers unless ``flagged_only=False`` (then every won deal with a positive amount).
    """
    period = as_period(period, ds)
    ds.require_single_currency("outlier deals")
    t = tables_of(ds)
    won = _won(ds, period)
    won = won.filter(won.amount > 0).mutate(_ln=lambda w: w.amount.ln())
    cols = ["deal_id", "closed_at", "amount", "owner", "source", "product", "side", "low_fence",
            "high_fence"]
    q = to_frame(won.aggregate(n=won.count(), q1=exact_quantile(won._ln, 0.25, t.backend),
                               q3=exact_quantile(won._ln, 0.75, t.backend))).iloc[0]
    if int(q["n"]) == 0:
        return pd.DataFrame(columns=cols)
    q1, q3 = float(q["q1"]), float(q["q3"])
    low, high = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
    got = to_frame(won.select("deal_row", "amount", "_ln").order_by("deal_row"))
    log = got["_ln"].to_numpy(dtype=float)       # the engine's logarithms, as its quartiles used
    side = np.where(log < low, "low", np.where(log > high, "high", None))
    out = ds.deals.iloc[got["deal_row"].to_numpy(dtype="int64")][
        ["deal_id", "closed_at", "amount", "owner", "source", "product"]].copy()
    out["amount"] = got["amount"].to_numpy(dtype="float64")      # as known at as_of
    out["side"] = side
    out["low_fence"] = float(np.exp(low))
    out["high_fence"] = float(np.exp(high))
    if flagged_only:
        out = out[out["side"].notna().to_numpy()]
    return out.sort_values(["amount", "deal_id"], ascending=[False, True]).reset_index(drop=True)[cols]


def target_plan(ds: Dataset, period: PeriodLike, target: float, *,
                size: Literal["mean", "trimmed_mean", "median"] = "mean") -> dict:
    """How many deals a revenue target needs, from the deal size and win rate of P.

    ``deals_needed = target / deal size`` (the mean size of deals won in P, or ``size=``
    "trimmed_mean"/"median") and ``deals_to_work = deals_needed / win_rate``.

    Returns
    -------
    dict
        ``target``, ``currency``, ``size_measure``, ``deal_size``, ``win_rate``, ``deals_needed``,
        ``deals_to_work`` (fractional), ``deals_needed_whole``, ``deals_to_work_whole`` (rounded
        up). Values that cannot be computed (no won deals, zero size, zero win rate) are None.

    Examples
    --------
    >>> target_plan(ds, Period.quarter("2026Q3"), 1_000_000)   # doctest: +SKIP
    {'target': 1000000.0, ..., 'deals_needed': 43.2, 'deals_to_work': 105.4, ...}
    """
    period = as_period(period, ds)
    target = float(target)
    if not math.isfinite(target) or target < 0:
        raise ArgumentError(f"target must be a non-negative number, got {target}")
    if size not in ("mean", "trimmed_mean", "median"):
        raise ArgumentError("size must be 'mean', 'trimmed_mean' or 'median'")
    currency = ds.require_single_currency("the target planner")
    ds_size = deal_size(ds, period)[size]
    rate = win_rate(ds, period)
    needed = _finite(target / ds_size) if ds_size else None
    to_work = _finite(needed / rate) if needed is not None and rate else None

    def up(x):
        return None if x is None else int(math.ceil(round(x, 9)))

    return {"target": target, "currency": currency, "size_measure": size, "deal_size": ds_size,
            "win_rate": rate, "deals_needed": needed, "deals_to_work": to_work,
            "deals_needed_whole": up(needed), "deals_to_work_whole": up(to_work)}


def _finite(x: float) -> float | None:
    """``x``, or None when it overflowed (a deal size so small that the count is infinite)."""
    return x if math.isfinite(x) else None


def sales_velocity(ds: Dataset, period: PeriodLike) -> dict:
    """How much revenue the pipeline makes per day: Close's sales velocity, from the period's data.

    ``amount_per_day = opportunities × win_rate × mean_won_size / mean_days_to_win``, where
    ``opportunities`` is the number of deals created in P (seen at ``as_of``), ``win_rate`` and
    ``mean_won_size`` are those of the deals closed in P (:func:`win_rate`, :func:`deal_size`'s
    mean), and ``mean_days_to_win`` is the mean days from creation to close of the won deals
    closed in P. Each factor is a lever: more deals, better conversion, bigger deals, faster wins.
    ``amount_per_day`` is None when any factor is unknown or the mean days to win is 0.

    Examples
    --------
    >>> sales_velocity(ds, Period.quarter("2026Q2"))          # doctest: +SKIP
    {'opportunities': 419, 'win_rate': 0.19, 'mean_won_size': 6817.4, 'mean_days_to_win': 58.6,
     'amount_per_day': 9260.1}
    """
    period = as_period(period, ds)
    ds.require_single_currency("sales velocity")
    d = deals_as_of(tables_of(ds), period.as_of)
    opportunities = int(to_scalar(count_if(in_period(d.created_at, period))))
    won = _won(ds, period)
    # days_to_close is null (unknown) for deals flagged dates_estimated: left out of the mean
    mean_days = to_scalar(exact_mean(won.days_to_close, scale=DAYS_SCALE))
    mean_days = float("nan") if mean_days is None or pd.isna(mean_days) else float(mean_days)
    rate = win_rate(ds, period)
    size = deal_size(ds, period)["mean"]
    parts = (rate, size, mean_days)
    ok = all(x is not None and np.isfinite(x) for x in parts) and mean_days > 0
    return {"opportunities": opportunities, "win_rate": rate, "mean_won_size": size,
            "mean_days_to_win": _none(mean_days),
            "amount_per_day": opportunities * rate * size / mean_days if ok else None}
