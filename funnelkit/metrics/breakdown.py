"""Amount by source, by product type, by owner (the per-rep view), or by any deal column.

Definitions are in ``docs/metrics.md`` (sections 5 and 6).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..dataset import Dataset
from ..engine.tables import tables_of, to_frame
from ..engine.views import count_if, days_between, deals_as_of, exact_quantile, exact_sum, in_period
from ..errors import ArgumentError
from ..period import PeriodLike, as_period
from ._common import LEFT_OUT, NOT_SET, dates_estimated, group_label, require_column

__all__ = ["amount_by", "NOT_SET"]

_COLUMNS = ["won_amount", "won_deals", "lost_deals", "win_rate", "mean_size", "share", "open_amount",
            "won_amount_unknown", "open_deals", "open_amount_unknown"]


def amount_by(ds: Dataset, period: PeriodLike, by: str | list[str] = "source", *,
              with_days: bool | None = None) -> pd.DataFrame:
    """Won and open amounts, deal counts and win rate per group of a deal column.

    Parameters
    ----------
    ds, period
        Data set and period; the data as seen at ``period.as_of``.
    by
        A deal column: ``"source"``, ``"product"``, ``"owner"`` (the per-rep view) or any other; or
        a list of columns for a breakdown (e.g. ``["source", "product"]``): one row per combination
        present, every ratio computed from that combination's own counts and sums (never averaged
        from other rows), and ``share`` of the grand total.
    with_days
        Add ``median_days_to_close`` (median days from creation to close of the group's deals won
        in P; NaN when none). Default: only for ``by="owner"``. Deals flagged ``dates_estimated``
        have no days to close: left out of the median, counted in ``attrs["left_out_dates_estimated"]``.

    Returns
    -------
    DataFrame
        ``<by>`` (text), ``won_amount`` (sum of known amounts of deals won in P), ``won_deals``,
        ``lost_deals`` (deals won / lost in P), ``win_rate`` = won / (won + lost) (NaN when none
        closed), ``mean_size`` = won_amount / won deals
        of known amount (NaN when none; all won deals have one unless pipeline.yml allows missing amounts), ``share`` = won_amount / total
        won_amount (NaN when the total is 0), ``open_amount`` (sum of known amounts of the deals open
        at ``as_of``), ``won_amount_unknown`` (won deals of unknown amount), ``open_deals`` (deals
        open at ``as_of``), ``open_amount_unknown`` (those of unknown amount),
        [``median_days_to_close``]. A sum over deals whose amounts are all unknown is NaN (unknown,
        never 0); a sum over no deals is 0. Every group with a deal closed in P or open at
        ``as_of`` appears (and no other); sorted by ``won_amount`` descending, ties by group name.

    Examples
    --------
    >>> amount_by(ds, Period.quarter("2026Q3"), by="product")   # doctest: +SKIP
         product  won_amount  won_deals  lost_deals  win_rate  mean_size  share  open_amount
    0  Platform    410000.0         12          10  0.545455    34166.7   0.61     230000.0
    """
    period = as_period(period, ds)
    keys = [by] if isinstance(by, str) else list(by)
    if not keys:
        raise ArgumentError("by needs at least one column")
    if len(set(keys)) != len(keys):
        raise ArgumentError(f"by names a column twice: {keys}")
    ds.require_single_currency(f"amount by {', '.join(keys)}")
    for col in keys:
        require_column(ds, col)
    if with_days is None:
        with_days = keys == ["owner"]
    t = tables_of(ds)
    d = deals_as_of(t, period.as_of)
    in_p = in_period(d.closed_as_of, period)
    d = d.mutate(_won=(d.status_as_of == "won") & in_p, _lost=(d.status_as_of == "lost") & in_p,
                 _open=d.status_as_of == "open")
    d = d.filter(d._won | d._lost | d._open)
    d = d.mutate(**{col: group_label(d[col]) for col in keys})
    agg = {
        "won_amount": exact_sum(d.amount, where=d._won).fill_null(0.0),
        "won_deals": count_if(d._won),
        # Won deals of unknown amount (possible only with allow_missing_amounts) are left out of the mean.
        "_won_known": count_if(d._won & d.amount.notnull()),
        "lost_deals": count_if(d._lost),
        "open_amount": exact_sum(d.amount, where=d._open).fill_null(0.0),
        "won_amount_unknown": count_if(d._won & d.amount.isnull()),
        "open_deals": count_if(d._open),
        "open_amount_unknown": count_if(d._open & d.amount.isnull()),
    }
    if with_days:   # deals flagged dates_estimated count, but have no days to close
        timed = ~dates_estimated(d)
        agg["median_days_to_close"] = exact_quantile(days_between(d.created_at, d.closed_at), 0.5,
                                                     t.backend, where=d._won & timed)
        agg["_left_out"] = count_if(d._won & ~timed)
    out = to_frame(d.group_by(keys).aggregate(**agg))
    for col in ("won_amount", "open_amount"):
        out[col] = out[col].astype("float64")
    for col in ("won_deals", "_won_known", "lost_deals", "won_amount_unknown", "open_deals",
                "open_amount_unknown"):
        out[col] = out[col].astype("int64")
    for col, n in (("won_amount", "won_deals"), ("open_amount", "open_deals")):   # unknown, not 0
        out[col] = out[col].where((out[n] == 0) | (out[f"{col}_unknown"] < out[n]))
    closed = out["won_deals"] + out["lost_deals"]
    out["win_rate"] = (out["won_deals"] / closed.where(closed > 0)).astype(float)
    out["mean_size"] = (out["won_amount"] / out["_won_known"].where(out["_won_known"] > 0)).astype(float)
    total = math.fsum(out["won_amount"].dropna())     # exact: whatever order the groups come in
    out["share"] = out["won_amount"] / total if total > 0 else np.nan
    out = out.sort_values(["won_amount", *keys], ascending=[False] + [True] * len(keys), kind="stable",
                          na_position="last")
    cols = keys + _COLUMNS + (["median_days_to_close"] if with_days else [])
    left_out = out["_left_out"].sum() if with_days else 0
    out = out[cols].reset_index(drop=True)
    for col in keys:
        out[col] = out[col].astype(str)
    if with_days:
        out["median_days_to_close"] = out["median_days_to_close"].astype("float64")
        out.attrs[LEFT_OUT] = int(left_out)
    return out
