"""The report's sections, each written once: ``section(ds, period, **slice) -> Section``.

A section function computes its metrics, draws its charts, writes their takeaways and formats its
tables, for a data set (narrowed by ``**slice``, e.g. ``source="Web"``) and a period in any form
:func:`funnelkit.period.as_period` reads. The report notebook shows a section with
:func:`funnelkit.notebook.show_section`, the pre-rendered slices draw its first chart for every slice
(:func:`funnelkit.views.sliced_views` with ``section=``), and the explorer
(:class:`funnelkit.widgets.Explorer`) fills its tabs from the same functions: the metric → chart →
takeaway wiring of a section lives here only.

Sections: :func:`funnel`, :func:`stage_flow`, :func:`snapshots`, :func:`time_in_stage`,
:func:`stuck_deals`, :func:`days_to_close`, :func:`deal_size`, :func:`by_source`, :func:`by_product`,
:func:`per_rep`, :func:`forecast`, :func:`pipeline_movement`, :func:`slipping_deals`.

Examples
--------
>>> import funnelkit as fk
>>> from funnelkit import sections
>>> s = sections.stage_flow(fk.load("data/sample"), "2026Q2")
>>> [type(p).__name__ for p in s.parts], sorted(s.tables)
(['Chart'], ['stage_flow'])
>>> s.close()
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import pandas as pd

from .dataset import Dataset
from .i18n import _
from .metrics.movement import has_expected_dates
from .period import Period, PeriodLike, as_period

__all__ = ["Section", "Chart", "Table", "Text", "Note", "Heading", "SectionFunction", "funnel", "stage_flow",
           "snapshots", "time_in_stage", "stuck_deals", "days_to_close", "deal_size", "by_source", "by_product",
           "per_rep", "forecast", "pipeline_movement", "slipping_deals",
           "currency_slices", "currency_heading", "in_currency", "has_known", "has_expected_dates", "part_html",
           "quietly"]


@dataclass
class Chart:
    """A chart (matplotlib Axes or Figure) and its one-line takeaway."""

    figure: Any
    takeaway: str | None = None


@dataclass
class Table:
    """A table formatted for display (headers with units, formatted numbers)."""

    frame: pd.DataFrame
    max_rows: int = 30


@dataclass
class Text:
    """A takeaway shown on its own, under ``label``."""

    text: str
    label: str | None = None      # None: "Takeaway" in the active language


@dataclass
class Note:
    """A caveat, shown as a ``Note:`` line."""

    text: str


@dataclass
class Heading:
    """A small heading: a subsection's title, or the currency of the amount block that follows (with
    several currencies)."""

    text: str


Part = Union[Chart, Table, Text, Note, Heading]


@dataclass
class Section:
    """What a reader sees of one section, in order (``parts``), and the metric tables behind it by
    name (``tables``: unformatted, for tests, CSV export and the explorer's ``last``)."""

    parts: list[Part] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def charts(self) -> list[Chart]:
        return [p for p in self.parts if isinstance(p, Chart)]

    def close(self) -> None:
        """Close the section's figures (when only its tables, or one of its charts, are used)."""
        import matplotlib.pyplot as plt
        for c in self.charts:
            plt.close(getattr(c.figure, "figure", c.figure))


#: What every section function is: ``(ds, period, **slice) -> Section``.
SectionFunction = Callable[..., Section]


def _start(ds: Dataset, period: PeriodLike, slice_: dict) -> tuple[Dataset, Period]:
    """The slice of ``ds`` (``ds.filter(**slice_)``; a value ``None`` leaves its column whole) and
    the period."""
    wanted = {k: v for k, v in slice_.items() if v is not None}
    ds = ds.filter(**wanted) if wanted else ds
    return ds, as_period(period, ds)


# ------------------------------------------------------------------------ currencies of a data set

def currency_slices(ds: Dataset) -> list[tuple[str, Dataset]]:
    """``[(currency, the deals in it)]``: one entry per currency (amounts are never added across
    currencies); the data set itself when it has one currency."""
    codes = ds.currencies
    return [(ds.currency, ds)] if len(codes) <= 1 else [(c, ds.in_currency(c)) for c in codes]


def currency_heading(code: str, slices: list) -> list[Part]:
    """A heading naming the currency of the amount block that follows (only with several)."""
    return [Heading(_("Amounts in {currency}").format(currency=code))] if len(slices) > 1 else []


def in_currency(table: pd.DataFrame, code: str, ds: Dataset) -> pd.DataFrame:
    """The rows of a per-deal table (forecast, stuck deals) whose deal is in ``code`` (all rows with
    one currency)."""
    if len(ds.currencies) <= 1:
        return table
    ids = ds.deals.loc[ds.deals["currency"].astype(str).eq(code).to_numpy(), "deal_id"]
    return table[table["deal_id"].isin(ids).to_numpy()].reset_index(drop=True)


def has_known(table: pd.DataFrame, column: str) -> bool:
    """True when ``column`` has at least one known (non-missing) value."""
    return bool(table[column].notna().any()) if column in table.columns else False


# ------------------------------------------------------------------------------------ the sections

def funnel(ds: Dataset, period: PeriodLike, **slice) -> Section:
    """The funnel of the deals created in the period (stages no deal ever entered left out) and its
    takeaway (cohort outcomes, bottleneck)."""
    from .views import funnel_chart, funnel_text
    from .metrics.stages import funnel as funnel_table
    ds, period = _start(ds, period, slice)
    return Section([Chart(funnel_chart(ds, period), funnel_text(ds, period))],
                   {"funnel": funnel_table(ds, period)})


def stage_flow(ds: Dataset, period: PeriodLike, **slice) -> Section:
    """Every stage visit that began in the period and what became of it."""
    from . import plot as fkp
    from . import takeaways as tk
    from .metrics.stages import stage_flow as flow_table
    ds, period = _start(ds, period, slice)
    flow = flow_table(ds, period)
    return Section([Chart(fkp.stage_flow_plot(flow), tk.stage_flow_takeaway(flow))], {"stage_flow": flow})


def snapshots(ds: Dataset, period: PeriodLike, **slice) -> Section:
    """Open deals per stage at the end of every week (with the bottleneck in the takeaway), then the
    open amount per stage in each currency."""
    from . import plot as fkp
    from . import takeaways as tk
    from .metrics import stages as st
    ds, period = _start(ds, period, slice)
    weekly = st.weekly_snapshots(ds, period, amounts=False)
    parts: list[Part] = [Chart(fkp.snapshot_plot(weekly), tk.snapshot_takeaway(weekly, st.bottleneck(ds, period)))]
    tables = {"weekly": weekly}
    for code, ds_c in currency_slices(ds):
        amounts = st.weekly_snapshots(ds_c, period)
        tables[f"weekly_amount_{code}"] = amounts
        if has_known(amounts, "open_amount"):
            parts.append(Chart(fkp.snapshot_plot(amounts, value="open_amount", currency=code)))
        else:
            parts.append(Note(_("No open amount to chart in {currency}: every open deal's amount is unknown "
                                "(not 0).").format(currency=code)))
    return Section(parts, tables)


def time_in_stage(ds: Dataset, period: PeriodLike, *, stuck_quantile: float = 0.9, stage: str | None = None,
                  **slice) -> Section:
    """Days per visit that ended in the period, per stage (with the stuck thresholds), its table, and
    the win rate by days in a stage; ``stage`` narrows the charts to one stage."""
    from . import plot as fkp
    from . import takeaways as tk
    from .dataset import label_text
    from .metrics import stage_time as tis
    ds, period = _start(ds, period, slice)
    cur = ds.currency if len(ds.currencies) == 1 else ""
    table = tis.time_in_stage(ds, period)
    thresholds = tis.stage_thresholds(ds, period.as_of, quantile=stuck_quantile)
    stuck = tis.stuck_deals(ds, period.as_of, quantile=stuck_quantile)
    visits = fkp.visit_days(ds, period)
    wrt = tis.win_rate_by_time_in_stage(ds, period)
    if stage is None:
        parts: list[Part] = [
            Chart(fkp.duration_plot(visits, stages=ds.stages, thresholds=thresholds),
                  tk.time_in_stage_takeaway(table, stuck if cur else stuck.drop(columns="amount"), cur)),
            Table(fkp.format_table(table)),
            Chart(fkp.win_rate_by_time_plot(wrt), tk.win_rate_by_time_takeaway(wrt))]
    else:
        palette = fkp.stage_palette(ds.stages)
        visits = visits[label_text(visits["stage"]) == stage]
        stuck = stuck[label_text(stuck["stage"]) == stage]
        wrt = wrt[wrt["stage"].astype(str) == stage]
        parts = [Chart(fkp.duration_plot(visits, stages=[stage], palette=palette,
                                         thresholds=thresholds[thresholds["stage"].astype(str) == stage],
                                         title=_("Days per visit in {stage}").format(stage=stage))),
                 Chart(fkp.win_rate_by_time_plot(wrt, palette=palette,
                                                 title=_("Win rate by days in {stage}").format(stage=stage)))]
    return Section(parts, {"time_in_stage": table, "visits": visits, "stuck": stuck, "win_rate_by_time": wrt,
                           "thresholds": thresholds})


def stuck_deals(ds: Dataset, period: PeriodLike, *, stuck_quantile: float = 0.9, stage: str | None = None,
                **slice) -> Section:
    """The deals open at the end of the period that have been in their stage longer than the
    ``stuck_quantile`` of its past visits, per currency (``stage``: in that stage only)."""
    from . import plot as fkp
    from .dataset import label_text
    from .metrics import stage_time as tis
    ds, period = _start(ds, period, slice)
    stuck = tis.stuck_deals(ds, period.as_of, quantile=stuck_quantile)
    if stage is not None:
        stuck = stuck[label_text(stuck["stage"]) == stage]
    parts: list[Part] = []
    slices = currency_slices(ds)
    for code, _ds_c in slices:
        parts += currency_heading(code, slices)
        parts.append(Table(fkp.format_table(in_currency(stuck, code, ds), currency=code), max_rows=25))
    return Section(parts, {"stuck": stuck})


def days_to_close(ds: Dataset, period: PeriodLike, **slice) -> Section:
    """Days from creation to close of the deals closed in the period (won against lost, by product)
    and the Kaplan-Meier curve of the deals created in it."""
    from . import plot as fkp
    from . import takeaways as tk
    from .metrics import closing as dtc
    ds, period = _start(ds, period, slice)
    table = dtc.days_to_close(ds, period)
    by_product = dtc.days_to_close(ds, period, by="product")
    survival = dtc.close_time_survival(ds, period)
    return Section([Chart(fkp.days_to_close_plot(by_product, by="product",
                                                 title=_("Days to close by product: won vs lost")),
                          tk.days_to_close_takeaway(table)),
                    Chart(fkp.survival_plot(survival.survival_function_, median_days=survival.median_days),
                          tk.survival_takeaway(survival))],
                   {"days_to_close": table, "days_to_close_by_product": by_product})


def deal_size(ds: Dataset, period: PeriodLike, **slice) -> Section:
    """The won deals' size per currency: the monthly trend, the distribution with its statistics, and
    the outliers (beyond 1.5 IQR of the log amount)."""
    from . import plot as fkp
    from . import takeaways as tk
    from .metrics import breakdown as ab
    from .metrics import size as dsz
    from .metrics.summary import jsonable
    ds, period = _start(ds, period, slice)
    parts: list[Part] = []
    tables: dict[str, pd.DataFrame] = {}
    slices = currency_slices(ds)
    for code, ds_c in slices:
        parts += currency_heading(code, slices)
        size = dsz.deal_size(ds_c, period)
        monthly = dsz.deal_size_by_month(ds_c, period)
        won_deals = dsz.outlier_deals(ds_c, period, flagged_only=False)
        outliers = dsz.outlier_deals(ds_c, period)
        source_rows = jsonable(ab.amount_by(ds_c, period, by="source").to_dict("records"))
        parts += [Chart(fkp.deal_size_trend_plot(monthly, currency=code), tk.deal_size_trend_takeaway(monthly, code)),
                  Chart(fkp.deal_size_plot(won_deals, outlier="side", stats=size, currency=code),
                        tk.deal_size_takeaway(size, code, won_deals)),
                  Text(tk.outliers_takeaway(outliers, tk.won_amount({"amount_by_source": source_rows}), code),
                       _("Outliers"))]
        if len(outliers):
            parts.append(Table(fkp.format_table(outliers, currency=code)))
        tables.update({_named("deal_size_by_month", code, slices): monthly,
                       _named("won_deals", code, slices): won_deals})
    return Section(parts, tables)


def by_source(ds: Dataset, period: PeriodLike, **slice) -> Section:
    """Won amount and win rate by lead source (deals in one currency): chart, takeaway, table."""
    return _amount_by(ds, period, "source", slice)


def by_product(ds: Dataset, period: PeriodLike, **slice) -> Section:
    """Won amount, won deals and mean size by product (one currency): the three panels, takeaway,
    table."""
    return _amount_by(ds, period, "product", slice)


def per_rep(ds: Dataset, period: PeriodLike, **slice) -> Section:
    """The amount table by deal owner (one currency) and its coaching takeaway."""
    return _amount_by(ds, period, "owner", slice)


def _amount_by(ds: Dataset, period: PeriodLike, by: str, slice: dict) -> Section:
    from . import plot as fkp
    from . import takeaways as tk
    from .metrics.breakdown import amount_by as amount_by_table
    ds, period = _start(ds, period, slice)
    cur = ds.currency
    table = amount_by_table(ds, period, by=by)
    formatted = Table(fkp.format_table(table, currency=cur))
    if by == "owner":
        parts: list[Part] = [formatted, Text(tk.rep_takeaway(table, cur))]
    elif by == "product":
        parts = [Chart(fkp.product_mix_plot(table, by="product", currency=cur),
                       tk.product_mix_takeaway(table, "product", cur)), formatted]
    else:
        parts = [Chart(fkp.amount_by_plot(table, by=by, currency=cur), tk.amount_by_takeaway(table, by, cur)),
                 formatted]
    return Section(parts, {f"by_{by}": table})


def forecast(ds: Dataset, period: PeriodLike, **slice) -> Section:
    """The win forecast of the deals open at the end of the period: expected won amount by stage per
    currency, with its takeaway (which warns when the amounts are the values at export, known only
    in hindsight), and the split by source and by owner."""
    from . import plot as fkp
    from . import takeaways as tk
    from .metrics import forecast as fc
    from .metrics.summary import amount_coverage
    from .notebook import single_value_note
    ds, period = _start(ds, period, slice)
    fcst = fc.win_forecast(ds, period.as_of)
    parts: list[Part] = []
    tables: dict[str, pd.DataFrame] = {"forecast": fcst}
    slices = currency_slices(ds)
    for code, ds_c in slices:
        parts += currency_heading(code, slices)
        fc_c = in_currency(fcst, code, ds)
        hindsight = (amount_coverage(ds_c, period) or {}).get("hindsight", False)
        by_stage = fc.expected_won_by(fc_c, "stage")
        tables[_named("expected_by_stage", code, slices)] = by_stage
        parts.append(Chart(fkp.expected_won_plot(by_stage, by="stage", currency=code),
                           tk.forecast_takeaway(fc_c, code, hindsight=hindsight)))
        for by in ("source", "owner"):
            if not single_value_note(ds, by):
                split = fc.expected_won_by(fc_c, by)[[by, "open_deals", "expected_won_deals", "expected_won_amount"]]
                parts.append(Table(fkp.format_table(split, currency=code)))
    return Section(parts, tables)


def pipeline_movement(ds: Dataset, period: PeriodLike, **slice) -> Section:
    """Where the pipeline went from the period's start to its ``as_of``, per currency: the waterfall of
    every open deal and, when the deals carry expected close dates, of the pipeline expected to close
    in the period (each takeaway checks start + movements = end); then, under a heading, the
    movements largest first (the bars' deal lists) and stage at the start against stage or outcome
    at the end.

    ``tables``: ``waterfall`` (one row per window and movement type), ``waterfall_check`` (per window:
    start, end and start + movements, for deals and amounts, and whether they agree), ``movements``
    (one row per movement) and ``stage_movement``; with several currencies each name ends in
    ``_<currency>``.
    """
    from . import plot as fkp
    from .metrics import movement as mv
    ds, period = _start(ds, period, slice)
    dated = has_expected_dates(ds)
    parts: list[Part] = []
    tables: dict[str, pd.DataFrame] = {}
    slices = currency_slices(ds)
    every_open = {}
    for code, ds_c in slices:
        parts += currency_heading(code, slices)
        windows = {"all": mv.pipeline_waterfall(ds_c, period.start, period.as_of)}
        parts.append(_waterfall_chart(windows["all"], code, _("Where the open pipeline went (every open deal)")))
        if dated:
            windows["period"] = mv.pipeline_waterfall(ds_c, period.start, period.as_of, window=period)
            parts.append(_waterfall_chart(windows["period"], code, _("Pipeline expected to close in the period")))
        every_open[code] = windows["all"]
        tables[_named("waterfall", code, slices)] = pd.concat([w.movements.assign(window=k) for k, w in windows.items()],
                                                 ignore_index=True)
        tables[_named("waterfall_check", code, slices)] = pd.DataFrame([_check_row(k, w) for k, w in windows.items()])
    if not dated:
        parts.append(Note(_("The deals carry no expected close date, so the pipeline expected to close in the "
                            "period cannot be shown.")))
    parts.append(Heading(_("The largest movements, and stage at the start against stage or outcome at the end")))
    for code, ds_c in slices:
        parts += currency_heading(code, slices)
        moves = every_open[code].deals.sort_values("amount", ascending=False)
        stages = mv.stage_movement(ds_c, period.start, period.as_of, waterfall=every_open[code])
        tables.update({_named("movements", code, slices): moves, _named("stage_movement", code, slices): stages})
        # shown without the signed change: the amount and the movement's name say it
        parts += [Table(fkp.format_table(moves.drop(columns="change"), currency=code), max_rows=15),
                  Table(fkp.format_table(stages, currency=code), max_rows=40)]
    return Section(parts, tables)


def _named(name: str, code: str, slices) -> str:
    """A table's name in ``Section.tables``: ``name``, or ``name_<currency>`` with several currencies."""
    return name if len(slices) == 1 else f"{name}_{code}"


def _waterfall_chart(waterfall, code: str, title: str) -> Chart:
    from . import plot as fkp
    from . import takeaways as tk
    return Chart(fkp.waterfall_plot(waterfall.movements, start_amount=waterfall.start_amount,
                                    end_amount=waterfall.end_amount, currency=code,
                                    start_unknown=waterfall.start_amount_unknown,
                                    end_unknown=waterfall.end_amount_unknown, title=title),
                 tk.waterfall_takeaway(waterfall, code))


def _check_row(window: str, waterfall) -> dict:
    """One row of ``waterfall_check``: the pipeline at the start, start + movements, and at the end."""
    b = waterfall.balance
    return {"window": window, "start": waterfall.start, "end": waterfall.end,
            "start_deals": waterfall.start_deals, "start_amount": waterfall.start_amount,
            "start_plus_movements_deals": b["deals"], "start_plus_movements_amount": b["amount"],
            "end_deals": waterfall.end_deals, "end_amount": waterfall.end_amount, "balanced": b["balanced"]}


def slipping_deals(ds: Dataset, period: PeriodLike, **slice) -> Section:
    """Slipping deals: the win rate of the deals closed in the period by how often their expected close
    date was pushed (with its evidence-checked takeaway), then per currency the open deals past due or
    pushed at ``as_of`` (the list a manager acts on), what became of the deals expected to close in
    the period by owner, and the deals lost in the period by reason and stage.

    Without expected close dates (no ``expected_close_date`` column, no change log) a note says why
    the push views are missing; the lost reasons are shown all the same.
    """
    from . import plot as fkp
    from . import takeaways as tk
    from .metrics import slippage as slp
    ds, period = _start(ds, period, slice)
    dated = has_expected_dates(ds)
    parts: list[Part] = []
    tables: dict[str, pd.DataFrame] = {}
    if dated:
        by_pushes = tables["win_rate_by_pushes"] = slp.win_rate_by_pushes(ds, period)
        parts.append(Chart(fkp.win_rate_by_pushes_plot(by_pushes), tk.pushes_takeaway(by_pushes)))
    else:
        parts.append(Note(_("The deals carry no expected close date (no deal_changes.csv and no "
                            "expected_close_date column): pushes and past-due deals cannot be shown.")))
    slices = currency_slices(ds)
    for code, ds_c in slices:
        parts += currency_heading(code, slices)
        if dated:
            slipping = slp.slipping_deals(ds_c, period.as_of)
            slipping = slipping[slipping["past_due"] | (slipping["pushes"] > 0)]
            expected = slp.expected_to_close(ds_c, period, by="owner")
            tables.update({_named("slipping", code, slices): slipping, _named("expected_to_close", code, slices): expected})
            parts += [Table(fkp.format_table(slipping, currency=code), max_rows=25),
                      Table(fkp.format_table(expected, currency=code))]
        lost = tables[_named("lost_reasons", code, slices)] = slp.lost_reasons(ds_c, period)
        parts.append(Table(fkp.format_table(lost, currency=code), max_rows=20))
    return Section(parts, tables)


# ---------------------------------------------------------------------------------- rendering

def part_html(part: Part) -> str | None:
    """The HTML of a non-chart part (None for a :class:`Chart`, drawn as an image)."""
    from .takeaways import as_html
    from .views import table_html
    if isinstance(part, Table):
        return table_html(part.frame, max_rows=part.max_rows)
    if isinstance(part, Text):
        return as_html(part.text, part.label)
    if isinstance(part, Note):
        return as_html(part.text, _("Note"))
    if isinstance(part, Heading):
        return f"<h3>{html.escape(part.text)}</h3>"
    return None


def quietly(section: SectionFunction, ds: Dataset, period: PeriodLike, **options) -> tuple[Section, list[str]]:
    """``section(ds, period, **options)`` with funnelkit's warnings caught: the section and the first
    line of each warning (for an explorer or a slice, where a warning would be read as being about
    the whole report)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = section(ds, period, **options)
    return out, list(dict.fromkeys(str(w.message).splitlines()[0] for w in caught))
