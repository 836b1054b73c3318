"""Load a data set folder into a validated :class:`~funnelkit.dataset.Dataset`.

``load(path)`` is strict: it collects every problem in the three files and raises one
:class:`~funnelkit.validation.DataError` naming file, line, column, value and reason for each.
``load(path, errors="report")`` drops the bad rows instead, keeps them (with reasons) in
``dataset.report.rejected`` and accounts for every row: read = loaded + rejected, per file.
Input files are only ever read.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml

from .contract import (DATABASE_FILE, DATES_ESTIMATED, MAX_AMOUNT, NOT_SET, CHANGE_COLUMNS, CHANGE_FIELDS, CHANGES_FILE, STATUS_FIELD, DEAL_COLUMNS,
                       DEALS_FILE, HISTORY_COLUMNS, HISTORY_FILE, PIPELINE_FILE, STATUSES, TABLE_SUFFIXES,
                       Pipeline)
from .dataset import Dataset, empty_changes
from .errors import ArgumentError
from .io import AliasRefused, InputRefused, check_input_file, read_settings_yaml
from .parsing import (INTERNAL_COLUMNS, arrow_text, currency_marks, import_readers, mark_agrees, nul_cells,
                      parse_amounts, parse_timestamps, partial_dates, read_text_table)
from .validation import DataError, FileAccount, Problem, ValidationReport, row_json

__all__ = ["load", "validate", "check_change_log"]

_LABEL_COLUMNS = ("source", "product", "owner")


def load(path: str | Path, errors: Literal["raise", "report"] = "raise") -> Dataset:
    """Load and validate the data set in folder ``path``.

    Parameters
    ----------
    path
        Folder holding ``deals``, ``stage_history`` (each ``.csv``, ``.xlsx`` or ``.parquet``) and
        ``pipeline.yml``.
    errors
        ``"raise"`` (default): any problem raises :class:`DataError` listing all of them.
        ``"report"``: bad rows are dropped and kept in ``dataset.report.rejected``.

    Returns
    -------
    Dataset
        ``deals`` (one row per deal, typed), ``stage_history`` (normalised: ordered, repeats merged,
        a first-stage entry added where a deal had none at its creation), ``pipeline`` and ``report``.

    Examples
    --------
    >>> ds = load("data/sample")                       # doctest: +SKIP
    >>> ds.deals.status.value_counts()                 # doctest: +SKIP
    """
    with _system_arrow_pool():
        ds = _load(path, errors)
    _return_memory()
    return ds


@contextmanager
def _system_arrow_pool():
    """While a folder is read and checked, Arrow allocates from the C allocator (Arrow's system
    pool) when its default pool is mimalloc, the PyPI wheels' default; a pool chosen otherwise
    (``ARROW_DEFAULT_MEMORY_POOL``, ``pyarrow.set_memory_pool``) is left as it is.

    mimalloc takes fresh memory in transparent huge pages, which the system zeroes 2 MB at a time,
    over and over as the reading's many short-lived columns come and go: at 1M deals a third of the
    load's CPU went to zeroing pages (``perf``: ``clear_page_erms``). With the system pool:
    ``fk.load`` 5.1 -> 3.5 s of CPU, peak memory 1,410 -> 1,280 MB with the metrics. The default
    pool is the process's: while a load runs, other threads' Arrow allocations come from the system
    pool too. The columns the data set keeps hold their pool; mimalloc is the default again once the
    last running load ends (loads in several threads: the first swaps, the last swaps back).
    """
    import pyarrow as pa

    entered = False
    try:
        with _POOL_LOCK:
            if _POOL["loads"] == 0:
                pool = pa.default_memory_pool()
                _POOL["previous"] = pool if pool.backend_name == "mimalloc" else None
                if _POOL["previous"] is not None:
                    pa.set_memory_pool(pa.system_memory_pool())
            _POOL["loads"] += 1
            entered = True
        yield
    finally:
        if entered:
            with _POOL_LOCK:
                _POOL["loads"] -= 1
                if _POOL["loads"] == 0 and _POOL["previous"] is not None:
                    pa.set_memory_pool(_POOL["previous"])
                    _POOL["previous"] = None


_POOL_LOCK = threading.Lock()
#: The running loads, and the default pool the first of them swapped out (None: none swapped).
_POOL: dict = {"loads": 0, "previous": None}


def _load(path: str | Path, errors: Literal["raise", "report"]) -> Dataset:
    if errors not in ("raise", "report"):
        raise ArgumentError("errors must be 'raise' or 'report'")
    path = Path(path)
    report = ValidationReport(path=str(path))
    if path.is_file():
        raise DataError([Problem(str(path), None, None, None,
                                 "this is a file: give the data set folder that holds deals.csv, "
                                 f"stage_history.csv and pipeline.yml (here: {path.parent})")], path)
    if not path.is_dir():
        raise DataError([Problem(str(path), None, None, None,
                                 "data set folder not found (expected a folder with deals.csv, "
                                 "stage_history.csv and pipeline.yml)")], path)

    if (path / DATABASE_FILE).is_file():
        return _database_dataset(path, errors)

    pipeline, fatal = _read_pipeline(path)
    # The stage history is read, and its cells checked, in a second thread while the deals are read
    # and checked (Arrow's reading and parsing let go of the GIL): what needs the deals waits for them.
    # The readers' modules are imported first, here: a module imported by two threads at once can be
    # seen half initialised (openpyxl's was).
    import_readers(f for f in (_find_table(path, stem) for stem in (DEALS_FILE, HISTORY_FILE, CHANGES_FILE)) if f)
    ids_known: Future = Future()    # the deals' ids, (codes, distinct), or None: no deal checks
    with ThreadPoolExecutor(1, thread_name_prefix="funnelkit-load") as pool:
        deal_check = hist_job = None
        try:
            hist_job = _start(pool, _read_history, path, pipeline, ids_known)
            deals_raw, deals_name, f2 = _read_table(path, DEALS_FILE, DEAL_COLUMNS)
            has_changes = _find_table(path, CHANGES_FILE) is not None
            chg_raw, chg_name, f4 = (_read_table(path, CHANGES_FILE, CHANGE_COLUMNS, allow_no_rows=True)
                                     if has_changes else (None, "", []))
            if not (fatal or f2 or f4):
                deal_check = _check_deals(deals_raw, deals_name, pipeline, ids_known)
        finally:
            if not ids_known.done():
                ids_known.set_result(None)
        hist_raw, hist_name, f3, hist_cells = (hist_job.result() if hist_job is not None
                                               else _read_history(path, pipeline, ids_known))
    fatal += f2 + f3 + f4
    if fatal:
        # A missing file or column makes row checks meaningless: report these alone, in both modes.
        raise DataError(fatal, path)

    deals, deal_problems, deal_bad, deal_ids = deal_check
    hist, hist_problems, hist_bad = _check_history(hist_raw, hist_cells, deals, deal_bad,
                                                   deals_name, pipeline, deal_ids)
    problems = deal_problems + hist_problems
    if has_changes:
        chg, chg_problems, chg_bad = _check_changes(chg_raw, chg_name, deals, deal_bad, deals_name, pipeline)
        problems += chg_problems
    report.problems = problems
    if problems and errors == "raise":
        raise DataError(problems, path)

    report.accounts[deals_name] = FileAccount(deals_name, len(deals_raw), int((~deal_bad).sum()),
                                              int(deal_bad.sum()))
    report.accounts[hist_name] = FileAccount(hist_name, len(hist_raw), int((~hist_bad).sum()),
                                             int(hist_bad.sum()))
    tables = [(deals_name, deals_raw, deal_bad), (hist_name, hist_raw, hist_bad)]
    if has_changes:
        report.accounts[chg_name] = FileAccount(chg_name, len(chg_raw), int((~chg_bad).sum()),
                                                int(chg_bad.sum()))
        tables.append((chg_name, chg_raw, chg_bad))
    report.rejected = _rejected_rows(tables, problems)

    kept = ~deal_bad.to_numpy()
    deals = deals[kept].reset_index(drop=True)
    report.closed_without_amount = int((deals["status"].isin(["won", "lost"])
                                        & deals["amount"].isna()).sum())
    if DATES_ESTIMATED in deals.columns:
        report.dates_estimated = int(deals[DATES_ESTIMATED].sum())
    for col in _LABEL_COLUMNS:
        empty = deals[col].eq("")
        report.not_set[col] = int(empty.sum())
        deals[col] = deals[col].where(~empty, NOT_SET)
    # The deals are typed in a second thread while the history is normalised (which reads only
    # the deals' ids and creation times, taken out first).
    ids, created = deals["deal_id"].copy(), deals["created_at"].to_numpy(copy=True)
    with ThreadPoolExecutor(1, thread_name_prefix="funnelkit-load") as pool:
        finished = _start(pool, _finish_deals, deals)
        hist = hist[~hist_bad.to_numpy()].reset_index(drop=True)
        # Each entry's deal as its row among the kept deals (an entry of a rejected deal is rejected).
        deal_rows = (np.cumsum(kept) - 1)[hist["_deal"].to_numpy()]
        # Each kept deal's place in the order of the ids (the history thread sorted the distinct ids).
        rank = hist_cells.id_rank[deal_ids[0][kept]]
        history, added, merged = _normalise_history(hist, deal_rows, ids, created, pipeline, rank)
        deals = finished.result() if finished is not None else _finish_deals(deals)
    report.entries_added, report.repeats_merged = added, merged
    changes = empty_changes()
    if has_changes:
        changes = _finish_changes(chg[~chg_bad.to_numpy()])
        report.earliest_known = _earliest_known(changes, deals)
    return Dataset(deals=deals, stage_history=history, pipeline=pipeline, report=report,
                   name=pipeline.name, path=path, deal_changes=changes)


def _start(pool: ThreadPoolExecutor, fn, *args) -> Future | None:
    """``fn(*args)`` started in ``pool``'s thread; None when no thread can start (the interpreter is
    shutting down, e.g. a load in an ``atexit`` handler): the caller then runs it itself."""
    try:
        return pool.submit(fn, *args)
    except RuntimeError:
        return None


def _return_memory() -> None:
    """Give the memory the reading and checking freed back to the system: the C allocator (where
    the load's Arrow columns come from too, :func:`_system_arrow_pool`) and Arrow's default pool keep
    freed pages for reuse, hundreds of MB after a million-deal load (969 -> 347 MB resident on the
    1M sample when it was written), which the metrics that follow cannot use from another allocator."""
    import ctypes
    import ctypes.util

    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):
        pass
    try:
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)   # glibc only
    except (OSError, AttributeError, TypeError):
        pass


def validate(path: str | Path) -> ValidationReport:
    """Check a data set without raising: the report lists every problem (empty when clean).

    The optional ``targets.csv`` of the folder is checked too: its problems join the report's.
    """
    try:
        report = load(path, errors="report").report
    except DataError as exc:
        report = ValidationReport(path=str(path))
        report.problems = exc.problems
    report.problems += _target_problems(Path(path))
    return report


def _database_dataset(folder: Path, errors: Literal["raise", "report"]) -> Dataset:
    """The data set a folder's ``database.yml`` points at; a folder holding both tables and a
    ``database.yml`` is refused (which one is the data set would be a guess)."""
    tables = [name for name in (DEALS_FILE, HISTORY_FILE, CHANGES_FILE) if _find_table(folder, name)]
    if tables:
        raise DataError([Problem(str(folder / DATABASE_FILE), None, None, None,
                                 f"the folder also holds {', '.join(tables)} tables: a data set folder holds its "
                                 "tables or a database.yml pointing at them, not both")], folder)
    from .engine.connect import connect_folder
    return connect_folder(folder, errors=errors)


def _target_problems(folder: Path) -> list[Problem]:
    """The problems of the folder's ``targets.csv`` (none when the folder has no such file)."""
    from .targets import TARGETS_FILE, read_targets
    file = folder / TARGETS_FILE
    if not file.is_file():
        return []
    try:
        read_targets(file)
    except DataError as exc:
        return exc.problems
    return []


# --------------------------------------------------------------------------------------------
# Reading

def _read_pipeline(folder: Path) -> tuple[Pipeline, list[Problem]]:
    file = folder / PIPELINE_FILE
    name = str(file)
    if not file.exists():
        return Pipeline(("?",)), [Problem(name, None, None, None, "file is missing")]
    if file.is_dir():
        return Pipeline(("?",)), [Problem(name, None, None, None, "not a file (a folder?)")]
    try:
        raw = read_settings_yaml(file)
    except InputRefused as exc:
        return Pipeline(("?",)), [Problem(name, None, None, None, str(exc))]
    except AliasRefused as exc:
        return Pipeline(("?",)), [Problem(name, exc.problem_mark.line + 1, None, None, str(exc))]
    except OSError as exc:
        return Pipeline(("?",)), [Problem(name, None, None, None, f"cannot read the file: {exc.strerror}")]
    except UnicodeDecodeError as exc:
        return Pipeline(("?",)), [Problem(name, None, None, None,
                                          f"not UTF-8 text (byte {exc.start}: {exc.reason})")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return Pipeline(("?",)), [Problem(name, line, None, None, f"not valid YAML: {exc}")]
    if raw is None:
        return Pipeline(("?",)), [Problem(name, None, None, None, "file is empty")]
    pipeline, issues = Pipeline.from_dict(raw)
    if pipeline is None:
        return Pipeline(("?",)), [Problem(name, None, key, value, reason) for key, value, reason in issues]
    return pipeline, []


def _find_table(folder: Path, stem: str) -> Path | None:
    for suffix in TABLE_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    return None


def _read_table(folder: Path, stem: str, required: tuple[str, ...], *,
                allow_no_rows: bool = False) -> tuple[pd.DataFrame, str, list[Problem]]:
    file = _find_table(folder, stem)
    if file is None:
        return pd.DataFrame(), f"{folder / stem}.csv", [Problem(
            f"{folder / stem}.csv", None, None, None,
            f"file is missing (also looked for {stem}.parquet and {stem}.xlsx)")]
    name = str(file)
    try:
        check_input_file(file)       # before opening: a device or FIFO would fill memory or hang
        df = read_text_table(file, arrow_strings=True, with_lines=True)
    except InputRefused as exc:
        return pd.DataFrame(), name, [Problem(name, None, None, None, str(exc))]
    except UnicodeDecodeError as exc:
        return pd.DataFrame(), name, [Problem(
            name, None, None, None,
            f"not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8, or import it with "
            "'funnelkit import', which detects the encoding")]
    except pd.errors.EmptyDataError:
        return pd.DataFrame(), name, [Problem(name, 1, None, None, "file is empty (no header row)")]
    except pd.errors.ParserError as exc:
        return pd.DataFrame(), name, [Problem(name, None, None, None, f"not a readable table: {exc}")]
    except Exception as exc:  # corrupt xlsx / parquet
        return pd.DataFrame(), name, [Problem(name, None, None, None, f"cannot read the file: {exc}")]
    problems = [Problem(name, 1, col, None, "required column is missing")
                for col in required if col not in df.columns]
    dupes = pd.Index(df.columns)[pd.Index(df.columns).duplicated()].unique()
    problems += [Problem(name, 1, col, None, "column appears more than once in the header") for col in dupes]
    if not problems and df.empty and not allow_no_rows:
        problems.append(Problem(name, 2, None, None, "file has a header but no rows"))
    # read_text_table gave each row its line in the file (_line; the header is line 1) and its
    # number of fields (_fields).
    return df, name, problems


# --------------------------------------------------------------------------------------------
# Checks: each returns the typed table, its problems and a boolean "row is bad" mask.

class _Collector:
    def __init__(self, file: str, lines: pd.Series):
        self.file, self.lines = file, lines
        self.problems: list[Problem] = []
        self.bad = pd.Series(False, index=lines.index)
        #: Rows whose cells cannot be trusted (wrong field count): named once, not checked further.
        self.skip = pd.Series(False, index=lines.index)

    def sorted(self) -> list[Problem]:
        return sorted(self.problems, key=lambda p: p.line or 0)

    def add(self, mask: pd.Series, column: str, values: pd.Series, reason) -> None:
        """Record a problem on every row where ``mask`` holds. ``reason`` may be a Series of texts,
        or a callable returning one (built only when some row has the problem: saves seconds on
        millions of clean rows)."""
        mask = mask.fillna(False).astype(bool) & ~self.skip
        if not mask.any():
            return
        self.bad |= mask
        idx = mask[mask].index
        if callable(reason):
            reason = reason()
        reasons = reason[idx] if isinstance(reason, pd.Series) else [reason] * len(idx)
        for line, value, why in zip(self.lines[idx], values[idx], reasons):
            self.problems.append(Problem(self.file, int(line), column, value, why))


def _check_field_counts(c: "_Collector", raw: pd.DataFrame) -> None:
    """A CSV row with more or fewer fields than the header: its cells may sit in the wrong columns."""
    width = sum(1 for col in raw.columns if col not in INTERNAL_COLUMNS)
    n = raw["_fields"]
    nothing = pd.Series("", index=raw.index)
    c.add(n > width, None, nothing, lambda: "the row has " + n.astype(str) + f" fields but the header has "
          f"{width} (an unquoted comma inside a cell?)")
    c.add(n < width, None, nothing, lambda: "the row has " + n.astype(str) + f" fields but the header has "
          f"{width} (cells missing at the end of the row?)")
    c.skip = n != width


def _check_cells(c: "_Collector", raw: pd.DataFrame) -> None:
    """Problems any cell can have: a NUL byte, an XLSX formula whose value was never saved."""
    for col in raw.columns:
        if col in INTERNAL_COLUMNS:
            continue
        text = raw[col]
        c.add(nul_cells(text), col, text,
              "the value contains a NUL byte (\\0): invisible in reports, it would make two values that "
              "look the same differ (or a label merge with another); remove it")
    formulas = raw.attrs.get("formulas_without_value", [])
    for line, col, formula in formulas:
        c.add(raw["_line"].eq(line), col, pd.Series(formula, index=raw.index),
              "a formula cell with no saved value (the workbook was written by a program, not saved by "
              "a spreadsheet): open and save it in a spreadsheet, or export it as CSV")
    if formulas:    # the row's cells are not what the sheet shows: named once, not checked further
        c.skip = c.skip | raw["_line"].isin([line for line, _, _ in formulas])


def _check_deals(raw: pd.DataFrame, file: str, pipeline: Pipeline, ids: Future | None = None):
    """The deals checked: ``(deals, problems, bad, ids)``; ``ids`` is the factorisation of the
    (stripped) deal ids, ``(codes, distinct ids)``, which the history check reuses (given to the
    ``ids`` future as soon as known, for the history's reading thread)."""
    c = _Collector(file, raw["_line"])
    _check_field_counts(c, raw)
    _check_cells(c, raw)
    deals = raw.copy()
    deal_id = raw["deal_id"].str.strip()
    c.add(deal_id.eq(""), "deal_id", raw["deal_id"], "deal_id is empty")
    # One hashing of the ids (here and for the history check): duplicates are found among their
    # codes. A row with a wrong field count is no deal (its cells may be shifted): a later row with
    # the same id is not its duplicate.
    codes, distinct = pd.factorize(deal_id)
    if ids is not None:
        ids.set_result((codes, distinct))
    no_deal = c.skip.to_numpy(dtype=bool) | deal_id.eq("").to_numpy(dtype=bool, na_value=False)
    counted = np.where(no_deal, -1, codes)
    dup = pd.Series(pd.Series(counted).duplicated(keep="first").to_numpy() & (counted >= 0), index=raw.index)
    if dup.any():
        first_line = raw["_line"].groupby(deal_id.where(~c.skip)).transform("first")
        c.add(dup, "deal_id", raw["deal_id"],
              "duplicate deal_id (first seen on line " + first_line.astype(str) + ")")
    status = raw["status"].str.strip().str.lower()
    c.add(~status.isin(STATUSES), "status", raw["status"],
          "unknown status (expected open, won or lost, in any case)")
    created, bad_created = parse_timestamps(raw["created_at"], pipeline.date_format)
    c.add(raw["created_at"].str.strip().eq(""), "created_at", raw["created_at"], "created_at is required")
    _add_bad_dates(c, raw, "created_at", bad_created, pipeline)
    closed, bad_closed = parse_timestamps(raw["closed_at"], pipeline.date_format)
    _add_bad_dates(c, raw, "closed_at", bad_closed, pipeline)
    has_closed = raw["closed_at"].str.strip().ne("")
    closed_status = status.isin(["won", "lost"])
    c.add(closed_status & ~has_closed, "closed_at", raw["closed_at"],
          lambda: "a " + status + " deal needs closed_at")
    c.add(status.eq("open") & has_closed, "closed_at", raw["closed_at"],
          "an open deal must not have closed_at (won/lost deals have one)")
    flagged = _dates_estimated(c, raw)
    c.add((closed < created) & ~flagged, "closed_at", raw["closed_at"],
          lambda: "closed_at is before created_at (" + raw["created_at"].str.strip() + "); if the deal was "
          f"entered into the CRM after it closed, set {DATES_ESTIMATED}=true")
    # A flagged deal closed before its recorded creation: the close (the signing) is the real event,
    # so the deal is taken as created then (docs/data-contract.md, dates_estimated).
    created = created.where(~(flagged & (closed < created)), closed)
    amount, bad_amount = parse_amounts(raw["amount"])
    c.add(bad_amount, "amount", raw["amount"], "cannot parse the amount as a number")
    c.add(amount < 0, "amount", raw["amount"], lambda: "amount is negative" + pd.Series(np.where(
        raw["amount"].str.strip().str.startswith("("), " (parentheses are accounting notation for a negative amount)", ""),
        index=raw.index, dtype=object))
    if not pipeline.allow_missing_amounts:
        c.add(closed_status & raw["amount"].str.strip().eq(""), "amount", raw["amount"],
              lambda: "amount is empty on a " + status + " deal (empty is allowed only for open deals, "
              "unless pipeline.yml says allow_missing_amounts: true)")
    if "currency" in raw.columns:
        # Optional column: one ISO code per deal (empty = the pipeline's currency).
        cur = raw["currency"].str.strip().str.upper()
        c.add(cur.ne("") & ~cur.str.fullmatch(r"[A-Z]{3}"), "currency", raw["currency"],
              "currency must be a 3-letter ISO 4217 code such as EUR")
        deals["currency"] = cur.where(cur.ne(""), pipeline.currency)
    _check_amounts(c, raw, amount, deals["currency"] if "currency" in raw.columns
                   else pd.Series(pipeline.currency, index=raw.index))
    if "expected_close_date" in raw.columns:
        # Optional column: the expected close date of an open deal (ignored on closed deals).
        expected, bad_expected = parse_timestamps(raw["expected_close_date"], pipeline.date_format)
        _add_bad_dates(c, raw, "expected_close_date", bad_expected, pipeline)
        deals["expected_close_date"] = expected
    for col in ("forecast_category", "lost_reason"):
        if col in raw.columns:
            deals[col] = raw[col].str.strip()
    if DATES_ESTIMATED in raw.columns:
        deals[DATES_ESTIMATED] = flagged.to_numpy()
    deals["deal_id"] = deal_id
    deals["status"] = status
    deals["created_at"] = created
    deals["closed_at"] = closed
    deals["amount"] = amount
    for col in _LABEL_COLUMNS:
        deals[col] = raw[col].str.strip()
    return deals, c.sorted(), c.bad, (codes, distinct)


def _dates_estimated(c, raw: pd.DataFrame) -> pd.Series:
    """The optional ``dates_estimated`` column as booleans (``true``/``false``/empty, any case)."""
    if DATES_ESTIMATED not in raw.columns:
        return pd.Series(False, index=raw.index)
    text = raw[DATES_ESTIMATED].str.strip().str.lower()
    c.add(~text.isin(["", "true", "false"]), DATES_ESTIMATED, raw[DATES_ESTIMATED],
          "dates_estimated must be true, false or empty")
    return text.eq("true")


def _read_history(folder: Path, pipeline: Pipeline, deal_ids: Future):
    """The stage history read, and its own cells checked when it could be read:
    ``(raw, name, fatal problems, cells)`` (``cells`` None when the file has fatal problems). Each
    entry's position among the deal ids is found here too, once ``deal_ids`` holds them."""
    raw, name, fatal = _read_table(folder, HISTORY_FILE, HISTORY_COLUMNS)
    if fatal:
        return raw, name, fatal, None
    cells = _history_cells(raw, name, pipeline)
    ids = deal_ids.result()
    if ids is not None:
        cells.positions = _positions(cells.deal_id, ids[1])
        cells.id_rank = _sort_ranks(ids[1])
    return raw, name, fatal, cells


@dataclass
class _HistoryCells:
    """What the history's checks find without the deals: the parsed cells, the problems of the
    row's shape already recorded in ``c``."""
    c: "_Collector"
    deal_id: pd.Series
    stage: pd.Series
    stage_index: pd.Series
    entered: pd.Series
    bad_entered: pd.Series
    #: Each entry's position among the deals' distinct ids (-1: not among them), once known.
    positions: np.ndarray | None = None
    #: Each distinct deal id's place in their sorted order (for the normalisation), once known.
    id_rank: np.ndarray | None = None


def _history_cells(raw: pd.DataFrame, file: str, pipeline: Pipeline) -> _HistoryCells:
    c = _Collector(file, raw["_line"])
    _check_field_counts(c, raw)
    _check_cells(c, raw)
    stage = raw["stage"].str.strip()
    # Each distinct stage name looked up once (a handful), then spread by its codes (NaN: unknown).
    stage_codes, stage_names = pd.factorize(stage)
    stage_pos = {s: i for i, s in enumerate(pipeline.stages)}
    index = pd.Series(np.append([stage_pos.get(s, np.nan) for s in stage_names], np.nan)[stage_codes],
                      index=raw.index, dtype="float64")
    entered, bad_entered = parse_timestamps(raw["entered_at"], pipeline.date_format)
    return _HistoryCells(c, raw["deal_id"].str.strip(), stage, index, entered, bad_entered)


def _check_history(raw: pd.DataFrame, cells: _HistoryCells, deals: pd.DataFrame, deal_bad: pd.Series,
                   deals_file: str, pipeline: Pipeline, deal_ids: tuple[np.ndarray, pd.Index]):
    """The history checked against the deals, its problems recorded in the order of its columns."""
    c, deal_id, index, entered = cells.c, cells.deal_id, cells.stage_index, cells.entered
    # One hash lookup per entry (not three isin passes and a merge): position among all deal ids,
    # and the deal's created_at / closed_at from its first valid row (NaT where it has none).
    deal_codes, all_ids = deal_ids            # pd.factorize(deals["deal_id"]), from _check_deals
    valid_rows = np.flatnonzero((~deal_bad & deals["deal_id"].ne("")).to_numpy())
    seen, first = np.unique(deal_codes[valid_rows], return_index=True)
    known_row = np.full(len(all_ids), -1, dtype="int64")
    known_row[seen] = valid_rows[first]
    known = pd.DataFrame({col: np.append(deals[col].to_numpy(dtype="datetime64[ns]"),
                                         np.datetime64("NaT", "ns"))[known_row]
                          for col in ("created_at", "closed_at")})
    pos = cells.positions
    in_all = pd.Series(pos >= 0, index=raw.index)
    # A sentinel after the last id: position -1 (unknown id) reads False / NaT.
    in_known = pd.Series(np.append(known_row >= 0, False)[pos], index=raw.index)
    c.add(deal_id.eq(""), "deal_id", raw["deal_id"], "deal_id is empty")
    unknown = ~in_all & deal_id.ne("")
    c.add(unknown, "deal_id", raw["deal_id"], f"stage entry for a deal not in {Path(deals_file).name}")
    rejected_deal = in_all & ~in_known
    c.add(rejected_deal, "deal_id", raw["deal_id"],
          f"the deal's own row in {Path(deals_file).name} is invalid (see the problems there)")
    c.add(index.isna(), "stage", raw["stage"],
          "stage not in pipeline.yml (stages: " + ", ".join(pipeline.stages) + ")")
    c.add(raw["entered_at"].str.strip().eq(""), "entered_at", raw["entered_at"], "entered_at is required")
    _add_bad_dates(c, raw, "entered_at", cells.bad_entered, pipeline)
    joined = pd.DataFrame({col: np.append(known[col].to_numpy(), np.datetime64("NaT", "ns"))[pos]
                           for col in ("created_at", "closed_at")}, index=raw.index)
    c.add(entered < joined["created_at"], "entered_at", raw["entered_at"],
          lambda: "stage entry before the deal's created_at (" + _when(joined["created_at"]) + ")")
    c.add(entered > joined["closed_at"], "entered_at", raw["entered_at"],
          lambda: "stage entry after the deal's closed_at (" + _when(joined["closed_at"]) + ")")
    # _deal: the row of deals.csv (its first valid one) the entry belongs to, -1 for none: the
    # normalisation groups and orders by it instead of hashing the ids again.
    hist = pd.DataFrame({"deal_id": deal_id, "stage": cells.stage, "stage_index": index,
                         "entered_at": entered, "_line": raw["_line"],
                         "_deal": np.append(known_row, -1)[pos]}, index=raw.index)
    return hist, c.sorted(), c.bad


def _sort_ranks(distinct: pd.Index) -> np.ndarray:
    """Each value's place in the sorted order of ``distinct`` (values without repeats)."""
    rank = np.empty(len(distinct), dtype="int64")
    rank[pd.Index(distinct).argsort()] = np.arange(len(distinct))
    return rank


def _positions(values: pd.Series, distinct: pd.Index) -> np.ndarray:
    """The position of each value in ``distinct`` (values without repeats), -1 where absent. On
    pyarrow-backed text one Arrow hash lookup (no Python string per value); else each distinct
    value is looked up once, not once per row."""
    distinct = pd.Index(distinct)
    if arrow_text(values) and arrow_text(distinct):
        import pyarrow as pa
        import pyarrow.compute as pc

        text = pa.array(values.array)
        found = pc.index_in(text, value_set=pa.array(distinct.array).cast(text.type))
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype("int64")
    codes, uniques = pd.factorize(values)
    return np.append(pd.Index(distinct).get_indexer(uniques), -1)[codes]


def _check_changes(raw: pd.DataFrame, file: str, deals: pd.DataFrame, deal_bad: pd.Series,
                   deals_file: str, pipeline: Pipeline):
    """The optional change log: every row a dated value of one field of a known, valid deal, between
    its creation and its close; each deal's last value of a field equals the deals.csv value."""
    c = _Collector(file, raw["_line"])
    _check_field_counts(c, raw)
    _check_cells(c, raw)
    deals_name = Path(deals_file).name
    deal_id = raw["deal_id"].str.strip()
    valid = deals.loc[~deal_bad.to_numpy() & deals["deal_id"].ne("").to_numpy()].drop_duplicates("deal_id")
    valid = valid.set_index("deal_id")
    in_all = deal_id.isin(deals["deal_id"])
    c.add(deal_id.eq(""), "deal_id", raw["deal_id"], "deal_id is empty")
    c.add(~in_all & deal_id.ne(""), "deal_id", raw["deal_id"], f"change of a deal not in {deals_name}")
    c.add(in_all & ~deal_id.isin(valid.index), "deal_id", raw["deal_id"],
          f"the deal's own row in {deals_name} is invalid (see the problems there)")
    field_ = raw["field"].str.strip()
    c.add(~field_.isin(CHANGE_FIELDS), "field", raw["field"],
          "unknown field (expected amount, expected_close_date, forecast_category or status)")
    at, bad_at = parse_timestamps(raw["changed_at"], pipeline.date_format)
    fmt = _date_hint(pipeline)
    c.add(raw["changed_at"].str.strip().eq(""), "changed_at", raw["changed_at"], "changed_at is required")
    c.add(bad_at, "changed_at", raw["changed_at"], f"cannot parse the date ({fmt})")
    created = deal_id.map(valid["created_at"])
    closed = deal_id.map(valid["closed_at"])
    c.add(at < created, "changed_at", raw["changed_at"],
          lambda: "change before the deal's created_at (" + _when(created) + ")")
    c.add(at > closed, "changed_at", raw["changed_at"],
          lambda: "change after the deal's closed_at (" + _when(closed) + "): a closed deal keeps the "
          f"values it closed with, which are its values in {deals_name}")
    value = raw["value"].str.strip()
    is_status = field_.eq(STATUS_FIELD)
    value = value.where(~is_status, value.str.lower())
    c.add(is_status & ~value.isin(STATUSES), "value", raw["value"],
          "unknown status (expected open, won or lost, in any case)")
    c.add(is_status & at.eq(closed) & value.ne(deal_id.map(valid["status"]).astype(object)), "value", raw["value"],
          lambda: "a status change at the deal's closed_at must be its final close, " + deal_id.map(valid["status"])
          .astype(str) + f" as in {deals_name}")
    is_amount, is_date = field_.eq("amount"), field_.eq("expected_close_date")
    amount, bad_amount = parse_amounts(value.where(is_amount, ""))
    c.add(bad_amount, "value", raw["value"], "cannot parse the amount as a number")
    c.add(amount < 0, "value", raw["value"], "amount is negative")
    date, bad_date = parse_timestamps(value.where(is_date, ""), pipeline.date_format)
    c.add(bad_date, "value", raw["value"], f"cannot parse the date ({fmt})")
    chg = pd.DataFrame({"deal_id": deal_id, "changed_at": at, "field": field_, "value": value,
                        "amount": amount, "date": date, "_line": raw["_line"]}, index=raw.index)
    ok = ~c.bad
    key = chg.loc[ok, ["deal_id", "field", "changed_at"]]
    twice = key.duplicated(keep="first")
    if twice.any():
        first_line = chg.loc[ok, "_line"].groupby([key["deal_id"], key["field"], key["changed_at"]]).transform("first")
        c.add(twice.reindex(raw.index, fill_value=False), "changed_at", raw["changed_at"],
              lambda: "a second change of this field of this deal at the same instant (first on line "
              + first_line.reindex(raw.index).astype("Int64").astype(str) + ")")
    _check_status_sequence(c, chg, raw["value"], valid, deals_name)
    _check_last_values(c, chg[~c.bad], raw["value"], valid, deals_name)
    return chg, c.sorted(), c.bad


def _check_status_sequence(c: "_Collector", chg: pd.DataFrame, raw_values: pd.Series, valid: pd.DataFrame,
                           deals_name: str) -> None:
    """A deal's status changes, then its final close from deals.csv, must alternate close (won/lost)
    and reopening (open), starting with a close (a deal is open from its creation) and ending in its
    deals.csv state. A deal's status changes are kept or rejected together: a partial sequence would
    invent closes or reopenings."""
    is_status = chg["field"].eq(STATUS_FIELD)
    if not is_status.any():
        return
    broken = chg.loc[is_status & c.bad, "deal_id"]
    rows = chg.loc[is_status & ~c.bad & ~chg["deal_id"].isin(broken), ["deal_id", "changed_at", "value", "_line"]]
    if len(rows):
        index, why = _status_sequence_problems(rows, valid, deals_name)
        c.add(pd.Series(c.lines.index.isin(index), index=c.lines.index), "value", raw_values,
              pd.Series(why, index=index).reindex(c.lines.index))
    first_bad = chg.loc[is_status & c.bad].groupby("deal_id")["_line"].min()
    rest = is_status & ~c.bad & chg["deal_id"].isin(first_bad.index)
    c.add(rest, "value", raw_values, lambda: "rejected with the deal's other status changes (line "
          + chg["deal_id"].map(first_bad).astype("Int64").astype(str) + " has a problem): a deal's status "
          "changes are kept or rejected together")


def _status_sequence_problems(rows: pd.DataFrame, valid: pd.DataFrame, deals_name: str) -> tuple[np.ndarray, np.ndarray]:
    """The status rows (index labels) that break the alternation of closes and reopenings, with reasons."""
    final = valid.loc[valid.index.isin(rows["deal_id"]) & valid["status"].ne("open").to_numpy()]
    final = pd.DataFrame({"deal_id": final.index, "changed_at": final["closed_at"].to_numpy(),
                          "value": final["status"].astype(str).to_numpy(), "_line": 0, "_row": -1})
    ev = pd.concat([rows.assign(_row=rows.index)] + ([final] if len(final) else []), ignore_index=True)
    # The final close after a log row at the same instant (that row repeats it: the final is dropped).
    ev = ev.astype({"deal_id": object, "value": object}).assign(_final=ev["_row"].lt(0))
    ev = ev.sort_values(["deal_id", "changed_at", "_final"], kind="stable").reset_index(drop=True)
    is_final = ev["_row"].to_numpy() < 0
    deal = ev["deal_id"].to_numpy(dtype=object)
    same_deal = np.r_[False, deal[1:] == deal[:-1]]
    at = ev["changed_at"].to_numpy(dtype="datetime64[ns]")
    # A status change at closed_at is the final close itself (the loader checked it agrees).
    repeated_final = is_final & same_deal & np.r_[False, at[1:] == at[:-1]]
    ev, is_final = ev[~repeated_final].reset_index(drop=True), is_final[~repeated_final]
    deal = ev["deal_id"].to_numpy(dtype=object)
    same_deal = np.r_[False, deal[1:] == deal[:-1]]
    last = np.r_[deal[1:] != deal[:-1], True]
    closes = ev["value"].to_numpy(dtype=object) != "open"
    was_closed = same_deal & np.r_[False, closes[:-1]]
    repeat = closes == was_closed        # a close of a closed deal, or a reopening of an open one
    prev_line = pd.Series(np.r_[0, ev["_line"].to_numpy()[:-1]], dtype="int64").astype(str).astype(object)
    why = np.where(closes, ("a close of a deal already closed (by line " + prev_line + "): a reopening (open) "
                            "must come between two closes").to_numpy(),
                   np.where(same_deal, ("a reopening of a deal already open (reopened on line " + prev_line + ")").to_numpy(),
                            "a reopening of a deal that was never closed (a deal is open from its creation: its "
                            "first status change is a close, won or lost)"))
    # The last status change must lead to deals.csv's state: before a final close comes a reopening,
    # and an open deal's last status change is a reopening.
    export = pd.Series(deal).map(valid["status"]).astype(str).astype(object)
    disagrees = np.r_[(repeat & is_final)[1:], False] | (last & ~is_final & closes & (export == "open").to_numpy())
    why = np.where(disagrees, ("the deal's last status change (" + ev["value"].astype(str).astype(object)
                               + f") disagrees with {deals_name} status (" + export + f"): {deals_name} holds the "
                               "final state, so the last status change of a deal is a reopening (open), before its "
                               "final close when it is closed").to_numpy(), why)
    flagged = (repeat | disagrees) & ~is_final
    return ev["_row"].to_numpy()[flagged], why[flagged]


def _check_last_values(c: "_Collector", chg: pd.DataFrame, raw_values: pd.Series, valid: pd.DataFrame,
                       deals_name: str) -> None:
    """Each deal's last change of a field must give its deals.csv value (the value at export)."""
    last = chg.sort_values(["changed_at", "_line"], kind="stable").drop_duplicates(["deal_id", "field"], keep="last")
    for field_, column in (("amount", "amount"), ("expected_close_date", "date"), ("forecast_category", "value")):
        if field_ not in valid.columns:
            continue
        rows = last[last["field"].eq(field_)]
        if field_ == "expected_close_date":
            # Only open deals have an expected close date in deals.csv.
            rows = rows[rows["deal_id"].map(valid["status"]).eq("open").to_numpy()]
        export = rows["deal_id"].map(valid[field_])
        mine = rows[column]
        if field_ == "forecast_category":
            export, mine = export.fillna(""), mine.fillna("")
        same = (mine == export) | (mine.isna() & export.isna())
        wrong = ~same
        if not wrong.any():
            continue
        shown = export.astype(object).where(export.notna(), "empty").astype(str)
        mask = pd.Series(False, index=c.lines.index)
        mask[wrong[wrong].index] = True
        reason = pd.Series("", index=c.lines.index)
        reason[wrong[wrong].index] = (f"the deal's last {field_} change disagrees with {deals_name} "
                                      f"{field_} (" + shown[wrong] + f"): {deals_name} holds the value at "
                                      "export, which the last change must give")
        c.add(mask, "value", raw_values, reason)


def _add_bad_dates(c: "_Collector", raw: pd.DataFrame, column: str, bad: pd.Series, pipeline: Pipeline) -> None:
    if not bad.any():       # partial dates are bad ones: nothing to name (the usual case, no regex)
        return
    partial = partial_dates(raw[column], pipeline.date_format)
    c.add(partial, column, raw[column],
          "a partial date (a year or a year and month, not a day); give the full date, or set "
          "date_format in pipeline.yml if every date has this shape")
    c.add(bad & ~partial, column, raw[column], f"cannot parse the date ({_date_hint(pipeline)})")


def _check_amounts(c: "_Collector", raw: pd.DataFrame, amount: pd.Series, currency: pd.Series) -> None:
    """Amounts too large to be real, and currency marks that are not the deal's currency."""
    c.add(amount >= MAX_AMOUNT, "amount", raw["amount"],
          f"amount is {MAX_AMOUNT:,.0f} or more: too large to be a deal amount (a unit or typing error?)")
    marks = currency_marks(raw["amount"])
    marked = marks.ne("")
    if marked.any():
        pairs = pd.DataFrame({"mark": marks[marked], "currency": currency[marked]})
        agree = pd.Series([mark_agrees(m, cur) for m, cur in zip(pairs["mark"], pairs["currency"])],
                          index=pairs.index)
        wrong = pd.Series(False, index=raw.index)
        wrong[pairs.index] = ~agree
        source = "its currency column" if "currency" in raw.columns else "pipeline.yml"
        c.add(wrong, "amount", raw["amount"],
              lambda: "the amount's currency mark (" + marks.astype(str) + ") is not the deal's currency ("
              + currency.astype(str) + f", from {source}): convert the amount, or give the deal its "
              "currency in a currency column")


def _when(ts: pd.Series) -> pd.Series:
    """Timestamps as text for messages, the same way on every row: the date, plus the time if any."""
    return ts.dt.strftime("%Y-%m-%d %H:%M:%S").str.replace(" 00:00:00", "", regex=False)


def _date_hint(pipeline: Pipeline) -> str:
    if pipeline.date_format:
        return f"expected the format {pipeline.date_format!r} from pipeline.yml"
    return "expected ISO 8601 such as 2024-03-31 or 2024-03-31T14:05:00"


def _rejected_rows(tables, problems: list[Problem]) -> pd.DataFrame:
    by_key: dict[tuple[str, int], list[str]] = {}
    for p in problems:
        by_key.setdefault((p.file, p.line), []).append(
            f"{p.column}: {p.reason}" if p.column else p.reason)
    rows = []
    for name, raw, bad in tables:
        for rec in raw[bad.to_numpy()].to_dict("records"):
            rows.append({"file": name, "line": rec["_line"],
                         "reasons": "; ".join(by_key.get((name, rec["_line"]), [])),
                         "row": row_json(rec)})
    return pd.DataFrame(rows, columns=["file", "line", "reasons", "row"])


# --------------------------------------------------------------------------------------------
# Typing and normalisation of the valid rows

def _plain_text(s: pd.Series) -> pd.Series:
    """Text in the dtype pandas' own CSV reader gives text (object on pandas 2, ``str`` on
    pandas 3), whichever reader produced it (pyarrow-backed from the fast CSV path, object from
    XLSX, Parquet or the csv module), so the loaded tables do not depend on the input format.

    To object: each distinct value is converted once (factorize), then spread by its codes, far
    cheaper than converting millions of cells one by one."""
    target = pd.Series([], dtype=str).dtype
    if s.dtype == object and target != object:
        return s.astype(target)
    if not isinstance(s.dtype, pd.StringDtype) or s.dtype == target:
        return s
    if target != object:
        return s.astype(target)
    codes, uniques = pd.factorize(s)
    if (codes < 0).any():
        return s.astype(object)
    return pd.Series(np.asarray(uniques, dtype=object)[codes], index=s.index, name=s.name)


def _finish_deals(deals: pd.DataFrame) -> pd.DataFrame:
    deals = deals.drop(columns=["_line", "_fields"])
    for col in deals.columns:
        deals[col] = _plain_text(deals[col])
    deals["status"] = pd.Categorical(deals["status"], categories=list(STATUSES))
    for col in _LABEL_COLUMNS + (("currency",) if "currency" in deals.columns else ()):
        deals[col] = deals[col].astype("category")
    front = list(DEAL_COLUMNS)
    return deals[front + [c for c in deals.columns if c not in front]]


def check_change_log(raw: pd.DataFrame, name: str, deals: pd.DataFrame, pipeline: Pipeline,
                     deals_name: str = "deals") -> tuple[pd.DataFrame, list[Problem], pd.Series, dict[str, int]]:
    """Check a change log given as text (``deal_id, changed_at, field, value``, ``_line`` and ``_fields``,
    the row's number and count of cells, as :func:`funnelkit.parsing.read_text_table` gives them) against
    loaded, valid ``deals``: the loader's rules for ``deal_changes.csv``, for a log read from elsewhere
    (a database table: :func:`funnelkit.connect`).

    Returns
    -------
    (changes, problems, bad, earliest_known)
        The valid changes typed as ``Dataset.deal_changes``; every problem (``name``, line = ``_line``);
        the rejected rows' mask; per field, the deals whose first change comes after their creation.
    """
    no_bad = pd.Series(False, index=deals.index)
    chg, problems, bad = _check_changes(raw, name, deals, no_bad, deals_name, pipeline)
    changes = _finish_changes(chg[~bad.to_numpy()])
    return changes, problems, bad, _earliest_known(changes, deals)


def _finish_changes(chg: pd.DataFrame) -> pd.DataFrame:
    """The valid changes, typed and ordered by deal, time and field."""
    out = chg[["deal_id", "changed_at", "field", "value", "amount", "date"]].copy()
    for col in ("deal_id", "field", "value"):
        out[col] = _plain_text(out[col])
    out = out.sort_values(["deal_id", "changed_at", "field"], kind="stable").reset_index(drop=True)
    return out


def _earliest_known(changes: pd.DataFrame, deals: pd.DataFrame) -> dict[str, int]:
    """Per field, the deals whose first change comes after their creation: between the two, the
    first change's value (the earliest known) stands for the value."""
    first = changes.drop_duplicates(["deal_id", "field"], keep="first")
    created = first["deal_id"].map(deals.set_index("deal_id")["created_at"])
    later = first[(first["changed_at"] > created).to_numpy()]
    counts = later["field"].value_counts()
    # Not the status: before its first status change a deal is open (since its creation), nothing stands in.
    return {f: int(counts.get(f, 0)) for f in CHANGE_FIELDS if f != STATUS_FIELD}


def _normalise_history(hist: pd.DataFrame, deal_rows: np.ndarray, deal_id: pd.Series, created: np.ndarray,
                       pipeline: Pipeline, rank: np.ndarray):
    """Order each deal's entries, add a first-stage entry at created_at where needed, merge repeats.
    ``deal_id`` and ``created``: the deals' ids (distinct) and creation times; ``deal_rows``: per entry,
    its deal's row among them; ``rank``: per deal, a number that orders the deals as their ids sort."""
    hist = hist[["deal_id", "stage_index", "entered_at"]].copy()
    hist["deal_id"] = _plain_text(hist["deal_id"])
    hist["stage_index"] = hist["stage_index"].astype("int64")
    # Each deal's rank in the order of the ids (one factorisation of the deals' ids, not of the
    # entries'): the entries are grouped by their deals' rows and ordered by their ranks.
    ids = rank[deal_rows]
    first_at = hist["entered_at"].groupby(deal_rows).min().reindex(range(len(deal_id))).to_numpy()
    needs = np.isnat(first_at) | (first_at > created)
    added = pd.DataFrame({"deal_id": _plain_text(deal_id[needs].reset_index(drop=True)), "stage_index": 0,
                          "entered_at": created[needs]})
    if len(added):
        hist = pd.concat([added, hist], ignore_index=True)
        ids = np.concatenate([rank[needs], ids])
    if hist["entered_at"].notna().all():
        # The same stable order as sort_values on the three columns, from one factorisation of the
        # ids (sort_values would factorise every key): seconds saved on millions of entries.
        at, stage = hist["entered_at"].to_numpy().view("int64"), hist["stage_index"].to_numpy()
        # Exports are often in this order already (the sample is): then the sort is the identity.
        in_order = (ids[1:] > ids[:-1]) | ((ids[1:] == ids[:-1]) & (
            (at[1:] > at[:-1]) | ((at[1:] == at[:-1]) & (stage[1:] >= stage[:-1]))))
        if not in_order.all():
            hist = hist.take(np.lexsort((stage, at, ids))).reset_index(drop=True)
    else:
        hist = hist.sort_values(["deal_id", "entered_at", "stage_index"], kind="stable").reset_index(drop=True)
    same_deal = hist["deal_id"].eq(hist["deal_id"].shift())
    repeat = same_deal & hist["stage_index"].eq(hist["stage_index"].shift())
    hist = hist[~repeat].reset_index(drop=True)
    hist["stage"] = pd.Categorical.from_codes(hist["stage_index"].to_numpy(),
                                              categories=list(pipeline.stages), ordered=True)
    hist["stage_index"] = hist["stage_index"].astype("int16")
    return hist[["deal_id", "stage", "stage_index", "entered_at"]], int(len(added)), int(repeat.sum())
