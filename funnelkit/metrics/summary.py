"""All the metrics for one period in one JSON-ready dict: what ``funnelkit metrics`` prints.

The field names are a public interface (``funnelkit metrics --format json``): add fields, never
rename or remove them. Missing values are ``None`` (JSON null), never NaN.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..dataset import Dataset, label_text
from ..errors import NoDataWarning
from ..engine.tables import tables_of, to_frame
from ..engine.views import count_if, deals_as_of, in_period
from ..i18n import _, ngettext
from ..period import Period, PeriodLike, as_period
from ..targets import target_for, targets_of
from . import breakdown as _amount_by
from . import closing as _dtc
from . import size as _size
from . import forecast as _forecast
from . import movement as _movement
from . import stages as _stages
from . import stage_time as _tis
from .accuracy import default_accuracy_periods, forecast_accuracy
from .categories import forecast_categories
from .landing import coverage, landing_forecast

__all__ = ["metrics_summary", "format_summary", "jsonable", "amount_coverage", "data_span_notes", "data_end",
           "end_of_data", "as_of_within_data"]

#: Fields of each row in ``amount_by_source`` / ``amount_by_product`` (after the group column).
AMOUNT_FIELDS = ("won_amount", "won_deals", "lost_deals", "win_rate", "mean_size", "share", "open_amount",
                 "won_amount_unknown", "open_deals", "open_amount_unknown")


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
            out[col] = label_text(out[col], missing=None)
    return jsonable(out)


def metrics_summary(ds: Dataset, period: PeriodLike, *, target: float | None = None,
                    stuck_quantile: float = 0.9, accuracy_quarters: int = 0) -> dict:
    """Compute every metric for ``period`` and return one JSON-ready dict.

    Counts, rates and times are computed over every deal. Amounts are never added across
    currencies: when the deals are in several currencies, the amount fields at the top level are
    null and ``by_currency`` holds one amount block per currency. Every caveat (the period only
    partly covered by the data, amounts unknown or known only in hindsight, too little history for
    the forecast) is a plain-language note in ``notes``, and with its topic in ``caveats``.

    Parameters
    ----------
    ds
        A loaded data set (:func:`funnelkit.load`).
    period
        The reporting period; its ``as_of`` is the moment the data is seen at.
    target
        Optional revenue target for the target planner and the landing forecast (one-currency data
        sets only); default: the team's target for exactly this period in the folder's
        ``targets.csv``, if any.
    stuck_quantile
        Quantile of past visits of a stage beyond which an open deal counts as stuck.
    accuracy_quarters
        How many of the latest quarters ended by ``as_of`` the ``forecast_accuracy`` block rebuilds
        (every week of each; 0 = leave the block null: it is the slowest part). ``funnelkit
        metrics`` asks for 4.

    Examples
    --------
    >>> s = metrics_summary(fk.load("data/sample"), Period.quarter("2026Q2"))   # doctest: +SKIP
    >>> s["win_rate"], s["deal_size"]["median"]                                  # doctest: +SKIP
    """
    period = as_period(period, ds)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if target is None:
            target = target_for(targets_of(ds), period)
        out = _summary(ds, period, target, stuck_quantile)
        out.update(_landing_fields(ds, period, target, accuracy_quarters))
    # A period with no data is named by the data-span caveat already (not twice).
    caught = [w for w in caught if not issubclass(w.category, NoDataWarning)]
    caveats = _caveats(ds, period, out) + _warning_caveats(caught)
    out["notes"] = [c["text"] for c in caveats]
    out["caveats"] = caveats
    return out


def _summary(ds: Dataset, period: Period, target: float | None, stuck_quantile: float) -> dict:
    currencies = ds.currencies
    mixed = len(currencies) > 1
    counts_ds = _without_amounts(ds) if mixed else ds
    as_of = period.as_of

    snap = _stages.snapshot(counts_ds, as_of)
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
    by = {key: _amount_by.amount_by(counts_ds, period, by=key) for key in ("source", "product", "owner")}

    out: dict[str, Any] = {
        "period": {"start": period.start.date().isoformat(), "end": period.end.date().isoformat(),
                   "as_of": as_of.isoformat(), "label": period.label},
        "dataset": {"name": ds.name, "currency": None if mixed else currencies[0], "deals": int(len(ds.deals)),
                    "stages": ds.stages, "data_end": jsonable(data_end(ds))},
        "deals_per_stage": _records(per_stage, ["stage", "open_deals", "open_amount", "reached",
                                                "conversion", "open_amount_unknown"]),
        "time_in_stage": _records(tis, ["stage", "visits", "mean_days", "median_days", "p90_days",
                                        "stuck_deals"]),
        "days_to_close": dtc_out,
        "deal_size": jsonable(_size.deal_size(counts_ds, period)),
        "win_rate": jsonable(_size.win_rate(ds, period)),
        "amount_by_source": _records(by["source"], ["source", *AMOUNT_FIELDS]),
        "amount_by_product": _records(by["product"], ["product", *AMOUNT_FIELDS]),
        "forecast": _forecast_fields(forecast if not mixed else forecast.assign(amount=np.nan,
                                                                                expected_won_amount=np.nan)),
        # Additions beyond the fields issue #3 requires.
        "cohort": jsonable(_stages.cohort_outcomes(ds, period)),
        "bottleneck": jsonable(_stages.bottleneck(ds, period)),
        "stage_flow": _records(flow, list(flow.columns)),
        "close_time_survival": {"median_days": jsonable(survival.median_days),
                                **{f"p_close_within_{d}_days": jsonable(survival.p_close_within(d))
                                   for d in (30, 60, 90)}},
        "amount_by_owner": _records(by["owner"], list(by["owner"].columns)),
        "stuck_deals_total": int(len(stuck)),
        "sales_velocity": jsonable(_size.sales_velocity(counts_ds, period)),
        "unvisited_stages": _stages.unvisited_stages(ds),
        "currencies": currencies,
        "amount_coverage": None if mixed else amount_coverage(ds, period),
        "pipeline_waterfall": _waterfall_fields(ds, period),
    }
    if mixed:
        _blank_amounts(out)
        out["by_currency"] = {c: _amount_block(ds.in_currency(c), period, forecast, c) for c in currencies}
    if target is not None and not mixed:
        out["target_plan"] = jsonable(_size.target_plan(ds, period, target))
    return out


def _landing_fields(ds: Dataset, period: Period, target: float | None, accuracy_quarters: int) -> dict:
    """The "will we hit the number" blocks: landing forecast, coverage, categories, accuracy record
    (one currency only: null for a several-currency data set, with a note from the amount blocks)."""
    out: dict[str, Any] = {"landing_forecast": None, "coverage": None, "forecast_categories": None,
                           "forecast_accuracy": None}
    if len(ds.currencies) > 1 or ds.deals.empty:
        return out
    at = min(period.as_of, period.stop)
    lf = landing_forecast(ds, period, at, target=target)
    out["landing_forecast"] = jsonable(lf.to_dict())
    if target is not None:
        out["coverage"] = jsonable(coverage(ds, period, at, target=target))
    if "forecast_category" in ds.deals.columns:
        cats = forecast_categories(ds, period, at)
        out["forecast_categories"] = {"at": at.isoformat(), "basis": cats.attrs["basis"],
                                      "hindsight": bool(cats.attrs["hindsight"]),
                                      "categories": _records(cats, list(cats.columns))}
    if accuracy_quarters > 0:
        periods = default_accuracy_periods(ds, until=period.as_of)[-accuracy_quarters:]
        if periods:
            out["forecast_accuracy"] = jsonable(forecast_accuracy(ds, periods).to_dict())
    return out


def _without_amounts(ds: Dataset) -> Dataset:
    """The deals with every amount blanked: counts over several currencies, never a sum of amounts."""
    deals = ds.deals.drop(columns=["currency"]).assign(amount=np.nan)
    return Dataset(deals=deals, stage_history=ds.stage_history, pipeline=ds.pipeline, report=ds.report,
                   name=ds.name, path=ds.path)


#: Per row of the summary's tables, the amount fields a several-currency summary leaves null.
_AMOUNT_KEYS = ("open_amount", "open_amount_unknown", "won_amount", "won_amount_unknown", "mean_size",
                "share", "mean", "median", "trimmed_mean", "amount_unknown", "mean_won_size",
                "amount_per_day", "expected_won_amount", "expected_won_amount_low",
                "expected_won_amount_high", "amount_unknown_deals")


def _blank_amounts(out: dict) -> None:
    for key in ("deals_per_stage", "amount_by_source", "amount_by_product", "amount_by_owner"):
        for row in out[key]:
            row.update({k: None for k in _AMOUNT_KEYS if k in row})
    for key in ("deal_size", "sales_velocity", "forecast"):
        out[key].update({k: None for k in _AMOUNT_KEYS if k in out[key]})


def _amount_block(ds: Dataset, period: Period, forecast: pd.DataFrame, currency: str) -> dict:
    """Every amount metric of one currency's deals (the forecast's probabilities come from all deals)."""
    snap = _stages.snapshot(ds, period.as_of)
    own = forecast[forecast["currency"].astype(str).eq(currency).to_numpy()] if "currency" in forecast else forecast
    return {
        "deals": int(len(ds.deals)),
        "deals_per_stage": _records(snap, ["stage", "open_deals", "open_amount", "open_amount_unknown"]),
        "deal_size": jsonable(_size.deal_size(ds, period)),
        **{f"amount_by_{key}": _records(_amount_by.amount_by(ds, period, by=key), [key, *AMOUNT_FIELDS])
           for key in ("source", "product", "owner")},
        "forecast": _forecast_fields(own),
        "sales_velocity": jsonable(_size.sales_velocity(ds, period)),
        "amount_coverage": amount_coverage(ds, period),
    }


def _forecast_fields(forecast: pd.DataFrame) -> dict:
    unknown = int(forecast["amount"].isna().sum())
    return {"open_deals": int(len(forecast)),
            "expected_won_amount": jsonable(forecast["expected_won_amount"].sum(min_count=1))
            if len(forecast) else 0.0,
            **_range_fields(forecast),
            "expected_won_deals": jsonable(forecast["p_win"].sum(min_count=1)) if len(forecast) else 0.0,
            "amount_unknown_deals": unknown}


def _waterfall_fields(ds: Dataset, period: Period) -> list[dict]:
    """Where the pipeline went in [period start, as_of]: every open deal, and (when the deals carry
    expected close dates: :func:`~funnelkit.metrics.movement.has_expected_dates`) those expected to
    close in the period (expected close date as known at each instant). None for several currencies."""
    if len(ds.currencies) > 1:
        return None
    start = min(period.start, period.as_of)
    windows = [("all", None)] + ([("period", period)] if _movement.has_expected_dates(ds) else [])
    return [jsonable(_movement.waterfall_fields(ds, start, period.as_of, window=w, label=label))
            for label, w in windows]


def _range_fields(forecast: pd.DataFrame, level: float = 0.8) -> dict:
    r = _forecast.forecast_range(forecast, level) if len(forecast) else None
    if r is None or r["method"] == "none":
        return {"expected_won_amount_low": None, "expected_won_amount_high": None, "range_level": level}
    return {"expected_won_amount_low": r["low"], "expected_won_amount_high": r["high"], "range_level": level}


def amount_coverage(ds: Dataset, period: PeriodLike) -> dict:
    """How much of each amount metric of ``period`` rests on unknown amounts, or on hindsight.

    A CRM export holds each deal's latest amount. Some CRMs fill it in only when a deal closes
    (Maven CRM, Olist): then no deal still open in the data has an amount
    (``amounts_recorded_at_close``), and the deals open at ``as_of`` that have one owe it to
    having closed later, after ``as_of``: the period's open amount and expected won amount lean on
    hindsight (amounts known only at export).

    Returns
    -------
    dict
        ``won``: ``{deals, amount_unknown, unknown_share}`` for the deals won in P;
        ``open``: the same for the deals open at ``as_of``, plus ``amount_known_after_close`` (those
        with an amount that closed after ``as_of``); ``amounts_recorded_at_close`` (bool);
        ``hindsight`` (bool: recorded at close and some open amount known only after ``as_of``).
        ``unknown_share`` is None when there are no deals.

    Examples
    --------
    >>> amount_coverage(ds, Period.quarter("2017Q3"))["hindsight"]      # doctest: +SKIP
    True
    """
    period = as_period(period, ds)
    n = _coverage_counts(ds, period)
    now_open = ds.deals["status"].eq("open").to_numpy(dtype=bool)
    recorded_at_close = bool(now_open.any() and ds.deals["amount"].isna().to_numpy()[now_open].all()
                             and ds.deals["amount"].notna().to_numpy()[~now_open].any())
    after = n["open_known_after_close"]
    return {"won": _coverage(n["won"], n["won_unknown"]),
            "open": {**_coverage(n["open"], n["open_unknown"]), "amount_known_after_close": after},
            "amounts_recorded_at_close": recorded_at_close, "hindsight": recorded_at_close and after > 0}


def _coverage_counts(ds: Dataset, period: Period) -> dict[str, int]:
    """The counts :func:`amount_coverage` reads, by the engine over the deals as of ``period.as_of``
    (:func:`funnelkit.engine.views.deals_as_of`; one row of counts, not a frame of every deal):
    ``won`` (won in the period), ``open`` (open at ``as_of``), each with its deals of unknown
    amount, and ``open_known_after_close`` (open then, closed later, amount known)."""
    d = deals_as_of(tables_of(ds), period.as_of)
    unknown = d.amount.isnull() | d.amount.isnan()
    won = (d.status_as_of == "won") & in_period(d.closed_as_of, period)
    is_open = d.status_as_of == "open"
    got = to_frame(d.aggregate(won=count_if(won), won_unknown=count_if(won & unknown), open=count_if(is_open),
                               open_unknown=count_if(is_open & unknown),
                               open_known_after_close=count_if(is_open & (d.status != "open") & ~unknown)))
    return {k: int(v) for k, v in got.iloc[0].items()}


def _coverage(n: int, unknown: int) -> dict:
    return {"deals": n, "amount_unknown": unknown, "unknown_share": unknown / n if n else None}


def _caveats(ds: Dataset, period: Period, s: dict) -> list[dict]:
    out = [{"topic": "period", "text": t} for t in data_span_notes(ds, period)]
    if len(s["currencies"]) > 1:
        counts = ds.deals["currency"].astype(str).value_counts()
        listed = _(", ").join(_("{currency}: {n} deals").format(currency=c, n=f"{counts[c]:,}")
                              for c in s["currencies"])
        out.append({"topic": "currency", "text": _(
            "the deals are in {n} currencies ({listed}): every amount is given per currency and never added "
            "across currencies; counts, rates and times cover all deals").format(n=len(s["currencies"]),
                                                                                  listed=listed)})
        blocks = [(c, b["amount_coverage"]) for c, b in s["by_currency"].items()]
    else:
        blocks = [("", s["amount_coverage"])]
    for currency, cov in blocks:
        out += _amount_caveats(cov, currency)
    if s["pipeline_waterfall"] is not None and not _movement.has_expected_dates(ds):
        out.append({"topic": "movement", "text": _(
            "the deals carry no expected close date: where the pipeline expected to close in the period went "
            "cannot be shown, only where every open deal went")})
    gone = s["unvisited_stages"]
    if gone and len(gone) < len(ds.stages):
        out.append({"topic": "funnel", "text": ngettext(
            "no deal in the data ever entered {stages}: it is left out of the funnel (a skipped stage would "
            "otherwise count as reached by every deal)",
            "no deal in the data ever entered {stages}: they are left out of the funnel (a skipped stage would "
            "otherwise count as reached by every deal)", len(gone)).format(stages=_(", ").join(gone))})
    return out


def _amount_caveats(cov: dict, currency: str = "") -> list[dict]:
    """Plain-language notes on unknown and hindsight amounts (see :func:`amount_coverage`)."""
    where = (" " + _("in {currency}").format(currency=currency)) if currency else ""
    out = []
    texts = {"won": (_("all {n} won deals{where} have an unknown amount: the won amount and the won deal sizes "
                       "are unknown (not 0)"),
                     _("{k} of the {n} won deals{where} ({pct}) have an unknown amount: the won amount and the won "
                       "deal sizes cover only the other {rest}")),
             "open": (_("all {n} deals open at the end of the period{where} have an unknown amount: the open "
                        "pipeline amount and the expected won amount are unknown (not 0)"),
                      _("{k} of the {n} deals open at the end of the period{where} ({pct}) have an unknown amount: "
                        "the open pipeline amount and the expected won amount cover only the other {rest}"))}
    for key in ("won", "open"):
        c = cov[key]
        n, k = c["deals"], c["amount_unknown"]
        if not k:
            continue
        text = texts[key][0 if k == n else 1].format(n=f"{n:,}", k=f"{k:,}", where=where,
                                                     pct=f"{100 * k / n:.0f}%" if n else "", rest=f"{n - k:,}")
        out.append({"topic": f"amount_{key}", "text": text})
    if cov["hindsight"]:
        o = cov["open"]
        out.append({"topic": "hindsight", "text": _(
            "amounts are recorded only when a deal closes in this data (no deal still open has one): {k} of the {n} "
            "deals open at the end of the period{where} have an amount only because they closed later; the open "
            "pipeline amount and the expected won amount lean on hindsight (amounts known only at export), read "
            "them as upper bounds").format(k=f"{o['amount_known_after_close']:,}", n=f"{o['deals']:,}",
                                           where=where)})
    return out


def _warning_caveats(caught: list) -> list[dict]:
    """funnelkit's warnings during the summary as caveats (others are shown again as warnings)."""
    package = str(Path(__file__).resolve().parents[1])
    out, seen = [], set()
    for w in caught:
        if not str(Path(w.filename).resolve()).startswith(package):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        text = str(w.message).strip()
        if text and text not in seen:
            seen.add(text)
            out.append({"topic": "forecast" if "forecast" in text else "data", "text": text})
    return out


def data_span_notes(ds: Dataset, period: PeriodLike) -> list[str]:
    """Plain-language warnings when the period lies (partly) outside the data's time span."""
    period = as_period(period, ds)
    d = ds.deals
    if d.empty:
        return [_("the data set has no deals")]
    first = d["created_at"].min()
    last = data_end(ds)
    notes = []
    if period.stop <= first:
        notes.append(_("the period ends before the data starts ({date}): every number is empty").format(
            date=first.date()))
    elif period.start < first.normalize():
        notes.append(_("the data starts on {date}, inside the period: the period is only partly covered").format(
            date=first.date()))
    if period.start > last:
        notes.append(_("the period starts after the last event in the data ({date}): deals open then are shown "
                       "as still open, and nothing closes in the period").format(date=last.date()))
    elif period.as_of > last + pd.Timedelta(days=1):
        notes.append(_("the data ends on {date}, before the end of the period: later events are missing").format(
            date=last.date()))
    elif last < period.stop and period.as_of > last:
        notes.append(_("the data ends on {date}, before the end of the period: every number is as the data "
                       "stood at the end of that day").format(date=last.date()))
    return notes


def data_end(ds: Dataset):
    """The last event in the data (creation, close or stage entry); NaT without deals."""
    d = ds.deals
    times = [t for t in (d["created_at"].max(), d["closed_at"].max(), ds.stage_history["entered_at"].max())
             if pd.notna(t)]
    return max(times) if times else pd.NaT


def end_of_data(ds: Dataset):
    """The end of the last day with an event: the midnight after :func:`data_end` (NaT without deals).

    Every event of the data is seen at this instant (events are seen when ``t < as_of``), and no
    day after the data's last one is counted.
    """
    last = data_end(ds)
    return last.normalize() + pd.Timedelta(days=1) if pd.notna(last) else pd.NaT


def as_of_within_data(ds: Dataset, period: PeriodLike) -> Period:
    """``period`` seen at ``min(its as_of, the end of the data)`` when the data ends inside it.

    The default ``as_of`` of the report, the explorer and ``funnelkit metrics`` when none is given:
    a period the data ends in is seen as it stood on the data's last day (:func:`end_of_data`), not
    at the period's end, so a deal whose data simply stops is not counted as past due (or as stuck)
    for the days after the export. A period the data covers whole, or that starts after the data
    ends, keeps its ``as_of``; so does an ``as_of`` before the end of the data.

    Examples
    --------
    >>> import funnelkit as fk
    >>> ds = fk.load("data/sample")
    >>> as_of_within_data(ds, "2026Q2").as_of            # the data runs past 2026Q2: its end
    Timestamp('2026-07-01 00:00:00')
    >>> as_of_within_data(ds, ("2026-09-01", "2026-12-31")).as_of   # the last event: 2026-09-30 18:05
    Timestamp('2026-10-01 00:00:00')
    """
    period = as_period(period)
    end = end_of_data(ds)
    if pd.isna(end) or end <= period.start or end >= period.as_of:
        return period
    return period.with_as_of(end)


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


def _cell(row: dict, key: str, kind: str) -> str:
    """A table cell; ``amount:<count field>`` is an amount that reads "unknown" (not "-") when
    the deals it sums exist but none has a known amount."""
    if kind.startswith("amount:"):
        n = row.get(kind.split(":", 1)[1])
        return "unknown" if row.get(key) is None and n else _fmt(row.get(key))
    return _fmt(row.get(key), kind)


def _table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    head = [title for _, title, _ in columns]
    body = [[_cell(r, key, kind) for key, _, kind in columns] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for b in body:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(b, widths))))
    return "\n".join(lines)


def _money(value: Any, currency: str, deals: int | None = None, unknown: int | None = None) -> str:
    """An amount in words: ``1,200 EUR``, ``unknown`` (every amount unknown), or with
    ``(3 of 10 deals, 30%, unknown)`` when some are."""
    if value is None:
        return "unknown" if deals else "-"
    text = f"{_fmt(value)} {currency}".strip()
    if unknown and deals:
        text += f" ({unknown:,} of {deals:,} deals, {100 * unknown / deals:.0f}%, of unknown amount)"
    return text


def format_summary(s: dict) -> str:
    """Readable tables of a :func:`metrics_summary` dict (what ``funnelkit metrics`` prints).

    The notes (caveats) come first, right under the title line; amounts follow per currency.
    """
    p = s["period"]
    out = [f"{s['dataset']['name']}: {p['label']} ({p['start']} to {p['end']}, as of {p['as_of']})"]
    out += [f"Note: {note}" for note in s.get("notes", [])]
    out.append("")
    ds_, f = s["deal_size"], s["forecast"]
    out.append(f"Win rate {_fmt(s['win_rate'], 'pct')} | won deals {ds_['deals']} | open deals {f['open_deals']}"
               f" | expected won deals from open {_fmt(f.get('expected_won_deals'), 'days')}")
    c = s["cohort"]
    out.append(f"Cohort created in period: {c.get('deals')} deals, {c.get('won')} won, "
               f"{c.get('lost')} lost, {c.get('open')} open")
    b = s["bottleneck"]
    out.append(f"Bottleneck: lowest conversion at {_fmt(b.get('lowest_conversion_stage'))}"
               f" ({_fmt(b.get('lowest_conversion'), 'pct')}); largest week-on-week drop in open deals at "
               f"{_fmt(b.get('largest_drop_stage'))}")
    if s.get("unvisited_stages"):
        out.append(f"Stages no deal ever entered: {', '.join(s['unvisited_stages'])}")
    mixed = "by_currency" in s
    stage_cols = [("stage", "stage", "s"), ("open_deals", "open deals", "num"), ("reached", "reached", "num"),
                  ("conversion", "conversion", "pct")]
    if not mixed:
        stage_cols[2:2] = _open_amount_cols(s["dataset"]["currency"])
    out += ["", "Deals per stage", _table(s["deals_per_stage"], stage_cols)]
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
    if mixed:
        counts = [("won_deals", "won", "num"), ("lost_deals", "lost", "num"), ("win_rate", "win rate", "pct"),
                  ("open_deals", "open", "num")]
        for key in ("source", "product"):
            out += ["", f"Deals by {key} (all currencies)", _table(s[f"amount_by_{key}"], [(key, key, "s"), *counts])]
        for currency, block in s["by_currency"].items():
            out += ["", f"=== Amounts in {currency} ({block['deals']:,} deals) ==="]
            out += _amount_lines(block, currency)
            out += ["", f"Open amount per stage ({currency})", _table(block["deals_per_stage"], [
                ("stage", "stage", "s"), ("open_deals", "open deals", "num"), *_open_amount_cols(currency)])]
    else:
        out += [""] + _amount_lines(s, s["dataset"]["currency"])
    if "target_plan" in s:
        t, cur = s["target_plan"], s["dataset"]["currency"]
        out += ["", f"Target planner: to win {_fmt(t.get('target'))} {cur} at a {t.get('size_measure')} deal "
                f"size of {_fmt(t.get('deal_size'))} {cur}, win {_fmt(t.get('deals_needed_whole'))} deals; "
                f"at a win rate of {_fmt(t.get('win_rate'), 'pct')}, work {_fmt(t.get('deals_to_work_whole'))} "
                "deals to closure."]
    out += _landing_lines(s)
    return "\n".join(out)


def _landing_lines(s: dict) -> list[str]:
    """The "will we hit the number" part of :func:`format_summary`."""
    lf = s.get("landing_forecast")
    if not lf:
        return []
    cur = lf["currency"]
    out = ["", f"Will we hit the number (seen at {lf['at']})",
           f"Won so far {_money(lf['won_so_far_amount'], cur, lf['won_so_far_deals'], lf['won_so_far_amount_unknown_deals'])}"
           f" ({lf['won_so_far_deals']} deals) + from {lf['open_deals']} open deals {_fmt(lf['from_open_amount'])} + "
           f"from deals not yet created {_fmt(lf['from_new_amount'])} = {_fmt(lf['expected_amount'])} {cur} "
           f"({100 * lf['level']:.0f}% range {_fmt(lf['low_amount'])}-{_fmt(lf['high_amount'])})"]
    if lf.get("p_reach_target") is not None:
        out.append(f"P(reaching the target of {_fmt(lf['target'])} {cur}) = {_fmt(lf['p_reach_target'], 'pct')}")
    c = s.get("coverage")
    if c:
        out.append(f"Coverage: open pipeline {_fmt(c['pipeline'])} {cur} / gap {_fmt(c['gap'])} = "
                   f"{_fmt(c['coverage'], 'days')}x; past conversion of such pipeline {_fmt(c['conversion'], 'pct')}"
                   f" -> pipeline needed {_fmt(c['pipeline_needed'])} {cur} ({c['basis']})")
    out += [f"Note: {n}" for n in lf.get("notes", [])]
    acc = s.get("forecast_accuracy")
    if acc:
        base = acc["baselines"].get("stage-weighted pipeline", {})
        out.append(f"How good it has been ({', '.join(acc['periods'])}, {acc['forecasts']} weekly forecasts): "
                   f"mean abs. error {_fmt(acc['mape'], 'pct')}, bias {_fmt(acc['bias'], 'pct')}, actual inside "
                   f"the 80% range {_fmt(acc['range_hit_rate'], 'pct')}; stage-weighted pipeline: error "
                   f"{_fmt(base.get('mape'), 'pct')}, bias {_fmt(base.get('bias'), 'pct')}")
    return out


def _open_amount_cols(cur: str) -> list[tuple[str, str, str]]:
    return [("open_amount", f"open amount ({cur})", "amount:open_deals"),
            ("open_amount_unknown", "of unknown amount", "num")]


def _amount_lines(s: dict, cur: str) -> list[str]:
    """The amount part of :func:`format_summary` for one currency (``s``: a summary or a block)."""
    ds_, f, v = s["deal_size"], s["forecast"], s["sales_velocity"]
    won = sum(r["won_amount"] for r in s["amount_by_source"] if r["won_amount"] is not None)
    any_known = any(r["won_amount"] is not None for r in s["amount_by_source"])
    out = [f"Won amount {_money(won if any_known else None, cur, ds_['deals'], ds_.get('amount_unknown'))} | "
           f"mean size {_fmt(ds_['mean'])} {cur} | median {_fmt(ds_['median'])} | trimmed mean "
           f"{_fmt(ds_['trimmed_mean'])}"]
    expected = _money(f["expected_won_amount"], cur, f["open_deals"], f.get("amount_unknown_deals"))
    out.append(f"Expected won amount from {f['open_deals']} open deals: {expected}"
               + (f" ({100 * f['range_level']:.0f}% range {_fmt(f['expected_won_amount_low'])}-"
                  f"{_fmt(f['expected_won_amount_high'])})" if f['expected_won_amount_low'] is not None else ""))
    out.append(f"Sales velocity {_money(v['amount_per_day'], cur, ds_['deals'])} per day = {v['opportunities']} new deals x "
               f"{_fmt(v['win_rate'], 'pct')} win rate x {_money(v['mean_won_size'], cur, ds_['deals'])} mean won "
               f"size / {_fmt(v['mean_days_to_win'], 'days')} days to win")
    cols = [("won_amount", f"won ({cur})", "amount:won_deals"), ("won_deals", "won", "num"),
            ("lost_deals", "lost", "num"), ("win_rate", "win rate", "pct"),
            ("mean_size", "mean size", "num"), ("share", "share", "pct"),
            ("open_amount", "open amount", "amount:open_deals"),
            ("won_amount_unknown", "won, amount unknown", "num"),
            ("open_amount_unknown", "open, amount unknown", "num")]
    for key in ("source", "product"):
        out += ["", f"Amount by {key}", _table(s[f"amount_by_{key}"], [(key, key, "s"), *cols])]
    return out
