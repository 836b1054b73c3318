"""A data set as Ibis tables on one backend: what every engine-side metric starts from.

``deals`` has one row per deal with ``deal_row`` (its position in the data set's ``deals`` frame),
``deal_id``, ``created_at``, ``closed_at``, ``status`` (open/won/lost), ``amount`` (float, null =
unknown) and the other deal columns as text. ``entries`` has the normalised stage entries:
``deal_id``, ``stage_index`` (0 = first stage), ``entered_at``; no deal has two consecutive entries
of the same stage, and every deal has an entry at or before its creation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..contract import DATES_ESTIMATED, Pipeline
from ..dataset import label_text

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from ..dataset import Dataset

__all__ = ["Tables", "tables_of", "to_frame", "change_log_amounts"]


@dataclass(eq=False)
class Tables:
    """One data set on one Ibis backend.

    Attributes
    ----------
    con
        The Ibis backend the tables live on (in-process DuckDB for a loaded folder).
    deals, entries
        The deal table and the normalised stage entries (module docstring).
    pipeline
        The pipeline settings (stages, currency, ...).

    Examples
    --------
    >>> t = tables_of(ds)                                  # doctest: +SKIP
    >>> t.deals.count().execute()                          # doctest: +SKIP
    8
    """

    con: object
    deals: "ir.Table"
    entries: "ir.Table"
    pipeline: Pipeline
    #: With a change log (``deal_changes.csv``): ``amounts_at(as_of)`` gives ``deal_row`` and the
    #: ``amount`` as known at ``as_of`` of the deals created before it (:func:`funnelkit.changes.known_for`).
    amounts_at: "Callable[[pd.Timestamp], pd.DataFrame] | None" = None

    @cached_property
    def visits(self) -> "ir.Table":
        """One row per stage visit over the whole history (:func:`funnelkit.engine.views.visits`)."""
        from .views import visits

        return visits(self)

    @property
    def backend(self) -> str:
        """The backend's name (``duckdb``, ``postgres``, ``pyspark``, ...)."""
        return getattr(self.con, "name", type(self.con).__name__)


def tables_of(ds: "Dataset") -> Tables:
    """The data set's engine tables: its own for a data set held in a database, else (a loaded
    folder) its frames copied once into an in-process DuckDB, cached on the data set.

    Examples
    --------
    >>> tables_of(fk.load("data/sample")).backend          # doctest: +SKIP
    'duckdb'
    """
    held = getattr(ds, "tables", None)        # a data set held in a database has its own
    if isinstance(held, Tables):
        return held
    return ds.derived("engine_tables", lambda: _in_process(ds))


def _in_process(ds: "Dataset") -> Tables:
    import ibis

    con = ibis.duckdb.connect()
    deals = deal_frame(ds.deals)
    h = ds.stage_history
    entries = pd.DataFrame({
        "deal_id": _text(h["deal_id"]),
        "stage_index": h["stage_index"].to_numpy().astype("int64"),
        "entered_at": _micros(h["entered_at"]),
    })
    return Tables(con=con, deals=_put(con, "deals", deals), entries=_put(con, "entries", entries),
                  pipeline=ds.pipeline, amounts_at=change_log_amounts(ds))


def change_log_amounts(ds: "Dataset"):
    """The change log's amounts as known at an instant, when the data set has amount changes (else
    None): a function of ``as_of`` giving ``deal_row`` (the deal's row in ``ds.deals``) and
    ``amount`` for the deals created before ``as_of`` (:attr:`Tables.amounts_at`)."""
    from ..changes import has_changes, known_for

    if not has_changes(ds, "amount"):
        return None
    created = ds.deals["created_at"].to_numpy()

    def amounts_at(as_of: pd.Timestamp) -> pd.DataFrame:
        rows = np.flatnonzero(created < as_of.to_datetime64())
        known = known_for(ds, "amount", rows, np.full(len(rows), as_of.to_datetime64()))
        return pd.DataFrame({"deal_row": rows.astype("int64"), "amount": np.asarray(known, dtype="float64")})

    return amounts_at


def _put(con, name: str, frame: pd.DataFrame):
    """``frame`` as a temporary table of ``con``, typed by its pandas dtypes (text where they say
    nothing, as in an empty frame)."""
    import ibis

    def dtype(s: pd.Series) -> str:
        if pd.api.types.is_datetime64_any_dtype(s):
            return "timestamp(6)"
        if pd.api.types.is_bool_dtype(s):
            return "boolean"
        if pd.api.types.is_float_dtype(s):
            return "float64"
        if pd.api.types.is_integer_dtype(s):
            return "int64"
        return "string"

    schema = ibis.schema({col: dtype(frame[col]) for col in frame.columns})
    return con.create_table(name, ibis.memtable(frame, schema=schema), temp=True)


def deal_frame(deals: pd.DataFrame) -> pd.DataFrame:
    """The deals in the engine's column types: ``deal_row`` first, text columns as plain text
    (missing = null), timestamps in microseconds (every engine reads them), amounts as floats,
    the ``dates_estimated`` flag (when present) as booleans (missing = false)."""
    out = {"deal_row": np.arange(len(deals), dtype="int64")}
    for col in deals.columns:
        s = deals[col]
        if col in ("created_at", "closed_at"):
            out[col] = _micros(s)
        elif col == "amount":
            out[col] = s.to_numpy(dtype="float64")
        elif col == DATES_ESTIMATED:
            out[col] = s.fillna(False).to_numpy(dtype=bool)
        else:
            out[col] = _text(s)
    return pd.DataFrame(out)


def _text(s: pd.Series) -> np.ndarray:
    # From the categorical codes where there are some: never rows x the longest label (pandas 2).
    return label_text(s, missing=None).to_numpy(dtype=object)


def _micros(s: pd.Series) -> np.ndarray:
    return pd.to_datetime(s).to_numpy().astype("datetime64[us]")


def to_frame(expr: "ir.Table") -> pd.DataFrame:
    """Run ``expr`` and return a pandas DataFrame with a fresh index and timestamps in
    nanoseconds (the unit of every frame funnelkit returns)."""
    df = expr.to_pandas()
    for col in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[col]):
            df[col] = df[col].astype("datetime64[ns]")
    return df.reset_index(drop=True)
