"""The optional change log (deal_changes.csv): loading, validation, and values as known at an instant."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from movement_hand_data import CHANGES, write_changes, write_movement

import funnelkit as fk
from funnelkit.changes import known_at, known_for
from funnelkit.errors import ArgumentError


@pytest.fixture()
def hand(tmp_path):
    return fk.load(write_movement(tmp_path / "hand"))


def _by_id(ds, series):
    return dict(zip(ds.deals["deal_id"], series))


def test_loads_the_log_and_the_optional_columns(hand):
    assert len(hand.deal_changes) == len(CHANGES)
    assert hand.deals["expected_close_date"].dtype == "datetime64[ns]"
    assert str(hand.deals.set_index("deal_id").loc["A", "expected_close_date"].date()) == "2026-05-15"
    assert hand.deals.set_index("deal_id").loc["E", "lost_reason"] == "Price"
    acc = {k.rsplit("/", 1)[-1]: (a.read, a.loaded, a.rejected) for k, a in hand.report.accounts.items()}
    assert acc["deal_changes.csv"] == (14, 14, 0)
    # D (amount 02-01 = created, dates 02-01) and E, F start at creation; C's category starts later.
    assert hand.report.earliest_known == {"amount": 0, "expected_close_date": 0, "forecast_category": 1}
    assert "deals whose forecast_category before its first change" in hand.report.summary()


def test_amount_as_known_at_an_instant(hand):
    # Before D's second change: 500; the change at 2026-04-20 00:00 is not seen at that instant.
    before = _by_id(hand, known_at(hand, "amount", "2026-04-20"))
    after = _by_id(hand, known_at(hand, "amount", "2026-04-20 00:00:01"))
    assert before["D"] == 500 and after["D"] == 800
    # Without a change: deals.csv. At or before the first change: the first change's value.
    assert before["A"] == 1000 and _by_id(hand, known_at(hand, "amount", "2026-01-01"))["E"] == 4000
    # E's change at the instant of its close: the close amount is 3500, the value before it 4000.
    assert _by_id(hand, known_at(hand, "amount", "2026-06-05"))["E"] == 4000
    assert _by_id(hand, known_at(hand, "amount", "2026-06-06"))["E"] == 3500


def test_expected_close_date_and_category_as_known(hand):
    at = lambda t: _by_id(hand, known_at(hand, "expected_close_date", t))  # noqa: E731
    assert str(at("2026-04-15")["C"].date()) == "2026-06-10"
    assert str(at("2026-04-16")["C"].date()) == "2026-08-01"
    assert str(at("2026-07-01")["C"].date()) == "2026-06-20"
    assert pd.isna(at("2026-07-01")["G"])
    cat = _by_id(hand, known_at(hand, "forecast_category", "2026-04-01"))
    assert cat["C"] == "Pipeline" and cat["A"] == "Commit"   # earliest known; deals.csv


def test_known_for_many_pairs_at_once(hand):
    rows = hand.deals.index[hand.deals["deal_id"].isin(["D", "F"])].to_numpy()
    got = known_for(hand, "amount", np.r_[rows, rows], ["2026-03-01"] * 2 + ["2026-05-01"] * 2)
    assert got.tolist() == [500.0, 1000.0, 800.0, 1500.0]


def test_known_for_pairs_of_every_field_agree_with_known_at(hand):
    # One deal at several instants in one call, each field: the values known_at gives at each instant.
    c = int(hand.deals.index[hand.deals["deal_id"].eq("C")][0])
    times = ["2026-04-01", "2026-04-15", "2026-04-16", "2026-07-01"]
    dates = known_for(hand, "expected_close_date", [c] * 4, times)
    assert [str(pd.Timestamp(x).date()) for x in dates] == [str(_by_id(hand, known_at(hand, "expected_close_date", t))["C"].date())
                                                            for t in times]
    assert [str(pd.Timestamp(x).date()) for x in dates[1:]] == ["2026-06-10", "2026-08-01", "2026-06-20"]
    cats = known_for(hand, "forecast_category", [c] * 4, times)
    assert cats.tolist() == [_by_id(hand, known_at(hand, "forecast_category", t))["C"] for t in times]
    assert cats[0] == "Pipeline"
    status = known_for(hand, "status", [c] * 4, times)
    assert status.tolist() == [_by_id(hand, known_at(hand, "status", t))["C"] for t in times]


def test_known_for_refuses_rows_that_are_not_deals(hand):
    with pytest.raises(ArgumentError, match="positions in ds.deals"):
        known_for(hand, "amount", [0, len(hand.deals)], ["2026-03-01"] * 2)
    with pytest.raises(ArgumentError, match="positions in ds.deals"):
        known_for(hand, "status", [-1], ["2026-03-01"])
    with pytest.raises(ArgumentError, match="unknown field"):
        known_for(hand, "owner", [0], ["2026-03-01"])


def test_without_the_log_everything_is_as_before(tmp_path, hand):
    plain = fk.load(write_movement(tmp_path / "plain", changes=None))
    assert plain.deal_changes.empty and plain.report.earliest_known == {}
    assert "deal_changes" not in " ".join(plain.report.accounts)
    assert known_at(plain, "amount", "2026-04-01").tolist() == plain.deals["amount"].tolist()
    assert known_at(plain, "amount", "2026-04-01").tolist() == [1000, 2000, 3000, 800, 3500, 1500, 700, 900, 600, 1200]
    # After the last change the log gives deals.csv's values (the loader checks the last change).
    assert known_at(hand, "amount", "2027-01-01").tolist() == plain.deals["amount"].tolist()


def _problems(folder):
    with pytest.raises(fk.DataError) as exc:
        fk.load(folder)
    return [str(p) for p in exc.value.problems]


def test_a_last_change_that_disagrees_with_deals_csv_is_named(tmp_path):
    rows = CHANGES + [("F", "2026-05-01", "amount", "1700")]
    got = _problems(write_movement(tmp_path / "x", changes=rows))
    assert got == [f"{tmp_path / 'x' / 'deal_changes.csv'}, line 16, column 'value', value '1700': the deal's "
                   "last amount change disagrees with deals.csv amount (1500.0): deals.csv holds the value at "
                   "export, which the last change must give"]
    # Lenient: that row is rejected, the rest loaded; every row accounted for.
    ds = fk.load(tmp_path / "x", errors="report")
    acc = [a for k, a in ds.report.accounts.items() if k.endswith("deal_changes.csv")][0]
    assert (acc.read, acc.loaded, acc.rejected) == (15, 14, 1)
    assert ds.report.rejected["line"].tolist() == [16]


def test_row_problems_of_the_log_are_named(tmp_path):
    rows = [
        ("Z", "2026-04-01", "amount", "5"),                      # 2: unknown deal
        ("A", "", "amount", "1000"),                             # 3: no time
        ("A", "2026-02-01", "amount", "1000"),                   # 4: before created_at
        ("H", "2026-04-01", "amount", "900"),                    # 5: after closed_at
        ("A", "2026-03-02", "stage", "x"),                       # 6: unknown field
        ("A", "2026-03-03", "amount", "12,5"),                   # 7: bad amount
        ("A", "2026-03-04", "expected_close_date", "soon"),      # 8: bad date
        ("A", "2026-03-05", "amount", "1000"),                   # 9
        ("A", "2026-03-05", "amount", "1000"),                   # 10: same instant twice
        ("A", "2026-03-06", "amount", "-3"),                     # 11: negative
    ]
    folder = write_movement(tmp_path / "bad", changes=rows)
    got = [p.split("deal_changes.csv, ")[1] for p in _problems(folder)]
    assert got == [
        "line 2, column 'deal_id', value 'Z': change of a deal not in deals.csv",
        "line 3, column 'changed_at', value empty: changed_at is required",
        "line 4, column 'changed_at', value '2026-02-01': change before the deal's created_at (2026-03-01)",
        "line 5, column 'changed_at', value '2026-04-01': change after the deal's closed_at (2026-03-20): a "
        "closed deal keeps the values it closed with, which are its values in deals.csv",
        "line 6, column 'field', value 'stage': unknown field (expected amount, expected_close_date, "
        "forecast_category or status)",
        "line 7, column 'value', value '12,5': cannot parse the amount as a number",
        "line 8, column 'value', value 'soon': cannot parse the date (expected ISO 8601 such as 2024-03-31 or "
        "2024-03-31T14:05:00)",
        "line 10, column 'changed_at', value '2026-03-05': a second change of this field of this deal at the "
        "same instant (first on line 9)",
        "line 11, column 'value', value '-3': amount is negative",
    ]


def test_bad_expected_close_date_in_deals_is_named(tmp_path):
    deals = [list(r) for r in __import__("movement_hand_data").DEALS]
    deals[0][8] = "next week"
    got = _problems(write_movement(tmp_path / "d", deals=[tuple(r) for r in deals], changes=None))
    assert got[0] == (f"{tmp_path / 'd' / 'deals.csv'}, line 2, column 'expected_close_date', value 'next week': "
                      "cannot parse the date (expected ISO 8601 such as 2024-03-31 or 2024-03-31T14:05:00)")
    # A's stage entries go with its row.
    assert [p.split(", column")[0].rsplit("/", 1)[1] for p in got[1:]] == ["stage_history.csv, line 2",
                                                                         "stage_history.csv, line 3"]


def test_filter_keeps_the_changes_of_the_kept_deals(hand):
    sub = hand.filter(owner="Bo")
    assert sorted(set(sub.deal_changes["deal_id"])) == ["D", "F"]


def test_a_header_only_log_means_no_changes(tmp_path):
    ds = fk.load(write_movement(tmp_path / "h", changes=[]))
    assert ds.deal_changes.empty
    assert known_at(ds, "amount", "2026-04-01").tolist() == ds.deals["amount"].tolist()


def test_input_files_are_not_modified(tmp_path):
    folder = write_movement(tmp_path / "same")
    before = (folder / "deal_changes.csv").read_bytes()
    fk.load(folder)
    assert (folder / "deal_changes.csv").read_bytes() == before
    write_changes(folder)
    assert (folder / "deal_changes.csv").read_bytes() == before


def test_the_contract_docs_change_log_example(tmp_path):
    import re
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "data-contract.md").read_text(encoding="utf-8")
    blocks = dict(re.findall(r"^```\w+ ([\w./-]+)\n(.*?)^```", doc, flags=re.M | re.S))
    folder = tmp_path / "example"
    folder.mkdir()
    for name in ("pipeline.yml", "deals.csv", "stage_history.csv", "deal_changes.csv"):
        (folder / name).write_text(blocks[name], encoding="utf-8")
    ds = fk.load(folder)
    amount = lambda t: _by_id(ds, known_at(ds, "amount", t))["D4"]  # noqa: E731
    assert (amount("2026-02-20"), amount("2026-02-20 00:00:01")) == (12000, 15000)
    date = lambda t: str(_by_id(ds, known_at(ds, "expected_close_date", t))["D4"].date())  # noqa: E731
    assert (date("2026-03-02"), date("2026-03-03")) == ("2026-03-31", "2026-04-30")
    assert _by_id(ds, known_at(ds, "forecast_category", "2026-01-13"))["D3"] == "Pipeline"
    status = lambda t: _by_id(ds, known_at(ds, "status", t))["D2"]  # noqa: E731
    assert [status(t) for t in ("2026-01-12", "2026-01-13", "2026-01-15 00:00:01", "2026-01-20 16:00:01")] \
        == ["open", "lost", "open", "lost"]
    assert ds.report.earliest_known == {"amount": 0, "expected_close_date": 0, "forecast_category": 1}
    assert ("deals whose forecast_category before its first change is that change's value (the earliest "
            "known): 1") in ds.report.summary()
