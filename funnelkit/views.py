"""Pre-rendered sliced views: slicing that survives the export to static HTML.

:func:`sliced_views` draws one chart per slice of the data (all deals, then each source, each
product, ...), embeds every chart as a small PNG, and adds a ``<select>`` with a few lines of inline
script that shows the chosen one. The exported HTML thus lets a reader switch slices without Python
or a kernel. Every piece of text from the data is HTML-escaped; the script contains no data text
(views are addressed by number only).

Examples
--------
>>> from funnelkit import plot as fkp                                  # doctest: +SKIP
>>> from funnelkit.metrics.stages import funnel                          # doctest: +SKIP
>>> sliced_views(ds, period, by=["source", "product"],                   # doctest: +SKIP
...              chart=lambda d, p: fkp.funnel_plot(funnel(d, p)))
"""

from __future__ import annotations

import base64
import html
import itertools
import logging
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .dataset import Dataset, label_counts
from .errors import ArgumentError, NoDataWarning
from .i18n import N_, _, ngettext
from .period import Period, PeriodLike, as_period
from .plot import DPI, chart_alt_text, png_data_uri

__all__ = ["sliced_views", "SlicedViews", "slice_values", "table_html", "csv_data_uri"]

log = logging.getLogger(__name__)

_counter = itertools.count(1)

#: The label of the unsliced view.
ALL = N_("All deals")


@dataclass
class SlicedViews:
    """An HTML block of pre-rendered views; displays itself in notebooks (``_repr_html_``).

    Attributes
    ----------
    html
        The complete block (``<div>`` with a ``<select>``, one ``<figure>`` per view, ``<script>``).
    labels
        The view labels in order, as plain (unescaped) text: ``["All deals", "source: Web", ...]``.
    """

    html: str
    labels: list[str]
    #: With ``section=``: the all-deals section (its other parts are shown after the block).
    section: Any = None

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html

    def __len__(self) -> int:
        return len(self.labels)


def slice_values(ds: Dataset, column: str, max_slices: int | None = None) -> list[str]:
    """The values of ``column`` to slice by: those with deals, most deals first (every one unless
    ``max_slices`` is given)."""
    counts = label_counts(ds.deals[column])
    values = sorted(counts.index, key=lambda v: (-counts[v], v))
    return values[:max_slices] if max_slices else values


def _name_slice(fig: Figure, label: str) -> None:
    """Add the slice to the chart's title: ``Funnel ... — source: Referrals``."""
    sup = getattr(fig, "_suptitle", None)
    if sup is not None and sup.get_text():
        sup.set_text(f"{sup.get_text()} — {label}")
        return
    for ax in fig.axes:
        if ax.get_title():
            ax.set_title(f"{ax.get_title()} — {label}")
            return


def _render(chart: Callable, ds: Dataset, period: Period, dpi: int, label: str = "") -> tuple[str, str] | None:
    before = set(plt.get_fignums())
    try:
        with warnings.catch_warnings():
            # A slice with nothing in the period draws its empty chart; the warning would be read
            # as being about the whole data set.
            warnings.simplefilter("ignore", NoDataWarning)
            out = chart(ds, period)
    except Exception as exc:  # a slice too small for a metric must not sink the whole report
        log.warning("sliced view failed: %s", exc)
        for n in set(plt.get_fignums()) - before:
            plt.close(n)
        return None
    fig = out.figure if isinstance(out, Axes) else out
    if not isinstance(fig, Figure):
        raise TypeError("chart must return a matplotlib Axes or Figure")
    if label:
        _name_slice(fig, label)
    alt = chart_alt_text(fig)
    return png_data_uri(fig, dpi), alt


class _SectionSlices:
    """A section function as ``chart`` and ``takeaway`` of :func:`sliced_views`: each slice's first
    chart and its takeaway (the slice's other charts are closed; the all-deals section is kept)."""

    def __init__(self, section: Callable[..., Any]):
        self.section_of = section
        self.first: Any = None
        self._takeaway: str | None = None
        self._calls = 0

    def chart(self, ds: Dataset, period: Period):
        self._calls += 1
        self._takeaway = None
        sec = self.section_of(ds, period)
        charts = sec.charts
        if not charts:
            sec.close()
            raise ValueError("the section has no chart")
        if self._calls == 1:                     # the first view: all deals
            self.first = sec
        else:
            for c in charts[1:]:
                plt.close(getattr(c.figure, "figure", c.figure))
        self._takeaway = charts[0].takeaway
        return charts[0].figure

    def takeaway(self, ds: Dataset, period: Period) -> str:
        text, self._takeaway = self._takeaway, None
        return text or ""


def sliced_views(ds: Dataset, period: PeriodLike, *, chart: Callable[[Dataset, Period], Axes | Figure] | None = None,
                 by: Sequence[str] = ("source", "product"), title: str = "",
                 max_slices: int | None = None, dpi: int = DPI,
                 takeaway: Callable[[Dataset, Period], str] | None = None,
                 section: Callable[..., Any] | None = None) -> SlicedViews:
    """Render ``chart`` for all deals and for each slice of each ``by`` column, as one HTML block.

    Parameters
    ----------
    ds, period
        The data set and the reporting period; each slice is ``ds.filter(<column>=<value>)``.
    chart
        ``chart(ds_slice, period)`` draws one chart and returns its Axes or Figure.
    by
        Columns of ``ds.deals`` to slice by; each value with deals becomes a view (a column with a
        single value adds no views). Each chart's title names its slice (``... — source: Web``).
    title
        Caption shown beside the selector (escaped).
    max_slices
        At most this many values per column (those with the most deals); ``None`` (the default)
        for every value: a reader must be able to pick any source or product.
    dpi
        Resolution of the embedded PNGs.
    takeaway
        ``takeaway(ds_slice, period)`` gives the slice's one-line takeaway, shown under its chart
        (escaped), so the text always describes the chart the selector shows.
    section
        Instead of ``chart`` and ``takeaway``: a report section function of
        :mod:`funnelkit.sections`, ``section(ds_slice, period) -> Section``; each view is its first
        chart with that chart's takeaway, and ``.section`` of the result is the all-deals section
        (the report shows its other parts after the block).

    Returns
    -------
    SlicedViews
        ``.html`` (the block) and ``.labels``; a notebook displays it directly.
    """
    period = as_period(period, ds)
    from_section = None
    if section is not None:
        if chart is not None or takeaway is not None:
            raise ArgumentError("sliced_views: give a section, or a chart (and a takeaway), not both")
        from_section = _SectionSlices(section)
        chart, takeaway = from_section.chart, from_section.takeaway
    elif chart is None:
        raise ArgumentError("sliced_views: give a chart (and a takeaway) or a section")
    from .plot import BY_WORDS
    slices: list[tuple[str, str, Dataset]] = [("", _(ALL), ds)]
    for col in by:
        if len(slice_values(ds, col, None)) < 2:   # one value only: its slice is just "All deals"
            continue
        word = _(BY_WORDS[col]) if col in BY_WORDS else col
        for value in slice_values(ds, col, max_slices):
            slices.append((word, _("{column}: {value}").format(column=word, value=value), ds.filter(**{col: value})))
    block_id = f"fk-views-{next(_counter)}-{uuid.uuid4().hex[:8]}"
    options, figures, labels = [], [], []
    for group, label, sub in slices:
        rendered = _render(chart, sub, period, dpi, label)
        i = len(labels)
        labels.append(label)
        text = html.escape(label, quote=True)
        options.append((group, f'<option value="{i}">{text}</option>'))
        style = "" if i == 0 else ' style="display:none"'
        if rendered is None:
            none = _("No chart for {slice}: too little data in this slice.").format(slice=label)
            body = f'<p style="color:#777">{html.escape(none)}</p>'
        else:
            uri, alt = rendered
            body = f'<img src="{uri}" alt="{html.escape(alt, quote=True)}" style="max-width:100%">'
        figures.append(f'<figure class="fk-view" data-view="{i}"{style}>{body}'
                       f'<figcaption style="font-size:0.85em;color:#555">{text}</figcaption>'
                       f'{_takeaway_html(takeaway, sub, period)}</figure>')
    caption = html.escape(title or _("Slice"), quote=True)
    script = (
        "<script>(function(){var root=document.getElementById('" + block_id + "');"
        "if(!root){return;}var sel=root.querySelector('select');"
        "sel.addEventListener('change',function(){var figs=root.querySelectorAll('figure.fk-view');"
        "for(var k=0;k<figs.length;k++){figs[k].style.display="
        "(figs[k].getAttribute('data-view')===sel.value)?'':'none';}});})();</script>")
    if len(labels) > 1:
        views = html.escape(_("{caption} ({n} views):").format(caption=title or _("Slice"), n=len(labels)))
        chooser = (f'<label style="font-size:0.9em">{views} '
                   f'<select aria-label="{caption}">' + _grouped(options) + "</select></label>")
    else:  # nothing to choose from (e.g. every deal has the same source): no one-entry menu
        chooser, script = "", ""
    block = f'<div class="fk-views" id="{block_id}">' + chooser + "".join(figures) + script + "</div>"
    return SlicedViews(html=block, labels=labels, section=from_section.first if from_section else None)


def _takeaway_html(takeaway: Callable[[Dataset, Period], str] | None, ds: Dataset, period: Period) -> str:
    if takeaway is None:
        return ""
    from .takeaways import as_html
    try:
        text = takeaway(ds, period)
    except Exception as exc:  # as for charts: a slice too small must not sink the report
        log.warning("sliced takeaway failed: %s", exc)
        return ""
    return as_html(text) if text else ""


def csv_data_uri(table: pd.DataFrame, na_rep: str = "-") -> str:
    """A ``data:text/csv`` URI of ``table`` (UTF-8 with a byte-order mark, so spreadsheet programs
    read accented and CJK text right): a download that needs no server and no network.

    Examples
    --------
    >>> csv_data_uri(pd.DataFrame({"a": [1]}))
    'data:text/csv;charset=utf-8;base64,77u/YQ0KMQ0K'
    """
    text = table.to_csv(index=False, na_rep=na_rep, lineterminator="\r\n")
    return "data:text/csv;charset=utf-8;base64," + base64.b64encode(("\ufeff" + text).encode("utf-8")).decode("ascii")


def table_html(table: pd.DataFrame, *, max_rows: int = 30, name: str = "table") -> str:
    """A table as an HTML block that fits the page: it scrolls sideways inside its own box when
    wide, shows the first ``max_rows`` rows with the others in a collapsed "Show the other N rows"
    section, and links the full table as an embedded CSV file (``<name>.csv``).

    Text from the data is escaped. A plain row-number index is not shown; any other index becomes
    the first columns (of the table and of the CSV).

    Examples
    --------
    >>> block = table_html(pd.DataFrame({"x": range(40)}), max_rows=30, name="x")
    >>> "Show the other 10 rows" in block and 'download="x.csv"' in block
    True
    """
    if not isinstance(table.index, pd.RangeIndex):
        table = table.reset_index()
    options = dict(escape=True, na_rep="-", border=0, index=False)
    more = len(table) - max_rows
    parts = [f'<div class="fk-table" data-rows="{len(table)}">',
             f'<div class="fk-table-scroll">{table.head(max_rows).to_html(**options)}</div>']
    if more > 0:
        summary = html.escape(_("Show the other {n} rows").format(n=f"{more:,}"))
        parts.append(f'<details class="fk-more"><summary>{summary}</summary>'
                     f'<div class="fk-table-scroll">{table.iloc[max_rows:].to_html(**options)}</div></details>')
    link = ngettext("Download the full table (CSV, {n} row)", "Download the full table (CSV, {n} rows)",
                    len(table)).format(n=f"{len(table):,}")
    parts.append(f'<p class="fk-csv"><a download="{html.escape(_file_name(name), quote=True)}.csv" '
                 f'href="{csv_data_uri(table)}">{html.escape(link)}</a></p></div>')
    return "".join(parts)


def _file_name(name: str) -> str:
    import re
    return re.sub(r"[^\w.-]+", "_", str(name), flags=re.UNICODE).strip("._") or "table"


def _grouped(options: list[tuple[str, str]]) -> str:
    """The ``<option>``s, those of each slicing column in an ``<optgroup>`` named after it."""
    out, group = [], None
    for col, option in options:
        if col != group:
            if group:
                out.append("</optgroup>")
            if col:
                out.append(f'<optgroup label="{html.escape(col, quote=True)}">')
            group = col
        out.append(option)
    if group:
        out.append("</optgroup>")
    return "".join(out)


# ------------------------------------------------------------------ ready-made charts for slicing

def funnel_chart(ds: Dataset, period: Period) -> Axes:
    """The funnel of the deals created in ``period`` (for :func:`sliced_views`), without the stages
    no deal ever entered (:func:`~funnelkit.metrics.stages.unvisited_stages`)."""
    from .metrics.stages import funnel, unvisited_stages
    from .plot import funnel_plot
    f = funnel(ds, period)
    gone = unvisited_stages(ds)
    if gone and len(gone) < len(ds.stages):
        f = f[~f["stage"].isin(gone)].assign(stage=lambda x: x["stage"].cat.remove_categories(gone))
    return funnel_plot(f, palette=None)


def funnel_text(ds: Dataset, period: Period) -> str:
    """The funnel takeaway of the deals in ``ds`` (for :func:`sliced_views`' ``takeaway``)."""
    from .metrics.stages import bottleneck, cohort_outcomes, funnel, unvisited_stages
    from .takeaways import funnel_takeaway
    gone = unvisited_stages(ds)
    return funnel_takeaway(funnel(ds, period), bottleneck(ds, period), cohort_outcomes(ds, period),
                           unvisited=gone if len(gone) < len(ds.stages) else ())


def amount_by_text(by: str = "source") -> Callable[[Dataset, Period], str]:
    """A takeaway function for :func:`amount_by_chart` (won amount and win rate by ``by``)."""
    def text(ds: Dataset, period: Period) -> str:
        from .metrics.breakdown import amount_by
        from .takeaways import amount_by_takeaway
        return amount_by_takeaway(amount_by(ds, period, by=by), by, ds.currency)
    return text


def product_mix_text(ds: Dataset, period: Period) -> str:
    """The takeaway of :func:`product_mix_chart`."""
    from .metrics.breakdown import amount_by
    from .takeaways import product_mix_takeaway
    return product_mix_takeaway(amount_by(ds, period, by="product"), "product", ds.currency)


def amount_by_chart(by: str = "source") -> Callable[[Dataset, Period], Axes]:
    """A chart function drawing won amount and win rate by ``by`` (for :func:`sliced_views`)."""
    def chart(ds: Dataset, period: Period) -> Axes:
        from .metrics.breakdown import amount_by
        from .plot import amount_by_plot
        return amount_by_plot(amount_by(ds, period, by=by), by=by, currency=ds.currency)
    return chart


def product_mix_chart(ds: Dataset, period: PeriodLike) -> Figure:
    """Won amount, won deals and mean size by product (for :func:`sliced_views`)."""
    from .metrics.breakdown import amount_by
    from .plot import product_mix_plot
    return product_mix_plot(amount_by(ds, as_period(period, ds), by="product"), by="product", currency=ds.currency)


def snapshot_chart(value: str = "open_deals") -> Callable[[Dataset, Period], Axes]:
    """A chart function drawing the weekly open deals (or ``open_amount``) per stage."""
    def chart(ds: Dataset, period: Period) -> Axes:
        from .metrics.stages import weekly_snapshots
        from .plot import snapshot_plot
        return snapshot_plot(weekly_snapshots(ds, period), value=value, currency=ds.currency)
    return chart


__all__ += ["funnel_chart", "amount_by_chart", "product_mix_chart", "snapshot_chart", "funnel_text",
            "amount_by_text", "product_mix_text"]
