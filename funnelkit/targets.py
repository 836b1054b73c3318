"""Targets: the optional ``targets.csv`` of a data set folder (``period, owner, target``).

One row per period and owner; an empty owner is the whole team's target. ``period`` is a quarter
(``2026Q2``), a month (``2026-05``) or a year (``2026``). Validated like the other files: every
problem names the file, line, column, value and reason, all of them at once.

>>> import funnelkit as fk
>>> t = read_targets("data/sample/targets.csv")       # doctest: +SKIP
>>> target_for(t, fk.Period.quarter("2026Q2"))          # doctest: +SKIP
900000.0
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .parsing import parse_amounts, read_text_table
from .period import Period
from .validation import DataError, Problem

__all__ = ["TARGETS_FILE", "read_targets", "targets_of", "target_for", "owner_targets"]

#: The file name of the targets in a data set folder.
TARGETS_FILE = "targets.csv"
_COLUMNS = ("period", "owner", "target")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")


def _period(text: str) -> Period | None:
    """The period a label names (quarter, month, year); None when it names none."""
    text = text.strip()
    try:
        return Period.quarter(text)
    except ValueError:
        pass
    m = _MONTH.match(text)
    if m and 1 <= int(m.group(2)) <= 12:
        start = pd.Timestamp(year=int(m.group(1)), month=int(m.group(2)), day=1)
        return Period(start, (start + pd.offsets.MonthEnd(0)).normalize(), label=text)
    m = _YEAR.match(text)
    if m:
        return Period(f"{m.group(1)}-01-01", f"{m.group(1)}-12-31", label=text)
    return None


def read_targets(path: str | Path) -> pd.DataFrame:
    """Read and validate a targets file.

    Returns
    -------
    DataFrame
        ``period`` (the label as written), ``start``, ``end`` (its first and last day), ``owner``
        (None for the team) and ``target`` (float), in file order.

    Raises
    ------
    DataError
        Listing every problem: a missing column, a period that is not a quarter, month or year, a
        target that is empty, not a number or negative, the same period and owner twice.
    """
    path = Path(path)
    name = str(path)
    try:
        raw = read_text_table(path, with_lines=True)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise DataError([Problem(name, None, None, None, f"cannot be read: {exc}")], path) from None
    missing = [c for c in _COLUMNS if c not in raw.columns]
    if missing:
        raise DataError([Problem(name, 1, c, None, "missing column (targets.csv needs period, owner, target)")
                         for c in missing], path)
    problems: list[Problem] = []
    amounts, bad = parse_amounts(raw["target"])
    rows = []
    seen: dict[tuple[str, str], int] = {}
    lines = raw["_line"].to_numpy()
    for i, (label, owner, text) in enumerate(zip(raw["period"], raw["owner"], raw["target"])):
        line = int(lines[i])
        label, owner, text = str(label).strip(), str(owner).strip(), str(text).strip()
        p = _period(label) if label else None
        if p is None:
            problems.append(Problem(name, line, "period", label,
                                    "not a period: write a quarter 2026Q2, a month 2026-05 or a year 2026"))
        if not text:
            problems.append(Problem(name, line, "target", text, "empty: every row needs a target amount"))
        elif bad.iloc[i]:
            problems.append(Problem(name, line, "target", text, "not a number"))
        elif amounts.iloc[i] < 0:
            problems.append(Problem(name, line, "target", text, "negative: a target is an amount to win"))
        key = (label, owner)
        if key in seen:
            problems.append(Problem(name, line, "owner", owner or "",
                                    f"the same period and owner as line {seen[key]}: one target each"))
        seen.setdefault(key, line)
        if p is not None:
            rows.append({"period": label, "start": p.start, "end": p.end, "owner": owner or None,
                         "target": float(amounts.iloc[i])})
    if problems:
        raise DataError(problems, path)
    return pd.DataFrame(rows, columns=["period", "start", "end", "owner", "target"])


def targets_of(ds) -> pd.DataFrame | None:
    """The validated ``targets.csv`` of the data set's folder, or None when it has none (a data set
    read from elsewhere, or a folder without the file). Raises :class:`DataError` on a bad file."""
    folder = getattr(ds, "path", None)
    if folder is None:
        return None
    path = Path(folder) / TARGETS_FILE
    return read_targets(path) if path.is_file() else None


def target_for(targets: pd.DataFrame | None, period: Period, owner: str | None = None) -> float | None:
    """The target of exactly ``period`` (same first and last day) for ``owner`` (None = the team)."""
    if targets is None or targets.empty:
        return None
    m = (targets["start"] == period.start) & (targets["end"] == period.end)
    m &= targets["owner"].isna() if owner is None else targets["owner"].eq(owner)
    hit = targets.loc[m, "target"]
    return float(hit.iloc[0]) if len(hit) else None


def owner_targets(targets: pd.DataFrame | None, period: Period) -> dict[str, float]:
    """``{owner: target}`` of every owner with a target for exactly ``period``."""
    if targets is None or targets.empty:
        return {}
    m = (targets["start"] == period.start) & (targets["end"] == period.end) & targets["owner"].notna()
    return dict(zip(targets.loc[m, "owner"], targets.loc[m, "target"]))
