"""All the metrics for one period in one JSON-ready dict: what ``funnelkit metrics`` prints.

The field names are a public interface (``funnelkit metrics --format json``): add fields, never
rename or remove them. Missing values are ``None`` (JSON null), never NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..dataset import Dataset
from ..period import Period
from . import breakdown as _amount_by
from . import closing as _dtc
from . import size as _size
from . import forecast as _forecast
from . import stages as _stages
from . import stage_time as _tis

__all__ = ["metrics_summary", "format_summary", "jsonable"]

#: Fields of each row in ``amount_by_source`` / ``amount_by_product`` (after the group column).
AMOUNT_FIELDS = ("won_amount", "won_deals", "lost_deals", "win_rate", "mean_size", "share", "open_amount")


def jsonable(value: Any) -> Any:
    """Turn numpy/pandas scalars and containers into plain JSON values (NaN, NaT -> None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return [jsonable(r) for r in value.to_dict("records")]
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        ts = pd.Timestamp(value)
        return None if pd.isna(ts) else ts.isoformat()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(value, np.bool_):
        return bool(value)
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _records(df: pd.DataFrame, columns: list[str]) -> list[dict]:
    out = df[columns].copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(str)
    return jsonable(out)


def metrics_summary(ds: Dataset, period: Period, *, target: float | None = None,
                    stuck_quantile: float = 0.9) -> dict:
    """Compute every metric for ``period`` and return one JSON-ready dict.

    Parameters
    ----------
    ds
        A loaded data set (:func:`funnelkit.load`).
    period
        The reporting period; its ``as_of`` is the moment the data is seen at.
    target
        Optional revenue target for the target planner.
    stuck_quantile
        Quantile of past visits of a stage beyond which an open deal counts as stuck.

    Examples
    --------
    >>> s = metrics_summary(fk.load("data/sample"), Period.quarter("2026Q2"))   # doctest: +SKIP
    >>> s["win_rate"], s["deal_size"]["median"]                                  # doctest: +SKIP
    """
    currency = ds.require_single_currency("funnelkit metrics")
    as_of = period.as_of

    snap = _stages.snapshot(ds, as_of)
    fun = _stages.funnel(ds, period)
    per_stage = snap.merge(fun[["stage", "reached", "conversion"]], on="stage", how="left")

    tis = _tis.time_in_stage(ds, period)
    stuck = _tis.stuck_deals(ds, as_of, quantile=stuck_quantile)
    stuck_counts = stuck.groupby("stage", observed=False).size().rename("stuck_deals").reset_index()
    stuck_counts["stage"] = stuck_counts["stage"].astype(str)
    tis = tis.assign(stage=tis["stage"].astype(str)).merge(stuck_counts, on="stage", how="left")
    tis["stuck_deals"] = tis["stuck_deals"].fillna(0).astype(int)

    dtc = _dtc.days_to_close(ds, period)
    dtc_out = {}
    for status in ("won", "lost"):
        row = dtc[dtc["status"].astype(str) == status]
        if len(row):
            r = row.iloc[0]
            dtc_out[status] = {"deals": int(r["deals"]), "mean_days": jsonable(r["mean_days"]),
                               "median_days": jsonable(r["median_days"])}
        else:
            dtc_out[status] = {"deals": 0, "mean_days": None, "median_days": None}
    survival = _dtc.close_time_survival(ds, period)

    forecast = _forecast.win_forecast(ds, as_of)
    flow = _stages.stage_flow(ds, period)
    by_source = _amount_by.amount_by(ds, period, by="source")
    by_product = _amount_by.amount_by(ds, period, by="product")
    by_owner = _amount_by.amount_by(ds, period, by="owner")

    out: dict[str, Any] = {
        "period": {"start": period.start.date().isoformat(), "end": period.end.date().isoformat(),
                   "as_of": as_of.isoformat(), "label": period.label},
        "dataset": {"name": ds.name, "currency": currency, "deals": int(len(ds.deals)),
                    "stages": ds.stages},
        "deals_per_stage": _records(per_stage, ["stage", "open_deals", "open_amount", "reached",
                                                "conversion"]),
        "time_in_stage": _records(tis, ["stage", "visits", "mean_days", "median_days", "p90_days",
                                        "stuck_deals"]),
        "days_to_close": dtc_out,
        "deal_size": jsonable(_size.deal_size(ds, period)),
        "win_rate": jsonable(_size.win_rate(ds, period)),
        "amount_by_source": _records(by_source, ["source", *AMOUNT_FIELDS]),
        "amount_by_product": _records(by_product, ["product", *AMOUNT_FIELDS]),
        "forecast": {"open_deals": int(len(forecast)),
                     "expected_won_amount": jsonable(forecast["expected_won_amount"].sum(min_count=1))
                     if len(forecast) else 0.0,
                     **_range_fields(forecast)},
        # Additions beyond the fields issue #3 requires.
        "cohort": jsonable(_stages.cohort_outcomes(ds, period)),
        "bottleneck": jsonable(_stages.bottleneck(ds, period)),
        "stage_flow": _records(flow, list(flow.columns)),
        "close_time_survival": {"median_days": jsonable(survival.median_days),
                                **{f"p_close_within_{d}_days": jsonable(survival.p_close_within(d))
                                   for d in (30, 60, 90)}},
        "amount_by_owner": _records(by_owner, list(by_owner.columns)),
        "stuck_deals_total": int(len(stuck)),
        "sales_velocity": jsonable(_size.sales_velocity(ds, period)),
    }
    if target is not None:
        out["target_plan"] = jsonable(_size.target_plan(ds, period, target))
    out["notes"] = data_span_notes(ds, period)
    return out


def _range_fields(forecast: pd.DataFrame, level: float = 0.8) -> dict:
    r = _forecast.forecast_range(forecast, level) if len(forecast) else None
    if r is None or r["method"] == "none":
        return {"expected_won_amount_low": None, "expected_won_amount_high": None, "range_level": level}
    return {"expected_won_amount_low": r["low"], "expected_won_amount_high": r["high"], "range_level": level}


def data_span_notes(ds: Dataset, period: Period) -> list[str]:
    """Plain-language warnings when the period lies (partly) outside the data's time span."""
    d = ds.deals
    if d.empty:
        return ["the data set has no deals"]
    first = d["created_at"].min()
    last = max(t for t in (d["created_at"].max(), d["closed_at"].max(),
                           ds.stage_history["entered_at"].max()) if pd.notna(t))
    notes = []
    if period.stop <= first:
        notes.append(f"the period ends before the data starts ({first.date()}): every number is empty")
    elif period.start < first.normalize():
        notes.append(f"the data starts on {first.date()}, inside the period: the period is only partly covered")
    if period.start > last:
        notes.append(f"the period starts after the last event in the data ({last.date()}): deals open "
                     "then are shown as still open, and nothing closes in the period")
    elif period.as_of > last + pd.Timedelta(days=1):
        notes.append(f"the data ends on {last.date()}, before the end of the period: later events are missing")
    return notes


def _fmt(value: Any, kind: str = "num") -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "days":
        return f"{value:.1f}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 or value.is_integer() else f"{value:,.2f}"
    return str(value)


def _table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    head = [title for _, title, _ in columns]
    body = [[_fmt(r.get(key), kind) for key, _, kind in columns] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for b in body:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(b, widths))))
    return "\n".join(lines)


def format_summary(s: dict) -> str:
    """Readable tables of a :func:`metrics_summary` dict (what ``funnelkit metrics`` prints)."""
    cur = s["dataset"]["currency"]
    p = s["period"]
    out = [f"{s['dataset']['name']}: {p['label']} ({p['start']} to {p['end']}, as of {p['as_of']})", ""]
    ds_ = s["deal_size"]
    out.append(f"Win rate {_fmt(s['win_rate'], 'pct')} | won deals {ds_['deals']} | mean size "
               f"{_fmt(ds_['mean'])} {cur} | median {_fmt(ds_['median'])} | trimmed mean "
               f"{_fmt(ds_['trimmed_mean'])} | open deals {s['forecast']['open_deals']} | "
               f"expected won from open {_fmt(s['forecast']['expected_won_amount'])} {cur}"
               + (f" ({100 * s['forecast']['range_level']:.0f}% range "
                  f"{_fmt(s['forecast']['expected_won_amount_low'])}-"
                  f"{_fmt(s['forecast']['expected_won_amount_high'])})"
                  if s['forecast']['expected_won_amount_low'] is not None else ""))
    v = s["sales_velocity"]
    out.append(f"Sales velocity {_fmt(v['amount_per_day'])} {cur} per day = {v['opportunities']} new deals x "
               f"{_fmt(v['win_rate'], 'pct')} win rate x {_fmt(v['mean_won_size'])} {cur} mean won size / "
               f"{_fmt(v['mean_days_to_win'], 'days')} days to win")
    c = s["cohort"]
    out.append(f"Cohort created in period: {c.get('deals')} deals, {c.get('won')} won, "
               f"{c.get('lost')} lost, {c.get('open')} open")
    b = s["bottleneck"]
    out.append(f"Bottleneck: lowest conversion at {_fmt(b.get('lowest_conversion_stage'))}"
               f" ({_fmt(b.get('lowest_conversion'), 'pct')}); largest week-on-week drop in open deals at "
               f"{_fmt(b.get('largest_drop_stage'))}")
    out += ["", "Deals per stage", _table(s["deals_per_stage"], [
        ("stage", "stage", "s"), ("open_deals", "open deals", "num"),
        ("open_amount", f"open amount ({cur})", "num"), ("reached", "reached", "num"),
        ("conversion", "conversion", "pct")])]
    out += ["", "Time in stage (days, visits ended in period)", _table(s["time_in_stage"], [
        ("stage", "stage", "s"), ("visits", "visits", "num"), ("mean_days", "mean", "days"),
        ("median_days", "median", "days"), ("p90_days", "p90", "days"),
        ("stuck_deals", "stuck now", "num")])]
    d = s["days_to_close"]
    out += ["", "Days to close (deals closed in period)", _table(
        [{"status": k, **v} for k, v in d.items()],
        [("status", "status", "s"), ("deals", "deals", "num"), ("mean_days", "mean", "days"),
         ("median_days", "median", "days")])]
    surv = s["close_time_survival"]
    out.append(f"Kaplan-Meier (counts open deals): median {_fmt(surv['median_days'], 'days')} days; "
               f"P(close within 30/60/90 days) = {_fmt(surv['p_close_within_30_days'], 'pct')} / "
               f"{_fmt(surv['p_close_within_60_days'], 'pct')} / {_fmt(surv['p_close_within_90_days'], 'pct')}")
    cols = [("won_amount", f"won ({cur})", "num"), ("won_deals", "won", "num"),
            ("lost_deals", "lost", "num"), ("win_rate", "win rate", "pct"),
            ("mean_size", "mean size", "num"), ("share", "share", "pct"),
            ("open_amount", "open amount", "num")]
    out += ["", "Amount by source", _table(s["amount_by_source"], [("source", "source", "s"), *cols])]
    out += ["", "Amount by product", _table(s["amount_by_product"], [("product", "product", "s"), *cols])]
    if "target_plan" in s:
        t = s["target_plan"]
        out += ["", f"Target planner: to win {_fmt(t.get('target'))} {cur} at a {t.get('size_measure')} deal "
                f"size of {_fmt(t.get('deal_size'))} {cur}, win {_fmt(t.get('deals_needed_whole'))} deals; "
                f"at a win rate of {_fmt(t.get('win_rate'), 'pct')}, work {_fmt(t.get('deals_to_work_whole'))} "
                "deals to closure."]
    for note in s.get("notes", []):
        out.append(f"Note: {note}")
    return "\n".join(out)
