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

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .contract import CHANGE_FIELDS, STATUS_FIELD
from .dataset import Dataset
from .errors import ArgumentError
from .period import as_instant

if TYPE_CHECKING:
    import ibis.expr.types as ir

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

    Computed by the data set's engine (:func:`funnelkit.engine.views.known_then`,
    :func:`funnelkit.engine.views.status_then`: the one definition the metrics use too); without a
    change of ``field`` in the log, the ``deals.csv`` values (nothing to look up).

    Examples
    --------
    >>> known_for(ds, "amount", [0, 0], ["2026-01-01", "2026-03-01"])      # doctest: +SKIP
    array([100., 120.])
    """
    import ibis

    _check_field(field)
    rows = np.asarray(rows, dtype="int64")
    times = pd.to_datetime(pd.Series(np.asarray(times))).to_numpy(dtype="datetime64[ns]")
    outside = rows[(rows < 0) | (rows >= len(ds.deals))]
    if len(outside) or len(times) != len(rows):
        raise ArgumentError(f"rows must be positions in ds.deals (0 to {len(ds.deals) - 1}), one per time; got "
                            f"{len(rows)} rows, {len(times)} times" + (f", outside: {outside[:5].tolist()}" if len(outside) else ""))
    if _as_exported(ds, field):
        return _export_values(ds, field).to_numpy()[rows].copy()
    pairs = ibis.memtable(pd.DataFrame({"_i": np.arange(len(rows), dtype="int64"), "deal_row": rows,
                                        "_at": times.astype("datetime64[us]")}),
                          schema={"_i": "int64", "deal_row": "int64", "_at": "timestamp(6)"})
    d = _engine_deals(ds, field)
    return _engine_values(ds, pairs.join(d, "deal_row"), field, "_at", "_i")


def known_at(ds: Dataset, field: str, at) -> pd.Series:
    """The value of ``field`` of every deal as known at instant ``at``, aligned with ``ds.deals``.

    Without a change of ``field`` in the change log, the ``deals.csv`` values (so a data set without
    ``deal_changes.csv`` gives exactly what it gave before). Computed like :func:`known_for`.

    Examples
    --------
    >>> known_at(ds, "amount", "2026-04-01")                       # doctest: +SKIP
    """
    from .engine.views import instant

    _check_field(field)
    at = as_instant(at, "at")
    if _as_exported(ds, field):
        values = _export_values(ds, field).to_numpy().copy()
    else:
        values = _engine_values(ds, _engine_deals(ds, field), field, instant(at), "deal_row")
    text = field in ("forecast_category", STATUS_FIELD)
    return pd.Series(values, index=ds.deals.index, name=field,
                     dtype=object if text else _export_values(ds, field).dtype)


def _as_exported(ds: Dataset, field: str) -> bool:
    """True when ``field`` is known at every instant as its ``deals.csv`` value: no change of it in
    the log, so nothing to look up (the status has its own rule: open until a close)."""
    return field != STATUS_FIELD and not has_changes(ds, field)


#: The engine type of each field's values (for a deals table without the column: all unknown).
_ENGINE_TYPE = {"amount": "float64", "expected_close_date": "timestamp", "forecast_category": "string"}


def _engine_deals(ds: Dataset, field: str) -> "ir.Table":
    """The engine's deals with what the rule for ``field`` reads: ``deal_row``, ``closed_at``,
    ``status`` and the deal's own ``field`` (null where the deals have no such column)."""
    import ibis

    from .engine.tables import tables_of

    d = tables_of(ds).deals
    if field == STATUS_FIELD:
        return d.select("deal_row", "closed_at", "status")
    if field in d.columns:
        return d.select("deal_row", field)
    return d.select("deal_row", **{field: ibis.null(_ENGINE_TYPE[field])})


def _engine_values(ds: Dataset, table: "ir.Table", field: str, at, order: str) -> np.ndarray:
    """``field`` as known at ``at`` (an instant, or a timestamp column of ``table``) per row of
    ``table``, in ``order``: floats (NaN: unknown), timestamps in nanoseconds, text as objects."""
    from .engine.tables import tables_of, to_arrays
    from .engine.views import known_then, status_then

    t = tables_of(ds)
    if field == STATUS_FIELD:
        got = status_then(t, table, at).select(order, value="status_as_of")
    else:
        got = known_then(t, table, field, at).select(order, value=field)
    values = to_arrays(got.order_by(order))["value"]
    return values.astype(object) if field in ("forecast_category", STATUS_FIELD) else values


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
