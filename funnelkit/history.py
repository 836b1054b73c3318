"""The data as it stood at an instant, as pandas frames: deals and stage visits seen "as of" a moment.

Visibility rule used by every metric: an event at time ``t`` (a deal's creation, a stage entry, a
close) is seen at ``as_of`` when ``t < as_of``. ``as_of`` is an exclusive instant: the default
``end + 1 day`` at 00:00 sees everything up to the last moment of ``end`` and nothing dated the
next day. A deal closed at or after ``as_of`` is open at ``as_of``.

The definitions live once, on the engine (:mod:`funnelkit.engine.views`: ``deals_as_of``,
``visits_as_of``); the functions here run them on the data set's engine and return the rows as
pandas frames, for the per-deal lookups of the pandas-side metrics (pipeline movement, slippage).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from .dataset import Dataset
from .engine import views as _views
from .engine.tables import tables_of, to_frame
from .period import as_instant

__all__ = ["deals_as_of", "visits_as_of", "stage_at", "OUTCOMES"]

#: What became of a stage visit, in display order (:data:`funnelkit.engine.views.OUTCOMES`).
OUTCOMES = _views.OUTCOMES

DAY = np.timedelta64(86_400, "s")

#: How many as-of instants each view keeps per data set (oldest dropped first).
_CACHED_VIEWS = 4


def _cached_view(ds: Dataset, name: str, as_of: pd.Timestamp,
                 compute: Callable[[Dataset, pd.Timestamp], pd.DataFrame]) -> pd.DataFrame:
    """``compute(ds, as_of)``, cached on the data set per ``as_of``; a shallow copy is returned, so
    callers may add columns. After editing a Dataset's tables in place, call ``ds.refresh()``."""
    cache: dict[pd.Timestamp, pd.DataFrame] = ds.derived(name, dict)
    if as_of not in cache:
        if len(cache) >= _CACHED_VIEWS:
            cache.pop(next(iter(cache)))
        cache[as_of] = compute(ds, as_of)
    return cache[as_of].copy(deep=False)


def deals_as_of(ds: Dataset, as_of) -> pd.DataFrame:
    """Deals created before ``as_of``, with their state at ``as_of``
    (:func:`funnelkit.engine.views.deals_as_of`).

    The rows of ``ds.deals`` (index and column types kept, in order) plus ``status_as_of``
    (open/won/lost as known at ``as_of``, Categorical: a deal closed by an earlier close not yet
    reopened is won/lost) and ``closed_as_of`` (the final ``closed_at`` when before ``as_of``, else
    NaT); with a change log (``deal_changes.csv``), ``amount`` is the amount
    as known at ``as_of`` (:func:`funnelkit.changes.known_at`). Cached per data set and ``as_of``.

    Examples
    --------
    >>> import funnelkit as fk
    >>> d = deals_as_of(fk.load("data/sample"), "2026-04-01")
    >>> d["status_as_of"].value_counts().to_dict()
    {'lost': 1642, 'won': 420, 'open': 160}
    """
    return _cached_view(ds, "deals_as_of", as_instant(as_of), _deals_as_of)


def _deals_as_of(ds: Dataset, as_of: pd.Timestamp) -> pd.DataFrame:
    view = _views.deals_as_of(tables_of(ds), as_of)
    got = to_frame(view.select("deal_row", "amount", "status_as_of", "closed_as_of").order_by("deal_row"))
    d = ds.deals.iloc[got["deal_row"].to_numpy(dtype="int64")].copy()
    d["amount"] = got["amount"].to_numpy(dtype="float64", na_value=np.nan)
    status = pd.Categorical(got["status_as_of"].astype(str), categories=["open", "won", "lost"])
    d["closed_as_of"] = d["closed_at"].where(got["closed_as_of"].notna().to_numpy())
    d["status_as_of"] = status
    return d


def visits_as_of(ds: Dataset, as_of) -> pd.DataFrame:
    """Stage visits begun before ``as_of``, ended or still open at ``as_of``
    (:func:`funnelkit.engine.views.visits_as_of`), in deal and entry order.

    Returns
    -------
    DataFrame
        ``deal_id``, ``deal_row`` (row position in ``ds.deals``), ``stage`` (ordered Categorical),
        ``stage_index``, ``entered_at``, ``ended_at`` (NaT while open), ``is_open``, ``outcome``
        (Categorical of :data:`OUTCOMES`) and ``days`` (fractional days from entry to ``ended_at``,
        or to ``as_of`` for open visits). Cached per data set and ``as_of``.

    Examples
    --------
    >>> import funnelkit as fk
    >>> v = visits_as_of(fk.load("data/sample"), "2026-04-01")
    >>> int(v["outcome"].value_counts()["still there"])
    160
    """
    return _cached_view(ds, "visits_as_of", as_instant(as_of), lambda ds, at: _visits_frame(ds, at, open_only=False))


def stage_at(ds: Dataset, t) -> pd.DataFrame:
    """Each deal's current visit at instant ``t``: deals created before ``t`` and not closed before it.

    One row per such deal, the columns of :func:`visits_as_of` seen at ``t``, in deal order.

    Examples
    --------
    >>> import funnelkit as fk
    >>> stage_at(fk.load("data/sample"), "2026-04-01")["stage"].value_counts().to_dict()
    {'Qualified': 39, 'Proposal': 36, 'Meeting': 33, 'Lead': 32, 'Negotiation': 20}
    """
    return _visits_frame(ds, as_instant(t, "t"), open_only=True)


def _visits_frame(ds: Dataset, as_of: pd.Timestamp, *, open_only: bool) -> pd.DataFrame:
    v = _views.visits_as_of(tables_of(ds), as_of)
    if open_only:
        v = v.filter(v.is_open)
    got = to_frame(v.select("deal_id", "deal_row", "stage_index", "entered_at", "ended_at", "is_open",
                            "outcome", "days").order_by(["deal_row", "entered_at", "stage_index"]))
    codes = got["stage_index"].to_numpy(dtype="int64")
    return pd.DataFrame({
        "deal_id": got["deal_id"].astype(object),
        "deal_row": got["deal_row"].to_numpy(dtype="int64"),
        "stage": pd.Categorical.from_codes(codes, categories=ds.stages, ordered=True),
        "stage_index": codes,
        "entered_at": got["entered_at"],
        "ended_at": got["ended_at"],
        "is_open": got["is_open"].to_numpy(dtype=bool),
        "outcome": pd.Categorical.from_codes(got["outcome"].to_numpy(dtype="int64"), categories=list(OUTCOMES)),
        "days": got["days"].to_numpy(dtype="float64"),
    })
