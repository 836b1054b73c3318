"""Slipping deals: pushes of the expected close date, past-due deals, what became of the deals expected
to close in a period, win rate by number of pushes, and lost reasons.

Definitions (``docs/metrics.md``, section 10):

- A **push** is a change of a deal's expected close date (``deal_changes.csv``) to a later date than
  the one before it; a **pull-in**, to an earlier one. A deal's first recorded date is neither, and
  neither is a change from or to an unknown date. Days pushed: the sum of (new - old) over pushes.
- A deal is **past due** at ``as_of`` when it is open and the day of its expected close date (as
  known at ``as_of``) ended before ``as_of``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..changes import field_changes, known_for
from ..contract import NOT_SET
from ..dataset import Dataset
from ..engine.tables import tables_of, to_arrays
from ..period import PeriodLike, as_instant, as_period
from ._common import DAY, group_labels, require_column
from .movement import pipeline_at

__all__ = ["date_changes", "slipping_deals", "expected_to_close", "win_rate_by_pushes", "lost_reasons",
           "PUSH_BUCKETS"]

#: Buckets of :func:`win_rate_by_pushes`.
PUSH_BUCKETS = ("0", "1", "2", "3+")


def date_changes(ds: Dataset) -> pd.DataFrame:
    """Every change of an expected close date that moved it: ``deal_row``, ``deal_id``,
    ``changed_at``, ``previous``, ``value``, ``days`` (new - old, fractional days), ``kind``
    (``push`` or ``pull_in``); in deal and time order.

    Examples
    --------
    >>> date_changes(ds).query("kind == 'push'").groupby("deal_id").size()       # doctest: +SKIP
    """
    ch = field_changes(ds, "expected_close_date")
    new = pd.to_datetime(pd.Series(ch["value"].to_numpy())).to_numpy(dtype="datetime64[ns]")
    old = pd.to_datetime(pd.Series(ch["previous"].to_numpy())).to_numpy(dtype="datetime64[ns]")
    days = (new - old) / DAY
    moved = ~ch["is_first"].to_numpy() & ~np.isnan(days) & (days != 0)
    out = pd.DataFrame({"deal_row": ch["deal_row"].to_numpy()[moved], "deal_id": ch["deal_id"].to_numpy()[moved],
                        "changed_at": ch["changed_at"].to_numpy()[moved], "previous": old[moved],
                        "value": new[moved], "days": days[moved]})
    out["kind"] = np.where(out["days"] > 0, "push", "pull_in")
    return out


def _pushes(ds: Dataset, until: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per deal (aligned with ds.deals): pushes, days pushed and pull-ins among the changes with
    ``changed_at`` before (or at, see callers) ``until[deal]``."""
    ch = date_changes(ds)
    seen = ch["changed_at"].to_numpy(dtype="datetime64[ns]") < until[ch["deal_row"].to_numpy()]
    ch = ch[seen]
    n = len(ds.deals)
    push = ch["kind"].eq("push").to_numpy()
    rows = ch["deal_row"].to_numpy()
    return (np.bincount(rows[push], minlength=n), np.bincount(rows[push], weights=ch["days"].to_numpy()[push],
                                                               minlength=n),
            np.bincount(rows[~push], minlength=n))


def slipping_deals(ds: Dataset, as_of) -> pd.DataFrame:
    """The deals open at ``as_of`` with their pushes and whether they are past due.

    Returns
    -------
    DataFrame
        ``deal_id``, ``owner``, ``source``, ``stage``, ``amount`` and ``expected_close_date`` (as
        known at ``as_of``), ``pushes``, ``days_pushed``, ``pull_ins`` (changes before ``as_of``),
        ``past_due`` (bool), ``days_past_due`` (whole days since the expected day ended; 0 when not
        past due); past-due deals first, then by pushes, days pushed and amount, all descending.

    Examples
    --------
    >>> slipping_deals(ds, "2026-07-01").head()                     # doctest: +SKIP
    """
    at = as_instant(as_of)
    open_now = pipeline_at(ds, at)
    rows = pd.Index(ds.deals["deal_id"]).get_indexer(open_now["deal_id"])
    pushes, days, pulls = _pushes(ds, np.full(len(ds.deals), at.to_datetime64()))
    out = open_now.copy()
    out["pushes"] = pushes[rows].astype("int64")
    out["days_pushed"] = days[rows].astype("float64")
    out["pull_ins"] = pulls[rows].astype("int64")
    day_end = out["expected_close_date"] + pd.Timedelta(days=1)
    out["past_due"] = (day_end <= at).to_numpy()
    out["days_past_due"] = np.where(out["past_due"], np.floor((at - day_end) / pd.Timedelta(days=1)), 0).astype("int64")
    out = out.sort_values(["past_due", "pushes", "days_pushed", "amount", "deal_id"],
                          ascending=[False, False, False, False, True], kind="stable")
    return out.reset_index(drop=True)


def expected_to_close(ds: Dataset, period: PeriodLike, by: str | None = None) -> pd.DataFrame:
    """What became of the deals expected to close in ``period``: those open at its start whose
    expected close date, as known then, lies in it.

    Outcome seen at the period's end (or at ``as_of`` when earlier): ``won`` / ``lost`` (closed in the
    period), ``pushed`` (still open, expected close date as known then after the period),
    ``still_open`` (still open, expected in the period or before: past due at the period's end).

    Parameters
    ----------
    by
        None (one row, ``all``), ``"stage"`` (the stage at the period's start), ``"owner"`` or any
        deal column.

    Returns
    -------
    DataFrame
        ``<by>`` (or ``group``), ``deals``, ``amount`` (as known at the start), ``won``,
        ``won_amount`` (closing amounts), ``lost``, ``pushed``, ``still_open``, ``won_share``
        (won / deals); largest ``amount`` first.

    Examples
    --------
    >>> expected_to_close(ds, Period.quarter("2026Q2"), by="owner")          # doctest: +SKIP
    """
    period = as_period(period, ds)
    start = period.start
    expected = pipeline_at(ds, start, window=period)
    rows = pd.Index(ds.deals["deal_id"]).get_indexer(expected["deal_id"])
    d = ds.deals
    closed = d["closed_at"].to_numpy(dtype="datetime64[ns]")[rows]
    status = d["status"].astype(str).to_numpy()[rows]
    # Outcomes as seen at the period's end, or at as_of when that comes first.
    seen = min(period.as_of, period.stop).to_datetime64()
    closed_in = (closed >= start.to_datetime64()) & (closed < seen)
    open_then = np.isnat(closed) | (closed >= seen)
    later = known_for(ds, "expected_close_date", rows, np.full(len(rows), seen))
    later = pd.to_datetime(pd.Series(later)).to_numpy(dtype="datetime64[ns]")
    pushed = open_then & (later >= period.stop.to_datetime64())
    won = closed_in & (status == "won")
    key = by or "group"
    if by is None:
        labels = np.full(len(rows), "all", dtype=object)
    elif by == "stage":
        labels = expected["stage"].astype(str).to_numpy()
    else:
        require_column(ds, by)
        labels = group_labels(d[by].iloc[rows]).to_numpy() if len(rows) else np.array([], dtype=object)
    frame = pd.DataFrame({key: labels, "deals": 1, "amount": expected["amount"].to_numpy(),
                          "won": won.astype("int64"),
                          "won_amount": np.where(won, d["amount"].to_numpy(dtype=float)[rows], 0.0),
                          "lost": (closed_in & (status == "lost")).astype("int64"),
                          "pushed": pushed.astype("int64"),
                          "still_open": (open_then & ~pushed).astype("int64")})
    out = frame.groupby(key, sort=False).sum(numeric_only=True).reset_index()
    out["won_share"] = out["won"] / out["deals"]
    return out.sort_values(["amount", key], ascending=[False, True], kind="stable").reset_index(drop=True)


def win_rate_by_pushes(ds: Dataset, period: PeriodLike) -> pd.DataFrame:
    """Win rate of the deals closed in ``period`` (before ``as_of``) by how often their expected close
    date was pushed before their close (changes at the close's instant count).

    Returns
    -------
    DataFrame
        ``pushes`` (``0``, ``1``, ``2``, ``3+``, an ordered categorical), ``deals``, ``won``, ``lost``,
        ``win_rate`` = won / deals (NaN when 0).

    Examples
    --------
    >>> win_rate_by_pushes(ds, Period.quarter("2026Q2"))                     # doctest: +SKIP
    """
    period = as_period(period, ds)
    d = ds.deals
    closed = d["closed_at"].to_numpy(dtype="datetime64[ns]")
    stop = min(period.as_of, period.stop).to_datetime64()
    in_p = (closed >= period.start.to_datetime64()) & (closed < stop)
    # Changes at the close's instant count: look just after it.
    until = np.where(np.isnat(closed), np.datetime64("NaT", "ns"), closed + np.timedelta64(1, "ns"))
    pushes, _, _ = _pushes(ds, until)
    bucket = np.minimum(pushes[in_p], 3)
    status = d["status"].astype(str).to_numpy()[in_p]
    frame = pd.DataFrame({"pushes": pd.Categorical.from_codes(bucket, categories=list(PUSH_BUCKETS), ordered=True),
                          "deals": 1, "won": (status == "won").astype("int64"),
                          "lost": (status == "lost").astype("int64")})
    out = frame.groupby("pushes", observed=False)[["deals", "won", "lost"]].sum().reset_index()
    out["win_rate"] = out["won"] / out["deals"].where(out["deals"] > 0)
    return out.astype({"deals": "int64", "won": "int64", "lost": "int64"})


def lost_reasons(ds: Dataset, period: PeriodLike, by: str = "stage") -> pd.DataFrame:
    """Deals lost in ``period`` (before ``as_of``) by ``lost_reason`` × ``by``: the stage they were
    lost from (``"stage"``, default), or any deal column such as ``"source"`` or ``"owner"``.

    Returns
    -------
    DataFrame
        ``lost_reason`` (``(not set)`` when empty or when the data has no such column), ``<by>``,
        ``deals``, ``amount`` (sum of known closing amounts; NaN when none is known),
        ``amount_unknown`` (deals whose closing amount is unknown); most deals first.

    Examples
    --------
    >>> lost_reasons(ds, Period.quarter("2026Q2"), by="owner")               # doctest: +SKIP
    """
    period = as_period(period, ds)
    d = ds.deals
    closed = d["closed_at"].to_numpy(dtype="datetime64[ns]")
    stop = min(period.as_of, period.stop).to_datetime64()
    lost = (closed >= period.start.to_datetime64()) & (closed < stop) & (d["status"].astype(str) == "lost").to_numpy()
    rows = np.flatnonzero(lost)
    reason = (group_labels(d["lost_reason"].iloc[rows]).to_numpy() if "lost_reason" in d.columns
              else np.full(len(rows), NOT_SET, dtype=object))
    if by == "stage":
        group = _last_stage(ds).reindex(rows).to_numpy()
    else:
        require_column(ds, by)
        group = group_labels(d[by].iloc[rows]).to_numpy()
    frame = pd.DataFrame({"lost_reason": reason, by: group, "deals": 1,
                          "amount": d["amount"].to_numpy(dtype=float)[rows]})
    frame["amount_unknown"] = frame["amount"].isna().astype("int64")
    g = frame.groupby(["lost_reason", by], sort=False)
    out = pd.DataFrame({"deals": g["deals"].sum(), "amount": g["amount"].sum(min_count=1),
                        "amount_unknown": g["amount_unknown"].sum()}).reset_index()
    return out.sort_values(["deals", "amount", "lost_reason", by], ascending=[False, False, True, True],
                           kind="stable").reset_index(drop=True)


def _last_stage(ds: Dataset) -> pd.Series:
    """The stage (name) of each lost deal's last visit, by ``deal_row``: the engine's last visits
    (:attr:`Tables.visits`) of lost deals, two columns fetched."""
    v = tables_of(ds).visits
    last = to_arrays(v.filter(v.is_last & (v.status == "lost")).select("deal_row", "stage_index"))
    names = np.asarray(ds.stages, dtype=object)
    return pd.Series(names[last["stage_index"].astype(np.int64)], index=last["deal_row"].astype(np.int64))
