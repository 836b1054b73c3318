"""Plotting helpers shared by the notebooks and users' own notebooks.

Every helper takes a tidy DataFrame (the output of a :mod:`funnelkit.metrics` function) plus the
names of its columns, draws on ``ax`` (a new figure when ``None``) and returns the Axes (or the
Figure for multi-panel charts). None calls ``plt.show()``. Each chart gets a title and axis labels
with units (``days``, ``deals``, the currency). Stage colours come from :func:`stage_palette` and are
the same in every chart; :func:`set_theme` applies the one theme used throughout.

Examples
--------
>>> import pandas as pd
>>> f = pd.DataFrame({"stage": ["Lead", "Demo"], "reached": [10, 4], "conversion": [0.4, 0.5]})
>>> ax = funnel_plot(f)
>>> ax.get_title()
'Funnel: deals reaching each stage'
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from . import formatting
from .dataset import label_text
from .formatting import compact_money, table_cell
from .i18n import N_, _, get_language

from .dataset import Dataset
from .period import PeriodLike, as_period

__all__ = [
    "set_theme", "stage_palette", "STATUS_COLORS", "OUTCOME_COLORS", "money", "to_png",
    "png_data_uri", "funnel_plot", "snapshot_plot", "stage_flow_plot", "time_in_stage_plot",
    "duration_plot", "win_rate_by_time_plot", "days_to_close_plot", "survival_plot",
    "deal_size_trend_plot", "deal_size_plot", "amount_by_plot", "product_mix_plot",
    "expected_won_plot", "calibration_plot", "format_table", "DISPLAY_NAMES", "VALUE_LABELS", "display_value", "DPI",
    "top_categories", "chart_alt_text", "money_axis", "TOP_N",
]

_MPL = tuple(int(p) for p in matplotlib.__version__.split(".")[:2])

#: Resolution of the PNGs embedded in reports (small files, still sharp on screen).
DPI = 90
FIGSIZE = (7.5, 3.6)

# Colour-blind-friendly, ordered so that neighbouring stages are easy to tell apart.
_STAGE_BASE = ["#4C72B0", "#55A868", "#C44E52", "#8172B3", "#CCB974", "#64B5CD",
               "#DD8452", "#937860", "#DA8BC3", "#8C8C8C"]

#: Colours of deal outcomes, identical in every chart.
STATUS_COLORS = {"won": "#2E8B57", "lost": "#C44E52", "open": "#8C8C8C"}

#: How deal statuses and visit outcomes read in charts and tables (translated where shown).
STATUS_LABELS = {"won": N_("won"), "lost": N_("lost"), "open": N_("open")}
OUTCOME_LABELS = {"advanced": N_("advanced"), "skipped ahead": N_("skipped ahead"), "moved back": N_("moved back"),
                  "won": N_("won"), "lost": N_("lost"), "still there": N_("still there")}
#: The grouping columns as words inside a sentence or title ("by source").
BY_WORDS = {"source": N_("source"), "product": N_("product"), "owner": N_("owner"), "stage": N_("stage")}


def _status(value) -> str:
    return _(STATUS_LABELS.get(str(value), str(value)))


def _outcome(value) -> str:
    return _(OUTCOME_LABELS.get(str(value), str(value)))


def _by_word(by: str) -> str:
    return _(BY_WORDS[by]) if by in BY_WORDS else by


def _by_name(by: str) -> str:
    """A grouping column as an axis name (``Source``), from :data:`DISPLAY_NAMES` when it is there."""
    return _(DISPLAY_NAMES[by][0]) if by in DISPLAY_NAMES else by.capitalize()


#: Colours of what became of a stage visit (:data:`funnelkit.history.OUTCOMES`).
OUTCOME_COLORS = {"advanced": "#4C72B0", "skipped ahead": "#64B5CD", "moved back": "#CCB974",
                  "won": STATUS_COLORS["won"], "lost": STATUS_COLORS["lost"],
                  "still there": STATUS_COLORS["open"]}

_THEME_RC = {
    "figure.figsize": FIGSIZE, "figure.dpi": DPI, "savefig.dpi": DPI,
    "savefig.bbox": "tight", "axes.titlesize": 11, "axes.titleweight": "bold",
    "axes.labelsize": 9.5, "xtick.labelsize": 8.5, "ytick.labelsize": 8.5,
    "legend.fontsize": 8.5, "legend.frameon": False, "axes.spines.top": False,
    "axes.spines.right": False,
}


def set_theme() -> None:
    """Apply funnelkit's one theme (seaborn ``whitegrid``, small figures, ``DPI`` PNGs).

    Labels in any script render: ``font.family`` is a per-glyph fallback chain over the installed
    fonts (:func:`funnelkit.fonts.font_chain`: Chinese, Japanese, Korean, Cyrillic, Greek, Arabic,
    Hebrew, Devanagari), and a script with no font at all gets one note naming the package to
    install instead of a warning per character. Call it once at the top of a notebook; the
    helpers work without it too (with matplotlib's default fonts).
    """
    import seaborn as sns

    from . import fonts
    sns.set_theme(style="whitegrid", context="notebook",
                  rc={**_THEME_RC, "font.family": fonts.font_chain()})
    fonts.note_missing_scripts()


def stage_palette(stages: Sequence[str]) -> dict[str, str]:
    """A colour per stage, fixed by the stage's position in the pipeline.

    The same pipeline always gets the same colours, in every chart and every slice.

    Examples
    --------
    >>> stage_palette(["Lead", "Demo"])
    {'Lead': '#4C72B0', 'Demo': '#55A868'}
    """
    stages = [str(s) for s in stages]
    if len(stages) <= len(_STAGE_BASE):
        colours = _STAGE_BASE[: len(stages)]
    else:
        import seaborn as sns
        colours = sns.color_palette("husl", len(stages)).as_hex()
    return dict(zip(stages, colours))


def money(value: float | None, currency: str = "") -> str:
    """Compact money text: ``1.2M EUR``, ``35k EUR``, ``950 EUR``; ``-`` for missing values.

    In the locale set by :func:`funnelkit.formatting.set_locale` when one is (``1,2 Mio. €``).
    """
    return compact_money(value, currency)


def _tick_money(v: float, step: float) -> str:
    """Money tick text precise enough for the tick step (``0.25``, not ``0``; ``1.5k``, not ``2k``);
    in the locale's compact form when a locale is set (:mod:`funnelkit.formatting`)."""
    if formatting.get_locale() is not None:
        return money(v) if not (step and 0 < step < 1 and abs(v) < 1e3) else formatting.number(v, 2)
    if step and 0 < step < 1 and abs(v) < 1e3:
        return f"{v:.{min(6, int(np.ceil(-np.log10(step))))}f}"
    if step and abs(v) >= 1e3 and step < abs(v) / 10 and abs(v) < 1e6:
        return f"{v / 1e3:,.{1 if step < 1e3 else 0}f}k".replace(".0k", "k")
    return money(v)


def money_axis(ax: Axes, currency: str = "", axis: str = "y") -> None:
    """Label an axis with compact money ticks, as precise as the tick step needs (``0.5``, ``1.5k``)."""
    a = ax.yaxis if axis == "y" else ax.xaxis

    def fmt(v, _pos):
        locs = np.sort(np.asarray(a.get_majorticklocs(), dtype=float))
        step = float(np.min(np.diff(locs))) if len(locs) > 1 else 0.0
        return _tick_money(v, step)
    a.set_major_formatter(FuncFormatter(fmt))


def _count_axis(ax: Axes, axis: str = "x") -> None:
    """Whole-number ticks on a count axis (no ``0 0 0 1 1 1`` when the counts are small)."""
    from matplotlib.ticker import MaxNLocator
    a = ax.yaxis if axis == "y" else ax.xaxis
    a.set_major_locator(MaxNLocator(integer=True, nbins="auto", min_n_ticks=2))
    a.set_major_formatter(FuncFormatter(lambda v, _p: formatting.number(v)))


#: How many categories a bar chart shows before it lumps the rest into "other (K more)".
TOP_N = 12
#: Longest category label on an axis before it is shortened with an ellipsis.
LABEL_CHARS = 28

# Columns that add up across groups; ratios are recomputed from them for the "other" row.
_SUMMABLE = ("won_amount", "won_deals", "lost_deals", "open_amount", "open_deals", "deals", "visits",
             "won", "lost", "reached", "expected_won_amount", "expected_won_deals", "share")


def top_categories(data: pd.DataFrame, by: str, measure: str, top: int | None = TOP_N, *,
                   other: str = "other") -> pd.DataFrame:
    """The ``top`` rows with the largest ``measure``, and the rest summed into one ``other (K more)`` row.

    For charts of many categories (30 products, 11 sources): the biggest by the chart's own measure
    stay, the others are one row named ``"other (K more)"``. Counts and amounts of that row are sums
    (an amount stays unknown, NaN, when it is unknown in every lumped row); ``win_rate`` is
    recomputed as won / (won + lost), ``mean_size`` as won amount / won deals of known amount,
    ``mean_days`` as the deal-weighted mean; a median cannot be combined from medians and is NaN.
    Rows are ordered by ``measure`` (largest first, unknown last), the ``other`` row last.

    Examples
    --------
    >>> d = pd.DataFrame({"product": list("abcd"), "won_amount": [5.0, 1.0, 3.0, 2.0],
    ...                   "won_deals": [1, 1, 1, 2], "lost_deals": [1, 0, 1, 0]})
    >>> t = top_categories(d, "product", "won_amount", top=2)
    >>> t["product"].tolist(), t["won_amount"].tolist(), t["win_rate"].round(2).tolist()[-1]
    (['a', 'c', 'other (2 more)'], [5.0, 3.0, 3.0], 1.0)
    """
    d = data.assign(_m=pd.to_numeric(data[measure], errors="coerce").astype(float))
    d = d.sort_values("_m", ascending=False, na_position="last", kind="stable").drop(columns="_m")
    if top is None or len(d) <= top + 1:      # lumping one row into "other" hides it for nothing
        return d.reset_index(drop=True)
    label = (_("other ({n} more)") if other == "other" else other + " ({n} more)").format(n=len(d) - top)
    return _lump(d, by, d[by].iloc[:top].tolist(), label)


def _lump(d: pd.DataFrame, by: str, keep: Sequence, label: str) -> pd.DataFrame:
    """The rows whose ``by`` is in ``keep`` (in their order), then the others summed into one row."""
    inside = d[by].isin(keep).to_numpy()
    head, rest = d[inside], d[~inside]
    if rest.empty:
        return head.reset_index(drop=True)
    row: dict = {c: np.nan for c in d.columns}
    row[by] = label
    num = {c: pd.to_numeric(rest[c], errors="coerce").to_numpy(dtype=float)
           for c in rest.columns if c != by and pd.api.types.is_numeric_dtype(rest[c])}
    for c in _SUMMABLE:
        if c in num:
            row[c] = np.nansum(num[c]) if np.isfinite(num[c]).any() else np.nan
    if "won_deals" in num and "lost_deals" in num:
        closed = row["won_deals"] + row["lost_deals"]
        row["win_rate"] = row["won_deals"] / closed if closed > 0 else np.nan
    if "won_amount" in num and "mean_size" in num:
        wa, ms = num["won_amount"], num["mean_size"]
        ok = np.isfinite(wa) & np.isfinite(ms) & (ms > 0)
        known = (wa[ok] / ms[ok]).sum()
        row["mean_size"] = wa[ok].sum() / known if known > 0 else np.nan
    if "mean_days" in num and "deals" in num:
        md, n = num["mean_days"], num["deals"]
        ok = np.isfinite(md) & (n > 0)
        row["mean_days"] = (md[ok] * n[ok]).sum() / n[ok].sum() if ok.any() else np.nan
    for c in d.columns:          # a text column shared by every lumped row (e.g. status) is kept
        if c != by and c not in num and rest[c].nunique(dropna=False) == 1:
            row[c] = rest[c].iloc[0]
    return pd.concat([head, pd.DataFrame([row]).astype({by: object})], ignore_index=True)


def _short(label: str, limit: int = LABEL_CHARS) -> str:
    label = str(label)
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "\u2026"


def _bar_height(rows: int, base: float = 1.3, per_row: float = 0.27, least: float = 2.4) -> float:
    """Figure height (inches) that gives every bar of a horizontal bar chart room for its label."""
    return max(least, base + per_row * rows)


def chart_alt_text(fig: Figure | Axes, takeaway: str | None = None) -> str:
    """Alternative text of a chart: its title (and panel titles) followed by its takeaway.

    Examples
    --------
    >>> ax = funnel_plot(pd.DataFrame({"stage": ["Lead"], "reached": [3], "conversion": [0.5]}))
    >>> chart_alt_text(ax, "Half go on.")
    'Chart: Funnel: deals reaching each stage. Half go on.'
    """
    fig = fig.figure if isinstance(fig, Axes) else fig
    sup = getattr(fig, "_suptitle", None)
    titles = [sup.get_text()] if sup is not None and sup.get_text() else []
    if not titles:
        titles = [a.get_title() for a in fig.axes if a.get_title()][:1]
    text = _("Chart: {titles}.").format(titles="; ".join(titles) if titles else _("untitled"))
    if takeaway:
        text += " " + " ".join(str(takeaway).split())
    return text


def _unit(currency: str | None) -> str:
    return currency or _("amount")


def _day_month_axis(ax: Axes, axis: str = "x", plain: str = "%d %b") -> None:
    """Dates on an axis as day and month: ``plain`` (strftime, English month names) by default, the
    locale's (or the report language's) short day-month form otherwise (``7月1日``, ``1. Juli``)."""
    loc = formatting.get_locale() or (get_language() if get_language() != "en" else None)
    a = ax.xaxis if axis == "x" else ax.yaxis
    if loc is None:
        a.set_major_formatter(mdates.DateFormatter(plain))
        return
    from babel.dates import format_skeleton

    a.set_major_formatter(FuncFormatter(
        lambda v, _p: format_skeleton("MMMd", mdates.num2date(v).date(), locale=loc)))


def _new_ax(ax: Axes | None, figsize=FIGSIZE) -> Axes:
    if ax is None:
        _fig, ax = plt.subplots(figsize=figsize, dpi=DPI)
    return ax


def _empty(ax: Axes, title: str, xlabel: str, ylabel: str, note: str | None = None) -> Axes:
    note = note or _("no data in this period")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes, color="#777777")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def _stage_order(data: pd.DataFrame, stage: str) -> list[str]:
    col = data[stage]
    if isinstance(col.dtype, pd.CategoricalDtype):
        return [str(c) for c in col.cat.categories]
    return list(dict.fromkeys(col.astype(str)))


def to_png(fig: Figure | Axes, dpi: int = DPI) -> bytes:
    """The figure (or the figure of an Axes) as PNG bytes; closes it."""
    fig = fig.figure if isinstance(fig, Axes) else fig
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def png_data_uri(fig: Figure | Axes, dpi: int = DPI) -> str:
    """A ``data:image/png;base64,...`` URI of the figure, for self-contained HTML."""
    return "data:image/png;base64," + base64.b64encode(to_png(fig, dpi)).decode("ascii")


# --------------------------------------------------------------------------------- deals per stage

def funnel_plot(data: pd.DataFrame, *, stage: str = "stage", value: str = "reached",
                conversion: str | None = "conversion", palette: Mapping[str, str] | None = None,
                title: str | None = None, ax: Axes | None = None) -> Axes:
    """Horizontal funnel: deals that reached each stage, labelled with the conversion to the next.

    ``data`` is :func:`funnelkit.metrics.stages.funnel` output (one row per stage, in order).
    """
    ax = _new_ax(ax)
    title = title or _("Funnel: deals reaching each stage")
    order = _stage_order(data, stage)
    palette = palette or stage_palette(order)
    d = data.assign(_s=data[stage].astype(str)).set_index("_s").reindex(order)
    values = d[value].fillna(0).to_numpy(dtype=float)
    if not np.nansum(values):
        return _empty(ax, title, _("Deals (count)"), _("Stage"))
    y = np.arange(len(order))
    ax.barh(y, values, color=[palette[s] for s in order], height=0.7)
    ax.set_yticks(y, labels=order)
    ax.invert_yaxis()
    top = values.max()
    for i, v in enumerate(values):
        label = formatting.number(v)
        if conversion is not None and conversion in d:
            c = d[conversion].iloc[i]
            if pd.notna(c):
                to = _("({pct} to won)") if i == len(order) - 1 else _("({pct} to next)")
                label += "  " + to.format(pct=formatting.percent(c))
        ax.text(v + top * 0.01, i, label, va="center", fontsize=8.5)
    ax.set_xlim(0, top * 1.35)
    ax.set_title(title)
    ax.set_xlabel(_("Deals (count)"))
    ax.set_ylabel(_("Stage"))
    ax.grid(axis="y", visible=False)
    return ax


def snapshot_plot(data: pd.DataFrame, *, x: str = "at", stage: str = "stage", value: str = "open_deals",
                  currency: str | None = None, palette: Mapping[str, str] | None = None,
                  title: str | None = None, ax: Axes | None = None) -> Axes:
    """Stacked area of open deals per stage at each weekly snapshot.

    ``data`` is :func:`funnelkit.metrics.stages.weekly_snapshots` output (long form). With
    ``value="open_amount"`` the y axis is the open amount in ``currency``.
    """
    ax = _new_ax(ax)
    is_amount = "amount" in value
    ylabel = _("Open amount ({currency})").format(currency=_unit(currency)) if is_amount else _("Open deals (count)")
    title = title or (_("Open pipeline amount per stage, weekly") if is_amount else _("Open deals per stage, weekly"))
    if data.empty:
        return _empty(ax, title, _("Week ending"), ylabel)
    order = _stage_order(data, stage)
    palette = palette or stage_palette(order)
    wide = (data.assign(_s=data[stage].astype(str))
            .pivot_table(index=x, columns="_s", values=value, aggfunc="sum", observed=False)
            .reindex(columns=order).fillna(0).sort_index())
    if pd.api.types.is_datetime64_any_dtype(wide.index):
        # a snapshot at Monday 00:00 (Sunday 24:00) is the end of that Sunday: plot it on the Sunday
        idx = pd.DatetimeIndex(wide.index)
        wide.index = idx.where(idx != idx.normalize(), idx - pd.Timedelta(days=1))
    ax.stackplot(wide.index, *[wide[s].to_numpy(dtype=float) for s in order], labels=order,
                 colors=[palette[s] for s in order], alpha=0.9)
    ax.set_title(title)
    ax.set_xlabel(_("Week ending (Sunday; the last point is the end of the period)"))
    ax.set_ylabel(ylabel)
    if is_amount:
        money_axis(ax, currency or "")
    if pd.api.types.is_datetime64_any_dtype(wide.index):
        _day_month_axis(ax)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title=_("Stage"))
    ax.set_xlim(wide.index.min(), wide.index.max())
    return ax


def stage_flow_plot(data: pd.DataFrame, *, stage: str = "stage", outcomes: Sequence[str] | None = None,
                    title: str | None = None, ax: Axes | None = None) -> Axes:
    """What became of the visits that began in each stage: a 100% stacked bar per stage.

    ``data`` is :func:`funnelkit.metrics.stages.stage_flow` output (``visits`` plus one count
    column per outcome).
    """
    ax = _new_ax(ax)
    title = title or _("What became of each stage visit")
    outcomes = list(outcomes or [c for c in OUTCOME_COLORS if c in data.columns])
    order = _stage_order(data, stage)
    d = data.assign(_s=data[stage].astype(str)).set_index("_s").reindex(order)
    total = d[outcomes].sum(axis=1).replace(0, np.nan)
    share = d[outcomes].div(total, axis=0).fillna(0)
    if not total.notna().any():
        return _empty(ax, title, _("Share of visits (%)"), _("Stage"))
    left = np.zeros(len(order))
    y = np.arange(len(order))
    for o in outcomes:
        vals = share[o].to_numpy(dtype=float)
        ax.barh(y, vals, left=left, color=OUTCOME_COLORS.get(o, "#999999"), label=_outcome(o), height=0.7)
        left += vals
    ax.set_yticks(y, labels=[f"{s} ({int(n) if pd.notna(n) else 0})" for s, n in zip(order, total)])
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlim(0, 1)
    ax.set_title(title)
    ax.set_xlabel(_("Share of visits begun in the period (%)"))
    ax.set_ylabel(_("Stage (visits)"))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title=_("Outcome"))
    return ax


# ---------------------------------------------------------------------------------- time in stage

def time_in_stage_plot(data: pd.DataFrame, *, stage: str = "stage", median: str = "median_days",
                       p90: str | None = "p90_days", thresholds: pd.DataFrame | None = None,
                       threshold: str = "threshold_days", palette: Mapping[str, str] | None = None,
                       title: str | None = None, ax: Axes | None = None) -> Axes:
    """Median days per stage (bars), the 90th percentile (ticks) and the stuck threshold (diamonds).

    ``data`` is :func:`funnelkit.metrics.stage_time.time_in_stage` output; ``thresholds`` is
    :func:`~funnelkit.metrics.stage_time.stage_thresholds` output.
    """
    ax = _new_ax(ax)
    title = title or _("Time in stage (visits ended in the period)")
    order = _stage_order(data, stage)
    palette = palette or stage_palette(order)
    d = data.assign(_s=data[stage].astype(str)).set_index("_s").reindex(order)
    if d[median].isna().all():
        return _empty(ax, title, _("Days in stage"), _("Stage"))
    y = np.arange(len(order))
    ax.barh(y, d[median].fillna(0), color=[palette[s] for s in order], height=0.6, label=_("median"))
    if p90 and p90 in d:
        ax.scatter(d[p90], y, marker="|", s=250, color="#333333", label=_("90th percentile"), zorder=3)
    if thresholds is not None and not thresholds.empty:
        t = thresholds.assign(_s=thresholds[stage].astype(str)).set_index("_s").reindex(order)
        ax.scatter(t[threshold], y, marker="D", s=30, color="#C44E52", label=_("stuck threshold"), zorder=4)
    ax.set_yticks(y, labels=order)
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel(_("Days in stage"))
    ax.set_ylabel(_("Stage"))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


#: Plain day ticks for log-scaled day axes (1 day, 3 days, a week, two weeks, a month, ...).
DAY_TICKS = (0.1, 0.25, 0.5, 1, 3, 7, 14, 30, 90, 180, 365, 730)


def _day_ticks(ax: Axes, axis: str = "x") -> None:
    """Label a log day axis with plain numbers of days (1, 3, 7, 14, 30, 90) instead of 10^k."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator
    a = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    lo, hi = min(lo, hi), max(lo, hi)
    ticks = [t for t in DAY_TICKS if lo <= t <= hi] or [t for t in DAY_TICKS if t <= hi][-1:]
    a.set_major_locator(FixedLocator(ticks))
    a.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    a.set_minor_locator(NullLocator())
    a.set_minor_formatter(NullFormatter())


def duration_plot(data: pd.DataFrame, *, stage: str = "stage", days: str = "days",
                  stages: Sequence[str] | None = None, thresholds: pd.DataFrame | None = None,
                  threshold: str = "threshold_days", palette: Mapping[str, str] | None = None,
                  title: str | None = None, ax: Axes | None = None) -> Axes:
    """Distribution of days spent per stage visit (box plots on a log scale), with stuck thresholds.

    ``data`` has one row per visit (e.g. :func:`funnelkit.plot.visit_days`).
    """
    ax = _new_ax(ax)
    title = title or _("How long visits last, per stage")
    order = list(stages) if stages is not None else _stage_order(data, stage)
    palette = palette or stage_palette(order)
    labels = label_text(data[stage])
    groups = [data.loc[labels == s, days].dropna().to_numpy(dtype=float) for s in order]
    if not any(len(g) for g in groups):
        return _empty(ax, title, _("Days in stage (log scale)"), _("Stage"))
    groups = [np.clip(g, 0.01, None) if len(g) else np.array([np.nan]) for g in groups]
    orient = ({"orientation": "horizontal"} if _MPL >= (3, 10) else {"vert": False})
    bp = ax.boxplot(groups, patch_artist=True, showfliers=False, widths=0.6, **orient)
    for patch, s in zip(bp["boxes"], order):
        patch.set_facecolor(palette[s])
        patch.set_alpha(0.85)
    ax.set_xscale("log")
    ax.set_yticks(np.arange(1, len(order) + 1), labels=order)
    ax.invert_yaxis()
    if thresholds is not None and not thresholds.empty:
        t = thresholds.assign(_s=thresholds[stage].astype(str)).set_index("_s").reindex(order)
        ax.scatter(t[threshold], np.arange(1, len(order) + 1), marker="D", s=30, color="#C44E52",
                   label=_("stuck threshold"), zorder=4)
        # outside the axes (below the x label), so it never covers a box
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)
    _day_ticks(ax)
    ax.set_title(title)
    ax.set_xlabel(_("Days in stage (log scale)"))
    ax.set_ylabel(_("Stage"))
    return ax


def win_rate_by_time_plot(data: pd.DataFrame, *, stage: str = "stage", bucket: str = "bucket",
                          win_rate: str = "win_rate", deals: str | None = "deals", min_deals: int = 5,
                          palette: Mapping[str, str] | None = None,
                          title: str | None = None, ax: Axes | None = None) -> Axes:
    """Win rate of closed deals by how long they sat in each stage (one line per stage).

    ``data`` is :func:`funnelkit.metrics.stage_time.win_rate_by_time_in_stage` output. Points
    resting on fewer than ``min_deals`` closed deals are left out (a 1-deal bucket is 0% or 100%).
    """
    if deals and deals in data:
        data = data.assign(**{win_rate: data[win_rate].where(data[deals] >= min_deals)})
    ax = _new_ax(ax)
    title = title or _("Win rate by time spent in stage")
    if data.empty or data[win_rate].isna().all():
        return _empty(ax, title, _("Days in stage"), _("Win rate (%)"))
    order = _stage_order(data, stage)
    palette = palette or stage_palette(order)
    buckets = _stage_order(data, bucket)
    for s in order:
        d = data[data[stage].astype(str) == s].assign(_b=lambda x: x[bucket].astype(str))
        d = d.set_index("_b").reindex(buckets)
        if d[win_rate].notna().any():
            ax.plot(np.arange(len(buckets)), d[win_rate].to_numpy(dtype=float), marker="o",
                    color=palette[s], label=s)
    ax.set_xticks(np.arange(len(buckets)), labels=[display_value(bucket, b) for b in buckets])
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.set_xlabel(_("Days in stage (buckets with at least {n} closed deals)").format(n=min_deals) if deals
                  else _("Days in stage"))
    ax.set_ylabel(_("Win rate of closed deals (%)"))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title=_("Stage"))
    return ax


# ----------------------------------------------------------------------------------- days to close

def days_to_close_plot(data: pd.DataFrame, *, status: str = "status", mean: str = "mean_days",
                       median: str = "median_days", deals: str = "deals", by: str | None = None,
                       top: int | None = TOP_N, title: str | None = None, ax: Axes | None = None) -> Axes:
    """Median (bars) and mean (markers) days from creation to close, won vs lost.

    ``data`` is :func:`funnelkit.metrics.closing.days_to_close` output; with ``by`` the bars
    are grouped by that column: the ``top`` groups with the most closed deals, the rest lumped into
    ``other (K more)`` (its mean is the deal-weighted mean; its median cannot be combined and is
    not drawn).
    """
    title = title or _("Days to close: won vs lost")
    d = data[data[status].astype(str).isin(["won", "lost"])]
    if by and len(d):
        d = _lump_groups(d, by, status, deals, top)
    groups = _stage_order(d, by) if by and len(d) else [""]
    ax = _new_ax(ax, (FIGSIZE[0], _bar_height(len(groups), per_row=0.42)))
    if d.empty or d[[median, mean]].isna().all().all():
        return _empty(ax, title, _("Days from created to closed"), "")
    statuses = ["won", "lost"]
    height = 0.38
    labels: list[tuple] = []
    for j, st in enumerate(statuses):
        rows = d[d[status].astype(str) == st]
        if by:
            rows = rows.assign(_g=rows[by].astype(str)).set_index("_g").reindex(groups)
        y = np.arange(len(groups)) + (j - 0.5) * height
        med = rows[median].to_numpy(dtype=float)
        n = rows[deals].fillna(0).to_numpy() if deals in rows else [np.nan] * len(groups)
        ax.barh(y, np.nan_to_num(med), height=height, color=STATUS_COLORS[st],
                label=_("{status}: median (bar)").format(status=_status(st)), alpha=0.9)
        ax.scatter(rows[mean].to_numpy(dtype=float), y, marker="o", color="#222222", s=18, zorder=3,
                   label=_("mean (dot)") if j == 0 else None)
        means = rows[mean].to_numpy(dtype=float)
        labels.extend((yy, m, mu, k) for yy, m, mu, k in zip(y, med, means, n)
                      if np.isfinite(m) or np.isfinite(mu))
    ax.set_yticks(np.arange(len(groups)), labels=[_short(g) for g in groups] if by else [""])
    ax.invert_yaxis()
    right = np.nanmax(d[[median, mean]].to_numpy(dtype=float))
    right = right if np.isfinite(right) and right > 0 else 1.0
    # The numbers sit in a column right of every bar and dot, each one named: the bar is the
    # median, the dot the mean (a label beside the dot would pass the mean off as the median).
    col = right * 1.04
    for yy, m, mu, k in labels:
        parts = ([_("median {days} d").format(days=formatting.number(m))] if np.isfinite(m) else []) + \
                ([_("mean {days} d").format(days=formatting.number(mu))] if np.isfinite(mu) else []) + [f"n={int(k)}"]
        ax.text(col, yy, " · ".join(parts), va="center", fontsize=7.5, color="#333333")
    ax.set_xlim(0, right * 1.75)
    ax.set_xticks([t for t in ax.get_xticks() if 0 <= t <= right * 1.02])
    ax.set_title(title)
    ax.set_xlabel(_("Days from created to closed"))
    ax.set_ylabel(_by_name(by) if by else "")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


def _lump_groups(d: pd.DataFrame, by: str, status: str, deals: str, top: int | None) -> pd.DataFrame:
    """Long won/lost rows per group: the ``top`` groups by closed deals, the rest one ``other`` group."""
    totals = d.assign(_g=d[by].astype(str)).groupby("_g", sort=False)[deals].sum()
    totals = totals.sort_values(ascending=False, kind="stable")
    if top is None or len(totals) <= top + 1:
        return d
    keep = totals.index[:top].tolist()
    label = _("other ({n} more)").format(n=len(totals) - top)
    d = d.assign(**{by: d[by].astype(str)})
    parts = [_lump(rows, by, keep, label) for _s, rows in d.groupby(status, sort=False, observed=True)]
    out = pd.concat(parts, ignore_index=True)
    order = keep + [label]
    return out.assign(**{by: pd.Categorical(out[by], categories=order)}).sort_values([by, status])


def survival_plot(survival: pd.DataFrame, *, median_days: float | None = None,
                  title: str | None = None, ax: Axes | None = None) -> Axes:
    """Kaplan-Meier curve: share of deals not yet closed against days since creation.

    ``survival`` is ``CloseTimeSurvival.survival_function_`` (index: days; first column: the
    estimate). Open deals count as censored, so the curve does not pretend they never close.
    """
    ax = _new_ax(ax)
    title = title or _("Share of deals still open, by age (Kaplan-Meier)")
    if survival is None or len(survival) == 0:
        return _empty(ax, title, _("Days since created"), _("Still open (%)"))
    col = survival.columns[0]
    ax.step(survival.index.to_numpy(dtype=float), survival[col].to_numpy(dtype=float), where="post",
            color="#4C72B0")
    xs = survival.index.to_numpy(dtype=float)
    ys = survival[col].to_numpy(dtype=float)
    for d, ls in ((30, ":"), (60, "--"), (90, "-.")):
        if len(xs) and d > xs.max():
            continue
        ax.axvline(d, color="#999999", lw=0.8, ls=ls)
        i = np.searchsorted(xs, d, side="right") - 1   # the step value at d (as p_close_within)
        closed = ("\n" + _("{pct} closed").format(pct=formatting.percent(1 - ys[i]))
                  if i >= 0 and np.isfinite(ys[i]) else "")
        ax.text(d, 1.0, " " + formatting.days(d) + closed, fontsize=7.5, color="#555555", va="top", ha="left")
    if median_days is not None and np.isfinite(median_days):
        ax.axhline(0.5, color="#C44E52", lw=0.8)
        ax.annotate(_("median {days}").format(days=formatting.days(median_days)), (median_days, 0.5), xytext=(5, 5),
                    textcoords="offset points", fontsize=8.5, color="#C44E52")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.set_title(title)
    ax.set_xlabel(_("Days since created"))
    ax.set_ylabel(_("Deals still open (%)"))
    return ax


# --------------------------------------------------------------------------------------- deal size

def deal_size_trend_plot(data: pd.DataFrame, *, x: str = "month",
                         columns: Sequence[str] = ("mean", "median", "trimmed_mean"),
                         deals: str | None = "deals", currency: str | None = None,
                         title: str | None = None, ax: Axes | None = None) -> Axes:
    """Monthly won deal size: mean, median and 10% trimmed mean as lines.

    ``data`` is :func:`funnelkit.metrics.size.deal_size_by_month` output.
    """
    ax = _new_ax(ax)
    title = title or _("Won deal size by month")
    ylabel = _("Won deal size ({currency})").format(currency=_unit(currency))
    if data.empty or data[list(columns)].isna().all().all():
        return _empty(ax, title, _("Month"), ylabel)
    xs = data[x].astype(str).to_numpy()
    styles = {"mean": ("#C44E52", "o", _("mean")), "median": ("#4C72B0", "s", _("median")),
              "trimmed_mean": ("#55A868", "^", _("10% trimmed mean"))}
    for c in columns:
        colour, marker, label = styles.get(c, (None, "o", c))
        ax.plot(xs, data[c].to_numpy(dtype=float), marker=marker, color=colour, label=label)
    if deals and deals in data:
        for xi, (v, n) in enumerate(zip(data[columns[0]], data[deals])):
            if pd.notna(v):
                ax.annotate(f"n={int(n)}", (xi, v), xytext=(0, 6), textcoords="offset points",
                            ha="center", fontsize=7.5, color="#555555")
    money_axis(ax, currency or "")
    shown = data[list(columns)].to_numpy(dtype=float)
    if not np.nanmax(np.abs(shown)) > 0:       # all zero: one "0" tick, not a column of them
        ax.set_ylim(0, 1)
        ax.set_yticks([0])
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.set_xlabel(_("Month closed"))
    ax.set_ylabel(ylabel)
    ax.legend(loc="lower left")
    return ax


def deal_size_plot(data: pd.DataFrame, *, amount: str = "amount", outlier: str | None = None,
                   stats: Mapping[str, float | None] | None = None, currency: str | None = None,
                   title: str | None = None, ax: Axes | None = None) -> Axes:
    """Histogram of won deal amounts (log scale) with mean, median, trimmed mean and outliers marked.

    ``stats`` is :func:`funnelkit.metrics.size.deal_size` output; ``outlier`` names a boolean
    column flagging outlier deals (drawn as a red rug).
    """
    ax = _new_ax(ax)
    title = title or _("Won deal sizes")
    xlabel = _("Deal amount ({currency}, log scale)").format(currency=_unit(currency))
    x = data[amount].to_numpy(dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    if not len(x):
        return _empty(ax, title, xlabel, "Won deals (count)")
    bins = np.logspace(np.log10(x.min()), np.log10(x.max()) + 1e-9, 30)
    ax.hist(x, bins=bins, color="#8C8C8C", alpha=0.8)
    ax.set_xscale("log")
    for key, colour, ls in (("mean", "#C44E52", "-"), ("median", "#4C72B0", "--"),
                            ("trimmed_mean", "#55A868", "-.")):
        v = (stats or {}).get(key)
        if v is not None and np.isfinite(v) and v > 0:
            ax.axvline(v, color=colour, ls=ls, lw=1.5, label=_(_STAT_LINES[key]).format(amount=money(v, currency or '')))
    if outlier and outlier in data:
        flag = data[outlier]
        mask = flag.notna().to_numpy() & np.array([bool(v) for v in flag], dtype=bool)
        o = data.loc[mask, amount].to_numpy(dtype=float)
        o = o[np.isfinite(o) & (o > 0)]
        if len(o):
            ax.plot(o, np.zeros_like(o), "|", color="#C44E52", ms=14, mew=2, label=_("outliers ({n})").format(n=len(o)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: money(v)))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_("Won deals (count)"))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


_STAT_LINES = {"mean": N_("mean {amount}"), "median": N_("median {amount}"), "trimmed_mean": N_("trimmed mean {amount}")}


# ------------------------------------------------------------------------ amount by source/product

def amount_by_plot(data: pd.DataFrame, *, by: str = "source", value: str = "won_amount",
                   win_rate: str | None = "win_rate", currency: str | None = None, top: int = 12,
                   title: str | None = None, ax: Axes | None = None) -> Axes:
    """Won amount per group (bars, largest first), labelled with the group's win rate.

    ``data`` is :func:`funnelkit.metrics.breakdown.amount_by` output.
    """
    title = title or _("Won amount and win rate by {by}").format(by=_by_word(by))
    xlabel = _("Won amount ({currency})").format(currency=_unit(currency))
    d = top_categories(data, by, value, top)
    ax = _new_ax(ax, (FIGSIZE[0], _bar_height(len(d))))
    if d.empty or not d[value].fillna(0).any():
        return _empty(ax, title, xlabel, _by_name(by))
    notes = ["  " + _("win rate {pct}").format(pct=formatting.percent(r)) if win_rate and win_rate in d and pd.notna(r) else ""
             for r in (d[win_rate] if win_rate and win_rate in d else [None] * len(d))]
    return _money_bars(ax, d[by].astype(str).tolist(), d[value].to_numpy(dtype=float), notes,
                       "#4C72B0", currency, title, xlabel, _by_name(by), room=1.45)


def _money_bars(ax: Axes, labels: list, vals: np.ndarray, notes: list[str], colours, currency,
                title: str, xlabel: str, ylabel: str, room: float) -> Axes:
    """Horizontal bars of amounts, each labelled with its amount plus a note, top to bottom."""
    y = np.arange(len(labels))
    known = np.where(np.isfinite(vals), vals, 0.0)
    ax.barh(y, known, color=colours, height=0.65)
    top_v = known.max() if len(known) and known.max() > 0 else 1.0
    for i, (v, note) in enumerate(zip(vals, notes)):
        text = money(v, currency or "") if np.isfinite(v) else _("unknown")
        ax.text(known[i] + top_v * 0.01, i, text + note, va="center", fontsize=8)
    ax.set_yticks(y, labels=[_short(t) for t in labels])
    ax.invert_yaxis()
    ax.set_xlim(0, top_v * room)
    money_axis(ax, currency or "", axis="x")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", visible=False)
    return ax


def product_mix_plot(data: pd.DataFrame, *, by: str = "product", amount: str = "won_amount",
                     count: str = "won_deals", mean: str = "mean_size", currency: str | None = None,
                     top: int | None = TOP_N, title: str | None = None) -> Figure:
    """Three panels side by side: won amount, number of won deals and mean size per group.

    Shows when many small contracts bring in more than a few big ones. The ``top`` groups by won
    amount (by won deals when no amount is known) are shown, the rest as one ``other (K more)``
    row; the figure grows with the number of rows. A panel whose values are all unknown says so
    instead of drawing an empty axis. Returns the Figure.
    """
    known_amount = pd.to_numeric(data[amount], errors="coerce").fillna(0).abs().sum() > 0 if len(data) else False
    d = top_categories(data, by, amount if known_amount else count, top)
    fig, axes = plt.subplots(1, 3, figsize=(10, _bar_height(len(d), base=1.5, least=3.0)), dpi=DPI,
                             sharey=True)
    title = title or _("Won amount, won deals and mean size by {by}").format(by=_by_word(by))
    labels = [_short(t, 24) for t in d[by].astype(str)]
    y = np.arange(len(d))
    cur = _unit(currency)
    panels = ((amount, _("Won amount ({currency})").format(currency=cur), "#4C72B0", True),
              (count, _("Won deals (count)"), "#55A868", False),
              (mean, _("Mean won deal size ({currency})").format(currency=cur), "#DD8452", True))
    for ax, (col, xlabel, colour, is_money) in zip(axes, panels):
        vals = pd.to_numeric(d[col], errors="coerce").to_numpy(dtype=float) if len(d) else np.array([])
        finite = vals[np.isfinite(vals)]
        ax.set_xlabel(xlabel)
        ax.grid(axis="y", visible=False)
        if not len(finite) or not finite.any():
            # nothing to draw: say so, and no axis of 0 0 0 1 1 1
            what = _("no amount known") if len(finite) < len(vals) or not len(vals) else _("all zero")
            if len(d):
                ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="#777777")
            ax.set_xticks([])
            continue
        ax.barh(y, np.nan_to_num(vals), color=colour, height=0.65)
        for i, v in enumerate(vals):
            text = (money(v) if is_money else formatting.number(v)) if np.isfinite(v) else _("unknown")
            ax.text(v if np.isfinite(v) else 0, i, " " + text, va="center", fontsize=8)
        ax.set_xlim(0, finite.max() * 1.45)
        if is_money:
            money_axis(ax, currency or "", axis="x")
        else:
            _count_axis(ax, "x")
        ax.xaxis.set_major_locator(_few_ticks(integer=not is_money))
    if len(d):
        axes[0].set_yticks(y, labels=labels)
        axes[0].invert_yaxis()
    else:
        axes[0].set_yticks([])
    axes[0].set_ylabel(_by_name(by))
    if not len(d):
        axes[1].text(0.5, 0.5, _("no data in this period"), ha="center", va="center",
                     transform=axes[1].transAxes, color="#777777")
    fig.suptitle(title, fontweight="bold", fontsize=11)
    axes[0].set_title(_("total won"))
    axes[1].set_title(_("how many"))
    axes[2].set_title(_("how big"))
    fig.tight_layout()
    fig.align_xlabels(axes)      # a panel without ticks must not raise its label into its neighbour's ticks
    return fig


def _few_ticks(integer: bool = False):
    """At most four ticks on a narrow panel's value axis, so its labels never touch."""
    from matplotlib.ticker import MaxNLocator
    return MaxNLocator(nbins=3, min_n_ticks=2, steps=[1, 2, 2.5, 5, 10], integer=integer)


# ---------------------------------------------------------------------------------------- forecast

def expected_won_plot(data: pd.DataFrame, *, by: str = "stage", value: str = "expected_won_amount",
                      count: str | None = "open_deals", currency: str | None = None,
                      palette: Mapping[str, str] | None = None, title: str | None = None,
                      ax: Axes | None = None) -> Axes:
    """Expected won amount from open deals per group (bars; stage colours when ``by="stage"``).

    ``data`` is :func:`funnelkit.metrics.forecast.expected_won_by` output.
    """
    title = title or _("Expected won amount from open deals, by {by}").format(by=_by_word(by))
    xlabel = _("Expected won amount ({currency})").format(currency=_unit(currency))
    if by != "stage" and len(data):
        data = top_categories(data, by, value)
    ax = _new_ax(ax, (FIGSIZE[0], _bar_height(len(data))))
    if data.empty or not data[value].fillna(0).any():
        return _empty(ax, title, xlabel, _by_name(by))
    order = _stage_order(data, by)
    d = data.assign(_g=data[by].astype(str)).groupby("_g", observed=True, sort=False)[
        [c for c in (value, count) if c and c in data]].sum(min_count=1).reindex(order)
    if by == "stage":
        palette = palette or stage_palette(order)
        colours = [palette[s] for s in order]
    else:
        colours = "#4C72B0"
    notes = (["  " + _("({n} open deals)").format(n=int(n)) if pd.notna(n) else "" for n in d[count]]
             if count and count in d else [""] * len(d))
    return _money_bars(ax, list(order), d[value].to_numpy(dtype=float), notes, colours, currency,
                       title, xlabel, _by_name(by), room=1.5)


def calibration_plot(data: pd.DataFrame, *, predicted: str = "predicted", observed: str = "observed",
                     count: str | None = "deals", title: str | None = None, ax: Axes | None = None) -> Axes:
    """Calibration of the win forecast: mean predicted win probability vs the observed win share.

    ``data`` is ``ForecastBacktest.calibration`` (one row per probability bin). Points on the
    diagonal mean the forecast says what actually happens; marker size is the number of deals.
    """
    ax = _new_ax(ax, figsize=(4.6, 4.0))
    title = title or _("Forecast calibration (backtest)")
    ax.plot([0, 1], [0, 1], color="#999999", ls="--", lw=1, label=_("perfect calibration"))
    if data is None or data.empty:
        return _empty(ax, title, _("Predicted win probability (%)"), _("Observed win share (%)"))
    sizes = 20 + 180 * (data[count] / data[count].max()).to_numpy(dtype=float) if count and count in data else 40
    # points at 0% or 100% sit on the frame: a small margin and no clipping keep them whole
    ax.scatter(data[predicted], data[observed], s=sizes, color="#4C72B0", zorder=3, label=_("forecast bins"),
               clip_on=False)
    ax.plot(data[predicted], data[observed], color="#4C72B0", lw=1, clip_on=False)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlim(-0.04, 1.04)
    ax.set_ylim(-0.04, 1.04)
    ax.set_title(title)
    ax.set_xlabel(_("Predicted win probability (%)"))
    ax.set_ylabel(_("Observed win share (%)"))
    ax.legend(loc="lower right")      # below the diagonal: the corner a useful forecast leaves empty
    return ax


# ------------------------------------------------------------------------------------------ tables

#: How metric-table columns are shown: ``column -> (header, kind)``. ``{cur}`` in a header becomes
#: `` (EUR)`` (the currency). Kinds: ``money`` (thousands separators, no decimals), ``pct`` (1 decimal
#: and %), ``days`` (1 decimal), ``count`` (thousands separators), ``dec1`` (1 decimal), ``dec3``,
#: ``date`` (the day), ``text``.
DISPLAY_NAMES: dict[str, tuple[str, str]] = {
    "stage": (N_("Stage"), "text"), "source": (N_("Source"), "text"), "product": (N_("Product"), "text"),
    "owner": (N_("Owner"), "text"), "deal_id": (N_("Deal"), "text"), "status": (N_("Status"), "text"),
    "bucket": (N_("Days in stage"), "text"), "month": (N_("Month"), "text"),
    "visits": (N_("Visits"), "count"), "deals": (N_("Deals"), "count"), "won": (N_("Won"), "count"),
    "lost": (N_("Lost"), "count"), "reached": (N_("Reached"), "count"),
    "mean_days": (N_("Mean (days)"), "days"), "median_days": (N_("Median (days)"), "days"),
    "p90_days": (N_("90th percentile (days)"), "days"), "days_in_stage": (N_("Days in stage"), "days"),
    "threshold_days": (N_("Stuck threshold (days)"), "days"),
    "median_days_to_close": (N_("Median days to close, won (days)"), "days"),
    "amount": (N_("Amount{cur}"), "money"), "won_amount": (N_("Won amount{cur}"), "money"),
    "won_deals": (N_("Won deals"), "count"), "lost_deals": (N_("Lost deals"), "count"),
    "win_rate": (N_("Win rate"), "pct"), "conversion": (N_("Conversion"), "pct"),
    "mean_size": (N_("Mean won deal size{cur}"), "money"), "share": (N_("Share of won amount"), "pct"),
    "open_amount": (N_("Open amount{cur}"), "money"), "open_deals": (N_("Open deals"), "count"),
    "expected_won_deals": (N_("Expected won deals"), "dec1"),
    "expected_won_amount": (N_("Expected won amount{cur}"), "money"),
    "p_win": (N_("Win probability"), "pct"), "mean": (N_("Mean{cur}"), "money"), "median": (N_("Median{cur}"), "money"),
    "trimmed_mean": (N_("10% trimmed mean{cur}"), "money"),
    "created_at": (N_("Created"), "date"), "closed_at": (N_("Closed"), "date"),
    "low_fence": (N_("Low fence{cur}"), "money"), "high_fence": (N_("High fence{cur}"), "money"),
    "side": (N_("Outlier side"), "text"),
    "model": (N_("Model"), "text"), "brier": (N_("Brier score (lower is better)"), "dec3"),
    "scored": (N_("Forecasts scored"), "count"), "as_of_dates": (N_("Backtest dates"), "count"),
    "skill_vs_baseline": (N_("Improvement on the baseline"), "pct"),
    # will we hit the number
    "won_so_far_amount": (N_("Won so far{cur}"), "money"), "expected_amount": (N_("Expected landing{cur}"), "money"),
    "low_amount": (N_("80% range from{cur}"), "money"), "high_amount": (N_("80% range to{cur}"), "money"),
    "target": (N_("Target{cur}"), "money"), "p_reach_target": (N_("P(reach target)"), "pct"),
    "compared": (N_("Won by the same point of"), "text"),
    "since": (N_("From"), "date"), "until": (N_("To (exclusive)"), "date"),
    "forecast": (N_("Forecast"), "text"), "forecasts": (N_("Weekly forecasts"), "count"),
    "mape": (N_("Mean abs. error"), "pct"), "bias": (N_("Bias (+ = too high)"), "pct"),
    "range_hit_rate": (N_("Actual inside the 80% range"), "pct"),
    # where the pipeline went
    "amount_before": (N_("Amount before{cur}"), "money"), "amount_after": (N_("Amount after{cur}"), "money"),
    "start_amount": (N_("Amount at the start{cur}"), "money"), "end_amount": (N_("Amount at the end{cur}"), "money"),
    "won_share": (N_("Won share"), "pct"), "amount_unknown": (N_("Amount unknown (deals)"), "count"),
    "pull_ins": (N_("Moved earlier"), "count"),
}


#: Codes in text columns shown in the reader's language by :func:`format_table` (``column -> code -> text``).
_STAGE_ENDS = {"(entered)": N_("(entered)"), "(left the window)": N_("(left the window)"), **STATUS_LABELS}
_NOT_SET = {"(not set)": N_("(not set)")}
VALUE_LABELS: dict[str, dict[str, str]] = {
    "status": STATUS_LABELS, "side": {"high": N_("high"), "low": N_("low")},
    "compared": {"this period": N_("this period"), "previous period": N_("previous period"),
                 "a year before": N_("a year before")},
    "from": _STAGE_ENDS, "to": _STAGE_ENDS,
    "model": {"stage + time in stage": N_("stage + time in stage"), "stage only (baseline)": N_("stage only (baseline)")},
    "forecast": {"landing forecast": N_("landing forecast"), "stage-weighted pipeline": N_("stage-weighted pipeline"),
                 "closed + commit": N_("closed + commit")},
    "source": _NOT_SET, "product": _NOT_SET, "owner": _NOT_SET, "lost_reason": _NOT_SET,
}
VALUE_LABELS["movement"] = MOVEMENT_LABELS = {
    "created": N_("created"), "pulled_in": N_("pulled in"), "reopened": N_("reopened"), "amount_up": N_("amount up"),
    "amount_down": N_("amount down"), "pushed_out": N_("pushed out"), "won": N_("won"), "lost": N_("lost")}
#: Headers of metric-table columns outside :data:`DISPLAY_NAMES` (shown as ``Column name``), translated
#: where shown; their format is inferred from the values as for any other column.
_OTHER_HEADERS = (N_("Period"), N_("Movement"), N_("Amount before"), N_("Amount after"), N_("At"), N_("Change"),
                  N_("Start amount"), N_("End amount"), N_("From"), N_("To"), N_("Lost reason"),
                  N_("Open amount unknown"), N_("Won amount unknown"), N_("Pushes"), N_("Past due"),
                  N_("Expected close date"), N_("Days past due"), N_("Reason"), N_("Week"), N_("Cohort"),
                  N_("Days pushed"), N_("Pushed"), N_("Still open"))
_DAY_BUCKET = re.compile(r"^(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?)|(\+)) days$")
_DATE_SPAN = re.compile(r"^(\d{4}-\d{2}-\d{2}) to (\d{4}-\d{2}-\d{2})$")


def display_value(column: str, value):
    """A value of a metric table's text column as a reader sees it: contract codes (``won``,
    ``(entered)``), day buckets (``0-7 days``) and date spans (``2025-04-01 to 2025-06-30``) in the
    report's language (:mod:`funnelkit.i18n`); anything else (names from the data) as it is.

    Examples
    --------
    >>> from funnelkit.i18n import use_language
    >>> with use_language("zh"):
    ...     display_value("status", "won"), display_value("bucket", "90+ days"), display_value("source", "Web")
    ('赢单', '90+ 天', 'Web')
    """
    if not isinstance(value, str) or get_language() == "en":    # English: the codes as the data has them
        return value
    labels = VALUE_LABELS.get(column, {})
    if value in labels:
        return _(labels[value])
    m = _DAY_BUCKET.match(value)
    if m and column in ("bucket", "days_in_stage"):
        return (_("{low}+ days").format(low=m.group(1)) if m.group(3) else
                _("{low}-{high} days").format(low=m.group(1), high=m.group(2)))
    m = _DATE_SPAN.match(value)
    if m and column == "period":
        return _("{start} to {end}").format(start=formatting.date(m.group(1)), end=formatting.date(m.group(2)))
    return value


def format_table(data: pd.DataFrame, *, currency: str = "", money_cols: Sequence[str] = (),
                 pct_cols: Sequence[str] = (), days_cols: Sequence[str] = (), count_cols: Sequence[str] = (),
                 rename: Mapping[str, str] | None = None, names: bool = True) -> pd.DataFrame:
    """A display copy of a metrics table: readable headers with units, every number formatted.

    Columns listed in :data:`DISPLAY_NAMES` get their header (``won_amount`` -> ``Won amount (EUR)``,
    ``mean_days`` -> ``Mean (days)``) and format (money with thousands separators, percentages with
    one decimal, days with one decimal, counts as whole numbers) without being named here;
    ``money_cols``/``pct_cols``/``days_cols``/``count_cols`` set the format of other columns, and
    ``rename`` overrides headers. ``names=False`` keeps the column names. The result is plain text
    with a hidden (plain) index, so its HTML escapes any text from the data and shows no row numbers.
    """
    out = data.copy()
    cur = f" ({currency})" if currency else ""
    kinds = {c: DISPLAY_NAMES[c][1] for c in out.columns if c in DISPLAY_NAMES}
    kinds.update({c: "money" for c in money_cols})
    kinds.update({c: "pct" for c in pct_cols})
    kinds.update({c: "days" for c in days_cols})
    kinds.update({c: "count" for c in count_cols})
    for c in out.columns:
        kind = kinds.get(c)
        if kind is None:
            kind = ("yesno" if pd.api.types.is_bool_dtype(out[c]) else
                    "count" if pd.api.types.is_integer_dtype(out[c]) else
                    "dec1" if pd.api.types.is_float_dtype(out[c]) else
                    "date" if pd.api.types.is_datetime64_any_dtype(out[c]) else "text")
        out[c] = [table_cell(v, kind) for v in out[c]]
        if kind == "text":           # contract codes (won, lost, high, ...) in the report's language
            out[c] = [display_value(c, v) for v in out[c]]
    headers = {}
    for c in out.columns:
        if c in DISPLAY_NAMES and names:
            headers[c] = _(DISPLAY_NAMES[c][0]).replace("{cur}", cur)
        elif kinds.get(c) == "money" and currency:
            headers[c] = f"{c if not names else _(c.replace('_', ' ').capitalize())}{cur}"
        elif names:
            headers[c] = _(str(c).replace("_", " ").capitalize())
    headers.update(rename or {})
    out = out.rename(columns=headers)
    out.index = pd.RangeIndex(len(out))
    return out


def visit_days(ds: Dataset, period: PeriodLike) -> pd.DataFrame:
    """One row per stage visit that ended in ``period`` (seen at its ``as_of``): ``stage``, ``days``.

    The visits :func:`funnelkit.metrics.stage_time.time_in_stage` summarises, for
    :func:`duration_plot`.
    """
    from .metrics.stage_time import ended_visits
    return ended_visits(ds, as_period(period, ds))[["deal_id", "stage", "days"]].reset_index(drop=True)


__all__.append("visit_days")


# ------------------------------------------------------------------------- will we hit the number

def landing_plot(data: pd.DataFrame, *, target: float | None = None, currency: str = "",
                 title: str | None = None, ax: Axes | None = None) -> Axes:
    """Where the period will land, week by week: won so far, the forecast and its range, the target.

    ``data`` is :func:`funnelkit.metrics.landing_by_week` output (columns ``at``, ``won_so_far``,
    ``expected``, ``low``, ``high``). The band is the forecast's range (80% by default); the solid
    line the amount won so far; the dashed line the target.
    """
    ax = _new_ax(ax)
    title = title or _("Where the period will land, week by week")
    xlabel, ylabel = _("Week starting"), _("Won amount ({currency})").format(currency=_unit(currency))
    if data is None or data.empty or data["expected"].isna().all():
        return _empty(ax, title, xlabel, ylabel, note=_("no forecast: amounts unknown or no data"))
    x = pd.to_datetime(data["at"])
    ax.fill_between(x, data["low"], data["high"], color="#4C72B0", alpha=0.18, lw=0, label=_("forecast range"))
    ax.plot(x, data["expected"], color="#4C72B0", lw=1.8, marker="o", ms=3, label=_("forecast (expected)"))
    ax.plot(x, data["won_so_far"], color=STATUS_COLORS["won"], lw=2, label=_("won so far"))
    if target is not None:
        ax.axhline(float(target), color="#C44E52", ls="--", lw=1.2,
                   label=_("target {amount}").format(amount=money(target, currency)))
    ax.set_ylim(bottom=0)
    money_axis(ax, currency)
    _day_month_axis(ax, plain="%b %d")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, fontsize="small", frameon=False)
    return ax


def accuracy_plot(by_week: pd.DataFrame, *, title: str | None = None, ax: Axes | None = None) -> Axes:
    """How good the landing forecast has been: mean absolute error by week of the period, against
    the stage-weighted pipeline baseline (``ForecastAccuracy.by_week``)."""
    ax = _new_ax(ax)
    title = title or _("Forecast error by week of the quarter")
    xlabel, ylabel = _("Week of the quarter (0 = first day)"), _("Mean absolute error (%)")
    if by_week is None or by_week.empty or by_week["mape"].isna().all():
        return _empty(ax, title, xlabel, ylabel, note=_("no past quarter to score"))
    ax.plot(by_week["week"], by_week["mape"], color="#4C72B0", marker="o", ms=3, lw=1.8, label=_("landing forecast"))
    ax.plot(by_week["week"], by_week["weighted_mape"], color="#8C8C8C", marker="s", ms=3, lw=1.2, ls="--",
            label=_("stage-weighted pipeline"))
    if "commit_mape" in by_week:
        ax.plot(by_week["week"], by_week["commit_mape"], color="#CCB974", marker="^", ms=3, lw=1.2, ls=":",
                label=_("closed + commit"))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize="small", frameon=False)
    return ax


__all__ += ["landing_plot", "accuracy_plot"]


# --------------------------------------------------------------------------------- pipeline movement

#: Display names of the waterfall's movements (:data:`funnelkit.metrics.movement.MOVEMENTS`), translated where shown.
MOVEMENT_LABELS = VALUE_LABELS["movement"]


def waterfall_plot(data: pd.DataFrame, *, start_amount: float, end_amount: float, movement: str = "movement",
                   change: str = "change", deals: str = "deals", unknown: str = "amount_unknown",
                   start_unknown: int = 0, end_unknown: int = 0, currency: str | None = None,
                   title: str | None = None, ax: Axes | None = None) -> Axes:
    """Where the pipeline went: the amount at the start, one floating bar per movement, the end.

    ``data`` is :attr:`funnelkit.metrics.PipelineWaterfall.movements`; ``change`` is each movement's
    signed effect, so the bars walk from ``start_amount`` to ``end_amount``. Additions are green,
    reductions red, the two totals grey; each bar is labelled with its amount and deal count. Deals
    whose amount is unknown (column ``unknown``, ``start_unknown``/``end_unknown`` for the totals) are
    said in the label ("+ 2 unknown", or "unknown" when no amount is known), never drawn as 0.
    """
    ax = _new_ax(ax, figsize=(10, 4))
    title = title or _("Where the pipeline went")
    labels = [_("start")] + [_(MOVEMENT_LABELS.get(str(m), str(m))) for m in data[movement]] + [_("end")]
    steps = data[change].to_numpy(dtype=float)
    level = float(start_amount) + np.concatenate([[0.0], np.cumsum(steps)])
    bottoms = np.concatenate([[0.0], np.minimum(level[:-1], level[1:]), [0.0]])
    heights = np.concatenate([[float(start_amount)], np.abs(steps), [float(end_amount)]])
    colours = ["#8C8C8C"] + [STATUS_COLORS["won"] if s > 0 else STATUS_COLORS["lost"] for s in steps] + ["#8C8C8C"]
    x = np.arange(len(labels))
    ax.bar(x, heights, bottom=bottoms, color=colours, width=0.7)
    counts = [""] + [_("{n} deals").format(n=int(n)) for n in data[deals]] + [""]
    n_deals = np.concatenate([[np.nan], data[deals].to_numpy(dtype=float), [np.nan]])
    missing = np.concatenate([[start_unknown], data[unknown].to_numpy(dtype=float) if unknown in data.columns
                              else np.zeros(len(data)), [end_unknown]])
    top = float(max((bottoms + heights).max(), 1.0))
    for i, (b, h, n, u, k) in enumerate(zip(bottoms, heights, counts, missing, n_deals)):
        amount = (_("unknown") if u and (u == k or h == 0) else
                  # on a line of its own: beside the amount it runs into the neighbouring labels
                  _("{amount}\n+ {n} unknown").format(amount=money(h, ""), n=int(u)) if u else money(h, ""))
        ax.text(i, b + h + top * 0.015, amount + (f"\n{n}" if n else ""), ha="center", va="bottom",
                fontsize=7)
    ax.set_xticks(x, labels=labels, rotation=30, ha="right")
    ax.set_ylim(0, top * 1.2)
    money_axis(ax, currency or "")
    ax.set_title(title)
    ax.set_ylabel(_("Open pipeline ({currency})").format(currency=_unit(currency)))
    ax.grid(axis="x", visible=False)
    return ax


def win_rate_by_pushes_plot(data: pd.DataFrame, *, pushes: str = "pushes", deals: str = "deals",
                            win_rate: str = "win_rate", title: str | None = None, ax: Axes | None = None) -> Axes:
    """Win rate of the deals closed in a period by how often their close date was pushed (bars,
    each labelled with its closed deals). ``data`` is :func:`funnelkit.metrics.win_rate_by_pushes`."""
    ax = _new_ax(ax)
    title = title or _("Win rate by number of pushed close dates")
    if data.empty or not data[deals].fillna(0).any():
        return _empty(ax, title, _("Pushes of the expected close date"), _("Win rate"))
    x = np.arange(len(data))
    rates = data[win_rate].to_numpy(dtype=float)
    ax.bar(x, np.nan_to_num(rates), color="#4C72B0", width=0.6)
    for i, (r, n) in enumerate(zip(rates, data[deals])):
        ax.text(i, (0 if np.isnan(r) else r) + 0.02, _("{n} deals").format(n=int(n)), ha="center", fontsize=8)
    ax.set_xticks(x, labels=[str(p) for p in data[pushes]])
    ax.set_ylim(0, 1.1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(title)
    ax.set_xlabel(_("Pushes of the expected close date"))
    ax.set_ylabel(_("Win rate (deals closed)"))
    return ax


def cohort_curves_plot(data: pd.DataFrame, *, cohort: str = "cohort", months: str = "months_since",
                       value: str = "won_share", complete: str = "complete", last: int = 8,
                       title: str | None = None, ax: Axes | None = None) -> Axes:
    """Cohort curves: share won by months since creation, one line per creation month (the ``last``
    cohorts). Points of months not yet ended are hollow and joined by a dotted line: not yet complete,
    not worse. ``data`` is :func:`funnelkit.metrics.cohort_conversion`."""
    ax = _new_ax(ax)
    title = title or _("Share won by months since creation, per creation month")
    if data.empty:
        return _empty(ax, title, _("Months since creation"), _("Share won"))
    names = sorted(data[cohort].unique())[-last:]
    cmap = plt.get_cmap("viridis")
    for i, name in enumerate(names):
        d = data[data[cohort] == name].sort_values(months)
        colour = cmap(i / max(len(names) - 1, 1))
        done = d[d[complete]]
        ax.plot(done[months], done[value], "-o", color=colour, label=name, markersize=4)
        if (~d[complete]).any():
            tail = d[~d[complete] | (d[months] == done[months].max())] if len(done) else d[~d[complete]]
            ax.plot(tail[months], tail[value], ":", color=colour)
            ax.plot(d.loc[~d[complete], months], d.loc[~d[complete], value], "o", mfc="white", color=colour,
                    markersize=4)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(title)
    ax.set_xlabel(_("Months since creation (hollow: month not over yet)"))
    ax.set_ylabel(_("Share won so far"))
    ax.legend(fontsize=7, ncol=2, title=_("created"), title_fontsize=7)
    return ax


__all__ += ["STATUS_LABELS", "OUTCOME_LABELS", "BY_WORDS", "MOVEMENT_LABELS", "waterfall_plot", "win_rate_by_pushes_plot", "cohort_curves_plot"]
