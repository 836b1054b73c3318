"""Deals flagged ``dates_estimated`` count, but stay out of every duration: time in stage, the stuck
thresholds, win rate by time in stage, the owners' median days to close and the win forecast's
training. Every number below is computed by hand (docs/metrics.md, "Deals flagged dates_estimated").

The data set is the time-in-stage hand data (tests/stages_hand_data.py: P = January 2024, as_of
2024-02-01) plus two closed deals, once flagged ``dates_estimated = true`` and once ``false``:

====  ==========  ======  ==========  ======  =====  ===============================================
deal  created     status  closed      amount  owner  stage entries
====  ==========  ======  ==========  ======  =====  ===============================================
D9    2024-01-22  won     2024-01-22     900  Ann    Lead 01-22 (signed before it was entered: the
                                                     importers date it by its close, a 0-day visit)
D10   2024-01-04  lost    2024-01-24     600  Bo     Lead 01-04 (7 d), Qualified 01-11 (13 d)
====  ==========  ======  ==========  ======  =====  ===============================================

Flagged, every duration equals the hand data's own (the values of tests/test_metrics_stage_time.py)
and ``attrs["left_out_dates_estimated"]`` is 2; unflagged, D9 and D10 change them by the amounts
worked out in each test. Counts include them either way.
"""

from __future__ import annotations

import numpy as np
import pytest

from funnelkit.metrics.breakdown import amount_by
from funnelkit.metrics.forecast import win_forecast
from funnelkit.metrics.size import win_rate
from funnelkit.metrics.stage_time import (ended_visits, stage_thresholds, stuck_deals, time_in_stage,
                                          win_rate_by_time_in_stage)
from funnelkit.period import Period
from engines import ENGINES, on_engine
from hand_io import DEAL_HEADER
from stages_hand_data import DEALS, HISTORY, write_dataset

JAN = Period("2024-01-01", "2024-01-31")
AS_OF = JAN.as_of
EXTRA_DEALS = [("D9", "2024-01-22", "won", "2024-01-22", "900", "Web", "A", "Ann"),
               ("D10", "2024-01-04", "lost", "2024-01-24", "600", "Web", "B", "Bo")]
EXTRA_HISTORY = [("D9", "Lead", "2024-01-22"), ("D10", "Lead", "2024-01-04"), ("D10", "Qualified", "2024-01-11")]


def _write(folder, flag: str):
    deals = [row + ("",) for row in DEALS] + [row + (flag,) for row in EXTRA_DEALS]
    return write_dataset(folder, deals, HISTORY + EXTRA_HISTORY, header=DEAL_HEADER + ["dates_estimated"])


@pytest.fixture(scope="module", params=ENGINES)
def flagged(request, tmp_path_factory):
    return on_engine(request.param, _write(tmp_path_factory.mktemp("flagged"), "true"), request)


@pytest.fixture(scope="module")
def unflagged(tmp_path_factory, request):
    return on_engine("duckdb", _write(tmp_path_factory.mktemp("unflagged"), "false"), request)


def _stats(t):
    return [[None if np.isnan(x) else pytest.approx(x) for x in row]
            for row in t[["mean_days", "median_days", "p90_days"]].to_numpy().tolist()]


def test_counts_include_flagged_deals(flagged, unflagged):
    # Closed in January: D1 won, D2 lost, D7 lost, D9 won, D10 lost -> 2/5 (the hand data alone: 1/3).
    assert win_rate(flagged, JAN) == win_rate(unflagged, JAN) == 0.4
    # And the evidence behind the forecast's base rate counts them: 5 deals closed before as_of.
    assert win_forecast(flagged, AS_OF, adjust_for=()).attrs["base_rate"] == pytest.approx(0.4)


def test_time_in_stage(flagged, unflagged):
    t = time_in_stage(flagged, JAN)
    # The hand data's own: Lead 3, 3, 0, 3; Qualified 5, 3, 15; Proposal 10, 15, 7.
    assert t["visits"].tolist() == [4, 3, 3, 0]
    assert _stats(t)[:3] == [[9 / 4, 3, 3], [23 / 3, 5, 13], [32 / 3, 10, 14]]
    assert t.attrs["left_out_dates_estimated"] == 2
    u = time_in_stage(unflagged, JAN)
    # Unflagged, Lead gains D9's 0 and D10's 7 (0 0 3 3 3 7: mean 16/6, median 3, p90 at 4.5 ->
    # 3 + 0.5*4 = 5); Qualified gains D10's 13 (3 5 13 15: mean 9, median 9, p90 at 2.7 -> 14.4).
    assert u["visits"].tolist() == [6, 4, 3, 0]
    assert _stats(u)[:3] == [[16 / 6, 3, 5], [9, 9, 14.4], [32 / 3, 10, 14]]
    assert u.attrs["left_out_dates_estimated"] == 0


def test_ended_visits(flagged, unflagged):
    e = ended_visits(flagged, JAN)
    assert "D9" not in set(e["deal_id"]) and "D10" not in set(e["deal_id"]) and len(e) == 10
    assert e.attrs["left_out_dates_estimated"] == 2
    assert len(ended_visits(unflagged, JAN)) == 13


def test_stage_thresholds_and_stuck_deals(flagged, unflagged):
    th = stage_thresholds(flagged, AS_OF)
    # The hand data's own: Lead 0 3 3 3 8 14 -> p90 11; Qualified 3 5 15 -> 13; Proposal 7 10 15 -> 14.
    assert th["visits"].tolist() == [6, 3, 3, 0]
    assert th["threshold_days"].tolist()[:3] == pytest.approx([11, 13, 14])
    assert th.attrs["left_out_dates_estimated"] == 2
    u = stage_thresholds(unflagged, AS_OF)
    # Unflagged: Lead 0 0 3 3 3 7 8 14 -> p90 at 6.3: 8 + 0.3*6 = 9.8; Qualified 3 5 13 15 -> 14.4.
    assert u["visits"].tolist() == [8, 4, 3, 0]
    assert u["threshold_days"].tolist()[:3] == pytest.approx([9.8, 14.4, 14])
    s = stuck_deals(flagged, AS_OF)
    assert s["deal_id"].tolist() == ["D8", "D6", "D3"]
    assert s["threshold_days"].tolist() == pytest.approx([11, 13, 13])
    assert s.attrs["left_out_dates_estimated"] == 2
    s = stuck_deals(unflagged, AS_OF)
    # The same deals are stuck (D8 11.5 > 9.8; D6 78 and D3 16 > 14.4), against other thresholds.
    assert s["deal_id"].tolist() == ["D8", "D6", "D3"]
    assert s["threshold_days"].tolist() == pytest.approx([9.8, 14.4, 14.4])


def _cells(w):
    return {(str(r.stage), str(r.bucket)): (r.deals, r.won, r.lost) for r in w.itertuples() if r.deals}


def test_win_rate_by_time_in_stage(flagged, unflagged):
    w = win_rate_by_time_in_stage(flagged, JAN)
    hand = {("Lead", "0-7 days"): (2, 1, 1), ("Lead", "7-14 days"): (1, 0, 1),
            ("Qualified", "0-7 days"): (1, 1, 0),
            ("Proposal", "7-14 days"): (1, 1, 0), ("Proposal", "14-30 days"): (1, 0, 1)}
    assert _cells(w) == hand
    assert w.attrs["left_out_dates_estimated"] == 2
    # Unflagged: D9's Lead 0 d (won) joins Lead 0-7; D10's Lead 7 d and Qualified 13 d (lost)
    # join the 7-14 buckets.
    u = _cells(win_rate_by_time_in_stage(unflagged, JAN))
    assert u == {**hand, ("Lead", "0-7 days"): (3, 2, 1), ("Lead", "7-14 days"): (2, 0, 2),
                 ("Qualified", "7-14 days"): (1, 0, 1)}


def test_owners_median_days_to_close(flagged, unflagged):
    # Won in January: Ann's D1 (18 days) and D9 (0 days, flagged).
    ann = amount_by(flagged, JAN, by="owner").set_index("owner").loc["Ann"]
    assert ann["won_deals"] == 2 and ann["won_amount"] == 1900
    assert ann["median_days_to_close"] == 18
    assert amount_by(flagged, JAN, by="owner").attrs["left_out_dates_estimated"] == 1
    u = amount_by(unflagged, JAN, by="owner").set_index("owner").loc["Ann"]
    assert u["median_days_to_close"] == 9          # (0 + 18) / 2


def test_win_forecast_training(flagged, unflagged):
    # k = 10, no group adjustments. p0 = 2/5 either way (a count). Training visits (deals closed
    # before as_of), flagged: Lead D1 3 (won), D2 8, D7 3; Qualified D1 5 (won); unflagged also
    # Lead D9 0 (won), D10 7 and Qualified D10 13. No training visit lasted as long as the open
    # deals' (D8 Lead 11.5 d, D3 Qualified 16 d, D6 Qualified 78 d), so p_win = p_stage:
    #   flagged:   Lead (1 + 4) / (3 + 10) = 5/13,  Qualified (1 + 4) / (1 + 10) = 5/11
    #   unflagged: Lead (2 + 4) / (5 + 10) = 6/15,  Qualified (1 + 4) / (2 + 10) = 5/12
    # D4 in Negotiation has no training visit there: p0 = 0.4.
    for ds, lead, qualified, left_out in ((flagged, 5 / 13, 5 / 11, 2), (unflagged, 6 / 15, 5 / 12, 0)):
        fc = win_forecast(ds, AS_OF, adjust_for=()).set_index("deal_id")
        assert fc.loc[["D8", "D3", "D6", "D4"], "p_win"].tolist() == pytest.approx(
            [lead, qualified, qualified, 0.4])
        assert fc.loc[["D8", "D3", "D6"], "similar_visits"].tolist() == [0, 0, 0]
        assert fc.attrs["trained_on_deals"] == 5
        assert fc.attrs["left_out_dates_estimated"] == left_out
