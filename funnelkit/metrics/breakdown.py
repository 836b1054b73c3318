"""Amount by source, by product type, by owner (the per-rep view), or by any deal column.

Definitions are in ``docs/metrics.md`` (sections 5 and 6).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..dataset import Dataset
from ..history import deals_as_of
from ..period import Period
from ._common import DAY, NOT_SET, group_labels, require_column

__all__ = ["amount_by", "NOT_SET"]

_COLUMNS = ["won_amount", "won_deals", "lost_deals", "win_rate", "mean_size", "share", "open_amount",
            "won_amount_unknown", "open_deals", "open_amount_unknown"]


def amount_by(ds: Dataset, period: Period, by: str | list[str] = "source", *,
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
        in P; NaN when none). Default: only for ``by="owner"``.

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
    keys = [by] if isinstance(by, str) else list(by)
    if not keys:
        raise ValueError("by needs at least one column")
    if len(set(keys)) != len(keys):
        raise ValueError(f"by names a column twice: {keys}")
    ds.require_single_currency(f"amount by {', '.join(keys)}")
    for col in keys:
        require_column(ds, col)
    if with_days is None:
        with_days = keys == ["owner"]
    d = deals_as_of(ds, period.as_of)
    status = d["status_as_of"].astype(str).to_numpy()
    in_p = period.contains(d["closed_as_of"]).to_numpy()
    won = (status == "won") & in_p
    lost = (status == "lost") & in_p
    is_open = status == "open"
    keep = won | lost | is_open
    d = d[keep]
    won, lost, is_open = won[keep], lost[keep], is_open[keep]
    amount = d["amount"].to_numpy(dtype=float)
    frame = pd.DataFrame({
        **{col: group_labels(d[col]).to_numpy() for col in keys},
        "won_amount": np.where(won, amount, np.nan),
        "won_deals": won.astype("int64"),
        "_won_known": (won & ~np.isnan(amount)).astype("int64"),
        "lost_deals": lost.astype("int64"),
        "open_amount": np.where(is_open, amount, np.nan),
        "won_amount_unknown": (won & np.isnan(amount)).astype("int64"),
        "open_deals": is_open.astype("int64"),
        "open_amount_unknown": (is_open & np.isnan(amount)).astype("int64"),
    })
    if with_days:
        days = (d["closed_at"].to_numpy() - d["created_at"].to_numpy()) / DAY
        frame["median_days_to_close"] = np.where(won, days, np.nan)
    agg = {"won_amount": "sum", "won_deals": "sum", "_won_known": "sum", "lost_deals": "sum",
           "open_amount": "sum", "won_amount_unknown": "sum", "open_deals": "sum",
           "open_amount_unknown": "sum"}
    if with_days:
        agg["median_days_to_close"] = "median"
    out = frame.groupby(keys, sort=False).agg(agg).reset_index()
    for col, n in (("won_amount", "won_deals"), ("open_amount", "open_deals")):   # unknown, not 0
        out[col] = out[col].where((out[n] == 0) | (out[f"{col}_unknown"] < out[n]))
    closed = out["won_deals"] + out["lost_deals"]
    out["win_rate"] = (out["won_deals"] / closed.where(closed > 0)).astype(float)
    # Won deals of unknown amount (possible only with allow_missing_amounts) are left out of the mean.
    out["mean_size"] = (out["won_amount"] / out["_won_known"].where(out["_won_known"] > 0)).astype(float)
    total = float(out["won_amount"].sum())
    out["share"] = out["won_amount"] / total if total > 0 else np.nan
    out = out.sort_values(["won_amount", *keys], ascending=[False] + [True] * len(keys), kind="stable",
                          na_position="last")
    cols = keys + _COLUMNS + (["median_days_to_close"] if with_days else [])
    return out[cols].reset_index(drop=True)
