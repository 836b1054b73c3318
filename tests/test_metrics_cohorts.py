"""Cohort conversion over time (hand data of movement_hand_data.py, docs/metrics.md section 11)."""

from __future__ import annotations

import pytest
from movement_hand_data import write_movement

import funnelkit as fk
from funnelkit.metrics import cohort_conversion


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    return fk.load(write_movement(tmp_path_factory.mktemp("coh") / "hand"))


def _cells(c, col):
    return {(r.cohort, r.months_since): getattr(r, col) for r in c.itertuples()}


def test_cohorts_by_hand(hand):
    c = cohort_conversion(hand, "2026-07-01", months=4)
    # January: H, won in March (month 2). March: A, C, E, F, J, K; K won and E lost in June (month 3);
    # J is won on 07-15, after as_of. April: B won in May (month 1), G open.
    assert _cells(c, "won") == {
        ("2026-01", 0): 0, ("2026-01", 1): 0, ("2026-01", 2): 1, ("2026-01", 3): 1,
        ("2026-02", 0): 0, ("2026-02", 1): 0, ("2026-02", 2): 0, ("2026-02", 3): 0,
        ("2026-03", 0): 0, ("2026-03", 1): 0, ("2026-03", 2): 0, ("2026-03", 3): 1,
        ("2026-04", 0): 0, ("2026-04", 1): 1, ("2026-04", 2): 1}
    march = c[c["cohort"] == "2026-03"].set_index("months_since")
    assert march.loc[3, ["deals", "won", "lost", "open"]].tolist() == [6, 1, 1, 4]
    assert march.loc[3, "won_share"] == pytest.approx(1 / 6) and c["complete"].all()


def test_recent_cohorts_are_marked_incomplete(hand):
    c = cohort_conversion(hand, "2026-06-15", months=4)
    april = c[c["cohort"] == "2026-04"].set_index("months_since")
    # June has begun but not ended: its cell counts what is known (B won in May; G open) and says so.
    assert april["complete"].tolist() == [True, True, False]
    assert april.loc[2, ["won", "open"]].tolist() == [1, 1]
    march = c[c["cohort"] == "2026-03"].set_index("months_since")
    # March's month 3 (June) so far: E lost on 06-05 counts; K, won on 06-25, is still open.
    assert not march.loc[3, "complete"] and march.loc[3, ["won", "lost", "open"]].tolist() == [0, 1, 5]


def test_a_data_set_seen_before_any_deal_is_empty(hand):
    assert cohort_conversion(hand, "2025-01-01").empty
