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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ArgumentError
from ..changes import field_changes, known_for
from ..contract import STATUS_FIELD
from ..dataset import Dataset
from ..history import stage_at
from ..period import Period, as_instant
from ._common import stage_column

__all__ = ["MOVEMENTS", "PipelineWaterfall", "pipeline_at", "pipeline_waterfall", "stage_movement"]

#: Movement types in display order; the first three add to the pipeline, the last three take from it.
MOVEMENTS = ("created", "pulled_in", "reopened", "amount_up", "amount_down", "pushed_out", "won", "lost")
_SIGN = {"created": 1, "pulled_in": 1, "reopened": 1, "amount_up": 1, "amount_down": -1,
         "pushed_out": -1, "won": -1, "lost": -1}
_NS = np.timedelta64(1, "ns")
#: Labels of the stage-to-stage view for deals outside the pipeline at start or at end.
ENTERED, LEFT = "(entered)", "(left the window)"


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


def _in_window(dates: np.ndarray, window: Period | None) -> np.ndarray:
    if window is None:
        return np.ones(len(dates), dtype=bool)
    d = pd.to_datetime(pd.Series(dates)).to_numpy(dtype="datetime64[ns]")
    return (d >= window.start.to_datetime64()) & (d < window.stop.to_datetime64())


def _member(ds: Dataset, rows: np.ndarray, at: np.ndarray, window: Period | None, *, closing_now: bool):
    """Whether deal ``rows[i]`` could be in the set and its amount, just before ``at[i]``
    (``closing_now=False``: events before at seen) or just after the amount and date changes at
    ``at[i]`` (True); the status is left to the caller (:func:`_open_before_after`)."""
    created = ds.deals["created_at"].to_numpy(dtype="datetime64[ns]")[rows]
    seen_at = at + _NS if closing_now else at
    eligible = created <= at if closing_now else created < at
    if window is not None:
        eligible &= _in_window(known_for(ds, "expected_close_date", rows, seen_at), window)
    amount = known_for(ds, "amount", rows, seen_at).astype("float64")
    return eligible, amount


def _open_before_after(ds: Dataset, rows: np.ndarray, at: np.ndarray):
    """Status of deal ``rows[i]`` just before ``at[i]`` and just after its status events at ``at[i]``
    (an earlier close or reopening from the change log, or its final close), as open/won/lost."""
    return known_for(ds, STATUS_FIELD, rows, at), known_for(ds, STATUS_FIELD, rows, at + _NS)


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
    win = _window(window)
    t = _instant(at)
    cur = stage_at(ds, pd.Timestamp(t)).sort_values("deal_row")
    rows = cur["deal_row"].to_numpy()
    times = np.full(len(rows), t)
    date = known_for(ds, "expected_close_date", rows, times)
    # Open at t also means not closed by an earlier close (a status change in the change log).
    keep = _in_window(date, win) & (known_for(ds, STATUS_FIELD, rows, times) == "open")
    d = ds.deals
    return pd.DataFrame({
        "deal_id": d["deal_id"].to_numpy()[rows][keep],
        "owner": d["owner"].to_numpy()[rows][keep],
        "source": d["source"].to_numpy()[rows][keep],
        "stage": stage_column(ds, cur["stage_index"].to_numpy()[keep]),
        "amount": known_for(ds, "amount", rows, times).astype("float64")[keep],
        "expected_close_date": pd.to_datetime(pd.Series(date[keep], dtype="datetime64[ns]")).to_numpy(),
    })


def _event_instants(ds: Dataset, start: np.datetime64, end: np.datetime64, dated: bool) -> pd.DataFrame:
    """(deal_row, at): every instant in [start, end) where a deal is created, changed or closed."""
    d = ds.deals
    parts = [pd.DataFrame({"deal_row": np.arange(len(d)), "at": d[col].to_numpy(dtype="datetime64[ns]")})
             for col in ("created_at", "closed_at")]
    for fld in ("amount", STATUS_FIELD) + (("expected_close_date",) if dated else ()):
        ch = field_changes(ds, fld)
        parts.append(pd.DataFrame({"deal_row": ch["deal_row"].to_numpy(), "at": ch["changed_at"].to_numpy()}))
    ev = pd.concat(parts, ignore_index=True)
    at = ev["at"].to_numpy(dtype="datetime64[ns]")
    ev = ev[(at >= start) & (at < end)]
    return ev.drop_duplicates().sort_values(["at", "deal_row"], kind="stable").reset_index(drop=True)


def _movements(ds: Dataset, start: np.datetime64, end: np.datetime64, win: Period | None) -> pd.DataFrame:
    ev = _event_instants(ds, start, end, win is not None)
    rows, at = ev["deal_row"].to_numpy(), ev["at"].to_numpy(dtype="datetime64[ns]")
    status_before, status_after = _open_before_after(ds, rows, at)
    was_open, is_open = status_before == "open", status_after == "open"
    eligible_before, amount_before = _member(ds, rows, at, win, closing_now=False)
    eligible_now, amount_after = _member(ds, rows, at, win, closing_now=True)
    in_before = eligible_before & was_open
    # Amount and date changes (and stage entries) at an instant come before its close or reopening.
    in_after = eligible_now & was_open
    d = ds.deals
    created = d["created_at"].to_numpy(dtype="datetime64[ns]")[rows]
    delta = np.nan_to_num(amount_after) - np.nan_to_num(amount_before)
    enters, leaves, stays = in_after & ~in_before, in_before & ~in_after, in_before & in_after
    first = np.select([enters & (created == at), enters, leaves, stays & (delta > 0), stays & (delta < 0)],
                      ["created", "pulled_in", "pushed_out", "amount_up", "amount_down"], "")
    first_amount = np.where(enters, amount_after, np.where(leaves, amount_before, np.abs(delta)))
    close = in_after & ~is_open
    reopen = eligible_now & ~was_open & is_open
    second = np.where(close, status_after, "reopened")
    moved = close | reopen
    parts = [pd.DataFrame({"i": np.flatnonzero(first != ""), "movement": first[first != ""],
                           "amount": first_amount[first != ""]}),
             pd.DataFrame({"i": np.flatnonzero(moved), "movement": second[moved], "amount": amount_after[moved]})]
    mv = pd.concat(parts, ignore_index=True).sort_values("i", kind="stable")
    i = mv["i"].to_numpy()
    is_close = mv["movement"].isin(["won", "lost"]).to_numpy()
    before = np.where(is_close, amount_after[i], amount_before[i])
    after = np.where(is_close, np.nan, amount_after[i])
    after = np.where(mv["movement"].eq("pushed_out").to_numpy(), np.nan, after)
    before = np.where(mv["movement"].isin(["created", "pulled_in", "reopened"]).to_numpy(), np.nan, before)
    stage = _stage_just_after(ds, rows[i], at[i])
    out = pd.DataFrame({
        "movement": pd.Categorical(mv["movement"].to_numpy(), categories=list(MOVEMENTS)),
        "deal_id": d["deal_id"].to_numpy()[rows[i]],
        "owner": d["owner"].to_numpy()[rows[i]],
        "stage": stage,
        "amount_before": before,
        "amount_after": after,
        "amount": mv["amount"].to_numpy(dtype="float64"),
        "at": at[i],
    })
    out["change"] = out["amount"].fillna(0.0) * out["movement"].map(_SIGN).astype("float64")
    return out.reset_index(drop=True)


def _stage_just_after(ds: Dataset, rows: np.ndarray, at: np.ndarray) -> pd.Categorical:
    """Each deal's stage after the stage entries at ``at`` (the stage a closing deal closed from)."""
    h = ds.stage_history
    pos = pd.Series(np.arange(len(ds.deals)), index=ds.deals["deal_id"].to_numpy())
    hist = pd.DataFrame({"deal_row": pos.reindex(h["deal_id"].to_numpy()).to_numpy(),
                         "entered_at": h["entered_at"].to_numpy(dtype="datetime64[ns]"),
                         "stage_index": h["stage_index"].to_numpy().astype("int64")})
    hist = hist.sort_values(["entered_at", "stage_index"], kind="stable")
    q = pd.DataFrame({"deal_row": rows, "at": at, "i": np.arange(len(rows))}).sort_values("at", kind="stable")
    found = pd.merge_asof(q, hist, left_on="at", right_on="entered_at", by="deal_row",
                          allow_exact_matches=True, direction="backward").sort_values("i")
    codes = found["stage_index"].fillna(-1).to_numpy().astype("int64")
    return pd.Categorical.from_codes(codes, categories=ds.stages, ordered=True)


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
        return float(self.start_set["amount"].sum())

    @property
    def end_amount(self) -> float:
        """The known amounts of the deals in the set at ``end`` (see :attr:`end_amount_unknown`)."""
        return float(self.end_set["amount"].sum())

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
        g = self.deals.groupby("movement", observed=False)
        unknown = self.deals["amount"].isna().groupby(self.deals["movement"], observed=False).sum()
        out = pd.DataFrame({"deals": g.size(), "amount": g["amount"].sum(min_count=0),
                            "change": g["change"].sum(), "amount_unknown": unknown}).reindex(list(MOVEMENTS), fill_value=0)
        out = out.rename_axis("movement").reset_index()
        return out.astype({"deals": "int64", "amount": "float64", "change": "float64", "amount_unknown": "int64"})

    @property
    def balance(self) -> dict:
        """The check the report shows: start + movements against end, for deals and amounts."""
        m = self.movements.set_index("movement")
        signs = pd.Series(_SIGN)
        moved = m["deals"].where(~m.index.isin(["amount_up", "amount_down"]), 0)
        deals = self.start_deals + int((moved * signs.reindex(m.index)).sum())
        amount = self.start_amount + float(m["change"].sum())
        return {"deals": deals, "end_deals": self.end_deals, "amount": amount, "end_amount": self.end_amount,
                "balanced": deals == self.end_deals and bool(np.isclose(amount, self.end_amount, rtol=1e-9, atol=1e-6))}

    def to_dict(self, label: str) -> dict:
        """The ``pipeline_waterfall`` entry of ``funnelkit metrics --format json``."""
        m = self.movements.set_index("movement")
        return {"window": label, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "start_deals": self.start_deals, "start_amount": self.start_amount,
                "end_deals": self.end_deals, "end_amount": self.end_amount,
                "movements": {k: {"deals": int(m.loc[k, "deals"]), "amount": float(m.loc[k, "amount"]),
                                  "amount_unknown": int(m.loc[k, "amount_unknown"])}
                              for k in MOVEMENTS},
                "start_amount_unknown": self.start_amount_unknown, "end_amount_unknown": self.end_amount_unknown}


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
    ds.require_single_currency("pipeline_waterfall")
    win = _window(window)
    s, e = _instant(start), _instant(end)
    if e < s:
        raise ArgumentError(f"end {pd.Timestamp(e)} is before start {pd.Timestamp(s)}")
    return PipelineWaterfall(pd.Timestamp(s), pd.Timestamp(e), win, pipeline_at(ds, s, win),
                             pipeline_at(ds, e, win), _movements(ds, s, e, win))


def stage_movement(ds: Dataset, start, end, window=None) -> pd.DataFrame:
    """Stage at ``start`` × stage or outcome at ``end``, for the deals in the pipeline at either instant
    or moved in between.

    ``from``: the stage at start, or ``(entered)`` for a deal not in the pipeline at start. ``to``:
    the stage at end when in the pipeline then, else ``won`` / ``lost`` when closed at end (its status
    then: an earlier close not yet reopened counts, with its status), else ``(left the window)``.

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
    w = pipeline_waterfall(ds, start, end, window)
    ids = pd.Index(pd.unique(np.r_[w.start_set["deal_id"].to_numpy(), w.end_set["deal_id"].to_numpy(),
                                   w.deals["deal_id"].to_numpy()]))
    a = w.start_set.set_index("deal_id").reindex(ids)
    b = w.end_set.set_index("deal_id").reindex(ids)
    rows = pd.Index(ds.deals["deal_id"]).get_indexer(ids)
    # Every deal here was open at start or moved in between, so a deal closed at end closed in [start, end).
    status = known_for(ds, STATUS_FIELD, rows, np.full(len(rows), w.end.to_datetime64()))
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
