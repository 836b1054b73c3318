"""A data set as Ibis tables on one backend: what every engine-side metric starts from.

``deals`` has one row per deal with ``deal_row`` (its position in the data set's ``deals`` frame),
``deal_id``, ``created_at``, ``closed_at``, ``status`` (open/won/lost), ``amount`` (float, null =
unknown) and the other deal columns as text. ``entries`` has the normalised stage entries:
``deal_id``, ``stage_index`` (0 = first stage), ``entered_at``; no deal has two consecutive entries
of the same stage, and every deal has an entry at or before its creation.
"""

from __future__ import annotations

import os
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..contract import DATES_ESTIMATED, Pipeline
from ..dataset import label_text

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pyarrow as pa

    from ..dataset import Dataset

__all__ = ["Tables", "tables_of", "to_frame", "to_arrays", "to_scalar", "change_log_amounts", "change_log_values",
           "closed_spell_table", "database_frames"]


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
    #: With amount changes in the change log (``deal_changes.csv``): the engine table of
    #: :func:`change_log_amounts`, read by :meth:`amounts_at`; None without.
    amount_changes: "ir.Table | None" = None
    #: With status changes in the change log: the engine table of :func:`closed_spell_table` (the
    #: spells in which a deal was closed by an earlier close), read by
    #: :func:`funnelkit.engine.views.closed_then`; None without.
    closed_spells: "ir.Table | None" = None
    #: With expected-close-date changes in the change log: the engine table of
    #: :func:`change_log_values` for ``expected_close_date``; None without.
    date_changes: "ir.Table | None" = None
    #: With forecast-category changes in the change log: the engine table of
    #: :func:`change_log_values` for ``forecast_category``; None without.
    category_changes: "ir.Table | None" = None
    _amounts: dict = field(default_factory=dict, repr=False)

    def amounts_at(self, as_of) -> "ir.Table | None":
        """``deal_row`` and ``amount`` (as known at ``as_of``: :func:`funnelkit.changes.known_for`,
        in the engine) of the deals created before ``as_of``, in ``deal_row`` order; None when the
        data set has no amount changes (then ``deals.amount`` is the amount at every instant).

        A change is the known value for ``known_from < as_of <= known_until`` (a null bound is
        open); a deal without changes keeps its ``deals.amount``. Computed by the engine once per
        ``as_of`` into a table of its own, which every later query at that instant reads.
        """
        if self.amount_changes is None:
            return None
        from ..period import as_instant

        at = as_instant(as_of)
        if at not in self._amounts:
            name = f"amounts_at_{uuid.uuid4().hex}"
            self._amounts[at] = temp_table(self.con, name, self._amounts_expr(at))
        return self._amounts[at]

    def amounts_known(self, times) -> "ir.Table | None":
        """``i`` (position in ``times``), ``deal_row`` and ``amount`` as known at ``times[i]`` of the
        deals created before each instant (the rule of :meth:`amounts_at`, many instants in one
        expression); None when the data set has no amount changes."""
        import ibis

        from ..period import as_instant
        from .views import known_then

        if self.amount_changes is None:
            return None
        at = pd.DataFrame({"i": np.arange(len(times), dtype="int64"),
                           "at": np.array([as_instant(x).to_datetime64() for x in times], dtype="datetime64[us]")})
        at = ibis.memtable(at, schema={"i": "int64", "at": "timestamp(6)"})
        d = self.deals.select("deal_row", "amount", "created_at")
        d = d.cross_join(at)
        d = d.filter(d.created_at < d.at)
        return known_then(self, d, "amount", "at").select("i", "deal_row", "amount")

    def _amounts_expr(self, as_of) -> "ir.Table":
        from .views import instant, known_then

        at = instant(as_of)
        d = self.deals.filter(self.deals.created_at < at).select("deal_row", "amount")
        return known_then(self, d, "amount", at).order_by("deal_row")

    #: True for tables funnelkit uploaded itself (a loaded folder on in-process DuckDB): a snapshot
    #: nobody else writes to, so every query's result is kept (:func:`to_frame`). False for a
    #: database's own tables, read afresh.
    snapshot: bool = False
    #: True when the connection has the compressed in-memory database :data:`STORE`
    #: (:func:`_compressed_store`), which :func:`temp_table` ``(compress=True)`` writes into.
    compressed: bool = False
    _results: dict = field(default_factory=dict, repr=False)

    @cached_property
    def visits(self) -> "ir.Table":
        """One row per stage visit over the whole history (:func:`funnelkit.engine.views.visits`).

        On snapshot tables (a loaded folder) computed by the engine once, the first time a metric
        needs them, into a temporary table that every later query reads (the visits are a window
        over every stage entry: recomputing it was most of each query's time). A database's own
        tables keep it an expression: they are read afresh, and a copy would go stale.
        """
        from .views import visits

        if not self.snapshot:
            return visits(self)
        return temp_table(self.con, f"visits_{uuid.uuid4().hex}", visits(self))

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
    import pyarrow as pa

    con = ibis.duckdb.connect()
    con.raw_sql("SET enable_progress_bar = false")     # a long upload would draw one into the notebook
    _bound_memory(con)
    compressed = _compressed_store(con)
    deals = deal_frame(ds.deals)
    h = ds.stage_history
    entries = pa.table({
        "deal_id": _text(h["deal_id"]),
        "stage_index": pa.array(h["stage_index"].to_numpy().astype("int64")),
        "entered_at": _micros(h["entered_at"]),
    })
    t = Tables(con=con, deals=_put(con, "deals", deals), entries=_put(con, "entries", entries),
               pipeline=ds.pipeline, amount_changes=change_log_amounts(ds, con),
               closed_spells=closed_spell_table(ds, con),
               date_changes=change_log_values(ds, con, "expected_close_date"),
               category_changes=change_log_values(ds, con, "forecast_category"), snapshot=True,
               compressed=compressed)
    _SNAPSHOTS[id(con)] = t
    return t


#: The share of the machine's memory the in-process DuckDB may hold before it spills to disk.
DUCKDB_MEMORY_SHARE = 0.5


def _bound_memory(con) -> None:
    """Let the in-process DuckDB hold at most :data:`DUCKDB_MEMORY_SHARE` of the machine's memory and
    spill beyond it into a folder of its own under the system's temporary folder (removed at exit).

    DuckDB's defaults (80% of the memory, spilling into ``.tmp`` in the current folder) leave too
    little beside the loaded frames pandas holds, and would write into the user's folder; a folder of
    its own keeps two processes from spilling into the same files.
    """
    import shutil
    import tempfile

    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):      # no such figure on this system: DuckDB's default
        total = 0
    if total > 0:
        con.raw_sql(f"SET memory_limit = '{int(total * DUCKDB_MEMORY_SHARE) // 2**20}MiB'")
    spill = tempfile.mkdtemp(prefix="funnelkit-duckdb-")
    con.raw_sql("SET temp_directory = '{}'".format(spill.replace("'", "''")))
    weakref.finalize(con, shutil.rmtree, spill, True)


#: The in-process DuckDB's database for funnelkit's own tables (:func:`_compressed_store`).
STORE = "funnelkit_store"


def _compressed_store(con) -> bool:
    """Give the in-process DuckDB an in-memory database of its own, :data:`STORE`, whose tables
    DuckDB compresses (``ATTACH ':memory:' (COMPRESS)``), for :func:`temp_table` ``(compress=True)``.

    DuckDB keeps temporary tables uncompressed: at 1M deals the forecast backtest's kept past visits (2.3M
    rows) hold 127 MB as a temporary table, 30 MB compressed once written (a checkpoint of the
    store). False when it could not.
    """
    import duckdb

    try:
        con.raw_sql(f"ATTACH ':memory:' AS {STORE} (COMPRESS)")
    except duckdb.Error:           # DuckDB before 1.4 has no compressed in-memory database: none
        return False
    return True


def change_log_amounts(ds: "Dataset", con) -> "ir.Table | None":
    """The change log's amount changes as a table of ``con`` (:func:`change_log_values` of
    ``amount``), read by :meth:`Tables.amounts_at`; None when the data set has none."""
    return change_log_values(ds, con, "amount")


def change_log_values(ds: "Dataset", con, field: str) -> "ir.Table | None":
    """The change log's changes of ``field`` (``amount``, ``expected_close_date`` or
    ``forecast_category``) as a table of ``con``, uploaded once (None when the data set has none):
    ``deal_row`` (the deal's row in ``ds.deals``), the value in a column named ``field`` (float
    amounts, timestamps, text; null = unknown),
    ``changed_at``, and the instants between which it is the value as known
    (:func:`funnelkit.engine.views.known_then`): ``known_from`` (``changed_at``; null for a deal's
    first change, whose value is also the one known before it) and ``known_until`` (the deal's next
    change's ``changed_at``; null for its last). Of several changes at one instant only the last (in
    change-log order) is ever known after it, as in :func:`funnelkit.changes.known_for`."""
    from ..changes import field_changes

    ch = field_changes(ds, field)
    if ch.empty:
        return None
    rows = ch["deal_row"].to_numpy(dtype="int64")
    at = ch["changed_at"].to_numpy(dtype="datetime64[us]")
    same_next = np.r_[rows[1:] == rows[:-1], False]
    if field == "amount":
        value = pd.to_numeric(ch["value"], errors="raise").to_numpy(dtype="float64")
    elif field == "expected_close_date":
        value = pd.to_datetime(ch["value"]).to_numpy().astype("datetime64[us]")
    else:
        value = label_text(ch["value"], missing=None).to_numpy(dtype=object)
    frame = pd.DataFrame({
        "deal_row": rows,
        field: value,
        "changed_at": at,
        "known_from": np.where(ch["is_first"].to_numpy(dtype=bool), np.datetime64("NaT", "us"), at),
        "known_until": np.where(same_next, np.r_[at[1:], at[:1]], np.datetime64("NaT", "us")),
    })
    return _put(con, f"{field}_changes_{uuid.uuid4().hex}", frame)


def closed_spell_table(ds: "Dataset", con) -> "ir.Table | None":
    """The spells in which a deal was closed by an earlier close (:func:`funnelkit.changes.closed_spells`,
    from the change log's status changes) as a table of ``con``, uploaded once (None when the data set
    has none): ``deal_row``, ``closed_at`` (the earlier close), ``reopened_at`` and ``status``
    (won/lost). The deal is closed at T when ``closed_at < T <= reopened_at``."""
    from ..changes import closed_spells

    sp = closed_spells(ds)
    if sp.empty:
        return None
    frame = pd.DataFrame({"deal_row": sp["deal_row"].to_numpy(dtype="int64"),
                          "closed_at": sp["closed_at"].to_numpy(dtype="datetime64[us]"),
                          "reopened_at": sp["reopened_at"].to_numpy(dtype="datetime64[us]"),
                          "status": sp["status"].astype(str).to_numpy(dtype=object)})
    return _put(con, f"closed_spells_{uuid.uuid4().hex}", frame)


def _put(con, name: str, frame: "pd.DataFrame | pa.Table"):
    """``frame`` (pandas, or Arrow as :func:`deal_frame` builds it: handed to DuckDB without a
    copy through Python objects) as a temporary table of ``con``, typed by its dtypes (text where
    they say nothing, as in an empty frame)."""
    import ibis
    import pyarrow as pa

    if isinstance(frame, pa.Table):
        return _copied(con, name, ibis.memtable(_batched(frame)))

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
    return _copied(con, name, ibis.memtable(frame, schema=schema))


#: Rows per Arrow batch handed to DuckDB (:func:`_batched`): DuckDB's own row-group size.
UPLOAD_BATCH_ROWS = 122_880


def _batched(table: "pa.Table") -> "pa.Table":
    """``table`` (the same rows, in order) as batches of :data:`UPLOAD_BATCH_ROWS` rows, which DuckDB
    reads on all its threads: a single chunk is read by one thread, and many small chunks (a column
    as the CSV reader left it) are slow to scan. At 1M deals the two tables' upload took 0.41 s as
    they come, 0.37 s in their small chunks, 0.21 s in these batches."""
    import pyarrow as pa

    return pa.Table.from_batches(table.combine_chunks().to_batches(max_chunksize=UPLOAD_BATCH_ROWS),
                                 schema=table.schema)


def _copied(con, name: str, memtable: "ir.Table") -> "ir.Table":
    """``memtable`` copied into the temporary table ``name`` (:func:`temp_table`); on DuckDB its
    registration is dropped once copied: Ibis keeps the frame registered, so held in memory, for the
    connection's life (~85 MB at 1M deals, beside the table's own copy)."""
    table = temp_table(con, name, memtable)
    raw = getattr(con, "con", None)
    if table is not memtable and getattr(con, "name", None) == "duckdb" and hasattr(raw, "unregister"):
        raw.unregister(memtable.op().name)
    return table


def temp_table(con, name: str, obj: "ir.Table", *, compress: bool = False) -> "ir.Table":
    """``obj`` computed once into a temporary table ``name`` of ``con``; on a backend without
    temporary tables (PySpark, Impala: Ibis raises NotImplementedError) ``obj`` itself, which the
    engine then computes (a memtable: uploads) in every query that reads it: slower, same rows.

    ``compress``: on the in-process DuckDB (a loaded folder), write the table into its compressed
    :data:`STORE` and compress it at once (a checkpoint of the store: 0.3-0.6 s of CPU per 100 MB),
    holding a fraction of the memory (it goes with the connection, like a temporary table). DuckDB
    keeps temporary tables uncompressed. Ignored elsewhere.
    """
    snapshot = _snapshot_of(con) if compress else None
    if snapshot is not None and snapshot.compressed:
        table = con.create_table(name, obj, database=(STORE, "main"))
        con.raw_sql(f"CHECKPOINT {STORE}")
        return table
    try:
        return con.create_table(name, obj, temp=True)
    except NotImplementedError:
        return obj


def deal_frame(deals: pd.DataFrame) -> "pa.Table":
    """The deals in the engine's column types, as an Arrow table: ``deal_row`` first, text
    columns as plain text (missing = null), timestamps (``created_at``, ``closed_at``,
    ``expected_close_date``) in microseconds (every engine reads them),
    amounts as floats (NaN = null, unknown), the ``dates_estimated`` flag (when present) as
    booleans (missing = false)."""
    import pyarrow as pa

    out = {"deal_row": pa.array(np.arange(len(deals), dtype="int64"))}
    for col in deals.columns:
        s = deals[col]
        if col in ("created_at", "closed_at") or pd.api.types.is_datetime64_any_dtype(s):
            out[col] = _micros(s)
        elif col == "amount":
            out[col] = pa.array(s.to_numpy(dtype="float64"), from_pandas=True)
        elif col == DATES_ESTIMATED:
            out[col] = pa.array(s.fillna(False).to_numpy(dtype=bool))
        else:
            out[col] = _text(s)
    return pa.table(out)


def _text(s: pd.Series) -> "pa.Array | pa.ChunkedArray":
    """A text column as Arrow text (missing = null), without a Python object per cell where it
    can: categories by their codes (dictionary-encoded), pyarrow-backed text as it is."""
    import pyarrow as pa

    if isinstance(s.dtype, pd.CategoricalDtype):
        # Dictionary-encoded: DuckDB reads it as text, without a string per row in between.
        labels = pa.array([str(c) for c in s.cat.categories], type=pa.string())
        codes = s.cat.codes.to_numpy()
        return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), labels)
    if isinstance(s.dtype, pd.StringDtype) and str(s.dtype.storage).startswith("pyarrow"):
        text = pa.array(s.array)
        return text.cast(pa.string()) if text.type != pa.string() else text
    # Object (pandas 2) or python-backed text: cell by cell, but in Arrow's C code.
    return pa.array(label_text(s, missing=None).to_numpy(dtype=object), type=pa.string(), from_pandas=True)


def _micros(s: pd.Series) -> "pa.Array":
    import pyarrow as pa

    return pa.array(pd.to_datetime(s).to_numpy().astype("datetime64[us]"), from_pandas=True)


#: The snapshot tables by ``id`` of their connection (weakly: an entry goes with its Tables), so that
#: :func:`to_frame` finds the result cache of the tables a query reads.
_SNAPSHOTS: "weakref.WeakValueDictionary[int, Tables]" = weakref.WeakValueDictionary()

#: Results above this size (bytes) are not kept: they are rows per deal or visit, cheap to recompute
#: next to their memory.
MAX_KEPT_BYTES = 16 * 2**20


def _backend_of(expr):
    """The Ibis backend ``expr`` reads, None when it reads none (a literal) or several."""
    try:
        return expr._find_backend(use_default=False)
    except Exception:
        return None


def _results_of(expr) -> dict | None:
    """The result cache of the snapshot tables ``expr`` reads (None when it reads a database's, or
    no backend: nothing to keep)."""
    t = _snapshot_of(_backend_of(expr))
    return t._results if t is not None else None


def _snapshot_of(con) -> Tables | None:
    """The snapshot tables (a loaded folder's) whose connection ``con`` is; None for any other."""
    t = _SNAPSHOTS.get(id(con)) if con is not None else None
    return t if t is not None and t.con is con else None


def _kept(expr, run: Callable[[], object]):
    """``run()``'s result for the query ``expr``, from the snapshot's cache when it ran before.

    The cache is keyed by the expression itself (Ibis expressions are immutable, hashable and
    equal when they are the same query), and lives on the :class:`Tables` of one data set: a data
    set derived from it (``filter``, ``dataclasses.replace``, ``refresh``) gets tables, and a
    cache, of its own.
    """
    cache = _results_of(expr)
    if cache is None:
        return run()
    key = expr.op()
    if key not in cache:
        got = run()
        size = got.memory_usage(index=False).sum() if isinstance(got, pd.DataFrame) else 0
        if size > MAX_KEPT_BYTES:
            return got
        cache[key] = got
    got = cache[key]
    return got.copy() if isinstance(got, pd.DataFrame) else got


def to_frame(expr: "ir.Table") -> pd.DataFrame:
    """Run ``expr`` and return a pandas DataFrame with a fresh index and timestamps in
    nanoseconds (the unit of every frame funnelkit returns). On snapshot tables the same query
    runs once (:attr:`Tables.snapshot`); each call gets its own copy of the frame."""
    return _kept(expr, lambda: _fetch(expr))


def to_arrays(expr: "ir.Table") -> dict[str, np.ndarray]:
    """Run ``expr`` and return its columns as numpy arrays by name, through Arrow without a pandas
    frame in between: for rows per visit or deal that a metric reads as arrays (a frame with
    object or categorical columns costs several times their memory). Timestamps in nanoseconds
    (null = NaT), as :func:`to_frame`'s; numbers and booleans as Arrow converts them (an integer
    column with nulls comes back as floats with NaN). In the engine's row order (order the
    expression when that matters); not kept (:attr:`Tables.snapshot`): the caller keeps what it
    reuses.

    Examples
    --------
    >>> v = tables_of(ds).visits                                        # doctest: +SKIP
    >>> to_arrays(v.select("deal_row", "entered_at"))["entered_at"].dtype   # doctest: +SKIP
    dtype('<M8[ns]')
    """
    got = expr.to_pyarrow()
    out = {}
    for name in got.column_names:
        values = got.column(name).to_numpy()
        out[name] = values.astype("datetime64[ns]") if np.issubdtype(values.dtype, np.datetime64) else values
    return out


def to_scalar(expr: "ir.Scalar"):
    """Run a scalar expression (kept like :func:`to_frame`'s results)."""
    return _kept(expr, expr.execute)


def _fetch(expr: "ir.Table") -> pd.DataFrame:
    df = _duckdb_frame(expr) if getattr(_backend_of(expr), "name", None) == "duckdb" else expr.to_pandas()
    for col in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[col]):
            df[col] = df[col].astype("datetime64[ns]")
    return df.reset_index(drop=True)


def _duckdb_frame(expr: "ir.Table") -> pd.DataFrame:
    """``expr.to_pandas()`` on DuckDB, the same frame without its slow step: Ibis's DuckDB backend turns
    every column that holds a null into a list of Python objects (``to_pylist``) before pandas reads it
    (8 of the 34 s CPU of ``metrics_summary`` at 1M deals, and that many objects at the memory peak).
    Here a float, timestamp, boolean or integer column with nulls is converted by Arrow, which gives
    what pandas makes of those Python objects (floats with NaN for integers, objects for booleans); an
    integer column of nulls only (objects then), text and every other type take Ibis's own path.
    Ibis's pandas conversion for the schema then runs as in ``to_pandas``. Checked equal to
    ``to_pandas`` (values, dtypes, the Python types of object cells) on every fetch of eight metric
    test files when it was written (2,104 fetches on pandas 3.1, 786 on pandas 2.2)."""
    import pyarrow.types as pat
    from ibis.backends.duckdb.converter import DuckDBPandasData

    table = expr.to_pyarrow()
    columns = {}
    for name, col in zip(table.column_names, table.columns):
        t = col.type
        by_arrow = not (pat.is_nested(t) or pat.is_dictionary(t)) if not col.null_count else \
            pat.is_floating(t) or pat.is_timestamp(t) or pat.is_boolean(t) or \
            (pat.is_integer(t) and col.null_count < len(col))
        columns[name] = col.to_pandas() if by_arrow else col.to_pylist()
    df = DuckDBPandasData.convert_table(pd.DataFrame(columns), expr.as_table().schema())
    return expr.__pandas_result__(df)


def database_frames(ds: "Dataset") -> tuple[pd.DataFrame, pd.DataFrame]:
    """A loaded data set's deals and stage history as a database holds them: text as plain strings
    (missing = None), amounts as floats, timestamps in microseconds (Spark cannot read nanoseconds),
    stages by name. Write them with any Ibis backend's ``create_table`` and open them with
    :func:`funnelkit.connect`.

    Examples
    --------
    >>> deals, history = database_frames(fk.load("data/sample"))     # doctest: +SKIP
    >>> con.create_table("deals", deals); con.create_table("stage_history", history)  # doctest: +SKIP
    """
    deals = ds.deals.copy()
    for col in deals.columns:
        if isinstance(deals[col].dtype, pd.CategoricalDtype) or deals[col].dtype == object \
                or pd.api.types.is_string_dtype(deals[col]):
            deals[col] = deals[col].astype(object).where(deals[col].notna(), None)
    for col in ("created_at", "closed_at"):
        deals[col] = deals[col].astype("datetime64[us]")
    h = ds.stage_history
    history = pd.DataFrame({"deal_id": h["deal_id"].astype(object), "stage": h["stage"].astype(str).astype(object),
                            "entered_at": h["entered_at"].astype("datetime64[us]")})
    return deals, history
