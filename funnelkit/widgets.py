"""Live slicing in JupyterLab: ipywidgets controls that redraw the charts and tables.

:class:`Explorer` puts dropdowns for period, source, product, owner and stage above the charts
(plus a box for any other period: a month, a year or two dates); changing one recomputes the
metrics for that slice and redraws the funnel, time in stage, days to close, deal size, per-rep,
forecast, source/product, where-the-pipeline-went and slipping-deals views, with the current
slice's tables as CSV downloads. The callbacks are plain methods (:meth:`Explorer.update`), so
they can be driven without a browser.
``ipywidgets`` is imported only when an explorer is built, with a helpful error when it is missing.

Examples
--------
>>> from funnelkit.widgets import explore            # doctest: +SKIP
>>> explore(fk.load("data/sample"))                   # doctest: +SKIP
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

import pandas as pd

from .dataset import Dataset, label_counts
from .errors import ArgumentError
from .i18n import N_, _, check_language, get_language, use_language
from .period import Period, PeriodLike, as_period, quarters_between
from .plot import DPI, to_png
from .takeaways import as_html
from .views import csv_data_uri, table_html

__all__ = ["Explorer", "explore", "ALL", "require_ipywidgets", "period_from_text", "PERIOD_FORMS"]

log = logging.getLogger(__name__)

#: The dropdown entry meaning "no filter".
ALL = "(all)"
_ALL_SHOWN = N_("(all)")   # how the dropdown shows it, in the explorer's language (the value stays ALL)


def require_ipywidgets():
    """Import ipywidgets or raise an ImportError that says how to get it."""
    try:
        import ipywidgets
    except ImportError as exc:  # pragma: no cover - exercised by monkeypatching in tests
        raise ImportError(
            "funnelkit's live explorer needs ipywidgets (>= 8): `pip install ipywidgets` "
            "(it comes with `pip install funnelkit`), then restart the kernel. The static report "
            "(`funnelkit report`) works without it.") from exc
    return ipywidgets


def _choices(ds: Dataset, column: str) -> list[tuple[str, str]]:
    """Dropdown options ``(shown, value)``: "(all)" in the explorer's language, then the column's values."""
    values = _values(ds, column)
    shown = _(_ALL_SHOWN)
    return [ALL, *values] if shown == ALL else [(shown, ALL)] + [(v, v) for v in values]


def _quarters(ds: Dataset) -> list[str]:
    d = ds.deals
    if d.empty:
        return []
    last = max(d["created_at"].max(), d["closed_at"].max() if d["closed_at"].notna().any() else d["created_at"].max())
    return quarters_between(d["created_at"].min(), last)


#: What the period box accepts, for messages.
PERIOD_FORMS = ("a quarter (2026Q2), a month (2026-05), a year (2026) or two dates "
                "(2026-04-01..2026-05-15)")

_RANGE = re.compile(r"^(\S+)\s*(?:\.\.|/|\s+to\s+)\s*(\S+)$")


def period_from_text(text: PeriodLike) -> Period:
    """A :class:`Period` from what a user types: a quarter, a month, a year or ``start..end``
    (also ``start to end``, ``start/end``); read by :func:`funnelkit.period.as_period`.

    Raises :class:`~funnelkit.errors.ArgumentError` (a ``ValueError``) naming the text and the
    accepted forms when it is none of them (or the end is before the start).

    Examples
    --------
    >>> period_from_text("2026-05").label, period_from_text("2026").label
    ('2026-05', '2026')
    >>> p = period_from_text("2026-04-01..2026-05-15")
    >>> str(p.start.date()), str(p.end.date())
    ('2026-04-01', '2026-05-15')
    """
    if not isinstance(text, str):
        return as_period(text)
    t = " ".join(text.split())
    pair = _RANGE.match(t)
    try:
        return as_period(pair.groups() if pair else t)
    except ArgumentError as exc:
        why = str(exc) if "before its start" in str(exc) else "not understood"
        raise ArgumentError(f"period {t!r}: {why}; type {PERIOD_FORMS}") from None


def _period_text(p: Period) -> str:
    """What to type for ``p`` in the period box (its label when that reads back, else start..end)."""
    try:
        if p.label and period_from_text(p.label) == p.with_as_of(None):
            return p.label
    except ValueError:
        pass
    return f"{p.start.date()}..{p.end.date()}"


def _values(ds: Dataset, col: str) -> list[str]:
    return sorted(label_counts(ds.deals[col]).index)



class Explorer:
    """Dropdowns (period, source, product, owner, stage) over live charts and tables.

    Parameters
    ----------
    ds
        A loaded data set.
    period
        The starting period: a quarter label such as ``"2026Q2"``, any text
        :func:`period_from_text` reads (``"2026-05"``, ``"2026"``, ``"2026-04-01..2026-05-15"``) or a
        :class:`Period`; default the last quarter in the data. Anything else raises ``ValueError``.
    stuck_quantile
        As in :func:`funnelkit.metrics.stage_time.stuck_deals`.

    Attributes
    ----------
    controls
        The dropdowns by name: ``period``, ``source``, ``product``, ``owner``, ``stage``.
    custom_period
        A text box for any other period (a month, a year, two dates); when filled it overrides the
        period dropdown. An invalid entry is refused with a message in :attr:`status`.
    outputs
        The Output widgets by name: ``funnel``, ``weekly``, ``stage``, ``closing``, ``size``,
        ``reps``, ``forecast``, ``tables``, ``movement`` (where the pipeline went: the report's
        waterfall of the slice's deals, which balances like the whole pipeline's) and ``slipping``
        (slipping deals).
    last
        The tables behind the current charts (``funnel``, ``weekly``, ``stuck``, ``by_source``,
        ``by_product``, ``by_owner``, ``visits``, ``days_to_close``, ``deal_size_by_month``,
        ``won_deals``, ``forecast``, ``expected_by_stage``, ``waterfall``, ``waterfall_check``,
        ``movements``, ``stage_movement``, ``win_rate_by_pushes``, ``slipping``, ``expected_to_close``,
        ``lost_reasons``; amount tables of several currencies end in ``_<currency>``), for tests and
        for users who want the numbers; :meth:`tables` and :meth:`to_csv` export them.
    downloads
        Links that download the current slice's tables as CSV files (embedded, no server needed).
    widget
        The whole explorer (a ``VBox``); the explorer displays itself in a notebook.
    """

    def __init__(self, ds: Dataset, period: PeriodLike | None = None, *, stuck_quantile: float = 0.9,
                 lang: str | None = None):
        #: The explorer's language (:mod:`funnelkit.i18n`): ``lang``, else the one set when it was built.
        self.lang = check_language(lang) if lang else get_language()
        with use_language(self.lang):
            self._build(ds, period, stuck_quantile)

    def _build(self, ds: Dataset, period: PeriodLike | None, stuck_quantile: float) -> None:
        W = require_ipywidgets()
        self.ds = ds
        self.stuck_quantile = stuck_quantile
        quarters = _quarters(ds)
        chosen = period_from_text(period) if period not in (None, "") else None
        start = chosen.label if chosen is not None and chosen.label in quarters else None
        if not quarters:
            quarters = [start or (chosen.label if chosen and re.fullmatch(r"\d{4}Q[1-4]", chosen.label or "")
                                  else "2026Q1")]
        start = start or quarters[-1]
        dd = dict(style={"description_width": "initial"}, layout=W.Layout(width="auto"))
        self.controls = {
            "period": W.Dropdown(options=quarters, value=start, description=_("Period"), **dd),
            "source": W.Dropdown(options=_choices(ds, "source"), value=ALL, description=_("Source"), **dd),
            "product": W.Dropdown(options=_choices(ds, "product"), value=ALL, description=_("Product"), **dd),
            "owner": W.Dropdown(options=_choices(ds, "owner"), value=ALL, description=_("Owner"), **dd),
            "stage": W.Dropdown(options=list(ds.stages), value=ds.stages[0], description=_("Stage"), **dd),
        }
        custom = "" if chosen is None or chosen.label in quarters else _period_text(chosen)
        self.custom_period = W.Text(value=custom, description=_("or any period"), continuous_update=False,
                                    placeholder="2026-05, 2026, 2026-04-01..2026-05-15",
                                    style={"description_width": "initial"}, layout=W.Layout(width="22em"))
        self._period = chosen if custom else Period.quarter(start)
        self.controls["stage"].value = self._stage_with_data()
        self.outputs = {name: W.Output() for name in
                        ("funnel", "weekly", "stage", "closing", "size", "reps", "forecast", "tables",
                         "movement", "slipping")}
        self.status = W.HTML()
        self.downloads = W.HTML()
        self.last: dict[str, Any] = {}
        for w in self.controls.values():
            w.observe(self._on_change, names="value")
        self.custom_period.observe(self._on_custom_period, names="value")
        head = lambda text: W.HTML(f"<h3 style='margin:0.8em 0 0.2em 0'>{html.escape(text)}</h3>")  # noqa: E731
        self.widget = W.VBox([
            # wrap the dropdowns onto a second line rather than pushing the last ones out of view
            # when option labels (source or owner names) are long
            W.HBox(list(self.controls.values()) + [self.custom_period],
                   layout=W.Layout(flex_flow="row wrap")), self.status,
            W.HBox([self.outputs["funnel"], self.outputs["weekly"]]),
            self.outputs["stage"],
            head(_("Days to close")), self.outputs["closing"],
            head(_("Deal size")), self.outputs["size"],
            head(_("Per rep")), self.outputs["reps"],
            head(_("Win forecast for the deals open at the end of the period")), self.outputs["forecast"],
            head(_("Amount by source and product")), self.outputs["tables"],
            head(_("Where the pipeline went")), self.outputs["movement"],
            head(_("Slipping deals")), self.outputs["slipping"],
            self.downloads,
        ])
        self.update()

    def _stage_with_data(self) -> str:
        """The first stage (pipeline order) with a visit ended in the period, else with any visit."""
        from .metrics.stage_time import ended_visits
        ended = set(ended_visits(self.ds, self._period)["stage"].astype(str))
        visited = set(self.ds.stage_history["stage"].astype(str))
        for pool in (ended, visited):
            for s in self.ds.stages:
                if s in pool:
                    return s
        return self.ds.stages[0]

    # ---------------------------------------------------------------------------------- state
    def selection(self) -> dict[str, str]:
        """The current value of every control."""
        return {name: w.value for name, w in self.controls.items()}

    @property
    def period(self) -> Period:
        """The period shown: the custom period when one is typed, else the chosen quarter; seen at the
        end of the data when the data ends inside it, as in the report
        (:func:`~funnelkit.metrics.summary.as_of_within_data`)."""
        from .metrics.summary import as_of_within_data
        return as_of_within_data(self.ds, self._period)

    def _on_custom_period(self, change=None) -> None:
        text = self.custom_period.value.strip()
        try:
            self._period = period_from_text(text) if text else Period.quarter(self.controls["period"].value)
        except ValueError as exc:           # refused: say why, keep the charts of the last good period
            self.status.value = f"<span style='color:#C44E52'>{html.escape(str(exc))}</span>"
            return
        self._on_change()

    def sliced(self) -> Dataset:
        """The data set filtered to the chosen source, product and owner."""
        sel = self.selection()
        return self.ds.filter(**{c: sel[c] for c in ("source", "product", "owner") if sel[c] != ALL})

    # -------------------------------------------------------------------------------- drawing
    def _on_change(self, change=None) -> None:
        if change is not None and change.get("owner") is self.controls["period"]:
            self._period = Period.quarter(self.controls["period"].value)   # a chosen quarter wins
            if self.custom_period.value:
                self.custom_period.unobserve(self._on_custom_period, names="value")
                self.custom_period.value = ""
                self.custom_period.observe(self._on_custom_period, names="value")
        try:
            self.update()
        except Exception as exc:  # keep the widget alive; show what went wrong
            log.exception("explorer update failed")
            message = _("Could not redraw: {error}").format(error=exc)
            self.status.value = f"<span style='color:#C44E52'>{html.escape(message)}</span>"

    @staticmethod
    def _fill(out, *items) -> None:
        from IPython.display import HTML, Image
        out.outputs = ()
        for item in items:
            if isinstance(item, pd.DataFrame):
                obj = HTML(table_html(item, max_rows=25))
            elif isinstance(item, str):
                obj = HTML(item)
            else:
                obj = Image(data=to_png(item, DPI), format="png")
            out.append_display_data(obj)

    def update(self) -> None:
        """Recompute the metrics for the current selection and redraw every chart and table (in the
        explorer's language).

        Each tab shows the report's section (:mod:`funnelkit.sections`) for the slice, so the
        explorer and the report never differ in what a section computes or says."""
        with use_language(self.lang):
            self._update()

    def _update(self) -> None:
        from . import plot as fkp
        from . import sections as sec
        from .metrics import stages as st

        sel = self.selection()
        ds, period = self.sliced(), self.period
        stage = sel["stage"]
        chosen = _(", ").join(_("{column} = {value}").format(column=_(fkp.BY_WORDS[k]), value=v)
                              for k, v in sel.items() if k in ("source", "product", "owner") and v != ALL)
        cohort = st.cohort_outcomes(ds, period)
        # the period's cohort first (what the funnel counts), then the slice's size over all periods
        status = (_("{period} ({slice}): {n} deals created in the period; {total} in this slice overall") if chosen
                  else _("{period} (all deals): {n} deals created in the period; {total} in the data set"))
        status = status.format(period=period.label, slice=chosen, n=f"{cohort['deals']:,}", total=f"{len(ds.deals):,}")
        if period.as_of < period.stop:      # the data ends inside the period (or a typed as_of): say when it is seen
            from .notebook import data_end_text
            status = _("{status}; {data_as_of}").format(status=status, data_as_of=data_end_text(self.ds, period))
        self.status.value = html.escape(status)

        self.last = {}
        q = self.stuck_quantile
        self._show("funnel", sec.funnel(ds, period))
        self._show("weekly", sec.snapshots(ds, period))
        self._show("stage", sec.time_in_stage(ds, period, stuck_quantile=q, stage=stage),
                   "<h4>" + html.escape(_("Stuck deals in {stage}").format(stage=stage)) + "</h4>",
                   sec.stuck_deals(ds, period, stuck_quantile=q, stage=stage))
        self._show("tables", sec.by_source(ds, period), sec.by_product(ds, period))
        closing = sec.days_to_close(ds, period)
        self._show("closing", closing, fkp.format_table(closing.tables["days_to_close"]))
        size = sec.deal_size(ds, period)
        self._show("size", size, *[fkp.format_table(t, currency=ds.currency)
                                   for k, t in size.tables.items() if k.startswith("deal_size_by_month")])
        reps = sec.per_rep(ds, period)
        self._show("reps", fkp.amount_by_plot(reps.tables["by_owner"], by="owner", currency=ds.currency), reps)
        forecast, notes = sec.quietly(sec.forecast, ds, period)   # too little history: said, not raised
        self._show("forecast", *[as_html(n, _("Note")) for n in notes], forecast, *self._landing_parts(period))
        for name, section in (("movement", sec.pipeline_movement), ("slipping", sec.slipping_deals)):
            shown, notes = sec.quietly(section, ds, period)
            self._show(name, *[as_html(n, _("Note")) for n in notes], shown)
        self.downloads.value = self._download_links()

    def _show(self, name: str, *items) -> None:
        """Fill the output ``name`` with ``items`` (sections, part by part; figures; HTML; tables) and
        keep the sections' tables in :attr:`last`."""
        from . import sections as sec
        flat: list = []
        for item in items:
            if isinstance(item, sec.Section):
                self.last.update(item.tables)
                for part in item.parts:
                    if isinstance(part, sec.Chart):
                        flat.append(part.figure)
                        if part.takeaway:
                            flat.append(as_html(part.takeaway))
                    else:
                        flat.append(sec.part_html(part))
            else:
                flat.append(item)
        self._fill(self.outputs[name], *flat)

    def _landing_parts(self, period: Period) -> list:
        """Where the period lands: the team's landing forecast (one model for all deals, whatever the
        slice), and its split by owner and by source, narrowed to the chosen owner or source."""
        from . import plot as fkp
        from . import takeaways as tk
        from .metrics.landing import landing_forecast
        if len(self.ds.currencies) > 1:
            return [tk.as_html(_("the deals are in several currencies: the landing forecast is shown per "
                                 "currency in the report"), _("Note"))]
        import warnings
        cur = self.ds.currency
        with warnings.catch_warnings(record=True) as caught:   # too little history: said, not raised
            warnings.simplefilter("always")
            landing = landing_forecast(self.ds, period, min(period.as_of, period.stop))
        sel = self.selection()
        where = _("Where {period} lands (all deals)").format(period=period.label or _("the period"))
        parts: list = [f"<h4>{html.escape(where)}</h4>",
                       *dict.fromkeys(tk.as_html(str(w.message).splitlines()[0], _("Note")) for w in caught),
                       tk.as_html(tk.landing_takeaway(landing, currency=cur))]
        for by in ("owner", "source"):
            split = landing.by(by)
            if sel[by] != ALL:
                split = split[split[by] == sel[by]]
            split = split[[by, "won_so_far_amount", "expected_amount", "low_amount", "high_amount"]]
            self.last[f"landing_by_{by}"] = split
            parts.append(fkp.format_table(split, currency=cur))
        return parts

    # ---------------------------------------------------------------------------- export
    def tables(self) -> dict[str, pd.DataFrame]:
        """The current slice's tables by name (every DataFrame in :attr:`last`)."""
        return {k: v for k, v in self.last.items() if isinstance(v, pd.DataFrame)}

    def _slice_name(self) -> str:
        sel = self.selection()
        parts = [self.period.label or "period"] + [f"{k}-{sel[k]}" for k in ("source", "product", "owner")
                                                   if sel[k] != ALL]
        return re.sub(r"[^\w.-]+", "_", "_".join(parts)).strip("._")

    def to_csv(self, folder) -> list:
        """Write the current slice's tables as ``<folder>/<period>[_<slice>]_<table>.csv``; returns the paths."""
        from pathlib import Path

        from .io import atomic_write_text
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        name = self._slice_name()
        return [atomic_write_text(folder / f"{name}_{key}.csv", table.to_csv(index=False))
                for key, table in self.tables().items()]

    def _download_links(self) -> str:
        name = self._slice_name()
        links = [f'<a download="{html.escape(name)}_{key}.csv" href="{csv_data_uri(table, na_rep="")}">'
                 f"{html.escape(key)}</a>" for key, table in self.tables().items()]
        head = html.escape(_("This slice's tables as CSV:"))
        return f"<p style='font-size:0.9em'><b>{head}</b> " + " · ".join(links) + "</p>"

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)


def explore(ds: Dataset, period: PeriodLike | None = None, *, stuck_quantile: float = 0.9,
            lang: str | None = None) -> Explorer:
    """Build an :class:`Explorer` (it displays itself when it is a cell's last value); ``lang``
    (``"zh"``) sets its language, else the one set by :func:`funnelkit.i18n.set_language` is used."""
    return Explorer(ds, period, stuck_quantile=stuck_quantile, lang=lang)
