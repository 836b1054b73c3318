"""Time spent in each stage: durations of stage visits, stuck deals, win rate by time in stage.

A *visit* runs from a stage entry to the deal's next stage entry; the last visit of a closed deal
ends at ``closed_at``; a visit not ended before ``as_of`` is open (censored at ``as_of``). A deal
that moves back and re-enters a stage makes a new visit each time, and each visit counts
separately everywhere in this module. Durations are fractional days (seconds / 86400); quantiles
use linear interpolation. The visits of deals flagged ``dates_estimated`` (their dates do not measure
a duration) are left out of every duration here, and ``result.attrs["left_out_dates_estimated"]``
says how many such deals were left out. Definitions and worked examples: ``docs/metrics.md``,
section 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..dataset import Dataset
from ..engine.tables import Tables, tables_of, to_frame, to_scalar
from ..engine.views import DAYS_SCALE, OUTCOMES, count_if, exact_mean, exact_quantile, in_period, instant, visits_as_of
from ..contract import DATES_ESTIMATED
from ..errors import ArgumentError
from ..period import Period, PeriodLike, as_instant, as_period
from ._common import LEFT_OUT, dates_estimated, stage_column

__all__ = ["time_in_stage", "ended_visits", "stage_thresholds", "stuck_deals", "win_rate_by_time_in_stage",
           "DEFAULT_BUCKETS"]

#: Default bucket edges of :func:`win_rate_by_time_in_stage`, in days: [0, 7), [7, 14), ... [90, inf).
DEFAULT_BUCKETS: tuple[float, ...] = (0, 7, 14, 30, 60, 90)


def _per_stage(ds: Dataset, t: Tables, v, quantiles: dict[str, float], mean: bool) -> pd.DataFrame:
    """Count, optional mean and the given exact (linear) quantiles of ``days`` per stage of the
    visits ``v`` (an Ibis table), computed by the engine; every stage present, NaN where empty."""
    aggs = {"visits": v.count()}
    if mean:
        # Added as exact decimals (views.exact_mean): the same mean whatever order the engine adds
        # the visits in (a float mean's last digit depends on it: a loaded folder's kept visits
        # table and a database-held copy of the same data differed in the 16th digit).
        aggs["mean_days"] = exact_mean(v.days, scale=DAYS_SCALE)
    for name, q in quantiles.items():
        aggs[name] = exact_quantile(v.days, q, t.backend)
    got = to_frame(v.group_by("stage_index").aggregate(**aggs))
    got = got.set_index(got["stage_index"].astype("int64")).reindex(range(len(ds.stages)))
    stats = {name: got[name].to_numpy(dtype="float64") for name in aggs if name != "visits"}
    return pd.DataFrame({"stage": stage_column(ds), "visits": got["visits"].fillna(0).to_numpy(dtype="int64"),
                         **stats})


def _check_quantile(quantile: float) -> None:
    if not 0 <= quantile <= 1:
        raise ArgumentError(f"quantile must lie in [0, 1], got {quantile}")


def _timed(v):
    """The visits ``v`` whose durations are measured, and how many deals flagged ``dates_estimated``
    (:func:`funnelkit.metrics._common.dates_estimated`) had visits in ``v`` and are left out."""
    if DATES_ESTIMATED not in v.columns:       # no flag column: no deal is flagged
        return v, 0
    flagged = dates_estimated(v)
    return v.filter(~flagged), int(to_scalar(v.filter(flagged).deal_id.nunique()))


def _ended_before(v):
    """The ended visits of ``v`` that measure a duration, and the flagged deals left out (a visit of a
    deal closed by an earlier close at ``as_of`` is neither ended nor open)."""
    return _timed(v.filter(v.ended_at.notnull()))


def _ended_in(t: Tables, period: Period):
    v = visits_as_of(t, period.as_of)
    return _timed(v.filter(in_period(v.ended_at, period)))


def time_in_stage(ds: Dataset, period: PeriodLike) -> pd.DataFrame:
    """Durations of the stage visits that ended in P, per stage.

    A visit ends at the deal's next stage entry, or at ``closed_at`` for its last one; only visits
    ended before ``as_of`` and in P count (open visits are not in this table). A visit may have begun
    before P. A tie in ``entered_at`` makes a visit of 0 days, which counts.

    Returns
    -------
    DataFrame
        One row per pipeline stage: ``stage`` (ordered Categorical), ``visits`` (int), ``mean_days``,
        ``median_days``, ``p90_days`` (floats; NaN where ``visits`` is 0). Visits of deals flagged
        ``dates_estimated`` are left out; ``attrs["left_out_dates_estimated"]`` counts those deals.

    Examples
    --------
    >>> time_in_stage(ds, Period("2024-01-01", "2024-01-31"))           # doctest: +SKIP
    """
    period = as_period(period, ds)
    t = tables_of(ds)
    v, left_out = _ended_in(t, period)
    out = _per_stage(ds, t, v, {"median_days": 0.5, "p90_days": 0.9}, mean=True)
    out.attrs[LEFT_OUT] = left_out
    return out


def ended_visits(ds: Dataset, period: PeriodLike) -> pd.DataFrame:
    """The stage visits that ended in ``period`` (seen at its ``as_of``): what :func:`time_in_stage`
    summarises, one row per visit: ``deal_id``, ``stage`` (ordered Categorical), ``stage_index``,
    ``entered_at``, ``ended_at``, ``outcome`` (Categorical of :data:`funnelkit.engine.views.OUTCOMES`),
    ``days``; in deal, then entry order (deals flagged ``dates_estimated`` left out and counted in
    ``attrs["left_out_dates_estimated"]``, as in :func:`time_in_stage`).

    Examples
    --------
    >>> ended_visits(ds, Period.quarter("2024Q1"))[["deal_id", "stage", "days"]]   # doctest: +SKIP
    """
    period = as_period(period, ds)
    v, left_out = _ended_in(tables_of(ds), period)
    v = to_frame(v.select("deal_id", "stage_index", "entered_at", "ended_at", "outcome", "days")
                 .order_by(["deal_id", "entered_at", "stage_index"]))
    out = pd.DataFrame({
        "deal_id": v["deal_id"], "stage": stage_column(ds, v["stage_index"].to_numpy()),
        "stage_index": v["stage_index"].astype("int16"), "entered_at": v["entered_at"],
        "ended_at": v["ended_at"],
        "outcome": pd.Categorical.from_codes(v["outcome"].to_numpy(dtype="int64"), categories=list(OUTCOMES)),
        "days": v["days"].astype("float64")})
    out.attrs[LEFT_OUT] = left_out
    return out


def stage_thresholds(ds: Dataset, as_of, quantile: float = 0.9) -> pd.DataFrame:
    """The "stuck" threshold per stage: the ``quantile`` of all visits of the stage ended before ``as_of``.

    Returns
    -------
    DataFrame
        One row per pipeline stage: ``stage``, ``threshold_days`` (NaN when the stage has no ended
        visit), ``visits`` (the number of ended visits it was computed from). Visits of deals
        flagged ``dates_estimated`` are left out; ``attrs["left_out_dates_estimated"]`` counts those
        deals.

    Examples
    --------
    >>> stage_thresholds(ds, "2024-02-01", quantile=0.9)                # doctest: +SKIP
    """
    _check_quantile(quantile)
    t = tables_of(ds)
    ended, left_out = _ended_before(visits_as_of(t, as_instant(as_of)))
    out = _per_stage(ds, t, ended, {"threshold_days": quantile}, mean=False)[["stage", "threshold_days", "visits"]]
    out.attrs[LEFT_OUT] = left_out
    return out


def stuck_deals(ds: Dataset, as_of, quantile: float = 0.9) -> pd.DataFrame:
    """Deals open at ``as_of`` whose current visit has lasted longer than their stage's threshold.

    ``days_in_stage`` = days from the current visit's entry to ``as_of``; a deal is stuck when
    ``days_in_stage > threshold_days`` (strictly) with the threshold of :func:`stage_thresholds`.
    A stage with no ended visit has no threshold, and no deal in it is listed. The thresholds leave
    out the visits of deals flagged ``dates_estimated`` (``attrs["left_out_dates_estimated"]``
    counts those deals); an open deal is listed by its current visit whatever its flag.

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
    _check_quantile(quantile)
    t = tables_of(ds)
    v = visits_as_of(t, as_instant(as_of))
    ended, left_out = _ended_before(v)
    thr = ended.group_by("stage_index").aggregate(
        threshold_days=exact_quantile(ended.days, quantile, t.backend))
    cur = v.filter(v.is_open)             # the current visit of each deal open at as_of
    cur = cur.join(thr, "stage_index").filter(lambda r: r.days > r.threshold_days)
    d = t.deals
    cur = cur.join(d.select("deal_id", "owner", "amount", "source", "product"), "deal_id")
    got = to_frame(cur.select("deal_id", "owner", "stage_index", "days", "threshold_days", "amount",
                              "source", "product"))
    out = pd.DataFrame({
        "deal_id": got["deal_id"].astype(str),
        "owner": got["owner"],
        "stage": stage_column(ds, got["stage_index"].to_numpy()),
        "days_in_stage": got["days"].to_numpy(dtype="float64"),
        "threshold_days": got["threshold_days"].to_numpy(dtype="float64"),
        "amount": got["amount"].to_numpy(dtype="float64"),
        "source": got["source"],
        "product": got["product"],
    })
    out = out.sort_values(["stage", "days_in_stage", "deal_id"], ascending=[True, False, True],
                          kind="stable").reset_index(drop=True)
    out.attrs[LEFT_OUT] = left_out
    return out


def _bucket_labels(edges: Sequence[float]) -> list[str]:
    labels = []
    for a, b in zip(edges[:-1], edges[1:]):
        labels.append(f"{a:g}+ days" if np.isinf(b) else f"{a:g}-{b:g} days")
    return labels


def _bucket(days, edges: list[float]):
    """Position of the left-closed bucket ``[a, b)`` holding ``days`` (an Ibis column); ``edges``
    end with infinity, so the last bucket takes every duration past the last finite edge."""
    import ibis

    finite = edges[1:-1]
    if not finite:
        return ibis.literal(0)
    return ibis.cases(*[(days < edge, i) for i, edge in enumerate(finite)], else_=len(finite))


def win_rate_by_time_in_stage(ds: Dataset, period: PeriodLike,
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
        ``won``, ``lost`` (ints), ``win_rate`` = won / deals (NaN when 0). The visits of deals flagged
        ``dates_estimated`` are left out; ``attrs["left_out_dates_estimated"]`` counts those deals.

    Examples
    --------
    >>> win_rate_by_time_in_stage(ds, Period.quarter("2024Q1"), buckets=[0, 14, 30])   # doctest: +SKIP
    """
    period = as_period(period, ds)
    edges = [float(x) for x in (DEFAULT_BUCKETS if buckets is None else buckets)]
    if len(edges) < 1 or edges[0] != 0 or any(b <= a for a, b in zip(edges[:-1], edges[1:])):
        raise ArgumentError(f"buckets must be increasing day edges starting at 0, got {list(edges)}")
    if not np.isinf(edges[-1]):
        edges.append(np.inf)
    labels = _bucket_labels(edges)
    n_st, n_b = len(ds.stages), len(labels)

    t = tables_of(ds)
    v = visits_as_of(t, period.as_of)
    v = v.filter(v.closed_at.notnull() & (v.closed_at < instant(period.as_of)) & in_period(v.closed_at, period))
    v, left_out = _timed(v)
    v = v.mutate(bucket=_bucket(v.days, edges))
    got = to_frame(v.group_by(["stage_index", "bucket"]).aggregate(deals=v.count(),
                                                                    won=count_if(v.status == "won")))
    key = got["stage_index"].to_numpy(dtype="int64") * n_b + got["bucket"].to_numpy(dtype="int64")
    deals = np.zeros(n_st * n_b, dtype="int64")
    wins = np.zeros(n_st * n_b, dtype="int64")
    deals[key] = got["deals"].to_numpy(dtype="int64")
    wins[key] = got["won"].to_numpy(dtype="int64")
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(deals > 0, wins / np.maximum(deals, 1), np.nan)
    out = pd.DataFrame({
        "stage": stage_column(ds, np.repeat(np.arange(n_st), n_b)),
        "bucket": pd.Categorical.from_codes(np.tile(np.arange(n_b), n_st), categories=labels, ordered=True),
        "deals": deals,
        "won": wins,
        "lost": deals - wins,
        "win_rate": rate,
    })
    out.attrs[LEFT_OUT] = left_out
    return out
