"""Win forecast for open deals, and an honest backtest of it.

The model, in words
-------------------
For a deal open at ``as_of`` that has sat ``d`` days in stage ``s``, ``p_win`` is the share of
*similar past visits* whose deal was eventually won: the visits of stage ``s`` that lasted **at
least** ``d`` days, among the deals closed (won or lost) before ``as_of``. When there are few such
visits, the estimate is shrunk toward the stage's own win rate (a Beta prior worth
``prior_strength`` visits), and the stage rate in turn toward the overall win rate of the closed
deals::

    p0      = won deals / closed deals                       (closed before as_of)
    p_stage = (won_s + k * p0)      / (visits_s + k)         (all past visits of s)
    p_win   = (won_s(d) + k * p_stage) / (visits_s(d) + k)   (past visits of s lasting >= d days)

``k = prior_strength``. ``p_stage`` alone is the stage-only baseline the backtest compares with.

Then, by default, two group adjustments (``adjust_for=("source", "owner")``), one after the other:
for each source, the past visits of its deals are compared with what their stage rates predicted;
the log-odds gap (observed rate shrunk toward the expected one by ``k`` visits) is added to the
log-odds of its open deals. The owner adjustment is estimated the same way on top of the source
one. ``odds_factor`` in the output is the product of the adjustments (1 = none). On the sample data
each adjustment lowers the backtest's Brier score; ``adjust_for=()`` turns them off.

No leakage
----------
Only deals with ``closed_at < as_of`` train the model. All their stage entries and their close
happened before ``as_of``, so nothing dated at or after ``as_of`` (a later close, a later stage
entry, a later deal, the final status of a deal open at ``as_of``) can change a forecast. The open
deals and their time in stage are seen with the visibility rule of :mod:`funnelkit.history`.
Deal attributes (amount, source, owner) are taken as the export shows them: CRM exports carry no
history of those fields.
"""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..dataset import Dataset, MixedCurrencyError
from ..engine.tables import Tables, tables_of, temp_table, to_frame
from ..engine.views import count_if, dates_estimated, days_between, deals_as_of, instant, not_closed_then
from ..errors import ArgumentError, FunnelkitError, TooLittleDataWarning, UnknownColumnError
from ..i18n import _
from ..period import as_instant
from ._common import LEFT_OUT, bet_totals, expit, logit, needs_simulation

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["win_forecast", "forecast_range", "NotEnoughHistory", "expected_won_by", "backtest_forecast", "ForecastBacktest",
           "default_backtest_dates"]

#: Deal columns whose groups adjust the stage-and-time estimate by default (see the module doc).
DEFAULT_ADJUST: tuple[str, ...] = ("source", "owner")


class NotEnoughHistory(FunnelkitError, ValueError):
    """The data is too short to backtest the forecast (no as_of date has history and outcomes)."""


# --------------------------------------------------------------------------------------------
# The evidence and the aggregates, computed by the data set's engine (funnelkit.engine) for one or
# several instants at once; only the fit over these small tables and the scoring stay in numpy.
#
# Durations are fractional days from epoch seconds (whole seconds on Spark, BigQuery, Snowflake:
# docs/engines.md); sums of conditionals, never boolean casts (Postgres refuses them).

def _group_columns(deals: "ir.Table", adjust: tuple[str, ...]) -> dict:
    """The adjustment columns of ``deals`` as they are, named ``_g0``, ``_g1``, ...: what the engine
    joins and groups by (:func:`_group_keys` turns them into text keys afterwards, on fewer rows)."""
    return {f"_g{i}": deals[col] for i, col in enumerate(adjust)}


def _group_keys(table: "ir.Table", n: int) -> "ir.Table":
    """``table`` with its ``n`` group columns ``_g0``.. (:func:`_group_columns`) as text group keys:
    ``=`` and the value, or ``-`` where it is missing (a group of its own, apart from every value).
    Applied after the engine has grouped or filtered the rows: one concatenation per group or open
    deal, not per past visit."""
    import ibis

    return table.mutate(**{f"_g{i}": ibis.ifelse(table[f"_g{i}"].isnull(), "-",
                                                 ibis.literal("=").concat(table[f"_g{i}"].cast("string")))
                           for i in range(n)})


def _instants(instants: list[pd.Timestamp]) -> "ir.Table":
    """The instants as a small engine table: ``_date`` (their position) and ``_at``."""
    import ibis

    frame = pd.DataFrame({"_date": np.arange(len(instants), dtype="int64"),
                          "_at": pd.DatetimeIndex(instants).astype("datetime64[us]")})
    return ibis.memtable(frame, schema={"_date": "int64", "_at": "timestamp(6)"})


def _past_visits(v: "ir.Table") -> "ir.Table":
    """The visits the model learns from: those of deals that ever closed, with their full duration
    ``days`` (to the next entry, or to the close for the last one: it never depends on the instant),
    ``won`` (1 or 0) and the deal's ``closed_at``. Visits of deals flagged ``dates_estimated`` have
    no known duration and are left out."""
    import ibis

    v = v.filter(v.closed_at.notnull() & ~dates_estimated(v))
    end = ibis.ifelse(v.is_last, v.closed_at, v.next_entered_at)
    return v.select("deal_row", "stage_index", "closed_at", days=days_between(v.entered_at, end),
                    won=ibis.ifelse(v.status == "won", 1, 0).cast("int64"))


@dataclass(frozen=True)
class _Views:
    """What the forecast reads from the engine: the ``visits`` (:attr:`Tables.visits`), the
    ``past`` visits (:func:`_past_visits`), the ``deals``, the stage ``entries`` and the data set's
    ``tables`` (for its closed spells: :func:`funnelkit.engine.views.not_closed_then`)."""

    visits: "ir.Table"
    past: "ir.Table"
    deals: "ir.Table"
    entries: "ir.Table"
    tables: Tables
    #: Whether :meth:`instants` keeps its tables (a loaded folder's views, not cut by ``until``).
    keep: bool = False
    _when: dict = field(default_factory=dict, repr=False, compare=False)

    def instants(self, instants: list[pd.Timestamp]) -> "ir.Table":
        """The instants as a small engine table (:func:`_instants`); when :attr:`keep`, the same table
        for the same instants, so that a query over it is the same query and its kept result
        (:func:`funnelkit.engine.tables.to_frame`) is reused: the report forecasts at ``as_of`` twice
        (the win forecast and the landing forecast's open deals), each 2-4 s of engine work at 1M deals."""
        if not self.keep:
            return _instants(instants)
        key = tuple(instants)
        if key not in self._when:
            self._when[key] = _instants(instants)
        return self._when[key]

    def past_keyed(self, adjust: tuple[str, ...]) -> "ir.Table":
        """The past visits with their deals' ``adjust`` columns as ``_g0``.. (:func:`_group_columns`):
        ``stage_index``, ``closed_at``, ``won`` and those columns. An expression, not kept: a
        forecast reads it once (the report's second forecast at the same instant reuses the first's
        kept results), and keeping it cost more than joining (at 1M deals ~2 s to write and compress
        it against ~1 s for a query that joins)."""
        columns = ["stage_index", "closed_at", "won", *(f"_g{i}" for i in range(len(adjust)))]
        if not adjust:
            return self.past.select(columns)
        keyed = self.past.join(self.deals.select("deal_row", **_group_columns(self.deals, adjust)), "deal_row")
        return keyed.select(columns)

    def up_to(self, until: pd.Timestamp) -> "_Views":
        """The views as they stood at ``until``: deals created and entries made before it, entries
        and closes at or after it unknown (those deals open, their visits not ended)."""
        import ibis

        at = instant(until)
        d = self.deals.filter(self.deals.created_at < at)
        closed = _seen_closed(d, at)
        d = d.mutate(status=ibis.ifelse(closed, d.status, "open"),
                     closed_at=ibis.ifelse(closed, d.closed_at, ibis.null(d.closed_at.type())))
        v = self.visits.filter(self.visits.entered_at < at)
        next_seen = v.next_entered_at.notnull() & (v.next_entered_at < at)
        closed = _seen_closed(v, at)
        v = v.mutate(next_entered_at=ibis.ifelse(next_seen, v.next_entered_at, ibis.null(v.next_entered_at.type())),
                     next_stage_index=ibis.ifelse(next_seen, v.next_stage_index, ibis.null(v.next_stage_index.type())),
                     is_last=~next_seen,
                     status=ibis.ifelse(closed, v.status, "open"),
                     closed_at=ibis.ifelse(closed, v.closed_at, ibis.null(v.closed_at.type())))
        # A past visit's deal closed before until: all its visits began and ended before it.
        return _Views(visits=v, past=self.past.filter(self.past.closed_at < at), deals=d,
                      entries=self.entries.filter(self.entries.entered_at < at), tables=self.tables)


def _views(ds: Dataset, *, keep_past: bool = False) -> _Views:
    """The data set's forecast views. A loaded folder's (its in-process DuckDB) are built once per
    data set: its visits are a kept table already (:attr:`Tables.visits`); with ``keep_past`` (the
    backtest, whose two queries read the past visits once per backtest instant, cross-joined) the
    past visits are kept too, as a compressed table. A forecast at one instant reads them in two
    queries, for which computing them there costs less than writing and compressing them first. At
    1M deals, CPU: a first forecast 1.0 s against 1.3 s, a backtest 3.85 s against 3.6 s (kept), the
    forecast accuracy of one quarter (13 weekly forecasts) 54.4 s against 56.0 s. A data set held in a
    database is read as it is (nothing is written into it)."""
    t = tables_of(ds)
    if isinstance(getattr(ds, "tables", None), Tables):
        return _Views(t.visits, _past_visits(t.visits), t.deals, t.entries, t)

    def views() -> _Views:
        past = _past_visits(t.visits)
        if keep_past:
            past = temp_table(t.con, f"past_{uuid.uuid4().hex}", past, compress=True)
        return _Views(t.visits, past, t.deals, t.entries, t, keep=True)

    return ds.derived("forecast_views:kept_past" if keep_past else "forecast_views", views)


def _seen_closed(table: "ir.Table", at) -> "ir.BooleanValue":
    return table.closed_at.notnull() & (table.closed_at < at)


def _deal_counts(src: _Views, when: "ir.Table", n: int) -> pd.DataFrame:
    """Per instant (row ``i`` for ``when``'s ``_date`` i): ``closed`` (deals closed before it),
    ``won`` of those and ``flagged`` (of those, flagged ``dates_estimated``)."""
    d = src.deals.cross_join(when)
    closed = _seen_closed(d, d._at)
    got = to_frame(d.group_by("_date").aggregate(closed=count_if(closed), won=count_if(closed & (d.status == "won")),
                                                 flagged=count_if(closed & dates_estimated(d))))
    got = got.set_index(got["_date"].astype("int64")).reindex(range(n), fill_value=0)
    return got[["closed", "won", "flagged"]].astype("int64")


def _past_cells(src: _Views, when: "ir.Table", adjust: tuple[str, ...]) -> pd.DataFrame:
    """Per instant, stage and adjustment groups: the past visits (closed before the instant) and
    how many were won: ``_date``, ``stage_index``, ``_g0``.., ``visits``, ``won``."""
    x = src.past_keyed(adjust).cross_join(when)
    x = x.filter(x.closed_at < x._at)
    keys = ["_date", "stage_index", *(f"_g{i}" for i in range(len(adjust)))]
    got = to_frame(_group_keys(x.group_by(keys).aggregate(visits=x.count(), won=x.won.sum()), len(adjust)))
    # Sorted here, not by the engine (whose text collation may differ): the adjustments add floats
    # over the cells, in the same order on every engine and every run.
    return got.sort_values(keys, kind="stable").reset_index(drop=True)


def _open_evidence(src: _Views, when: "ir.Table", deals: "ir.Table", columns: tuple[str, ...],
                   adjust: tuple[str, ...]) -> pd.DataFrame:
    """Per instant, each deal open at it (in its current visit, not closed then by an earlier close):
    ``_date``, ``deal_row``,
    ``stage_index``, ``days_in_stage``, ``past_shorter`` and ``won_shorter`` (past visits of the
    stage, closed before the instant, that lasted less long; and of those, won), the group keys
    ``_g0``.. and ``columns`` of ``deals`` (which include ``deal_id``); ordered by instant and deal id.

    The evidence (past visits that lasted at least as long) is the stage's past visits less
    ``past_shorter`` (:func:`_predict`). Counted by running sums over one column of days per instant
    and stage: the past visits first grouped by their days (:func:`_past_by_days`: a few distinct
    durations carry many visits), the open visits among them with no weight, each open visit before
    the past ones of equal days (those are not shorter). One window over the grouped rows, not
    ranks over every past visit: on 1M deals two ranks over 2M rows took 4 s of DuckDB CPU per
    instant, the grouping and the running sums 1 s."""
    import ibis

    v = src.visits.cross_join(when)
    at = v._at
    v = v.filter((v.entered_at < at) & (v.next_entered_at.isnull() | (v.next_entered_at >= at))
                 & ~_seen_closed(v, at))
    v = not_closed_then(src.tables, v, v._at)      # nor closed then by an earlier close
    now = v.select("_date", "deal_row", "stage_index", days=days_between(v.entered_at, at),
                   _past=ibis.literal(0, "int64"), _visits=ibis.literal(0, "int64"), _won=ibis.literal(0, "int64"))
    past = _past_by_days(src, when)
    u = now.union(past.select("_date", deal_row=ibis.null("int64"), stage_index=past.stage_index, days=past.days,
                              _past=ibis.literal(1, "int64"), _visits=past._visits, _won=past._won))
    # Counts summed as floats (whole numbers below 2**53 add exactly in any order): DuckDB's running
    # sums of floats are about twice as fast as of integers (whose sums are 128-bit).
    w = ibis.window(group_by=[u._date, u.stage_index], order_by=[u.days, u._past], rows=(None, 0))
    u = u.mutate(past_shorter=u._visits.cast("float64").sum().over(w).cast("int64"),
                 won_shorter=u._won.cast("float64").sum().over(w).cast("int64"))
    u = u.filter(u._past == 0)
    u = u.join(deals.select("deal_row", *columns, **_group_columns(deals, adjust)), "deal_row")
    keep = ["_date", "deal_row", "stage_index", *columns, *(f"_g{i}" for i in range(len(adjust)))]
    u = u.select(*keep, days_in_stage=u.days, past_shorter=u.past_shorter, won_shorter=u.won_shorter)
    out = to_frame(_group_keys(u, len(adjust)))
    out = out.astype({"_date": "int64", "deal_row": "int64", "stage_index": "int64"})
    return out.sort_values(["_date", "deal_id"], kind="stable").reset_index(drop=True)  # as _past_cells


def _past_by_days(src: _Views, when: "ir.Table") -> "ir.Table":
    """Per instant, stage and duration: the past visits (closed before the instant) that lasted
    exactly ``days``, and how many were won: ``_date``, ``stage_index``, ``days``, ``_visits``,
    ``_won``."""
    p = src.past.cross_join(when)
    p = p.filter(p.closed_at < p._at)
    return p.group_by(["_date", "stage_index", "days"]).aggregate(_visits=p.count(), _won=p.won.sum())


def _extent(src: _Views) -> pd.Series:
    """The first creation and the latest event (creation, close or stage entry) of the data."""
    d, e = src.deals, src.entries
    got = to_frame(d.aggregate(first=d.created_at.min(), last_created=d.created_at.max(),
                               last_closed=d.closed_at.max())
                   .cross_join(e.aggregate(last_entered=e.entered_at.max()))).iloc[0]
    return got


def _default_as_of(src: _Views, extent: pd.Series | None = None) -> pd.Timestamp:
    """The day after the latest event in the data, at 00:00 (a forecast "now")."""
    got = _extent(src) if extent is None else extent
    last = max(got[c] for c in ("last_created", "last_closed", "last_entered") if pd.notna(got[c]))
    return pd.Timestamp(last).normalize() + pd.Timedelta(days=1)


# --------------------------------------------------------------------------------------------
# The fit and the prediction over the engine's small tables (numpy)

@dataclass
class _Fit:
    p0: float
    p_stage: np.ndarray      # per stage index
    visits: np.ndarray       # past visits per stage index
    won: np.ndarray          # of those, won
    offsets: dict = field(default_factory=dict)  # column -> log-odds offset per group key (Series)


def _fit(counts: pd.Series, cells: pd.DataFrame, n_stages: int, k: float,
         adjust: tuple[str, ...] = ()) -> _Fit:
    """The model at one instant from its deal counts (:func:`_deal_counts`) and past-visit cells
    (:func:`_past_cells`)."""
    n_closed = int(counts["closed"])
    p0 = float(counts["won"] / n_closed) if n_closed else float("nan")
    stage = cells["stage_index"].to_numpy(dtype="int64")
    n = cells["visits"].to_numpy(dtype="float64")
    won = cells["won"].to_numpy(dtype="float64")
    n_s = np.bincount(stage, weights=n, minlength=n_stages)
    w_s = np.bincount(stage, weights=won, minlength=n_stages)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_stage = np.where(n_s > 0, (w_s + k * p0) / (n_s + k), p0)  # no visits: the overall rate
    fit = _Fit(p0, p_stage, n_s, w_s)
    if adjust and n_closed:
        # Group adjustments, one column after the other: how much better (in log-odds) the past
        # visits of a group did than their stage rates (plus the adjustments already made) predicted,
        # with the observed rate shrunk toward the expected one by k visits.
        eta = logit(p_stage[stage])
        for i, col in enumerate(adjust):
            codes, keys = pd.factorize(cells[f"_g{i}"].to_numpy(dtype=object))
            size = len(keys)
            n_g = np.bincount(codes, weights=n, minlength=size)
            o_g = np.bincount(codes, weights=won, minlength=size)
            e_g = np.bincount(codes, weights=n * expit(eta), minlength=size)
            with np.errstate(invalid="ignore", divide="ignore"):
                e_rate = e_g / n_g
                r = (o_g + k * e_rate) / (n_g + k)
                off = np.where(n_g > 0, logit(r) - logit(e_rate), 0.0)
            fit.offsets[col] = pd.Series(off, index=pd.Index(keys, dtype=object))
            eta = eta + off[codes]
    return fit


def _predict(fit: _Fit, ev: pd.DataFrame, k: float, adjust: tuple[str, ...] = ()):
    """p_win, p_stage, the evidence (similar visits, of which won) and the adjustments' odds factor
    of the open deals ``ev`` (:func:`_open_evidence`)."""
    stage = ev["stage_index"].to_numpy(dtype="int64")
    n = fit.visits[stage].astype("int64") - ev["past_shorter"].to_numpy(dtype="int64")
    w = fit.won[stage].astype("int64") - ev["won_shorter"].to_numpy(dtype="int64")
    p_stage = fit.p_stage[stage]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = (w + k * p_stage) / (n + k)
    if k == 0:  # no shrinkage: fall back to the stage rate where there is no evidence at all
        p = np.where(n > 0, p, p_stage)
    shift = np.zeros(len(stage))
    for i, col in enumerate(adjust):
        if col in fit.offsets:   # a group without past visits: no adjustment
            shift += np.nan_to_num(fit.offsets[col].reindex(ev[f"_g{i}"].to_numpy(dtype=object)).to_numpy(),
                                   nan=0.0)
    if fit.offsets:
        p = np.where(np.isnan(p), p, expit(logit(p) + shift))
    return p, p_stage, n, w, np.exp(shift)


def _check_adjust(ds: Dataset, adjust_for) -> tuple[str, ...]:
    if adjust_for is None:
        return ()
    cols = (adjust_for,) if isinstance(adjust_for, str) else tuple(adjust_for)
    if "stage" in cols:
        raise ArgumentError("adjust_for: the stage is always in the model; list other deal columns")
    for col in cols:
        if col not in ds.deal_columns:
            raise UnknownColumnError(f"adjust_for: the deals have no column {col!r} (columns: "
                                     + ", ".join(ds.deal_columns) + ")")
    return cols


def _check_k(prior_strength: float) -> float:
    k = float(prior_strength)
    if not np.isfinite(k) or k < 0:
        raise ArgumentError(f"prior_strength must be a number >= 0, got {prior_strength!r}")
    return k


def win_forecast(ds: Dataset, as_of=None, *, prior_strength: float = 10.0,
                 adjust_for: tuple[str, ...] | list[str] | None = DEFAULT_ADJUST) -> pd.DataFrame:
    """The probability that each deal open at ``as_of`` is won, from deals closed before ``as_of``.

    Parameters
    ----------
    ds
        The data set.
    as_of
        The instant the data is seen at (exclusive). Default: the day after the latest event in
        the data, at 00:00 (a forecast "now").
    prior_strength
        ``k``, the weight (in visits) of the stage rate when few past visits lasted as long as this
        one. ``0`` means no shrinkage.

    Returns
    -------
    DataFrame
        One row per open deal: ``deal_id``, ``stage`` (ordered categorical), ``days_in_stage``,
        ``p_win``, ``stage_win_rate`` (the stage-only baseline), ``similar_visits`` and
        ``similar_won`` (the evidence: past visits of this stage that lasted at least as long, and
        how many of those deals were won), ``amount`` (NaN = unknown), ``expected_won_amount``
        (``p_win * amount``; NaN where the amount is unknown), ``source``, ``product``, ``owner``
        (and ``currency`` when the deals have that column). Sorted by stage, then ``p_win``
        descending. ``p_win`` is NaN only when no deal closed before ``as_of`` (with a warning).
        ``attrs``: ``as_of``, ``prior_strength``, ``base_rate`` (p0), ``trained_on_deals`` (deals
        closed before ``as_of``) and ``left_out_dates_estimated``: how many of those are flagged
        ``dates_estimated``; they count in p0 (a count), but their visits, whose durations are
        unknown, are not training visits (not in ``p_stage``, the similar visits or the adjustments).

    Examples
    --------
    >>> fc = win_forecast(ds, "2024-07-01")                         # doctest: +SKIP
    >>> fc[["deal_id", "stage", "days_in_stage", "p_win"]].head()   # doctest: +SKIP
    """
    k = _check_k(prior_strength)
    adjust = _check_adjust(ds, adjust_for)
    src = _views(ds)
    as_of = _default_as_of(src) if as_of is None else as_instant(as_of)
    if isinstance(getattr(ds, "tables", None), Tables):
        out = _forecast(ds, src, as_of, k, adjust)        # a database's tables: read afresh each time
    else:
        # A loaded folder's forecast at an instant is kept on the data set (a report and the
        # summary ask for the same one several times); each caller gets its own copy.
        out = ds.derived(f"win_forecast {as_of.isoformat()} k={k!r} adjust={adjust!r}",
                         lambda: _forecast(ds, src, as_of, k, adjust)).copy()
    if np.isnan(out.attrs["base_rate"]):
        warnings.warn(_("win_forecast: no deal closed before {as_of}; p_win is unknown (NaN)").format(as_of=as_of),
                      TooLittleDataWarning, stacklevel=2)
    return out


def _forecast(ds: Dataset, src: _Views, as_of: pd.Timestamp, k: float, adjust: tuple[str, ...]) -> pd.DataFrame:
    """:func:`win_forecast` at ``as_of``, its arguments checked."""
    when = src.instants([as_of])
    counts = _deal_counts(src, when, 1).iloc[0]
    fit = _fit(counts, _past_cells(src, when, adjust), len(ds.stages), k, adjust)
    # The amount as known at as_of (with a change log; else deals.csv's).
    ev = _open_evidence(src, when, deals_as_of(tables_of(ds), as_of), ("deal_id", "amount"), adjust)
    p, p_stage, n, w, factor = _predict(fit, ev, k, adjust)
    rows = ev["deal_row"].to_numpy()
    amount = ev["amount"].to_numpy(dtype="float64")
    out = pd.DataFrame({
        "deal_id": ds.deals["deal_id"].iloc[rows].to_numpy(),
        "stage": pd.Categorical.from_codes(ev["stage_index"].to_numpy(), categories=ds.stages, ordered=True),
        "days_in_stage": ev["days_in_stage"].to_numpy(dtype="float64"),
        "p_win": p,
        "stage_win_rate": p_stage,
        "similar_visits": n,
        "similar_won": w,
        "odds_factor": factor,
        "amount": amount,
        "expected_won_amount": p * amount,
    })
    deals = ds.deals
    extra = ["source", "product", "owner"] + (["currency"] if "currency" in deals.columns else [])
    for col in extra:
        out[col] = deals[col].iloc[rows].to_numpy() if len(rows) else deals[col].iloc[:0].to_numpy()
        if isinstance(deals[col].dtype, pd.CategoricalDtype):
            out[col] = pd.Categorical(out[col], categories=deals[col].cat.categories)
    out = out.sort_values(["stage", "p_win", "deal_id"], ascending=[True, False, True], kind="stable")
    out = out.reset_index(drop=True)
    out.attrs.update(as_of=as_of, prior_strength=k, base_rate=fit.p0, trained_on_deals=int(counts["closed"]),
                     **{LEFT_OUT: int(counts["flagged"])})
    return out


def expected_won_by(forecast: pd.DataFrame, by: str | list[str] | None = "stage") -> pd.DataFrame:
    """Expected won deals and amount among the open deals, per group.

    Parameters
    ----------
    forecast
        The output of :func:`win_forecast`.
    by
        A column (``"stage"``, ``"source"``, ``"product"``, ``"owner"``), a list of them, or None
        for one total row.

    Returns
    -------
    DataFrame
        ``<by>``, ``open_deals``, ``expected_won_deals`` (sum of ``p_win`` over all the group's open
        deals), ``expected_won_amount`` (sum of ``p_win * amount`` over deals with a known amount;
        NaN, unknown rather than 0, when every open deal of the group has an unknown amount),
        ``amount_unknown_deals`` (open deals left out of that sum because their amount is empty)
        and ``expected_won_deals_amount_unknown`` (their share of ``expected_won_deals``). By stage,
        every pipeline stage appears in order (zeros where none); other groupings list the groups
        with open deals, largest ``expected_won_amount`` first. The amount columns of any grouping
        add up to the same total.

    Raises
    ------
    MixedCurrencyError
        When the forecast's deals carry more than one currency (amounts are never added across
        currencies).

    Examples
    --------
    >>> expected_won_by(win_forecast(ds, "2024-07-01"), "source")   # doctest: +SKIP
    """
    _require_single_currency(forecast)
    f = forecast
    unknown = f["amount"].isna()
    parts = pd.DataFrame({
        "open_deals": np.ones(len(f), dtype=np.int64),
        "expected_won_deals": f["p_win"].to_numpy(dtype=float),
        "expected_won_amount": f["expected_won_amount"].to_numpy(dtype=float),
        "amount_unknown_deals": unknown.to_numpy().astype(np.int64),
        "expected_won_deals_amount_unknown": np.where(unknown, f["p_win"], 0.0),
    }, index=f.index)
    if by is None:
        total = parts.sum(min_count=0).to_frame().T
        return _unknown_not_zero(total.astype({"open_deals": "int64", "amount_unknown_deals": "int64"}))
    keys = [by] if isinstance(by, str) else list(by)
    for key in keys:
        parts[key] = f[key]
    g = parts.groupby(keys, observed=True, sort=True).sum(min_count=0)
    if keys == ["stage"] and isinstance(f["stage"].dtype, pd.CategoricalDtype):
        g = g.reindex(pd.CategoricalIndex(f["stage"].cat.categories, categories=f["stage"].cat.categories,
                                          ordered=True, name="stage"), fill_value=0)
    else:
        g = g.sort_values("expected_won_amount", ascending=False, kind="stable")
    g = g.reset_index()
    return _unknown_not_zero(g.astype({"open_deals": "int64", "amount_unknown_deals": "int64"}))


def _unknown_not_zero(table: pd.DataFrame) -> pd.DataFrame:
    """A group whose open deals all have an unknown amount has an unknown (NaN) expected amount, not 0."""
    unknown = (table["open_deals"] > 0) & (table["amount_unknown_deals"] == table["open_deals"])
    return table.assign(expected_won_amount=table["expected_won_amount"].where(~unknown))


def _require_single_currency(forecast: pd.DataFrame, what: str = "expected_won_by") -> None:
    if "currency" not in forecast.columns:
        return
    cur = forecast.loc[forecast["amount"].notna(), "currency"].astype(str)
    found = sorted(cur.unique().tolist())
    if len(found) > 1:
        listed = ", ".join(f"{c}: {n} deals" for c, n in cur.value_counts().items())
        raise MixedCurrencyError(
            f"{what} adds amounts, but the open deals are in {len(found)} currencies "
            f"({listed}). Amounts in different currencies are never added together: forecast a "
            f"one-currency slice, e.g. win_forecast(ds.filter(currency={found[0]!r}), ...).")




#: Up to this many open deals the range is simulated; above it the normal approximation is used
#: (the sum of many independent bets is close to normal, and simulating would need too much memory).
SIMULATE_UP_TO = 2000


def forecast_range(forecast: pd.DataFrame, level: float = 0.8, *, simulations: int = 4000,
                   seed: int = 0) -> dict:
    """How much of the open pipeline may be won: the expected amount and a range around it.

    Each open deal is taken to be won with its ``p_win`` and its ``amount``, independently of the
    others. The won amount is then a sum of independent bets: its mean is the expected won amount,
    and its spread is what a single "weighted pipeline" number hides. The range holds the won
    amount with probability ``level`` (equal tails). Deals of unknown amount or probability are left
    out (``deals`` counts those used).

    Up to :data:`SIMULATE_UP_TO` deals, or when a few deals dominate the spread, the range comes
    from ``simulations`` seeded draws (the same result every time); otherwise from the normal
    approximation (mean ± z·sd with sd² = Σ amount² p (1 − p)). The range always lies within
    0..Σ amount and contains the expected amount (a range of a few all-or-nothing bets can miss
    its own mean; it is widened to include it).

    Returns
    -------
    dict
        ``{deals, expected, low, high, level, method}`` (``method``: "simulation" or "normal").

    Examples
    --------
    >>> fc = win_forecast(ds, "2026-07-01")                  # doctest: +SKIP
    >>> forecast_range(fc, 0.8)                              # doctest: +SKIP
    {'deals': 130, 'expected': 507202.3, 'low': 383000.0, 'high': 640000.0, 'level': 0.8, ...}
    """
    if not 0 < level < 1:
        raise ArgumentError("level must lie between 0 and 1, e.g. 0.8")
    if simulations < 1:
        raise ArgumentError("simulations must be a positive number")
    _require_single_currency(forecast, "forecast_range")
    known = forecast["amount"].notna() & forecast["p_win"].notna()
    a = forecast.loc[known, "amount"].to_numpy(dtype="float64")
    p = forecast.loc[known, "p_win"].to_numpy(dtype="float64")
    out = {"deals": int(len(a)), "expected": float(np.sum(a * p)), "level": float(level)}
    tail = (1 - level) / 2
    if len(a) == 0:
        return {**out, "low": 0.0, "high": 0.0, "method": "none"}
    total, expected = float(a.sum()), out["expected"]

    def bounded(low: float, high: float) -> tuple[float, float]:
        return max(0.0, min(low, expected)), min(total, max(high, expected))

    if needs_simulation(a, p, SIMULATE_UP_TO):
        totals = bet_totals(np.random.default_rng(seed), a, p, simulations)
        low, high = bounded(*np.quantile(totals, [tail, 1 - tail]))
        return {**out, "low": float(low), "high": float(high), "method": "simulation"}
    from scipy.stats import norm
    sd = float(np.sqrt(np.sum(a * a * p * (1 - p))))
    z = float(norm.ppf(1 - tail))
    low, high = bounded(expected - z * sd, expected + z * sd)
    return {**out, "low": low, "high": high, "method": "normal"}


# --------------------------------------------------------------------------------------------
# Backtest

@dataclass
class ForecastBacktest:
    """The result of :func:`backtest_forecast`.

    Attributes
    ----------
    brier
        Mean squared error of ``p_win`` against the outcome (1 won, 0 lost) over all scored
        (as_of, deal) pairs. Lower is better; 0.25 is a coin toss at 50/50.
    baseline_brier
        The same for the stage-only baseline (``stage_win_rate``: the smoothed win rate of past
        visits of the deal's current stage, ignoring time in stage).
    skill
        ``1 - brier / baseline_brier``: the share of the baseline's error removed (> 0 = better).
    calibration
        One row per predicted-probability bin: ``bin`` (label), ``lower``, ``upper``, ``deals``,
        ``mean_predicted``, ``observed_win_rate``, ``baseline_deals``,
        ``baseline_mean_predicted``, ``baseline_observed_win_rate``. ``deals`` adds up to
        ``scored``.
    by_date
        One row per as_of date: ``as_of``, ``trained_on`` (deals closed before it), ``open_deals``,
        ``scored`` (closed later), ``unresolved`` (still open at the end of the data; not scored),
        ``no_forecast`` (closed later, but no deal had closed before ``as_of`` to learn from; not
        scored), ``won``, ``brier``, ``baseline_brier``. ``scored + unresolved + no_forecast =
        open_deals``.
    scored_deals
        One row per scored (as_of, deal): ``as_of``, ``deal_id``, ``stage``, ``days_in_stage``,
        ``p_win``, ``stage_win_rate``, ``won``.
    """

    brier: float
    baseline_brier: float
    calibration: pd.DataFrame
    by_date: pd.DataFrame
    scored_deals: pd.DataFrame = field(repr=False)
    prior_strength: float = 10.0

    @property
    def scored(self) -> int:
        return int(len(self.scored_deals))

    @property
    def skill(self) -> float:
        return float(1.0 - self.brier / self.baseline_brier) if self.baseline_brier else float("nan")

    @property
    def summary(self) -> pd.DataFrame:
        """One row per model (``time in stage`` and ``stage only``): brier, scored, dates, skill."""
        n_dates = int(len(self.by_date))
        rows = [
            {"model": "stage + time in stage", "brier": self.brier, "scored": self.scored,
             "as_of_dates": n_dates, "skill_vs_baseline": self.skill},
            {"model": "stage only (baseline)", "brier": self.baseline_brier, "scored": self.scored,
             "as_of_dates": n_dates, "skill_vs_baseline": 0.0},
        ]
        return pd.DataFrame(rows).set_index("model")

    def __repr__(self) -> str:
        return (f"ForecastBacktest(brier={self.brier:.4f}, baseline_brier={self.baseline_brier:.4f}, "
                f"skill={self.skill:+.1%}, scored={self.scored}, as_of_dates={len(self.by_date)})")


def default_backtest_dates(ds: Dataset, *, min_history_days: int = 180, min_outcome_days: int = 90,
                           max_dates: int = 8) -> list[pd.Timestamp]:
    """Quarter boundaries (``YYYY-01-01``, ``-04-01``, ...) spread over the data.

    A date qualifies when at least ``min_history_days`` of data lie before it (from the first deal's
    creation) and at least ``min_outcome_days`` after it (to the latest event). When fewer than three
    quarter boundaries qualify, month boundaries are used. At most ``max_dates`` are kept, evenly
    spread, always including the first and the last.
    """
    return _backtest_dates(_views(ds), min_history_days=min_history_days,
                           min_outcome_days=min_outcome_days, max_dates=max_dates)


def _backtest_dates(src: _Views, *, min_history_days: int, min_outcome_days: int,
                    max_dates: int) -> list[pd.Timestamp]:
    extent = _extent(src)
    if pd.isna(extent["first"]):     # no deals
        return []
    first = pd.Timestamp(extent["first"])
    last = _default_as_of(src, extent)
    lo = first + pd.Timedelta(days=min_history_days)
    hi = last - pd.Timedelta(days=min_outcome_days)
    if hi < lo:
        return []
    dates: list[pd.Timestamp] = []
    for freq in ("QS", "MS"):
        dates = list(pd.date_range(lo.normalize(), hi, freq=freq))
        dates = [t for t in dates if lo <= t <= hi]
        if len(dates) >= 3:
            break
    if len(dates) > max_dates:
        take = np.unique(np.round(np.linspace(0, len(dates) - 1, max_dates)).astype(int))
        dates = [dates[i] for i in take]
    return dates


def _calibration(p: np.ndarray, y: np.ndarray, bins: int, prefix: str = "") -> pd.DataFrame:
    # Bin i holds lower <= p < upper (the last bin also p = 1); rounding first keeps a p that is a
    # bin edge up to float error (e.g. 1.8 / 3) in the bin that edge opens.
    b = np.clip(np.floor(np.round(p * bins, 9)).astype(np.int64), 0, bins - 1)
    deals = np.bincount(b, minlength=bins)
    sum_p = np.bincount(b, weights=p, minlength=bins)
    sum_y = np.bincount(b, weights=y.astype(float), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(deals > 0, sum_p / deals, np.nan)
        obs = np.where(deals > 0, sum_y / deals, np.nan)
    return pd.DataFrame({f"{prefix}deals": deals, f"{prefix}mean_predicted": mean_p,
                         f"{prefix}observed_win_rate": obs})


def backtest_forecast(ds: Dataset, as_of_dates=None, *, prior_strength: float = 10.0,
                      adjust_for: tuple[str, ...] | list[str] | None = DEFAULT_ADJUST,
                      bins: int = 10, min_history_days: int = 180, min_outcome_days: int = 90,
                      max_dates: int = 8, until=None) -> ForecastBacktest:
    """Forecast the open deals at several past dates and score the forecasts against what happened.

    Protocol: at each ``as_of`` date the model is fitted on the deals closed before it (exactly as
    :func:`win_forecast` does) and forecasts every deal open at it. A forecast is scored when its
    deal closed later in the data: outcome 1 if won, 0 if lost. Deals still open at the end of the
    data have no outcome and are **excluded from scoring** (counted as ``unresolved`` in
    :attr:`ForecastBacktest.by_date`). A deal open at several dates is scored at each of them. The
    stage-only baseline (``stage_win_rate``) is scored on the same pairs.

    Parameters
    ----------
    ds
        The data set.
    as_of_dates
        Instants to forecast at; default :func:`default_backtest_dates` (quarter boundaries with at
        least ``min_history_days`` of history before and ``min_outcome_days`` of outcomes after).
    prior_strength
        As in :func:`win_forecast`.
    bins
        Number of equal-width predicted-probability bins in the calibration table.
    until
        See the data as it stood at this instant: outcomes (closes) at or after ``until`` are
        unknown, so those deals count as unresolved, and default dates leave ``min_outcome_days``
        before it. A report for a period passes its ``as_of``, so that the backtest it shows stays
        the same when later data arrives. Default: all the data.

    Returns
    -------
    ForecastBacktest
        ``.brier``, ``.baseline_brier``, ``.skill``, ``.calibration``, ``.by_date``, ``.summary``,
        ``.scored_deals``.

    Examples
    --------
    >>> bt = backtest_forecast(ds)                    # doctest: +SKIP
    >>> bt.brier < bt.baseline_brier                  # doctest: +SKIP
    True
    >>> bt.calibration                                # doctest: +SKIP
    """
    k = _check_k(prior_strength)
    adjust = _check_adjust(ds, adjust_for)
    src = _views(ds, keep_past=True)
    if until is not None:
        src = src.up_to(as_instant(until))
    if as_of_dates is None:
        dates = _backtest_dates(src, min_history_days=min_history_days, min_outcome_days=min_outcome_days,
                                max_dates=max_dates)
    else:
        dates = [as_instant(t) for t in ([as_of_dates] if isinstance(as_of_dates, (str, pd.Timestamp))
                                  else as_of_dates)]
    dates = sorted(set(dates))
    if not dates:
        raise NotEnoughHistory("no as_of dates to backtest at: the data span is too short for the default "
                         "dates (give as_of_dates, or lower min_history_days / min_outcome_days)")
    when = src.instants(dates)
    counts = _deal_counts(src, when, len(dates))
    cells = _past_cells(src, when, adjust)
    evidence = _open_evidence(src, when, src.deals, ("deal_id", "status"), adjust)
    cells_of = dict(tuple(cells.groupby("_date", sort=False)))
    evidence_of = dict(tuple(evidence.groupby("_date", sort=False)))
    frames, rows = [], []
    for i, at in enumerate(dates):
        fit = _fit(counts.iloc[i], cells_of.get(i, cells.iloc[:0]), len(ds.stages), k, adjust)
        ev = evidence_of.get(i, evidence.iloc[:0])
        p, p_stage = _predict(fit, ev, k, adjust)[:2]
        st = ev["status"].to_numpy(dtype=object)
        stage = ev["stage_index"].to_numpy(dtype="int64")
        resolved = (st != "open") & ~np.isnan(p)
        won = st[resolved] == "won"
        y = won.astype(float)
        rows.append({
            "as_of": at, "trained_on": int(counts["closed"].iloc[i]), "open_deals": int(len(ev)),
            "scored": int(resolved.sum()), "unresolved": int((st == "open").sum()),
            "no_forecast": int(((st != "open") & np.isnan(p)).sum()),
            "won": int(won.sum()),
            "brier": float(np.mean((p[resolved] - y) ** 2)) if resolved.any() else float("nan"),
            "baseline_brier": (float(np.mean((p_stage[resolved] - y) ** 2)) if resolved.any()
                               else float("nan")),
        })
        frames.append(pd.DataFrame({
            "as_of": np.repeat(at, int(resolved.sum())),
            "deal_id": ds.deals["deal_id"].iloc[ev["deal_row"].to_numpy()[resolved]].to_numpy(),
            "stage": pd.Categorical.from_codes(stage[resolved], categories=ds.stages, ordered=True),
            "days_in_stage": ev["days_in_stage"].to_numpy(dtype="float64")[resolved],
            "p_win": p[resolved],
            "stage_win_rate": p_stage[resolved],
            "won": won,
        }))
    scored = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    by_date = pd.DataFrame(rows)
    p = scored["p_win"].to_numpy(dtype=float)
    b = scored["stage_win_rate"].to_numpy(dtype=float)
    y = scored["won"].to_numpy().astype(float)
    brier = float(np.mean((p - y) ** 2)) if len(y) else float("nan")
    baseline = float(np.mean((b - y) ** 2)) if len(y) else float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    calib = pd.concat([
        pd.DataFrame({"bin": [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(edges[:-1], edges[1:])],
                      "lower": edges[:-1], "upper": edges[1:]}),
        _calibration(p, y, bins),
        _calibration(b, y, bins, prefix="baseline_"),
    ], axis=1)
    return ForecastBacktest(brier=brier, baseline_brier=baseline, calibration=calib, by_date=by_date,
                            scored_deals=scored, prior_strength=k)
