"""Deals per stage on the hand-made data set (tests/stages_hand_data.py); every expected value was
computed by hand (worked through in docs/metrics.md, section 1), plus property tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.metrics.stages import (bottleneck, cohort_outcomes, funnel, snapshot, stage_flow,
                                      week_ends, weekly_snapshots)
from funnelkit.period import Period
from engines import ENGINES, on_engine, with_change_log
from movement_hand_data import write_movement
from reopen_hand_data import write_reopen
from stages_hand_data import STAGES, write_dataset

JAN = Period("2024-01-01", "2024-01-31")                 # as_of 2024-02-01 00:00
JAN_EARLY = Period("2024-01-01", "2024-01-31", as_of="2024-01-16")


@pytest.fixture(scope="module", params=ENGINES)
def ds(request, tmp_path_factory):
    return on_engine(request.param, write_dataset(tmp_path_factory.mktemp("hand")), request)


@pytest.fixture(scope="module", params=ENGINES)
def moves(request, tmp_path_factory):
    """The hand data of movement_hand_data.py, whose change log dates amount changes, on each engine."""
    return with_change_log(request.param, write_movement(tmp_path_factory.mktemp("mv") / "hand"), request)


@pytest.fixture(scope="module", params=ENGINES)
def reopened(request, tmp_path_factory):
    """The hand data of reopen_hand_data.py (earlier closes and reopenings), on each engine, with the
    loaded folder it came from."""
    folder = write_reopen(tmp_path_factory.mktemp("reopen") / "hand")
    return with_change_log(request.param, folder, request), fk.load(folder)


def _check_stage_col(df):
    assert isinstance(df["stage"].dtype, pd.CategoricalDtype)
    assert df["stage"].cat.ordered
    assert list(df["stage"].cat.categories) == STAGES


# ---------------------------------------------------------------------------------- snapshot

def test_snapshot_at_as_of(ds):
    s = snapshot(ds, JAN.as_of)
    _check_stage_col(s)
    assert list(s.columns) == ["stage", "open_deals", "open_amount", "open_amount_unknown"]
    assert list(s["stage"]) == STAGES
    # D8 (Lead, amount unknown), D3 + D6 (Qualified), none in Proposal, D4 (closes after as_of).
    assert s["open_deals"].tolist() == [1, 2, 0, 1]
    # Lead holds only D8, of unknown amount: its open amount is unknown (NaN), not 0; empty Proposal is 0.
    assert s["open_amount"].tolist()[1:] == [2700.0, 0.0, 800.0] and np.isnan(s["open_amount"].iloc[0])
    assert s["open_amount_unknown"].tolist() == [1, 0, 0, 0]
    counts = snapshot(ds, JAN.as_of, amounts=False)
    assert list(counts.columns) == ["stage", "open_deals"] and counts["open_deals"].tolist() == [1, 2, 0, 1]


def test_snapshot_events_at_the_instant_are_not_seen(ds):
    # At 2024-01-15 00:00 D7 (created at that instant) is not there yet; D3's move back (01-16)
    # is not seen; D2 closed 01-12 is gone.
    s = snapshot(ds, "2024-01-15")
    assert s["open_deals"].tolist() == [0, 2, 2, 0]
    assert s["open_amount"].tolist() == [0.0, 1500.0, 3000.0, 0.0]
    s = snapshot(ds, "2024-01-15 00:00:01")
    assert s["open_deals"].tolist() == [1, 2, 2, 0]
    # Before any deal exists: zeros in every stage.
    s = snapshot(ds, "2023-01-01")
    assert s["open_deals"].tolist() == [0, 0, 0, 0]


def test_snapshot_amounts_as_known_at_the_instant(moves):
    """With a change log, each open deal counts with its amount as known at the instant
    (movement_hand_data.py): D 500 until its change to 800 on 04-20; F 1000 until 1500 on 04-25;
    E 4000 until its change to 3500 at the instant of its close (06-05 00:00), never seen open."""
    def rows(at):
        s = snapshot(moves, at)
        return s[["open_deals", "open_amount", "open_amount_unknown"]].to_numpy().tolist()

    # 04-01: Lead C 3000, D 500, E 4000, F 1000, K 1200; Qualified A 1000, J 600 (H won 03-20).
    assert rows("2026-04-01") == [[5, 9700.0, 0], [2, 1600.0, 0], [0, 0.0, 0]]
    # 04-21: Lead B 2000, D 800, F 1000, G 700, K 1200; Qualified A, C (04-20), J; Proposal E 4000.
    assert rows("2026-04-21") == [[5, 5700.0, 0], [3, 4600.0, 0], [1, 4000.0, 0]]
    # 06-05 00:00: B won (05-20); Lead D 800, F 1500, G 700, K 1200; E still open with 4000.
    assert rows("2026-06-05") == [[4, 4200.0, 0], [3, 4600.0, 0], [1, 4000.0, 0]]
    assert rows("2026-06-05 00:00:01") == [[4, 4200.0, 0], [3, 4600.0, 0], [0, 0.0, 0]]
    # The weekly series sees each week end as known then: the same numbers as the snapshots.
    w = weekly_snapshots(moves, Period("2026-04-01", "2026-04-30"))
    assert sorted(set(w["at"])) == [pd.Timestamp(x) for x in
                                    ["2026-04-06", "2026-04-13", "2026-04-20", "2026-04-27", "2026-05-01"]]
    for at, grp in w.groupby("at"):
        pd.testing.assert_frame_equal(grp.drop(columns="at").reset_index(drop=True), snapshot(moves, at))
    # 04-20 00:00: D's change to 800 and C's move to Qualified at that instant are not seen yet
    # (Lead: B, C, D, F, G, K); 04-27: D's 800 and F's 1500 are, and C has left Lead.
    lead = w[w["stage"] == "Lead"].set_index("at")["open_amount"]
    assert lead[pd.Timestamp("2026-04-20")] == 2000 + 3000 + 500 + 1000 + 700 + 1200
    assert lead[pd.Timestamp("2026-04-27")] == 2000 + 800 + 1500 + 700 + 1200


def test_snapshots_leave_out_closed_spells_on_every_engine(reopened):
    """A deal closed by an earlier close is out of the open pipeline until it reopens
    (reopen_hand_data.py; its hand numbers are asserted in test_reopen.py on the loaded folder): every
    engine gives the loaded folder's snapshots and weekly series."""
    ds, ref = reopened
    # 04-15: P (lost 04-10), Q (lost 03-15 until 04-20), R (lost 03-25 until 05-05), V (lost 03-01) are
    # closed; S and T are open in Lead.
    assert snapshot(ds, "2026-04-15")["open_deals"].tolist() == [2, 0, 0]
    for at in ["2026-04-01", "2026-04-15", "2026-05-02", "2026-05-16", "2026-06-02", "2026-07-01"]:
        pd.testing.assert_frame_equal(snapshot(ds, at), snapshot(ref, at))
    pd.testing.assert_frame_equal(weekly_snapshots(ds, "2026Q2"), weekly_snapshots(ref, "2026Q2"))


def test_week_ends():
    assert week_ends(JAN) == [pd.Timestamp(x) for x in
                              ["2024-01-08", "2024-01-15", "2024-01-22", "2024-01-29", "2024-02-01"]]
    # Week ends after as_of are dropped.
    assert week_ends(JAN_EARLY) == [pd.Timestamp(x) for x in ["2024-01-08", "2024-01-15", "2024-01-16"]]
    # A period ending on a Sunday: its last week end is as_of itself (no repeat).
    assert week_ends(Period("2024-01-01", "2024-01-14")) == [pd.Timestamp("2024-01-08"),
                                                             pd.Timestamp("2024-01-15")]
    # A period with no Sunday: as_of alone.
    assert week_ends(Period("2024-01-02", "2024-01-04")) == [pd.Timestamp("2024-01-05")]


def test_weekly_snapshots(ds):
    w = weekly_snapshots(ds, JAN)
    _check_stage_col(w)
    assert list(w.columns) == ["at", "stage", "open_deals", "open_amount", "open_amount_unknown"]
    assert len(w) == 5 * 4
    deals = w.pivot(index="at", columns="stage", values="open_deals")
    amount = w.pivot(index="at", columns="stage", values="open_amount")
    assert deals.to_numpy().tolist() == [
        [0, 3, 1, 0],   # 01-08: D1, D3, D6 in Qualified; D2 in Proposal
        [0, 2, 2, 0],   # 01-15: D4, D6 / D1, D3
        [1, 3, 0, 0],   # 01-22: D8 / D3 (moved back), D4, D6
        [1, 2, 0, 1],   # 01-29: D8 / D3, D6 / D4 in Negotiation
        [1, 2, 0, 1],   # 02-01 (as_of)
    ]
    assert amount.fillna(-1).to_numpy().tolist() == [
        [0, 3700, 500, 0],
        [0, 1500, 3000, 0],
        [-1, 3500, 0, 0],        # from 01-22 Lead holds D8 alone, of unknown amount: NaN, not 0
        [-1, 2700, 0, 800],
        [-1, 2700, 0, 800],
    ]
    unknown = w.pivot(index="at", columns="stage", values="open_amount_unknown")
    assert unknown.sum(axis=1).tolist() == [0, 0, 1, 1, 1]
    # The as_of point equals the snapshot at as_of.
    last = w[w["at"] == JAN.as_of].reset_index(drop=True)
    pd.testing.assert_frame_equal(last.drop(columns="at"), snapshot(ds, JAN.as_of))


def test_weekly_snapshots_early_as_of(ds):
    w = weekly_snapshots(ds, JAN_EARLY)
    deals = w.pivot(index="at", columns="stage", values="open_deals")
    assert list(deals.index) == week_ends(JAN_EARLY)
    # 01-16 00:00: D7 (Lead), D4 + D6 (Qualified), D1 + D3 (Proposal; D3's move back at 01-16 00:00
    # is not seen yet).
    assert deals.to_numpy().tolist() == [[0, 3, 1, 0], [0, 2, 2, 0], [1, 2, 2, 0]]


# ---------------------------------------------------------------------------------- funnel

def test_funnel(ds):
    f = funnel(ds, JAN)
    _check_stage_col(f)
    assert list(f.columns) == ["stage", "reached", "conversion"]
    # Cohort D1, D3, D4, D7, D8. Furthest: D1 won (all stages), D3 Proposal (moved back later),
    # D4 Negotiation (skipped Proposal: counts as passed), D7 and D8 Lead.
    assert f["reached"].tolist() == [5, 3, 3, 2]
    assert f["conversion"].tolist() == pytest.approx([3 / 5, 3 / 3, 2 / 3, 1 / 2])


def test_funnel_early_as_of(ds):
    # Cohort seen at 01-16: D1 (not yet won, Proposal), D3 (Proposal), D4 (Qualified; Negotiation
    # 01-25 unseen), D7 (Lead, not yet lost). Nobody reached Negotiation: its conversion is NaN.
    f = funnel(ds, JAN_EARLY)
    assert f["reached"].tolist() == [4, 3, 2, 0]
    conv = f["conversion"].to_numpy()
    assert conv[:3].tolist() == pytest.approx([3 / 4, 2 / 3, 0.0])
    assert np.isnan(conv[3])


def test_cohort_outcomes(ds):
    assert cohort_outcomes(ds, JAN) == {"deals": 5, "won": 1, "lost": 1, "open": 3}
    # D4 is won on 02-10, after as_of: open. D2 and D6 were created before P, D5 after as_of.
    assert cohort_outcomes(ds, JAN_EARLY) == {"deals": 4, "won": 0, "lost": 0, "open": 4}
    # Empty cohort.
    assert cohort_outcomes(ds, Period("2025-01-01", "2025-01-31")) == {"deals": 0, "won": 0, "lost": 0, "open": 0}


def test_funnel_empty_cohort(ds):
    f = funnel(ds, Period("2025-01-01", "2025-01-31"))
    assert list(f["stage"]) == STAGES
    assert f["reached"].tolist() == [0, 0, 0, 0]
    assert f["conversion"].isna().all()


# ---------------------------------------------------------------------------------- stage flow

FLOW_COLUMNS = ["stage", "visits", "advanced", "skipped ahead", "moved back", "won", "lost", "still there"]


def test_stage_flow(ds):
    fl = stage_flow(ds, JAN)
    _check_stage_col(fl)
    assert list(fl.columns) == FLOW_COLUMNS
    assert fl.drop(columns="stage").to_numpy().tolist() == [
        # visits adv skip back won lost still
        [5, 3, 0, 0, 0, 1, 1],   # Lead: D1 D3 D4(0 days, tie) advanced; D7 lost; D8 still there
        [4, 2, 1, 0, 0, 0, 1],   # Qualified: D1, D3 advanced; D4 skipped; D3's second visit still there
        [2, 0, 0, 1, 1, 0, 0],   # Proposal: D3 moved back; D1 won
        [1, 0, 0, 0, 0, 0, 1],   # Negotiation: D4 (closes after as_of)
    ]


def test_stage_flow_early_as_of(ds):
    fl = stage_flow(ds, JAN_EARLY)
    assert fl.drop(columns="stage").to_numpy().tolist() == [
        [4, 3, 0, 0, 0, 0, 1],   # D7 not yet lost
        [3, 2, 0, 0, 0, 0, 1],   # D4's skip not yet seen
        [2, 0, 0, 0, 0, 0, 2],   # D1 not yet won, D3 not yet moved back
        [0, 0, 0, 0, 0, 0, 0],
    ]


# ---------------------------------------------------------------------------------- bottleneck

def test_bottleneck(ds):
    b = bottleneck(ds, JAN)
    assert b == {"lowest_conversion_stage": "Negotiation", "lowest_conversion": 0.5,
                 "largest_drop_stage": "Proposal", "largest_drop": 2,
                 "largest_drop_week": pd.Timestamp("2024-01-22")}


def test_bottleneck_early_as_of(ds):
    b = bottleneck(ds, JAN_EARLY)
    # Conversions 0.75, 0.667, 0.0, NaN -> Proposal. Qualified falls 3 -> 2 at 01-15.
    assert b == {"lowest_conversion_stage": "Proposal", "lowest_conversion": 0.0,
                 "largest_drop_stage": "Qualified", "largest_drop": 1,
                 "largest_drop_week": pd.Timestamp("2024-01-15")}


def test_bottleneck_nothing_to_name(ds):
    b = bottleneck(ds, Period("2025-01-01", "2025-01-03"))  # empty cohort, one snapshot instant
    assert b == dict.fromkeys(["lowest_conversion_stage", "lowest_conversion", "largest_drop_stage",
                               "largest_drop", "largest_drop_week"])


def test_bottleneck_ignores_currency_but_snapshot_refuses_mixed(tmp_path):
    from hand_io import DEAL_HEADER
    from stages_hand_data import DEALS
    rows = [tuple(r) + ("EUR" if r[0] == "D1" else "USD",) for r in DEALS]
    mixed = fk.load(write_dataset(tmp_path / "mixed", deals=rows, header=DEAL_HEADER + ["currency"]))
    with pytest.raises(fk.MixedCurrencyError):
        snapshot(mixed, JAN.as_of)
    with pytest.raises(fk.MixedCurrencyError):
        weekly_snapshots(mixed, JAN)
    assert bottleneck(mixed, JAN)["largest_drop"] == 2
    assert funnel(mixed, JAN)["reached"].tolist() == [5, 3, 3, 2]


# ---------------------------------------------------------------------------------- properties

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from stages_random_data import random_dataset  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_properties(tmp_path_factory, data):
    ds, period = random_dataset(data, tmp_path_factory)
    as_of = period.as_of
    d = ds.deals
    open_at = ((d["created_at"] < as_of) & ~(d["closed_at"] < as_of)).sum()
    s = snapshot(ds, as_of)
    assert s["open_deals"].sum() == open_at
    assert (s["open_deals"] >= 0).all()
    w = weekly_snapshots(ds, period)
    for at, grp in w.groupby("at"):
        assert grp["open_deals"].sum() == ((d["created_at"] < at) & ~(d["closed_at"] < at)).sum()
    # Amounts: the snapshot total is the sum of known amounts of the open deals.
    open_amounts = d.loc[(d["created_at"] < as_of) & ~(d["closed_at"] < as_of), "amount"]
    assert s["open_amount"].sum() == pytest.approx(open_amounts.sum())
    assert s["open_amount_unknown"].sum() == open_amounts.isna().sum()
    # A stage's sum is unknown (NaN) exactly when it has open deals and none of known amount.
    assert (s["open_amount"].isna() == ((s["open_deals"] > 0) & (s["open_amount_unknown"] == s["open_deals"]))).all()

    f = funnel(ds, period)
    reached = f["reached"].to_numpy()
    assert (np.diff(reached) <= 0).all()
    conv = f["conversion"].dropna()
    assert ((conv >= 0) & (conv <= 1)).all()
    out = cohort_outcomes(ds, period)
    assert out["deals"] == out["won"] + out["lost"] + out["open"]
    assert reached[0] == out["deals"]
    assert reached[-1] >= out["won"]

    fl = stage_flow(ds, period)
    parts = fl[["advanced", "skipped ahead", "moved back", "won", "lost", "still there"]].sum(axis=1)
    assert (parts == fl["visits"]).all()
    begun = ds.visits[(ds.visits["entered_at"] < as_of) & period.contains(ds.visits["entered_at"])]
    assert fl["visits"].sum() == len(begun)

    b = bottleneck(ds, period)
    if b["lowest_conversion"] is not None:
        assert b["lowest_conversion"] == pytest.approx(conv.min())
    if b["largest_drop"] is not None:
        assert b["largest_drop"] > 0
        assert b["largest_drop_week"] in week_ends(period)


# ---------------------------------------------------------------------------------- generated sample

def test_generated_sample_agrees_with_the_as_of_views(tmp_path):
    """The one-pass weekly engine agrees with history.stage_at at every instant of the series."""
    from funnelkit.history import stage_at
    from funnelkit.sample import write_sample
    sample = fk.load(write_sample(tmp_path / "s", deals=400, seed=3))
    period = Period.quarter("2025Q2")
    w = weekly_snapshots(sample, period)
    assert len(w) == len(week_ends(period)) * len(sample.stages) and len(week_ends(period)) == 14
    for at, grp in w.groupby("at"):
        cur = stage_at(sample, at)
        assert grp["open_deals"].tolist() == cur["stage"].value_counts().reindex(sample.stages).tolist()
        amount = sample.deals["amount"].to_numpy()[cur["deal_row"].to_numpy()]
        by_stage = pd.Series(amount).groupby(cur["stage_index"].to_numpy()).sum()
        assert grp["open_amount"].tolist() == pytest.approx(
            by_stage.reindex(range(len(sample.stages)), fill_value=0).tolist())
    f = funnel(sample, period)
    assert f["reached"].iloc[0] == cohort_outcomes(sample, period)["deals"] > 0
    assert (np.diff(f["reached"]) <= 0).all()
    fl = stage_flow(sample, period)
    assert fl["visits"].sum() > 0 and (fl.iloc[:, 2:].sum(axis=1) == fl["visits"]).all()
