"""Small helpers that keep the notebooks thin: find the data, build the period, show a chart.

No metric is computed here; these functions only resolve paths and parameters and display things.

Examples
--------
>>> resolve_data_path("/tmp/some/where").as_posix()
'/tmp/some/where'
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from . import formatting
from .dataset import Dataset, label_counts
from .errors import ArgumentError, FunnelkitWarning
from .i18n import _
from .loading import load
from .period import Period, PeriodLike, as_period
from .plot import DPI, format_table, to_png
from . import sections
from .sections import Section, currency_slices, has_known, in_currency
from .takeaways import as_html
from .views import SlicedViews

__all__ = ["resolve_data_path", "repo_root", "report_period", "load_report_data", "show_chart",
           "heading_html", "default_target", "format_table", "as_of_text", "data_start",
           "single_value_note", "previous_summary", "target_plan_table", "backtest_table", "warnings_as_notes", "show_note",
           "show_section", "show_part", "currency_slices", "currency_heading", "in_currency", "has_known"]


def repo_root() -> Path:
    """The project folder this package was installed from (the parent of ``funnelkit/``)."""
    return Path(__file__).resolve().parents[1]


def resolve_data_path(path: str | Path) -> Path:
    """Find a data folder given relative to the working folder or to the project.

    Absolute paths are returned as they are. A relative path is tried against the working folder,
    its parents (so ``data/sample`` works from ``notebooks/``, where nbval runs a notebook), and the
    project folder; the first existing one wins. When none exists the path is returned relative to
    the project, so the loader's error names a sensible place.
    """
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    here = Path.cwd().resolve()
    for base in (here, *here.parents, repo_root()):
        if (base / p).exists():
            return (base / p).resolve()
    return repo_root() / p


def report_period(quarter: str = "", start: str = "", end: str = "", as_of: str = "",
                  ds: Dataset | None = None) -> Period:
    """The period from the report notebook's parameters: ``quarter`` or ``start``/``end``.

    Without ``as_of``, the data is seen at the end of the period, or, given ``ds`` and when the data
    ends inside the period, at the end of the data's last day
    (:func:`~funnelkit.metrics.summary.as_of_within_data`; the report header says so).
    """
    if start or end:
        period = Period.parse(start=start or None, end=end or None, as_of=as_of or None)
    elif not quarter:
        raise ArgumentError("set either quarter (e.g. 2026Q3) or both start and end")
    else:
        period = Period.quarter(quarter, as_of=as_of or None)
    if ds is None or as_of:
        return period
    from .metrics.summary import as_of_within_data
    return as_of_within_data(ds, period)


def load_report_data(data_path: str | Path, *, currency: str = "", lenient: bool = False) -> Dataset:
    """Load the data set for a report, optionally restricted to one currency.

    ``currency`` keeps only deals in that currency (when the deals have a ``currency`` column) and
    must otherwise match the pipeline's currency. ``lenient`` drops bad rows instead of failing
    (they are listed in ``ds.report``).
    """
    ds = load(resolve_data_path(data_path), errors="report" if lenient else "raise")
    return ds.in_currency(currency) if currency else ds


def default_target(summary: dict, uplift: float = 0.1) -> float | None:
    """A planning target when none was given: the period's won amount plus ``uplift`` (10%)."""
    from .takeaways import won_amount
    won = won_amount(summary)
    return float(won * (1 + uplift)) if won else None


def heading_html(title: str, subtitle: str = "") -> str:
    """An escaped ``<h1>`` and subtitle for the report's title block."""
    out = f"<h1>{html.escape(title)}</h1>"
    if subtitle:
        out += f'<p style="color:#555">{html.escape(subtitle)}</p>'
    return out


def show_chart(fig, takeaway: str | None = None, dpi: int = DPI) -> None:
    """Display a chart (Axes or Figure) as a small PNG, then its one-line takeaway; closes the figure."""
    from IPython.display import HTML, Image, display

    from .plot import chart_alt_text
    alt = chart_alt_text(fig, takeaway)
    display(Image(data=to_png(fig, dpi), format="png", metadata={"alt": alt}))
    if takeaway:
        display(HTML(as_html(takeaway)))


def show_table(df: pd.DataFrame, max_rows: int = 30, name: str = "table") -> None:
    """Display a table (its HTML escapes text from the data): the first ``max_rows`` rows, the rest
    collapsed, and the full table as a CSV download (:func:`funnelkit.views.table_html`).

    A plain row-number index is not shown (row numbers mean nothing to a reader); pass tables
    through :func:`format_table` first for readable headers and formatted numbers.
    """
    from IPython.display import HTML, display

    from .views import table_html
    display(HTML(table_html(df, max_rows=max_rows, name=name)))


def as_of_text(period: PeriodLike) -> str:
    """When the data is seen, in words: ``'2026-06-30 24:00 (end of period)'`` or ``'2026-07-01 12:00'``.

    ``as_of`` is an exclusive instant; the default (the midnight after the period's last day) reads
    as 24:00 of that day.
    """
    period = as_period(period)
    t = pd.Timestamp(period.as_of)
    if t == pd.Timestamp(period.stop):
        return _("{date} 24:00 (end of period)").format(date=formatting.date(period.end))
    return (formatting.date(t) + t.strftime(" %H:%M")) if formatting.get_locale() else t.strftime("%Y-%m-%d %H:%M")


def data_start(ds: Dataset):
    """The first ``created_at`` in the data (``None`` when there are no deals)."""
    return ds.deals["created_at"].min() if len(ds.deals) else None


def previous_summary(ds: Dataset, previous: Period, **options) -> dict:
    """:func:`~funnelkit.metrics.summary.metrics_summary` of the previous period, or only its ``period``
    part when it ends before the data starts (then there is nothing to compare with, and
    :func:`funnelkit.takeaways.headline_table` says "no data before <first date>").
    """
    from .metrics.summary import metrics_summary
    start = data_start(ds)
    if start is not None and pd.Timestamp(start) >= pd.Timestamp(previous.stop):
        return {"period": {"start": previous.start.date().isoformat(), "end": previous.end.date().isoformat(),
                           "label": previous.label}}
    return metrics_summary(ds, previous, **options)


def single_value_note(ds: Dataset, column: str) -> str | None:
    """A sentence when ``column`` cannot split the deals (one value only), else ``None``.

    E.g. every deal's source is ``(not set)``: ``"The data has no source information ..."``, so the
    report says so instead of drawing a one-bar chart at 100%.
    """
    from .plot import BY_WORDS
    word = _(BY_WORDS[column]) if column in BY_WORDS else column
    if column not in ds.deals:
        return _("The data has no {column} information (no {column} column).").format(column=word)
    values = label_counts(ds.deals[column])
    if len(values) > 1:
        return None
    if not len(values) or values.index[0] == "(not set)":
        return _("The data has no {column} information (every deal's {column} is \"(not set)\").").format(column=word)
    return _("Every deal has the same {column}, {value}: there is nothing to compare by {column}.").format(
        column=word, value=values.index[0])


def target_plan_table(plan: dict | None, currency: str = "") -> pd.DataFrame:
    """The target planner as a short two-column table (whole deals, rounded up).

    ``plan`` is :func:`funnelkit.metrics.size.target_plan` output. Deal counts are shown once,
    rounded up to whole deals (you cannot close 91.3 deals).
    """
    import math

    from .formatting import table_cell as _cell
    columns = [_("Plan"), _("Value")]
    if not plan:
        return pd.DataFrame(columns=columns)
    cur = f" ({currency})" if currency else ""
    size = plan.get("size_measure") or "mean"
    size_row = (_("Median won deal size this period{cur}") if size == "median" else
                _("Mean won deal size this period{cur}") if size == "mean" else
                f"{size.capitalize()} won deal size this period{{cur}}")

    def whole(key):
        v = plan.get(f"{key}_whole")
        if v is None and plan.get(key) is not None and pd.notna(plan.get(key)):
            v = math.ceil(float(plan[key]))
        return _cell(v, "count")
    rows = [(_("Target{cur}").format(cur=cur), _cell(plan.get("target"), "money")),
            (size_row.format(cur=cur), _cell(plan.get("deal_size"), "money")),
            (_("Win rate this period"), _cell(plan.get("win_rate"), "pct")),
            (_("Deals to win (target / deal size, rounded up)"), whole("deals_needed")),
            (_("Deals to work to a close (deals to win / win rate, rounded up)"), whole("deals_to_work"))]
    return pd.DataFrame(rows, columns=columns)


def backtest_table(backtest) -> pd.DataFrame:
    """The forecast backtest's summary, formatted (Brier score with 3 decimals, skill in %)."""
    summary = backtest.summary
    return format_table(summary.reset_index() if summary.index.name else summary)


def show_note(text: str) -> None:
    """Display a short escaped ``Note:`` line."""
    from IPython.display import HTML, display
    display(HTML(as_html(text, _("Note"))))


def warnings_as_notes() -> None:
    """Show funnelkit's warnings in the notebook as escaped ``Note:`` lines instead of hiding them.

    A funnelkit function warns when a result rests on too little data (e.g. no deal closed before
    the period, so the forecast has nothing to learn from); the exported report drops stderr, so
    each such warning becomes a visible note (once per message). Warnings are told apart by
    category (:class:`~funnelkit.errors.FunnelkitWarning` and its subclasses), not by the file that
    raised them; other warnings keep Python's default handling.
    """
    import warnings
    seen: set[str] = set()
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, FunnelkitWarning):
            return default(message, category, filename, lineno, file, line)
        text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
        if text not in seen:
            seen.add(text)
            show_note(text)
    warnings.showwarning = show


__all__.append("show_table")


def period_backtest(ds: Dataset, period: PeriodLike):
    """The forecast backtest as the data stood at the period's ``as_of`` (None if too little history).

    Only outcomes known by ``as_of`` are scored, so a past quarter's report shows the same backtest
    when it is rendered again next year.
    """
    from .metrics.forecast import NotEnoughHistory, backtest_forecast

    period = as_period(period)
    try:
        return backtest_forecast(ds, until=period.as_of)
    except NotEnoughHistory:
        return None


#: Which of :func:`~funnelkit.metrics.summary.metrics_summary`'s caveat topics each report section shows.
SECTION_TOPICS = {
    "headline": ("period", "currency", "amount_won", "amount_open", "hindsight"),
    "funnel": ("funnel",),
    "snapshots": ("amount_open", "hindsight"),
    "deal_size": ("amount_won",),
    "forecast": ("amount_open", "hindsight"),
}


def _notes_html(texts: list[str], title: str = "") -> str:
    items = "".join(f"<li>{html.escape(_sentence(t))}</li>" for t in texts)
    head = f"<b>{html.escape(title)}</b>" if title else ""
    return (f'<div class="fk-about" style="border:1px solid #c9c9c9;border-left:4px solid #8a6d3b;'
            f'background:#fbf8f0;padding:0.4em 0.9em;margin:0.6em 0 1em 0;font-size:0.92em">{head}'
            f'<ul style="margin:0.3em 0;padding-left:1.2em">{items}</ul></div>')


def _sentence(text: str) -> str:
    text = str(text).strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?", "。", "！", "？")) else text + _(".")


def about_box(summary: dict, ds: Dataset, *, lenient: bool = False) -> None:
    """The "About this data" box under the report title: the data's time span and every caveat.

    Lists where the data starts and ends, then each note of the summary (period only partly covered,
    data ending before ``as_of``, unknown or hindsight amounts, several currencies, too little
    history for the forecast), then stages no deal ever entered and, in lenient mode, the skipped
    input problems. Each note is also shown in the section it concerns (:func:`show_notes`).
    """
    from IPython.display import HTML, display
    from .metrics.summary import data_end
    start, end = data_start(ds), data_end(ds)
    lines = [_("The data runs from {start} (first deal created) to {end} (last event)").format(
                 start=formatting.date(start), end=formatting.date(end)) if start is not None and pd.notna(end)
             else _("The data set has no deals")]
    lines += list(summary.get("notes") or [])
    if lenient and ds.report.problems:
        lines.append(_("{n} problems in the input were skipped (lenient mode)").format(n=len(ds.report.problems)))
    display(HTML(_notes_html(lines, _("About this data"))))


def show_notes(summary: dict, section: str) -> None:
    """Show, as ``Note:`` lines, the summary's caveats that concern a report section
    (``"headline"``, ``"snapshots"``, ``"deal_size"``, ``"forecast"``; see :data:`SECTION_TOPICS`)."""
    topics = SECTION_TOPICS[section]
    for c in summary.get("caveats") or []:
        if c.get("topic") in topics:
            show_note(_sentence(c["text"]))


def data_end_text(ds: Dataset, period: PeriodLike) -> str:
    """``'data as of 2023-06-30 24:00 (end of period)'``, ``'data as of 2023-05-16 24:00 (the last day
    of the data)'`` when the report sees the data at its end, inside the period, and saying so when
    the data ends before an ``as_of`` that was given."""
    period = as_period(period, ds)
    from .metrics.summary import data_end, end_of_data
    end = data_end(ds)
    if pd.notna(end) and pd.Timestamp(period.as_of) == end_of_data(ds) and period.as_of < period.stop:
        return _("data as of {when}").format(when=_("{date} 24:00 (the last day of the data)").format(
            date=formatting.date(end)))
    text = _("data as of {when}").format(when=as_of_text(period))
    if pd.notna(end) and pd.Timestamp(period.as_of) > end + pd.Timedelta(days=1):
        text = _("{text}; the data ends on {date}").format(text=text, date=formatting.date(end))
    return text


def currency_heading(code: str, slices: list) -> None:
    """An ``<h3>`` naming the currency of the amount block that follows (only with several)."""
    for part in sections.currency_heading(code, slices):
        show_part(part)


def amount_block(summary: dict, code: str) -> dict:
    """The part of a :func:`~funnelkit.metrics.summary.metrics_summary` dict holding the amounts in
    ``code``: the summary itself, or its ``by_currency`` block."""
    return (summary.get("by_currency") or {}).get(code, summary)


def show_part(part: sections.Part) -> None:
    """Display one part of a :class:`~funnelkit.sections.Section` (a chart with its takeaway, a
    table, a takeaway, a note or a heading)."""
    from IPython.display import HTML, display
    if isinstance(part, sections.Chart):
        show_chart(part.figure, part.takeaway)
    elif isinstance(part, sections.Table):
        show_table(part.frame, max_rows=part.max_rows)
    else:
        display(HTML(sections.part_html(part)))


def show_section(section: Section | SlicedViews) -> None:
    """Display a report section (:mod:`funnelkit.sections`), part by part, in order. Given the
    result of :func:`~funnelkit.views.sliced_views` with ``section=``: the block of slices (the
    section's first chart for all deals and each slice), then the section's other parts.

    Examples
    --------
    >>> show_section(sections.stage_flow(ds, period))                       # doctest: +SKIP
    >>> show_section(sliced_views(ds, period, section=sections.funnel, by=["source"]))   # doctest: +SKIP
    """
    if isinstance(section, SlicedViews):
        from IPython.display import display
        display(section)
        if section.section is None:
            return
        section = section.section
        first = section.charts[0] if section.charts else None
        parts = [p for p in section.parts if p is not first]
    else:
        parts = section.parts
    for part in parts:
        show_part(part)
