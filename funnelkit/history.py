"""The data as it stood at an instant: deals and stage visits seen "as of" a moment.

Visibility rule used by every metric: an event at time ``t`` (a deal's creation, a stage entry, a
close) is seen at ``as_of`` when ``t < as_of``. ``as_of`` is an exclusive instant: the default
``end + 1 day`` at 00:00 sees everything up to the last moment of ``end`` and nothing dated the
next day. A deal closed at or after ``as_of`` is open at ``as_of``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from .changes import has_changes, known_for
from .dataset import Dataset
from .period import as_instant

__all__ = ["deals_as_of", "visits_as_of", "stage_at", "OUTCOMES"]

#: What became of a stage visit, in display order.
OUTCOMES = ("advanced", "skipped ahead", "moved back", "won", "lost", "still there")

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
    """Deals created before ``as_of``, with their state at ``as_of``.

    Adds ``status_as_of`` (open/won/lost as seen at ``as_of``) and ``closed_as_of`` (``closed_at``
    when before ``as_of``, else NaT). All other deal columns are kept; with a change log
    (``deal_changes.csv``), ``amount`` is the amount as known at ``as_of``
    (:func:`funnelkit.changes.known_at`).

    Examples
    --------
    >>> d = deals_as_of(ds, "2024-07-01")          # doctest: +SKIP
    >>> d.status_as_of.value_counts()              # doctest: +SKIP
    """
    # Cached like visits_as_of (one period's metrics ask for it ~10 times).
    return _cached_view(ds, "deals_as_of", as_instant(as_of), _deals_as_of)


def _deals_as_of(ds: Dataset, as_of: pd.Timestamp) -> pd.DataFrame:
    seen = (ds.deals["created_at"] < as_of).to_numpy()
    d = ds.deals[seen].copy()
    if has_changes(ds, "amount"):
        # With a change log, the amount as known at as_of (a closed deal's is its closing amount).
        d["amount"] = known_for(ds, "amount", np.flatnonzero(seen), np.full(int(seen.sum()), as_of.to_datetime64()))
    seen_close = d["closed_at"] < as_of
    d["closed_as_of"] = d["closed_at"].where(seen_close)
    # On category codes, not strings (1M deals: a tenth of a second per call instead of a second).
    status = pd.Categorical(d["status"], categories=["open", "won", "lost"])
    codes = np.where(seen_close.to_numpy(), status.codes, 0).astype(status.codes.dtype)
    d["status_as_of"] = pd.Categorical.from_codes(codes, categories=["open", "won", "lost"])
    return d


def visits_as_of(ds: Dataset, as_of) -> pd.DataFrame:
    """Stage visits begun before ``as_of``, ended or still open at ``as_of``.

    A visit runs from a stage entry to the deal's next stage entry; the last visit of a closed deal
    ends at ``closed_at``. A visit not ended before ``as_of`` is open (censored at ``as_of``).

    Returns
    -------
    DataFrame
        The columns of :attr:`Dataset.visits` plus ``ended_at`` (NaT while open), ``is_open``,
        ``outcome`` (one of :data:`OUTCOMES`) and ``days`` (fractional days from entry to
        ``ended_at``, or to ``as_of`` for open visits).

    The view is cached on the data set per ``as_of`` (the metrics of one period ask for the same view
    several times); a shallow copy is returned, so adding columns to it is safe.
    """
    return _cached_view(ds, "visits_as_of", as_instant(as_of), _visits_as_of)


def _visits_as_of(ds: Dataset, as_of: pd.Timestamp) -> pd.DataFrame:
    v = ds.visits
    v = v[v["entered_at"].to_numpy() < as_of.to_datetime64()].copy()
    next_seen = (v["next_entered_at"] < as_of).to_numpy()
    close_seen = (v["is_last"] & (v["closed_at"] < as_of)).to_numpy()
    ended = np.where(next_seen, v["next_entered_at"].to_numpy(),
                     np.where(close_seen, v["closed_at"].to_numpy(), np.datetime64("NaT")))
    v["ended_at"] = pd.to_datetime(ended)
    v["is_open"] = ~(next_seen | close_seen)
    cur, nxt = v["stage_index"].to_numpy(), v["next_stage_index"].to_numpy()
    # Compare and build categoricals on codes, not strings (5M visits: seconds saved).
    won, lost = (v["status"] == "won").to_numpy(), (v["status"] == "lost").to_numpy()
    outcome = np.select(
        [next_seen & (nxt == cur + 1), next_seen & (nxt > cur + 1), next_seen & (nxt < cur),
         close_seen & won, close_seen & lost],
        [0, 1, 2, 3, 4], default=5).astype("int8")
    v["outcome"] = pd.Categorical.from_codes(outcome, categories=list(OUTCOMES))
    end = np.where(v["is_open"].to_numpy(), as_of.to_datetime64(), v["ended_at"].to_numpy())
    v["days"] = (end - v["entered_at"].to_numpy()) / DAY
    return v


def stage_at(ds: Dataset, t) -> pd.DataFrame:
    """Each deal's current visit at instant ``t``: deals created before ``t`` and not closed before it.

    One row per such deal (the columns of :func:`visits_as_of`, seen at ``t``).
    """
    v = visits_as_of(ds, t)
    return v[v["is_open"]]
