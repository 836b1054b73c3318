"""Where the pipeline went: the open pipeline at an instant and the waterfall between two instants.

Definitions (``docs/metrics.md``, section 9):

- **The pipeline at T** (optionally in a window W of expected close dates): the deals created before T
  and not closed before T, whose expected close date as known at T lies in W. A deal without an
  expected close date is outside every window.
- **Movements** in [start, end): every event instant e of a deal (its creation, a change of its amount
  or expected close date, its close) with ``start <= e < end`` compares the deal just before e (events
  before e seen) with just after it (events at e seen too). Events at one instant apply in the order
  creation, amount and date changes, stage entries, close. Entering the set is **created** (at its
  creation), **pulled in** (by a date change) or **reopened**; leaving it is **pushed out** (by a date
  change), **won** or **lost** (by the close, with the amount as known right after the changes of
  that instant); an amount change while in the set is **amount up** or **amount down**. Hence
  ``start + Σ movements = end`` for deal counts and for amounts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..dataset import Dataset
from ..engine.tables import Tables, tables_of, to_frame
from ..engine.views import NEVER, closed_then, in_period, instant, just_after, known_then, open_at
from ..errors import ArgumentError
from ..period import Period, as_instant
from ._common import stage_column

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["MOVEMENTS", "PipelineWaterfall", "pipeline_at", "pipeline_waterfall", "stage_movement",
           "waterfall_fields", "has_expected_dates"]

#: Movement types in display order; the first three add to the pipeline, the last three take from it.
MOVEMENTS = ("created", "pulled_in", "reopened", "amount_up", "amount_down", "pushed_out", "won", "lost")
_SIGN = {"created": 1, "pulled_in": 1, "reopened": 1, "amount_up": 1, "amount_down": -1,
         "pushed_out": -1, "won": -1, "lost": -1}
#: Labels of the stage-to-stage view for deals outside the pipeline at start or at end.
ENTERED, LEFT = "(entered)", "(left the window)"


def has_expected_dates(ds: Dataset) -> bool:
    """True when the deals can carry an expected close date: an ``expected_close_date`` column or a
    change log (``deal_changes.csv``) with at least one change. Without, a window of expected close
    dates holds no deal at any instant: not because none is expected to close in it, but because
    nobody knows; the report and ``funnelkit metrics`` leave such a window out.

    Examples
    --------
    >>> has_expected_dates(fk.load("data/sample"))      # doctest: +SKIP
    True
    """
    return "expected_close_date" in ds.deals.columns or not ds.deal_changes.empty


def _instant(value) -> np.datetime64:
    return as_instant(value).to_datetime64().astype("datetime64[ns]")


def _window(window) -> Period | None:
    """None, a Period, a quarter label ('2026Q2') or a (first day, last day) pair."""
    if window is None or isinstance(window, Period):
        return window
    if isinstance(window, str):
        return Period.quarter(window)
    first, last = window
    return Period(first, last)


def _deals(t: Tables) -> "ir.Table":
    """The deal columns the movement family reads; ``expected_close_date`` null where the deals
    have none."""
    import ibis

    d = t.deals
    date = d.expected_close_date if "expected_close_date" in d.columns else ibis.null("timestamp")
    return d.select("deal_row", "deal_id", "owner", "source", "created_at", "closed_at", "status", "amount",
                    expected_close_date=date.cast("timestamp"))


def _in_window(date: "ir.TimestampValue", window: Period | None) -> "ir.BooleanValue":
    """Whether an expected close date lies in ``window`` (every date, even none, without a window;
    no window holds a deal without one)."""
    import ibis

    return ibis.literal(True) if window is None else in_period(date, window).fill_null(False)


def _status_then(ds: Dataset, table: "ir.Table", at, name: str) -> "ir.Table":
    """``table`` (a deal's ``deal_row``, ``closed_at``, ``status``) plus ``name``: the deal's status
    (open/won/lost) at ``at``, an instant or the name of a timestamp column of ``table``: its final
    close when before ``at``, else an earlier close not yet reopened (the status rule of
    :func:`funnelkit.changes.known_for`)."""
    import ibis

    when = table[at] if isinstance(at, str) else at
    final = table.closed_at.notnull() & (table.closed_at < when)
    table = table.mutate(_final=ibis.ifelse(final, table.status, ibis.null("string")))
    s = closed_then(tables_of(ds), table, table[at] if isinstance(at, str) else at)
    return s.mutate(**{name: s._final.fill_null(s.closed_then.fill_null("open"))}).drop("_final", "closed_then")


def _open_set(ds: Dataset, at: np.datetime64, window: Period | None) -> "ir.Table":
    """The pipeline at ``at``: the deals' current visits (:func:`funnelkit.engine.views.open_at`),
    not inside an earlier close, with amount and expected close date as known then, in ``window``."""
    t = tables_of(ds)
    when = instant(pd.Timestamp(at))
    v = t.visits
    cur = v.filter(open_at(v, when)).select("deal_row", "stage_index")
    cur = cur.join(_deals(t), "deal_row")
    cur = _status_then(ds, cur, when, "status_then")
    cur = known_then(t, known_then(t, cur, "amount", when), "expected_close_date", when)
    cur = cur.filter((cur.status_then == "open") & _in_window(cur.expected_close_date, window))
    return cur.select("deal_row", "deal_id", "owner", "source", "stage_index", "amount", "expected_close_date")


def _set_frame(ds: Dataset, got: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "deal_id": got["deal_id"].to_numpy(dtype=object),
        "owner": got["owner"].to_numpy(dtype=object),
        "source": got["source"].to_numpy(dtype=object),
        "stage": stage_column(ds, got["stage_index"].to_numpy(dtype="int64")),
        "amount": got["amount"].to_numpy(dtype="float64", na_value=np.nan),
        "expected_close_date": got["expected_close_date"].to_numpy(dtype="datetime64[ns]"),
    })


def pipeline_at(ds: Dataset, at, window=None) -> pd.DataFrame:
    """The open pipeline at instant ``at``: deals created before it and not closed before it, whose
    expected close date as known at ``at`` lies in ``window`` (every open deal when ``window`` is None).

    Parameters
    ----------
    ds
        The data set.
    at
        The instant (exclusive: events at ``at`` are not yet seen).
    window
        None, a :class:`Period`, a quarter label such as ``"2026Q2"`` or a (first day, last day) pair.

    Returns
    -------
    DataFrame
        One row per deal: ``deal_id``, ``owner``, ``source``, ``stage`` (ordered categorical),
        ``amount`` and ``expected_close_date`` as known at ``at``; in deal order.

    Examples
    --------
    >>> pipeline_at(ds, "2026-04-01", window="2026Q2")["amount"].sum()     # doctest: +SKIP
    9600.0
    """
    return _set_frame(ds, to_frame(_open_set(ds, _instant(at), _window(window)).order_by("deal_row")))


def _events(t: Tables, start, end, dated: bool) -> "ir.Table":
    """(deal_row, at): every instant in [start, end) where a deal is created, changed (amount, status
    and, with ``dated``, expected close date) or closed."""
    import ibis

    d = t.deals
    parts = [d.select("deal_row", at=d.created_at), d.select("deal_row", at=d.closed_at)]
    for c in (t.amount_changes, t.date_changes if dated else None):
        if c is not None:
            parts.append(c.select("deal_row", at=c.changed_at))
    parts = [p.filter((p.at >= start) & (p.at < end)) for p in parts]
    return ibis.union(*[p.mutate(at=p.at.cast(d.created_at.type())) for p in parts], distinct=True)


def _status_events(t: Tables, start, end) -> "ir.Table | None":
    """(deal_row, at): the earlier closes and reopenings in [start, end) (the status changes of the
    log but the final close, which is ``closed_at``: :attr:`Tables.closed_spells`)."""
    import ibis

    sp = t.closed_spells
    if sp is None:
        return None
    ev = ibis.union(sp.select("deal_row", at=sp.closed_at), sp.select("deal_row", at=sp.reopened_at))
    return ev.filter((ev.at >= start) & (ev.at < end))


def _moves(ds: Dataset, start: np.datetime64, end: np.datetime64, win: Period | None) -> "ir.Table":
    """One row per movement: ``k`` (0: entering, leaving or an amount change; 1: a close or reopening,
    which comes after the changes of its instant), ``movement``, ``deal_row``, ``deal_id``, ``owner``,
    ``at``, ``amount``, ``amount_before``, ``amount_after`` (the module docstring's definitions)."""
    import ibis

    t = tables_of(ds)
    s, e = instant(pd.Timestamp(start)), instant(pd.Timestamp(end))
    ev = _events(t, s, e, win is not None)
    status = _status_events(t, s, e)
    if status is not None:
        ev = ibis.union(ev, status.mutate(at=status.at.cast(ev.at.type())), distinct=True)
    ev = ev.join(_deals(t), "deal_row")
    ev = ev.mutate(after=just_after(ev.at))
    ev = _status_then(ds, _status_then(ds, ev, "at", "status_before"), "after", "status_after")
    ev = known_then(t, known_then(t, ev, "amount", "at", name="amount_before"), "amount", "after", name="amount_after")
    if win is not None:
        ev = known_then(t, known_then(t, ev, "expected_close_date", "at", name="date_before"),
                        "expected_close_date", "after", name="date_after")
    was_open, is_open = ev.status_before == "open", ev.status_after == "open"
    eligible_before, eligible_now = ev.created_at < ev.at, ev.created_at <= ev.at
    if win is not None:
        eligible_before &= _in_window(ev.date_before, win)
        eligible_now &= _in_window(ev.date_after, win)
    # Amount and date changes (and stage entries) at an instant come before its close or reopening.
    in_before, in_after = eligible_before & was_open, eligible_now & was_open
    delta = ev.amount_after.fill_null(0.0) - ev.amount_before.fill_null(0.0)
    enters, leaves, stays = in_after & ~in_before, in_before & ~in_after, in_before & in_after
    none = ibis.null("float64")
    first = ibis.cases((enters & (ev.created_at == ev.at), "created"), (enters, "pulled_in"), (leaves, "pushed_out"),
                       (stays & (delta > 0), "amount_up"), (stays & (delta < 0), "amount_down"),
                       else_=ibis.null("string"))
    close, reopen = in_after & ~is_open, eligible_now & ~was_open & is_open
    ev = ev.mutate(first=first, close=close, reopen=reopen, delta=delta, enters=enters, leaves=leaves)
    keep = ("deal_row", "deal_id", "owner", "at")
    firsts = ev.filter(ev.first.notnull()).select(
        *keep, k=ibis.literal(0), movement=ev.first,
        amount=ibis.cases((ev.enters, ev.amount_after), (ev.leaves, ev.amount_before), else_=ev.delta.abs()),
        amount_before=ibis.ifelse(ev.enters, none, ev.amount_before),
        amount_after=ibis.ifelse(ev.leaves, none, ev.amount_after))
    seconds = ev.filter(ev.close | ev.reopen).select(
        *keep, k=ibis.literal(1), movement=ibis.ifelse(ev.close, ev.status_after, "reopened"),
        amount=ev.amount_after,
        amount_before=ibis.ifelse(ev.close, ev.amount_after, none),
        amount_after=ibis.ifelse(ev.close, none, ev.amount_after))
    return firsts.union(seconds)


def _with_stage_just_after(t: Tables, moves: "ir.Table") -> "ir.Table":
    """``moves`` plus ``stage_index``: each deal's stage after the stage entries at ``at`` (the stage
    a closing deal closed from)."""
    import ibis

    v = t.visits
    v = v.select(_row=v.deal_row, _entered=v.entered_at, stage_index=v.stage_index,
                 _next=v.next_entered_at.fill_null(ibis.literal(NEVER, type="timestamp")))
    j = moves.left_join(v, [moves.deal_row == v._row, v._entered <= moves.at, moves.at < v._next])
    return j.drop("_row", "_entered", "_next")


def _movements(ds: Dataset, start: np.datetime64, end: np.datetime64, win: Period | None) -> pd.DataFrame:
    t = tables_of(ds)
    moves = _with_stage_just_after(t, _moves(ds, start, end, win))
    got = to_frame(moves.order_by(["at", "deal_row", "k"]))
    codes = got["stage_index"].to_numpy(dtype="float64", na_value=np.nan)
    out = pd.DataFrame({
        "movement": _movement_column(got),
        "deal_id": got["deal_id"].to_numpy(dtype=object),
        "owner": got["owner"].to_numpy(dtype=object),
        "stage": pd.Categorical.from_codes(np.nan_to_num(codes, nan=-1).astype("int64"), categories=ds.stages,
                                           ordered=True),
        "amount_before": got["amount_before"].to_numpy(dtype="float64", na_value=np.nan),
        "amount_after": got["amount_after"].to_numpy(dtype="float64", na_value=np.nan),
        "amount": got["amount"].to_numpy(dtype="float64", na_value=np.nan),
        "at": got["at"].to_numpy(dtype="datetime64[ns]"),
    })
    return _with_change(out)


def _movement_column(got: pd.DataFrame) -> pd.Categorical:
    return pd.Categorical(got["movement"].to_numpy(dtype=object), categories=list(MOVEMENTS))


def _with_change(moves: pd.DataFrame) -> pd.DataFrame:
    """``moves`` (``movement``, ``amount``) plus ``change``: the signed effect on the pipeline amount."""
    moves["change"] = moves["amount"].fillna(0.0) * moves["movement"].map(_SIGN).astype("float64")
    return moves


def _movement_amounts(ds: Dataset, start: np.datetime64, end: np.datetime64, win: Period | None) -> pd.DataFrame:
    """The movements' ``movement``, ``amount`` and ``change`` only, in no order (what the totals
    read, exact in any order: no deal ids, owners or stages fetched, nothing sorted)."""
    got = to_frame(_moves(ds, start, end, win).select("movement", "amount"))
    return _with_change(pd.DataFrame({"movement": _movement_column(got),
                                      "amount": got["amount"].to_numpy(dtype="float64", na_value=np.nan)}))


def _movement_totals(moves: pd.DataFrame) -> pd.DataFrame:
    """Per movement type (:attr:`PipelineWaterfall.movements`) of ``moves`` (``movement``, ``amount``,
    ``change``); the sums exact (:func:`_total`), so the same whatever order the rows come in."""
    g = moves.groupby("movement", observed=False)
    unknown = moves["amount"].isna().groupby(moves["movement"], observed=False).sum()
    out = pd.DataFrame({"deals": g.size(), "amount": g["amount"].agg(_total),
                        "change": g["change"].agg(_total), "amount_unknown": unknown}).reindex(list(MOVEMENTS), fill_value=0)
    out = out.rename_axis("movement").reset_index()
    return out.astype({"deals": "int64", "amount": "float64", "change": "float64", "amount_unknown": "int64"})


def _total(amounts: pd.Series) -> float:
    """The sum of the known ``amounts``, exact (one rounding: the same in any order); 0 for none.
    Amounts whose sum overflows a float (a database's table has no amount ceiling), or infinite
    ones: the float sum (infinite, or NaN for +inf and -inf), as a plain sum gives."""
    known = amounts.dropna().to_numpy(dtype="float64")
    try:
        return math.fsum(known)
    except (OverflowError, ValueError):
        return float(known.sum())


def _fields(label: str, start: pd.Timestamp, end: pd.Timestamp, start_set: pd.DataFrame, end_set: pd.DataFrame,
            movements: pd.DataFrame) -> dict:
    """The ``pipeline_waterfall`` entry of ``funnelkit metrics --format json`` (:meth:`PipelineWaterfall.to_dict`)."""
    m = movements.set_index("movement")
    return {"window": label, "start": start.isoformat(), "end": end.isoformat(),
            "start_deals": int(len(start_set)), "start_amount": _total(start_set["amount"]),
            "end_deals": int(len(end_set)), "end_amount": _total(end_set["amount"]),
            "movements": {k: {"deals": int(m.loc[k, "deals"]), "amount": float(m.loc[k, "amount"]),
                              "amount_unknown": int(m.loc[k, "amount_unknown"])}
                          for k in MOVEMENTS},
            "start_amount_unknown": int(start_set["amount"].isna().sum()),
            "end_amount_unknown": int(end_set["amount"].isna().sum())}


@dataclass(frozen=True)
class PipelineWaterfall:
    """The pipeline at ``start`` and ``end`` and every movement between them.

    Attributes
    ----------
    start, end
        The two instants (``end`` exclusive like every as-of instant).
    window
        The window of expected close dates, or None (every open deal).
    start_set, end_set
        :func:`pipeline_at` at ``start`` and at ``end``.
    deals
        One row per movement: ``movement`` (one of :data:`MOVEMENTS`), ``deal_id``, ``owner``,
        ``stage`` (after the stage entries of that instant), ``amount_before``, ``amount_after``
        (NaN where the deal is outside the set), ``amount`` (the magnitude the bar shows),
        ``at`` (the instant), ``change`` (signed effect on the pipeline amount; unknown amounts: 0).
    """

    start: pd.Timestamp
    end: pd.Timestamp
    window: Period | None
    start_set: pd.DataFrame
    end_set: pd.DataFrame
    deals: pd.DataFrame

    @property
    def start_deals(self) -> int:
        return int(len(self.start_set))

    @property
    def end_deals(self) -> int:
        return int(len(self.end_set))

    @property
    def start_amount(self) -> float:
        """The known amounts of the deals in the set at ``start`` (see :attr:`start_amount_unknown`)."""
        return _total(self.start_set["amount"])

    @property
    def end_amount(self) -> float:
        """The known amounts of the deals in the set at ``end`` (see :attr:`end_amount_unknown`)."""
        return _total(self.end_set["amount"])

    @property
    def start_amount_unknown(self) -> int:
        """Deals in the set at ``start`` whose amount is unknown (in the deal count, not the amount)."""
        return int(self.start_set["amount"].isna().sum())

    @property
    def end_amount_unknown(self) -> int:
        """Deals in the set at ``end`` whose amount is unknown."""
        return int(self.end_set["amount"].isna().sum())

    @property
    def movements(self) -> pd.DataFrame:
        """One row per movement type, in :data:`MOVEMENTS` order: ``movement``, ``deals`` (how many
        movements), ``amount`` (sum of their known magnitudes), ``change`` (signed effect on the
        amount), ``amount_unknown`` (movements whose amount is unknown: counted, never taken as 0)."""
        return _movement_totals(self.deals)

    @property
    def balance(self) -> dict:
        """The check the report shows: start + movements against end, for deals and amounts."""
        m = self.movements.set_index("movement")
        signs = pd.Series(_SIGN)
        moved = m["deals"].where(~m.index.isin(["amount_up", "amount_down"]), 0)
        deals = self.start_deals + int((moved * signs.reindex(m.index)).sum())
        amount = self.start_amount + _total(m["change"])
        return {"deals": deals, "end_deals": self.end_deals, "amount": amount, "end_amount": self.end_amount,
                "balanced": deals == self.end_deals and bool(np.isclose(amount, self.end_amount, rtol=1e-9, atol=1e-6))}

    def to_dict(self, label: str) -> dict:
        """The ``pipeline_waterfall`` entry of ``funnelkit metrics --format json`` (also
        :func:`waterfall_fields`, which fetches only what it needs)."""
        return _fields(label, self.start, self.end, self.start_set, self.end_set, self.movements)


def pipeline_waterfall(ds: Dataset, start, end, window=None) -> PipelineWaterfall:
    """Where the pipeline went between ``start`` and ``end``: the set at each instant and every movement.

    Parameters
    ----------
    ds
        The data set (with ``deal_changes.csv``, amounts and expected close dates as known at each
        instant; without, deals.csv's).
    start, end
        Instants; events in ``[start, end)`` are movements.
    window
        Expected close dates that count (None: every open deal): a :class:`Period`, a quarter label
        or a (first day, last day) pair.

    Returns
    -------
    PipelineWaterfall
        ``start_set``/``end_set`` (:func:`pipeline_at`), ``deals`` (one row per movement, the bar's
        deal list), ``movements`` (per type), ``balance`` (the check).

    Examples
    --------
    >>> w = pipeline_waterfall(ds, "2026-04-01", "2026-07-01", window="2026Q2")   # doctest: +SKIP
    >>> w.movements[["movement", "deals", "amount"]]                               # doctest: +SKIP
    """
    s, e, win = _interval(ds, start, end, window)
    return PipelineWaterfall(pd.Timestamp(s), pd.Timestamp(e), win, pipeline_at(ds, s, win),
                             pipeline_at(ds, e, win), _movements(ds, s, e, win))


def waterfall_fields(ds: Dataset, start, end, window=None, *, label: str) -> dict:
    """``pipeline_waterfall(ds, start, end, window).to_dict(label)``: the waterfall's entry of
    ``funnelkit metrics --format json``, computed without fetching each movement's or open deal's
    deal id, owner and stage (only the amounts and movement types: the rows behind the totals, in no
    order; the totals are exact sums, the same in any order).

    Examples
    --------
    >>> waterfall_fields(ds, "2026-04-01", "2026-07-01", label="all")["movements"]["won"]  # doctest: +SKIP
    {'deals': 3, 'amount': 12500.0, 'amount_unknown': 0}
    """
    s, e, win = _interval(ds, start, end, window)
    return _fields(label, pd.Timestamp(s), pd.Timestamp(e), _set_amounts(ds, s, win), _set_amounts(ds, e, win),
                   _movement_totals(_movement_amounts(ds, s, e, win)))


def _set_amounts(ds: Dataset, at: np.datetime64, win: Period | None) -> pd.DataFrame:
    """:func:`pipeline_at`'s ``amount`` column alone, in no order (what the totals read)."""
    got = to_frame(_open_set(ds, at, win).select("amount"))
    return pd.DataFrame({"amount": got["amount"].to_numpy(dtype="float64", na_value=np.nan)})


def _interval(ds: Dataset, start, end, window) -> tuple[np.datetime64, np.datetime64, Period | None]:
    ds.require_single_currency("pipeline_waterfall")
    s, e = _instant(start), _instant(end)
    if e < s:
        raise ArgumentError(f"end {pd.Timestamp(e)} is before start {pd.Timestamp(s)}")
    return s, e, _window(window)


def _statuses(ds: Dataset, ids: pd.Index, at: pd.Timestamp) -> np.ndarray:
    """The status (open/won/lost) at ``at`` of the deals ``ids``, in their order."""
    import ibis

    t = tables_of(ds)
    wanted = ibis.memtable(pd.DataFrame({"deal_id": ids.to_numpy(dtype=object)}), schema={"deal_id": "string"})
    d = _deals(t).semi_join(wanted, "deal_id")
    got = to_frame(_status_then(ds, d, instant(at), "status_then").select("deal_id", "status_then"))
    return got.set_index("deal_id")["status_then"].reindex(ids).to_numpy(dtype=object)


def stage_movement(ds: Dataset, start, end, window=None, *, waterfall: PipelineWaterfall | None = None) -> pd.DataFrame:
    """Stage at ``start`` × stage or outcome at ``end``, for the deals in the pipeline at either instant
    or moved in between.

    ``from``: the stage at start, or ``(entered)`` for a deal not in the pipeline at start. ``to``:
    the stage at end when in the pipeline then, else ``won`` / ``lost`` when closed at end (its status
    then: an earlier close not yet reopened counts, with its status), else ``(left the window)``.

    Parameters
    ----------
    ds, start, end, window
        As for :func:`pipeline_waterfall`.
    waterfall
        ``pipeline_waterfall(ds, start, end, window)`` when the caller already has it (it is not
        computed again); None: computed here.

    Returns
    -------
    DataFrame
        ``from``, ``to``, ``deals``, ``start_amount`` (sum of known amounts at start; NaN when none
        is known or no deal of the row was in the pipeline then), ``end_amount`` (the same at end),
        ``amount_unknown`` (deals of the row in the pipeline at start or end with an unknown amount);
        sorted by ``from`` then ``to`` in stage order.

    Examples
    --------
    >>> stage_movement(ds, "2026-04-01", "2026-07-01")                  # doctest: +SKIP
    """
    w = waterfall if waterfall is not None else pipeline_waterfall(ds, start, end, window)
    if waterfall is not None:
        s, e, win = _interval(ds, start, end, window)
        if (w.start, w.end, w.window) != (pd.Timestamp(s), pd.Timestamp(e), win):
            raise ArgumentError(f"waterfall is of {w.start} .. {w.end} (window {w.window}), not of "
                                f"{pd.Timestamp(s)} .. {pd.Timestamp(e)} (window {win})")
    ids = pd.Index(pd.unique(np.r_[w.start_set["deal_id"].to_numpy(), w.end_set["deal_id"].to_numpy(),
                                   w.deals["deal_id"].to_numpy()]))
    a = w.start_set.set_index("deal_id").reindex(ids)
    b = w.end_set.set_index("deal_id").reindex(ids)
    # Every deal here was open at start or moved in between, so a deal closed at end closed in [start, end).
    status = _statuses(ds, ids, w.end)
    frm = a["stage"].astype(object).where(a["stage"].notna(), ENTERED)
    to = b["stage"].astype(object).where(b["stage"].notna(),
                                          pd.Series(np.where(status == "open", LEFT, status), index=ids))
    order = {s: i for i, s in enumerate([ENTERED, *ds.stages, "won", "lost", LEFT])}
    unknown = (a["stage"].notna() & a["amount"].isna()) | (b["stage"].notna() & b["amount"].isna())
    t = pd.DataFrame({"from": frm.to_numpy(), "to": to.to_numpy(), "start_amount": a["amount"].to_numpy(),
                      "end_amount": b["amount"].to_numpy(), "amount_unknown": unknown.to_numpy().astype("int64")})
    g = t.groupby(["from", "to"], sort=False)
    out = pd.DataFrame({"deals": g.size(), "start_amount": g["start_amount"].sum(min_count=1),
                        "end_amount": g["end_amount"].sum(min_count=1),
                        "amount_unknown": g["amount_unknown"].sum()}).reset_index()
    key = out["from"].map(order) * 100 + out["to"].map(order)
    return out.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)
