"""One-line takeaways computed from the metric tables, shown under each chart of the report.

Each function takes the output of a :mod:`funnelkit.metrics` function (or the
:func:`~funnelkit.metrics.summary.metrics_summary` dict) and returns plain text. Text may contain
names from the data; :func:`show` escapes it before it becomes HTML.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"source": ["Web", "Ads"], "won_amount": [300.0, 100.0], "won_deals": [3, 1],
...                    "lost_deals": [1, 3], "win_rate": [0.75, 0.25], "mean_size": [100.0, 100.0],
...                    "share": [0.75, 0.25], "open_amount": [0.0, 0.0]})
>>> amount_by_takeaway(df, by="source", currency="EUR")
'Web brought the most won amount: 300 EUR (75% of the total) at a 75% win rate.'
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .plot import money

__all__ = [
    "show", "as_html", "pct", "headline_table", "headline_takeaway", "funnel_takeaway",
    "snapshot_takeaway", "stage_flow_takeaway", "time_in_stage_takeaway", "win_rate_by_time_takeaway",
    "days_to_close_takeaway", "deal_size_takeaway", "deal_size_trend_takeaway", "outliers_takeaway",
    "target_takeaway", "amount_by_takeaway", "product_mix_takeaway", "rep_takeaway",
    "forecast_takeaway", "calibration_takeaway", "survival_takeaway", "week_label", "won_amount",
    "previous_precedes_data",
]


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def pct(v: Any, digits: int = 0) -> str:
    """``0.314 -> '31%'``; ``-`` when missing."""
    f = _num(v)
    return "-" if f is None else f"{100 * f:.{digits}f}%"


def _days(v: Any) -> str:
    f = _num(v)
    return "-" if f is None else f"{f:.0f} days"


def as_html(text: str, label: str = "Takeaway") -> str:
    """The takeaway as an HTML paragraph, with every character from the data escaped."""
    return (f'<p class="fk-takeaway" style="margin:0.3em 0 1.2em 0;font-size:0.95em">'
            f"<b>{html.escape(label)}:</b> {html.escape(str(text))}</p>")


def show(text: str, label: str = "Takeaway"):
    """Display a takeaway in a notebook (an ``IPython.display.HTML`` of the escaped text)."""
    from IPython.display import HTML
    return HTML(as_html(text, label))


# ---------------------------------------------------------------------------------------- headline

def _won_amount(s: Mapping) -> float | None:
    rows = s.get("amount_by_source") or []
    vals = [_num(r.get("won_amount")) for r in rows]
    vals = [v for v in vals if v is not None]
    return float(sum(vals)) if rows else 0.0


def _won_deals(s: Mapping) -> int:
    return int(sum(int(r.get("won_deals") or 0) for r in s.get("amount_by_source") or []))


def _open_amount(s: Mapping) -> float | None:
    vals = [_num(r.get("open_amount")) for r in s.get("deals_per_stage") or []]
    vals = [v for v in vals if v is not None]
    return float(sum(vals)) if vals else 0.0


_HEADLINES: list[tuple[str, str, Any]] = [
    ("Won amount", "money", _won_amount),
    ("Won deals", "count", _won_deals),
    ("Win rate", "pct", lambda s: s.get("win_rate")),
    ("Mean won deal size", "money", lambda s: (s.get("deal_size") or {}).get("mean")),
    ("Median won deal size", "money", lambda s: (s.get("deal_size") or {}).get("median")),
    ("Median days to close (won)", "days",
     lambda s: ((s.get("days_to_close") or {}).get("won") or {}).get("median_days")),
    ("New deals created", "count", lambda s: (s.get("cohort") or {}).get("deals")),
    ("Open deals at period end", "count", lambda s: (s.get("forecast") or {}).get("open_deals")),
    ("Open pipeline amount", "money", _open_amount),
    ("Expected won from open deals", "money", lambda s: (s.get("forecast") or {}).get("expected_won_amount")),
    ("  80% range: at least", "money", lambda s: (s.get("forecast") or {}).get("expected_won_amount_low")),
    ("  80% range: at most", "money", lambda s: (s.get("forecast") or {}).get("expected_won_amount_high")),
    ("Sales velocity (per day)", "money", lambda s: (s.get("sales_velocity") or {}).get("amount_per_day")),
    ("Stuck deals", "count", lambda s: s.get("stuck_deals_total")),
]


def _fmt(v: Any, kind: str, currency: str) -> str:
    f = _num(v)
    if f is None:
        return "-"
    if kind == "money":
        return f"{f:,.0f} {currency}".strip()
    if kind == "pct":
        return pct(f, 1)
    if kind == "days":
        return f"{f:.1f}"
    return f"{f:,.0f}"


def _change(cur: Any, prev: Any, kind: str) -> str:
    a, b = _num(cur), _num(prev)
    if a is None or b is None:
        return "-"
    if kind == "pct":
        d = round(100 * (a - b), 1)
        return "0.0 pts" if d == 0 else f"{d:+.1f} pts"
    if b == 0:
        return "new" if a else "0%"
    d = round(100 * (a - b) / abs(b))
    return "0%" if d == 0 else f"{d:+.0f}%"


def won_amount(summary: Mapping) -> float | None:
    """The won amount of a :func:`~funnelkit.metrics.summary.metrics_summary` dict (sum over sources)."""
    return _won_amount(summary)


def previous_precedes_data(previous: Mapping | None, data_start: Any) -> bool:
    """True when the previous period ends before the data starts (no deal created before its end).

    ``previous`` is a :func:`~funnelkit.metrics.summary.metrics_summary` dict (its ``period.end`` is
    the last day); ``data_start`` the first ``created_at`` in the data.
    """
    if not previous or data_start is None or pd.isna(data_start):
        return False
    end = (previous.get("period") or {}).get("end")
    if not end:
        return False
    return pd.Timestamp(data_start) >= pd.Timestamp(end) + pd.Timedelta(days=1)


def _no_data_text(data_start: Any) -> str:
    return f"no data before {pd.Timestamp(data_start).date()}"


def headline_table(current: Mapping, previous: Mapping | None = None, currency: str = "",
                   data_start: Any = None) -> pd.DataFrame:
    """The headline numbers of a period and the change against the previous one.

    Both arguments are :func:`~funnelkit.metrics.summary.metrics_summary` dicts. Percent changes are
    relative; the win rate's change is in percentage points. With ``data_start`` (the first
    ``created_at`` in the data), a previous period that ends before the data starts is shown as
    ``no data before <date>`` with no change, instead of zeros and "new".

    Returns
    -------
    DataFrame
        ``Metric``, ``<period label>``, ``<previous label>``, ``Change`` (all text, for display).
    """
    before = previous_precedes_data(previous, data_start)
    rows = []
    for name, kind, get in _HEADLINES:
        cur = get(current)
        prev = get(previous) if previous and not before else None
        rows.append({"Metric": name, "this period": _fmt(cur, kind, currency),
                     "previous period": (_no_data_text(data_start) if before else
                                         _fmt(prev, kind, currency) if previous else "-"),
                     "Change": _change(cur, prev, kind) if previous and not before else "-"})
    out = pd.DataFrame(rows)
    labels = [(current.get("period") or {}).get("label"), ((previous or {}).get("period") or {}).get("label")]
    if labels[0]:
        out = out.rename(columns={"this period": str(labels[0])})
    if labels[1]:
        out = out.rename(columns={"previous period": str(labels[1])})
    out.index = pd.RangeIndex(len(out))
    return out


def headline_takeaway(current: Mapping, previous: Mapping | None = None, currency: str = "",
                      data_start: Any = None) -> str:
    """E.g. ``Won 1.2M EUR from 85 deals, up 12% on 2026Q1; win rate 31% (-2.1 pts).``

    With ``data_start``, a previous period before the data is not compared with (see
    :func:`headline_table`).
    """
    won, n = _won_amount(current), _won_deals(current)
    text = f"Won {money(won, currency)} from {n:,} deal{'s' if n != 1 else ''}"
    if previous_precedes_data(previous, data_start):
        label = (previous.get("period") or {}).get("label") or "the previous period"
        wr = _num(current.get("win_rate"))
        return (text + (f"; win rate {pct(wr)}" if wr is not None else "")
                + f" (no comparison with {label}: {_no_data_text(data_start)}).")
    if previous:
        pw = _won_amount(previous)
        label = (previous.get("period") or {}).get("label") or "the previous period"
        if pw:
            ch = round(100 * (won - pw) / pw)
            text += (f", unchanged on {label}" if ch == 0 else
                     f", {'up' if ch > 0 else 'down'} {abs(ch):.0f}% on {label}")
        elif won:
            text += f" (nothing was won in {label})"
    wr = _num(current.get("win_rate"))
    if wr is not None:
        text += f"; win rate {pct(wr)}"
        pwr = _num((previous or {}).get("win_rate"))
        if pwr is not None:
            text += f" ({_change(wr, pwr, 'pct')})"
    return text + "."


# ------------------------------------------------------------------------------- deals per stage

def funnel_takeaway(funnel: pd.DataFrame, bottleneck: Mapping | None = None,
                    cohort: Mapping | None = None) -> str:
    """Overall conversion of the cohort and the stage with the lowest conversion."""
    if funnel.empty or not funnel["reached"].fillna(0).any():
        return "No deals were created in this period."
    first = int(funnel["reached"].iloc[0])
    parts = []
    if cohort and cohort.get("deals") is not None:
        won = int(cohort.get("won") or 0)
        parts.append(f"Of {int(cohort['deals']):,} deals created in the period, {won:,} "
                     f"({pct(won / cohort['deals'] if cohort['deals'] else None)}) are won so far")
    else:
        parts.append(f"{first} deals entered the funnel")
    conv = funnel[funnel["reached"].fillna(0) > 0].dropna(subset=["conversion"])  # no empty stages
    entered = set(conv["stage"].astype(str))
    if (bottleneck and bottleneck.get("lowest_conversion_stage") is not None
            and str(bottleneck["lowest_conversion_stage"]) in entered):
        parts.append(f"the bottleneck is {bottleneck['lowest_conversion_stage']}, where only "
                     f"{pct(bottleneck.get('lowest_conversion'))} move on")
    elif len(conv):
        worst = conv.loc[conv["conversion"].idxmin()]
        parts.append(f"the bottleneck is {worst['stage']}, where only {pct(worst['conversion'])} move on")
    return "; ".join(parts) + "."


def week_label(at: Any) -> str:
    """The day a snapshot instant closes: ``2026-06-15 00:00`` (Sunday 24:00) -> ``'2026-06-14'``.

    Snapshots are exclusive instants (they see events before them), so the week they end is the day
    before a midnight instant; an instant during a day ends that day.
    """
    t = pd.Timestamp(at)
    return str((t - pd.Timedelta(1, "ns")).date())


def snapshot_takeaway(weekly: pd.DataFrame, bottleneck: Mapping | None = None,
                      value: str = "open_deals") -> str:
    """How the open pipeline changed from the first to the last snapshot, and the largest drop."""
    if weekly.empty:
        return "No snapshots in this period."
    tot = weekly.groupby("at")[value].sum().sort_index()
    first, last = tot.iloc[0], tot.iloc[-1]
    if round(last) == round(first):
        text = f"Open deals were {last:,.0f} at both the first and the last snapshot"
    else:
        text = (f"Open deals went from {first:,.0f} to {last:,.0f} "
                f"({'+' if last > first else ''}{last - first:,.0f}) between the first and last snapshot")
    if bottleneck and bottleneck.get("largest_drop_stage") is not None:
        week = bottleneck.get("largest_drop_week")
        wk = f" (week ending {week_label(week)})" if week is not None and pd.notna(week) else ""
        drop = _num(bottleneck.get("largest_drop"))
        text += (f"; the largest weekly drop was in {bottleneck['largest_drop_stage']}"
                 + (f", {abs(drop):,.0f} deals" if drop is not None else "") + wk)
    return text + "."


def stage_flow_takeaway(flow: pd.DataFrame, min_visits: int = 10) -> str:
    """The stage whose visits end lost most often (with the right wording), and how many are still open.

    Stages with no visits are left out; stages with fewer than ``min_visits`` visits too, unless no
    stage has that many. When losing is not the most common outcome of that stage, the sentence
    says what is.
    """
    if flow.empty or not flow["visits"].fillna(0).any():
        return "No stage visits began in this period."
    f = flow[flow["visits"] > 0].copy()
    if (f["visits"] >= min_visits).any():
        f = f[f["visits"] >= min_visits]
    outcomes = [c for c in ("advanced", "skipped ahead", "moved back", "won", "lost", "still there") if c in f]
    f["lost_share"] = f["lost"] / f["visits"]
    worst = f.loc[f["lost_share"].idxmax()]
    n = int(worst["visits"])
    still = int(flow["still there"].sum()) if "still there" in flow else 0
    tail = (f"; {still:,} of {int(flow['visits'].sum()):,} visits begun in the period are still open.")
    if not worst["lost"]:
        return "No stage visit begun in the period has ended lost so far" + tail
    largest = max(outcomes, key=lambda o: (worst[o], o == "lost")) if outcomes else "lost"
    if largest == "lost":
        text = (f"Visits to {worst['stage']} end lost more often than anything else: "
                f"{pct(worst['lost_share'])} of {n:,}, the highest lost share of any stage")
    else:
        text = (f"{worst['stage']} loses the largest share of its visits ({pct(worst['lost_share'])} of {n:,} "
                f"ended lost), though its most common outcome is \"{largest}\" "
                f"({pct(worst[largest] / worst['visits'])})")
    return text + tail


# --------------------------------------------------------------------------------- time in stage

def time_in_stage_takeaway(tis: pd.DataFrame, stuck: pd.DataFrame | None = None, currency: str = "") -> str:
    """Where deals sit longest, and how many open deals (and how much) are stuck."""
    t = tis.dropna(subset=["median_days"])
    parts = []
    if len(t):
        slow = t.loc[t["median_days"].idxmax()]
        parts.append(f"Deals sit longest in {slow['stage']} (median {_days(slow['median_days'])}, "
                     f"90th percentile {_days(slow['p90_days'])})")
    else:
        parts.append("No stage visits ended in this period")
    if stuck is not None:
        if len(stuck):
            amount = stuck["amount"].sum(min_count=1) if "amount" in stuck else None
            top = stuck["stage"].astype(str).value_counts()
            parts.append(f"{len(stuck):,} open deals{' worth ' + money(amount, currency) if _num(amount) else ''} "
                         f"are stuck past their stage's threshold, most in {top.index[0]} ({int(top.iloc[0])})")
        else:
            parts.append("no open deal is stuck past its stage's threshold")
    return "; ".join(parts) + "."


def _trend_z(won: np.ndarray, closed: np.ndarray, pos: np.ndarray) -> float:
    """Cochran-Armitage trend statistic of win shares over ordered buckets (negative: falling)."""
    n = closed.sum()
    if n <= 0:
        return 0.0
    p = won.sum() / n
    t = (pos * (won - closed * p)).sum()
    var = p * (1 - p) * ((closed * pos ** 2).sum() - (closed * pos).sum() ** 2 / n)
    return float(t / math.sqrt(var)) if var > 0 else 0.0


def _each(found: list[tuple[str, str]]) -> str:
    if len(found) == 1:
        return "from " + found[0][1]
    return ", ".join(f"{s} from {t}" for s, t in found)


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def win_rate_by_time_takeaway(data: pd.DataFrame, min_closed: int = 5, min_gap: float = 0.10,
                              z: float = 1.96) -> str:
    """Whether win rates fall (or rise) with time in stage, stage by stage, as the chart shows them.

    Per stage, only buckets with at least ``min_closed`` closed deals count (the points
    :func:`~funnelkit.plot.win_rate_by_time_plot` draws). A stage shows a trend only when the
    win rate changes by at least ``min_gap`` (10 points) from its first to its last such bucket
    *and* a Cochran-Armitage trend test over all its buckets is beyond ``z`` (5% two-sided): a
    steady, sizable change that chance alone would rarely give. Otherwise the text says there is no
    clear trend. The percentages quoted are points of the chart.
    """
    if data.empty or not data["deals"].fillna(0).any():
        return "Too few closed deals to relate time in stage to winning."
    order = [str(c) for c in data["bucket"].cat.categories] if isinstance(
        data["bucket"].dtype, pd.CategoricalDtype) else list(dict.fromkeys(data["bucket"].astype(str)))
    stages = ([str(c) for c in data["stage"].cat.categories] if isinstance(data["stage"].dtype, pd.CategoricalDtype)
              else list(dict.fromkeys(data["stage"].astype(str))))
    falls, rises, flat = [], [], []
    for s in stages:
        d = data[data["stage"].astype(str) == s].assign(_b=lambda x: x["bucket"].astype(str))
        d = d.groupby("_b")[["won", "lost"]].sum().reindex(order).dropna()
        closed = d["won"] + d["lost"]
        if "deals" in data:  # the chart filters on the deals column: use the same points
            n = data[data["stage"].astype(str) == s].assign(_b=lambda x: x["bucket"].astype(str)) \
                .groupby("_b")["deals"].sum().reindex(d.index)
            keep = n >= max(min_closed, 1)
        else:
            keep = closed >= max(min_closed, 1)
        d, closed = d[keep & (closed > 0)], closed[keep & (closed > 0)]
        if len(d) < 2:
            continue
        rate = d["won"] / closed
        pos = np.array([order.index(b) for b in d.index], dtype=float)
        stat = _trend_z(d["won"].to_numpy(float), closed.to_numpy(float), pos)
        first, last = rate.iloc[0], rate.iloc[-1]
        desc = (s, f"{pct(first)} ({d.index[0]}) to {pct(last)} ({d.index[-1]})")
        if first - last >= min_gap and stat <= -z:
            falls.append(desc)
        elif last - first >= min_gap and stat >= z:
            rises.append(desc)
        else:
            flat.append(s)
    if not (falls or rises or flat):
        return "Too few closed deals to relate time in stage to winning."
    parts = []
    if falls:
        parts.append(f"In {_join([s for s, _ in falls])}, the longer deals sat, the less often they were won: "
                     + _each(falls))
    if rises:
        parts.append(f"in {_join([s for s, _ in rises])}, deals that sat longer were won more often: "
                     + _each(rises))
    if not parts:
        return ("Win rates show no clear trend with time in stage (no stage has a steady change of "
                f"{100 * min_gap:.0f}+ points beyond chance).")
    if flat:
        parts.append(f"no clear trend in {_join(flat)}")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


# --------------------------------------------------------------------------------- days to close

def days_to_close_takeaway(dtc: pd.DataFrame, survival: Any = None) -> str:
    """Median days to close for won and lost deals (plus, with ``survival``, :func:`survival_takeaway`)."""
    def med(status):
        r = dtc[dtc["status"].astype(str) == status]
        return (_num(r["median_days"].iloc[0]), int(r["deals"].iloc[0])) if len(r) else (None, 0)
    (w, nw), (lo, nl) = med("won"), med("lost")
    if w is not None or lo is not None:
        text = f"Won deals closed in a median {_days(w)} (n={nw:,}), lost deals in {_days(lo)} (n={nl:,})"
    else:
        text = "No deals closed in this period"
    if survival is not None:
        s = survival_takeaway(survival)
        text += "; " + s[0].lower() + s[1:-1]
    return text + "."


def survival_takeaway(survival: Any) -> str:
    """The censoring-aware close times of the cohort (Kaplan-Meier): median and share closed by 30/90 days."""
    m = _num(getattr(survival, "median_days", None))
    p30 = _num(survival.p_close_within(30)) if hasattr(survival, "p_close_within") else None
    p90 = _num(survival.p_close_within(90)) if hasattr(survival, "p_close_within") else None
    s = "Counting open deals too, "
    s += f"half close within {_days(m)}" if m is not None else "fewer than half have closed so far"
    if p30 is not None and p90 is not None:
        s += f", {pct(p30)} within 30 days and {pct(p90)} within 90"
    return s + "."


# ------------------------------------------------------------------------------------- deal size

def deal_size_takeaway(size: Mapping, currency: str = "") -> str:
    """Mean vs median vs trimmed mean of won deals: how much a few big deals pull the mean."""
    n = int(size.get("deals") or 0)
    mean, median, trimmed = (_num(size.get(k)) for k in ("mean", "median", "trimmed_mean"))
    if not n or mean is None or median is None:
        return "No won deals with a known amount in this period."
    text = (f"{n:,} won deals: median {money(median, currency)}, mean {money(mean, currency)}, "
            f"10% trimmed mean {money(trimmed, currency)}")
    if median > 0 and mean > 1.2 * median:
        text += (f"; the mean is {100 * (mean / median - 1):.0f}% above the median, pulled up by a few "
                 "big deals, so plan with the trimmed mean or the median")
    elif median > 0 and mean < median / 1.2:
        text += "; the mean is below the median, pulled down by a few small deals"
    else:
        text += "; mean and median agree, so a few big deals do not distort the average"
    return text + "."


def deal_size_trend_takeaway(monthly: pd.DataFrame, currency: str = "") -> str:
    """The monthly median won deal size over every month of the period, not just the first and last.

    With up to four months each month is named; with more, the range and the direction. A direction
    ("rose"/"fell") is claimed only when every month moved the same way; otherwise the text gives the
    range and says there is no steady trend.
    """
    m = monthly.dropna(subset=["median"])
    if len(m) < 2:
        return "Too few months with won deals to show a trend."
    v = m["median"].to_numpy(dtype=float)
    months = m["month"].astype(str).tolist()
    steps = np.diff(v)
    lo, hi = int(np.argmin(v)), int(np.argmax(v))
    if (steps > 0).all():
        how = "rose every month"
    elif (steps < 0).all():
        how = "fell every month"
    elif v.min() == v.max():
        how = "held steady"
    else:
        how = "had no steady trend"
    if len(m) <= 4:
        each = ", ".join(f"{money(x, currency)} in {mo}" for x, mo in zip(v, months))
        text = f"The monthly median won deal {how}: {each}"
    else:
        text = (f"The monthly median won deal {how} over {len(m)} months, from {money(v[0], currency)} in "
                f"{months[0]} to {money(v[-1], currency)} in {months[-1]}")
    if how == "had no steady trend":
        text += (f" (lowest {money(v[lo], currency)} in {months[lo]}, highest {money(v[hi], currency)} "
                 f"in {months[hi]})") if len(m) > 4 else ""
    return text + "."


def outliers_takeaway(outliers: pd.DataFrame, total_won: float | None = None, currency: str = "") -> str:
    """How many outlier deals there are and what share of the won amount they carry."""
    if outliers is None or outliers.empty:
        return "No won deal is an outlier (beyond 1.5 IQR of log amount)."
    amt = outliers["amount"].sum(min_count=1)
    share = f" ({pct(amt / total_won)} of the won amount)" if _num(total_won) and _num(amt) else ""
    return (f"{len(outliers)} outlier deal{'s' if len(outliers) != 1 else ''} "
            f"(beyond 1.5 IQR of log amount) total {money(amt, currency)}{share}.")


def target_takeaway(plan: Mapping | None, currency: str = "") -> str:
    """What the target planner says, in one sentence."""
    if not plan:
        return "No revenue target given (set the `target` parameter)."
    target = _num(plan.get("target"))
    needed = _num(plan.get("deals_needed"))
    work = _num(plan.get("deals_to_work"))
    if needed is None:
        return f"Cannot plan for {money(target, currency)}: no won deals with a known amount in this period."
    text = f"To win {money(target, currency)} at this period's mean deal size, close about {math.ceil(needed):,} deals"
    if work is not None:
        text += f"; at this period's win rate that means working about {math.ceil(work):,} deals to a close"
    return text + "."


# ------------------------------------------------------------------------- amount by source/product

def amount_by_takeaway(data: pd.DataFrame, by: str = "source", currency: str = "") -> str:
    """The group bringing the most won amount, and the one with the best win rate if different."""
    d = data[data["won_amount"].fillna(0) > 0]
    if d.empty:
        return f"Nothing was won in this period, by any {by}."
    top = d.sort_values("won_amount", ascending=False).iloc[0]
    text = (f"{top[by]} brought the most won amount: {money(top['won_amount'], currency)} "
            f"({pct(top['share'])} of the total) at a {pct(top['win_rate'])} win rate")
    closed = data[(data["won_deals"] + data["lost_deals"]) >= 5].dropna(subset=["win_rate"])
    if len(closed):
        best = closed.sort_values("win_rate", ascending=False).iloc[0]
        if str(best[by]) != str(top[by]) and (pd.isna(top["win_rate"]) or best["win_rate"] > top["win_rate"]):
            text += f"; {best[by]} converts best ({pct(best['win_rate'])} of {int(best['won_deals'] + best['lost_deals'])} closed)"
    return text + "."


def product_mix_takeaway(data: pd.DataFrame, by: str = "product", currency: str = "") -> str:
    """Whether many small contracts beat a few big ones (or the other way round)."""
    d = data[data["won_deals"].fillna(0) > 0].dropna(subset=["mean_size"])
    if d.empty:
        return f"Nothing was won in this period, by any {by}."
    if len(d) == 1:
        r = d.iloc[0]
        return f"All won amount came from {r[by]}: {int(r['won_deals'])} deals averaging {money(r['mean_size'], currency)}."
    top = d.sort_values(["won_amount", "won_deals"], ascending=False).iloc[0]
    many = d.sort_values(["won_deals", "won_amount"], ascending=False).iloc[0]
    big = d.sort_values(["mean_size", "won_amount"], ascending=False).iloc[0]

    def desc(r):
        return (f"{r[by]} ({money(r['won_amount'], currency)} from {int(r['won_deals'])} deals averaging "
                f"{money(r['mean_size'], currency)})")
    if str(top[by]) == str(many[by]) and str(top[by]) != str(big[by]):
        return f"Many small contracts beat a few big ones: {desc(top)} out-earned {desc(big)}."
    if str(top[by]) == str(big[by]) and str(top[by]) != str(many[by]):
        return f"A few big contracts beat many small ones: {desc(top)} out-earned {desc(many)}."
    if str(top[by]) == str(many[by]) == str(big[by]):
        return f"{desc(top)} leads on total won amount, number of deals and deal size alike."
    return (f"{desc(top)} brought the most won amount; {many[by]} had the most won deals "
            f"({int(many['won_deals']):,}) and {big[by]} the largest mean size ({money(big['mean_size'], currency)}).")


def rep_takeaway(data: pd.DataFrame, currency: str = "", min_closed: int = 5) -> str:
    """Top rep by won amount and the spread of win rates among reps with enough closed deals."""
    d = data[data["won_amount"].fillna(0) > 0]
    if d.empty:
        return "No rep won a deal in this period."
    top = d.sort_values("won_amount", ascending=False).iloc[0]
    text = f"{top['owner']} won the most ({money(top['won_amount'], currency)}, {int(top['won_deals'])} deals)"
    closed = data[(data["won_deals"] + data["lost_deals"]) >= min_closed].dropna(subset=["win_rate"])
    if len(closed) >= 2:
        hi = closed.loc[closed["win_rate"].idxmax()]
        lo = closed.loc[closed["win_rate"].idxmin()]
        text += (f"; win rates range from {pct(lo['win_rate'])} ({lo['owner']}) to {pct(hi['win_rate'])} "
                 f"({hi['owner']}) among reps with at least {min_closed} closed deals")
    return text + "."


# ---------------------------------------------------------------------------------------- forecast

def forecast_takeaway(forecast: pd.DataFrame, currency: str = "") -> str:
    """Expected won amount from the open deals, against their open amount, and where it sits."""
    if forecast is None or forecast.empty:
        return "No open deals to forecast."
    exp = forecast["expected_won_amount"].sum(min_count=1)
    amt = forecast["amount"].sum(min_count=1)
    text = f"The {len(forecast):,} open deals are expected to bring {money(exp, currency)}"
    if _num(amt):
        text += f" ({pct(exp / amt)} of their {money(amt, currency)} open amount)"
    from .metrics.forecast import forecast_range
    r = forecast_range(forecast, 0.8)
    if r["deals"] and r["high"] > r["low"]:
        text += (f"; 8 times in 10 the won amount lands between {money(r['low'], currency)} and "
                 f"{money(r['high'], currency)}")
    by = forecast.groupby(forecast["stage"].astype(str))["expected_won_amount"].sum()
    if len(by) and by.max() > 0:
        text += f"; most from {by.idxmax()} ({money(by.max(), currency)})"
    return text + "."


def calibration_takeaway(backtest: Any) -> str:
    """Brier score of the forecast against the stage-only baseline (lower is better)."""
    brier, base = _num(getattr(backtest, "brier", None)), _num(getattr(backtest, "baseline_brier", None))
    if brier is None:
        return "Not enough closed deals before the backtest dates to score the forecast."
    text = f"In the backtest the forecast's Brier score is {brier:.3f}"
    if base is not None:
        if brier < base:
            text += f", better than the stage-only baseline's {base:.3f} ({100 * (base - brier) / base:.0f}% lower)"
        else:
            text += f", not better than the stage-only baseline's {base:.3f}"
    return text + " (0 is perfect; lower is better)."

