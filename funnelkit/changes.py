"""A deal's amount, expected close date, forecast category and status as known at an instant.

The optional change log (``deal_changes.csv``, :attr:`Dataset.deal_changes`) dates the values of
four fields. The value of field F of deal D **as known at instant T** is (``docs/metrics.md``,
"Values as known at an instant"):

1. the value of D's last F-change with ``changed_at < T`` (the visibility rule of every event);
2. when T is at or before D's first F-change, that first change's value (the earliest value known;
   the load report counts the deals where this stands in for an unknown past);
3. when D has no F-change at all, its ``deals.csv`` value (NaN / NaT / missing when the column is
   absent).

A deal's last change always gives its ``deals.csv`` value (the loader checks it), and no change
comes after a close, so a closed deal's amount is the amount it closed with (changes at the instant
of the close count) and a data set without a change log gives exactly the ``deals.csv`` values.

The **status** (open/won/lost) has its own rule, because a deal is open from its creation until a
close: D's status at T is the value of its last *status event* with ``changed_at < T``, the events
being its ``status`` changes in the log (earlier closes and reopenings) and its final close from
``deals.csv`` (``closed_at``, ``status``); before any event it is ``open``. The loader checks that
closes and reopenings alternate and end in the ``deals.csv`` state, so without status changes this
is exactly "closed when ``closed_at < T``".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .contract import CHANGE_FIELDS, STATUS_FIELD
from .dataset import Dataset
from .errors import ArgumentError
from .period import as_instant

__all__ = ["known_at", "known_for", "has_changes", "field_changes", "closed_spells"]


#: The typed column of :attr:`Dataset.deal_changes` that holds each field's values.
_VALUE_COLUMN = {"amount": "amount", "expected_close_date": "date", "forecast_category": "value",
                 STATUS_FIELD: "value"}


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
    # Without changes of the field no deal is looked up (the index of 1M ids costs half a second).
    ids = ds.deals["deal_id"].to_numpy() if len(ch) else np.array([], dtype=object)
    pos = pd.Series(np.arange(len(ids)), index=ids)
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
    ``times[i]``, for many (deal, instant) pairs at once. For ``"status"``: ``open``/``won``/``lost``
    by the status rule of the module docstring (open before the deal's first status event).

    Examples
    --------
    >>> known_for(ds, "amount", [0, 0], ["2026-01-01", "2026-03-01"])      # doctest: +SKIP
    array([100., 120.])
    """
    rows = np.asarray(rows, dtype="int64")
    times = pd.to_datetime(pd.Series(np.asarray(times))).to_numpy(dtype="datetime64[ns]")
    if field == STATUS_FIELD:
        return _status_for(ds, rows, times)
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
    text = field in ("forecast_category", STATUS_FIELD)
    return pd.Series(values, index=ds.deals.index, name=field,
                     dtype=object if text else _export_values(ds, field).dtype)


def _status_events(ds: Dataset) -> pd.DataFrame:
    """Every status event: the log's status changes and each closed deal's final close from deals.csv
    (unless the log repeats it at ``closed_at``): ``deal_row``, ``changed_at``, ``value``; by time."""
    def compute() -> pd.DataFrame:
        ch = field_changes(ds, STATUS_FIELD)[["deal_row", "changed_at", "value"]]
        d = ds.deals
        closed = d["closed_at"].to_numpy(dtype="datetime64[ns]")
        final = pd.DataFrame({"deal_row": np.flatnonzero(~np.isnat(closed)), "changed_at": closed[~np.isnat(closed)],
                              "value": d["status"].astype(str).to_numpy()[~np.isnat(closed)]})
        ev = pd.concat([ch, final], ignore_index=True).drop_duplicates(["deal_row", "changed_at"], keep="first")
        return ev.astype({"value": object}).sort_values("changed_at", kind="stable").reset_index(drop=True)

    return ds.derived("changes:status_events", compute)


def _status_for(ds: Dataset, rows: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Status (open/won/lost) of deal ``rows[i]`` at ``times[i]``: its last status event before it."""
    out = np.full(len(rows), "open", dtype=object)
    if not len(rows):
        return out
    query = pd.DataFrame({"deal_row": rows, "at": times, "i": np.arange(len(rows))}).sort_values("at", kind="stable")
    found = pd.merge_asof(query, _status_events(ds), left_on="at", right_on="changed_at", by="deal_row",
                          allow_exact_matches=False, direction="backward")
    seen = found["changed_at"].notna().to_numpy()
    out[found["i"].to_numpy()[seen]] = found["value"].to_numpy()[seen]
    return out


def closed_spells(ds: Dataset) -> pd.DataFrame:
    """The spells during which a deal was closed by an earlier close and later reopened.

    One row per status change to won/lost in the change log followed by a reopening (``open``):
    ``deal_row``, ``closed_at`` (the earlier close), ``reopened_at``, ``status`` (won/lost). At an
    instant T with ``closed_at < T <= reopened_at`` the deal is closed (not in the open pipeline),
    however its final close in deals.csv reads. Empty without status changes.

    Examples
    --------
    >>> closed_spells(ds)                                          # doctest: +SKIP
       deal_row  closed_at  reopened_at status
    0        11 2026-04-10   2026-05-01   lost
    """
    ch = field_changes(ds, STATUS_FIELD)
    nxt = ch.shift(-1)
    same = ch["deal_row"].eq(nxt["deal_row"]).to_numpy()
    spell = same & ch["value"].ne("open").to_numpy() & nxt["value"].eq("open").to_numpy()
    return pd.DataFrame({"deal_row": ch["deal_row"].to_numpy()[spell],
                         "closed_at": ch["changed_at"].to_numpy()[spell],
                         "reopened_at": nxt["changed_at"].to_numpy(dtype="datetime64[ns]")[spell],
                         "status": ch["value"].to_numpy(dtype=object)[spell]})
