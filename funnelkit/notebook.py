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

from .dataset import Dataset
from .loading import load
from .period import Period
from .plotting import DPI, to_png
from .takeaways import as_html

__all__ = ["resolve_data_path", "repo_root", "report_period", "load_report_data", "show_chart",
           "heading_html", "default_target"]


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


def report_period(quarter: str = "", start: str = "", end: str = "", as_of: str = "") -> Period:
    """The period from the report notebook's parameters: ``quarter`` or ``start``/``end``."""
    if start or end:
        return Period.parse(start=start or None, end=end or None, as_of=as_of or None)
    if not quarter:
        raise ValueError("set either quarter (e.g. 2026Q3) or both start and end")
    return Period.quarter(quarter, as_of=as_of or None)


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
    won = sum((r.get("won_amount") or 0.0) for r in summary.get("amount_by_source") or [])
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
    display(Image(data=to_png(fig, dpi), format="png"))
    if takeaway:
        display(HTML(as_html(takeaway)))


def show_table(df: pd.DataFrame, max_rows: int = 30) -> None:
    """Display a table (its HTML escapes text from the data), at most ``max_rows`` rows."""
    from IPython.display import HTML, display
    more = len(df) - max_rows
    plain_index = isinstance(df.index, pd.RangeIndex)     # row numbers mean nothing to a reader
    display(HTML(df.head(max_rows).to_html(escape=True, na_rep="-", border=0, index=not plain_index)
                 + (f"<p><i>... and {more} more rows</i></p>" if more > 0 else "")))


__all__.append("show_table")


def period_backtest(ds: Dataset, period: Period):
    """The forecast backtest as the data stood at the period's ``as_of`` (None if too little history).

    Only outcomes known by ``as_of`` are scored, so a past quarter's report shows the same backtest
    when it is rendered again next year.
    """
    from .metrics.forecast import backtest_forecast

    try:
        return backtest_forecast(ds, until=period.as_of)
    except ValueError:
        return None
