"""funnelkit.formatting: every number in the reader's locale (Babel's CLDR data), funnelkit's plain
style by default. The expected strings are written by hand from each locale's conventions:
en_US 1,234.50 and a leading symbol; de_DE 1.234,50 with the symbol after a no-break space, a
space before %; zh_CN ¥ for the yuan and 万 (ten thousand) in short amounts; ja_JP ￥ (full-width)
for the yen and 元 for the yuan.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from funnelkit import formatting as fmt

NB = "\xa0"  # no-break space, as CLDR puts between number and symbol

MONEY_2 = {  # money(1234.5, currency, 2)
    ("en_US", "USD"): "$1,234.50", ("en_US", "EUR"): "€1,234.50", ("en_US", "CNY"): "CN¥1,234.50",
    ("de_DE", "EUR"): f"1.234,50{NB}€", ("de_DE", "USD"): f"1.234,50{NB}$",
    ("de_DE", "CNY"): f"1.234,50{NB}CN¥",
    ("zh_CN", "CNY"): "¥1,234.50", ("zh_CN", "USD"): "US$1,234.50", ("zh_CN", "EUR"): "€1,234.50",
    ("ja_JP", "JPY"): "￥1,234.50", ("ja_JP", "CNY"): "元1,234.50", ("ja_JP", "USD"): "$1,234.50",
}


@pytest.mark.parametrize("locale, currency", list(MONEY_2))
def test_money_with_cents(locale, currency):
    assert fmt.money(1234.5, currency, 2, locale=locale) == MONEY_2[(locale, currency)]


@pytest.mark.parametrize("locale, expected", [
    ("en_US", "-$1,234,568"), ("de_DE", f"-1.234.568{NB}$"), ("zh_CN", "-US$1,234,568"),
    ("ja_JP", "-$1,234,568")])
def test_money_whole_and_negative(locale, expected):
    assert fmt.money(-1234567.6, "USD", locale=locale) == expected


@pytest.mark.parametrize("locale, expected", [
    ("en_US", ("1,234,567.9", "31.4%", "50%")),
    ("de_DE", ("1.234.567,9", f"31,4{NB}%", f"50{NB}%")),
    ("zh_CN", ("1,234,567.9", "31.4%", "50%")),
    ("ja_JP", ("1,234,567.9", "31.4%", "50%"))])
def test_numbers_and_percents(locale, expected):
    assert (fmt.number(1234567.891, 1, locale=locale), fmt.percent(0.314, 1, locale=locale),
            fmt.percent(0.5, locale=locale)) == expected


@pytest.mark.parametrize("locale, expected", [
    ("en_US", ("1 day", "12.4 days", "Jul 1, 2026")),
    ("de_DE", ("1 Tag", "12,4 Tage", "01.07.2026")),
    ("zh_CN", ("1天", "12.4天", "2026年7月1日")),
    ("ja_JP", ("1 日", "12.4 日", "2026/07/01"))])
def test_days_and_dates(locale, expected):
    assert (fmt.days(1, locale=locale), fmt.days(12.43, 1, locale=locale),
            fmt.date(pd.Timestamp("2026-07-01 18:30"), locale=locale)) == expected


@pytest.mark.parametrize("locale, expected", [
    ("en_US", ("€1.2M", "CN¥35K", "950")),
    ("de_DE", (f"1,2{NB}Mio.{NB}€", f"35.000{NB}CN¥", "950")),   # German has no short thousands
    ("zh_CN", ("€123.5万", "¥3.5万", "950")),                      # 万 = 10,000
    ("ja_JP", ("€123.5万", "元3.5万", "950"))])
def test_compact_money_for_charts(locale, expected):
    assert (fmt.compact_money(1_234_567, "EUR", locale=locale), fmt.compact_money(35_000, "CNY", locale=locale),
            fmt.compact_money(950, locale=locale)) == expected


def test_default_is_the_plain_style_of_earlier_versions():
    assert fmt.get_locale() is None
    assert fmt.money(1234.5, "EUR", 2) == "1,234.50 EUR"
    assert fmt.money(1234567.6, "EUR") == "1,234,568 EUR"
    assert fmt.money(950.0) == "950"
    assert fmt.number(1234.56, 1) == "1,234.6" and fmt.number(1234.56, 1, grouping=False) == "1234.6"
    assert fmt.percent(0.314) == "31%" and fmt.percent(0.314, 1) == "31.4%"
    assert fmt.days(12.4) == "12 days" and fmt.date("2026-07-01 13:45") == "2026-07-01"
    assert [fmt.compact_money(v, "EUR") for v in (2.5e9, 1.25e6, 35_000, 1_500, 950)] == [
        "2.5B EUR", "1.2M EUR", "35k EUR", "1.5k EUR", "950 EUR"]


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan, pd.NA, pd.NaT, math.inf, "n/a"])
def test_missing_values_read_dash_in_every_locale(missing):
    for locale in (None, "de_DE", "zh_CN"):
        with fmt.use_locale(locale):
            assert fmt.money(missing, "EUR") == fmt.percent(missing) == fmt.days(missing) == "-"
            assert fmt.table_cell(missing, "money") == (missing if isinstance(missing, str) else "-")


def test_table_cells():
    assert [fmt.table_cell(v, k) for v, k in [(1234.5, "money"), (12, "count"), (0.3141, "pct"),
                                                (-0.00001, "pct"), (0.12345, "dec3"), (1234.56, "days"),
                                                ("Web", "text"), ("2026-07-01 10:00", "date")]] == [
        "1,234", "12", "31.4%", "0.0%", "0.123", "1,234.6", "Web", "2026-07-01"]
    with fmt.use_locale("de_DE"):
        assert [fmt.table_cell(v, k) for v, k in [(1234.5, "money"), (0.3141, "pct"), (1234.56, "days"),
                                                    ("2026-07-01", "date")]] == [
            "1.234", f"31,4{NB}%", "1.234,6", "01.07.2026"]


def test_set_locale_applies_until_reset_and_refuses_unknown_names():
    fmt.set_locale("zh-CN")   # BCP 47 spelling accepted too
    try:
        assert fmt.get_locale() == "zh_CN" and fmt.money(1234.5, "CNY", 2) == "¥1,234.50"
        with fmt.use_locale("de_DE"):
            assert fmt.money(1234.5, "EUR", 2) == f"1.234,50{NB}€"
        assert fmt.get_locale() == "zh_CN"
    finally:
        fmt.set_locale(None)
    assert fmt.money(1234.5, "CNY", 2) == "1,234.50 CNY"
    with pytest.raises(ValueError, match="unknown locale 'xx_QQ'.*de_DE"):
        fmt.set_locale("xx_QQ")
    assert fmt.get_locale() is None


@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False))
def test_de_de_is_en_us_with_separators_swapped(x):
    us, de = fmt.number(x, 2, locale="en_US"), fmt.number(x, 2, locale="de_DE")
    assert de == us.replace(",", "_").replace(".", ",").replace("_", ".")


def test_report_refuses_an_unknown_locale_before_rendering(tmp_path):
    from funnelkit.cli import main
    from funnelkit.period import Period
    from funnelkit.report import render_report

    with pytest.raises(ValueError, match="unknown locale 'klingon'"):
        render_report(tmp_path, Period.quarter("2026Q1"), tmp_path / "out", locale="klingon")
    assert not (tmp_path / "out").exists()
    assert main(["report", str(tmp_path), "--quarter", "2026Q1", "--locale", "xx_QQ",
                 "--out", str(tmp_path / "out")]) != 0


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15),
       st.integers(0, 3))
def test_default_locale_output_is_the_earlier_f_strings(x, decimals):
    """The formatters takeaways, tables and charts used before this module, character for character."""
    from funnelkit import takeaways as tk

    assert fmt.money(x, "EUR") == f"{x:,.0f} EUR" and fmt.money(x) == f"{x:,.0f}"
    assert fmt.number(x, decimals) == f"{x:,.{decimals}f}"
    assert fmt.number(x, 1, grouping=False) == f"{x:.1f}"
    assert fmt.percent(x, decimals) == tk.pct(x, decimals) == f"{100 * x:.{decimals}f}%"
    assert fmt.days(x) == f"{x:.0f} days"
