"""Problems found in a data set, the error that carries them, and the load accounting.

Every problem names the file, the line in that file (the header is line 1), the column, the
offending value and the reason. Strict loading raises :class:`DataError` with all of them; lenient
loading drops the rows they are on and keeps them in :attr:`ValidationReport.rejected`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import FunnelkitError

__all__ = ["Problem", "DataError", "FileAccount", "ValidationReport"]

#: How many problems the text of a DataError lists before "... and N more".
MAX_LISTED = 50


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where it is, what it is and why it is wrong."""

    file: str
    line: int | None
    column: str | None
    value: object
    reason: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}, line {self.line}"
        parts = [where]
        if self.column:
            parts.append(f"column '{self.column}'")
        if self.value is not None and self.value != "":
            parts.append(f"value {_short(self.value)!r}")
        elif self.column and self.value is not None:
            # An empty cell ("") is a value; None means there is no cell (e.g. a missing column).
            parts.append("value empty")
        return ": ".join([", ".join(parts), self.reason])


def _short(value: object, limit: int = 80) -> object:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class DataError(FunnelkitError, ValueError):
    """A data set breaks the contract. ``problems`` lists every problem found, not only the first."""

    def __init__(self, problems: list[Problem], path: str | Path | None = None):
        self.problems = list(problems)
        self.path = str(path) if path is not None else None
        super().__init__(self._text())

    def _text(self) -> str:
        head = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} in data set"
        if self.path:
            head += f" {self.path}"
        lines = [head + ":"]
        lines += [f"  - {p}" for p in self.problems[:MAX_LISTED]]
        if len(self.problems) > MAX_LISTED:
            lines.append(f"  ... and {len(self.problems) - MAX_LISTED} more "
                         "(load with errors='report' to get them all in a CSV)")
        return "\n".join(lines)


@dataclass
class FileAccount:
    """Row accounting for one input file: ``read == loaded + rejected`` always holds."""

    file: str
    read: int = 0
    loaded: int = 0
    rejected: int = 0

    @property
    def balanced(self) -> bool:
        return self.read == self.loaded + self.rejected


@dataclass
class ValidationReport:
    """What loading found: the accounting per file, every problem, and the normalisations made."""

    path: str
    accounts: dict[str, FileAccount] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: One row per rejected input row: file, line, reasons, and the row's own values as JSON.
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["file", "line", "reasons", "row"]))
    #: Deals given a first-stage entry at created_at (no entry at or before it).
    entries_added: int = 0
    #: Stage entries merged into the visit before them (same stage again).
    repeats_merged: int = 0
    #: Won/lost deals with an unknown amount (only with allow_missing_amounts in pipeline.yml).
    closed_without_amount: int = 0
    #: Deals whose source/product/owner was empty, per column (filled with "(not set)").
    not_set: dict[str, int] = field(default_factory=dict)
    #: With a change log: per field, the deals whose first change comes after their creation (before
    #: it, the first change's value, the earliest known, stands for the value). Empty without one.
    earliest_known: dict[str, int] = field(default_factory=dict)
    #: Deals flagged ``dates_estimated``: counted, left out of duration metrics.
    dates_estimated: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """A short text for people: accounting, normalisations, and the first problems."""
        lines = [f"Data set {self.path}"]
        for acc in self.accounts.values():
            lines.append(f"  {acc.file}: {acc.read} rows read = {acc.loaded} loaded + {acc.rejected} rejected")
        lines.append(f"  stage entries added at created_at (first stage): {self.entries_added}")
        lines.append(f"  repeated stage entries merged: {self.repeats_merged}")
        if self.closed_without_amount:
            lines.append(f"  won/lost deals with unknown amount (allowed by pipeline.yml): "
                         f"{self.closed_without_amount}")
        if self.dates_estimated:
            lines.append(f"  deals with dates_estimated (counted, left out of durations): {self.dates_estimated}")
        for col, n in self.not_set.items():
            if n:
                lines.append(f"  deals with empty {col} (shown as '(not set)'): {n}")
        for fld, n in self.earliest_known.items():
            if n:
                lines.append(f"  deals whose {fld} before its first change is that change's value "
                             f"(the earliest known): {n}")
        if self.problems:
            lines.append(f"  {len(self.problems)} problem(s):")
            lines += [f"    - {p}" for p in self.problems[:MAX_LISTED]]
            if len(self.problems) > MAX_LISTED:
                lines.append(f"    ... and {len(self.problems) - MAX_LISTED} more")
        else:
            lines.append("  no problems found")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "files": {k: {"read": a.read, "loaded": a.loaded, "rejected": a.rejected}
                      for k, a in self.accounts.items()},
            "entries_added": self.entries_added,
            "repeats_merged": self.repeats_merged,
            "not_set": dict(self.not_set),
            "closed_without_amount": self.closed_without_amount,
            "earliest_known": dict(self.earliest_known),
            "dates_estimated": self.dates_estimated,
            "problems": [str(p) for p in self.problems],
        }

    def write_rejected(self, path: str | Path) -> Path:
        """Write the rejected rows (with their reasons) to ``path`` atomically and return it."""
        from .io import atomic_write_text

        return atomic_write_text(Path(path), self.rejected.to_csv(index=False))


def row_json(row: dict) -> str:
    return json.dumps({k: v for k, v in row.items() if k not in ("_line", "_fields")}, ensure_ascii=False)
