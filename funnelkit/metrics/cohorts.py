"""Cohort conversion over time: deals by month of creation × months since creation.

Definition (``docs/metrics.md``, section 11): the cohort of month M is the deals created in M (and
before ``as_of``). Month k since creation is the k-th calendar month after M (k = 0 is M itself). For
every cohort and every k whose month has begun before ``as_of``, the deals won, lost and still open
at the end of that month (or at ``as_of`` when earlier); a cell whose month has not ended by
``as_of`` is **not complete**: its open deals may still close, so it is not yet comparable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ArgumentError
from ..period import as_instant
from ..dataset import Dataset

__all__ = ["cohort_conversion"]


def _month_number(ts: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of each timestamp (calendar months)."""
    return ts.astype("datetime64[M]").astype("int64")


def cohort_conversion(ds: Dataset, as_of, months: int = 12) -> pd.DataFrame:
    """Share of each creation-month cohort won, lost and open by each month since creation.

    Parameters
    ----------
    ds
        The data set.
    as_of
        The instant the data is seen at (events before it).
    months
        How many months since creation to follow (k = 0 .. months - 1).

    Returns
    -------
    DataFrame
        Long form: ``cohort`` (``YYYY-MM``), ``months_since`` (k), ``deals`` (the cohort's size),
        ``won``, ``lost``, ``open`` (at the end of month k, or at ``as_of``), ``won_share``,
        ``lost_share``, ``open_share`` (of ``deals``), ``complete`` (month k ended by ``as_of``);
        sorted by cohort and k.

    Examples
    --------
    >>> c = cohort_conversion(ds, "2026-07-01", months=6)                        # doctest: +SKIP
    >>> c.pivot(index="cohort", columns="months_since", values="won_share")     # doctest: +SKIP
    """
    if months < 1:
        raise ArgumentError("months must be at least 1")
    at = as_instant(as_of).to_datetime64().astype("datetime64[ns]")
    d = ds.deals
    created = d["created_at"].to_numpy(dtype="datetime64[ns]")
    seen = created < at
    created = created[seen]
    closed = d["closed_at"].to_numpy(dtype="datetime64[ns]")[seen]
    status = d["status"].astype(str).to_numpy()[seen]
    cols = ["cohort", "months_since", "deals", "won", "lost", "open", "won_share", "lost_share", "open_share",
            "complete"]
    if not len(created):
        return pd.DataFrame(columns=cols)
    m = _month_number(created)
    now = _month_number(np.array([at - np.timedelta64(1, "ns")]))[0]   # the month as_of falls in
    first = int(m.min())
    cohort = m - first
    n_c = int(now - first + 1)
    closes = ~np.isnat(closed) & (closed < at)
    k_close = np.where(closes, _month_number(np.where(closes, closed, created)) - m, months)
    k_close = np.minimum(k_close, months)          # months = "not within the followed months"

    def cumulative(mask: np.ndarray) -> np.ndarray:
        counts = np.bincount(cohort[mask] * (months + 1) + k_close[mask], minlength=n_c * (months + 1))
        return np.cumsum(counts.reshape(n_c, months + 1), axis=1)[:, :months]

    won, lost = cumulative(status == "won"), cumulative(status == "lost")
    size = np.bincount(cohort, minlength=n_c)
    c_idx, k_idx = np.divmod(np.arange(n_c * months), months)
    begun = first + c_idx + k_idx <= now
    keep = begun & (size[c_idx] > 0)
    c_idx, k_idx = c_idx[keep], k_idx[keep]
    ends = (np.array(first + c_idx + k_idx + 1, dtype="int64")).astype("datetime64[M]").astype("datetime64[ns]")
    out = pd.DataFrame({
        "cohort": pd.DatetimeIndex(np.asarray(first + c_idx, dtype="int64").astype("datetime64[M]")
                                   .astype("datetime64[ns]")).strftime("%Y-%m"),
        "months_since": k_idx.astype("int64"),
        "deals": size[c_idx].astype("int64"),
        "won": won[c_idx, k_idx].astype("int64"),
        "lost": lost[c_idx, k_idx].astype("int64"),
    })
    out["open"] = out["deals"] - out["won"] - out["lost"]
    for col in ("won", "lost", "open"):
        out[f"{col}_share"] = out[col] / out["deals"]
    out["complete"] = ends <= at
    return out[cols]
