"""The same hand-made data set on every engine the metric core runs on, for the cross-engine tests.

``ENGINES`` parametrizes a test module's data-set fixture: ``duckdb`` (the default, in-process, as
``fk.load`` gives it) always runs; ``pyspark`` (local[2]) and ``postgres`` (a real server, URL in
``FUNNELKIT_TEST_POSTGRES``; ``make engines`` installs and starts one) are marked ``engines``. Those
copy the loaded hand data into the engine's tables and open them with :func:`funnelkit.connect`, so
the contract checks and the normalisation inside the engine run too. Without the engine they skip
with the reason, or fail when ``CI`` is set (there they must run).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
from pathlib import Path

import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.engine.tables import database_frames

ENGINES = ["duckdb",
           pytest.param("pyspark", marks=pytest.mark.engines),
           pytest.param("postgres", marks=pytest.mark.engines)]

POSTGRES_ENV = "FUNNELKIT_TEST_POSTGRES"
_names = itertools.count()


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(reason + "; CI is set, so the cross-engine tests must run")
    pytest.skip(reason)


def raw_tables(ds: fk.Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The loaded data set as a database would hold it (:func:`funnelkit.engine.tables.database_frames`)."""
    return database_frames(ds)


def on_engine(engine: str, folder: Path, request) -> fk.Dataset:
    """The data set in ``folder`` on ``engine`` (see the module docstring)."""
    ds = fk.load(folder)
    if engine == "duckdb":
        return ds
    deals, hist = raw_tables(ds)
    con, names = put_tables(engine, request, deals, hist)
    return fk.connect(con, deals=names[0], stage_history=names[1], pipeline=Path(folder) / "pipeline.yml")


def with_change_log(engine: str, folder: Path, request) -> fk.Dataset:
    """The data set in ``folder`` with its change log (deal_changes.csv), on ``engine`` (the change log a
    table of the engine too)."""
    ref = fk.load(folder)
    if engine == "duckdb":
        return ref
    deals, hist = raw_tables(ref)
    for col in deals.columns:
        if pd.api.types.is_datetime64_any_dtype(deals[col]):
            deals[col] = deals[col].astype("datetime64[us]")
    changes = pd.read_csv(Path(folder) / "deal_changes.csv", dtype=str, keep_default_na=False)
    changes["changed_at"] = pd.to_datetime(changes["changed_at"], format="ISO8601").astype("datetime64[us]")
    con, names = put_tables(engine, request, deals, hist, changes)
    return fk.connect(con, deals=names[0], stage_history=names[1], deal_changes=names[2],
                      pipeline=Path(folder) / "pipeline.yml")


def put_tables(engine: str, request, *frames: pd.DataFrame):
    """Write ``frames`` as new tables of ``engine`` (DuckDB: a fresh in-memory database); return the
    Ibis backend and the table names. Postgres tables are dropped after the test."""
    n = next(_names)
    names = [f"fk_t{os.getpid()}_{n}_{i}" for i in range(len(frames))]
    if engine == "duckdb":
        import ibis

        con = ibis.duckdb.connect()
        for frame, name in zip(frames, names):
            con.create_table(name, frame)
    elif engine == "pyspark":
        session, con = _spark(request)
        for frame, name in zip(frames, names):
            session.createDataFrame(frame).createOrReplaceTempView(name)
    elif engine == "postgres":
        con = _postgres(request)
        for frame, name in zip(frames, names):
            con.create_table(name, frame, overwrite=True)
        request.addfinalizer(lambda: [con.drop_table(name, force=True) for name in names])
    else:
        raise ValueError(engine)
    return con, names


def _spark(request):
    if importlib.util.find_spec("pyspark") is None:
        _unavailable("pyspark is not installed: pip install -e '.[pyspark]' (make engines)")
    return request.getfixturevalue("spark_session"), request.getfixturevalue("spark_backend")


def _postgres(request):
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        _unavailable(f"no PostgreSQL server: set {POSTGRES_ENV} (make engines starts one on localhost)")
    if importlib.util.find_spec("psycopg") is None:
        _unavailable("the postgres extra is not installed: pip install -e '.[postgres]' (make engines)")
    import ibis

    return ibis.connect(url)
