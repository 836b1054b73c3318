"""Slipping deals, expected-to-close outcomes, win rate by pushes and lost reasons (hand data of
movement_hand_data.py, docs/metrics.md section 10)."""

from __future__ import annotations

import pytest
from movement_hand_data import write_movement

import funnelkit as fk
from funnelkit.metrics import (date_changes, expected_to_close, lost_reasons, slipping_deals,
                               win_rate_by_pushes)

Q2 = fk.Period.quarter("2026Q2")


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    return fk.load(write_movement(tmp_path_factory.mktemp("slip") / "hand"))


def test_pushes_and_pull_ins_by_hand(hand):
    ch = date_changes(hand)
    got = [(r.deal_id, str(r.changed_at.date()), r.kind, r.days) for r in ch.itertuples()]
    # First recorded dates (C 03-05, D 02-01, E 03-10) are neither pushes nor pull-ins.
    assert got == [("C", "2026-04-15", "push", 52.0), ("C", "2026-05-10", "pull_in", -42.0),
                   ("D", "2026-05-05", "pull_in", -106.0)]


def test_slipping_deals_by_hand(hand):
    s = slipping_deals(hand, "2026-07-01")
    assert s["deal_id"].tolist() == ["C", "F", "A", "D", "J", "G"]
    row = s.set_index("deal_id")
    assert row.loc["C", ["pushes", "days_pushed", "pull_ins", "past_due", "days_past_due"]].tolist() == \
        [1, 52.0, 1, True, 10]
    assert row.loc["A", "days_past_due"] == 46 and row.loc["D", "pull_ins"] == 1
    assert not row.loc["G", "past_due"] and row.loc["G", "days_past_due"] == 0   # no date: never past due
    # Mid-quarter C is pushed (08-01) and no deal is past due yet (the earliest date, A 05-15, is ahead).
    mid = slipping_deals(hand, "2026-04-20").set_index("deal_id")
    assert mid.loc["C", "pushes"] == 1 and str(mid.loc["C", "expected_close_date"].date()) == "2026-08-01"
    assert not mid["past_due"].any()


def test_expected_to_close_by_hand(hand):
    t = expected_to_close(hand, Q2)
    assert t.drop(columns="group").iloc[0].to_dict() == {
        "deals": 6, "amount": 10800.0, "won": 1, "won_amount": 1200.0, "lost": 1, "pushed": 0,
        "still_open": 4, "won_share": 1 / 6}
    by_owner = expected_to_close(hand, Q2, by="owner").set_index("owner")
    assert by_owner[["deals", "amount", "won", "lost", "still_open"]].to_dict("index") == {
        "Ann": {"deals": 4, "amount": 8600.0, "won": 0, "lost": 1, "still_open": 3},
        "Cy": {"deals": 1, "amount": 1200.0, "won": 1, "lost": 0, "still_open": 0},
        "Bo": {"deals": 1, "amount": 1000.0, "won": 0, "lost": 0, "still_open": 1}}
    by_stage = expected_to_close(hand, Q2, by="stage").set_index("stage")
    assert by_stage["deals"].to_dict() == {"Lead": 4, "Qualified": 2}
    # Seen on 04-20, C had been pushed to August.
    mid = expected_to_close(hand, fk.Period.quarter("2026Q2", as_of="2026-04-20"))
    assert mid[["won", "lost", "pushed", "still_open"]].iloc[0].tolist() == [0, 0, 1, 5]


def test_win_rate_by_pushes_by_hand(hand):
    w = win_rate_by_pushes(hand, Q2)
    assert w["pushes"].astype(str).tolist() == ["0", "1", "2", "3+"]
    assert w[["deals", "won", "lost"]].values.tolist() == [[3, 2, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]]


def test_lost_reasons_by_hand(hand):
    by_stage = lost_reasons(hand, Q2)
    assert by_stage.to_dict("records") == [{"lost_reason": "Price", "stage": "Proposal", "deals": 1,
                                            "amount": 3500.0, "amount_unknown": 0}]
    assert lost_reasons(hand, Q2, by="owner")["owner"].tolist() == ["Ann"]


def test_without_a_change_log_nothing_slips(tmp_path):
    plain = fk.load(write_movement(tmp_path / "plain", changes=None))
    assert date_changes(plain).empty
    s = slipping_deals(plain, "2026-07-01")
    assert s["pushes"].sum() == 0 and s["past_due"].sum() == 5


def test_pushes_takeaway_claims_only_with_evidence():
    import pandas as pd

    from funnelkit.takeaways import pushes_takeaway

    def table(won, lost):
        return pd.DataFrame({"pushes": ["0", "1", "2", "3+"], "deals": [w + x for w, x in zip(won, lost)],
                             "won": won, "lost": lost})
    assert pushes_takeaway(table([20, 8, 2, 1], [20, 12, 8, 9])) == \
        "Deals that kept slipping were won less often: 50% with no push, 10% with 3+ pushes."
    # A 20-point fall on 5 + 5 deals is not beyond chance.
    assert pushes_takeaway(table([3, 0, 0, 2], [2, 0, 0, 3])).startswith(
        "Pushed close dates show no clear link to winning (60% with no push, 40% with 3+ pushes")
    # Buckets under 5 closed deals do not count: one bucket left is no evidence.
    assert pushes_takeaway(table([3, 1, 0, 0], [2, 2, 0, 0])) == \
        "Too few closed deals to relate pushed close dates to winning."
