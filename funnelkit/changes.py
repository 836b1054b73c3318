"""A deal's amount, expected close date and forecast category as known at an instant.

The optional change log (``deal_changes.csv``, :attr:`Dataset.deal_changes`) dates the values of
three fields. The value of field F of deal D **as known at instant T** is (``docs/metrics.md``,
"Values as known at an instant"):

1. the value of D's last F-change with ``changed_at < T`` (the visibility rule of every event);
2. when T is at or before D's first F-change, that first change's value (the earliest value known;
   the load report counts the deals where this stands in for an unknown past);
3. when D has no F-change at all, its ``deals.csv`` value (NaN / NaT / missing when the column is
   absent).

A deal's last change always gives its ``deals.csv`` value (the loader checks it), and no change
comes after a close, so a closed deal's amount is the amount it closed with (changes at the instant
of the close count) and a data set without a change log gives exactly the ``deals.csv`` values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .contract import CHANGE_FIELDS
from .dataset import Dataset
from .errors import ArgumentError
from .period import as_instant

__all__ = ["known_at", "known_for", "has_changes", "field_changes"]


#: The typed column of :attr:`Dataset.deal_changes` that holds each field's values.
_VALUE_COLUMN = {"amount": "amount", "expected_close_date": "date", "forecast_category": "value"}


def _check_field(field: str) -> None:
    if field not in CHANGE_FIELDS:
        raise ArgumentError(f"unknown field {field!r} (expected one of {', '.join(CHANGE_FIELDS)})")


def _export_values(ds: Dataset, field: str) -> pd.Series:
    """The deals.csv values of ``field`` (all unknown when the column is absent)."""
    if field in ds.deals.columns:
        return ds.deals[field]
    dtype = {"amount": float, "expected_close_date": "datetime64[ns]"}.get(field, object)
    return pd.Series(pd.NA if dtype is object else None, index=ds.deals.index, dtype=dtype)


def field_changes(ds: Dataset, field: str) -> pd.DataFrame:
    """The changes of one field: ``deal_row`` (position in ``ds.deals``), ``deal_id``,
    ``changed_at``, ``value`` (typed), ``previous`` (the value before it: the deal's previous change,
    or the change's own value for the first one) and ``is_first``; ordered by deal and time.

    Examples
    --------
    >>> field_changes(ds, "amount").head()                        # doctest: +SKIP
    """
    _check_field(field)
    return ds.derived(f"changes:{field}", lambda: _field_changes(ds, field)).copy(deep=False)


def _field_changes(ds: Dataset, field: str) -> pd.DataFrame:
    ch = ds.deal_changes
    ch = ch[ch["field"].to_numpy() == field]
    pos = pd.Series(np.arange(len(ds.deals)), index=ds.deals["deal_id"].to_numpy())
    out = pd.DataFrame({"deal_row": pos.reindex(ch["deal_id"].to_numpy()).to_numpy(),
                        "deal_id": ch["deal_id"].to_numpy(),
                        "changed_at": ch["changed_at"].to_numpy(dtype="datetime64[ns]"),
                        "value": ch[_VALUE_COLUMN[field]].to_numpy()})
    out = out[pd.notna(out["deal_row"]).to_numpy()].astype({"deal_row": "int64"})
    out = out.sort_values(["deal_row", "changed_at"], kind="stable").reset_index(drop=True)
    same = out["deal_row"].eq(out["deal_row"].shift()).to_numpy()
    out["is_first"] = ~same
    out["previous"] = out["value"].shift().where(same, out["value"])
    return out


def has_changes(ds: Dataset, field: str = "amount") -> bool:
    """True when the change log holds at least one change of ``field``."""
    return len(field_changes(ds, field)) > 0


def known_for(ds: Dataset, field: str, rows, times) -> np.ndarray:
    """The value of ``field`` of deal ``rows[i]`` (positions in ``ds.deals``) as known at
    ``times[i]``, for many (deal, instant) pairs at once.

    Examples
    --------
    >>> known_for(ds, "amount", [0, 0], ["2026-01-01", "2026-03-01"])      # doctest: +SKIP
    array([100., 120.])
    """
    rows = np.asarray(rows, dtype="int64")
    times = pd.to_datetime(pd.Series(np.asarray(times))).to_numpy(dtype="datetime64[ns]")
    export = _export_values(ds, field).to_numpy()
    out = export[rows].copy() if len(rows) else export[:0].copy()
    ch = field_changes(ds, field)
    if ch.empty or not len(rows):
        return out
    query = pd.DataFrame({"deal_row": rows, "at": times, "i": np.arange(len(rows))}).sort_values("at", kind="stable")
    right = ch[["deal_row", "changed_at", "value"]].sort_values("changed_at", kind="stable")
    found = pd.merge_asof(query, right, left_on="at", right_on="changed_at", by="deal_row",
                          allow_exact_matches=False, direction="backward")
    seen = found["changed_at"].notna().to_numpy()
    idx = found["i"].to_numpy()
    out = out.astype(object) if out.dtype.kind not in "fM" else out
    out[idx[seen]] = found["value"].to_numpy()[seen]
    first = ch[ch["is_first"]].set_index("deal_row")["value"]
    early = idx[~seen]
    has_first = first.index.get_indexer(rows[early]) >= 0
    out[early[has_first]] = first.reindex(rows[early[has_first]]).to_numpy()
    return out


def known_at(ds: Dataset, field: str, at) -> pd.Series:
    """The value of ``field`` of every deal as known at instant ``at``, aligned with ``ds.deals``.

    Without a change of ``field`` in the change log, the ``deals.csv`` values (so a data set without
    ``deal_changes.csv`` gives exactly what it gave before).

    Examples
    --------
    >>> known_at(ds, "amount", "2026-04-01")                       # doctest: +SKIP
    """
    _check_field(field)
    at = as_instant(at, "at")
    values = known_for(ds, field, np.arange(len(ds.deals)), np.full(len(ds.deals), at.to_datetime64()))
    return pd.Series(values, index=ds.deals.index, name=field,
                     dtype=_export_values(ds, field).dtype if field != "forecast_category" else object)
