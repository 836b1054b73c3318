"""Writing a data set: the one writer behind ``funnelkit sample-data`` and ``funnelkit import``.

A data set is the three files of the contract (:mod:`funnelkit.contract`): the deals table, the
stage-history table and ``pipeline.yml``. :func:`write_dataset` writes them into a folder, each
atomically (a reader never sees half a file), taking every file name from the contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd
import yaml

from .errors import ArgumentError
from .contract import CHANGES_FILE, DEALS_FILE, HISTORY_FILE, PIPELINE_FILE, TABLE_SUFFIXES, Pipeline
from .io import atomic_path, atomic_write_text

__all__ = ["write_dataset", "TABLE_FORMATS"]

#: Table formats a data set can be written in (the loader reads all of them).
TABLE_FORMATS = tuple(s.lstrip(".") for s in TABLE_SUFFIXES)

Tables = pd.DataFrame | Iterable[pd.DataFrame]


def write_dataset(folder: str | Path, deals: Tables, history: Tables, pipeline: Pipeline, *,
                  changes: Tables | None = None, table_format: str = "csv", comment: str | None = None) -> Path:
    """Write ``deals``, ``history`` and ``pipeline`` into ``folder`` under the contract's file names.

    Parameters
    ----------
    folder
        The data set folder (created when absent). Tables of the other formats with the same
        names are removed, so the loader never picks up a stale one.
    deals, history
        The two tables as text-ready frames, or iterables of frames (chunks, written one after the
        other; CSV only keeps them in memory one at a time).
    pipeline
        The settings written to ``pipeline.yml``.
    changes
        The optional change log (``deal_changes``), as a frame or chunks; when None, a change log
        left in the folder is removed (it would not match the new deals).
    table_format
        ``csv`` (default), ``parquet`` or ``xlsx``. Parquet and xlsx cells are written as text.
    comment
        An optional comment line put at the top of ``pipeline.yml``.

    Returns
    -------
    Path
        The folder.

    Examples
    --------
    >>> import tempfile
    >>> deals = pd.DataFrame({"deal_id": ["D1"], "created_at": ["2024-01-02"], "status": ["open"],
    ...                       "closed_at": [""], "amount": [""], "source": [""], "product": [""],
    ...                       "owner": [""]})
    >>> history = pd.DataFrame({"deal_id": ["D1"], "stage": ["Lead"], "entered_at": ["2024-01-02"]})
    >>> out = write_dataset(tempfile.mkdtemp(), deals, history, Pipeline(("Lead",)))
    >>> sorted(p.name for p in out.iterdir())
    ['deals.csv', 'pipeline.yml', 'stage_history.csv']
    """
    if table_format not in TABLE_FORMATS:
        raise ArgumentError(f"table_format must be one of {', '.join(TABLE_FORMATS)}, not {table_format!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, table in ((DEALS_FILE, deals), (HISTORY_FILE, history), (CHANGES_FILE, changes)):
        if table is None:
            for ext in TABLE_FORMATS:
                (folder / f"{stem}.{ext}").unlink(missing_ok=True)
        else:
            _write_table(folder, stem, table, table_format)
    text = yaml.safe_dump(pipeline.to_yaml_dict(), sort_keys=False, allow_unicode=True)
    atomic_write_text(folder / PIPELINE_FILE, (f"# {comment}\n" if comment else "") + text)
    return folder


def _chunks(table: Tables) -> Iterable[pd.DataFrame]:
    return [table] if isinstance(table, pd.DataFrame) else table


def _write_table(folder: Path, stem: str, table: Tables, table_format: str) -> None:
    """One table, atomically; any table of another format under the same name is removed."""
    for other in TABLE_FORMATS:
        stale = folder / f"{stem}.{other}"
        if other != table_format and stale.exists():
            stale.unlink()
    with atomic_path(folder / f"{stem}.{table_format}", suffix=f".{table_format}") as tmp:
        if table_format == "csv":
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                for i, chunk in enumerate(_chunks(table)):
                    chunk.to_csv(fh, index=False, header=i == 0, lineterminator="\n")
            return
        whole = pd.concat(list(_chunks(table)), ignore_index=True).astype(str)
        if table_format == "parquet":
            whole.to_parquet(tmp, index=False)
        else:
            whole.to_excel(tmp, index=False)
