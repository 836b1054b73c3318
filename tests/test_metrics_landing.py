"""The landing forecast, coverage and pacing on hand-made data (tests/landing_hand_data.py), and the
"delete the future" honesty property on random data."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funnelkit as fk
from funnelkit.metrics.landing import coverage, landing_forecast, pacing, won_between
from landing_hand_data import landing_dataset
from stages_random_data import random_dataset

Q2 = fk.Period.quarter("2024Q2")
AT = "2024-05-01"


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return landing_dataset(tmp_path_factory.mktemp("landing"))


def test_won_so_far_counts_the_deals_won_in_the_period_before_at(ds):
    assert won_between(ds, Q2.start, pd.Timestamp(AT)) == {"deals": 2, "amount": 2000.0, "amount_unknown_deals": 0}


def test_open_deal_probability_is_the_share_of_similar_past_visits_won_in_the_window(ds):
    lf = landing_forecast(ds, Q2, AT, prior_strength=0, adjust_for=())
    o1 = lf.open_deals.set_index("deal_id")
    assert set(o1.index) == {"H4", "O1"}
    assert o1.loc["O1", "window_evidence"] == 5
    assert o1.loc["O1", "p_in_period"] == pytest.approx(2 / 5)
    # H4 has sat 90 days in A; only it lasted that long among the visits whose window had passed
    # (91-day window past day 90 needs an entry 151 days before at: none), so it rests on nothing
    # with k = 0 and falls back to the stage's share for a deal just entering it.
    assert o1.loc["H4", "window_evidence"] == 0


def test_landing_total_is_won_so_far_plus_open_plus_new(ds):
    lf = landing_forecast(ds, Q2, AT, prior_strength=0, adjust_for=(), target=3400)
    assert lf.won_so_far["amount"] == 2000.0
    p_h4 = lf.open_deals.set_index("deal_id").loc["H4", "p_in_period"]
    # The stage's share for a deal just entering A (d = 0, window [0, 61) days): visits whose window
    # had passed by at (entered at or before 2024-03-01) - H1, H2, H3, H4, N1, W1 - of which H1, N1
    # and W1 (won 45 days after entry) were won in it.
    assert p_h4 == pytest.approx(3 / 6)
    assert lf.from_open_amount == pytest.approx(1000 * (0.4 + 0.5))
    # new deals: 2024Q1 from day 30 (2024-01-31): N1 (created 02-10, won 03-01) = 1 deal, 1000
    assert lf.from_new_amount == 1000.0 and lf.from_new_deals == 1.0
    assert list(lf.new_deals["period"]) == ["2024Q1"]
    assert lf.expected_amount == pytest.approx(2000 + 900 + 1000)
    assert lf.low_amount <= lf.expected_amount <= lf.high_amount
    # P(total >= 3800): open bets (1000 at 0.4 and 1000 at 0.5) + 1000 x Poisson(1) >= 1800, i.e.
    # at least 2 of them: 1 - P(fewer), hand-computed from the distributions.
    p0 = 0.6 * 0.5
    p1 = 0.4 * 0.5 + 0.6 * 0.5
    e = math.exp(-1)
    p_less = p0 * (e + e) + p1 * e       # open 0 & new <= 1, open 1 & new 0
    lf2 = landing_forecast(ds, Q2, AT, prior_strength=0, adjust_for=(), target=3800)
    assert lf2.p_reach_target == pytest.approx(1 - p_less, abs=0.03)


def test_the_same_inputs_give_the_same_numbers(ds):
    a = landing_forecast(ds, Q2, AT, target=3000).to_dict()
    b = landing_forecast(ds, Q2, AT, target=3000).to_dict()
    assert a == b


def test_after_the_period_nothing_is_left_to_forecast(ds):
    lf = landing_forecast(ds, Q2, "2024-07-01")
    assert lf.from_open_amount == 0.0 and lf.from_new_amount == 0.0
    assert lf.expected_amount == lf.low_amount == lf.high_amount == 2000.0


def test_unknown_won_amounts_are_counted_not_added_as_zero(ds):
    deals = ds.deals.copy()
    deals.loc[deals["deal_id"].isin(["H3", "W1"]), "amount"] = np.nan
    lf = landing_forecast(replace(ds, deals=deals), Q2, AT)
    assert lf.won_so_far == {"deals": 2, "amount": None, "amount_unknown_deals": 2}
    assert lf.expected_amount is None and lf.low_amount is None
    assert any("unknown" in n for n in lf.notes)


def test_pacing_against_the_same_point_of_earlier_periods(ds):
    p = pacing(ds, Q2, AT).set_index("compared")
    assert p.loc["this period", "won_amount"] == 2000.0
    # previous period to the same offset (30 days): 2024-01-01..01-31: H1
    assert p.loc["previous period", "won_amount"] == 1000.0
    assert p.loc["previous period", "change"] == pytest.approx(1.0)
    assert p.loc["a year before", "won_deals"] == 0
    assert not p.loc["a year before", "covered_by_data"]
    assert pd.isna(p.loc["a year before", "change"])


def test_coverage_is_open_pipeline_over_the_gap(ds):
    c = coverage(ds, Q2, AT, target=5000)
    assert c["gap"] == 3000.0
    assert c["pipeline"] == 2000.0 and c["pipeline_deals"] == 2        # H4, O1
    assert c["coverage"] == pytest.approx(2000 / 3000)
    # 2024Q1 seen at day 30: H2 and H3 open (2000); none of them won before 2024-04-01
    assert c["conversion"] == 0.0 and c["conversion_periods"] == 1
    assert c["pipeline_needed"] is None


def _truncate(ds, t):
    """The data as it stood just before ``t``: every event at or after ``t`` deleted."""
    t = pd.Timestamp(t)
    d = ds.deals[ds.deals["created_at"] < t]
    later = ~(d["closed_at"] < t)
    d = d.assign(status=d["status"].astype(str).where(~later, "open"),
                 closed_at=d["closed_at"].where(~later)).reset_index(drop=True)
    d["status"] = pd.Categorical(d["status"], categories=ds.deals["status"].cat.categories) \
        if isinstance(ds.deals["status"].dtype, pd.CategoricalDtype) else d["status"]
    h = ds.stage_history[ds.stage_history["entered_at"] < t].reset_index(drop=True)
    return replace(ds, deals=d, stage_history=h)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_a_forecast_made_at_t_does_not_change_when_the_future_is_deleted(data, tmp_path_factory):
    ds, period = random_dataset(data, tmp_path_factory)
    at = period.start + pd.Timedelta(hours=data.draw(st.integers(-24 * 20, 24 * 40), label="at hours"))
    if at < ds.deals["created_at"].min():
        at = ds.deals["created_at"].min() + pd.Timedelta(hours=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = landing_forecast(ds, period, at, simulations=300, lookback=2)
        cut = landing_forecast(_truncate(ds, at), period, at, simulations=300, lookback=2)
    assert full.to_dict() == cut.to_dict()
    cols = ["deal_id", "p_in_period", "expected_in_period"]
    pd.testing.assert_frame_equal(full.open_deals[cols].reset_index(drop=True),
                                  cut.open_deals[cols].reset_index(drop=True))



def test_forecast_categories_against_the_model_and_the_outcome(tmp_path):
    from funnelkit.metrics.categories import CLOSED, forecast_categories
    from landing_hand_data import categories_dataset
    ds = categories_dataset(tmp_path)
    t = forecast_categories(ds, Q2, AT, prior_strength=0, adjust_for=()).set_index("category")
    assert list(t.index) == [CLOSED, "Commit", "Pipeline"]
    assert t.loc[CLOSED, ["deals", "amount"]].tolist() == [2, 2000.0]
    assert t.loc["Commit", ["deals", "amount", "won_in_period_deals", "won_in_period_share"]].tolist() == [1, 1000.0, 1, 1.0]
    assert t.loc["Commit", "model_p_in_period"] == pytest.approx(0.4)
    assert t.loc["Commit", "model_expected_amount"] == pytest.approx(400.0)
    assert t.loc["Pipeline", "model_p_in_period"] == pytest.approx(0.5)
    assert t.loc["Pipeline", ["won_in_period_deals", "won_in_period_share"]].tolist() == [0, 0.0]
    assert t.attrs["hindsight"] is True


def test_forecast_categories_need_the_column(ds):
    from funnelkit.metrics.categories import forecast_categories
    with pytest.raises(ValueError, match="forecast_category"):
        forecast_categories(ds, Q2, AT)


def test_accuracy_record_scores_each_week_against_the_actual(tmp_path):
    from funnelkit.metrics.accuracy import forecast_accuracy
    from landing_hand_data import categories_dataset
    ds = categories_dataset(tmp_path)
    acc = forecast_accuracy(ds, ["2024Q2"], simulations=200, prior_strength=0, adjust_for=())
    f = acc.forecasts
    assert len(f) == 13 and f["week"].tolist() == list(range(13))
    # won in 2024Q2: H3, W1, O1
    assert (f["actual"] == 3000.0).all()
    last = f.iloc[-1]          # 2024-06-24: H3, W1 won; O1 won 06-10 -> all three won so far
    # H4 (144 days in A, 7 days left) has no similar visit; no visit of A was won within 7 days of
    # its entry, so its chance is 0; no deal was created in the last 7 days of 2024Q1.
    assert last["expected"] == 3000.0 and last["error"] == 0.0
    assert bool(last["inside_range"])
    # commit baseline at week 0 (2024-04-01): nothing won yet; open Commit deals then: none (O1 is
    # created 04-21) -> 0
    assert f.loc[0, "commit"] == 0.0
    # at 2024-04-29: H3 and W1 won so far (2000) + O1 in Commit (1000)
    assert f.loc[f["at"] == pd.Timestamp("2024-04-29"), "commit"].item() == 3000.0
    s = acc.summary
    assert s.loc["landing forecast", "forecasts"] == 13


def test_split_by_owner_adds_up_to_the_team(ds):
    lf = landing_forecast(ds, Q2, AT, prior_strength=0, adjust_for=())
    by = lf.by("owner", targets={"Ann": 1000.0}).set_index("owner")
    # won so far: H3 (Bo), W1 (Bo); open: H4 (Bo, 0.5), O1 (Ann, 0.4); new: N1 (Ann) in 2024Q1
    assert by.loc["Bo", ["won_so_far_deals", "won_so_far_amount"]].tolist() == [2, 2000.0]
    assert by.loc["Bo", "from_open_amount"] == pytest.approx(500.0)
    assert by.loc["Ann", "from_open_amount"] == pytest.approx(400.0)
    assert by.loc["Ann", "from_new_amount"] == 1000.0 and by.loc["Bo", "from_new_amount"] == 0.0
    assert by["expected_amount"].sum() == pytest.approx(lf.expected_amount)
    # Ann reaches 1000 when O1 is won or at least one new deal comes: 1 - 0.6 e^-1
    assert by.loc["Ann", "p_reach_target"] == pytest.approx(1 - 0.6 * math.exp(-1), abs=0.03)
    with pytest.raises(ValueError, match="no deal column 'ownr'"):
        lf.by("ownr")


def test_metrics_json_blocks(ds):
    from funnelkit.metrics.summary import format_summary, metrics_summary
    s = metrics_summary(ds, fk.Period(Q2.start, Q2.end, AT), target=3800, accuracy_quarters=1)
    lf = landing_forecast(ds, Q2, AT, target=3800).to_dict()
    assert s["landing_forecast"]["expected_amount"] == pytest.approx(lf["expected_amount"])
    assert s["landing_forecast"]["won_so_far_amount"] == 2000.0
    assert s["coverage"]["gap"] == 1800.0
    assert s["forecast_categories"] is None
    # no quarter ended by 2024-05-01 has a whole quarter of data before it (the data starts 2024-01-01)
    assert s["forecast_accuracy"] is None
    assert "Will we hit the number" in format_summary(s)


def test_landing_and_accuracy_takeaways_say_what_the_numbers_show(ds, tmp_path):
    from funnelkit.metrics.accuracy import forecast_accuracy
    from funnelkit.takeaways import accuracy_takeaway, landing_takeaway
    from landing_hand_data import categories_dataset
    lf = landing_forecast(ds, Q2, AT, prior_strength=0, adjust_for=(), target=5000)
    text = landing_takeaway(lf, pacing(ds, Q2, AT), "USD")
    assert text.startswith("Seen at 2024-05-01: 2.0k USD won so far from 2 deals")
    assert "expected to land at 3.9k USD" in text
    assert "chance of reaching the target of 5.0k USD" in text
    assert "100% ahead of the previous period at the same point (1.0k USD)" in text
    done = landing_forecast(ds, Q2, "2024-07-01", target=1500)
    assert landing_takeaway(done, currency="USD") == "The period won 2.0k USD from 2 deals, 500 USD above the target of 1.5k USD."
    deals = ds.deals.assign(amount=np.nan)
    unknown = landing_forecast(replace(ds, deals=deals), Q2, AT)
    assert "amounts are unknown, so where the period lands is unknown" in landing_takeaway(unknown)
    acc = forecast_accuracy(categories_dataset(tmp_path), ["2024Q2"], simulations=200, prior_strength=0,
                            adjust_for=())
    text = accuracy_takeaway(acc)
    assert text.startswith("Over 1 past quarter, the forecast made on a quarter's first day missed the actual by")
    assert "of the weekly forecasts" in text
