"""Numbers, money, percents, days and dates as text, in the reader's locale.

One place formats every number a report, a table, a chart axis or a takeaway shows. Without a
locale (the default) the text is funnelkit's own plain style, unchanged from earlier versions
(``1,235 EUR``, ``31.4%``, ``12 days``, ``2026-07-01``). With a locale (:func:`set_locale`, or
``locale=`` on each function) the text follows that locale's CLDR data through Babel: its decimal
and group separators, its currency symbols and where they go, its percent sign, its word for days
and its date order.

Examples
--------
>>> money(1234.5, "EUR", 2)
'1,234.50 EUR'
>>> money(1234.5, "EUR", 2, locale="de_DE")
'1.234,50\\xa0€'
>>> money(1234.5, "CNY", 2, locale="zh_CN")
'¥1,234.50'
>>> percent(0.314, 1, locale="de_DE")
'31,4\\xa0%'
>>> days(12, locale="zh_CN")
'12天'
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import math
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from .i18n import _
from .errors import ArgumentError

__all__ = ["set_locale", "get_locale", "use_locale", "check_locale", "number", "percent", "money", "compact_money",
           "days", "date", "table_cell", "finite", "MISSING"]

#: The text shown for a missing or non-finite value.
MISSING = "-"

_current: str | None = None


def set_locale(locale: str | None) -> None:
    """Format everything that follows in ``locale`` (``"de_DE"``, ``"zh-CN"`` ...); None or ``""``:
    funnelkit's plain default.

    Raises
    ------
    ValueError
        The locale is not one CLDR knows, with examples of accepted names.

    Examples
    --------
    >>> set_locale("de_DE"); number(1234.5, 1)
    '1.234,5'
    >>> set_locale(None); number(1234.5, 1)
    '1,234.5'
    """
    global _current
    _current = check_locale(locale)


def check_locale(locale: str | None) -> str | None:
    """``locale`` as Babel spells it (``"zh-CN"`` -> ``"zh_CN"``); None for None or ``""``.

    Raises
    ------
    ValueError
        The locale is not one CLDR knows, with examples of accepted names.

    Examples
    --------
    >>> check_locale("zh-CN"), check_locale("")
    ('zh_CN', None)
    """
    return _check(locale)


def get_locale() -> str | None:
    """The locale set by :func:`set_locale` (None: the plain default).

    Examples
    --------
    >>> get_locale() is None
    True
    """
    return _current


@contextlib.contextmanager
def use_locale(locale: str | None) -> Iterator[None]:
    """Format in ``locale`` inside a ``with`` block, then restore the previous setting.

    Examples
    --------
    >>> with use_locale("ja_JP"):
    ...     money(1234, "JPY")
    '￥1,234'
    """
    global _current
    previous = _current
    set_locale(locale)
    try:
        yield
    finally:
        _current = previous


def number(value: Any, decimals: int = 0, *, grouping: bool = True, locale: str | None = None) -> str:
    """A number with ``decimals`` decimals and (unless ``grouping=False``) thousands separators.

    Examples
    --------
    >>> number(1234567.891, 1), number(1234567.891, 1, locale="de_DE")
    ('1,234,567.9', '1.234.567,9')
    >>> number(None)
    '-'
    """
    f, loc = finite(value), _resolve(locale)
    if f is None:
        return MISSING
    if loc is None:
        return f"{f:,.{decimals}f}" if grouping else f"{f:.{decimals}f}"
    return _pattern(loc, "decimal", decimals).apply(f, loc, group_separator=grouping)


def percent(fraction: Any, decimals: int = 0, *, locale: str | None = None) -> str:
    """A fraction as a percentage: ``0.314 -> '31%'``.

    Examples
    --------
    >>> percent(0.314), percent(0.314, 1, locale="zh_CN")
    ('31%', '31.4%')
    """
    f, loc = finite(fraction), _resolve(locale)
    if f is None:
        return MISSING
    if loc is None:
        return f"{100 * f:.{decimals}f}%"
    return _pattern(loc, "percent", decimals).apply(f, loc)


def money(value: Any, currency: str = "", decimals: int = 0, *, locale: str | None = None) -> str:
    """An amount with its currency: ``1,235 EUR`` by default, the locale's symbol and pattern with one
    (``1.235 €`` in de_DE, ``¥1,235`` for CNY in zh_CN). Without a currency: the number alone.

    Examples
    --------
    >>> money(1234.5, "EUR"), money(1234.5, "EUR", locale="de_DE"), money(1234.5, "USD", locale="en_US")
    ('1,234 EUR', '1.234\\xa0€', '$1,234')
    """
    f, loc = finite(value), _resolve(locale)
    if f is None:
        return MISSING
    if loc is None:
        return f"{f:,.{decimals}f} {currency}".strip()
    if not currency:
        return number(f, decimals, locale=loc)
    return _pattern(loc, "currency", decimals).apply(f, loc, currency=currency, currency_digits=False)


def compact_money(value: Any, currency: str = "", *, locale: str | None = None) -> str:
    """A short amount for chart labels and axes: ``1.2M EUR``, ``35k EUR``, ``950 EUR`` by default;
    the locale's compact form with one (``1,2 Mio. €`` in de_DE, ``¥3.5万`` in zh_CN).

    Examples
    --------
    >>> compact_money(1_234_567, "EUR"), compact_money(35_000), compact_money(950, "EUR")
    ('1.2M EUR', '35k', '950 EUR')
    >>> compact_money(35_000, "CNY", locale="zh_CN")
    '¥3.5万'
    """
    f, loc = finite(value), _resolve(locale)
    if f is None:
        return MISSING
    if loc is None:
        return f"{_plain_compact(f)} {currency}".strip()
    from babel import numbers

    short = numbers.format_compact_decimal(f, locale=loc, fraction_digits=1)
    if not any(c.isalpha() for c in short):
        # the locale has no short word for this size (German thousands): group the digits
        return money(f, currency, locale=loc)
    return numbers.format_compact_currency(f, currency, locale=loc, fraction_digits=1) if currency else short


def days(value: Any, decimals: int = 0, *, locale: str | None = None) -> str:
    """A number of days with the unit: ``12 days``; ``12 Tage`` (de_DE), ``12天`` (zh_CN).

    Examples
    --------
    >>> days(12.4), days(1, locale="en_US"), days(12.4, 1, locale="de_DE")
    ('12 days', '1 day', '12,4 Tage')
    """
    f, loc = finite(value), _resolve(locale)
    if f is None:
        return MISSING
    if loc is None:
        return _("{n} days").format(n=f"{f:.{decimals}f}")
    from babel import units

    rounded = round(f, decimals)
    return units.format_unit(rounded, "duration-day", length="long", locale=loc,
                             format="#,##0" + ("." + "0" * decimals if decimals else ""))


def date(value: Any, *, locale: str | None = None) -> str:
    """A calendar date: ISO ``2026-07-01`` by default, the locale's medium date with one
    (``01.07.2026`` in de_DE, ``2026年7月1日`` in zh_CN, ``Jul 1, 2026`` in en_US).

    Examples
    --------
    >>> date("2026-07-01 13:45"), date("2026-07-01", locale="zh_CN")
    ('2026-07-01', '2026年7月1日')
    """
    if value is None or (not isinstance(value, str) and _is_missing(value)):
        return MISSING
    import pandas as pd

    day = pd.Timestamp(value).date()
    loc = _resolve(locale)
    if loc is None:
        return str(day)
    from babel import dates

    return dates.format_date(_dt.date(day.year, day.month, day.day), "medium", locale=loc)


def table_cell(value: Any, kind: str, *, locale: str | None = None) -> str:
    """A table cell of ``kind`` (``text``, ``date``, ``money`` and ``count`` as whole numbers,
    ``pct`` with one decimal, ``dec3``, ``days``/``dec1`` with one decimal, ``yesno`` for a flag);
    ``-`` when missing.
    Money cells carry no currency (the column header names it). A value that rounds to zero never
    reads ``-0``; text in a numeric column is shown as it is.

    Examples
    --------
    >>> table_cell(1234.5, "money"), table_cell(-0.0001, "pct"), table_cell(12.25, "days", locale="de_DE")
    ('1,234', '0.0%', '12,2')
    """
    if value is None or (not isinstance(value, str) and _is_missing(value)):
        return MISSING
    if kind == "text":
        return str(value)
    if kind == "yesno":
        return _("yes") if bool(value) else _("no")
    if kind == "date":
        return date(value, locale=locale)
    f = finite(value)
    if f is None:   # text in a numeric column is shown as it is; infinities as missing
        return str(value) if isinstance(value, str) else MISSING
    decimals = {"money": 0, "count": 0, "pct": 1, "dec3": 3}.get(kind, 1)
    if round(100 * f if kind == "pct" else f, decimals) == 0:
        f = 0.0   # "-0.0%" reads "0.0%"
    if kind == "pct":
        return percent(f, 1, locale=locale)
    return number(f, decimals, grouping=kind != "dec3", locale=locale)


def _plain_compact(v: float) -> str:
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.1f}B"
    if a >= 1e6:
        return f"{v / 1e6:.1f}M"
    if a >= 1e4:
        return f"{v / 1e3:.0f}k"
    if a >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def finite(value: Any) -> float | None:
    """``value`` as a finite float; None when it is missing, not finite or not a number (text too).

    >>> finite(3), finite(float("nan")), finite("12"), finite(None)
    (3.0, None, None, None)
    """
    if value is None or isinstance(value, str):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def _is_missing(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _resolve(locale: str | None) -> str | None:
    return _current if locale is None else check_locale(locale)


@lru_cache(maxsize=32)
def _check(locale: str | None) -> str | None:
    if not locale:
        return None
    from babel import Locale, UnknownLocaleError

    name = str(locale).replace("-", "_")
    try:
        Locale.parse(name)
    except (UnknownLocaleError, ValueError):
        raise ArgumentError(f"unknown locale {locale!r}: give a CLDR locale such as en_US, de_DE, "
                         "zh_CN or ja_JP") from None
    return name


@lru_cache(maxsize=128)
def _pattern(locale: str, kind: str, decimals: int):
    """The locale's standard pattern of ``kind`` with exactly ``decimals`` decimals."""
    from babel import Locale

    loc = Locale.parse(locale)
    base = {"decimal": loc.decimal_formats, "percent": loc.percent_formats,
            "currency": loc.currency_formats}[kind]
    pattern = copy.copy(base[None] if kind != "currency" else base["standard"])
    pattern.frac_prec = (decimals, decimals)
    return pattern
