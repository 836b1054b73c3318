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

from . import formatting
from .formatting import finite as _num
from .contract import NOT_SET
from .dataset import label_counts, label_text
from .i18n import N_, _, ngettext
from .plot import BY_WORDS, display_value, money

__all__ = [
    "show", "as_html", "pct", "headline_table", "headline_takeaway", "funnel_takeaway",
    "snapshot_takeaway", "stage_flow_takeaway", "time_in_stage_takeaway", "win_rate_by_time_takeaway",
    "days_to_close_takeaway", "deal_size_takeaway", "deal_size_trend_takeaway", "outliers_takeaway",
    "target_takeaway", "amount_by_takeaway", "product_mix_takeaway", "rep_takeaway",
    "forecast_takeaway", "calibration_takeaway", "survival_takeaway", "week_label", "won_amount",
    "previous_precedes_data", "pushes_takeaway", "waterfall_takeaway",
]


def pct(v: Any, digits: int = 0) -> str:
    """``0.314 -> '31%'``; ``-`` when missing; in the locale of :mod:`funnelkit.formatting`."""
    return formatting.percent(_num(v), digits)


def _days(v: Any) -> str:
    return formatting.days(_num(v))


def as_html(text: str, label: str | None = None) -> str:
    """The takeaway as an HTML paragraph, with every character from the data escaped; ``label``
    (default ``Takeaway``, translated) before it."""
    head = _("{label}:").format(label=_("Takeaway") if label is None else label)
    return (f'<p class="fk-takeaway" style="margin:0.3em 0 1.2em 0;font-size:0.95em">'
            f"<b>{html.escape(head)}</b> {html.escape(str(text))}</p>")


def show(text: str, label: str | None = None):
    """Display a takeaway in a notebook (an ``IPython.display.HTML`` of the escaped text)."""
    from IPython.display import HTML
    return HTML(as_html(text, label))


# ---------------------------------------------------------------------------------------- headline

def _won_amount(s: Mapping) -> float | None:
    """Sum of the known won amounts; None when won deals exist but none has a known amount."""
    rows = [r for r in s.get("amount_by_source") or [] if int(r.get("won_deals", 1) or 0)]
    known = [v for v in (_num(r.get("won_amount")) for r in rows) if v is not None]
    if not known and rows:
        return None
    return float(sum(known))


def _won_deals(s: Mapping) -> int:
    return int(sum(int(r.get("won_deals") or 0) for r in s.get("amount_by_source") or []))


def _open_amount(s: Mapping) -> float | None:
    """Sum of the known open amounts; None when open deals exist but none has a known amount."""
    rows = [r for r in s.get("deals_per_stage") or [] if int(r.get("open_deals", 1) or 0)]  # empty stages add nothing
    known = [v for v in (_num(r.get("open_amount")) for r in rows) if v is not None]
    if not known and rows:
        return None
    return float(sum(known))


def _coverage(s: Mapping, key: str) -> tuple[int, int, bool]:
    """(deals, of unknown amount, leans on hindsight) behind an amount of the summary ``s``."""
    cov = s.get("amount_coverage") or {}
    if key == "forecast":
        f = s.get("forecast") or {}
        return (int(f.get("open_deals") or 0), int(f.get("amount_unknown_deals") or 0),
                bool(cov.get("hindsight")))
    c = cov.get(key) or {}
    return int(c.get("deals") or 0), int(c.get("amount_unknown") or 0), key == "open" and bool(cov.get("hindsight"))


#: (name, kind, value, which deals the amount covers: "won", "open", "forecast" or None for counts)
_HEADLINES: list[tuple[str, str, Any, str | None]] = [
    (N_("Won amount"), "money", _won_amount, "won"),
    (N_("Won deals"), "count", _won_deals, None),
    (N_("Win rate"), "pct", lambda s: s.get("win_rate"), None),
    (N_("Mean won deal size"), "money", lambda s: (s.get("deal_size") or {}).get("mean"), "won"),
    (N_("Median won deal size"), "money", lambda s: (s.get("deal_size") or {}).get("median"), "won"),
    (N_("Median days to close (won)"), "days",
     lambda s: ((s.get("days_to_close") or {}).get("won") or {}).get("median_days"), None),
    (N_("New deals created"), "count", lambda s: (s.get("cohort") or {}).get("deals"), None),
    (N_("Open deals at period end"), "count", lambda s: (s.get("forecast") or {}).get("open_deals"), None),
    (N_("Open pipeline amount"), "money", _open_amount, "open"),
    (N_("Expected won from open deals"), "money",
     lambda s: (s.get("forecast") or {}).get("expected_won_amount"), "forecast"),
    (N_("  80% range: at least"), "money",
     lambda s: (s.get("forecast") or {}).get("expected_won_amount_low"), "forecast"),
    (N_("  80% range: at most"), "money",
     lambda s: (s.get("forecast") or {}).get("expected_won_amount_high"), "forecast"),
    (N_("Sales velocity (per day)"), "money", lambda s: (s.get("sales_velocity") or {}).get("amount_per_day"), "won"),
    (N_("Stuck deals"), "count", lambda s: s.get("stuck_deals_total"), None),
]


def _fmt(v: Any, kind: str, currency: str) -> str:
    f = _num(v)
    if kind == "money":
        return formatting.money(f, currency)
    if kind == "pct":
        return pct(f, 1)
    if kind == "days":
        return formatting.number(f, 1, grouping=False)
    return formatting.number(f)


def _amount_cell(v: Any, currency: str, cover: tuple[int, int, bool] | None) -> str:
    """An amount with what it rests on: ``unknown (all 12 deals)``, ``1,200 EUR (3 of 10 deals
    unknown, 30%)``, ``… (hindsight)``."""
    n, k, hindsight = cover or (0, 0, False)
    if _num(v) is None:
        return _("unknown (all {n} deals)").format(n=formatting.number(n)) if n and k == n else "-"
    text = _fmt(v, "money", currency)
    if k:
        text += " " + _("({k} of {n} deals unknown, {pct})").format(
            k=formatting.number(k), n=formatting.number(n), pct=pct(k / n))
    return text + (" " + _("(hindsight)") if hindsight else "")


def _change(cur: Any, prev: Any, kind: str) -> str:
    a, b = _num(cur), _num(prev)
    if a is None or b is None:
        return "-"
    if kind == "pct":
        d = round(100 * (a - b), 1)
        return _("{points} pts").format(points=_signed(d, 1))
    if b == 0:
        return _("new") if a else pct(0)
    d = round(100 * (a - b) / abs(b))
    return pct(0) if d == 0 else _signed(d, 0, "%")


def _signed(v: float, decimals: int, unit: str = "") -> str:
    """``+2.1``, ``-12%``, ``0.0``: a change with its sign, in the locale of :mod:`funnelkit.formatting`."""
    if v == 0:
        return formatting.number(0, decimals)
    text = formatting.percent(v / 100, decimals) if unit == "%" else formatting.number(abs(v), decimals)
    if unit == "%":
        return text if v < 0 else "+" + text
    return ("+" if v > 0 else "-") + text


def _amount_change(cur: Any, prev: Any, covers: list[tuple[int, int, bool]]) -> str:
    """The change of an amount, not computed against an unknown or a hindsight amount."""
    if any(n and k == n for n, k, _h in covers) and (_num(cur) is None or _num(prev) is None):
        return _("not computed (unknown)")
    if any(h for _n, _k, h in covers):
        return _("not computed (hindsight)")
    text = _change(cur, prev, "money")
    if text != "-" and any(k for _n, k, _h in covers):
        text += " " + _("(amounts partly unknown)")
    return text


def won_amount(summary: Mapping) -> float | None:
    """The won amount of a :func:`~funnelkit.metrics.summary.metrics_summary` dict (sum over sources).

    None when won deals exist but none has a known amount (unknown, not 0).
    """
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
    return _("no data before {date}").format(date=formatting.date(data_start))


def _blocks(s: Mapping | None) -> list[tuple[str, Mapping]]:
    """The amount blocks of a summary: itself, or one per currency (``by_currency``)."""
    if not s:
        return []
    by = s.get("by_currency")
    return list(by.items()) if by else [("", s)]


def headline_table(current: Mapping, previous: Mapping | None = None, currency: str = "",
                   data_start: Any = None) -> pd.DataFrame:
    """The headline numbers of a period and the change against the previous one.

    Both arguments are :func:`~funnelkit.metrics.summary.metrics_summary` dicts. Percent changes are
    relative; the win rate's change is in percentage points. With ``data_start`` (the first
    ``created_at`` in the data), a previous period that ends before the data starts is shown as
    ``no data before <date>`` with no change, instead of zeros and "new".

    Amounts are never shown as 0 when they are unknown: an amount over deals none of which has a
    known amount reads ``unknown (all N deals)``; one over partly unknown amounts says how many
    deals and what share are unknown; one that leans on hindsight (see
    :func:`~funnelkit.metrics.summary.amount_coverage`) is marked ``(hindsight)``. Changes against
    an unknown or a hindsight amount are not computed. With several currencies, each amount row is
    given once per currency (``Won amount (EUR)``, ...), never summed.

    Returns
    -------
    DataFrame
        ``Metric``, ``<period label>``, ``<previous label>``, ``Change`` (all text, for display).
    """
    before = previous_precedes_data(previous, data_start)
    prev_blocks = dict(_blocks(previous)) if previous and not before else {}
    rows = []
    for name, kind, get, cover in _HEADLINES:
        if kind != "money":
            cur, prev = get(current), (get(previous) if previous and not before else None)
            rows.append({"Metric": _(name), "this period": _fmt(cur, kind, currency),
                         "previous period": (_no_data_text(data_start) if before else
                                             _fmt(prev, kind, currency) if previous else "-"),
                         "Change": _change(cur, prev, kind) if previous and not before else "-"})
            continue
        for code, block in _blocks(current):
            unit = code or currency
            pblock = prev_blocks.get(code)
            cur, c_cov = get(block), _coverage(block, cover)
            prev, p_cov = (get(pblock), _coverage(pblock, cover)) if pblock is not None else (None, None)
            rows.append({"Metric": f"{_(name)} ({code})" if code else _(name),
                         "this period": _amount_cell(cur, unit, c_cov),
                         "previous period": (_no_data_text(data_start) if before else
                                             _amount_cell(prev, unit, p_cov) if pblock is not None else "-"),
                         "Change": _amount_change(cur, prev, [c_cov, p_cov]) if pblock is not None else "-"})
    out = pd.DataFrame(rows)
    labels = [(current.get("period") or {}).get("label"), ((previous or {}).get("period") or {}).get("label")]
    out = out.rename(columns={"Metric": _("Metric"), "Change": _("Change"),
                              "this period": str(labels[0]) if labels[0] else _("this period"),
                              "previous period": str(labels[1]) if labels[1] else _("previous period")})
    out.index = pd.RangeIndex(len(out))
    return out


def _won_text(s: Mapping, currency: str) -> str:
    """``Won 1.2M EUR from 85 deals`` (per currency with several), honest about unknown amounts."""
    n = _won_deals(s)
    parts, all_unknown = [], True
    for code, block in _blocks(s):
        won = _won_amount(block)
        _d, k, _h = _coverage(block, "won")
        if won is None:
            parts.append(_("an unknown amount in {currency}").format(currency=code) if code else
                         _("an unknown amount"))
        else:
            all_unknown = False
            parts.append(money(won, code or currency) + (" " + ngettext(
                "(plus {k} deal of unknown amount)", "(plus {k} deals of unknown amount)", k).format(
                    k=formatting.number(k)) if k else ""))
    if len(parts) == 1 and all_unknown:
        return ngettext("Won {n} deal, all of unknown amount", "Won {n} deals, all of unknown amount",
                        n).format(n=formatting.number(n))
    return ngettext("Won {amounts} from {n} deal", "Won {amounts} from {n} deals", n).format(
        amounts=_join(parts), n=formatting.number(n))


def _stop(text: str) -> str:
    """A sentence ended with the language's full stop."""
    return text + _(".")


def _clauses(parts: list[str]) -> str:
    """Clauses of one sentence, each a whole message, separated as the language does (``; ``)."""
    return _("; ").join(parts)


def headline_takeaway(current: Mapping, previous: Mapping | None = None, currency: str = "",
                      data_start: Any = None) -> str:
    """E.g. ``Won 1.2M EUR from 85 deals, up 12% on 2026Q1; win rate 31% (-2.1 pts).``

    With ``data_start``, a previous period before the data is not compared with (see
    :func:`headline_table`). An unknown won amount is said to be unknown and not compared; with
    several currencies, the won amount is given per currency and not compared.
    """
    won = _won_amount(current)
    text = _won_text(current, currency)
    wr = _num(current.get("win_rate"))
    if previous_precedes_data(previous, data_start):
        label = (previous.get("period") or {}).get("label") or _("the previous period")
        if wr is not None:
            text = _clauses([text, _("win rate {pct}").format(pct=pct(wr))])
        return _stop(text + " " + _("(no comparison with {label}: {reason})").format(
            label=label, reason=_no_data_text(data_start)))
    if previous and "by_currency" not in current:
        pw = _won_amount(previous)
        label = (previous.get("period") or {}).get("label") or _("the previous period")
        if won is None or pw is None:
            pass                                # no change against an unknown
        elif pw:
            ch = round(100 * (won - pw) / pw)
            text = (_("{text}, unchanged on {label}") if ch == 0 else
                    _("{text}, up {pct} on {label}") if ch > 0 else
                    _("{text}, down {pct} on {label}")).format(text=text, pct=pct(abs(ch) / 100), label=label)
        elif won:
            text += " " + (_("(won amount 0 in {label})") if _won_deals(previous) else
                           _("(nothing was won in {label})")).format(label=label)
    if wr is not None:
        rate = _("win rate {pct}").format(pct=pct(wr))
        pwr = _num((previous or {}).get("win_rate"))
        if pwr is not None:
            rate = _("{rate} ({change})").format(rate=rate, change=_change(wr, pwr, "pct"))
        text = _clauses([text, rate])
    return _stop(text)


# ------------------------------------------------------------------------------- deals per stage

def funnel_takeaway(funnel: pd.DataFrame, bottleneck: Mapping | None = None,
                    cohort: Mapping | None = None, unvisited: list[str] | tuple[str, ...] = (),
                    max_open_share: float = 0.5) -> str:
    """Overall conversion of the cohort and the stage with the lowest conversion.

    Stages in ``unvisited`` (no deal ever entered them, :func:`~funnelkit.metrics.stages.unvisited_stages`)
    are left out, and the text says so. The lowest conversion is called the bottleneck only when at
    most ``max_open_share`` of the cohort is still open; otherwise the conversions are provisional
    (the open deals may still move on) and the text says it is too early to name one.
    """
    gone = [str(s) for s in unvisited]
    note = (" " + ngettext("({stages}: no deal ever entered it, so it is left out)",
                           "({stages}: no deal ever entered them, so they are left out)",
                           len(gone)).format(stages=_join(gone))) if gone else ""
    funnel = funnel[~funnel["stage"].astype(str).isin(gone)]
    if funnel.empty or not funnel["reached"].fillna(0).any():
        return _stop(_("No deals were created in this period") + note)
    first = int(funnel["reached"].iloc[0])
    parts = []
    open_share = None
    if cohort and cohort.get("deals"):
        n, won, still = int(cohort["deals"]), int(cohort.get("won") or 0), int(cohort.get("open") or 0)
        open_share = still / n
        num = formatting.number
        if still:
            parts.append(_("Of {n} deals created in the period, {won} ({won_pct}) are won so far and {open} "
                           "({open_pct}) are still open").format(n=num(n), won=num(won), won_pct=pct(won / n),
                                                                 open=num(still), open_pct=pct(open_share)))
        else:
            parts.append(_("Of {n} deals created in the period, {won} ({won_pct}) are won so far").format(
                n=num(n), won=num(won), won_pct=pct(won / n)))
    else:
        parts.append(_("{n} deals entered the funnel").format(n=formatting.number(first)))
    conv = funnel[funnel["reached"].fillna(0) > 0].dropna(subset=["conversion"])  # no empty stages
    entered = set(conv["stage"].astype(str))
    if (bottleneck and bottleneck.get("lowest_conversion_stage") is not None
            and str(bottleneck["lowest_conversion_stage"]) in entered):
        stage, rate = bottleneck["lowest_conversion_stage"], bottleneck.get("lowest_conversion")
    elif len(conv):
        worst = conv.loc[conv["conversion"].idxmin()]
        stage, rate = worst["stage"], worst["conversion"]
    else:
        stage = None
    if stage is not None:
        if open_share is not None and open_share > max_open_share:
            parts.append(_("too early to name a bottleneck: the lowest conversion so far, {pct} at {stage}, "
                           "counts deals still open there as not moving on").format(pct=pct(rate), stage=stage))
        else:
            parts.append(_("the bottleneck is {stage}, where only {pct} move on").format(stage=stage, pct=pct(rate)))
    return _stop(_clauses(parts) + note)


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
        return _stop(_("No snapshots in this period"))
    tot = weekly.groupby("at")[value].sum().sort_index()
    first, last = tot.iloc[0], tot.iloc[-1]
    num = formatting.number
    if round(last) == round(first):
        text = _("Open deals were {n} at both the first and the last snapshot").format(n=num(last))
    else:
        text = _("Open deals went from {first} to {last} ({change}) between the first and last snapshot").format(
            first=num(first), last=num(last), change=("+" if last > first else "") + num(last - first))
    if bottleneck and bottleneck.get("largest_drop_stage") is not None:
        week = bottleneck.get("largest_drop_week")
        drop = _num(bottleneck.get("largest_drop"))
        stage = bottleneck["largest_drop_stage"]
        if drop is not None:
            clause = _("the largest weekly drop was in {stage}, {n} deals").format(stage=stage, n=num(abs(drop)))
        else:
            clause = _("the largest weekly drop was in {stage}").format(stage=stage)
        if week is not None and pd.notna(week):
            clause += " " + _("(week ending {date})").format(date=formatting.date(week_label(week)))
        text = _clauses([text, clause])
    return _stop(text)


def stage_flow_takeaway(flow: pd.DataFrame, min_visits: int = 10) -> str:
    """The stage whose visits end lost most often (with the right wording), and how many are still open.

    Stages with no visits are left out; stages with fewer than ``min_visits`` visits too, unless no
    stage has that many. When losing is not the most common outcome of that stage, the sentence
    says what is.
    """
    if flow.empty or not flow["visits"].fillna(0).any():
        return _stop(_("No stage visits began in this period"))
    f = flow[flow["visits"] > 0].copy()
    if (f["visits"] >= min_visits).any():
        f = f[f["visits"] >= min_visits]
    outcomes = [c for c in ("advanced", "skipped ahead", "moved back", "won", "lost", "still there") if c in f]
    f["lost_share"] = f["lost"] / f["visits"]
    worst = f.loc[f["lost_share"].idxmax()]
    n = int(worst["visits"])
    still = int(flow["still there"].sum()) if "still there" in flow else 0
    num = formatting.number
    tail = _("{still} of {visits} visits begun in the period are still open").format(
        still=num(still), visits=num(int(flow["visits"].sum())))
    if not worst["lost"]:
        return _stop(_clauses([_("No stage visit begun in the period has ended lost so far"), tail]))
    largest = max(outcomes, key=lambda o: (worst[o], o == "lost")) if outcomes else "lost"
    if largest == "lost":
        text = _("Visits to {stage} end lost more often than anything else: {pct} of {n}, the highest lost "
                 "share of any stage").format(stage=worst["stage"], pct=pct(worst["lost_share"]), n=num(n))
    else:
        from .plot import OUTCOME_LABELS
        text = _("{stage} loses the largest share of its visits ({pct} of {n} ended lost), though its most "
                 "common outcome is \"{outcome}\" ({outcome_pct})").format(
                     stage=worst["stage"], pct=pct(worst["lost_share"]), n=num(n),
                     outcome=_(OUTCOME_LABELS.get(largest, largest)), outcome_pct=pct(worst[largest] / worst["visits"]))
    return _stop(_clauses([text, tail]))


# --------------------------------------------------------------------------------- time in stage

def time_in_stage_takeaway(tis: pd.DataFrame, stuck: pd.DataFrame | None = None, currency: str = "") -> str:
    """Where deals sit longest, and how many open deals (and how much) are stuck."""
    t = tis.dropna(subset=["median_days"])
    parts = []
    num = formatting.number
    if len(t):
        slow = t.loc[t["median_days"].idxmax()]
        parts.append(_("Deals sit longest in {stage} (median {median}, 90th percentile {p90})").format(
            stage=slow["stage"], median=_days(slow["median_days"]), p90=_days(slow["p90_days"])))
    else:
        parts.append(_("No stage visits ended in this period"))
    if stuck is not None:
        if len(stuck):
            amount = stuck["amount"].sum(min_count=1) if "amount" in stuck else None
            unknown = int(stuck["amount"].isna().sum()) if "amount" in stuck else 0
            top = label_counts(stuck["stage"])
            args = dict(n=num(len(stuck)), stage=top.index[0], in_stage=num(int(top.iloc[0])),
                        amount=money(amount, currency), unknown=num(unknown))
            if _num(amount) and unknown:
                text = _("{n} open deals worth {amount} ({unknown} more of unknown amount) are stuck past their "
                         "stage's threshold, most in {stage} ({in_stage})")
            elif _num(amount):
                text = _("{n} open deals worth {amount} are stuck past their stage's threshold, most in {stage} "
                         "({in_stage})")
            elif unknown == len(stuck):
                text = _("{n} open deals of unknown amount are stuck past their stage's threshold, most in "
                         "{stage} ({in_stage})")
            else:
                text = _("{n} open deals are stuck past their stage's threshold, most in {stage} ({in_stage})")
            parts.append(text.format(**args))
        else:
            parts.append(_("no open deal is stuck past its stage's threshold"))
    return _stop(_clauses(parts))


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
        return _("from {change}").format(change=found[0][1])
    return _(", ").join(_("{stage} from {change}").format(stage=s, change=t) for s, t in found)


def _join(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c`` (in the report's language)."""
    names = [str(n) for n in names]
    if len(names) == 1:
        return names[0]
    return _("{names} and {last}").format(names=_(", ").join(names[:-1]), last=names[-1])


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
        return _stop(_("Too few closed deals to relate time in stage to winning"))
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
        desc = (s, _("{first} ({first_bucket}) to {last} ({last_bucket})").format(
            first=pct(first), first_bucket=display_value("bucket", d.index[0]), last=pct(last),
            last_bucket=display_value("bucket", d.index[-1])))
        if first - last >= min_gap and stat <= -z:
            falls.append(desc)
        elif last - first >= min_gap and stat >= z:
            rises.append(desc)
        else:
            flat.append(s)
    if not (falls or rises or flat):
        return _stop(_("Too few closed deals to relate time in stage to winning"))
    parts = []
    if falls:
        parts.append(_("In {stages}, the longer deals sat, the less often they were won: {changes}").format(
            stages=_join([s for s, _c in falls]), changes=_each(falls)))
    if rises:
        parts.append((_("In {stages}, deals that sat longer were won more often: {changes}") if not parts else
                      _("in {stages}, deals that sat longer were won more often: {changes}")).format(
            stages=_join([s for s, _c in rises]), changes=_each(rises)))
    if not parts:
        return _stop(_("Win rates show no clear trend with time in stage (no stage has a steady change of "
                       "{points}+ points beyond chance)").format(points=f"{100 * min_gap:.0f}"))
    if flat:
        parts.append(_("no clear trend in {stages}").format(stages=_join(flat)))
    return _stop(_clauses(parts))


# --------------------------------------------------------------------------------- days to close

def days_to_close_takeaway(dtc: pd.DataFrame, survival: Any = None) -> str:
    """Median days to close for won and lost deals (plus, with ``survival``, :func:`survival_takeaway`)."""
    def med(status):
        r = dtc[dtc["status"].astype(str) == status]
        return (_num(r["median_days"].iloc[0]), int(r["deals"].iloc[0])) if len(r) else (None, 0)
    (w, nw), (lo, nl) = med("won"), med("lost")
    if w is not None or lo is not None:
        text = _("Won deals closed in a median {won_days} (n={won}), lost deals in {lost_days} (n={lost})").format(
            won_days=_days(w), won=formatting.number(nw), lost_days=_days(lo), lost=formatting.number(nl))
    else:
        text = _("No deals closed in this period")
    if survival is not None:
        text = _clauses([text, _survival_clause(survival)])
    return _stop(text)


def survival_takeaway(survival: Any) -> str:
    """The censoring-aware close times of the cohort (Kaplan-Meier): median and share closed by 30/90 days."""
    text = _survival_clause(survival)
    return _stop(text[0].upper() + text[1:])


def _survival_clause(survival: Any) -> str:
    """``counting open deals too, half close within 40 days, ...`` (lower case, no full stop)."""
    m = _num(getattr(survival, "median_days", None))
    p30 = _num(survival.p_close_within(30)) if hasattr(survival, "p_close_within") else None
    p90 = _num(survival.p_close_within(90)) if hasattr(survival, "p_close_within") else None
    both = p30 is not None and p90 is not None
    if m is not None:
        text = (_("counting open deals too, half close within {days}, {p30} within 30 days and {p90} within 90")
                if both else _("counting open deals too, half close within {days}"))
    else:
        text = (_("counting open deals too, fewer than half have closed so far, {p30} within 30 days and {p90} "
                  "within 90") if both else _("counting open deals too, fewer than half have closed so far"))
    return text.format(days=_days(m), p30=pct(p30), p90=pct(p90))


# ------------------------------------------------------------------------------------- deal size

def _clusters(amounts: np.ndarray, gap: float = 1.5, min_share: float = 0.05) -> list[tuple[int, float]]:
    """Price clusters: runs of sorted positive amounts split where one is ``gap`` times the previous.

    Returns (deals, median) of each run holding at least ``min_share`` of the amounts, smallest first.
    """
    a = np.sort(amounts[np.isfinite(amounts) & (amounts > 0)])
    if len(a) < 2:
        return []
    runs = np.split(a, np.flatnonzero(np.diff(np.log(a)) > np.log(gap)) + 1)
    return [(len(r), float(np.median(r))) for r in runs if len(r) >= min_share * len(a)]


def deal_size_takeaway(size: Mapping, currency: str = "", won: pd.DataFrame | None = None) -> str:
    """Mean vs median vs trimmed mean of won deals, and what makes them differ.

    ``won`` is :func:`~funnelkit.metrics.size.outlier_deals` with ``flagged_only=False`` (every won
    deal of positive amount, with its outlier ``side``). With it, a mean well above the median is
    put down to "a few big deals" only when high outliers exist and the mean without them is close
    to the median; otherwise the text says the amounts are skewed (or fall into price clusters,
    naming them) rather than pulled by a few deals. Won deals of unknown amount are counted and
    said; amounts that are all 0 are said to be 0.
    """
    n = int(size.get("deals") or 0)
    unknown = int(size.get("amount_unknown") or 0)
    mean, median, trimmed = (_num(size.get(k)) for k in ("mean", "median", "trimmed_mean"))
    num = formatting.number
    if not n or mean is None or median is None:
        if n:
            return _stop(_("{n} won deals, all of unknown amount: their size is unknown").format(n=num(n)))
        return _stop(_("No won deals with a known amount in this period"))
    known = (" " + _("({n} more of unknown amount are left out)").format(n=num(unknown))) if unknown else ""
    if mean == 0:
        zero = money(0, currency) if formatting.get_locale() else "0" + (" " + currency if currency else "")
        return _stop(_("{n} won deals{unknown}, every one with an amount of {zero}").format(
            n=num(n - unknown), unknown=known, zero=zero))
    text = _("{n} won deals{unknown}: median {median}, mean {mean}, 10% trimmed mean {trimmed}").format(
        n=num(n - unknown), unknown=known, median=money(median, currency), mean=money(mean, currency),
        trimmed=money(trimmed, currency))
    if median > 0 and mean > 1.2 * median:
        text = _clauses([text, _("the mean is {pct} above the median").format(pct=pct(mean / median - 1))
                         + _why_skewed(won, median, currency)])
    elif median > 0 and mean < median / 1.2:
        text = _clauses([text, _("the mean is below the median, pulled down by the smaller deals")])
    else:
        text = _clauses([text, _("mean and median agree, so a few big deals do not distort the average")])
    return _stop(text)


def _why_skewed(won: pd.DataFrame | None, median: float, currency: str) -> str:
    if won is None or won.empty:
        return _(", so plan with the trimmed mean or the median")
    amounts = won["amount"].to_numpy(dtype=float)
    high = won["side"].astype(object).eq("high").to_numpy() if "side" in won else np.zeros(len(won), bool)
    if high.any() and np.mean(amounts[~high]) <= 1.2 * median:
        k = int(high.sum())
        return ngettext(", pulled up by {k} big deal (the outlier below), so plan with the trimmed mean or the median",
                        ", pulled up by {k} big deals (the outliers below), so plan with the trimmed mean or the "
                        "median", k).format(k=formatting.number(k))
    clusters = _clusters(amounts)
    if len(clusters) >= 2:
        named = _(", ").join(_("{amount} ({n} deals)").format(amount=money(m, currency), n=formatting.number(c))
                             for c, m in clusters[:5])
        return _(": the amounts fall into {n} price clusters (around {clusters}), so no single average describes "
                 "a typical deal; compare deals within a cluster").format(n=len(clusters), clusters=named)
    return _(": the amounts are skewed across the board (many smaller deals, fewer larger ones), not pulled up by "
             "a few big deals; plan with the trimmed mean or the median")


def deal_size_trend_takeaway(monthly: pd.DataFrame, currency: str = "") -> str:
    """The monthly median won deal size over every month of the period, not just the first and last.

    With up to four months each month is named; with more, the range and the direction. A direction
    ("rose"/"fell") is claimed only when every month moved the same way; otherwise the text gives the
    range and says there is no steady trend.
    """
    m = monthly.dropna(subset=["median"])
    if len(m) < 2:
        return _stop(_("Too few months with won deals to show a trend"))
    v = m["median"].to_numpy(dtype=float)
    months = m["month"].astype(str).tolist()
    steps = np.diff(v)
    lo, hi = int(np.argmin(v)), int(np.argmax(v))
    if (steps > 0).all():
        how = "rose"
    elif (steps < 0).all():
        how = "fell"
    elif v.min() == v.max():
        how = "steady"
    else:
        how = "none"
    if len(m) <= 4:
        each = _(", ").join(_("{amount} in {month}").format(amount=money(x, currency), month=mo)
                            for x, mo in zip(v, months))
        text = {"rose": _("The monthly median won deal rose every month: {each}"),
                "fell": _("The monthly median won deal fell every month: {each}"),
                "steady": _("The monthly median won deal held steady: {each}"),
                "none": _("The monthly median won deal had no steady trend: {each}")}[how].format(each=each)
    else:
        text = {"rose": _("The monthly median won deal rose every month over {n} months, from {first} in "
                          "{first_month} to {last} in {last_month}"),
                "fell": _("The monthly median won deal fell every month over {n} months, from {first} in "
                          "{first_month} to {last} in {last_month}"),
                "steady": _("The monthly median won deal held steady over {n} months, from {first} in "
                            "{first_month} to {last} in {last_month}"),
                "none": _("The monthly median won deal had no steady trend over {n} months, from {first} in "
                          "{first_month} to {last} in {last_month}")}[how].format(
            n=len(m), first=money(v[0], currency), first_month=months[0], last=money(v[-1], currency),
            last_month=months[-1])
        if how == "none":
            text += " " + _("(lowest {low} in {low_month}, highest {high} in {high_month})").format(
                low=money(v[lo], currency), low_month=months[lo], high=money(v[hi], currency), high_month=months[hi])
    return _stop(text)


def outliers_takeaway(outliers: pd.DataFrame, total_won: float | None = None, currency: str = "") -> str:
    """How many outlier deals there are and what share of the won amount they carry."""
    if outliers is None or outliers.empty:
        return _stop(_("No won deal is an outlier (beyond 1.5 IQR of log amount)"))
    amt = outliers["amount"].sum(min_count=1)
    share = (" " + _("({pct} of the won amount)").format(pct=pct(amt / total_won))
             if _num(total_won) and _num(amt) else "")
    return _stop(ngettext("{n} outlier deal (beyond 1.5 IQR of log amount) total {amount}{share}",
                          "{n} outlier deals (beyond 1.5 IQR of log amount) total {amount}{share}",
                          len(outliers)).format(n=len(outliers), amount=money(amt, currency), share=share))


def target_takeaway(plan: Mapping | None, currency: str = "") -> str:
    """What the target planner says, in one sentence."""
    if not plan:
        return _stop(_("No revenue target given (set the `target` parameter)"))
    target = _num(plan.get("target"))
    needed = _num(plan.get("deals_needed"))
    work = _num(plan.get("deals_to_work"))
    if needed is None:
        return _stop(_("Cannot plan for {amount}: no won deals with a known amount in this period").format(
            amount=money(target, currency)))
    text = _("To win {amount} at this period's mean deal size, close about {n} deals").format(
        amount=money(target, currency), n=formatting.number(math.ceil(needed)))
    if work is not None:
        text = _clauses([text, _("at this period's win rate that means working about {n} deals to a close").format(
            n=formatting.number(math.ceil(work)))])
    return _stop(text)


# ------------------------------------------------------------------------- amount by source/product

def _only_on_won(data: pd.DataFrame, by: str, min_lost: int = 5) -> bool:
    """True when ``by`` is known on won deals only: every lost deal is in the "(not set)" group and
    no other group has a lost deal (e.g. Olist's product, filled in when a lead is won)."""
    if by not in data or "lost_deals" not in data:
        return False
    unset = data[by].astype(str).eq(NOT_SET)
    lost = data["lost_deals"].fillna(0)
    return bool(unset.any() and lost[unset].sum() >= min_lost and lost[~unset].sum() == 0
                and data.loc[~unset, "won_deals"].fillna(0).sum() > 0)


def _by_word(by: str) -> str:
    return _(BY_WORDS[by]) if by in BY_WORDS else by


def _zero(currency: str) -> str:
    return money(0, currency) if formatting.get_locale() else "0" + (" " + currency if currency else "")


def _nothing_earned(data: pd.DataFrame, by: str, currency: str, who: str | None = None) -> str | None:
    """The sentence when won deals exist but none has a positive known amount (else None); ``who``
    names the groups in it (default: the word for ``by``)."""
    won = int(data["won_deals"].fillna(0).sum())
    if not won:
        return _("Nothing was won in this period, by any {by}").format(by=_by_word(by))
    if (data["won_amount"].fillna(0) > 0).any():
        return None
    unknown = int(data["won_amount_unknown"].fillna(0).sum()) if "won_amount_unknown" in data else 0
    if unknown == won:
        what = _("all of unknown amount")
    elif unknown:
        what = _("{n} of unknown amount and the others at {zero}").format(n=formatting.number(unknown),
                                                                           zero=_zero(currency))
    else:
        what = _("all with an amount of {zero}").format(zero=_zero(currency))
    top = data.sort_values(["won_deals", by], ascending=[False, True]).iloc[0]
    return _("{won} deals were won, {what}, so no {by} can be ranked by won amount; {top} had the most won deals "
             "({top_won})").format(won=formatting.number(won), what=what, by=who or _by_word(by), top=top[by],
                                   top_won=formatting.number(int(top["won_deals"])))


def _unknown_won_tail(data: pd.DataFrame) -> str:
    k = int(data["won_amount_unknown"].fillna(0).sum()) if "won_amount_unknown" in data else 0
    return (" " + ngettext("({k} won deal of unknown amount left out)", "({k} won deals of unknown amount left out)",
                           k).format(k=formatting.number(k))) if k else ""


def amount_by_takeaway(data: pd.DataFrame, by: str = "source", currency: str = "") -> str:
    """The group bringing the most won amount, and the one with the best win rate if different.

    Win rates are not compared when ``by`` is recorded on won deals only (every lost deal has it
    "(not set)"): then every group shows 100% for want of data, and the text says so.
    """
    only_won = _only_on_won(data, by)
    caveat = _("{by} is recorded on won deals only (every lost deal's {by} is \"{not_set}\"), so win rates by "
               "{by} say nothing").format(by=_by_word(by), not_set=NOT_SET) if only_won else ""
    nothing = _nothing_earned(data, by, currency)
    if nothing is not None:
        return _stop(_clauses([nothing, caveat]) if caveat else nothing)
    d = data[data["won_amount"].fillna(0) > 0]
    top = d.sort_values("won_amount", ascending=False).iloc[0]
    args = dict(group=top[by], amount=money(top["won_amount"], currency), share=pct(top["share"]),
                rate=pct(top["win_rate"]))
    text = (_("{group} brought the most won amount: {amount} ({share} of the total)") if only_won else
            _("{group} brought the most won amount: {amount} ({share} of the total) at a {rate} win rate")).format(**args)
    closed = data[(data["won_deals"] + data["lost_deals"]) >= 5].dropna(subset=["win_rate"])
    if len(closed) and not only_won:
        best = closed.sort_values("win_rate", ascending=False).iloc[0]
        if str(best[by]) != str(top[by]) and (pd.isna(top["win_rate"]) or best["win_rate"] > top["win_rate"]):
            text = _clauses([text, _("{group} converts best ({rate} of {n} closed)").format(
                group=best[by], rate=pct(best["win_rate"]), n=int(best["won_deals"] + best["lost_deals"]))])
    text += _unknown_won_tail(data)
    return _stop(_clauses([text, caveat]) if caveat else text)


def product_mix_takeaway(data: pd.DataFrame, by: str = "product", currency: str = "") -> str:
    """Whether many small contracts beat a few big ones (or the other way round).

    Only groups with a positive won amount are compared; when no won deal has one (all unknown or
    0), the text says so instead of comparing zeros.
    """
    nothing = _nothing_earned(data, by, currency)
    if nothing is not None:
        return _stop(nothing)
    tail = _unknown_won_tail(data)
    d = data[(data["won_deals"].fillna(0) > 0) & (data["won_amount"].fillna(0) > 0)].dropna(subset=["mean_size"])
    if len(d) == 1:
        r = d.iloc[0]
        return _stop(_("All won amount came from {group}: {n} deals averaging {mean}{tail}").format(
            group=r[by], n=int(r["won_deals"]), mean=money(r["mean_size"], currency), tail=tail))
    top = d.sort_values(["won_amount", "won_deals"], ascending=False).iloc[0]
    many = d.sort_values(["won_deals", "won_amount"], ascending=False).iloc[0]
    big = d.sort_values(["mean_size", "won_amount"], ascending=False).iloc[0]

    def desc(r):
        return _("{group} ({amount} from {n} deals averaging {mean})").format(
            group=r[by], amount=money(r["won_amount"], currency), n=int(r["won_deals"]),
            mean=money(r["mean_size"], currency))
    if str(top[by]) == str(many[by]) and str(top[by]) != str(big[by]):
        return _stop(_("Many small contracts beat a few big ones: {top} out-earned {other}{tail}").format(
            top=desc(top), other=desc(big), tail=tail))
    if str(top[by]) == str(big[by]) and str(top[by]) != str(many[by]):
        return _stop(_("A few big contracts beat many small ones: {top} out-earned {other}{tail}").format(
            top=desc(top), other=desc(many), tail=tail))
    if str(top[by]) == str(many[by]) == str(big[by]):
        return _stop(_("{top} leads on total won amount, number of deals and deal size alike{tail}").format(
            top=desc(top), tail=tail))
    return _stop(_("{top} brought the most won amount; {many} had the most won deals ({n}) and {big} the largest "
                   "mean size ({mean}){tail}").format(top=desc(top), many=many[by],
                                                      n=formatting.number(int(many["won_deals"])), big=big[by],
                                                      mean=money(big["mean_size"], currency), tail=tail))


def rep_takeaway(data: pd.DataFrame, currency: str = "", min_closed: int = 5) -> str:
    """Top rep by won amount and the spread of win rates among reps with enough closed deals."""
    if not data["won_deals"].fillna(0).any():
        return _stop(_("No rep won a deal in this period"))
    nothing = _nothing_earned(data, "owner", currency, who=_("rep"))
    if nothing is not None:
        text = nothing
    else:
        d = data[data["won_amount"].fillna(0) > 0]
        top = d.sort_values("won_amount", ascending=False).iloc[0]
        n = int(top["won_deals"])
        text = ngettext("{owner} won the most ({amount}, {n} deal)", "{owner} won the most ({amount}, {n} deals)",
                        n).format(owner=top["owner"], amount=money(top["won_amount"], currency), n=n)
    closed = data[(data["won_deals"] + data["lost_deals"]) >= min_closed].dropna(subset=["win_rate"])
    if _only_on_won(data, "owner"):
        text = _clauses([text, _("the owner is recorded on won deals only, so win rates by rep say nothing")])
    elif len(closed) >= 2:
        hi = closed.loc[closed["win_rate"].idxmax()]
        lo = closed.loc[closed["win_rate"].idxmin()]
        text = _clauses([text, _("win rates range from {low} ({low_owner}) to {high} ({high_owner}) among reps "
                                 "with at least {n} closed deals").format(
            low=pct(lo["win_rate"]), low_owner=lo["owner"], high=pct(hi["win_rate"]), high_owner=hi["owner"],
            n=min_closed)])
    return _stop(text)


# ---------------------------------------------------------------------------------------- forecast

def forecast_takeaway(forecast: pd.DataFrame, currency: str = "", hindsight: bool = False) -> str:
    """Expected won amount from the open deals, against their open amount, and where it sits.

    Deals of unknown amount are counted and left out of the amounts; when no open deal has a known
    amount, the expected number of won deals is given instead of an amount. ``hindsight`` (see
    :func:`~funnelkit.metrics.summary.amount_coverage`) adds that the amounts are known only
    because the deals closed later.
    """
    if forecast is None or forecast.empty:
        return _stop(_("No open deals to forecast"))
    n = len(forecast)
    num = formatting.number
    p = forecast["p_win"].sum(min_count=1)
    if _num(p) is None:
        return _stop(_("The win probability of the {n} open deals is unknown: no deal closed before the end of the "
                       "period to learn from").format(n=num(n)))
    unknown = int(forecast["amount"].isna().sum())
    if unknown == n:
        return _stop(_("The {n} open deals all have an unknown amount, so the amount they may bring is unknown; "
                       "about {won} of them are expected to be won").format(n=num(n), won=num(p)))
    exp = forecast["expected_won_amount"].sum(min_count=1)
    amt = forecast["amount"].sum(min_count=1)
    text = _("The {n} open deals are expected to bring {amount}").format(n=num(n), amount=money(exp, currency))
    if unknown:
        text += " " + _("(from the {known} of known amount; {unknown} of unknown amount are left out)").format(
            known=num(n - unknown), unknown=num(unknown))
    if _num(amt):
        text += " " + _("({pct} of their {amount} open amount)").format(pct=pct(exp / amt), amount=money(amt, currency))
    parts = [text]
    from .metrics.forecast import forecast_range
    r = forecast_range(forecast, 0.8)
    if r["deals"] and r["high"] > r["low"]:
        parts.append(_("8 times in 10 the won amount lands between {low} and {high}").format(
            low=money(r["low"], currency), high=money(r["high"], currency)))
    by = forecast.groupby(label_text(forecast["stage"]))["expected_won_amount"].sum()
    if len(by) and by.max() > 0:
        parts.append(_("most from {stage} ({amount})").format(stage=by.idxmax(), amount=money(by.max(), currency)))
    if hindsight:
        parts.append(_("these amounts lean on hindsight: the data records an amount only when a deal closes, so "
                       "only deals that closed later have one"))
    return _stop(_clauses(parts))


def calibration_takeaway(backtest: Any) -> str:
    """Brier score of the forecast against the stage-only baseline (lower is better)."""
    brier, base = _num(getattr(backtest, "brier", None)), _num(getattr(backtest, "baseline_brier", None))
    if brier is None:
        return _stop(_("Not enough closed deals before the backtest dates to score the forecast"))
    args = dict(brier=formatting.number(brier, 3), base=formatting.number(base, 3))
    if base is None:
        text = _("In the backtest the forecast's Brier score is {brier} (0 is perfect; lower is better)")
    elif brier < base:
        args["pct"] = pct((base - brier) / base)
        text = _("In the backtest the forecast's Brier score is {brier}, better than the stage-only baseline's "
                 "{base} ({pct} lower) (0 is perfect; lower is better)")
    else:
        text = _("In the backtest the forecast's Brier score is {brier}, not better than the stage-only baseline's "
                 "{base} (0 is perfect; lower is better)")
    return _stop(text.format(**args))



# --------------------------------------------------------------------------- will we hit the number

def landing_takeaway(landing: Any, pace: pd.DataFrame | None = None, currency: str = "") -> str:
    """Where the period lands as seen at the forecast's instant, against the target and the pace.

    ``landing`` is a :class:`~funnelkit.metrics.LandingForecast`; ``pace`` the
    :func:`~funnelkit.metrics.pacing` table. Unknown totals are said to be unknown; P(target) only
    with a target; a pace comparison only against a period the data covers and that won something.
    """
    won = landing.won_so_far
    at = formatting.date(pd.Timestamp(landing.at))
    num = formatting.number
    if landing.expected_amount is None:
        return _stop(_("Seen at {date}: {n} deals won so far, but their amounts are unknown, so where the period "
                       "lands is unknown").format(date=at, n=num(won["deals"])))
    ended = pd.Timestamp(landing.at) >= landing.period.stop
    if ended:
        text = _("The period won {amount} from {n} deals").format(amount=money(won["amount"], currency),
                                                                  n=num(won["deals"]))
    else:
        text = _("Seen at {date}: {amount} won so far from {n} deals; the period is expected to land at {expected}, "
                 "8 times in 10 between {low} and {high}").format(
            date=at, amount=money(won["amount"], currency), n=num(won["deals"]),
            expected=money(landing.expected_amount, currency), low=money(landing.low_amount, currency),
            high=money(landing.high_amount, currency))
    if landing.target is not None:
        if ended:
            gap = (won["amount"] or 0.0) - landing.target
            text = (_("{text}, {gap} above the target of {target}") if gap >= 0 else
                    _("{text}, {gap} short of the target of {target}")).format(
                text=text, gap=money(abs(gap), currency), target=money(landing.target, currency))
        elif landing.p_reach_target is not None:
            text = _clauses([text, _("the chance of reaching the target of {target} is {pct}").format(
                target=money(landing.target, currency), pct=pct(landing.p_reach_target))])
    if pace is not None and not ended:
        prev = pace.set_index("compared").loc["previous period"]
        if bool(prev["covered_by_data"]) and _num(prev["won_amount"]) and _num(prev["change"]) is not None:
            text = _clauses([text, (
                _("that is {pct} ahead of the previous period at the same point ({amount})")
                if prev["change"] >= 0 else
                _("that is {pct} behind the previous period at the same point ({amount})")).format(
                    pct=pct(abs(prev["change"])), amount=money(prev["won_amount"], currency))])
    return _stop(text)


def accuracy_takeaway(accuracy: Any) -> str:
    """The landing forecast's record: error early and late in the quarter, range hit rate, baseline.

    Claims that the forecast beats the baseline only where its error is lower; says when the range
    holds the actual less often than it should.
    """
    f = accuracy.forecasts
    bw = accuracy.by_week
    if f is None or f.empty or bw["mape"].isna().all():
        return _stop(_("No past quarter with enough history to score the landing forecast yet"))
    n_q = f["period"].nunique()
    first, mid = bw.iloc[0], bw.iloc[min(6, len(bw) - 1)]
    hit = _num(f["inside_range"].mean())
    text = ngettext("Over {n} past quarter, the forecast made on a quarter's first day missed the actual by {first} "
                    "on average, by mid-quarter by {mid}",
                    "Over {n} past quarters, the forecast made on a quarter's first day missed the actual by {first} "
                    "on average, by mid-quarter by {mid}", n_q).format(n=n_q, first=pct(first["mape"]),
                                                                        mid=pct(mid["mape"]))
    wm = _num(mid.get("weighted_mape"))
    if wm is not None and _num(mid["mape"]) is not None:
        text += " " + (_("(better than the stage-weighted pipeline's {pct})") if mid["mape"] < wm else
                       _("(not better than the stage-weighted pipeline's {pct})")).format(pct=pct(wm))
    parts = [text]
    w0 = _num(first.get("weighted_mape"))
    if w0 is not None and _num(first["mape"]) is not None and w0 < first["mape"]:
        parts.append(_("on the first day the stage-weighted pipeline was closer ({pct})").format(pct=pct(w0)))
    if hit is not None:
        if hit < 0.7:
            parts.append(_("the actual fell inside the 80% range in {pct} of the weekly forecasts — fewer than 80%: "
                           "the range is too narrow, read it as a lower bound on the uncertainty").format(pct=pct(hit)))
        else:
            parts.append(_("the actual fell inside the 80% range in {pct} of the weekly forecasts").format(pct=pct(hit)))
    return _stop(_clauses(parts))


__all__ += ["landing_takeaway", "accuracy_takeaway"]


# --------------------------------------------------------------------------------- slipping deals

def pushes_takeaway(data: pd.DataFrame, min_closed: int = 5, min_gap: float = 0.10, z: float = 1.96) -> str:
    """Whether deals whose expected close date was pushed more often were won less often.

    ``data`` is :func:`funnelkit.metrics.win_rate_by_pushes`. The same evidence rule as
    :func:`win_rate_by_time_takeaway`: only buckets with at least ``min_closed`` closed deals count;
    the claim needs a change of at least ``min_gap`` from the first to the last such bucket *and* a
    Cochran-Armitage trend test beyond ``z``. Otherwise the text says there is no clear trend.

    Examples
    --------
    >>> t = pd.DataFrame({"pushes": ["0", "1", "2", "3+"], "deals": [40, 20, 10, 10],
    ...                   "won": [20, 8, 2, 1], "lost": [20, 12, 8, 9]})
    >>> pushes_takeaway(t)
    'Deals that kept slipping were won less often: 50% with no push, 10% with 3+ pushes.'
    """
    closed = (data["won"] + data["lost"]).to_numpy(float)
    keep = closed >= max(min_closed, 1)
    if keep.sum() < 2:
        return _stop(_("Too few closed deals to relate pushed close dates to winning"))
    won = data["won"].to_numpy(float)[keep]
    n = closed[keep]
    pos = np.flatnonzero(keep).astype(float)
    labels = data["pushes"].astype(str).to_numpy()[keep]
    first, last = won[0] / n[0], won[-1] / n[-1]
    stat = _trend_z(won, n, pos)

    def with_pushes(share: float, label: str) -> str:
        if label == "0":
            return _("{pct} with no push").format(pct=pct(share))
        if label == "1":
            return _("{pct} with 1 push").format(pct=pct(share))
        return _("{pct} with {pushes} pushes").format(pct=pct(share), pushes=label)

    span = _(", ").join([with_pushes(first, labels[0]), with_pushes(last, labels[-1])])
    if first - last >= min_gap and stat <= -z:
        return _stop(_("Deals that kept slipping were won less often: {span}").format(span=span))
    if last - first >= min_gap and stat >= z:
        return _stop(_("Deals that were pushed were won more often, not less: {span}").format(span=span))
    return _stop(_("Pushed close dates show no clear link to winning ({span}; no steady change of {points}+ points "
                   "beyond chance)").format(span=span, points=f"{100 * min_gap:.0f}"))


def _deals(n: Any) -> str:
    return ngettext("{n} deal", "{n} deals", int(n)).format(n=int(n))


def waterfall_takeaway(waterfall: Any, currency: str = "") -> str:
    """Where the pipeline went, in one sentence, with the check that the bars add up.

    ``waterfall`` is :func:`funnelkit.metrics.pipeline_waterfall` output: the open amount at the
    start and the end, the biggest addition and the biggest reduction, and ``start + movements = end``
    for deals and amounts.
    """
    from .plot import MOVEMENT_LABELS
    m = waterfall.movements.set_index("movement")
    b = waterfall.balance
    text = _("The pipeline went from {start} ({start_deals}) to {end} ({end_deals})").format(
        start=money(waterfall.start_amount, currency), start_deals=_deals(waterfall.start_deals),
        end=money(waterfall.end_amount, currency), end_deals=_deals(waterfall.end_deals))
    adds = m[m["change"] > 0]["change"]
    cuts = m[m["change"] < 0]["change"]
    parts = []

    def name(k: str) -> str:
        return _(MOVEMENT_LABELS.get(str(k), str(k).replace("_", " ")))
    if len(adds):
        k = adds.idxmax()
        parts.append(_("most was added by {movement} ({amount}, {deals})").format(
            movement=name(k), amount=money(adds[k], currency), deals=_deals(m.loc[k, "deals"])))
    if len(cuts):
        k = cuts.idxmin()
        parts.append(_("most went out as {movement} ({amount}, {deals})").format(
            movement=name(k), amount=money(-cuts[k], currency), deals=_deals(m.loc[k, "deals"])))
    if len(parts) == 2:
        text = _clauses([text, _("{added} and {removed}").format(added=parts[0], removed=parts[1])])
    elif parts:
        text = _clauses([text, parts[0]])
    check = (_("Check: start + movements = end adds up ({deals} deals = {end_deals}; {amount} = {end_amount})")
             if b["balanced"] else
             _("Check: start + movements = end does NOT add up ({deals} deals = {end_deals}; {amount} = {end_amount})"))
    text = _stop(text) + " " + _stop(check.format(deals=b["deals"], end_deals=b["end_deals"],
                                                  amount=money(b["amount"], currency),
                                                  end_amount=money(b["end_amount"], currency)))
    unknown = int(m["amount_unknown"].sum()) if "amount_unknown" in m.columns else 0
    if unknown:
        text += " " + ngettext("{n} of the movements has an unknown amount: counted as a deal, left out of "
                               "the amounts.", "{n} of the movements have an unknown amount: counted as deals, "
                               "left out of the amounts.", unknown).format(n=unknown)
    return text
