"""Days to close: how long closed deals took, and a censoring-aware estimate that counts open deals.

Definitions are in ``docs/metrics.md`` (section 3). Every function sees the data as it stood at
``period.as_of`` (:func:`funnelkit.engine.views.deals_as_of`) and runs on the data set's engine
(:mod:`funnelkit.engine`); only the Kaplan-Meier product over the cohort stays in scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
from scipy.stats import CensoredData, ecdf

from ..dataset import Dataset
from ..engine.tables import Tables, tables_of, to_frame
from ..engine.views import (DAYS_SCALE, closed_in, count_if, days_between, deals_as_of, exact_mean, exact_quantile,
                            final_status_as_of, in_period, instant)
from ..errors import ArgumentError
from ..period import Period, PeriodLike, as_period
from ._common import LEFT_OUT, dates_estimated, group_label, require_column

__all__ = ["closed_in_period", "size_band", "days_to_close", "close_time_survival",
           "CloseTimeSurvival", "SIZE_BAND", "UNKNOWN_BAND"]

#: The ``by=`` value that groups by deal-size band.
SIZE_BAND = "size_band"
#: Band of deals whose amount is unknown.
UNKNOWN_BAND = "(amount unknown)"
_STATUSES = ["won", "lost"]


def closed_in_period(ds: Dataset, period: PeriodLike) -> pd.DataFrame:
    """Deals closed (won or lost) in ``period`` as seen at ``period.as_of``.

    A deal counts when its close is seen at ``as_of`` (``closed_at < as_of``) and lies in P
    (``start <= closed_at < end + 1 day``). Adds ``days_to_close`` = (``closed_at`` - ``created_at``)
    in fractional days (NaN, unknown, for a deal flagged ``dates_estimated``); ``status_as_of``
    equals ``status`` for these deals. Rows keep the data set's deal order and index; ``amount`` is
    the amount as known at ``as_of`` (with a change log).

    Examples
    --------
    >>> closed = closed_in_period(ds, Period.quarter("2026Q3"))   # doctest: +SKIP
    >>> closed.groupby("status", observed=True).days_to_close.median()   # doctest: +SKIP
    """
    period = as_period(period, ds)
    t = tables_of(ds)
    got = to_frame(closed_in(t, period).select("deal_row", "amount", "days_to_close").order_by("deal_row"))
    rows = got["deal_row"].to_numpy(dtype="int64")
    d = ds.deals.iloc[rows].copy()
    d["amount"] = got["amount"].to_numpy(dtype="float64")
    d["closed_as_of"] = d["closed_at"]
    d["status_as_of"] = pd.Categorical(d["status"].astype(str), categories=["open", "won", "lost"])
    d["days_to_close"] = got["days_to_close"].to_numpy(dtype="float64")
    return d


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


def _band_labels(edges: list[float], *, quartiles: bool = False) -> list[str]:
    """The labels of the bands of ``edges`` (see :func:`size_band`), the unknown band last."""
    if any(b < a for a, b in zip(edges, edges[1:])):
        raise ArgumentError(f"band edges must be non-decreasing, got {edges}")
    labels = [f"<= {_fmt(edges[0])}"] if edges else ["all"]
    labels += [f"{_fmt(a)}-{_fmt(b)}" for a, b in zip(edges, edges[1:])]
    if edges:
        labels.append(f"> {_fmt(edges[-1])}")
    if quartiles:
        labels = [f"Q{i + 1}: {lab}" for i, lab in enumerate(labels)]
    return labels + [UNKNOWN_BAND]


def size_band(amount: pd.Series, edges: Sequence[float], *, quartiles: bool = False) -> pd.Series:
    """Deal-size band of each amount: an ordered categorical.

    Bands are right-closed: with edges ``e1 < ... < ek`` the bands are ``<= e1``, ``e1-e2`` (above e1,
    up to and including e2), ..., ``> ek``. Unknown amounts fall in :data:`UNKNOWN_BAND` (last).
    With ``quartiles=True`` the labels are prefixed ``Q1: ``.. ``Q4: ``. Equal edges give empty bands.
    """
    edges = [float(e) for e in edges]
    labels = _band_labels(edges, quartiles=quartiles)
    a = amount.to_numpy(dtype=float)
    codes = np.searchsorted(np.asarray(edges, dtype=float), a, side="left")
    codes = np.where(np.isnan(a), len(labels) - 1, codes)
    return pd.Series(pd.Categorical.from_codes(codes, categories=labels, ordered=True),
                     index=amount.index, name=SIZE_BAND)


def days_to_close(ds: Dataset, period: PeriodLike, by: str | None = None, *,
                  bands: Sequence[float] | None = None) -> pd.DataFrame:
    """Count, mean and median days from creation to close of the deals closed in P, won and lost apart.

    Parameters
    ----------
    ds, period
        The data set and the period; deals closed in P as seen at ``period.as_of``.
    by
        ``None`` (one row per status), ``"size_band"`` (deal-size bands), or a deal column such as
        ``"product"``, ``"source"`` or ``"owner"``.
    bands
        Band edges for ``by="size_band"``. Default: the quartiles (linear interpolation) of the known
        amounts of all deals closed in P, won and lost together, giving bands Q1..Q4. The edges used
        are in ``result.attrs["band_edges"]``.

    Returns
    -------
    DataFrame
        ``status`` (won, lost), the ``by`` column when given, ``deals``, ``mean_days``,
        ``median_days`` (NaN when no deals). Without ``by`` both statuses always appear. With a
        column, every group present among the deals closed in P appears under both statuses (zeros
        where none); with size bands every band appears (the unknown-amount band only when used).
        Deals flagged ``dates_estimated`` are left out; ``result.attrs["left_out_dates_estimated"]``
        says how many.

    Examples
    --------
    >>> days_to_close(ds, Period.quarter("2026Q3"))                  # doctest: +SKIP
      status  deals  mean_days  median_days
    0    won     41       38.2         33.5
    1   lost     57       29.9         24.0
    >>> days_to_close(ds, Period.quarter("2026Q3"), by="product")    # doctest: +SKIP
    """
    period = as_period(period, ds)
    t = tables_of(ds)
    c = closed_in(t, period)
    if by is None:
        out = _days_per_group(t, c, c.status, None, _STATUSES)
        out.attrs[LEFT_OUT] = out.attrs.pop("_left_out")
        return out
    edges_used = None
    if by == SIZE_BAND:
        ds.require_single_currency("days to close by deal-size band")
        timed = c.days_to_close.notnull()
        if bands is None:
            known = timed & c.amount.notnull()
            q = c.aggregate(n=count_if(known), **{f"q{i}": exact_quantile(c.amount, p, t.backend, where=known)
                                                   for i, p in enumerate((0.25, 0.5, 0.75))})
            q = to_frame(q).iloc[0]
            edges_used = [float(q[f"q{i}"]) for i in range(3)] if int(q["n"]) else []
            labels = _band_labels(edges_used, quartiles=bool(edges_used))
        else:
            edges_used = [float(b) for b in bands]
            labels = _band_labels(edges_used)
        group = _band_code(c.amount, edges_used)
        out = _days_per_group(t, c, c.status, group, _STATUSES, labels=labels)
    else:
        require_column(ds, by)
        out = _days_per_group(t, c, c.status, group_label(c[by]), _STATUSES)
    out = out.rename(columns={"_group": by})
    if edges_used is not None:
        out.attrs["band_edges"] = [float(e) for e in edges_used]
    out.attrs[LEFT_OUT] = out.attrs.pop("_left_out")
    return out


def _band_code(amount, edges: Sequence[float]):
    """:func:`size_band`'s position of each amount (an Ibis column): the first band whose upper edge
    is >= the amount (right-closed), the last band above every edge, the unknown band for null."""
    import ibis

    cases = [(amount.isnull(), len(edges) + 1)] + [(amount <= e, i) for i, e in enumerate(edges)]
    return ibis.cases(*cases, else_=len(edges))


def _days_per_group(t: Tables, c, status, group, statuses: list[str], *,
                    labels: list[str] | None = None) -> pd.DataFrame:
    """Count, mean and median ``days_to_close`` per status (and group) of the closed deals ``c``,
    computed by the engine; deals of unknown days (flagged ``dates_estimated``) only counted in
    ``attrs["_left_out"]``. Every status appears; with a group, every group present among ``c``
    under every status (zeros where none), in label order (``labels``: band positions) or sorted."""
    timed = c.days_to_close.notnull()
    keys = {"status": status} if group is None else {"status": status, "_group": group}
    got = to_frame(c.group_by(**keys).aggregate(
        deals=count_if(timed), mean_days=exact_mean(c.days_to_close, where=timed, scale=DAYS_SCALE),
        median_days=exact_quantile(c.days_to_close, 0.5, t.backend, where=timed),
        _left_out=count_if(~timed)))
    left_out = int(got["_left_out"].sum())
    if group is None:
        index = pd.Index(statuses, name="status")
        got = got[got["deals"] > 0].set_index("status")
    else:
        if labels is None:
            present = got.loc[got["deals"] > 0, "_group"].astype(str)
            cats = sorted(set(present))
            got["_group"] = got["_group"].astype(str)
        else:
            codes = got.loc[got["deals"] > 0, "_group"].astype("int64")
            used = set(codes) | set(range(len(labels) - 1))     # the unknown band only when used
            cats = [labels[i] for i in range(len(labels)) if i in used]
            got["_group"] = [labels[int(i)] for i in got["_group"]]
        index = pd.MultiIndex.from_product([statuses, cats], names=["status", "_group"])
        got = got[got["deals"] > 0].set_index(["status", "_group"])
    out = got[["deals", "mean_days", "median_days"]].reindex(index).reset_index()
    out["deals"] = out["deals"].fillna(0).astype("int64")
    for col in ("mean_days", "median_days"):
        out[col] = out[col].astype("float64")
    out.attrs["_left_out"] = left_out
    return out


def _step(series: pd.Series, t: float, before: float = 1.0) -> float:
    """Value of a right-continuous step function (index = times) at ``t``."""
    i = int(np.searchsorted(series.index.to_numpy(dtype=float), t, side="right")) - 1
    return before if i < 0 else float(series.iloc[i])


@dataclass
class CloseTimeSurvival:
    """A fitted time-to-close estimate (Kaplan-Meier), from :func:`close_time_survival`.

    Attributes
    ----------
    close
        ``"any"``: a close is a win or a loss (Kaplan-Meier of time to any close).
        ``"won"``: a close is a win; losses are a competing outcome (cumulative incidence of winning,
        Aalen-Johansen, computed from the same Kaplan-Meier fit).
    cohort
        The cohort's deals: ``deal_id``, ``days`` (to close, or to ``as_of`` when still open),
        ``event`` (1 = closed (won, for ``close="won"``) by ``as_of``), ``outcome`` (won/lost/open
        as seen at ``as_of``).
    survival_function_
        DataFrame indexed by ``timeline`` (days) with the probability of not having closed (not
        having been won) by then: column ``KM_estimate`` (``close="any"``) or ``not_won``.
    fitter
        scipy's ``ECDFResult`` of the Kaplan-Meier fit of time to any close (``None`` for an empty
        cohort): ``fitter.sf.confidence_interval(0.95)`` gives the survival function's interval.
    """

    period: Period
    close: str
    cohort: pd.DataFrame
    survival_function_: pd.DataFrame
    fitter: Any = None
    horizons: tuple = (30, 60, 90)
    _max_days: float = field(default=float("nan"), repr=False)
    _open_tail: bool = field(default=True, repr=False)
    #: Deals of the cohort left out because they are flagged ``dates_estimated``.
    left_out_dates_estimated: int = 0

    @property
    def deals(self) -> int:
        return int(len(self.cohort))

    @property
    def median_days(self) -> float | None:
        """First time (days) at which the probability of having closed reaches 1/2; None if never.

        The usual Kaplan-Meier median: the smallest t with S(t) <= 0.5.
        """
        s = self.survival_function_.iloc[:, 0]
        hit = s.to_numpy() <= 0.5 + 1e-12
        return float(s.index[np.argmax(hit)]) if hit.any() else None

    def p_close_within(self, days: float) -> float | None:
        """Probability that a deal closes (is won) within ``days`` days of its creation (<= days).

        None when the cohort is empty, or when ``days`` lies beyond the longest observed duration
        and a deal was still open (censored) there: the estimate is not defined past that point.
        """
        if self.deals == 0:
            return None
        s = self.survival_function_.iloc[:, 0]
        if days > self._max_days and self._open_tail:
            return None
        return 1.0 - _step(s, float(days))

    @property
    def summary(self) -> pd.DataFrame:
        """One row: ``deals``, ``closed`` (events), ``censored`` (still open at ``as_of``; with
        ``close="won"``, lost deals are counted in ``lost``), ``median_days`` and ``p_close_<d>d`` for
        each horizon (default 30, 60, 90)."""
        row = {"close": self.close, "deals": self.deals, "closed": int(self.cohort["event"].sum())}
        if self.close == "won":
            row["lost"] = int(self.cohort["outcome"].eq("lost").sum())
        row["censored"] = int(self.cohort["outcome"].eq("open").sum())
        row["median_days"] = self.median_days
        for h in self.horizons:
            row[f"p_close_{h:g}d"] = self.p_close_within(h)
        return pd.DataFrame([row]).astype({k: float for k in row if k == "median_days" or k.startswith("p_")})

    def to_dict(self) -> dict:
        """The summary row as a plain dict (NaN turned into None)."""
        rec = self.summary.iloc[0].to_dict()
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}


def close_time_survival(ds: Dataset, period: PeriodLike, *, close: Literal["any", "won"] = "any",
                        horizons: Sequence[float] = (30, 60, 90),
                        lookback_days: float | None = None) -> CloseTimeSurvival:
    """Kaplan-Meier estimate of the time from creation to close, counting still-open deals.

    Cohort: the deals created in P and seen at ``as_of`` (``start <= created_at < min(end + 1 day,
    as_of)``). A deal closed before ``as_of`` contributes its days to close; a deal still open at
    ``as_of`` (including one closed later) is censored at ``as_of - created_at``. With the default
    ``as_of`` (end of P) the follow-up is at most the length of P; pass a later ``as_of`` for longer.

    Parameters
    ----------
    close
        ``"any"`` (default): time to any close (won or lost), Kaplan-Meier (``scipy.stats.ecdf`` on
        censored data).
        ``"won"``: time to a win, with losses as a competing outcome: the cumulative incidence
        ``F(t) = sum over close times t_j <= t of S(t_j-) * won_j / at_risk_j`` (Aalen-Johansen),
        where S is the Kaplan-Meier of any close. A lost deal is never won, so it is not censored.
    horizons
        Days for the ``p_close_<d>d`` columns of ``.summary``.
    lookback_days
        Another cohort: the deals created in the ``lookback_days`` before ``as_of`` (e.g. 365),
        whatever P is. Longer follow-up, so P(close within 90 days) is known even at the end of a
        quarter; P itself then only sets ``as_of``.

    Examples
    --------
    >>> km = close_time_survival(ds, Period.quarter("2026Q3", as_of="2027-01-01"))  # doctest: +SKIP
    >>> km.median_days, km.p_close_within(30)                                         # doctest: +SKIP
    (41.5, 0.31)
    """
    period = as_period(period, ds)
    if close not in ("any", "won"):
        raise ArgumentError("close must be 'any' or 'won'")
    cohort, left_out = _cohort(ds, period, lookback_days)
    horizons = tuple(horizons)
    if cohort.empty:
        col = "KM_estimate" if close == "any" else "not_won"
        sf = pd.DataFrame({col: [1.0]}, index=pd.Index([0.0], name="timeline"))
        return CloseTimeSurvival(period, close, cohort, sf, None, horizons, left_out_dates_estimated=left_out)
    days_arr = cohort["days"].to_numpy(dtype=float)
    event = cohort["event"].to_numpy().astype(bool)
    fit = ecdf(CensoredData(uncensored=days_arr[event], right=days_arr[~event]))
    times = np.asarray(fit.sf.quantiles, dtype=float)      # every distinct observed duration
    s_at = np.asarray(fit.sf.probabilities, dtype=float)
    if times[0] > 0:                                         # the curve starts at 1 on day 0
        times, s_at = np.r_[0.0, times], np.r_[1.0, s_at]
    sf = pd.DataFrame({"KM_estimate": s_at}, index=pd.Index(times, name="timeline"))
    open_tail = bool(sf["KM_estimate"].iloc[-1] > 1e-12)
    if close == "won":
        at_risk = len(days_arr) - np.searchsorted(np.sort(days_arr), times, side="left")
        won = cohort.loc[cohort["outcome"].eq("won"), "days"].value_counts()
        won = won.reindex(times, fill_value=0).to_numpy(dtype=float)
        s_before = np.concatenate([[1.0], s_at[:-1]])
        cif = np.cumsum(s_before * won / np.maximum(at_risk, 1))
        sf = pd.DataFrame({"not_won": 1.0 - cif}, index=pd.Index(times, name="timeline"))
        cohort["event"] = cohort["outcome"].eq("won").to_numpy().astype("int8")
    return CloseTimeSurvival(period, close, cohort, sf, fit, horizons,
                             _max_days=float(cohort["days"].max()), _open_tail=open_tail,
                             left_out_dates_estimated=left_out)


def _cohort(ds: Dataset, period: Period, lookback_days: float | None) -> tuple[pd.DataFrame, int]:
    """The Kaplan-Meier inputs, computed by the engine: one row per deal of the cohort (``deal_id``,
    ``days`` to its close or to ``as_of``, ``event``, ``outcome``), in deal order, and how many deals
    flagged ``dates_estimated`` were left out of it."""
    import ibis

    t = tables_of(ds)
    as_of = period.as_of
    d = deals_as_of(t, as_of)
    if lookback_days is None:
        d = d.filter(in_period(d.created_at, period))
    else:
        if not lookback_days > 0:
            raise ArgumentError("lookback_days must be a positive number of days")
        d = d.filter(d.created_at >= instant(as_of - pd.Timedelta(days=lookback_days)))
    closed = d.closed_as_of.notnull()          # the final close: an earlier close is history
    d = d.mutate(_flagged=dates_estimated(d), status_as_of=final_status_as_of(d),
                 days=days_between(d.created_at, ibis.ifelse(closed, d.closed_as_of, instant(as_of))))
    got = to_frame(d.select("deal_row", "deal_id", "days", "status_as_of", "_flagged").order_by("deal_row"))
    flagged = got["_flagged"].to_numpy(dtype=bool)
    got = got[~flagged]
    outcome = got["status_as_of"].astype(str).to_numpy()
    cohort = pd.DataFrame({"deal_id": got["deal_id"].astype(str).to_numpy(),
                           "days": got["days"].to_numpy(dtype="float64"),
                           "event": (outcome != "open").astype("int8"), "outcome": outcome})
    return cohort, int(flagged.sum())
