"""A data set that lives in a database: ``fk.connect(backend_or_url, deals=..., stage_history=...)``.

The deal and stage-history tables stay where they are; the contract is checked there
(:mod:`funnelkit.engine.checks`) and the ported metrics run there as Ibis expressions. The pipeline
settings come from a small local ``pipeline.yml`` or as arguments. Connection options and
per-engine limits: ``docs/engines.md``.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

from ..contract import DATABASE_FILE, PIPELINE_FILE, STATUSES, Pipeline
from ..dataset import Dataset, empty_changes
from ..validation import DataError, Problem, ValidationReport
from .checks import check_tables
from .tables import Tables, change_log_amounts, change_log_values, closed_spell_table, to_frame

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["connect", "connect_folder", "DatabaseDataset"]


def connect(source, deals: "str | ir.Table" = "deals", stage_history: "str | ir.Table" = "stage_history",
            pipeline: "str | Path | Pipeline | dict | None" = None, *, stages=None, currency: str = "USD",
            name: str | None = None, allow_missing_amounts: bool = False, database=None,
            errors: Literal["raise", "report"] = "raise",
            deal_changes: "str | ir.Table | None" = None) -> "DatabaseDataset":
    """Open a data set held in a database, check it against the data contract there, and return it.

    Parameters
    ----------
    source
        An Ibis backend (``ibis.postgres.connect(...)``, ``ibis.pyspark.connect(session)``, ...) or
        a URL that :func:`ibis.connect` understands (``"postgres://user@host/db"``,
        ``"duckdb:///path/file.duckdb"``).
    deals, stage_history
        Table names (in ``database`` when given), or Ibis table expressions with the contract's
        columns (map a CRM connector's tables with ``.select(...)``: docs/engines.md).
    pipeline
        A ``pipeline.yml`` (its path, or a folder holding it), a :class:`Pipeline`, or the YAML's
        mapping. Without it, ``stages`` (and ``currency``, ``name``, ``allow_missing_amounts``) give
        the settings.
    deal_changes
        The optional change log (``deal_id, changed_at, field, value``: docs/data-contract.md), a
        table name or expression; checked by the loader's rules after the deals (its problems name
        the table and the row, in ``deal_id, changed_at, field`` order). Without it the data set has
        no change log.
    database
        The database/schema of the named tables (e.g. ``"crm"`` or ``("catalog", "schema")``).
    errors
        ``"raise"`` (default): a :class:`DataError` lists every broken rule with counts and example
        deal ids. ``"report"``: return the data set with the problems in ``ds.report`` (metrics on
        a data set with problems are not trustworthy: fix the data first).

    Examples
    --------
    >>> import ibis, funnelkit as fk
    >>> con = ibis.duckdb.connect()
    >>> _ = con.create_table("deals", fk.load("data/sample").deals)        # doctest: +SKIP
    >>> ds = fk.connect(con, pipeline="data/sample/pipeline.yml")           # doctest: +SKIP
    >>> fk.metrics.time_in_stage(ds, fk.Period.quarter("2026Q2"))         # doctest: +SKIP
    """
    import ibis

    con = ibis.connect(source) if isinstance(source, (str, Path)) else source
    settings = _pipeline(pipeline, stages=stages, currency=currency, name=name,
                         allow_missing_amounts=allow_missing_amounts)
    deals_t, deals_name = _table(con, deals, database, "deals")
    hist_t, hist_name = _table(con, stage_history, database, "stage_history")
    checked = check_tables(deals_t, hist_t, settings, deals_name=deals_name, history_name=hist_name)
    where = f"{getattr(con, 'name', 'database')}: {deals_name} + {hist_name}"
    if checked.problems and errors == "raise":
        raise DataError(checked.problems, where)
    report = ValidationReport(path=where, problems=list(checked.problems),
                              entries_added=checked.entries_added, repeats_merged=checked.repeats_merged,
                              closed_without_amount=checked.closed_without_amount,
                              dates_estimated=checked.dates_estimated)
    if checked.deals is None:
        raise DataError(checked.problems, where)
    tables = Tables(con=con, deals=checked.deals, entries=checked.entries, pipeline=settings)
    ds = DatabaseDataset(tables, report=report, name=name or settings.name)
    if deal_changes is not None:
        _read_change_log(ds, *_table(con, deal_changes, database, "deal_changes"), errors=errors, where=where)
    return ds


def _read_change_log(ds: "DatabaseDataset", table: "ir.Table", name: str, *, errors: str, where: str) -> None:
    """Fetch the change log, check it with the loader's rules and attach it (problems to the report)."""
    from ..contract import CHANGE_COLUMNS
    from ..loading import check_change_log
    missing = [c for c in CHANGE_COLUMNS if c not in table.columns]
    if missing:
        raise DataError([Problem(name, None, c, None, f"required column missing (columns: {', '.join(table.columns)})")
                         for c in missing], where)
    raw = to_frame(table.select(*CHANGE_COLUMNS).order_by(["deal_id", "changed_at", "field"]))
    text = pd.DataFrame({col: _as_text(raw[col]) for col in CHANGE_COLUMNS})
    text["_line"] = range(1, len(text) + 1)
    text["_fields"] = len(CHANGE_COLUMNS)      # a table row always has every column
    changes, problems, bad, earliest = check_change_log(text, f"{name} (row, in deal_id, changed_at, field order)",
                                                        ds.deals, ds.pipeline, deals_name="the deals table")
    if problems and errors == "raise":
        raise DataError(problems, where)
    ds.report.problems += problems
    ds.report.earliest_known = earliest
    ds.deal_changes = changes
    ds.tables.amount_changes = change_log_amounts(ds, ds.tables.con)     # amounts as known at each instant
    ds.tables.closed_spells = closed_spell_table(ds, ds.tables.con)      # earlier closes, until reopened
    ds.tables.date_changes = change_log_values(ds, ds.tables.con, "expected_close_date")
    ds.tables.category_changes = change_log_values(ds, ds.tables.con, "forecast_category")


def _as_text(column: pd.Series) -> pd.Series:
    """A fetched column as the text a CSV would hold (timestamps ISO 8601, missing = empty)."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return column.map(lambda t: "" if pd.isna(t) else t.isoformat())
    return column.map(lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))


_DATABASE_KEYS = ("url", "deals", "stage_history", "deal_changes", "database")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def connect_folder(folder: str | Path, errors: Literal["raise", "report"] = "raise") -> "DatabaseDataset":
    """The data set that a folder's ``database.yml`` points at, with the folder's ``pipeline.yml``.

    ``database.yml`` names the connection and the tables::

        url: postgres://analyst@localhost:5432/crm     # ${NAME} is read from the environment
        deals: deals                                   # default: deals
        stage_history: stage_history                   # default: stage_history
        deal_changes: deal_changes                     # optional: the change log
        database: crm                                  # optional: the schema of the tables

    Such a folder is a data set like any other: ``fk.load(folder)``, ``funnelkit validate|metrics|report
    FOLDER`` all open it (a ``targets.csv`` beside it is read as usual). A password belongs in the
    environment (``${PGPASSWORD}`` in the URL, or the driver's own variables), not in the file.

    Raises
    ------
    DataError
        Naming the file, line, key, value and reason: an unknown key, a missing ``url``, a variable
        that is not set, a connection that fails (the URL shown without its password), a table that
        cannot be opened, or the contract's problems in the tables (with ``errors="raise"``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "database.yml").write_text("url: postgres://me@localhost/crm\\ntables: x\\n")
    >>> connect_folder(folder)
    Traceback (most recent call last):
    ...
    funnelkit.validation.DataError: 1 problem in data set ...:
      - .../database.yml, line 2, column 'tables', value 'x': unknown key (database.yml takes url, deals, stage_history, deal_changes, database)
    """
    import yaml

    from ..io import InputRefused, read_settings_yaml
    folder = Path(folder)
    file = folder / DATABASE_FILE
    where = str(file)
    try:
        raw = read_settings_yaml(file)
    except (OSError, InputRefused, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataError([Problem(where, None, None, None, f"cannot read the database settings: {exc}")],
                        folder) from None
    lines = _key_lines(file)
    if not isinstance(raw, dict):
        raise DataError([Problem(where, None, None, None, "expected keys url, deals, stage_history "
                                 "(and optionally database)")], folder)
    problems = [Problem(where, lines.get(str(k)), str(k), str(v), "unknown key (database.yml takes "
                        + ", ".join(_DATABASE_KEYS) + ")") for k, v in raw.items() if k not in _DATABASE_KEYS]
    for key in _DATABASE_KEYS:
        value = raw.get(key)
        if value is not None and not isinstance(value, str) and not (
                key == "database" and isinstance(value, list) and all(isinstance(v, str) for v in value)):
            problems.append(Problem(where, lines.get(key), key, str(value), "expected text"))
    url = raw.get("url")
    if not url:
        problems.append(Problem(where, None, "url", None, "missing: the database's URL (e.g. "
                                "postgres://user@host:5432/db or duckdb:///path/crm.duckdb)"))
    elif isinstance(url, str):
        unset = [name for name in _VARIABLE.findall(url) if name not in os.environ]
        problems += [Problem(where, lines.get("url"), "url", f"${{{name}}}", "environment variable not set")
                     for name in unset]
    if problems:
        raise DataError(problems, folder)
    url = _VARIABLE.sub(lambda m: os.environ[m.group(1)], url)
    database = raw.get("database")
    try:
        import ibis
        con = ibis.connect(url)
    except Exception as exc:  # each driver raises its own connection error
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError([Problem(where, lines.get("url"), "url", _redacted(url),
                                 f"cannot connect: {type(exc).__name__}: {message}")], folder) from None
    ds = connect(con, deals=raw.get("deals") or "deals", stage_history=raw.get("stage_history") or "stage_history",
                 pipeline=folder / PIPELINE_FILE, database=tuple(database) if isinstance(database, list) else database,
                 errors=errors, deal_changes=raw.get("deal_changes"))
    ds.path = folder
    return ds


def _key_lines(file: Path) -> dict[str, int]:
    """The line of each top-level key of a small YAML file (for naming a problem's line)."""
    found: dict[str, int] = {}
    for number, line in enumerate(file.read_text(encoding="utf-8-sig").splitlines(), 1):
        m = re.match(r"^([A-Za-z_][\w-]*)\s*:", line)
        if m:
            found.setdefault(m.group(1), number)
    return found


def _redacted(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _pipeline(pipeline, *, stages, currency, name, allow_missing_amounts) -> Pipeline:
    if isinstance(pipeline, Pipeline):
        return pipeline
    where = "pipeline settings"
    if isinstance(pipeline, (str, Path)):
        import yaml

        path = Path(pipeline)
        path = path / PIPELINE_FILE if path.is_dir() else path
        where = str(path)
        from ..io import InputRefused, read_settings_yaml
        try:
            raw = read_settings_yaml(path)
        except (OSError, InputRefused, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise DataError([Problem(where, None, None, None, f"cannot read the pipeline settings: {exc}")]) from None
    elif isinstance(pipeline, dict):
        raw = pipeline
    elif pipeline is None and stages is not None:
        raw = {"stages": list(stages), "currency": currency, "name": name or "Sales pipeline",
               "allow_missing_amounts": allow_missing_amounts}
    else:
        raise TypeError("give pipeline= (a pipeline.yml, a Pipeline or its mapping) or stages=[...]")
    found, problems = Pipeline.from_dict(raw)
    if found is None:
        raise DataError([Problem(where, None, key or None, value, reason) for key, value, reason in problems])
    return found


def _table(con, table, database, role: str) -> tuple["ir.Table", str]:
    if isinstance(table, str):
        try:
            t = con.table(table, database=database) if database is not None else con.table(table)
        except Exception as exc:  # each backend raises its own "no such table" error
            shown = f"{database}.{table}" if database is not None else table
            raise DataError([Problem(f"table {shown}", None, None, None,
                                     f"cannot open the {role} table: {type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0] if str(exc) else ''}")]) from None
        shown = f"{database}.{table}" if database is not None else table
        return t, f"table {shown}"
    return table, f"{role} expression"


class DatabaseDataset(Dataset):
    """A :class:`Dataset` whose tables stay in a database.

    The ported metrics run in the database; ``deals`` and ``stage_history`` are fetched into pandas
    only when something asks for them (a metric not yet on the engine, :meth:`filter`, plots),
    then cached.
    """

    def __new__(cls, tables: Tables | None = None, **fields):
        if tables is None and fields:   # dataclasses.replace(ds, deals=...): derived, lives in memory
            return Dataset(**fields)
        return super().__new__(cls)

    def __init__(self, tables: Tables, *, report: ValidationReport, name: str):
        self.pipeline = tables.pipeline
        self.report = report
        self.name = name
        self.path = None
        self.deal_changes = empty_changes()   # none unless connect() is given one (deal_changes=)
        self._tables = tables

    @property
    def tables(self) -> Tables:
        """The data set's tables in its database (what the engine's metrics query)."""
        return self._tables

    @cached_property
    def deals(self) -> pd.DataFrame:  # type: ignore[override]
        d = to_frame(self.tables.deals.order_by("deal_row")).drop(columns=["deal_row"])
        d["status"] = pd.Categorical(d["status"], categories=list(STATUSES))
        for col in ("source", "product", "owner") + (("currency",) if "currency" in d.columns else ()):
            d[col] = d[col].astype("category")
        d["amount"] = d["amount"].astype("float64")
        return d

    @cached_property
    def stage_history(self) -> pd.DataFrame:  # type: ignore[override]
        t = self.tables
        e = t.entries.join(t.deals.select("deal_id", "deal_row"), "deal_id")
        h = to_frame(e.order_by(["deal_row", "entered_at", "stage_index"]).select(
            "deal_id", "stage_index", "entered_at"))
        codes = h["stage_index"].to_numpy(dtype="int64")
        return pd.DataFrame({
            "deal_id": h["deal_id"].astype(str),
            "stage": pd.Categorical.from_codes(codes, categories=self.stages, ordered=True),
            "stage_index": codes.astype("int16"),
            "entered_at": h["entered_at"],
        })

    @property
    def deal_columns(self) -> list[str]:
        return [c for c in self.tables.deals.columns if c != "deal_row"]

    @property
    def currencies(self) -> list[str]:
        if "currency" not in self.tables.deals.columns:
            return [self.pipeline.currency]
        found = self.tables.deals.select("currency").distinct().execute()["currency"]
        return sorted(str(c) for c in found)

    def refresh(self) -> "DatabaseDataset":
        """Forget the fetched frames and derived views (the tables stay connected)."""
        for fetched in ("deals", "stage_history"):
            try:
                delattr(self, fetched)         # a cached_property: fetched again on next use
            except AttributeError:
                pass                           # not fetched yet
        super().refresh()
        return self

    def __repr__(self) -> str:
        return (f"DatabaseDataset({self.name!r} on {self.tables.backend}: stages {self.stages}, "
                f"currency {self.currency})")
