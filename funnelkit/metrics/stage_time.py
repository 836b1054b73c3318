"""Time spent in each stage: durations of stage visits, stuck deals, win rate by time in stage.

A *visit* runs from a stage entry to the deal's next stage entry; the last visit of a closed deal
ends at ``closed_at``; a visit not ended before ``as_of`` is open (censored at ``as_of``). A deal
that moves back and re-enters a stage makes a new visit each time, and each visit counts
separately everywhere in this module. Durations are fractional days (seconds / 86400); quantiles
use linear interpolation. Definitions and worked examples: ``docs/metrics.md``, section 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..dataset import Dataset
from ..history import _ts, visits_as_of
from ..period import Period
from ._common import stage_column

__all__ = ["time_in_stage", "ended_visits", "stage_thresholds", "stuck_deals", "win_rate_by_time_in_stage",
           "DEFAULT_BUCKETS"]

#: Default bucket edges of :func:`win_rate_by_time_in_stage`, in days: [0, 7), [7, 14), ... [90, inf).
DEFAULT_BUCKETS: tuple[float, ...] = (0, 7, 14, 30, 60, 90)



def _per_stage(ds: Dataset, stage_index: np.ndarray, days: np.ndarray, quantiles: dict[str, float],
               mean: bool) -> pd.DataFrame:
    """Count, optional mean and the given quantiles of ``days`` per stage, every stage present.

    One numpy pass per stage (a handful), linear-interpolation quantiles; NaN for empty stages.
    """
    n = len(ds.stages)
    stage_index = np.asarray(stage_index).astype("int64")
    days = np.asarray(days, dtype="float64")
    count = np.bincount(stage_index, minlength=n).astype("int64")
    stats = {name: np.full(n, np.nan) for name in (["mean_days"] if mean else []) + list(quantiles)}
    for i in np.flatnonzero(count):
        x = days[stage_index == i]
        if mean:
            stats["mean_days"][i] = x.mean()
        for name, q in quantiles.items():
            stats[name][i] = np.quantile(x, q)
    return pd.DataFrame({"stage": stage_column(ds), "visits": count, **stats})


def _thresholds(ds: Dataset, v: pd.DataFrame, quantile: float) -> pd.DataFrame:
    if not 0 <= quantile <= 1:
        raise ValueError(f"quantile must lie in [0, 1], got {quantile}")
    ended = ~v["is_open"].to_numpy()
    out = _per_stage(ds, v["stage_index"].to_numpy()[ended], v["days"].to_numpy()[ended],
                     {"threshold_days": quantile}, mean=False)
    return out[["stage", "threshold_days", "visits"]]


def time_in_stage(ds: Dataset, period: Period) -> pd.DataFrame:
    """Durations of the stage visits that ended in P, per stage.

    A visit ends at the deal's next stage entry, or at ``closed_at`` for its last one; only visits
    ended before ``as_of`` and in P count (open visits are not in this table). A visit may have begun
    before P. A tie in ``entered_at`` makes a visit of 0 days, which counts.

    Returns
    -------
    DataFrame
        One row per pipeline stage: ``stage`` (ordered Categorical), ``visits`` (int), ``mean_days``,
        ``median_days``, ``p90_days`` (floats; NaN where ``visits`` is 0).

    Examples
    --------
    >>> time_in_stage(ds, Period("2024-01-01", "2024-01-31"))           # doctest: +SKIP
    """
    v = ended_visits(ds, period)
    return _per_stage(ds, v["stage_index"].to_numpy(), v["days"].to_numpy(),
                      {"median_days": 0.5, "p90_days": 0.9}, mean=True)


def ended_visits(ds: Dataset, period: Period) -> pd.DataFrame:
    """The stage visits that ended in ``period`` (seen at its ``as_of``): what :func:`time_in_stage`
    summarises, one row per visit (the columns of :func:`funnelkit.history.visits_as_of`)."""
    v = visits_as_of(ds, period.as_of)
    return v[(~v["is_open"] & period.contains(v["ended_at"])).to_numpy()]


def stage_thresholds(ds: Dataset, as_of, quantile: float = 0.9) -> pd.DataFrame:
    """The "stuck" threshold per stage: the ``quantile`` of all visits of the stage ended before ``as_of``.

    Returns
    -------
    DataFrame
        One row per pipeline stage: ``stage``, ``threshold_days`` (NaN when the stage has no ended
        visit), ``visits`` (the number of ended visits it was computed from).

    Examples
    --------
    >>> stage_thresholds(ds, "2024-02-01", quantile=0.9)                # doctest: +SKIP
    """
    return _thresholds(ds, visits_as_of(ds, _ts(as_of)), quantile)


def stuck_deals(ds: Dataset, as_of, quantile: float = 0.9) -> pd.DataFrame:
    """Deals open at ``as_of`` whose current visit has lasted longer than their stage's threshold.

    ``days_in_stage`` = days from the current visit's entry to ``as_of``; a deal is stuck when
    ``days_in_stage > threshold_days`` (strictly) with the threshold of :func:`stage_thresholds`.
    A stage with no ended visit has no threshold, and no deal in it is listed.

    Returns
    -------
    DataFrame
        ``deal_id``, ``owner``, ``stage`` (ordered Categorical), ``days_in_stage``,
        ``threshold_days``, ``amount``, ``source``, ``product``; sorted by stage order, then
        ``days_in_stage`` descending, then ``deal_id``.

    Examples
    --------
    >>> stuck_deals(ds, "2024-02-01")                                   # doctest: +SKIP
    """
    v = visits_as_of(ds, _ts(as_of))
    thr = _thresholds(ds, v, quantile)["threshold_days"].to_numpy()
    cur = v[v["is_open"].to_numpy()]          # the current visit of each deal open at as_of
    idx = cur["stage_index"].to_numpy().astype("int64")
    limit = thr[idx]
    days = cur["days"].to_numpy()
    keep = np.isfinite(limit) & (days > np.nan_to_num(limit, nan=np.inf))
    cur = cur[keep]
    rows = cur["deal_row"].to_numpy()
    d = ds.deals
    out = pd.DataFrame({
        "deal_id": d["deal_id"].to_numpy()[rows],
        "owner": d["owner"].iloc[rows].reset_index(drop=True),
        "stage": stage_column(ds, idx[keep]),
        "days_in_stage": days[keep],
        "threshold_days": limit[keep],
        "amount": d["amount"].to_numpy(dtype="float64")[rows],
        "source": d["source"].iloc[rows].reset_index(drop=True),
        "product": d["product"].iloc[rows].reset_index(drop=True),
    })
    out = out.sort_values(["stage", "days_in_stage", "deal_id"], ascending=[True, False, True],
                          kind="stable")
    return out.reset_index(drop=True)


def _bucket_labels(edges: Sequence[float]) -> list[str]:
    labels = []
    for a, b in zip(edges[:-1], edges[1:]):
        labels.append(f"{a:g}+ days" if np.isinf(b) else f"{a:g}-{b:g} days")
    return labels


def win_rate_by_time_in_stage(ds: Dataset, period: Period,
                              buckets: Sequence[float] | None = None) -> pd.DataFrame:
    """Win rate of the deals closed in P by how long each of their visits of a stage lasted.

    Every visit of every deal closed (won or lost) in P, before ``as_of``, is put in the duration
    bucket of its stage; a deal that re-entered a stage contributes one visit per entry. Buckets are
    left-closed day intervals ``[a, b)``.

    Parameters
    ----------
    buckets
        Increasing bucket edges in days starting at 0; default :data:`DEFAULT_BUCKETS`
        ``(0, 7, 14, 30, 60, 90)``. A last bucket up to infinity is added when the last edge is
        finite, so every visit lands in one bucket.

    Returns
    -------
    DataFrame
        One row per stage and bucket (all of them, in order): ``stage`` and ``bucket`` (ordered
        Categoricals; labels such as ``"0-7 days"``, ``"90+ days"``), ``deals`` (visits in the bucket),
        ``won``, ``lost`` (ints), ``win_rate`` = won / deals (NaN when 0).

    Examples
    --------
    >>> win_rate_by_time_in_stage(ds, Period.quarter("2024Q1"), buckets=[0, 14, 30])   # doctest: +SKIP
    """
    edges = [float(x) for x in (DEFAULT_BUCKETS if buckets is None else buckets)]
    if len(edges) < 1 or edges[0] != 0 or any(b <= a for a, b in zip(edges[:-1], edges[1:])):
        raise ValueError(f"buckets must be increasing day edges starting at 0, got {list(edges)}")
    if not np.isinf(edges[-1]):
        edges.append(np.inf)
    labels = _bucket_labels(edges)
    n_st, n_b = len(ds.stages), len(labels)

    v = visits_as_of(ds, period.as_of)
    closed = (v["closed_at"] < period.as_of) & period.contains(v["closed_at"])
    keep = closed.to_numpy()
    b = np.searchsorted(np.asarray(edges), v["days"].to_numpy()[keep], side="right") - 1
    b = np.clip(b, 0, n_b - 1)
    key = v["stage_index"].to_numpy().astype("int64")[keep] * n_b + b
    won = (v["status"] == "won").to_numpy()[keep]
    deals = np.bincount(key, minlength=n_st * n_b).astype("int64")
    wins = np.bincount(key[won], minlength=n_st * n_b).astype("int64")
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(deals > 0, wins / np.maximum(deals, 1), np.nan)
    return pd.DataFrame({
        "stage": stage_column(ds, np.repeat(np.arange(n_st), n_b)),
        "bucket": pd.Categorical.from_codes(np.tile(np.arange(n_b), n_st), categories=labels, ordered=True),
        "deals": deals,
        "won": wins,
        "lost": deals - wins,
        "win_rate": rate,
    })
