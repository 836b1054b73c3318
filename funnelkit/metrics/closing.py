"""Days to close: how long closed deals took, and a censoring-aware estimate that counts open deals.

Definitions are in ``docs/metrics.md`` (section 3). Every function sees the data as it stood at
``period.as_of`` (:func:`funnelkit.history.deals_as_of`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
from scipy.stats import CensoredData, ecdf

from ..dataset import Dataset
from ..history import deals_as_of
from ..period import Period
from ._common import DAY, LEFT_OUT, dates_estimated, group_labels, require_column

__all__ = ["closed_in_period", "size_band", "days_to_close", "close_time_survival",
           "CloseTimeSurvival", "SIZE_BAND", "UNKNOWN_BAND"]

#: The ``by=`` value that groups by deal-size band.
SIZE_BAND = "size_band"
#: Band of deals whose amount is unknown.
UNKNOWN_BAND = "(amount unknown)"
_STATUSES = ["won", "lost"]


def closed_in_period(ds: Dataset, period: Period) -> pd.DataFrame:
    """Deals closed (won or lost) in ``period`` as seen at ``period.as_of``.

    A deal counts when its close is seen at ``as_of`` (``closed_at < as_of``) and lies in P
    (``start <= closed_at < end + 1 day``). Adds ``days_to_close`` = (``closed_at`` - ``created_at``)
    in fractional days (NaN, unknown, for a deal flagged ``dates_estimated``); ``status_as_of``
    equals ``status`` for these deals.

    Examples
    --------
    >>> closed = closed_in_period(ds, Period.quarter("2026Q3"))   # doctest: +SKIP
    >>> closed.groupby("status", observed=True).days_to_close.median()   # doctest: +SKIP
    """
    d = deals_as_of(ds, period.as_of)
    closed = d["status_as_of"].isin(_STATUSES).to_numpy() & period.contains(d["closed_as_of"]).to_numpy()
    d = d[closed].copy()
    days = (d["closed_at"].to_numpy() - d["created_at"].to_numpy()) / DAY
    # A deal flagged dates_estimated counts, but its days to close are unknown (never shown as 0).
    d["days_to_close"] = np.where(dates_estimated(d), np.nan, days)
    return d


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


def size_band(amount: pd.Series, edges: Sequence[float], *, quartiles: bool = False) -> pd.Series:
    """Deal-size band of each amount: an ordered categorical.

    Bands are right-closed: with edges ``e1 < ... < ek`` the bands are ``<= e1``, ``e1-e2`` (above e1,
    up to and including e2), ..., ``> ek``. Unknown amounts fall in :data:`UNKNOWN_BAND` (last).
    With ``quartiles=True`` the labels are prefixed ``Q1: ``.. ``Q4: ``. Equal edges give empty bands.
    """
    edges = [float(e) for e in edges]
    if any(b < a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"band edges must be non-decreasing, got {edges}")
    labels = [f"<= {_fmt(edges[0])}"] if edges else ["all"]
    labels += [f"{_fmt(a)}-{_fmt(b)}" for a, b in zip(edges, edges[1:])]
    if edges:
        labels.append(f"> {_fmt(edges[-1])}")
    if quartiles:
        labels = [f"Q{i + 1}: {lab}" for i, lab in enumerate(labels)]
    labels.append(UNKNOWN_BAND)
    a = amount.to_numpy(dtype=float)
    codes = np.searchsorted(np.asarray(edges, dtype=float), a, side="left")
    codes = np.where(np.isnan(a), len(labels) - 1, codes)
    return pd.Series(pd.Categorical.from_codes(codes, categories=labels, ordered=True),
                     index=amount.index, name=SIZE_BAND)


def days_to_close(ds: Dataset, period: Period, by: str | None = None, *,
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
    d = closed_in_period(ds, period)
    left_out = dates_estimated(d)
    d = d[~left_out]
    status = pd.Categorical(d["status"].astype(str), categories=_STATUSES)
    if by is None:
        frame = pd.DataFrame({"status": status, "days": d["days_to_close"].to_numpy()})
        g = frame.groupby("status", observed=False)["days"]
        out = pd.DataFrame({"deals": g.size(), "mean_days": g.mean(), "median_days": g.median()})
        out = out.reindex(_STATUSES).reset_index()
        out["deals"] = out["deals"].fillna(0).astype("int64")
        out.attrs[LEFT_OUT] = int(left_out.sum())
        return out
    edges_used = None
    if by == SIZE_BAND:
        ds.require_single_currency("days to close by deal-size band")
        if bands is None:
            known = d["amount"].dropna().to_numpy(dtype=float)
            edges_used = list(np.quantile(known, [0.25, 0.5, 0.75])) if len(known) else []
            group = size_band(d["amount"], edges_used, quartiles=bool(len(known)))
        else:
            edges_used = [float(b) for b in bands]
            group = size_band(d["amount"], edges_used)
        cats = list(group.cat.categories)
        if not group.eq(UNKNOWN_BAND).any():
            cats.remove(UNKNOWN_BAND)
        group = group.astype(str)
    else:
        require_column(ds, by)
        group = group_labels(d[by])
        present = set(group)
        if isinstance(d[by].dtype, pd.CategoricalDtype):
            cats = [str(c) for c in d[by].cat.categories if str(c) in present]
            cats += sorted(present - set(cats))
        else:
            cats = sorted(present)
    frame = pd.DataFrame({"status": status,
                          by: pd.Categorical(group.to_numpy(), categories=cats, ordered=True),
                          "days": d["days_to_close"].to_numpy()})
    g = frame.groupby(["status", by], observed=False)["days"]
    out = pd.DataFrame({"deals": g.size(), "mean_days": g.mean(), "median_days": g.median()})
    full = pd.MultiIndex.from_product([_STATUSES, cats], names=["status", by])
    out = out.reindex(full).reset_index()
    out["deals"] = out["deals"].fillna(0).astype("int64")
    out["status"] = out["status"].astype(str)
    out[by] = out[by].astype(str)
    if edges_used is not None:
        out.attrs["band_edges"] = [float(e) for e in edges_used]
    out.attrs[LEFT_OUT] = int(left_out.sum())
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


def close_time_survival(ds: Dataset, period: Period, *, close: Literal["any", "won"] = "any",
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
    if close not in ("any", "won"):
        raise ValueError("close must be 'any' or 'won'")
    as_of = period.as_of
    d = deals_as_of(ds, as_of)
    if lookback_days is None:
        d = d[period.contains(d["created_at"]).to_numpy()]
    else:
        if not lookback_days > 0:
            raise ValueError("lookback_days must be a positive number of days")
        d = d[(d["created_at"] >= as_of - pd.Timedelta(days=lookback_days)).to_numpy()]
    left_out = dates_estimated(d)
    d = d[~left_out]
    outcome = d["status_as_of"].astype(str).to_numpy()
    closed = outcome != "open"
    end = np.where(closed, d["closed_as_of"].to_numpy(), np.datetime64(as_of))
    days = (end - d["created_at"].to_numpy()) / DAY
    cohort = pd.DataFrame({"deal_id": d["deal_id"].to_numpy(), "days": days.astype(float),
                           "event": closed.astype("int8"), "outcome": outcome})
    horizons = tuple(horizons)
    if cohort.empty:
        col = "KM_estimate" if close == "any" else "not_won"
        sf = pd.DataFrame({col: [1.0]}, index=pd.Index([0.0], name="timeline"))
        return CloseTimeSurvival(period, close, cohort, sf, None, horizons,
                                 left_out_dates_estimated=int(left_out.sum()))
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
        cohort["event"] = (outcome == "won").astype("int8")
    return CloseTimeSurvival(period, close, cohort, sf, fit, horizons,
                             _max_days=float(cohort["days"].max()), _open_tail=open_tail,
                             left_out_dates_estimated=int(left_out.sum()))
