"""The loader's fast paths (pyarrow-backed text: one regex + one Arrow cast) give exactly what the
general path gives for the values they take: plain decimal amounts and plain ISO dates."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from funnelkit.parsing import _iso_by_arrow, _plain_amounts, parse_amounts, parse_timestamps

ARROW = "string[pyarrow]"

plain_amount = st.builds(
    lambda sign, whole, frac: f"{sign}{whole}{'.' + frac if frac else ''}",
    st.sampled_from(["", "-"]),
    st.text("0123456789", min_size=1, max_size=15),
    st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=15)))

plain_date = st.builds(
    lambda t, with_time: t.strftime("%Y-%m-%dT%H:%M:%S" if with_time else "%Y-%m-%d"),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2199, 12, 31, 23, 59, 59)),
    st.booleans())


def _both(parse, values: list[str]):
    fast = parse(pd.Series(values, dtype=ARROW))
    general = parse(pd.Series(values, dtype=object))
    return fast, general


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(plain_amount, st.just(""), st.just("  ")), min_size=1, max_size=30))
def test_plain_amounts_fast_path_equals_the_general_path(values):
    (v1, bad1), (v2, bad2) = _both(parse_amounts, values)
    assert not bad1.any() and not bad2.any()
    assert _plain_amounts(pd.Series(values, dtype=ARROW)) is not None       # the fast path took them
    # Python's float() is correctly rounded: the truth. (pandas 2.2's general path reads
    # '000000000.000000001' as 0.0; the fast path does not.)
    truth = np.array([float(v) if v.strip() else np.nan for v in values])
    assert np.array_equal(v1.to_numpy(), truth, equal_nan=True)             # NaN where empty
    close = np.isclose(v2.to_numpy(), truth, rtol=1e-15, atol=0, equal_nan=True)
    assert close.all() or pd.__version__ < "3"


def test_amounts_the_fast_path_does_not_take_keep_the_general_rules():
    values = ["1,200.50", "(30)", "€ 12", "1e3", "12.", ".5", "12"]
    (v1, bad1), (v2, bad2) = _both(parse_amounts, values)
    pd.testing.assert_series_equal(v1, v2)
    pd.testing.assert_series_equal(bad1, bad2)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(plain_date, st.just("")), min_size=1, max_size=30))
def test_plain_iso_dates_fast_path_equals_the_general_path(values):
    (t1, bad1), (t2, bad2) = _both(parse_timestamps, values)
    pd.testing.assert_series_equal(t1, t2)
    assert bad1.tolist() == bad2.tolist() == [False] * len(values)
    assert t1.notna().sum() == sum(v != "" for v in values)
    given_ = pd.Series([v for v in values if v], dtype=ARROW)
    assert not len(given_) or _iso_by_arrow(given_) is not None              # the fast path took them


def test_dates_the_fast_path_does_not_take_keep_the_general_rules():
    values = ["2024-02-31", "1899-12-30", "2024-03", "2024-03-01 10:00:00", "2024-03-01T10:00:00Z", "2024-03-01"]
    (t1, bad1), (t2, bad2) = _both(parse_timestamps, values)
    pd.testing.assert_series_equal(t1, t2)
    assert bad1.tolist() == bad2.tolist() == [True, True, True, False, False, False]
