"""Reporting periods: whole days ``start``..``end`` (both inclusive) seen as of an instant.

"In P" means ``start <= t < end + 1 day``. ``as_of`` defaults to ``end + 1 day`` (exclusive end of
the period), and every metric sees the data as it stood at ``as_of``.

Every public function that takes a period takes it in any of these forms, through
:func:`as_period` (anything else is refused with a message listing them):

- a :class:`Period`;
- a quarter ``"2026Q2"`` (also ``"2026-Q2"``, ``"2026q2"``), a month ``"2026-05"``, a year ``"2026"``
  (or ``2026``);
- a ``(start, end)`` pair. Each end is a day (``"2026-04-01"``, a ``datetime``/``date``/
  ``Timestamp``) or a whole month, quarter or year, which counts whole: as a start it means its
  first day, as an end its last day, so ``("2017-06", "2017-08")`` is 1 June to 31 August and
  ``("2017Q3", "2017Q3")`` is the whole quarter. Free-form dates (``"June 2017"``, ``"01/02/2024"``)
  are refused rather than guessed.
"""

from __future__ import annotations

import datetime as _dt
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Tuple, Union

import numpy as np
import pandas as pd

from .errors import ArgumentError, NoDataWarning
from .i18n import _

if TYPE_CHECKING:
    from .dataset import Dataset

__all__ = ["Period", "PeriodLike", "as_period", "as_instant", "quarters_between", "ACCEPTED_PERIODS"]

_QUARTER = re.compile(r"^(\d{4})\s*-?\s*[Qq]([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$")

#: The forms a period may be given in (shown in every refusal).
ACCEPTED_PERIODS = ("a Period, a quarter '2026Q2', a month '2026-05', a year '2026', or a (start, end) "
                    "pair of dates such as ('2026-04-01', '2026-06-30') (months, quarters and years "
                    "count whole: ('2026-04', '2026-06') is April to June)")

DateLike = Union[str, _dt.date, pd.Timestamp, np.datetime64]
#: What :func:`as_period` accepts.
PeriodLike = Union["Period", str, int, Tuple[DateLike, DateLike]]


def _naive(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def as_instant(value: Any, what: str = "as_of") -> pd.Timestamp:
    """An instant as a naive ``Timestamp`` (UTC where it had a zone); empty or unreadable is refused.

    Accepts a ``Timestamp``/``datetime``/``date``/``datetime64`` or an ISO text such as
    ``"2026-07-01"`` or ``"2026-07-01T09:30:00+02:00"``.

    Examples
    --------
    >>> as_instant("2026-07-01T09:30:00+02:00")
    Timestamp('2026-07-01 07:30:00')
    >>> as_instant("July 1")
    Traceback (most recent call last):
    ...
    funnelkit.errors.ArgumentError: as_of: 'July 1' is not a date funnelkit reads (write it as 2026-07-01 or 2026-07-01T09:30)
    """
    if isinstance(value, str):
        text = value.strip()
        if not _ISO_DAY.match(text):
            raise ArgumentError(f"{what}: {value!r} is not a date funnelkit reads (write it as 2026-07-01 "
                                "or 2026-07-01T09:30)")
        value = text
    elif value is None:
        raise ArgumentError(f"{what}: the date is empty")
    elif isinstance(value, bool) or not isinstance(
            value, (_dt.date, pd.Timestamp, np.datetime64)):
        raise ArgumentError(f"{what}: expected a date, got {value!r}")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, OverflowError) as exc:
        raise ArgumentError(f"{what}: {value!r} is not a date ({exc})") from None
    if pd.isna(ts):
        raise ArgumentError(f"{what}: the date is empty")
    return _naive(ts)


def _unit(text: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """First and last day of a month, quarter or year written as text; None for other text."""
    m = _QUARTER.match(text)
    if m:
        start = pd.Timestamp(year=int(m.group(1)), month=3 * int(m.group(2)) - 2, day=1)
        return start, (start + pd.offsets.QuarterEnd(0)).normalize()
    m = _MONTH.match(text)
    if m:
        if not 1 <= int(m.group(2)) <= 12:
            raise ArgumentError(f"period: {text!r} has no month {m.group(2)} (months are 01..12)")
        start = pd.Timestamp(year=int(m.group(1)), month=int(m.group(2)), day=1)
        return start, (start + pd.offsets.MonthEnd(0)).normalize()
    m = _YEAR.match(text)
    if m:
        start = pd.Timestamp(year=int(m.group(1)), month=1, day=1)
        return start, pd.Timestamp(year=start.year, month=12, day=31)
    return None


def _bound(value: Any, side: str) -> pd.Timestamp:
    """One end of a period: a day, or a whole month/quarter/year (its first day as a start, its last
    day as an end). Empty and free-form text are refused."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ArgumentError(f"period {side} is empty: give {ACCEPTED_PERIODS}")
        unit = _unit(text)
        if unit is not None:
            return unit[0] if side == "start" else unit[1]
        if not _ISO_DAY.match(text):
            raise ArgumentError(f"period {side} {value!r} is not a date funnelkit reads: write a day "
                                "2017-06-01, a month 2017-06, a quarter 2017Q3 or a year 2017")
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return _bound(str(int(value)), side) if 1000 <= value <= 9999 else _bound(repr(value), side)
    if value is None or value is pd.NaT:
        raise ArgumentError(f"period {side} is empty: give {ACCEPTED_PERIODS}")
    return as_instant(value, f"period {side}").normalize()


@dataclass(frozen=True)
class Period:
    """A reporting period.

    Parameters
    ----------
    start, end
        First and last day (inclusive). Times of day are dropped. A month (``"2026-05"``), quarter
        (``"2026Q2"``) or year (``"2026"``) counts whole: its first day as ``start``, its last day as
        ``end``. Empty, free-form (``"June 2017"``) or reversed ends are refused.
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
    >>> Period("2017-06", "2017-08").label
    '2017-06-01 to 2017-08-31'
    >>> Period("2017Q3", "2017Q3").days
    92
    >>> Period("June 2017", "Aug 2017")
    Traceback (most recent call last):
    ...
    funnelkit.errors.ArgumentError: period start 'June 2017' is not a date funnelkit reads: write a day 2017-06-01, a month 2017-06, a quarter 2017Q3 or a year 2017
    """

    start: pd.Timestamp
    end: pd.Timestamp
    as_of: pd.Timestamp | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        start, end = _bound(self.start, "start"), _bound(self.end, "end")
        if end < start:
            raise ArgumentError(f"period end {end.date()} is before its start {start.date()}")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        as_of = end + pd.Timedelta(days=1) if self.as_of is None else as_instant(self.as_of)
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
        """The period of the same kind just before this one (the previous quarter for a quarter,
        the previous month for a month, the previous year for a year).

        >>> as_period("2026-03").previous().label, as_period("2026Q1").previous().label
        ('2026-02', '2025Q4')
        """
        label = self.label or ""
        m = _QUARTER.match(label)
        if m:
            y, q = int(m.group(1)), int(m.group(2))
            y, q = (y - 1, 4) if q == 1 else (y, q - 1)
            return Period.quarter(f"{y}Q{q}")
        if _MONTH.match(label) or _YEAR.match(label):
            before = self.start - pd.Timedelta(days=1)
            return as_period(f"{before.year}-{before.month:02d}" if _MONTH.match(label) else str(before.year))
        length = self.stop - self.start
        return Period(self.start - length, self.start - pd.Timedelta(days=1))

    def with_as_of(self, as_of: Any) -> "Period":
        return Period(self.start, self.end, as_of, self.label)

    @classmethod
    def quarter(cls, spec: str, as_of: Any = None) -> "Period":
        """A calendar quarter such as ``2026Q3`` (also ``2026-Q3``, ``2026q3``)."""
        m = _QUARTER.match(str(spec).strip())
        if not m:
            raise ArgumentError(f"not a quarter: {spec!r} (expected e.g. 2026Q3)")
        y, q = int(m.group(1)), int(m.group(2))
        start = pd.Timestamp(year=y, month=3 * q - 2, day=1)
        end = (start + pd.offsets.QuarterEnd(0)).normalize()
        return cls(start, end, as_of, f"{y}Q{q}")

    @classmethod
    def parse(cls, start: Any = None, end: Any = None, quarter: str | None = None, as_of: Any = None) -> "Period":
        """From either a quarter or start and end dates (strings or dates), never both."""
        if quarter and (start is not None or end is not None):
            raise ArgumentError("give either a quarter or start and end dates, not both")
        if quarter:
            return cls.quarter(quarter, as_of)
        if start is None or end is None:
            raise ArgumentError("give a quarter (e.g. 2026Q3) or both start and end dates")
        return cls(start, end, as_of)

    def to_dict(self) -> dict:
        as_of = self.stop if self.as_of is None else self.as_of   # never None after __init__
        return {"start": self.start.date().isoformat(), "end": self.end.date().isoformat(),
                "as_of": as_of.isoformat(), "label": self.label}


def as_period(period: PeriodLike, ds: "Dataset | None" = None) -> Period:
    """The one way a period argument becomes a :class:`Period` (every public metric calls it).

    Parameters
    ----------
    period
        A :class:`Period`, a quarter ``"2026Q2"``, a month ``"2026-05"``, a year ``"2026"`` (or
        ``2026``), or a ``(start, end)`` pair of dates (a month, quarter or year as an end counts
        whole). Anything else raises :class:`~funnelkit.errors.ArgumentError` listing these forms.
    ds
        When given, a :class:`~funnelkit.errors.NoDataWarning` is issued if nothing happened in the
        period (no deal created, closed or moving stage in it, as seen at its ``as_of``): the
        metrics' zeros and empty tables then mean "no data", not "nothing went wrong".

    Examples
    --------
    >>> as_period("2026-05").label, as_period("2026").days, as_period(("2026-04-01", "2026-06")).label
    ('2026-05', 365, '2026-04-01 to 2026-06-30')
    >>> as_period("last quarter")
    Traceback (most recent call last):
    ...
    funnelkit.errors.ArgumentError: period: cannot use 'last quarter'; give a Period, a quarter '2026Q2', a month '2026-05', a year '2026', or a (start, end) pair of dates such as ('2026-04-01', '2026-06-30') (months, quarters and years count whole: ('2026-04', '2026-06') is April to June)
    """
    p = _coerce(period)
    if ds is not None:
        _warn_if_no_data(ds, p)
    return p


def _coerce(period: Any) -> Period:
    if isinstance(period, Period):
        return period
    if isinstance(period, (int, np.integer)) and not isinstance(period, bool) and 1000 <= period <= 9999:
        period = str(int(period))
    if isinstance(period, str):
        text = period.strip()
        if _QUARTER.match(text):
            return Period.quarter(text)
        unit = _unit(text)
        if unit is not None:
            return Period(unit[0], unit[1], None, text)
    if isinstance(period, (tuple, list)) and len(period) == 2:
        return Period(period[0], period[1])
    raise ArgumentError(f"period: cannot use {period!r}; give {ACCEPTED_PERIODS}")


def _warn_if_no_data(ds: "Dataset", p: Period) -> None:
    """NoDataWarning when no deal was created, closed or moved stage in ``p`` (seen at ``p.as_of``)."""
    lo = np.datetime64(p.start, "ns")
    hi = np.datetime64(min(p.stop, p.as_of), "ns")
    # Once per data set and interval (every metric of a report asks again): one pass over the event
    # times, not a sort of them (at 1M deals 0.3 s of CPU, for the data's first and last event only).
    if bool(hi > lo) and ds.derived(f"has_events:{lo}:{hi}", lambda: _has_events(ds, lo, hi)):
        return
    first, last = ds.derived("event_span", lambda: _event_span(ds))
    span = (_("the data runs from {first} to {last}").format(first=first.date(), last=last.date())
            if first is not None and last is not None else _("the data set has no dated events"))
    warnings.warn(_("no data in {period}: no deal was created, closed or moved stage in it ({span}); "
                    "its numbers are empty, not zero").format(period=p.label, span=span), NoDataWarning)


def _event_columns(ds: "Dataset") -> list[np.ndarray]:
    """The times of a data set's dated events: creations, closes (NaT: none) and stage entries."""
    return [ds.deals["created_at"].to_numpy("datetime64[ns]"), ds.deals["closed_at"].to_numpy("datetime64[ns]"),
            ds.stage_history["entered_at"].to_numpy("datetime64[ns]")]


def _event_span(ds: "Dataset") -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The first and the last dated event of a data set ((None, None) when it has none)."""
    times = np.concatenate(_event_columns(ds))
    times = times[~np.isnat(times)]
    return (pd.Timestamp(times.min()), pd.Timestamp(times.max())) if len(times) else (None, None)


def _has_events(ds: "Dataset", lo: np.datetime64, hi: np.datetime64) -> bool:
    """Whether a deal was created or closed, or entered a stage, at ``lo <= t < hi`` (NaT: never)."""
    return any(bool(np.any((t >= lo) & (t < hi))) for t in _event_columns(ds))


def quarters_between(first, last) -> list[str]:
    """Labels of every calendar quarter touching ``first``..``last``, e.g. ``['2024Q1', '2024Q2']``."""
    a, b = pd.Timestamp(first).to_period("Q"), pd.Timestamp(last).to_period("Q")
    return [f"{p.year}Q{p.quarter}" for p in pd.period_range(a, b, freq="Q")]

