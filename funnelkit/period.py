"""Reporting periods: whole days ``start``..``end`` (both inclusive) seen as of an instant.

"In P" means ``start <= t < end + 1 day``. ``as_of`` defaults to ``end + 1 day`` (exclusive end of
the period), and every metric sees the data as it stood at ``as_of``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

__all__ = ["Period", "quarters_between"]

_QUARTER = re.compile(r"^(\d{4})\s*-?\s*[Qq]([1-4])$")


def _day(value) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


@dataclass(frozen=True)
class Period:
    """A reporting period.

    Parameters
    ----------
    start, end
        First and last day (inclusive). Times of day are dropped.
    as_of
        The instant the data is seen at; default ``end + 1 day`` at 00:00.
    label
        A display name, e.g. ``2026Q3``.

    Examples
    --------
    >>> p = Period.quarter("2026Q3")
    >>> p.start.date(), p.end.date(), p.as_of
    (datetime.date(2026, 7, 1), datetime.date(2026, 9, 30), Timestamp('2026-10-01 00:00:00'))
    >>> p.contains(pd.Timestamp("2026-09-30 23:59"))
    True
    """

    start: pd.Timestamp
    end: pd.Timestamp
    as_of: pd.Timestamp | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        start, end = _day(self.start), _day(self.end)
        if end < start:
            raise ValueError(f"period end {end.date()} is before its start {start.date()}")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        as_of = end + pd.Timedelta(days=1) if self.as_of is None else pd.Timestamp(self.as_of)
        if as_of.tzinfo is not None:
            as_of = as_of.tz_convert("UTC").tz_localize(None)
        object.__setattr__(self, "as_of", as_of)
        if self.label is None:
            object.__setattr__(self, "label", f"{start.date()} to {end.date()}")

    @property
    def stop(self) -> pd.Timestamp:
        """The exclusive end instant of the period: ``end + 1 day``."""
        return self.end + pd.Timedelta(days=1)

    @property
    def days(self) -> int:
        return int((self.stop - self.start).days)

    def contains(self, t):
        """True where ``start <= t < end + 1 day`` (works on scalars and Series)."""
        return (t >= self.start) & (t < self.stop)

    def previous(self) -> "Period":
        """The period of the same kind just before this one (the previous quarter for a quarter)."""
        m = _QUARTER.match(self.label or "")
        if m:
            y, q = int(m.group(1)), int(m.group(2))
            y, q = (y - 1, 4) if q == 1 else (y, q - 1)
            return Period.quarter(f"{y}Q{q}")
        length = self.stop - self.start
        return Period(self.start - length, self.start - pd.Timedelta(days=1))

    def with_as_of(self, as_of) -> "Period":
        return Period(self.start, self.end, as_of, self.label)

    @classmethod
    def quarter(cls, spec: str, as_of=None) -> "Period":
        """A calendar quarter such as ``2026Q3`` (also ``2026-Q3``, ``2026q3``)."""
        m = _QUARTER.match(str(spec).strip())
        if not m:
            raise ValueError(f"not a quarter: {spec!r} (expected e.g. 2026Q3)")
        y, q = int(m.group(1)), int(m.group(2))
        start = pd.Timestamp(year=y, month=3 * q - 2, day=1)
        end = (start + pd.offsets.QuarterEnd(0)).normalize()
        return cls(start, end, as_of, f"{y}Q{q}")

    @classmethod
    def parse(cls, start=None, end=None, quarter: str | None = None, as_of=None) -> "Period":
        """From either a quarter or start and end dates (strings or dates), never both."""
        if quarter and (start is not None or end is not None):
            raise ValueError("give either a quarter or start and end dates, not both")
        if quarter:
            return cls.quarter(quarter, as_of)
        if start is None or end is None:
            raise ValueError("give a quarter (e.g. 2026Q3) or both start and end dates")
        return cls(start, end, as_of)

    def to_dict(self) -> dict:
        return {"start": self.start.date().isoformat(), "end": self.end.date().isoformat(),
                "as_of": self.as_of.isoformat(), "label": self.label}


def quarters_between(first, last) -> list[str]:
    """Labels of every calendar quarter touching ``first``..``last``, e.g. ``['2024Q1', '2024Q2']``."""
    a, b = pd.Timestamp(first).to_period("Q"), pd.Timestamp(last).to_period("Q")
    return [f"{p.year}Q{p.quarter}" for p in pd.period_range(a, b, freq="Q")]

