"""Time in stage on the hand-made data set (tests/stages_hand_data.py); every expected value was
computed by hand (worked through in docs/metrics.md, section 2), plus property tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funnelkit as fk
from funnelkit.metrics.stage_time import (stage_thresholds, stuck_deals, time_in_stage,
                                             win_rate_by_time_in_stage)
from funnelkit.period import Period
from engines import ENGINES, on_engine
from stages_hand_data import STAGES, write_dataset
from stages_random_data import random_dataset

JAN = Period("2024-01-01", "2024-01-31")                 # as_of 2024-02-01 00:00
JAN_EARLY = Period("2024-01-01", "2024-01-31", as_of="2024-01-16")
NAN = float("nan")


@pytest.fixture(scope="module", params=ENGINES)
def ds(request, tmp_path_factory):
    return on_engine(request.param, write_dataset(tmp_path_factory.mktemp("hand")), request)


def _rows(df, cols):
    return [[None if (isinstance(x, float) and np.isnan(x)) else x for x in row]
            for row in df[cols].to_numpy().tolist()]


def _check_stage_col(df):
    assert isinstance(df["stage"].dtype, pd.CategoricalDtype)
    assert df["stage"].cat.ordered and list(df["stage"].cat.categories) == STAGES


# ---------------------------------------------------------------------------------- time_in_stage

def test_time_in_stage(ds):
    t = time_in_stage(ds, JAN)
    _check_stage_col(t)
    assert list(t.columns) == ["stage", "visits", "mean_days", "median_days", "p90_days"]
    assert list(t["stage"]) == STAGES
    # Visits ended in January: Lead 3 (D1), 3 (D3), 0 (D4, tie), 3 (D7); Qualified 5 (D1), 3 (D3),
    # 15 (D4); Proposal 10 (D1), 15 (D2, began before P), 7 (D3, moved back). Negotiation: D4's
    # visit is open at as_of. D2's Lead visit ended in December; D6's Lead visit in November.
    assert t["visits"].tolist() == [4, 3, 3, 0]
    assert t["mean_days"].tolist()[:3] == pytest.approx([9 / 4, 23 / 3, 32 / 3])
    assert t["median_days"].tolist()[:3] == pytest.approx([3, 5, 10])
    # p90, linear: Lead 0,3,3,3 at 2.7 -> 3; Qualified 3,5,15 at 1.8 -> 5 + 0.8*10 = 13;
    # Proposal 7,10,15 at 1.8 -> 10 + 0.8*5 = 14.
    assert t["p90_days"].tolist()[:3] == pytest.approx([3, 13, 14])
    assert t.iloc[3, 2:].isna().all()


def test_time_in_stage_early_as_of(ds):
    t = time_in_stage(ds, JAN_EARLY)
    # Ended before 01-16: Lead 3, 3, 0; Qualified 5, 3; Proposal 15 (D2). D3's Proposal visit ends
    # at 01-16 00:00, not before as_of: open.
    assert t["visits"].tolist() == [3, 2, 1, 0]
    assert _rows(t, ["mean_days", "median_days", "p90_days"]) == [
        [2.0, 3.0, 3.0], [4.0, 4.0, pytest.approx(4.8)], [15.0, 15.0, 15.0], [None, None, None]]


def test_time_in_stage_empty_period(ds):
    t = time_in_stage(ds, Period("2025-01-01", "2025-01-31"))
    assert list(t["stage"]) == STAGES
    assert t["visits"].tolist() == [0, 0, 0, 0]
    assert t[["mean_days", "median_days", "p90_days"]].isna().all().all()


# ---------------------------------------------------------------------------------- thresholds

def test_stage_thresholds(ds):
    th = stage_thresholds(ds, JAN.as_of)
    _check_stage_col(th)
    assert list(th.columns) == ["stage", "threshold_days", "visits"]
    # All ended visits: Lead 3, 8, 3, 0, 14, 3 -> sorted 0 3 3 3 8 14, p90 at 4.5 -> 8 + 0.5*6 = 11.
    assert th["visits"].tolist() == [6, 3, 3, 0]
    assert _rows(th, ["threshold_days"]) == [[11.0], [pytest.approx(13.0)], [pytest.approx(14.0)], [None]]
    th = stage_thresholds(ds, JAN.as_of, quantile=0.5)
    assert th["threshold_days"].tolist()[:3] == [3.0, 5.0, 10.0]
    with pytest.raises(ValueError):
        stage_thresholds(ds, JAN.as_of, quantile=90)


# ---------------------------------------------------------------------------------- stuck deals

STUCK_COLUMNS = ["deal_id", "owner", "stage", "days_in_stage", "threshold_days", "amount", "source", "product"]


def test_stuck_deals(ds):
    s = stuck_deals(ds, JAN.as_of)
    _check_stage_col(s)
    assert list(s.columns) == STUCK_COLUMNS
    # Open at 02-01: D8 Lead 11.5 days (> 11), D6 Qualified 78 days and D3 Qualified 16 days (> 13;
    # D3's current visit is its second Qualified one, from 01-16). D4 sits 7 days in Negotiation,
    # which has no ended visit, hence no threshold.
    assert s["deal_id"].tolist() == ["D8", "D6", "D3"]
    assert s["stage"].astype(str).tolist() == ["Lead", "Qualified", "Qualified"]
    assert s["days_in_stage"].tolist() == pytest.approx([11.5, 78, 16])
    assert s["threshold_days"].tolist() == pytest.approx([11, 13, 13])
    assert s["owner"].astype(str).tolist() == ["Cy", "Cy", "Ann"]
    assert _rows(s, ["amount"]) == [[None], [700.0], [2000.0]]
    assert s["source"].astype(str).tolist() == ["Event", "Referral", "Web"]
    assert s["product"].astype(str).tolist() == ["A", "A", "A"]


def test_stuck_deals_quantile_and_as_of(ds):
    # quantile 1: the longest ended visit. Lead 14 -> D8 (11.5) not stuck; Qualified 15.
    s = stuck_deals(ds, JAN.as_of, quantile=1.0)
    assert s["deal_id"].tolist() == ["D6", "D3"]
    # At 01-16: thresholds Lead 11.6 (0 3 3 8 14), Qualified 4.8 (3 5), Proposal 15 (D2).
    # Open: D1 Proposal 6 d, D3 Proposal 7 d, D4 Qualified 6 d, D6 Qualified 62 d, D7 Lead 1 d.
    # D4 will be won after as_of, but at 01-16 it is open and stuck.
    s = stuck_deals(ds, "2024-01-16")
    assert s["deal_id"].tolist() == ["D6", "D4"]
    assert s["days_in_stage"].tolist() == pytest.approx([62, 6])
    assert s["threshold_days"].tolist() == pytest.approx([4.8, 4.8])


def test_stuck_deals_none(ds):
    s = stuck_deals(ds, "2023-01-01")
    assert list(s.columns) == STUCK_COLUMNS and len(s) == 0


# ---------------------------------------------------------------------------------- win rate

def test_win_rate_by_time_in_stage_default_buckets(ds):
    w = win_rate_by_time_in_stage(ds, JAN)
    _check_stage_col(w)
    assert list(w.columns) == ["stage", "bucket", "deals", "won", "lost", "win_rate"]
    labels = ["0-7 days", "7-14 days", "14-30 days", "30-60 days", "60-90 days", "90+ days"]
    assert list(w["bucket"].cat.categories) == labels and w["bucket"].cat.ordered
    assert len(w) == 4 * 6
    # Closed in January: D1 won (Lead 3, Qualified 5, Proposal 10), D2 lost (Lead 8, Proposal 15),
    # D7 lost (Lead 3). D4 is won after as_of: not counted.
    got = {(r.stage, r.bucket): (r.deals, r.won, r.lost) for r in w.itertuples() if r.deals}
    assert got == {("Lead", "0-7 days"): (2, 1, 1), ("Lead", "7-14 days"): (1, 0, 1),
                   ("Qualified", "0-7 days"): (1, 1, 0),
                   ("Proposal", "7-14 days"): (1, 1, 0), ("Proposal", "14-30 days"): (1, 0, 1)}
    rate = w.set_index(["stage", "bucket"])["win_rate"]
    assert rate[("Lead", "0-7 days")] == 0.5 and rate[("Lead", "7-14 days")] == 0.0
    assert rate[("Proposal", "7-14 days")] == 1.0
    assert w.loc[w["deals"] == 0, "win_rate"].isna().all()
    assert (w.loc[w["stage"] == "Negotiation", "deals"] == 0).all()


def test_win_rate_by_time_in_stage_custom_buckets(ds):
    w = win_rate_by_time_in_stage(ds, JAN, buckets=[0, 5])
    assert list(w["bucket"].cat.categories) == ["0-5 days", "5+ days"]
    # Edges are left-closed: D1's 5 days in Qualified is in "5+ days".
    assert _rows(w, ["deals", "won", "lost", "win_rate"]) == [
        [2, 1, 1, 0.5], [1, 0, 1, 0.0],          # Lead
        [0, 0, 0, None], [1, 1, 0, 1.0],         # Qualified
        [0, 0, 0, None], [2, 1, 1, 0.5],         # Proposal
        [0, 0, 0, None], [0, 0, 0, None],        # Negotiation
    ]
    # At 01-16 only D2 (lost 01-12) is closed in P.
    w = win_rate_by_time_in_stage(ds, JAN_EARLY, buckets=[0, 10, float("inf")])
    assert w["deals"].tolist() == [1, 0, 0, 0, 0, 1, 0, 0]
    assert w["won"].sum() == 0
    for bad in ([5, 10], [0, 10, 10], []):
        with pytest.raises(ValueError):
            win_rate_by_time_in_stage(ds, JAN, buckets=bad)


def test_a_re_entered_stage_counts_each_visit(tmp_path):
    # One deal, lost: Lead 1 d, Qualified 2 d, back to Lead 20 d, then lost.
    deals = [("X", "2024-01-01", "lost", "2024-01-24", "10", "Web", "A", "Ann")]
    hist = [("X", "Lead", "2024-01-01"), ("X", "Qualified", "2024-01-02"), ("X", "Lead", "2024-01-04")]
    ds1 = fk.load(write_dataset(tmp_path / "x", deals, hist))
    t = time_in_stage(ds1, JAN)
    assert t["visits"].tolist() == [2, 1, 0, 0]
    assert t["mean_days"].tolist()[:2] == pytest.approx([10.5, 2])
    w = win_rate_by_time_in_stage(ds1, JAN)
    lead = w[w["stage"] == "Lead"].set_index("bucket")["deals"]
    assert lead["0-7 days"] == 1 and lead["14-30 days"] == 1


# ---------------------------------------------------------------------------------- properties

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), quantile=st.sampled_from([0.5, 0.9, 1.0]))
def test_properties(tmp_path_factory, data, quantile):
    ds, period = random_dataset(data, tmp_path_factory)
    as_of = period.as_of
    h = ds.stage_history
    d = ds.deals.set_index("deal_id")

    s = stuck_deals(ds, as_of, quantile=quantile)
    th = stage_thresholds(ds, as_of, quantile=quantile).set_index("stage")["threshold_days"]
    for r in s.itertuples():
        deal = d.loc[r.deal_id]
        assert deal["created_at"] < as_of and not (deal["closed_at"] < as_of)   # open at as_of
        seen = h[(h["deal_id"] == r.deal_id) & (h["entered_at"] < as_of)]
        last = seen.iloc[-1]
        assert last["stage"] == r.stage
        assert r.days_in_stage == pytest.approx((as_of - last["entered_at"]) / pd.Timedelta(days=1))
        assert r.days_in_stage > r.threshold_days == pytest.approx(th[r.stage])
    # The converse, from the raw tables: every deal open at as_of whose current stage has lasted
    # longer than that stage's threshold is listed.
    open_ids = d.index[(d["created_at"] < as_of) & ~(d["closed_at"] < as_of)]
    expected = set()
    for deal_id in open_ids:
        seen = h[(h["deal_id"] == deal_id) & (h["entered_at"] < as_of)]
        last = seen.iloc[-1]
        limit = th.get(last["stage"])
        if pd.notna(limit) and (as_of - last["entered_at"]) / pd.Timedelta(days=1) > limit:
            expected.add(deal_id)
    assert set(s["deal_id"]) == expected

    t = time_in_stage(ds, period)
    assert (t["visits"] >= 0).all()
    some = t[t["visits"] > 0]
    assert (some["median_days"] <= some["p90_days"] + 1e-9).all()
    assert (some[["mean_days", "median_days", "p90_days"]] >= 0).all().all()
    assert t.loc[t["visits"] == 0, ["mean_days", "median_days", "p90_days"]].isna().all().all()

    w = win_rate_by_time_in_stage(ds, period)
    assert (w["deals"] == w["won"] + w["lost"]).all()
    rate = w["win_rate"].dropna()
    assert ((rate >= 0) & (rate <= 1)).all()
    closed_in_p = d[(d["closed_at"] < as_of) & period.contains(d["closed_at"])].index
    assert w["deals"].sum() == h["deal_id"].isin(closed_in_p).sum()
