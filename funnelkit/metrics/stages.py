"""Deals per stage: snapshots, the weekly series, the funnel of a cohort, stage flow, bottleneck.

Definitions (``docs/metrics.md``, section 1):

- **Snapshot at T**: a deal is in stage S at T when it was created before T, not closed before T
  (a close at or after T is not yet seen) and its latest stage entry before T is S. Ties in
  ``entered_at`` are ordered by stage order, so the later stage of a tie is the current one.
- **Weekly series**: snapshots at the end of each week (Sunday 24:00 = Monday 00:00) whose Sunday
  lies in P and that is not after ``as_of``, plus ``as_of`` itself.
- **Funnel**: over the cohort of deals created in P (and before ``as_of``). ``reached(S)`` counts the
  cohort deals whose furthest stage seen at ``as_of`` is S or later, or that were won by ``as_of``.
- **Stage flow**: the visits that began in P, by what became of each by ``as_of``.
- **Bottleneck**: the stage with the lowest conversion, and the largest week-over-week fall in one
  stage's open deals along the weekly series.

All per-stage tables list every pipeline stage, in pipeline order, as an ordered Categorical.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..dataset import Dataset
from ..engine.tables import tables_of, to_frame
from ..engine.views import (OUTCOMES, count_if, deals_as_of, exact_sum, final_status_as_of, in_period, instant,
                            instants, known_amounts, not_closed_then, open_at, visits_as_of)
from ..period import Period, PeriodLike, as_instant, as_period
from ._common import stage_column

__all__ = ["snapshot", "weekly_snapshots", "funnel", "cohort_outcomes", "stage_flow", "bottleneck",
           "week_ends", "unvisited_stages"]



def week_ends(period: PeriodLike) -> list[pd.Timestamp]:
    """The instants of the weekly series of ``period``.

    Each Monday 00:00 (= Sunday 24:00) whose Sunday lies in the period and that is not after
    ``period.as_of``, plus ``period.as_of``; sorted, without repeats.

    Examples
    --------
    >>> [str(t) for t in week_ends(Period("2024-01-01", "2024-01-16"))]
    ['2024-01-08 00:00:00', '2024-01-15 00:00:00', '2024-01-17 00:00:00']
    """
    period = as_period(period)
    # First Sunday on or after start: weekday() is 0 for Monday .. 6 for Sunday.
    first_sunday = period.start + pd.Timedelta(days=(6 - period.start.weekday()) % 7)
    sundays = pd.date_range(first_sunday, period.end, freq="7D")
    ends = [s + pd.Timedelta(days=1) for s in sundays]
    ends = [t for t in ends if t <= period.as_of] + [period.as_of]
    return sorted(set(ends))


def _open_by_stage(ds: Dataset, times: list[pd.Timestamp], *,
                   amounts: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Open deals, their known amounts and how many have none, per stage at each instant.

    Arrays of shape (stages, times): counts, sums of the amounts as known at each instant (NaN where
    every open deal's amount is unknown) and counts of open deals of unknown amount (both None
    without ``amounts``). One engine query for all instants: each deal's current visit at each
    instant (:func:`funnelkit.engine.views.open_at`) unless the deal is closed then by an earlier close
    (:func:`funnelkit.engine.views.not_closed_then`), counted per instant and stage.
    """
    t = tables_of(ds)
    inst = instants(times)
    v = t.visits
    v = v.select("deal_row", "stage_index", "entered_at", "ends_at")
    cur = v.join(inst, open_at(v, inst.at))
    cur = not_closed_then(t, cur, cur.at)
    aggs = {"open_deals": cur.count()}
    if amounts:
        known = known_amounts(t, times)
        if known is None:
            cur = cur.join(t.deals.select("deal_row", "amount"), "deal_row")
        else:
            cur = cur.join(known, ["i", "deal_row"])
        aggs = {"open_deals": cur.count(), "open_amount": exact_sum(cur.amount),
                "open_amount_unknown": count_if(cur.amount.isnull())}
    got = to_frame(cur.group_by(["stage_index", "i"]).aggregate(**aggs))
    shape = (len(ds.stages), len(times))
    where = (got["stage_index"].to_numpy(dtype="int64"), got["i"].to_numpy(dtype="int64"))

    def spread(col: str, empty: float, dtype: str) -> np.ndarray:
        out = np.full(shape, empty, dtype=dtype)
        out[where] = got[col].to_numpy(dtype=dtype, na_value=np.nan) if dtype == "float64" \
            else got[col].to_numpy(dtype=dtype)
        return out

    counts = spread("open_deals", 0, "int64")
    if not amounts:
        return counts, None, None
    # A stage with no open deal holds 0; one whose open deals' amounts are all unknown, NaN (the sum of nulls).
    return counts, spread("open_amount", 0.0, "float64"), spread("open_amount_unknown", 0, "int64")


def snapshot(ds: Dataset, at, *, amounts: bool = True) -> pd.DataFrame:
    """Open deals per stage at the instant ``at``.

    A deal counts in stage S when it was created before ``at``, was not closed before ``at`` and its
    latest stage entry before ``at`` is S (events at exactly ``at`` are not yet seen).

    Parameters
    ----------
    ds
        The data set.
    at
        The instant (anything :class:`pandas.Timestamp` accepts; a date means its 00:00).
    amounts
        ``False`` leaves out the two amount columns (then deals in several currencies are fine).

    Returns
    -------
    DataFrame
        One row per pipeline stage, in order: ``stage`` (ordered Categorical), ``open_deals`` (int),
        ``open_amount`` (sum of the known amounts; 0.0 when the stage is empty, NaN when every open
        deal's amount is unknown), ``open_amount_unknown`` (open deals of unknown amount).

    Examples
    --------
    >>> import funnelkit as fk
    >>> snapshot(fk.load("data/sample"), "2026-04-01")
             stage  open_deals  open_amount  open_amount_unknown
    0         Lead          32    298522.09                    0
    1    Qualified          39    310965.76                    1
    2      Meeting          33    259034.49                    0
    3     Proposal          36    158415.52                    0
    4  Negotiation          20    297483.31                    0
    """
    if amounts:
        ds.require_single_currency("snapshot (open_amount)")
    counts, total, unknown = _open_by_stage(ds, [as_instant(at)], amounts=amounts)
    out = pd.DataFrame({"stage": stage_column(ds), "open_deals": counts[:, 0]})
    if amounts:
        out["open_amount"] = total[:, 0]
        out["open_amount_unknown"] = unknown[:, 0]
    return out


def weekly_snapshots(ds: Dataset, period: PeriodLike, *, amounts: bool = True) -> pd.DataFrame:
    """Snapshots at the end of each week in the period, plus at ``period.as_of``.

    The instants are those of :func:`week_ends`: each Monday 00:00 whose Sunday lies in P and is not
    after ``as_of`` (the data is seen as it stood at ``as_of``), then ``as_of`` itself.

    Returns
    -------
    DataFrame
        Long form, one row per instant and stage: ``at`` (datetime), ``stage`` (ordered Categorical),
        ``open_deals``, ``open_amount``, ``open_amount_unknown`` (as in :func:`snapshot`; no amount
        columns with ``amounts=False``).

    Examples
    --------
    >>> w = weekly_snapshots(ds, Period.quarter("2024Q1"))               # doctest: +SKIP
    >>> w.pivot(index="at", columns="stage", values="open_deals")        # doctest: +SKIP
    """
    period = as_period(period, ds)
    if amounts:
        ds.require_single_currency("weekly_snapshots (open_amount)")
    times = week_ends(period)
    counts, total, unknown = _open_by_stage(ds, times, amounts=amounts)
    n_st, n_t = counts.shape
    out = pd.DataFrame({
        "at": pd.DatetimeIndex(times).repeat(n_st).astype("datetime64[ns]"),
        "stage": stage_column(ds, np.tile(np.arange(n_st), n_t)),
        "open_deals": counts.T.ravel(),
    })
    if amounts:
        out["open_amount"] = total.T.ravel()
        out["open_amount_unknown"] = unknown.T.ravel()
    return out


def _cohort(ds: Dataset, period: Period) -> tuple[np.ndarray, dict[str, int]]:
    """The cohort of deals created in P, seen at ``as_of``: ``reached`` per stage and the deals by
    status at ``as_of`` (``{"deals", "won", "lost", "open"}``), from one engine query.

    A deal's furthest stage is the highest stage among its entries before ``as_of`` (the last stage
    when it was won by ``as_of``); ``reached(S)`` counts the cohort deals whose furthest stage is S
    or later.
    """
    import ibis

    n_st = len(ds.stages)
    t = tables_of(ds)
    at = instant(period.as_of)
    d = deals_as_of(t, period.as_of, amounts=False)
    d = d.filter(in_period(d.created_at, period)).select("deal_id", status_as_of=final_status_as_of(d))
    # Only the cohort's entries are grouped per deal, not every deal's (at 1M deals 0.16 s of CPU,
    # not 0.26); the entries, not the visits: on a database the visits are a window over them all.
    e = t.entries.filter(t.entries.entered_at < at)
    e = e.semi_join(d, "deal_id")
    furthest = e.group_by("deal_id").aggregate(furthest=e.stage_index.max())
    c = d.left_join(furthest, "deal_id")
    c = c.mutate(furthest=ibis.ifelse(c.status_as_of == "won", n_st - 1, c.furthest))
    got = to_frame(c.group_by(["furthest", "status_as_of"]).aggregate(n=c.count()))
    n = got["n"].to_numpy(dtype="int64")
    status = got["status_as_of"].astype(str).to_numpy()
    seen = got["furthest"].notna().to_numpy()   # every cohort deal has an entry at its creation; kept defensive
    per_stage = np.bincount(got["furthest"].to_numpy(dtype="float64", na_value=0)[seen].astype("int64"),
                            weights=n[seen], minlength=n_st)
    reached = np.cumsum(per_stage[::-1])[::-1].astype("int64")
    outcomes = {"deals": int(n.sum()), **{s: int(n[status == s].sum()) for s in ("won", "lost", "open")}}
    return reached, outcomes


def cohort_outcomes(ds: Dataset, period: PeriodLike) -> dict:
    """The cohort of :func:`funnel` (deals created in P, before ``as_of``) by status at ``as_of``.

    Returns
    -------
    dict
        ``{"deals": int, "won": int, "lost": int, "open": int}``; a deal closed after ``as_of`` is open.

    Examples
    --------
    >>> import funnelkit as fk
    >>> cohort_outcomes(fk.load("data/sample"), "2026-05")      # the deals created in May 2026
    {'deals': 146, 'won': 0, 'lost': 55, 'open': 91}
    """
    period = as_period(period, ds)
    return _cohort(ds, period)[1]


def funnel(ds: Dataset, period: PeriodLike) -> pd.DataFrame:
    """How far the deals created in P got by ``as_of``.

    ``reached(S)`` is the number of cohort deals whose furthest stage (highest stage among their
    entries before ``as_of``; moving back does not undo it) is S or later, or that were won by
    ``as_of``; a skipped stage counts as passed. ``conversion(S) = reached(next) / reached(S)``; for
    the last stage ``won / reached(last)`` with ``won`` the cohort deals won by ``as_of``.
    ``conversion`` is NaN where ``reached(S)`` is 0.

    Returns
    -------
    DataFrame
        One row per pipeline stage: ``stage`` (ordered Categorical), ``reached`` (int),
        ``conversion`` (float in [0, 1] or NaN).

    Examples
    --------
    >>> import funnelkit as fk
    >>> funnel(fk.load("data/sample"), "2026-05")
             stage  reached  conversion
    0         Lead      146    0.547945
    1    Qualified       80    0.512500
    2      Meeting       41    0.390244
    3     Proposal       16    0.312500
    4  Negotiation        5    0.000000
    """
    period = as_period(period, ds)
    reached, outcomes = _cohort(ds, period)
    nxt = np.append(reached[1:], outcomes["won"]).astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        conversion = np.where(reached > 0, nxt / np.maximum(reached, 1), np.nan)
    return pd.DataFrame({"stage": stage_column(ds), "reached": reached, "conversion": conversion})


def stage_flow(ds: Dataset, period: PeriodLike) -> pd.DataFrame:
    """What became, by ``as_of``, of each stage visit that began in P.

    Each visit (a stage entry, up to the deal's next entry or its close) that began in P and before
    ``as_of`` falls in exactly one of: ``advanced`` (next entry is the next stage), ``skipped ahead``
    (a later stage, past the next), ``moved back`` (an earlier stage), ``won`` / ``lost`` (the deal
    closed from this visit), ``still there`` (open at ``as_of``). A deal that re-enters a stage makes
    a new visit each time.

    Returns
    -------
    DataFrame
        One row per pipeline stage: ``stage``, ``visits``, then the six outcomes (ints); the
        outcomes add up to ``visits``.

    Examples
    --------
    >>> stage_flow(ds, Period("2024-01-01", "2024-01-31"))              # doctest: +SKIP
    """
    period = as_period(period, ds)
    v = visits_as_of(tables_of(ds), period.as_of)
    v = v.filter(in_period(v.entered_at, period))
    got = to_frame(v.group_by(["stage_index", "outcome"]).aggregate(n=v.count()))
    n_st, n_o = len(ds.stages), len(OUTCOMES)
    table = np.zeros((n_st, n_o), dtype="int64")
    table[got["stage_index"].to_numpy(dtype="int64"), got["outcome"].to_numpy(dtype="int64")] = \
        got["n"].to_numpy(dtype="int64")
    out = pd.DataFrame({"stage": stage_column(ds), "visits": table.sum(axis=1).astype("int64")})
    for j, name in enumerate(OUTCOMES):
        out[name] = table[:, j].astype("int64")
    return out


def bottleneck(ds: Dataset, period: PeriodLike) -> dict:
    """Name the bottleneck of the period.

    - ``lowest_conversion_stage`` / ``lowest_conversion``: the stage of :func:`funnel` with the lowest
      conversion (the last stage's conversion is its win rate); stages with no conversion (NaN) are
      skipped; on a tie, the earlier stage.
    - ``largest_drop_stage`` / ``largest_drop`` / ``largest_drop_week``: the largest fall in one
      stage's open deals between two consecutive instants of the weekly series
      (:func:`week_ends`), the stage, and the later instant of the pair (the week end at which the
      lower count was seen). On a tie, the earliest instant, then the earlier stage. When no stage
      ever falls (or the series has one instant), the three are ``None``.

    Only counts are used, so mixed currencies are fine.

    Returns
    -------
    dict
        ``{lowest_conversion_stage: str | None, lowest_conversion: float | None,
        largest_drop_stage: str | None, largest_drop: int | None,
        largest_drop_week: Timestamp | None}``

    Examples
    --------
    >>> bottleneck(ds, Period("2024-01-01", "2024-01-31"))              # doctest: +SKIP
    """
    period = as_period(period, ds)
    f = funnel(ds, period)
    conv = f["conversion"].to_numpy()
    out: dict = {"lowest_conversion_stage": None, "lowest_conversion": None}
    if np.isfinite(conv).any():
        i = int(np.nanargmin(conv))  # first occurrence of the minimum
        out["lowest_conversion_stage"] = ds.stages[i]
        out["lowest_conversion"] = float(conv[i])
    times = week_ends(period)
    counts, _, _ = _open_by_stage(ds, times, amounts=False)
    out.update(largest_drop_stage=None, largest_drop=None, largest_drop_week=None)
    if counts.shape[1] >= 2:
        fall = counts[:, :-1] - counts[:, 1:]          # (stages, pairs); positive = fewer open deals
        best = int(fall.max())
        if best > 0:
            # Earliest pair first, then the earlier stage: scan pairs in order (transpose).
            j, i = np.argwhere(fall.T == best)[0]
            out.update(largest_drop_stage=ds.stages[int(i)], largest_drop=best,
                       largest_drop_week=pd.Timestamp(times[int(j) + 1]))
    return out


def unvisited_stages(ds: Dataset) -> list[str]:
    """The pipeline stages that no deal in the data ever entered, in pipeline order.

    Such a stage (e.g. Maven CRM's ``Prospecting``, whose deals the import rejected for want of a
    date) would show in :func:`funnel` as "reached" by every deal, only because a skipped stage
    counts as passed; the report leaves it out of the funnel and says so.

    Examples
    --------
    >>> unvisited_stages(ds)                                            # doctest: +SKIP
    ['Prospecting']
    """
    e = tables_of(ds).entries
    seen = set(to_frame(e.select("stage_index").distinct())["stage_index"].astype("int64"))
    return [s for i, s in enumerate(ds.stages) if i not in seen]
