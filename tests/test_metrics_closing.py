"""Days to close and the Kaplan-Meier close-time estimate, on the hand data set of close_hand_data.

Every expected value below was computed by hand from the table in close_hand_data's docstring.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

import funnelkit as fk
from funnelkit.dataset import MixedCurrencyError
from funnelkit.metrics.closing import (CloseTimeSurvival, close_time_survival, closed_in_period,
                                             days_to_close, size_band)
from funnelkit.period import Period
from engines import ENGINES, on_engine
from close_hand_data import (deal_tuples, make_dataset, random_deals, write_dataset,
                             write_mixed_currency)

APRIL = Period("2024-04-01", "2024-04-30")
# Seen at 2024-04-20 12:00: D4 (closed 04-21) and D3 (04-26) are still open then.
EARLY = Period("2024-04-01", "2024-04-30", as_of="2024-04-20 12:00")


@pytest.fixture(scope="module", params=ENGINES)
def ds(request, tmp_path_factory):
    return on_engine(request.param, write_dataset(tmp_path_factory.mktemp("hand")), request)


def rows(df, *cols):
    return [tuple(r) for r in df[list(cols)].itertuples(index=False)]


def test_closed_in_period(ds):
    d = closed_in_period(ds, APRIL)
    # D1 and D10 created before P, closed in it; D6 closed after as_of; D9 closed before P.
    assert sorted(d["deal_id"]) == ["D1", "D10", "D2", "D3", "D4", "D5"]
    days = dict(zip(d["deal_id"], d["days_to_close"]))
    assert days == {"D1": 40.0, "D2": 10.0, "D3": 21.0, "D4": 20.0, "D5": 4.0, "D10": 41.5}


def test_days_to_close_by_status(ds):
    out = days_to_close(ds, APRIL)
    assert list(out.columns) == ["status", "deals", "mean_days", "median_days"]
    # won: D1 40, D2 10, D4 20 ; lost: D3 21, D5 4, D10 41.5
    assert out["status"].tolist() == ["won", "lost"]
    assert out["deals"].tolist() == [3, 3]
    assert out["mean_days"].tolist() == pytest.approx([70 / 3, 66.5 / 3])
    assert out["median_days"].tolist() == [20.0, 21.0]


def test_days_to_close_deals_closed_after_as_of_are_left_out(ds):
    out = days_to_close(ds, EARLY)
    # seen at 04-20 12:00: won D1 (40), D2 (10); lost D5 (4). D4 closed 04-21: not yet.
    assert rows(out, "status", "deals", "mean_days", "median_days") == [
        ("won", 2, 25.0, 25.0), ("lost", 1, 4.0, 4.0)]


def test_days_to_close_empty_period_keeps_both_statuses(ds):
    out = days_to_close(ds, Period("2025-01-01", "2025-01-31"))
    assert out["status"].tolist() == ["won", "lost"]
    assert out["deals"].tolist() == [0, 0]
    assert out["mean_days"].isna().all() and out["median_days"].isna().all()


def test_days_to_close_by_product(ds):
    out = days_to_close(ds, APRIL, by="product")
    assert list(out.columns) == ["status", "product", "deals", "mean_days", "median_days"]
    # Enterprise (only D9, closed before P) is not shown.
    assert rows(out, "status", "product", "deals", "mean_days", "median_days") == [
        ("won", "Basic", 1, 40.0, 40.0), ("won", "Pro", 2, 15.0, 15.0),
        ("lost", "Basic", 2, 12.5, 12.5), ("lost", "Pro", 1, 41.5, 41.5)]


def test_days_to_close_by_owner_shows_empty_status_group(ds):
    out = days_to_close(ds, APRIL, by="owner")
    got = rows(out, "status", "owner", "deals")
    assert got == [("won", "Ann", 2), ("won", "Bo", 1), ("won", "Cy", 0),
                   ("lost", "Ann", 1), ("lost", "Bo", 1), ("lost", "Cy", 1)]
    cy_won = out[(out.status == "won") & (out.owner == "Cy")].iloc[0]
    assert math.isnan(cy_won["mean_days"]) and math.isnan(cy_won["median_days"])


def test_days_to_close_by_quartile_band(ds):
    out = days_to_close(ds, APRIL, by="size_band")
    # closed amounts 500 1000 1500 2000 3000 5000: quartiles 1125, 1750, 2750 (linear)
    assert out.attrs["band_edges"] == [1125.0, 1750.0, 2750.0]
    labels = ["Q1: <= 1,125", "Q2: 1,125-1,750", "Q3: 1,750-2,750", "Q4: > 2,750"]
    assert out["size_band"].tolist() == labels * 2
    assert out["deals"].tolist() == [1, 0, 0, 2, 1, 1, 1, 0]
    np.testing.assert_allclose(out["median_days"], [40, np.nan, np.nan, 15, 4, 41.5, 21, np.nan])


def test_days_to_close_by_fixed_band(ds):
    out = days_to_close(ds, APRIL, by="size_band", bands=[1000, 3000])
    # <= 1000: D1 won 40, D5 lost 4; 1000-3000 (3000 included): D2 won 10, D3 lost 21, D10 lost 41.5;
    # > 3000: D4 won 20
    assert rows(out, "status", "size_band") == [
        ("won", "<= 1,000"), ("won", "1,000-3,000"), ("won", "> 3,000"),
        ("lost", "<= 1,000"), ("lost", "1,000-3,000"), ("lost", "> 3,000")]
    assert out["deals"].tolist() == [1, 1, 1, 1, 2, 0]
    assert out["mean_days"].tolist()[:5] == [40.0, 10.0, 20.0, 4.0, 31.25]
    assert math.isnan(out["mean_days"].iloc[5])


def test_size_band_unknown_amounts_and_equal_edges():
    s = size_band(pd.Series([5.0, np.nan, 10.0, 11.0]), [10, 10])
    assert s.tolist() == ["<= 10", "(amount unknown)", "<= 10", "> 10"]
    assert list(s.cat.categories) == ["<= 10", "10-10", "> 10", "(amount unknown)"]


def test_days_to_close_unknown_column(ds):
    with pytest.raises(ValueError, match="no deal column"):
        days_to_close(ds, APRIL, by="region")


def test_size_band_refuses_mixed_currencies(tmp_path):
    mixed = fk.load(write_mixed_currency(tmp_path / "mixed"))
    with pytest.raises(MixedCurrencyError, match="EUR"):
        days_to_close(mixed, APRIL, by="size_band")
    # counting days adds no amounts: allowed
    assert days_to_close(mixed, APRIL)["deals"].tolist() == [3, 3]


# --- Kaplan-Meier -------------------------------------------------------------------------------

def test_km_cohort_and_estimate(ds):
    km = close_time_survival(ds, APRIL)
    assert isinstance(km, CloseTimeSurvival)
    # cohort: created in April and seen: D2 D3 D4 D5 D6 D7 D8 D11 (D1, D10 created before P; D12 after)
    c = km.cohort.set_index("deal_id")
    assert sorted(c.index) == ["D11", "D2", "D3", "D4", "D5", "D6", "D7", "D8"]
    assert c["days"].to_dict() == {"D2": 10.0, "D3": 21.0, "D4": 20.0, "D5": 4.0,
                                   "D6": 11.0, "D7": 16.0, "D8": 6.0, "D11": 3.0}
    assert c["event"].to_dict() == {"D2": 1, "D3": 1, "D4": 1, "D5": 1,
                                    "D6": 0, "D7": 0, "D8": 0, "D11": 0}
    # times 3c 4e 6c 10e 11c 16c 20e 21e; at risk 8 7 6 5 4 3 2 1
    # S(4) = 6/7, S(10) = 6/7 * 4/5 = 24/35, S(20) = 24/35 * 1/2 = 12/35, S(21) = 0
    s = km.survival_function_["KM_estimate"]
    assert s.loc[4.0] == pytest.approx(6 / 7)
    assert s.loc[10.0] == pytest.approx(24 / 35)
    assert s.loc[16.0] == pytest.approx(24 / 35)
    assert s.loc[20.0] == pytest.approx(12 / 35)
    assert s.loc[21.0] == pytest.approx(0.0)
    assert km.median_days == 20.0           # first time S <= 1/2
    assert km.p_close_within(3) == pytest.approx(0.0)
    assert km.p_close_within(4) == pytest.approx(1 / 7)    # a close on day 4 counts as within 4
    assert km.p_close_within(10) == pytest.approx(11 / 35)
    assert km.p_close_within(30) == pytest.approx(1.0)     # S reached 0: defined beyond day 21
    summary = km.summary
    assert summary.shape == (1, 8)
    rec = summary.iloc[0]
    assert (rec["deals"], rec["closed"], rec["censored"], rec["median_days"]) == (8, 4, 4, 20.0)
    assert (rec["p_close_30d"], rec["p_close_60d"], rec["p_close_90d"]) == pytest.approx((1, 1, 1))


def test_km_censored_tail_and_no_median(ds):
    km = close_time_survival(ds, EARLY)
    # created in P before 04-20 12:00: D2 10e, D3 censored 15.5, D4 censored 19.5 (closed 04-21, after
    # as_of), D5 4e, D6 censored 0.5, D7 censored 5.5
    assert dict(zip(km.cohort.deal_id, km.cohort.days)) == {
        "D2": 10.0, "D3": 15.5, "D4": 19.5, "D5": 4.0, "D6": 0.5, "D7": 5.5}
    # at risk: 0.5c 6 ; 4e 5 -> 4/5 ; 5.5c 4 ; 10e 3 -> 4/5*2/3 = 8/15 ; 15.5c ; 19.5c
    assert km.survival_function_["KM_estimate"].iloc[-1] == pytest.approx(8 / 15)
    assert km.median_days is None                # S never reaches 1/2
    assert km.p_close_within(10) == pytest.approx(7 / 15)
    assert km.p_close_within(19.5) == pytest.approx(7 / 15)
    assert km.p_close_within(19.6) is None       # beyond the longest follow-up, deals still open
    assert km.to_dict()["p_close_30d"] is None and km.to_dict()["median_days"] is None


def test_km_won_only_competing_losses(ds):
    km = close_time_survival(ds, APRIL, close="won")
    # F(t) = sum S(t_j-) * won_j / at_risk_j : t=10: 1 * ... S(10-) = 6/7, 1 won of 5 -> 6/35;
    # t=20: S(20-) = 24/35, 1 won of 2 -> +12/35 = 18/35 ; losses (4, 21) add nothing
    nw = km.survival_function_["not_won"]
    assert nw.loc[4.0] == pytest.approx(1.0)
    assert nw.loc[10.0] == pytest.approx(1 - 6 / 35)
    assert nw.loc[21.0] == pytest.approx(1 - 18 / 35)
    assert km.median_days == 20.0                 # 18/35 >= 1/2 first at day 20
    assert km.p_close_within(15) == pytest.approx(6 / 35)
    assert km.p_close_within(90) == pytest.approx(18 / 35)
    rec = km.summary.iloc[0]
    assert (rec["deals"], rec["closed"], rec["lost"], rec["censored"]) == (8, 2, 2, 4)


def test_km_empty_cohort(ds):
    km = close_time_survival(ds, Period("2025-01-01", "2025-01-31"))
    assert km.deals == 0 and km.median_days is None and km.p_close_within(30) is None
    assert km.summary.iloc[0]["deals"] == 0


def test_km_bad_close(ds):
    with pytest.raises(ValueError):
        close_time_survival(ds, APRIL, close="lost")


# --- properties ---------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deal_tuples())
def test_days_to_close_properties(tuples):
    ds = make_dataset(random_deals(tuples))
    out = days_to_close(ds, APRIL)
    by = days_to_close(ds, APRIL, by="source")
    band = days_to_close(ds, APRIL, by="size_band")
    n = len(closed_in_period(ds, APRIL))
    assert out["deals"].sum() == by["deals"].sum() == band["deals"].sum() == n
    assert (out["mean_days"].dropna() >= 0).all()
    km = close_time_survival(ds, APRIL)
    s = km.survival_function_.iloc[:, 0].to_numpy()
    assert np.all(np.diff(s) <= 1e-12) and np.all((s >= -1e-12) & (s <= 1 + 1e-12))
    p = [km.p_close_within(d) for d in (10, 30, 60)]
    known = [x for x in p if x is not None]
    assert known == sorted(known)
    won = close_time_survival(ds, APRIL, close="won")
    for d in (10, 30):
        a, b = won.p_close_within(d), km.p_close_within(d)
        if a is not None and b is not None:
            assert a <= b + 1e-12        # winning within d days implies closing within d days


def test_km_with_a_lookback_cohort(ds):
    # Deals created in the 45 days before as_of (2024-05-01): from 2024-03-17 on, so D10 (03-20,
    # lost 04-30 12:00 after 41.5 days) joins the April cohort; D1 (03-01) and D9 (02-01) do not.
    km = close_time_survival(ds, APRIL, lookback_days=45)
    c = km.cohort.set_index("deal_id")
    assert sorted(c.index) == ["D10", "D11", "D2", "D3", "D4", "D5", "D6", "D7", "D8"]
    assert c.loc["D10", "days"] == 41.5 and c.loc["D10", "event"] == 1
    # times 3c 4e 6c 10e 11c 16c 20e 21e 41.5e; at risk 9 8 7 6 5 4 3 2 1
    s = km.survival_function_["KM_estimate"]
    assert s.loc[4.0] == pytest.approx(7 / 8)
    assert s.loc[10.0] == pytest.approx(35 / 48)
    assert s.loc[20.0] == pytest.approx(35 / 72)
    assert s.loc[21.0] == pytest.approx(35 / 144)
    assert km.median_days == 20.0
    assert km.p_close_within(30) == pytest.approx(1 - 35 / 144)
    with pytest.raises(ValueError, match="lookback_days"):
        close_time_survival(ds, APRIL, lookback_days=0)


def test_kaplan_meier_matches_the_values_lifelines_gave_on_the_sample():
    """The estimate moved from lifelines to scipy.stats.ecdf: the sample's numbers stay as they were
    (recorded with lifelines 0.30.3 before the switch, both close modes, both cohorts)."""
    ds = fk.load(Path(__file__).resolve().parents[1] / "data" / "sample")
    recorded = {
        ("2025Q4", "any", None): (21.261805555555554, 0.5977395893164317, 0.8637025191442802, 0.9483480519755052),
        ("2026Q1", "any", None): (21.940277777777776, 0.6354225882156885, 0.8481974379488382, None),
        ("2025Q1", "any", 365): (22.131944444444443, 0.5780065571931197, 0.8246505045703598, 0.9243339998805529),
        ("2025Q4", "won", None): (None, 0.02371838686263461, 0.16901025911966705, 0.22684779882192063),
        ("2026Q2", "won", 365): (None, 0.02784296046172119, 0.14532326255578598, 0.18354770255996866),
    }
    for (q, close, lookback), (median, p30, p60, p90) in recorded.items():
        km = close_time_survival(ds, fk.Period.quarter(q), close=close, lookback_days=lookback)
        assert km.median_days == (pytest.approx(median, abs=1e-12) if median is not None else None)
        for h, want in ((30, p30), (60, p60), (90, p90)):
            got = km.p_close_within(h)
            assert (got is None) if want is None else got == pytest.approx(want, abs=1e-12), (q, close, h)
