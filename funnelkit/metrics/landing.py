"""Where the period will land: won so far, plus what the open deals and deals not yet created are
expected to add before the period ends, with its range, P(reaching a target), coverage and pacing.

The model, in words
-------------------
Seen at an instant ``at`` (inside the period or before it), the amount won in the period is

    won so far  +  from open deals  +  from deals not yet created

- **won so far**: deals won in ``[start, at)`` (known exactly; unknown amounts are counted, not
  added as zero).
- **from open deals**: each deal open at ``at`` is won *before the period ends* with probability
  ``p_in_period``: the share of *similar past visits* won in the same window. A similar visit is
  one of the same stage that lasted at least as long (``d`` days) as this deal has been in the stage
  so far; it counts when its window ``[d + h1, d + h2)`` days after its entry had passed before
  ``at`` (so its outcome in the window is known then), and it is a hit when its deal was won in that
  window. ``[h1, h2)`` is the period seen from ``at`` (``h1 > 0`` only when ``at`` lies before the
  period). The share is taken among the visits of deals in the same size quartile (big deals take
  longer), shrunk toward the share of all sizes at that age, that toward the stage's share for a
  deal just entering it, and that toward all stages pooled (weight ``prior_strength`` visits each,
  as the win forecast shrinks its rates); the win forecast's source and owner adjustments
  (:func:`funnelkit.metrics.win_forecast`, ``odds_factor``) apply on top. Counting deals of every
  outcome whose window has passed, instead of "eventual win x time to close of past wins", keeps the
  estimate free of the bias toward quick closes that deals still open would otherwise cause.
- **from deals not yet created**: deals created in ``[at, end]`` and won before the end. From the
  same part of each of the ``lookback`` previous periods of the same length that ended before
  ``at`` (the same offset from their start): the number of such deals and their amounts. The
  expected amount is the mean over those periods; the range draws a number of deals with their mean
  (Poisson, or negative binomial with their variance when the periods varied more than that) and
  amounts resampled from theirs.

The 80% range comes from simulating the open deals as independent bets plus the new deals (seeded:
the same data and arguments always give the same numbers); ``p_reach_target`` is the share of the
simulations at or above the target.

Assumptions, and when to distrust it: deals are independent bets (a shared cause, like a budget
freeze, moves many at once: the range is then too narrow); the past periods are like this one
(seasonality beyond the ``lookback`` periods is not modelled); a deal's amount is the amount known at
``at`` (without a change log, the amount at export: past forecasts then lean on hindsight); the
evidence for a long time left (``at`` well before the period) comes from visits at least that long
ago, so it is thin early in the data.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ArgumentError, UnknownColumnError
from ..changes import has_changes, known_at
from ..dataset import Dataset
from ..engine.tables import tables_of, to_arrays
from ..i18n import gettext_
from ..period import Period, PeriodLike, as_instant, as_period
from ._common import as_ns, bet_totals, expit, group_labels, logit, needs_simulation
from .forecast import DEFAULT_ADJUST, SIMULATE_UP_TO, win_forecast

__all__ = ["landing_forecast", "LandingForecast", "landing_by_week", "coverage", "pacing", "won_between"]

_DAY_NS = 86_400 * 10**9


# --------------------------------------------------------------------------------------------
# Small set-based pieces


def won_between(ds: Dataset, start, stop, *, created_from=None) -> dict:
    """Deals won in ``[start, stop)`` (optionally only those created at or after ``created_from``).

    Returns ``{"deals", "amount", "amount_unknown_deals"}``: ``amount`` sums the known amounts
    (``None`` when every won deal's amount is unknown, never 0 for unknown).

    Examples
    --------
    >>> won_between(ds, "2026-04-01", "2026-07-01")          # doctest: +SKIP
    {'deals': 61, 'amount': 702311.0, 'amount_unknown_deals': 0}
    """
    d = ds.deals
    closed = d["closed_at"]
    m = d["status"].eq("won").to_numpy() & (closed >= pd.Timestamp(start)).to_numpy() & \
        (closed < pd.Timestamp(stop)).to_numpy()
    if created_from is not None:
        m &= (d["created_at"] >= pd.Timestamp(created_from)).to_numpy()
    amounts = d["amount"].to_numpy(dtype=float)[m]
    known = ~np.isnan(amounts)
    return {"deals": int(m.sum()),
            "amount": float(amounts[known].sum()) if known.any() or not m.any() else None,
            "amount_unknown_deals": int((~known).sum())}


class _Arrays:
    """The deal columns the landing forecast reads, as numpy arrays (nanoseconds), built once per
    data set (:meth:`Dataset.derived`) and reused across instants (the accuracy record makes ~100
    forecasts)."""

    def __init__(self, ds: Dataset):
        d = ds.deals
        self.deal_amount = d["amount"].to_numpy(dtype=float)
        self.deal_created = as_ns(d["created_at"])
        self.deal_closed = as_ns(d["closed_at"])
        self.deal_won = d["status"].eq("won").to_numpy()
        self.n_stages = len(ds.stages)


class _Visits:
    """The visit columns the window evidence reads, as numpy arrays (nanoseconds): the engine's
    visits (:attr:`Tables.visits`, the one definition of a visit), only the columns needed, fetched
    once per data set without a pandas frame; the deal's columns spread by ``deal_row``. In the
    engine's row order (every use counts or sorts)."""

    def __init__(self, ds: Dataset, deals: _Arrays):
        v = tables_of(ds).visits
        got = to_arrays(v.select("deal_row", "stage_index", "entered_at", "next_entered_at", "is_last"))
        rows = got["deal_row"].astype(np.int64)
        self.stage = got["stage_index"].astype(np.int64)
        self.entered = as_ns(got["entered_at"])
        self.next_entered = as_ns(got["next_entered_at"])
        self.is_last = got["is_last"].astype(bool)
        self.closed = deals.deal_closed[rows]
        self.won = deals.deal_won[rows]
        self.timed = ~ds.dates_estimated[rows]  # visits of deals flagged dates_estimated have no duration
        self.amount = deals.deal_amount[rows]


def _arrays(ds: Dataset) -> _Arrays:
    """The data set's deal arrays, kept until ``refresh()`` (a filtered data set has its own)."""
    return ds.derived("landing_deal_arrays", lambda: _Arrays(ds))


def _visits(ds: Dataset) -> _Visits:
    """The data set's visit arrays, kept like :func:`_arrays`."""
    return ds.derived("landing_visit_arrays", lambda: _Visits(ds, _arrays(ds)))


class _WindowEvidence:
    """Past stage visits seen at ``at``, for "won within a window" counts.

    Per visit: ``stage``, ``seen`` (days in the stage as seen at ``at``: to the next entry or the
    close, or to ``at`` while still in it), ``age_left`` (days between the entry and ``at``),
    ``won_after`` (days from the entry to the deal's win, for deals won before ``at``; NaN otherwise).
    """

    def __init__(self, arr: _Arrays, vis: _Visits, at: pd.Timestamp):
        t = int(at.value)
        keep = (vis.entered < t) & vis.timed
        entered = vis.entered[keep]
        closed = vis.closed[keep]
        nxt = vis.next_entered[keep]
        closed_seen = closed < t
        end = np.where(vis.is_last[keep], np.minimum(closed, t), np.minimum(nxt, t))
        self.stage = vis.stage[keep]
        self.seen = (end - entered) / _DAY_NS
        self.age_left = (t - entered) / _DAY_NS
        won = vis.won[keep] & closed_seen
        self.won_after = np.where(won, (closed - entered) / _DAY_NS, np.nan)
        self.n_stages = arr.n_stages
        # deal-size quartiles of the deals seen at ``at`` (-1 = unknown amount)
        seen_amounts = arr.deal_amount[(arr.deal_created < t) & ~np.isnan(arr.deal_amount)]
        self.edges = (np.quantile(seen_amounts, [0.25, 0.5, 0.75]) if len(seen_amounts)
                      else np.array([], dtype=float))
        self.band = self.size_band(vis.amount[keep])
        # the visits of each stage, and of each (stage, size quartile), found once
        order = np.lexsort((self.band, self.stage))
        self._groups: dict[tuple[int, int | None], np.ndarray] = {}
        st, bd = self.stage[order], self.band[order]
        for s in range(self.n_stages):
            lo, hi = np.searchsorted(st, [s, s + 1])
            self._groups[(s, None)] = order[lo:hi]
            for b in range(-1, 4):
                blo, bhi = lo + np.searchsorted(bd[lo:hi], [b, b + 1])
                self._groups[(s, b)] = order[blo:bhi]

    def size_band(self, amount: np.ndarray) -> np.ndarray:
        """The deal-size quartile (0..3) of each amount, -1 where unknown."""
        band = np.searchsorted(self.edges, amount, side="right") if len(self.edges) else np.zeros(len(amount), int)
        return np.where(np.isnan(amount), -1, band).astype(np.int64)

    def counts(self, s: int, d: np.ndarray, h1: float, h2: float,
               band: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """For stage ``s`` and ages ``d``: the visits still in the stage after ``d`` days whose window
        ``[d + h1, d + h2)`` after the entry had passed by ``at`` (``n``), and of those the ones whose
        deal was won in that window (``hit``).

        A visit counts for age ``d`` when ``d <= min(seen, age_left - h2)``; it is a hit when also
        ``won_after - h2 < d`` and not ``won_after - h1 < d``. Each is an interval stabbing count
        (``#{lower < d} - #{upper < d}`` over visits with ``lower < upper``), so no per-deal loop.
        With ``band``, only visits of deals in that size quartile count.
        """
        m = self._groups[(s, band)]
        top = np.minimum(self.seen[m], self.age_left[m] - h2)
        n = len(top) - np.searchsorted(np.sort(top), d, side="left")
        won_after = self.won_after[m]
        hit = _stab(won_after - h2, top, d) - _stab(won_after - h1, top, d)
        return n, hit


def _stab(lower: np.ndarray, upper: np.ndarray, d: np.ndarray) -> np.ndarray:
    """How many intervals ``(lower, upper]`` contain each ``d`` (NaN bounds never do)."""
    ok = lower < upper
    return (np.searchsorted(np.sort(lower[ok]), d, side="left")
            - np.searchsorted(np.sort(upper[ok]), d, side="left"))


def _p_won_in_window(ev: _WindowEvidence, stage: np.ndarray, days_in_stage: np.ndarray,
                     band: np.ndarray, h1: float, h2: float, k: float) -> tuple[np.ndarray, np.ndarray]:
    """Share of similar past visits won in the window, shrunk step by step (``k`` visits each):
    same stage, age and size quartile -> same stage and age -> the stage for a deal just entering
    it -> all stages pooled."""
    p = np.full(len(stage), np.nan)
    n_all = np.zeros(len(stage), dtype=np.int64)
    zero = np.zeros(1)
    per_stage = {s: ev.counts(s, zero, h1, h2) for s in range(ev.n_stages)}
    pooled_n = sum(int(n[0]) for n, _ in per_stage.values())
    pooled_hit = sum(int(h[0]) for _, h in per_stage.values())
    pooled = pooled_hit / pooled_n if pooled_n else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        for s in np.unique(stage):
            sel = np.flatnonzero(stage == s)
            n, hit = ev.counts(int(s), days_in_stage[sel], h1, h2)
            n0, hit0 = (float(x[0]) for x in per_stage[int(s)])
            prior = (hit0 + k * pooled) / (n0 + k) if n0 + k > 0 else pooled
            p_age = np.where(n + k > 0, (hit + k * prior) / (n + k), prior)
            p[sel] = p_age
            n_all[sel] = n
            for b in np.unique(band[sel]):
                if b < 0:
                    continue
                sub = sel[band[sel] == b]
                nb, hitb = ev.counts(int(s), days_in_stage[sub], h1, h2, band=int(b))
                base = p_age[band[sel] == b]
                p[sub] = np.where(nb + k > 0, (hitb + k * base) / (nb + k), base)
    return p, n_all


# --------------------------------------------------------------------------------------------
# The new-deal term: the same part of past periods


def _past_periods(ds: Dataset, period: Period, at: pd.Timestamp, lookback: int) -> list[Period]:
    """Up to ``lookback`` previous periods of the same kind that ended at or before ``at`` and
    start no earlier than the data's first deal."""
    first = ds.deals["created_at"].min()
    out, p = [], period
    for _ in range(lookback + 8):
        p = p.previous()
        if pd.isna(first) or p.start < first.normalize():
            break
        if p.stop <= at:
            out.append(p)
        if len(out) == lookback:
            break
    return out


def _new_deal_history(ds: Dataset, period: Period, at: pd.Timestamp, lookback: int) -> pd.DataFrame:
    """Per past period: deals created at or after the same offset and won before its end."""
    offset = at - period.start
    arr = _arrays(ds)
    rows = []
    for p in _past_periods(ds, period, at, lookback):
        cut = p.start + offset
        m = (arr.deal_won & (arr.deal_created >= cut.value) & (arr.deal_closed >= max(cut, p.start).value)
             & (arr.deal_closed < p.stop.value))
        amounts = arr.deal_amount[m]
        rows.append({"period": p.label, "from": cut, "deals": int(m.sum()),
                     "amount": float(np.nansum(amounts)),
                     "amount_unknown_deals": int(np.isnan(amounts).sum()),
                     "amounts": amounts[~np.isnan(amounts)], "deal_rows": np.flatnonzero(m)})
    return pd.DataFrame(rows, columns=["period", "from", "deals", "amount", "amount_unknown_deals", "amounts",
                                       "deal_rows"])


# --------------------------------------------------------------------------------------------
# The result


@dataclass
class LandingForecast:
    """The result of :func:`landing_forecast`.

    Attributes
    ----------
    period, at
        The period and the instant the forecast is made at.
    won_so_far
        ``{"deals", "amount", "amount_unknown_deals"}`` won in ``[start, min(at, end + 1 day))``.
    open_deals
        One row per deal open at ``at``: the columns of :func:`win_forecast` plus ``p_in_period``
        (the probability of being won before the period ends), ``window_evidence`` (how many similar
        past visits it rests on) and ``expected_in_period`` (``p_in_period * amount``; NaN where the
        amount is unknown).
    new_deals
        One row per past period used for the new-deal term: ``period``, ``from`` (the same offset),
        ``deals`` and ``amount`` (known amounts) won from deals created from then on,
        ``amount_unknown_deals``.
    from_open_amount, from_new_amount, expected_amount, low_amount, high_amount
        The expected amounts and the ``level`` range of the total (``from_new_amount`` is None when
        no past period could be used: the total then leaves it out, and a note says so).
    target, p_reach_target
        The target and the probability that the total reaches it (None without a target).
    notes
        Plain sentences on what the numbers leave out.
    """

    period: Period
    at: pd.Timestamp
    currency: str
    won_so_far: dict
    open_deals: pd.DataFrame = field(repr=False)
    new_deals: pd.DataFrame = field(repr=False)
    from_open_amount: float
    from_new_amount: float | None
    from_new_deals: float | None
    expected_amount: float | None
    low_amount: float | None
    high_amount: float | None
    level: float
    target: float | None
    p_reach_target: float | None
    method: str
    notes: list[str] = field(default_factory=list)
    _ds: Dataset | None = field(default=None, repr=False)
    _new_rows: list = field(default_factory=list, repr=False)
    simulations: int = 4000
    seed: int = 0

    def to_dict(self) -> dict:
        """The fields of ``landing_forecast`` in ``funnelkit metrics --format json``."""
        return {
            "at": self.at.isoformat(), "currency": self.currency,
            "won_so_far_deals": self.won_so_far["deals"], "won_so_far_amount": self.won_so_far["amount"],
            "won_so_far_amount_unknown_deals": self.won_so_far["amount_unknown_deals"],
            "open_deals": int(len(self.open_deals)),
            "open_amount_unknown_deals": int(self.open_deals["amount"].isna().sum()),
            "from_open_deals": _num(self.open_deals["p_in_period"].sum()) if len(self.open_deals) else 0.0,
            "from_open_amount": self.from_open_amount,
            "from_new_deals": self.from_new_deals, "from_new_amount": self.from_new_amount,
            "new_deal_periods": int(len(self.new_deals)),
            "expected_amount": self.expected_amount, "low_amount": self.low_amount,
            "high_amount": self.high_amount, "level": self.level, "method": self.method,
            "target": self.target, "p_reach_target": self.p_reach_target, "notes": list(self.notes),
        }

    @property
    def summary(self) -> pd.DataFrame:
        """One row: won so far, from open deals, from new deals, expected, low, high, P(>= target)."""
        d = self.to_dict()
        keys = ["at", "won_so_far_deals", "won_so_far_amount", "from_open_amount", "from_new_amount",
                "expected_amount", "low_amount", "high_amount", "target", "p_reach_target"]
        return pd.DataFrame([{k: d[k] for k in keys}])

    def by(self, column: str, targets: dict | None = None) -> pd.DataFrame:
        """The same forecast split by a deal column (``"owner"``, ``"source"``, ...).

        The team's model is not refitted per group: each group gets its own won so far, its open
        deals' ``p_in_period`` from the team forecast, and its share of the past periods' new deals;
        its range is simulated from those alone (so the groups' ranges do not add up to the team's).

        Parameters
        ----------
        column
            A deal column; empty values are the group ``(not set)``.
        targets
            Optional ``{group: target}`` for each group's ``p_reach_target``.

        Returns
        -------
        DataFrame
            One row per group with ``won_so_far_deals``, ``won_so_far_amount``, ``open_deals``,
            ``from_open_amount``, ``from_new_amount``, ``expected_amount``, ``low_amount``,
            ``high_amount``, ``target``, ``p_reach_target``; largest expected amount first.
        """
        return _group_by(self, column, targets)


def _group_by(lf: "LandingForecast", column: str, targets: dict | None) -> pd.DataFrame:
    ds = lf._ds
    if ds is None or column not in ds.deals.columns:
        cols = ", ".join(map(str, ds.deals.columns)) if ds is not None else ""
        raise UnknownColumnError(f"no deal column {column!r} to split the landing forecast by (columns: {cols})")
    labels = group_labels(ds.deals[column]).to_numpy()
    d = ds.deals
    won_m = (d["status"].eq("won") & (d["closed_at"] >= lf.period.start)
             & (d["closed_at"] < min(lf.at, lf.period.stop))).to_numpy()
    amount = d["amount"].to_numpy(dtype=float)
    fc = lf.open_deals
    open_labels = labels[d.reset_index().set_index("deal_id").loc[fc["deal_id"], "index"].to_numpy()] \
        if len(fc) else np.array([], dtype=object)
    groups = sorted(set(labels[won_m]) | set(open_labels) | {g for r in lf._new_rows for g in labels[r]})
    rows = []
    for i, g in enumerate(groups):
        w = won_m & (labels == g)
        wa = amount[w]
        won_amount = float(np.nansum(wa)) if (~np.isnan(wa)).any() or not w.any() else None
        m = open_labels == g
        a = fc["amount"].to_numpy(dtype=float)[m]
        p = fc["p_in_period"].to_numpy(dtype=float)[m]
        ok = ~np.isnan(a) & ~np.isnan(p)
        per_period = [amount[r][labels[r] == g] for r in lf._new_rows]
        counts = [len(x) for x in per_period]
        pool = np.concatenate([x[~np.isnan(x)] for x in per_period]) if per_period else np.array([])
        from_new = float(np.mean([np.nansum(x) for x in per_period])) if per_period else (
            0.0 if lf.from_new_amount == 0.0 else None)
        lam = (float(np.mean(counts)), float(np.var(counts, ddof=1)) if len(counts) > 1 else float(np.mean(counts))) \
            if counts else None
        from_open = float(np.nansum(a[ok] * p[ok]))
        totals = _simulate(won_amount or 0.0, a[ok], p[ok], lam, pool, lf.simulations, lf.seed + i + 1)
        tail = (1 - lf.level) / 2
        expected = (won_amount or 0.0) + from_open + (from_new or 0.0)
        low, high = (float(x) for x in np.quantile(totals, [tail, 1 - tail]))
        target = (targets or {}).get(g)
        rows.append({column: g, "won_so_far_deals": int(w.sum()), "won_so_far_amount": won_amount,
                     "open_deals": int(m.sum()), "from_open_amount": from_open, "from_new_amount": from_new,
                     "expected_amount": expected if won_amount is not None or not w.any() else None,
                     "low_amount": min(low, expected), "high_amount": max(high, expected),
                     "target": target,
                     "p_reach_target": float(np.mean(totals >= target)) if target is not None else None})
    out = pd.DataFrame(rows)
    return out.sort_values("expected_amount", ascending=False, kind="stable", na_position="last").reset_index(drop=True)


def _num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


# --------------------------------------------------------------------------------------------
# Simulation of the total


def _simulate(won: float, a: np.ndarray, p: np.ndarray, new_counts: tuple[float, float] | None,
              pool: np.ndarray, simulations: int, seed: int) -> np.ndarray:
    """Totals of ``simulations`` draws: won so far + the open deals as independent bets + the new
    deals (a count with the past periods' mean and variance, amounts resampled from theirs).

    Up to :data:`funnelkit.metrics.forecast.SIMULATE_UP_TO` open deals, or when a few dominate the
    spread, each bet is drawn; otherwise their sum is drawn from its normal approximation (the sum of
    many small independent bets), as :func:`funnelkit.metrics.forecast_range` does.
    """
    rng = np.random.default_rng(seed)
    totals = np.full(simulations, won, dtype=float)
    if len(a):
        if needs_simulation(a, p, SIMULATE_UP_TO):
            totals += bet_totals(rng, a, p, simulations)
        else:
            draws = rng.normal(float(np.sum(a * p)), float(np.sqrt(np.sum(a * a * p * (1 - p)))), simulations)
            totals += np.clip(draws, 0.0, float(a.sum()))
    if new_counts and new_counts[0] and len(pool):
        counts = _counts(rng, *new_counts, simulations)
        draws = rng.choice(pool, size=int(counts.sum()), replace=True)
        owner = np.repeat(np.arange(simulations), counts)
        totals += np.bincount(owner, weights=draws, minlength=simulations)
    return totals


def _counts(rng: np.random.Generator, mean: float, var: float, size: int) -> np.ndarray:
    """Counts with the given mean: Poisson, or negative binomial when the past periods varied more
    than a Poisson count would (variance above the mean)."""
    if var > mean > 0:
        r = mean * mean / (var - mean)
        return rng.negative_binomial(r, r / (r + mean), size)
    return rng.poisson(mean, size)


def landing_forecast(ds: Dataset, period: PeriodLike, at=None, *, target: float | None = None,
                     level: float = 0.8, lookback: int = 4, prior_strength: float = 10.0,
                     adjust_for: tuple[str, ...] | list[str] | None = DEFAULT_ADJUST,
                     simulations: int = 4000, seed: int = 0) -> LandingForecast:
    """How much will have been won by the end of ``period``, seen at ``at``, and how sure that is.

    Parameters
    ----------
    ds
        The data set (amounts in one currency: slice with ``ds.in_currency(...)`` otherwise).
    period
        The period to land.
    at
        The instant the forecast is made at: inside the period or before it; default the
        period's ``as_of``. Only data visible at ``at`` is used (events before ``at``).
    target
        The period's target amount, for ``p_reach_target``.
    level
        The probability the range holds the total with (equal tails), default 80%.
    lookback
        How many previous periods of the same length teach the new-deal term.
    prior_strength, adjust_for
        As in :func:`win_forecast` (``prior_strength`` also weighs each step of the window share's
        shrinkage; ``0`` means none).
    simulations, seed
        The seeded simulation of the range (the same inputs always give the same numbers).

    Returns
    -------
    LandingForecast
        ``.expected_amount``, ``.low_amount``, ``.high_amount``, ``.p_reach_target``,
        ``.won_so_far``, ``.open_deals`` (per deal), ``.new_deals``, ``.summary``, ``.to_dict()``.

    Examples
    --------
    >>> import funnelkit as fk
    >>> ds = fk.load("data/sample")
    >>> lf = fk.metrics.landing_forecast(ds, fk.Period.quarter("2026Q2"), at="2026-05-15")
    >>> lf.won_so_far["deals"] > 0 and lf.low_amount <= lf.expected_amount <= lf.high_amount
    True
    """
    period = as_period(period, ds)
    if not 0 < level < 1:
        raise ArgumentError("level must lie between 0 and 1, e.g. 0.8")
    currency = ds.require_single_currency("landing_forecast")
    at = period.as_of if at is None else as_instant(at, "at")
    stop = period.stop
    notes: list[str] = []
    won = won_between(ds, period.start, min(at, stop))
    if won["amount_unknown_deals"]:
        notes.append(gettext_("{n} deals won so far have no amount: left out of the won amount").format(
            n=won["amount_unknown_deals"]))
    fc = win_forecast(ds, at, prior_strength=prior_strength, adjust_for=adjust_for)
    h1 = max((period.start - at) / pd.Timedelta(days=1), 0.0)
    h2 = max((stop - at) / pd.Timedelta(days=1), 0.0)
    if len(fc) and h2 > 0:
        ev = _WindowEvidence(_arrays(ds), _visits(ds), at)
        p_in, n_in = _p_won_in_window(ev, fc["stage"].cat.codes.to_numpy().astype(np.int64),
                                      fc["days_in_stage"].to_numpy(dtype=float),
                                      ev.size_band(fc["amount"].to_numpy(dtype=float)),
                                      h1, h2, float(prior_strength))
        # the win forecast's source and owner adjustments apply on top (as log-odds)
        factor = fc["odds_factor"].to_numpy(dtype=float)
        adjusted = (factor != 1.0) & (p_in > 0) & (p_in < 1)
        p_in = np.where(adjusted, expit(logit(p_in) + np.log(factor)), p_in)
        p_in = np.where(np.isnan(fc["p_win"].to_numpy(dtype=float)), np.nan, p_in)
    else:
        p_in, n_in = np.zeros(len(fc)), np.zeros(len(fc))
    fc = fc.assign(p_in_period=p_in, window_evidence=n_in.astype(np.int64))
    fc["expected_in_period"] = fc["p_in_period"] * fc["amount"]
    unknown_open = int(fc["amount"].isna().sum())
    if unknown_open:
        notes.append(gettext_("{k} of the {n} open deals have no amount: left out of the open-deal term and the "
                       "range").format(k=unknown_open, n=len(fc)))
    if len(fc) and fc["p_in_period"].isna().all():
        notes.append(gettext_("no deal had closed before this instant: the open deals' chances are unknown"))
    from_open = float(np.nansum(fc["expected_in_period"].to_numpy(dtype=float)))

    new = _new_deal_history(ds, period, at, lookback) if h2 > 0 else _new_deal_history(ds, period, at, 0)
    if h2 <= 0:
        from_new, new_deals, lam, pool = 0.0, 0.0, None, np.array([])
    elif len(new):
        from_new = float(new["amount"].mean())
        new_deals = float(new["deals"].mean())
        lam = (new_deals, float(new["deals"].var(ddof=1)) if len(new) > 1 else new_deals)
        pool = np.concatenate(list(new["amounts"])) if len(new) else np.array([])
        if len(new) < lookback:
            notes.append(gettext_("deals not yet created: learnt from {n} previous period(s) only").format(n=len(new)))
    else:
        from_new, new_deals, lam, pool = None, None, None, np.array([])
        notes.append(gettext_("deals not yet created: no earlier period of the same length in the data to learn "
                       "from, so the total leaves them out"))
    new_rows = list(new["deal_rows"])
    new = new.drop(columns=["amounts", "deal_rows"])

    ok = fc["amount"].notna() & fc["p_in_period"].notna()
    a = fc.loc[ok, "amount"].to_numpy(dtype=float)
    p = fc.loc[ok, "p_in_period"].to_numpy(dtype=float)
    base = won["amount"] or 0.0
    totals = _simulate(base, a, p, lam, pool, simulations, seed)
    tail = (1 - level) / 2
    expected = base + from_open + (from_new or 0.0)
    low, high = (float(x) for x in np.quantile(totals, [tail, 1 - tail]))
    low, high = min(low, expected), max(high, expected)
    p_target = None if target is None else float(np.mean(totals >= float(target)))
    if won["amount"] is None and won["deals"]:
        expected = low = high = None
        p_target = None
        notes.append(gettext_("every deal won so far has an unknown amount: the total is unknown"))
    return LandingForecast(period=period, at=at, currency=currency, won_so_far=won, open_deals=fc,
                           new_deals=new, from_open_amount=from_open, from_new_amount=from_new,
                           from_new_deals=new_deals, expected_amount=expected, low_amount=low,
                           high_amount=high, level=level, target=None if target is None else float(target),
                           p_reach_target=p_target, method="simulation", notes=notes, _ds=ds,
                           _new_rows=new_rows if h2 > 0 else [], simulations=simulations, seed=seed)


def landing_by_week(ds: Dataset, period: PeriodLike, *, until=None, target: float | None = None,
                    level: float = 0.8, simulations: int = 1000, **landing_options) -> pd.DataFrame:
    """The landing forecast as it would have been made at the start of every week of ``period``.

    Parameters
    ----------
    ds, period, target, level, simulations, **landing_options
        As in :func:`landing_forecast` (each week's forecast sees only the data before its instant).
    until
        Last instant to forecast at (default the period's ``as_of``): weeks starting at or after it
        are left out, so a report of a running quarter shows the weeks so far.

    Returns
    -------
    DataFrame
        One row per week: ``week`` (0 = the period's first day), ``at``, ``won_so_far_deals``,
        ``won_so_far`` (amount), ``expected``, ``low``, ``high``, ``p_reach_target``, and
        ``weighted`` (the stage-weighted pipeline baseline: won so far + open amount x the stage's
        historical win rate) and, when the deals carry ``forecast_category``, ``commit`` (won so far
        + open amount in category Commit, the category as known at that instant). ``attrs["last"]`` holds the :class:`LandingForecast` of
        the last week.

    Examples
    --------
    >>> import funnelkit as fk
    >>> w = landing_by_week(fk.load("data/sample"), fk.Period.quarter("2026Q1"), simulations=200)
    >>> len(w), bool((w["low"] <= w["expected"]).all())
    (13, True)
    """
    period = as_period(period, ds)
    until = period.as_of if until is None else as_instant(until, "until")
    rows, lf = [], None
    for week in range(math.ceil(period.days / 7)):
        at = period.start + pd.Timedelta(days=7 * week)
        if at >= until and week > 0:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lf = landing_forecast(ds, period, at, target=target, level=level, simulations=simulations,
                                  **landing_options)
        won = lf.won_so_far["amount"]
        fc = lf.open_deals
        row = {"week": week, "at": at, "won_so_far_deals": lf.won_so_far["deals"], "won_so_far": won,
               "expected": lf.expected_amount, "low": lf.low_amount, "high": lf.high_amount,
               "p_reach_target": lf.p_reach_target,
               "weighted": (won or 0.0) + float(np.nansum(fc["amount"] * fc["stage_win_rate"]))}
        cats = categories_at(ds, at)
        if cats is not None:
            by_id = pd.Series(cats.to_numpy(), index=ds.deals["deal_id"].to_numpy())
            commit = by_id.loc[fc["deal_id"]].astype(str).str.strip().str.lower().eq("commit").to_numpy()
            row["commit"] = (won or 0.0) + float(np.nansum(fc["amount"].to_numpy(dtype=float)[commit]))
        rows.append(row)
    out = pd.DataFrame(rows)
    for c in ("won_so_far", "expected", "low", "high", "p_reach_target", "weighted", "commit"):
        if c in out.columns:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    out.attrs["last"] = lf
    return out


# --------------------------------------------------------------------------------------------
# Coverage and pacing


def pacing(ds: Dataset, period: PeriodLike, at=None) -> pd.DataFrame:
    """Won so far against the same point of the previous period and of the period a year before.

    Returns
    -------
    DataFrame
        One row each (``compared``) for ``this period``, ``previous period`` and ``a year before``: ``period``
        (label), ``since``, ``until`` (the same offset from each start, at most that period's end), ``won_deals``, ``won_amount``
        (None when unknown), ``amount_unknown_deals``, ``change`` (this period's won amount relative
        to that row's, e.g. 0.25 = 25% ahead; None when either is unknown or zero).

    Examples
    --------
    >>> pacing(ds, Period.quarter("2026Q2"), at="2026-05-15")     # doctest: +SKIP
    """
    period = as_period(period, ds)
    at = period.as_of if at is None else as_instant(at, "at")
    offset = min(at, period.stop) - period.start
    year = Period(period.start - pd.DateOffset(years=1), period.end - pd.DateOffset(years=1))
    rows = []
    for name, p in (("this period", period), ("previous period", period.previous()), ("a year before", year)):
        to = min(p.start + offset, p.stop)   # a shorter period ends at its own end
        w = won_between(ds, p.start, to)
        rows.append({"compared": name, "period": p.label, "since": p.start, "until": to, "won_deals": w["deals"],
                     "won_amount": w["amount"], "amount_unknown_deals": w["amount_unknown_deals"]})
    out = pd.DataFrame(rows)
    now = out.loc[0, "won_amount"]
    out["change"] = [None if (now is None or x is None or not x) else now / x - 1 for x in out["won_amount"]]
    first = ds.deals["created_at"].min()
    out["covered_by_data"] = [bool(pd.notna(first) and f >= first.normalize()) for f in out["since"]]
    return out


def coverage(ds: Dataset, period: PeriodLike, at=None, *, target: float, lookback: int = 4) -> dict:
    """Open pipeline against what is still needed to reach ``target``.

    ``pipeline`` is the open amount at ``at`` (deals with a known amount; with an
    ``expected_close_date`` column, only deals expected to close in the period). ``gap = target -
    won so far``; ``coverage = pipeline / gap`` (None once the target is reached).
    ``conversion`` is how much of such pipeline was won by the end of each of the ``lookback``
    previous periods, seen at the same offset (won amount from deals open then / their open amount);
    ``pipeline_needed = gap / conversion``.

    Returns
    -------
    dict
        ``target``, ``won_so_far_amount``, ``gap``, ``pipeline``, ``pipeline_deals``,
        ``pipeline_amount_unknown_deals``, ``coverage``, ``conversion``, ``conversion_periods``,
        ``pipeline_needed``, ``basis`` (which open deals count as pipeline).

    Examples
    --------
    >>> coverage(ds, Period.quarter("2026Q2"), at="2026-05-15", target=900_000)   # doctest: +SKIP
    """
    period = as_period(period, ds)
    at = period.as_of if at is None else as_instant(at, "at")
    won = won_between(ds, period.start, min(at, period.stop))
    pipe = _open_pipeline(ds, period, at)
    gap = float(target) - (won["amount"] or 0.0)
    conv_num = conv_den = 0.0
    used = 0
    for p in _past_periods(ds, period, at, lookback):
        cut = p.start + (at - period.start)
        past = _open_pipeline(ds, p, cut)
        if not past["amount"]:
            continue
        ids = past["deal_ids"]
        d = ds.deals
        m = d["deal_id"].isin(ids) & d["status"].eq("won") & (d["closed_at"] < p.stop)
        conv_num += float(d.loc[m, "amount"].sum())
        conv_den += past["amount"]
        used += 1
    conversion = conv_num / conv_den if conv_den else None
    return {
        "target": float(target), "won_so_far_amount": won["amount"], "gap": gap,
        "pipeline": pipe["amount"], "pipeline_deals": pipe["deals"],
        "pipeline_amount_unknown_deals": pipe["amount_unknown_deals"],
        "coverage": (pipe["amount"] / gap) if gap > 0 else None,
        "conversion": conversion, "conversion_periods": used,
        "pipeline_needed": (gap / conversion) if (gap > 0 and conversion) else None,
        "basis": pipe["basis"],
    }


def _open_pipeline(ds: Dataset, period: Period, at: pd.Timestamp) -> dict:
    d = ds.deals
    # Open at `at`: its final close and any earlier close not yet reopened (docs/metrics.md section 9).
    open_ = (d["created_at"] < at).to_numpy() & (known_at(ds, "status", at).to_numpy() == "open")
    basis = "every open deal (the deals carry no expected close date)"
    if "expected_close_date" in d.columns or has_changes(ds, "expected_close_date"):
        exp = pd.to_datetime(known_at(ds, "expected_close_date", at), errors="coerce")
        open_ = open_ & period.contains(exp).to_numpy()   # (a pandas 3 array may be read-only)
        basis = "open deals expected to close in the period (expected close date as known then)"
    amounts = known_at(ds, "amount", at).to_numpy(dtype=float)[open_]
    known = ~np.isnan(amounts)
    return {"deals": int(open_.sum()), "amount": float(amounts[known].sum()),
            "amount_unknown_deals": int((~known).sum()), "deal_ids": d["deal_id"].iloc[np.flatnonzero(open_)].to_numpy(),
            "basis": basis}


def categories_at(ds: Dataset, at: pd.Timestamp) -> pd.Series | None:
    """Each deal's forecast category as known at ``at`` (None when the data has no categories)."""
    if "forecast_category" not in ds.deals.columns and not has_changes(ds, "forecast_category"):
        return None
    return known_at(ds, "forecast_category", at)
