"""Live slicing in JupyterLab: ipywidgets controls that redraw the charts and tables.

:class:`Explorer` puts dropdowns for period, source, product, owner and stage above the charts;
changing one recomputes the metrics for that slice and redraws. The callbacks are plain methods
(:meth:`Explorer.update`), so they can be driven without a browser. ``ipywidgets`` is imported only
when an explorer is built, with a helpful error when it is missing.

Examples
--------
>>> from funnelkit.widgets import explore            # doctest: +SKIP
>>> explore(fk.load("data/sample"))                   # doctest: +SKIP
"""

from __future__ import annotations

import html
import logging
from typing import Any

import pandas as pd

from .dataset import Dataset
from .period import Period, quarters_between
from .plot import DPI, to_png

__all__ = ["Explorer", "explore", "ALL", "require_ipywidgets"]

log = logging.getLogger(__name__)

#: The dropdown entry meaning "no filter".
ALL = "(all)"


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


def _quarters(ds: Dataset) -> list[str]:
    d = ds.deals
    if d.empty:
        return []
    last = max(d["created_at"].max(), d["closed_at"].max() if d["closed_at"].notna().any() else d["created_at"].max())
    return quarters_between(d["created_at"].min(), last)


def _values(ds: Dataset, col: str) -> list[str]:
    counts = ds.deals[col].astype(str).value_counts()
    return sorted(counts[counts > 0].index)


class Explorer:
    """Dropdowns (period, source, product, owner, stage) over live charts and tables.

    Parameters
    ----------
    ds
        A loaded data set.
    period
        The starting period (a quarter label such as ``"2026Q2"`` or a :class:`Period` of a quarter);
        default the last quarter in the data.
    stuck_quantile
        As in :func:`funnelkit.metrics.stage_time.stuck_deals`.

    Attributes
    ----------
    controls
        The dropdowns by name: ``period``, ``source``, ``product``, ``owner``, ``stage``.
    outputs
        The Output widgets by name: ``funnel``, ``weekly``, ``stage``, ``tables``.
    last
        The tables behind the current charts (``funnel``, ``weekly``, ``stuck``, ``by_source``,
        ``by_product``, ``visits``), for tests and for users who want the numbers.
    widget
        The whole explorer (a ``VBox``); the explorer displays itself in a notebook.
    """

    def __init__(self, ds: Dataset, period: str | Period | None = None, *, stuck_quantile: float = 0.9):
        W = require_ipywidgets()
        self.ds = ds
        self.stuck_quantile = stuck_quantile
        quarters = _quarters(ds)
        start = period.label if isinstance(period, Period) else period
        if not quarters:
            quarters = [start or "2026Q1"]
        if start not in quarters:
            start = quarters[-1]
        dd = dict(style={"description_width": "initial"}, layout=W.Layout(width="auto"))
        self.controls = {
            "period": W.Dropdown(options=quarters, value=start, description="Period", **dd),
            "source": W.Dropdown(options=[ALL, *_values(ds, "source")], value=ALL, description="Source", **dd),
            "product": W.Dropdown(options=[ALL, *_values(ds, "product")], value=ALL, description="Product", **dd),
            "owner": W.Dropdown(options=[ALL, *_values(ds, "owner")], value=ALL, description="Owner", **dd),
            "stage": W.Dropdown(options=list(ds.stages), value=ds.stages[0], description="Stage", **dd),
        }
        self.outputs = {name: W.Output() for name in ("funnel", "weekly", "stage", "tables")}
        self.status = W.HTML()
        self.last: dict[str, Any] = {}
        for w in self.controls.values():
            w.observe(self._on_change, names="value")
        self.widget = W.VBox([
            # wrap the dropdowns onto a second line rather than pushing the last ones out of view
            # when option labels (source or owner names) are long
            W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap")), self.status,
            W.HBox([self.outputs["funnel"], self.outputs["weekly"]]),
            self.outputs["stage"], self.outputs["tables"],
        ])
        self.update()

    # ---------------------------------------------------------------------------------- state
    def selection(self) -> dict[str, str]:
        """The current value of every control."""
        return {name: w.value for name, w in self.controls.items()}

    @property
    def period(self) -> Period:
        return Period.quarter(self.controls["period"].value)

    def sliced(self) -> Dataset:
        """The data set filtered to the chosen source, product and owner."""
        sel = self.selection()
        return self.ds.filter(**{c: sel[c] for c in ("source", "product", "owner") if sel[c] != ALL})

    # -------------------------------------------------------------------------------- drawing
    def _on_change(self, _change=None) -> None:
        try:
            self.update()
        except Exception as exc:  # keep the widget alive; show what went wrong
            log.exception("explorer update failed")
            self.status.value = f"<span style='color:#C44E52'>Could not redraw: {html.escape(str(exc))}</span>"

    @staticmethod
    def _fill(out, *items) -> None:
        from IPython.display import HTML, Image
        out.outputs = ()
        for item in items:
            if isinstance(item, pd.DataFrame):
                obj = HTML(item.to_html(escape=True, na_rep="-", border=0, max_rows=25,
                                        index=not isinstance(item.index, pd.RangeIndex)))
            elif isinstance(item, str):
                obj = HTML(item)
            else:
                obj = Image(data=to_png(item, DPI), format="png")
            out.append_display_data(obj)

    def update(self) -> None:
        """Recompute the metrics for the current selection and redraw every chart and table."""
        from . import plot as fkp
        from . import takeaways as tk
        from .metrics import breakdown as ab
        from .metrics import stages as st
        from .metrics import stage_time as tis

        sel = self.selection()
        ds, period = self.sliced(), self.period
        cur = ds.currency
        stage = sel["stage"]
        palette = fkp.stage_palette(self.ds.stages)
        chosen = ", ".join(f"{k} = {v}" for k, v in sel.items() if k in ("source", "product", "owner") and v != ALL)
        cohort = st.cohort_outcomes(ds, period)
        # the period's cohort first (what the funnel counts), then the slice's size over all periods
        self.status.value = html.escape(
            f"{period.label} ({chosen or 'all deals'}): {cohort['deals']:,} deals created in the period; "
            + f"{len(ds.deals):,} in " + ("this slice overall" if chosen else "the data set"))

        fun = st.funnel(ds, period)
        weekly = st.weekly_snapshots(ds, period)
        self._fill(self.outputs["funnel"], fkp.funnel_plot(fun, palette=palette),
                   tk.as_html(tk.funnel_takeaway(fun, None, cohort)))
        self._fill(self.outputs["weekly"], fkp.snapshot_plot(weekly, palette=palette),
                   tk.as_html(tk.snapshot_takeaway(weekly)))

        visits = fkp.visit_days(ds, period)
        visits = visits[visits["stage"].astype(str) == stage]
        thresholds = tis.stage_thresholds(ds, period.as_of, quantile=self.stuck_quantile)
        stuck = tis.stuck_deals(ds, period.as_of, quantile=self.stuck_quantile)
        stuck = stuck[stuck["stage"].astype(str) == stage]
        wrt = tis.win_rate_by_time_in_stage(ds, period)
        wrt = wrt[wrt["stage"].astype(str) == stage]
        self._fill(self.outputs["stage"],
                   fkp.duration_plot(visits, stages=[stage], palette=palette,
                                     thresholds=thresholds[thresholds["stage"].astype(str) == stage],
                                     title=f"Days per visit in {stage}"),
                   fkp.win_rate_by_time_plot(wrt, palette=palette, title=f"Win rate by days in {stage}"),
                   f"<h4>Stuck deals in {html.escape(stage)}</h4>",
                   fkp.format_table(stuck, currency=cur))

        by_source = ab.amount_by(ds, period, by="source")
        by_product = ab.amount_by(ds, period, by="product")
        self._fill(self.outputs["tables"],
                   fkp.amount_by_plot(by_source, by="source", currency=cur),
                   tk.as_html(tk.amount_by_takeaway(by_source, "source", cur)),
                   fkp.format_table(by_source, currency=cur),
                   fkp.product_mix_plot(by_product, by="product", currency=cur),
                   tk.as_html(tk.product_mix_takeaway(by_product, "product", cur)),
                   fkp.format_table(by_product, currency=cur))
        self.last = {"funnel": fun, "weekly": weekly, "visits": visits, "stuck": stuck,
                     "win_rate_by_time": wrt, "by_source": by_source, "by_product": by_product}

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)


def explore(ds: Dataset, period: str | Period | None = None, *, stuck_quantile: float = 0.9) -> Explorer:
    """Build an :class:`Explorer` (it displays itself when it is a cell's last value)."""
    return Explorer(ds, period, stuck_quantile=stuck_quantile)
