"""Deals per stage: snapshots, the weekly series, the funnel of a cohort, stage flow, bottleneck.

Definitions (``docs/metrics.md``, section 1):

- **Snapshot at T**: a deal is in stage S at T when it was created before T, not closed before T
  (a close at or after T is not yet seen) and its latest stage entry before T is S. Ties in
  ``entered_at`` are ordered by stage order, so the later stage of a tie is the current one.
- **Weekly series**: snapshots at the end of each week (Sunday 24:00 = Monday 00:00) whose Sunday
  lies in P and that is not after ``as_of``, plus ``as_of`` itself.
- **Funnel**: over the cohort of deals created in P (and before ``as_of``). ``reached(S)`` counts the
  cohort deals whose furthest stage seen at ``as_of`` is S or later, or that were won by ``as_of``.
- **Stage flow**: the visits that began in P, by what became of each by ``as_of``.
- **Bottleneck**: the stage with the lowest conversion, and the largest week-over-week fall in one
  stage's open deals along the weekly series.

All per-stage tables list every pipeline stage, in pipeline order, as an ordered Categorical.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..changes import closed_spells, field_changes, has_changes, known_for
from ..dataset import Dataset
from ..history import OUTCOMES, deals_as_of, visits_as_of
from ..period import Period, PeriodLike, as_instant, as_period
from ._common import stage_column

__all__ = ["snapshot", "weekly_snapshots", "funnel", "cohort_outcomes", "stage_flow", "bottleneck",
           "week_ends", "unvisited_stages"]



def week_ends(period: PeriodLike) -> list[pd.Timestamp]:
    """The instants of the weekly series of ``period``.

    Each Monday 00:00 (= Sunday 24:00) whose Sunday lies in the period and that is not after
    ``period.as_of``, plus ``period.as_of``; sorted, without repeats.

    Examples
    --------
    >>> [str(t) for t in week_ends(Period("2024-01-01", "2024-01-16"))]
    ['2024-01-08 00:00:00', '2024-01-15 00:00:00', '2024-01-17 00:00:00']
    """
    period = as_period(period)
    # First Sunday on or after start: weekday() is 0 for Monday .. 6 for Sunday.
    first_sunday = period.start + pd.Timedelta(days=(6 - period.start.weekday()) % 7)
    sundays = pd.date_range(first_sunday, period.end, freq="7D")
    ends = [s + pd.Timedelta(days=1) for s in sundays]
    ends = [t for t in ends if t <= period.as_of] + [period.as_of]
    return sorted(set(ends))


def _open_by_stage(ds: Dataset, times: list[pd.Timestamp], *,
                   amounts: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Open deals, their known amounts and how many have none, per stage at each instant.

    Arrays of shape (stages, times): counts, sums of the known amounts (NaN where every open deal's
    amount is unknown) and counts of open deals of unknown amount (both None without ``amounts``).

    A visit is the current one at T when ``entered_at < T <= min(next_entered_at, closed_at)``
    (missing ends count as never) and T is in none of the deal's closed spells (an earlier close not
    yet reopened: :func:`funnelkit.changes.closed_spells`). One pass over the visits for all
    instants: each visit adds +1 at the first instant after its entry and -1 at the first instant
    after its end; a cumulative sum along the instants gives the counts; the closed spells are
    then taken off.
    """
    n_st, n_t = len(ds.stages), len(times)
    t = np.array([pd.Timestamp(x).to_datetime64() for x in times], dtype="datetime64[ns]")
    v = ds.visits
    entered = v["entered_at"].to_numpy(dtype="datetime64[ns]")
    end = np.fmin(v["next_entered_at"].to_numpy(dtype="datetime64[ns]"),
                  v["closed_at"].to_numpy(dtype="datetime64[ns]"))  # NaT only when both are NaT
    lo = np.searchsorted(t, entered, side="right")          # first instant with T > entered_at
    hi = np.searchsorted(t, end, side="right")              # first instant with T > end (NaT: none)
    keep = lo < hi
    stage = v["stage_index"].to_numpy().astype("int64")[keep]
    lo, hi = lo[keep], hi[keep]
    width = n_t + 1
    size = n_st * width

    def spread(weights):
        diff = (np.bincount(stage * width + lo, weights=weights, minlength=size)
                - np.bincount(stage * width + hi, weights=weights, minlength=size))
        return np.cumsum(diff.reshape(n_st, width), axis=1)[:, :n_t]

    rows = v["deal_row"].to_numpy()[keep]
    closed = _closed_spell_steps(ds, t, rows, lo, hi, stage, n_st, amounts)
    counts = np.rint(spread(None)).astype("int64") - closed[0]
    if not amounts:
        return counts, None, None
    amount = _first_known_amounts(ds)[rows]
    total = spread(np.nan_to_num(amount, nan=0.0)).astype("float64")
    unknown_sum = spread(np.isnan(amount).astype("float64"))
    if has_changes(ds, "amount"):
        # With a change log: each change moves the amount (and its unknown-ness) from its instant on.
        value_step, unknown_step = _amount_steps(ds, t, rows, lo, hi, stage, n_st)
        total += value_step
        unknown_sum += unknown_step
    total -= closed[1]
    unknown = np.rint(unknown_sum).astype("int64") - closed[2]
    # Cumulative sums of floats may leave tiny residues where a stage empties: clear them.
    total[counts == 0] = 0.0
    total[(counts > 0) & (unknown == counts)] = np.nan   # only unknown amounts: unknown, not 0
    return counts, total, unknown


def _closed_spell_steps(ds: Dataset, t: np.ndarray, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                        stage: np.ndarray, n_st: int, amounts: bool) -> tuple[np.ndarray, ...]:
    """What the earlier closes take from each stage at each instant: the deals (and their amounts as
    known then, and how many of those are unknown) whose visit holds T while a closed spell
    ``closed_at < T <= reopened_at`` does too. Arrays of shape (stages, times); zeros without spells."""
    out = [np.zeros((n_st, len(t)), dtype="int64"), np.zeros((n_st, len(t))), np.zeros((n_st, len(t)), dtype="int64")]
    spells = closed_spells(ds)
    if spells.empty:
        return tuple(out)
    visits = pd.DataFrame({"deal_row": rows, "lo": lo, "hi": hi, "stage": stage})
    both = visits.merge(spells, on="deal_row")
    first = np.maximum(both["lo"].to_numpy(), np.searchsorted(t, both["closed_at"].to_numpy(), side="right"))
    last = np.minimum(both["hi"].to_numpy(), np.searchsorted(t, both["reopened_at"].to_numpy(), side="right"))
    n = np.maximum(last - first, 0)
    pair = np.repeat(np.arange(len(both)), n)                        # one row per (visit, instant held)
    ti = np.repeat(first, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
    cell = both["stage"].to_numpy()[pair] * len(t) + ti
    out[0] = np.bincount(cell, minlength=n_st * len(t)).reshape(n_st, len(t))
    if amounts:
        amount = known_for(ds, "amount", both["deal_row"].to_numpy()[pair], t[ti]).astype("float64")
        out[1] = np.bincount(cell, weights=np.nan_to_num(amount), minlength=n_st * len(t)).reshape(n_st, len(t))
        out[2] = np.bincount(cell, weights=np.isnan(amount), minlength=n_st * len(t)).reshape(n_st, len(t)).astype("int64")
    return tuple(out)


def _first_known_amounts(ds: Dataset) -> np.ndarray:
    """Each deal's amount before any change: its first change's value, else deals.csv's."""
    amount = ds.deals["amount"].to_numpy(dtype="float64").copy()
    ch = field_changes(ds, "amount")
    first = ch[ch["is_first"].to_numpy()]
    amount[first["deal_row"].to_numpy()] = first["value"].to_numpy(dtype="float64")
    return amount


def _amount_steps(ds: Dataset, t: np.ndarray, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                  stage: np.ndarray, n_st: int) -> tuple[np.ndarray, np.ndarray]:
    """What the amount changes add to each stage's open amount (and to its count of unknown amounts)
    at each instant: a change at c moves its deal's amount by (value - previous) at every instant
    T > c of the visits that hold T."""
    ch = field_changes(ds, "amount")
    ch = ch[~ch["is_first"].to_numpy()]
    delta = (np.nan_to_num(ch["value"].to_numpy(dtype="float64"), nan=0.0)
             - np.nan_to_num(ch["previous"].to_numpy(dtype="float64"), nan=0.0))
    value, previous = ch["value"].to_numpy(dtype="float64"), ch["previous"].to_numpy(dtype="float64")
    steps = pd.DataFrame({"deal_row": ch["deal_row"].to_numpy(), "delta": delta,
                          "unknown_delta": np.isnan(value).astype("float64") - np.isnan(previous),
                          "from_t": np.searchsorted(t, ch["changed_at"].to_numpy(dtype="datetime64[ns]"),
                                                    side="right")})
    visits = pd.DataFrame({"deal_row": rows, "lo": lo, "hi": hi, "stage": stage})
    both = visits.merge(steps, on="deal_row")
    start = np.maximum(both["lo"].to_numpy(), both["from_t"].to_numpy())
    held = start < both["hi"].to_numpy()
    both, start = both[held], start[held]
    width = len(t) + 1
    code = both["stage"].to_numpy() * width

    def spread(w):
        diff = (np.bincount(code + start, weights=w, minlength=n_st * width)
                - np.bincount(code + both["hi"].to_numpy(), weights=w, minlength=n_st * width))
        return np.cumsum(diff.reshape(n_st, width), axis=1)[:, :len(t)]

    return spread(both["delta"].to_numpy()), spread(both["unknown_delta"].to_numpy())


def snapshot(ds: Dataset, at, *, amounts: bool = True) -> pd.DataFrame:
    """Open deals per stage at the instant ``at``.

    A deal counts in stage S when it was created before ``at``, was not closed before ``at`` and its
    latest stage entry before ``at`` is S (events at exactly ``at`` are not yet seen).

    Parameters
    ----------
    ds
        The data set.
    at
        The instant (anything :class:`pandas.Timestamp` accepts; a date means its 00:00).
    amounts
        ``False`` leaves out the two amount columns (then deals in several currencies are fine).

    Returns
    -------
    DataFrame
        One row per pipeline stage, in order: ``stage`` (ordered Categorical), ``open_deals`` (int),
        ``open_amount`` (sum of the known amounts; 0.0 when the stage is empty, NaN when every open
        deal's amount is unknown), ``open_amount_unknown`` (open deals of unknown amount).

    Examples
    --------
    >>> import funnelkit as fk
    >>> snapshot(fk.load("data/sample"), "2026-04-01")
             stage  open_deals  open_amount  open_amount_unknown
    0         Lead          32    298522.09                    0
    1    Qualified          39    310965.76                    1
    2      Meeting          33    259034.49                    0
    3     Proposal          36    158415.52                    0
    4  Negotiation          20    297483.31                    0
    """
    if amounts:
        ds.require_single_currency("snapshot (open_amount)")
    counts, total, unknown = _open_by_stage(ds, [as_instant(at)], amounts=amounts)
    out = pd.DataFrame({"stage": stage_column(ds), "open_deals": counts[:, 0]})
    if amounts:
        out["open_amount"] = total[:, 0]
        out["open_amount_unknown"] = unknown[:, 0]
    return out


def weekly_snapshots(ds: Dataset, period: PeriodLike, *, amounts: bool = True) -> pd.DataFrame:
    """Snapshots at the end of each week in the period, plus at ``period.as_of``.

    The instants are those of :func:`week_ends`: each Monday 00:00 whose Sunday lies in P and is not
    after ``as_of`` (the data is seen as it stood at ``as_of``), then ``as_of`` itself.

    Returns
    -------
    DataFrame
        Long form, one row per instant and stage: ``at`` (datetime), ``stage`` (ordered Categorical),
        ``open_deals``, ``open_amount``, ``open_amount_unknown`` (as in :func:`snapshot`; no amount
        columns with ``amounts=False``).

    Examples
    --------
    >>> w = weekly_snapshots(ds, Period.quarter("2024Q1"))               # doctest: +SKIP
    >>> w.pivot(index="at", columns="stage", values="open_deals")        # doctest: +SKIP
    """
    period = as_period(period, ds)
    if amounts:
        ds.require_single_currency("weekly_snapshots (open_amount)")
    times = week_ends(period)
    counts, total, unknown = _open_by_stage(ds, times, amounts=amounts)
    n_st, n_t = counts.shape
    out = pd.DataFrame({
        "at": pd.DatetimeIndex(times).repeat(n_st).astype("datetime64[ns]"),
        "stage": stage_column(ds, np.tile(np.arange(n_st), n_t)),
        "open_deals": counts.T.ravel(),
    })
    if amounts:
        out["open_amount"] = total.T.ravel()
        out["open_amount_unknown"] = unknown.T.ravel()
    return out


def _cohort(ds: Dataset, period: Period) -> pd.DataFrame:
    d = deals_as_of(ds, period.as_of)
    return d[period.contains(d["created_at"]).to_numpy()]


def _reached(ds: Dataset, period: Period) -> tuple[np.ndarray, pd.DataFrame]:
    """``reached`` per stage and the cohort (deals created in P, seen at ``as_of``)."""
    n_st = len(ds.stages)
    cohort = _cohort(ds, period)
    in_cohort = np.zeros(len(ds.deals), dtype=bool)
    in_cohort[ds.deals.index.get_indexer(cohort.index)] = True
    v = ds.visits
    rows = v["deal_row"].to_numpy()
    seen = in_cohort[rows] & (v["entered_at"].to_numpy() < period.as_of.to_datetime64())
    furthest = np.full(len(ds.deals), -1, dtype="int64")
    np.maximum.at(furthest, rows[seen], v["stage_index"].to_numpy().astype("int64")[seen])
    f = furthest[in_cohort]
    won = (cohort["status_as_of"] == "won").to_numpy()
    f = np.where(won, n_st - 1, f)
    f = f[f >= 0]  # every cohort deal has an entry at its creation; kept defensive
    reached = np.cumsum(np.bincount(f, minlength=n_st)[::-1])[::-1]
    return reached.astype("int64"), cohort


def cohort_outcomes(ds: Dataset, period: PeriodLike) -> dict:
    """The cohort of :func:`funnel` (deals created in P, before ``as_of``) by status at ``as_of``.

    Returns
    -------
    dict
        ``{"deals": int, "won": int, "lost": int, "open": int}``; a deal closed after ``as_of`` is open.

    Examples
    --------
    >>> import funnelkit as fk
    >>> cohort_outcomes(fk.load("data/sample"), "2026-05")      # the deals created in May 2026
    {'deals': 146, 'won': 0, 'lost': 55, 'open': 91}
    """
    period = as_period(period, ds)
    status = _cohort(ds, period)["status_as_of"].astype(str)
    counts = status.value_counts()
    return {"deals": int(len(status)), **{s: int(counts.get(s, 0)) for s in ("won", "lost", "open")}}


def funnel(ds: Dataset, period: PeriodLike) -> pd.DataFrame:
    """How far the deals created in P got by ``as_of``.

    ``reached(S)`` is the number of cohort deals whose furthest stage (highest stage among their
    entries before ``as_of``; moving back does not undo it) is S or later, or that were won by
    ``as_of``; a skipped stage counts as passed. ``conversion(S) = reached(next) / reached(S)``; for
    the last stage ``won / reached(last)`` with ``won`` the cohort deals won by ``as_of``.
    ``conversion`` is NaN where ``reached(S)`` is 0.

    Returns
    -------
    DataFrame
        One row per pipeline stage: ``stage`` (ordered Categorical), ``reached`` (int),
        ``conversion`` (float in [0, 1] or NaN).

    Examples
    --------
    >>> import funnelkit as fk
    >>> funnel(fk.load("data/sample"), "2026-05")
             stage  reached  conversion
    0         Lead      146    0.547945
    1    Qualified       80    0.512500
    2      Meeting       41    0.390244
    3     Proposal       16    0.312500
    4  Negotiation        5    0.000000
    """
    period = as_period(period, ds)
    reached, cohort = _reached(ds, period)
    won = int((cohort["status_as_of"] == "won").sum())
    nxt = np.append(reached[1:], won).astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        conversion = np.where(reached > 0, nxt / np.maximum(reached, 1), np.nan)
    return pd.DataFrame({"stage": stage_column(ds), "reached": reached, "conversion": conversion})


def stage_flow(ds: Dataset, period: PeriodLike) -> pd.DataFrame:
    """What became, by ``as_of``, of each stage visit that began in P.

    Each visit (a stage entry, up to the deal's next entry or its close) that began in P and before
    ``as_of`` falls in exactly one of: ``advanced`` (next entry is the next stage), ``skipped ahead``
    (a later stage, past the next), ``moved back`` (an earlier stage), ``won`` / ``lost`` (the deal
    closed from this visit), ``still there`` (open at ``as_of``). A deal that re-enters a stage makes
    a new visit each time.

    Returns
    -------
    DataFrame
        One row per pipeline stage: ``stage``, ``visits``, then the six outcomes (ints); the
        outcomes add up to ``visits``.

    Examples
    --------
    >>> stage_flow(ds, Period("2024-01-01", "2024-01-31"))              # doctest: +SKIP
    """
    period = as_period(period, ds)
    v = visits_as_of(ds, period.as_of)
    keep = period.contains(v["entered_at"]).to_numpy()
    n_st, n_o = len(ds.stages), len(OUTCOMES)
    key = (v["stage_index"].to_numpy().astype("int64")[keep] * n_o
           + v["outcome"].cat.codes.to_numpy().astype("int64")[keep])
    table = np.bincount(key, minlength=n_st * n_o).reshape(n_st, n_o)
    out = pd.DataFrame({"stage": stage_column(ds), "visits": table.sum(axis=1).astype("int64")})
    for j, name in enumerate(OUTCOMES):
        out[name] = table[:, j].astype("int64")
    return out


def bottleneck(ds: Dataset, period: PeriodLike) -> dict:
    """Name the bottleneck of the period.

    - ``lowest_conversion_stage`` / ``lowest_conversion``: the stage of :func:`funnel` with the lowest
      conversion (the last stage's conversion is its win rate); stages with no conversion (NaN) are
      skipped; on a tie, the earlier stage.
    - ``largest_drop_stage`` / ``largest_drop`` / ``largest_drop_week``: the largest fall in one
      stage's open deals between two consecutive instants of the weekly series
      (:func:`week_ends`), the stage, and the later instant of the pair (the week end at which the
      lower count was seen). On a tie, the earliest instant, then the earlier stage. When no stage
      ever falls (or the series has one instant), the three are ``None``.

    Only counts are used, so mixed currencies are fine.

    Returns
    -------
    dict
        ``{lowest_conversion_stage: str | None, lowest_conversion: float | None,
        largest_drop_stage: str | None, largest_drop: int | None,
        largest_drop_week: Timestamp | None}``

    Examples
    --------
    >>> bottleneck(ds, Period("2024-01-01", "2024-01-31"))              # doctest: +SKIP
    """
    period = as_period(period, ds)
    f = funnel(ds, period)
    conv = f["conversion"].to_numpy()
    out: dict = {"lowest_conversion_stage": None, "lowest_conversion": None}
    if np.isfinite(conv).any():
        i = int(np.nanargmin(conv))  # first occurrence of the minimum
        out["lowest_conversion_stage"] = ds.stages[i]
        out["lowest_conversion"] = float(conv[i])
    times = week_ends(period)
    counts, _, _ = _open_by_stage(ds, times, amounts=False)
    out.update(largest_drop_stage=None, largest_drop=None, largest_drop_week=None)
    if counts.shape[1] >= 2:
        fall = counts[:, :-1] - counts[:, 1:]          # (stages, pairs); positive = fewer open deals
        best = int(fall.max())
        if best > 0:
            # Earliest pair first, then the earlier stage: scan pairs in order (transpose).
            j, i = np.argwhere(fall.T == best)[0]
            out.update(largest_drop_stage=ds.stages[int(i)], largest_drop=best,
                       largest_drop_week=pd.Timestamp(times[int(j) + 1]))
    return out


def unvisited_stages(ds: Dataset) -> list[str]:
    """The pipeline stages that no deal in the data ever entered, in pipeline order.

    Such a stage (e.g. Maven CRM's ``Prospecting``, whose deals the import rejected for want of a
    date) would show in :func:`funnel` as "reached" by every deal, only because a skipped stage
    counts as passed; the report leaves it out of the funnel and says so.

    Examples
    --------
    >>> unvisited_stages(ds)                                            # doctest: +SKIP
    ['Prospecting']
    """
    seen = np.zeros(len(ds.stages), dtype=bool)
    seen[np.unique(ds.stage_history["stage_index"].to_numpy().astype("int64"))] = True
    return [s for s, hit in zip(ds.stages, seen) if not hit]
