"""How good the landing forecast has been: rebuilt for every week of every past period, as it would
have been made then, and scored against what the period actually won.

Every forecast made at an instant ``t`` uses only what was visible before ``t`` (stage entries,
closes and deals created before ``t``); deleting every event at or after ``t`` from the data gives
the same forecast (the test suite checks it). Without a change log, a deal's amount is the amount at
export (the record then leans on hindsight for amounts edited later: said in ``notes``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from ..changes import has_changes
from ..dataset import Dataset
from ..i18n import _
from ..period import Period, as_instant, as_period, quarters_between
from .landing import landing_by_week, won_between

__all__ = ["forecast_accuracy", "ForecastAccuracy", "default_accuracy_periods"]

@dataclass
class ForecastAccuracy:
    """The result of :func:`forecast_accuracy`.

    Attributes
    ----------
    forecasts
        One row per (period, week): ``period``, ``week`` (0 = the forecast made at the period's
        start), ``at``, ``expected``, ``low``, ``high`` (the model's range), ``actual`` (won in the
        period), ``error`` (``expected - actual``: > 0 = forecast too high), ``abs_pct_error``,
        ``inside_range``, and for the baselines ``weighted`` (won so far + open amount x the stage's
        historical win rate) with ``weighted_error`` / ``weighted_abs_pct_error``, and, when the deals
        carry ``forecast_category``, ``commit`` (won so far + open Commit amount) likewise.
    by_week
        Per week of the period: ``periods``, ``mape``, ``bias`` (mean error / mean actual),
        ``range_hit_rate`` (share of actuals inside the range; about ``level`` when the range is
        honest), and the baselines' ``weighted_mape``, ``weighted_bias`` (and ``commit_*``).
    level
        The range's probability.
    notes
        What the record leans on.
    """

    forecasts: pd.DataFrame
    by_week: pd.DataFrame
    level: float
    notes: list[str] = field(default_factory=list)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per forecast (model and baselines): ``mape``, ``bias``, ``range_hit_rate``,
        ``forecasts`` over every (period, week)."""
        f = self.forecasts
        rows = []
        for name, col in (("landing forecast", ""), ("stage-weighted pipeline", "weighted_"),
                          ("closed + commit", "commit_")):
            err = f"{col}error"
            if err not in f.columns:
                continue
            row = {"forecast": name, "forecasts": int(f[err].notna().sum()),
                   "mape": _mean(f[f"{col}abs_pct_error"]), "bias": _bias(f[err], f["actual"])}
            row["range_hit_rate"] = _mean(f["inside_range"].astype(float)) if not col else None
            rows.append(row)
        return pd.DataFrame(rows).set_index("forecast")

    def to_dict(self) -> dict:
        """The ``forecast_accuracy`` block of ``funnelkit metrics --format json``."""
        s = self.summary
        return {
            "periods": sorted(self.forecasts["period"].unique().tolist()),
            "forecasts": int(len(self.forecasts)), "level": self.level,
            "range_hit_rate": _none(s.loc["landing forecast", "range_hit_rate"]) if len(s) else None,
            "mape": _none(s.loc["landing forecast", "mape"]) if len(s) else None,
            "bias": _none(s.loc["landing forecast", "bias"]) if len(s) else None,
            "baselines": {name: {"mape": _none(r["mape"]), "bias": _none(r["bias"])}
                          for name, r in s.iloc[1:].iterrows()},
            "by_week": [{k: _none(v) if isinstance(v, float) else v for k, v in r.items()}
                        for r in self.by_week.to_dict("records")],
            "notes": list(self.notes),
        }


def _none(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _mean(s: pd.Series) -> float:
    s = s.dropna()
    return float(s.mean()) if len(s) else float("nan")


def _bias(err: pd.Series, actual: pd.Series) -> float:
    ok = err.notna() & actual.notna()
    den = float(actual[ok].mean()) if ok.any() else float("nan")
    return float(err[ok].mean() / den) if ok.any() and den else float("nan")


def default_accuracy_periods(ds: Dataset, *, until=None) -> list[Period]:
    """Every calendar quarter with enough history to forecast it: the quarter before it lies wholly
    in the data (it starts on or after the day the first deal was created), and the quarter has
    ended by the end of the data (the day after the latest event) or by ``until``.

    Examples
    --------
    >>> import funnelkit as fk
    >>> [p.label for p in default_accuracy_periods(fk.load("data/sample"))][:3]
    ['2025Q1', '2025Q2', '2025Q3']
    """
    d = ds.deals
    if d.empty:
        return []
    first = d["created_at"].min().normalize()
    last = max(x for x in (d["created_at"].max(), d["closed_at"].max(), ds.stage_history["entered_at"].max())
               if pd.notna(x)).normalize() + pd.Timedelta(days=1)
    if until is not None:
        last = min(last, as_instant(until, "until"))
    out = []
    for q in quarters_between(first, last):
        p = Period.quarter(q)
        if p.previous().start >= first and p.stop <= last:
            out.append(p)
    return out


def forecast_accuracy(ds: Dataset, periods=None, *, level: float = 0.8, simulations: int = 1000,
                      until=None, **landing_options) -> ForecastAccuracy:
    """The landing forecast rebuilt at every week of past periods, against what was won.

    Parameters
    ----------
    ds
        The data set (one currency).
    periods
        Periods (``Period`` objects or quarter labels) that have ended; default
        :func:`default_accuracy_periods`.
    level, simulations, **landing_options
        As in :func:`funnelkit.metrics.landing_forecast` (``lookback``, ``prior_strength``,
        ``adjust_for``, ``seed``).
    until
        With the default periods: only periods that ended by this instant (a report for a period
        passes its ``as_of``, so the record it shows does not change when later data arrives).

    Returns
    -------
    ForecastAccuracy
        ``.forecasts`` (one row per period and week), ``.by_week``, ``.summary``, ``.to_dict()``.

    Examples
    --------
    >>> import funnelkit as fk
    >>> acc = fk.metrics.forecast_accuracy(fk.load("data/sample"), ["2026Q1"], simulations=200)
    >>> len(acc.forecasts), bool(acc.forecasts["actual"].gt(0).all())
    (13, True)
    """
    ds.require_single_currency("forecast_accuracy")
    if periods is None:
        periods = default_accuracy_periods(ds, until=until)
    periods = [as_period(p) for p in periods]
    has_category = "forecast_category" in ds.deals.columns or has_changes(ds, "forecast_category")
    frames = []
    for p in periods:
        weekly = landing_by_week(ds, p, until=p.stop, level=level, simulations=simulations, **landing_options)
        weekly.insert(0, "period", p.label)
        weekly["actual"] = won_between(ds, p.start, p.stop)["amount"]
        frames.append(weekly)
    cols = ["period", "week", "at", "expected", "low", "high", "actual", "weighted"] + (["commit"] if has_category else [])
    f = pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
    for c in ("expected", "low", "high", "actual", "weighted", "commit"):
        if c in f.columns:
            f[c] = pd.to_numeric(f[c], errors="coerce").astype(float)
    actual = f["actual"].where(f["actual"] > 0)
    for prefix, col in (("", "expected"), ("weighted_", "weighted"), ("commit_", "commit")):
        if col in f.columns:
            f[f"{prefix}error"] = f[col] - f["actual"]
            f[f"{prefix}abs_pct_error"] = (f[f"{prefix}error"].abs() / actual)
    f["inside_range"] = (f["low"] <= f["actual"]) & (f["actual"] <= f["high"])
    by_week = _by_week(f)
    notes = []
    if not has_changes(ds, "amount"):
        notes.append(_("amounts are the values at export (no change log): forecasts of past weeks use "
                       "amounts that may have been edited later"))
    if has_category and not has_changes(ds, "forecast_category"):
        notes.append(_("forecast categories are the values at export: the closed + commit baseline of "
                       "past weeks leans on hindsight"))
    return ForecastAccuracy(forecasts=f, by_week=by_week, level=level, notes=notes)


def _by_week(f: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for week, g in f.groupby("week", sort=True):
        row = {"week": int(week), "periods": int(len(g)), "mape": _mean(g["abs_pct_error"]),
               "bias": _bias(g["error"], g["actual"]),
               "range_hit_rate": _mean(g["inside_range"].astype(float)),
               "weighted_mape": _mean(g["weighted_abs_pct_error"]),
               "weighted_bias": _bias(g["weighted_error"], g["actual"])}
        if "commit_error" in g.columns:
            row["commit_mape"] = _mean(g["commit_abs_pct_error"])
            row["commit_bias"] = _bias(g["commit_error"], g["actual"])
        rows.append(row)
    return pd.DataFrame(rows)
