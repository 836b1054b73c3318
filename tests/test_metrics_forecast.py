"""Win forecast: hand-computed probabilities, no leakage, expected amounts, and the backtest."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funnelkit as fk
from funnelkit.metrics.forecast import (ForecastBacktest, backtest_forecast, default_backtest_dates,
                                        expected_won_by, win_forecast)
from funnelkit.sample import generate, write_sample
from funnelkit.history import stage_at

from engines import ENGINES, on_engine
from hand_io import DEAL_HEADER, write_folder

AS_OF = "2024-03-01"


def _write(folder: Path, deals: list[tuple], history: list[tuple], stages=("A", "B", "C"),
           currency_col: list[str] | None = None) -> Path:
    if currency_col is None:
        return write_folder(folder, deals, history, stages)
    return write_folder(folder, [d + (c,) for d, c in zip(deals, currency_col)], history, stages,
                        header=DEAL_HEADER + ["currency"])


# Hand-made data, seen at 2024-03-01 (k = 2 in the hand computations):
#   closed before as_of (the training deals):
#     d1 Ref  A 01-01 (10 d) -> B 01-11 (10 d) -> won 01-21
#     d2 Ads  A 01-01 (2 d)                     -> lost 01-03
#     d3 Ads  A 01-01 (5 d)  -> B 01-06 (20 d)  -> lost 01-26
#     d4 Ref  A 01-01 (30 d)                    -> won 01-31
#     d9 Ads  A 02-01 (28.5 d)                  -> lost 02-29 12:00
#   open at as_of:
#     d5  Ads  A 01-01 -> B 02-20: in B 10 d (won later, 03-10: must not matter)
#     d6  Ads  A 02-25: in A 5 d (amount unknown)
#     d7  Ref  A 02-01: in A 29 d (lost at 03-01 00:00 = as_of: not yet seen)
#     d10 Ref  A 02-01 -> B 02-10 -> C 02-20: in C 10 d
#     d11 Ads  A 01-15 -> B 01-20 -> A 02-15 (moved back): in A 15 d
#   not yet created: d8 (03-05)
HAND_DEALS = [
    ("d1", "2024-01-01", "won", "2024-01-21", "100", "Ref", "P", "Ann"),
    ("d2", "2024-01-01", "lost", "2024-01-03", "100", "Ads", "P", "Bo"),
    ("d3", "2024-01-01", "lost", "2024-01-26", "100", "Ads", "P", "Ann"),
    ("d4", "2024-01-01", "won", "2024-01-31", "100", "Ref", "P", "Bo"),
    ("d9", "2024-02-01", "lost", "2024-02-29T12:00:00", "100", "Ads", "P", "Ann"),
    ("d5", "2024-01-01", "won", "2024-03-10", "1000", "Ads", "P", "Ann"),
    ("d6", "2024-02-25", "open", "", "", "Ads", "Q", "Bo"),
    ("d7", "2024-02-01", "lost", "2024-03-01", "200", "Ref", "Q", "Ann"),
    ("d10", "2024-02-01", "open", "", "500", "Ref", "Q", "Bo"),
    ("d11", "2024-01-15", "open", "", "300", "Ads", "P", "Bo"),
    ("d8", "2024-03-05", "open", "", "700", "Ads", "P", "Ann"),
]
HAND_HISTORY = [
    ("d1", "A", "2024-01-01"), ("d1", "B", "2024-01-11"),
    ("d2", "A", "2024-01-01"),
    ("d3", "A", "2024-01-01"), ("d3", "B", "2024-01-06"),
    ("d4", "A", "2024-01-01"),
    ("d9", "A", "2024-02-01"),
    ("d5", "A", "2024-01-01"), ("d5", "B", "2024-02-20"),
    ("d6", "A", "2024-02-25"),
    ("d7", "A", "2024-02-01"),
    ("d10", "A", "2024-02-01"), ("d10", "B", "2024-02-10"), ("d10", "C", "2024-02-20"),
    ("d11", "A", "2024-01-15"), ("d11", "B", "2024-01-20"), ("d11", "A", "2024-02-15"),
    ("d8", "A", "2024-03-05"),
]
# p0 = 2 won / 5 closed = 0.4
# A visits (days, won): 10 W, 2 L, 5 L, 30 W, 28.5 L -> p_A = (2 + 2*0.4) / (5 + 2) = 0.4
# B visits: 10 W, 20 L                               -> p_B = (1 + 0.8) / (2 + 2) = 0.45
# C: none                                            -> p_C = 0.8 / 2 = 0.4
HAND_P = {
    "d5": (1 + 2 * 0.45) / (2 + 2),   # B >= 10 d: 10 W, 20 L                 = 0.475
    "d6": (2 + 2 * 0.4) / (4 + 2),    # A >= 5 d: 10 W, 5 L, 30 W, 28.5 L      = 0.4667
    "d7": (1 + 2 * 0.4) / (1 + 2),    # A >= 29 d: 30 W                       = 0.6
    "d10": 0.4,                       # C: no past visits -> p_C
    "d11": (1 + 2 * 0.4) / (2 + 2),   # A >= 15 d: 30 W, 28.5 L               = 0.45
}
HAND_STAGE = {"d5": ("B", 10.0, 0.45), "d6": ("A", 5.0, 0.4), "d7": ("A", 29.0, 0.4),
              "d10": ("C", 10.0, 0.4), "d11": ("A", 15.0, 0.4)}


@pytest.fixture(scope="module", params=ENGINES)
def hand_ds(request, tmp_path_factory):
    """The hand data on every engine (tests/engines.py): the evidence and aggregates run there."""
    return on_engine(request.param, _write(tmp_path_factory.mktemp("hand"), HAND_DEALS, HAND_HISTORY), request)


def test_hand_probabilities(hand_ds):
    fc = win_forecast(hand_ds, AS_OF, prior_strength=2, adjust_for=())
    got = fc.set_index("deal_id")
    assert sorted(got.index) == sorted(HAND_P)
    for deal, p in HAND_P.items():
        stage, days, p_stage = HAND_STAGE[deal]
        assert got.loc[deal, "stage"] == stage
        assert got.loc[deal, "days_in_stage"] == pytest.approx(days)
        assert got.loc[deal, "p_win"] == pytest.approx(p), deal
        assert got.loc[deal, "stage_win_rate"] == pytest.approx(p_stage), deal
    assert got.loc["d5", "similar_visits"] == 2 and got.loc["d5", "similar_won"] == 1
    assert got.loc["d10", "similar_visits"] == 0
    assert (got["odds_factor"] == 1.0).all()
    # Columns, stage order, then p_win descending within a stage.
    assert list(fc.columns[:4]) == ["deal_id", "stage", "days_in_stage", "p_win"]
    assert list(fc["deal_id"]) == ["d7", "d6", "d11", "d5", "d10"]
    assert list(fc["stage"].cat.categories) == ["A", "B", "C"]
    assert fc.attrs["base_rate"] == pytest.approx(0.4) and fc.attrs["trained_on_deals"] == 5
    # Expected won amount: p * amount, unknown where the amount is empty.
    assert got.loc["d5", "expected_won_amount"] == pytest.approx(475.0)
    assert math.isnan(got.loc["d6", "expected_won_amount"])


def test_no_shrinkage_is_the_raw_share(hand_ds):
    got = win_forecast(hand_ds, AS_OF, prior_strength=0, adjust_for=()).set_index("deal_id")["p_win"]
    # A >= 5 d: 2 won of 4; A >= 29 d: 1 of 1; B >= 10 d: 1 of 2; C: no visits -> stage rate
    # (with k = 0: C has no visits either, so the overall rate 0.4).
    assert got.to_dict() == pytest.approx({"d6": 0.5, "d7": 1.0, "d5": 0.5, "d11": 0.5, "d10": 0.4})


def test_source_adjustment_by_hand(hand_ds):
    got = win_forecast(hand_ds, AS_OF, prior_strength=2, adjust_for=("source",)).set_index("deal_id")
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    expit = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    # Training visits by source, with their stage rates as the expectation:
    #   Ref: d1 A (W), d1 B (W), d4 A (W): 3 visits, 3 won, expected 0.4 + 0.45 + 0.4 = 1.25
    #   Ads: d2 A (L), d3 A (L), d3 B (L), d9 A (L): 4 visits, 0 won, expected 0.4*3 + 0.45 = 1.65
    e_ref, e_ads = 1.25 / 3, 1.65 / 4
    off_ref = logit((3 + 2 * e_ref) / (3 + 2)) - logit(e_ref)
    off_ads = logit((0 + 2 * e_ads) / (4 + 2)) - logit(e_ads)
    assert off_ref > 0 > off_ads
    for deal, p in HAND_P.items():
        off = off_ref if deal in ("d7", "d10") else off_ads
        assert got.loc[deal, "p_win"] == pytest.approx(expit(logit(p) + off)), deal
        assert got.loc[deal, "odds_factor"] == pytest.approx(math.exp(off)), deal
        assert got.loc[deal, "stage_win_rate"] == pytest.approx(HAND_STAGE[deal][2])


def test_matches_the_history_view_of_open_deals(hand_ds):
    fc = win_forecast(hand_ds, AS_OF, adjust_for=())
    cur = stage_at(hand_ds, pd.Timestamp(AS_OF))
    assert sorted(fc["deal_id"]) == sorted(cur["deal_id"])
    merged = fc.merge(cur[["deal_id", "stage", "days"]], on="deal_id")
    assert (merged["stage_x"].astype(str) == merged["stage_y"].astype(str)).all()
    assert np.allclose(merged["days_in_stage"], merged["days"])


def test_expected_won_by_hand(hand_ds):
    fc = win_forecast(hand_ds, AS_OF, prior_strength=2, adjust_for=())
    by_source = expected_won_by(fc, "source").set_index("source")
    assert list(by_source.index) == ["Ads", "Ref"]  # largest expected_won_amount first
    ads = by_source.loc["Ads"]
    assert ads["open_deals"] == 3 and ads["amount_unknown_deals"] == 1
    assert ads["expected_won_amount"] == pytest.approx(0.475 * 1000 + 0.45 * 300)
    assert ads["expected_won_deals"] == pytest.approx(0.475 + 2.8 / 6 + 0.45)
    assert ads["expected_won_deals_amount_unknown"] == pytest.approx(2.8 / 6)
    assert by_source.loc["Ref", "expected_won_amount"] == pytest.approx(0.6 * 200 + 0.4 * 500)
    by_stage = expected_won_by(fc, "stage")
    assert list(by_stage["stage"].astype(str)) == ["A", "B", "C"]
    assert list(by_stage["open_deals"]) == [3, 1, 1]
    total = expected_won_by(fc, None)
    assert len(total) == 1 and total["open_deals"].iloc[0] == 5
    assert total["expected_won_amount"].iloc[0] == pytest.approx(475 + 135 + 120 + 200)


def test_empty_stage_groups_are_zero(hand_ds):
    # At 2024-01-02 only A has open deals (d1..d5 in A); B and C appear with zeros.
    with pytest.warns(RuntimeWarning):
        fc = win_forecast(hand_ds, "2024-01-02", adjust_for=())
    by_stage = expected_won_by(fc, "stage")
    assert list(by_stage["stage"].astype(str)) == ["A", "B", "C"]
    assert list(by_stage["open_deals"]) == [5, 0, 0]
    assert list(by_stage["expected_won_amount"][1:]) == [0.0, 0.0]
    assert by_stage["expected_won_amount"].iloc[0] == 0.0  # p_win unknown: nothing summed


def test_no_closed_deal_yet_warns_and_gives_nan(hand_ds):
    for _ in range(2):      # asked again (a loaded folder's forecast is kept): warned again
        with pytest.warns(RuntimeWarning, match="no deal closed before"):
            fc = win_forecast(hand_ds, "2024-01-02")
        assert len(fc) == 5 and fc["p_win"].isna().all()


def test_a_forecast_asked_again_is_the_same_and_each_caller_owns_its_copy(hand_ds):
    first = win_forecast(hand_ds, AS_OF, prior_strength=2, adjust_for=())
    first.loc[first.index[0], "p_win"] = -1.0            # in place: a shallow copy would share it
    first.attrs["base_rate"] = -1.0
    again = win_forecast(hand_ds, AS_OF, prior_strength=2, adjust_for=())
    assert again.set_index("deal_id")["p_win"].to_dict() == pytest.approx(HAND_P)
    assert again.attrs["base_rate"] == pytest.approx(0.4)
    # Other arguments, another forecast (k = 0: the raw shares, d7's 1 won of 1).
    assert win_forecast(hand_ds, AS_OF, prior_strength=0, adjust_for=()).set_index("deal_id").loc["d7", "p_win"] == 1.0


def test_mixed_currencies_refused(tmp_path):
    ds = fk.load(_write(tmp_path / "mixed", HAND_DEALS, HAND_HISTORY,
                        currency_col=["USD"] * 7 + ["EUR"] + ["USD"] * 3))  # d7 in EUR
    fc = win_forecast(ds, AS_OF)
    assert set(fc["currency"].astype(str)) == {"USD", "EUR"}
    with pytest.raises(fk.MixedCurrencyError, match="currencies"):
        expected_won_by(fc, "stage")
    ok = expected_won_by(win_forecast(ds.filter(currency="USD"), AS_OF), "stage")
    assert ok["open_deals"].sum() == 4


def test_bad_arguments(hand_ds):
    with pytest.raises(ValueError, match="prior_strength"):
        win_forecast(hand_ds, AS_OF, prior_strength=-1)
    with pytest.raises(ValueError, match="stage is always"):
        win_forecast(hand_ds, AS_OF, adjust_for=("stage",))
    with pytest.raises(KeyError, match="no column"):
        win_forecast(hand_ds, AS_OF, adjust_for=("region",))


# ---------------------------------------------------------------------------------------------
# No leakage: rewriting everything at or after as_of changes no forecast.

def _mutate_future(deals: pd.DataFrame, hist: pd.DataFrame, as_of: pd.Timestamp, seed: int):
    """Text tables (as from generate) with everything dated at/after as_of rewritten at random."""
    rng = np.random.default_rng(seed)
    deals, hist = deals.copy(), hist.copy()
    for col in ("source", "product", "owner"):
        deals[col] = deals[col].astype(str)
    hist["deal_id"] = hist["deal_id"].astype(str)
    hist["stage"] = hist["stage"].astype(str)
    created = pd.to_datetime(deals["created_at"], format="ISO8601")
    closed = pd.to_datetime(deals["closed_at"].replace("", None), format="ISO8601")
    entered = pd.to_datetime(hist["entered_at"], format="ISO8601")
    stages = sorted(set(hist["stage"]))
    # 1. Future stage entries: dropped, and new ones added, for deals existing before as_of.
    future_entry = entered >= as_of
    hist = hist[~future_entry.to_numpy()]
    alive = (created < as_of) & ~(closed < as_of)
    ids = deals.loc[alive, "deal_id"].to_numpy()
    pick = ids[rng.random(len(ids)) < 0.5]
    new_at = as_of + pd.to_timedelta(rng.integers(0, 60 * 24 * 20, len(pick)), unit="min")
    hist = pd.concat([hist, pd.DataFrame({
        "deal_id": pick, "stage": rng.choice(stages, len(pick)),
        "entered_at": new_at.strftime("%Y-%m-%dT%H:%M:%S")})], ignore_index=True)
    # 2. Deals open at as_of: outcome flipped at random, closed 30..50 days after as_of (after the
    #    new entries), or left open.
    outcome = rng.choice(["won", "lost", "open"], len(deals))
    new_close = (as_of + pd.to_timedelta(rng.integers(30, 50, len(deals)), unit="D"))
    deals.loc[alive, "status"] = outcome[alive.to_numpy()]
    deals.loc[alive, "closed_at"] = np.where(outcome[alive.to_numpy()] == "open", "",
                                             new_close[alive.to_numpy()].strftime("%Y-%m-%d"))
    deals.loc[alive & deals["status"].ne("open") & deals["amount"].eq(""), "amount"] = "1"
    # 3. Deals created at/after as_of: replaced by others with other outcomes.
    later = created >= as_of
    deals.loc[later, "status"] = "won"
    later_close = created[later] + pd.to_timedelta(rng.integers(1, 30, int(later.sum())), unit="D")
    deals.loc[later, "closed_at"] = later_close.dt.strftime("%Y-%m-%dT%H:%M:%S")
    deals.loc[later & deals["amount"].eq(""), "amount"] = "1"
    return deals, hist


def _save(folder: Path, deals: pd.DataFrame, hist: pd.DataFrame, pipeline) -> Path:
    folder.mkdir(parents=True)
    deals.to_csv(folder / "deals.csv", index=False)
    hist.to_csv(folder / "stage_history.csv", index=False)
    (folder / "pipeline.yml").write_text("stages: [" + ", ".join(pipeline.stages) + "]\n")
    return folder


@pytest.mark.parametrize("as_of", ["2025-06-01", "2026-01-15T13:30:00"])
def test_no_leakage(tmp_path, as_of):
    as_of = pd.Timestamp(as_of)
    deals, hist, pipeline = generate(1500, seed=5)
    original = fk.load(_save(tmp_path / "orig", deals, hist, pipeline))
    d2, h2 = _mutate_future(deals, hist, as_of, seed=1)
    mutated = fk.load(_save(tmp_path / "mut", d2, h2, pipeline))
    # The mutation really changed the future.
    changed = original.deals.set_index("deal_id")["status"].astype(str) != \
        mutated.deals.set_index("deal_id")["status"].astype(str)
    assert changed.sum() > 50
    assert len(mutated.stage_history) != len(original.stage_history)
    a = win_forecast(original, as_of)
    b = win_forecast(mutated, as_of)
    assert len(a) > 40
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs == b.attrs
    # The backtest at one date does change (it scores against the future) but not its forecasts.
    ba = backtest_forecast(original, [as_of]).scored_deals.set_index("deal_id")["p_win"]
    bb = backtest_forecast(mutated, [as_of]).scored_deals.set_index("deal_id")["p_win"]
    common = ba.index.intersection(bb.index)
    assert len(common) > 20
    assert np.allclose(ba[common], bb[common])


# ---------------------------------------------------------------------------------------------
# Invariants on generated data

@pytest.fixture(scope="module")
def gen_ds(tmp_path_factory):
    return fk.load(write_sample(tmp_path_factory.mktemp("gen"), deals=1500, seed=11))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(day=st.integers(min_value=0, max_value=760), k=st.sampled_from([0.0, 1.0, 10.0, 100.0]),
       adjust=st.sampled_from([(), ("source",), ("source", "owner"), ("owner", "product")]))
def test_invariants(gen_ds, day, k, adjust):
    as_of = pd.Timestamp("2024-10-01") + pd.Timedelta(days=day, hours=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # as_of before the first close: p_win NaN
        fc = win_forecast(gen_ds, as_of, prior_strength=k, adjust_for=adjust)
    assert len(fc) == len(stage_at(gen_ds, as_of))
    p = fc["p_win"].dropna()
    assert ((p >= 0) & (p <= 1)).all()
    assert ((fc["stage_win_rate"].dropna() >= 0) & (fc["stage_win_rate"].dropna() <= 1)).all()
    assert (fc["similar_won"] <= fc["similar_visits"]).all()
    assert fc["deal_id"].is_unique
    totals = [expected_won_by(fc, by)[["open_deals", "expected_won_deals", "expected_won_amount",
                                       "amount_unknown_deals"]].sum()
              for by in ("stage", "source", "owner", "product", ["source", "owner"])]
    total = expected_won_by(fc, None).iloc[0]
    for t in totals:
        assert t["open_deals"] == total["open_deals"] == len(fc)
        assert t["amount_unknown_deals"] == total["amount_unknown_deals"] == fc["amount"].isna().sum()
        assert t["expected_won_amount"] == pytest.approx(total["expected_won_amount"])
        assert t["expected_won_deals"] == pytest.approx(total["expected_won_deals"])
    assert total["expected_won_amount"] == pytest.approx(np.nansum(fc["p_win"] * fc["amount"]))


# ---------------------------------------------------------------------------------------------
# The backtest

@pytest.fixture(scope="module")
def sample_bt(tmp_path_factory) -> tuple[fk.Dataset, ForecastBacktest]:
    # The shipped sample: 3000 deals, seed 7 (data/sample), regenerated so the test stands alone.
    ds = fk.load(write_sample(tmp_path_factory.mktemp("sample"), deals=3000, seed=7))
    return ds, backtest_forecast(ds)


def test_backtest_beats_stage_only_baseline(sample_bt):
    _, bt = sample_bt
    msg = (f"brier {bt.brier:.4f} vs stage-only baseline {bt.baseline_brier:.4f} "
           f"(skill {bt.skill:+.2%}, {bt.scored} scored)\n{bt.by_date.to_string()}")
    assert bt.brier < bt.baseline_brier, msg
    assert bt.scored > 500, msg
    # Also without the source/owner adjustments: time in stage alone helps.
    _, plain = sample_bt[0], backtest_forecast(sample_bt[0], adjust_for=())
    assert plain.brier < plain.baseline_brier, (
        f"time in stage only: brier {plain.brier:.4f} vs baseline {plain.baseline_brier:.4f}")
    # And the adjusted model beats the plain one.
    assert bt.brier < plain.brier, f"adjusted {bt.brier:.4f} vs plain {plain.brier:.4f}"


def test_backtest_tables_add_up(sample_bt):
    ds, bt = sample_bt
    cal, by_date, scored = bt.calibration, bt.by_date, bt.scored_deals
    assert len(cal) == 10 and cal["lower"].iloc[0] == 0 and cal["upper"].iloc[-1] == 1
    assert cal["deals"].sum() == bt.scored == len(scored) == by_date["scored"].sum()
    assert cal["baseline_deals"].sum() == bt.scored
    assert (by_date["scored"] + by_date["unresolved"] + by_date["no_forecast"]
            == by_date["open_deals"]).all()
    assert (by_date["no_forecast"] == 0).all()
    assert (by_date["won"] <= by_date["scored"]).all()
    # Calibration rows are the per-bin means of the scored pairs.
    n = cal["deals"].to_numpy()
    assert np.nansum(cal["mean_predicted"].to_numpy() * n) == pytest.approx(scored["p_win"].sum())
    assert np.nansum(cal["observed_win_rate"].to_numpy() * n) == pytest.approx(scored["won"].sum())
    used = cal[n > 0]
    assert (used["mean_predicted"].between(used["lower"] - 1e-9, used["upper"] + 1e-9)).all()
    # Brier recomputed from the scored pairs, overall and per date.
    y = scored["won"].astype(float)
    assert bt.brier == pytest.approx(((scored["p_win"] - y) ** 2).mean())
    assert bt.baseline_brier == pytest.approx(((scored["stage_win_rate"] - y) ** 2).mean())
    per = scored.assign(se=(scored["p_win"] - y) ** 2).groupby("as_of")["se"].mean()
    assert np.allclose(per.to_numpy(), by_date.set_index("as_of").loc[per.index, "brier"].to_numpy())
    # Scored deals are exactly those that closed after as_of (still-open ones are excluded).
    status = ds.deals.set_index("deal_id")["status"].astype(str)
    assert (status[scored["deal_id"]] != "open").all()
    assert (scored["won"].to_numpy() == (status[scored["deal_id"]] == "won").to_numpy()).all()
    summary = bt.summary
    assert list(summary.index) == ["stage + time in stage", "stage only (baseline)"]
    assert summary.loc["stage only (baseline)", "brier"] == pytest.approx(bt.baseline_brier)
    assert "ForecastBacktest(brier=" in repr(bt)


def test_backtest_scores_each_date_like_win_forecast(sample_bt):
    ds, bt = sample_bt
    t = bt.by_date["as_of"].iloc[2]
    fc = win_forecast(ds, t).set_index("deal_id")
    sc = bt.scored_deals[bt.scored_deals["as_of"] == t].set_index("deal_id")
    assert np.allclose(fc.loc[sc.index, "p_win"], sc["p_win"])
    assert len(fc) == bt.by_date["open_deals"].iloc[2]


def test_default_dates(sample_bt):
    ds, bt = sample_bt
    dates = default_backtest_dates(ds)
    assert list(bt.by_date["as_of"]) == dates
    first, last = ds.deals["created_at"].min(), ds.deals["created_at"].max()
    assert 3 <= len(dates) <= 8
    assert all(d.month in (1, 4, 7, 10) and d.day == 1 and d == d.normalize() for d in dates)
    assert dates[0] >= first + pd.Timedelta(days=180)
    assert dates[-1] <= last + pd.Timedelta(days=1) - pd.Timedelta(days=90)
    three = default_backtest_dates(ds, max_dates=3)
    assert len(three) == 3 and three[0] == dates[0] and three[-1] == dates[-1]
    assert set(three) <= set(dates)
    # Short data: month starts instead of quarter starts; too short: none.
    assert default_backtest_dates(ds, min_history_days=650) == []
    months = default_backtest_dates(ds, min_history_days=560, min_outcome_days=90)
    assert len(months) >= 3 and any(d.month not in (1, 4, 7, 10) for d in months)


def test_backtest_on_hand_data(hand_ds):
    # At 2024-03-01 (k = 2, no adjustments): d5 (won later) and d7 (lost at as_of) are scored;
    # d6, d10, d11 are still open at the end of the data and excluded.
    bt = backtest_forecast(hand_ds, ["2024-03-01"], prior_strength=2, adjust_for=())
    row = bt.by_date.iloc[0]
    assert (row["open_deals"], row["scored"], row["unresolved"], row["won"]) == (5, 2, 3, 1)
    assert bt.brier == pytest.approx(((0.475 - 1) ** 2 + (0.6 - 0) ** 2) / 2)
    assert bt.baseline_brier == pytest.approx(((0.45 - 1) ** 2 + (0.4 - 0) ** 2) / 2)
    cal = bt.calibration.set_index("bin")
    assert cal.loc["0.40-0.50", "deals"] == 1 and cal.loc["0.60-0.70", "deals"] == 1
    assert cal.loc["0.40-0.50", "observed_win_rate"] == 1.0
    assert cal.loc["0.60-0.70", "observed_win_rate"] == 0.0
    # At 2024-01-02 no deal had closed yet: nothing to learn from, the 5 open deals go unscored.
    two = backtest_forecast(hand_ds, ["2024-03-01", "2024-01-02"], prior_strength=2, adjust_for=())
    first = two.by_date.iloc[0]
    assert str(first["as_of"].date()) == "2024-01-02"
    assert (first["open_deals"], first["scored"], first["no_forecast"]) == (5, 0, 5)
    assert two.brier == pytest.approx(bt.brier) and two.scored == 2
    with pytest.raises(ValueError, match="no as_of dates"):
        backtest_forecast(hand_ds)  # two months of data: too short for the default dates


def test_backtest_until_ignores_later_outcomes(sample_ds):
    """With ``until``, the backtest a report shows for a period never changes as later data arrives."""
    from dataclasses import replace

    import numpy as np

    from funnelkit.metrics.forecast import backtest_forecast

    until = pd.Timestamp("2026-01-01")
    before = backtest_forecast(sample_ds, until=until)
    d = sample_ds.deals.copy()
    later = (d["closed_at"] >= until).to_numpy()
    flipped = np.where(d["status"].astype(str) == "won", "lost", "won")
    d["status"] = pd.Categorical(np.where(later, flipped, d["status"].astype(str)),
                                 categories=["open", "won", "lost"])
    after = backtest_forecast(replace(sample_ds, deals=d), until=until)
    assert before.brier == after.brier and before.scored == after.scored
    assert all(t < until for t in before.by_date["as_of"])
    full = backtest_forecast(sample_ds)
    assert full.scored > before.scored     # the full data resolves more deals


def test_forecast_range_of_two_coin_flips():
    from funnelkit.metrics.forecast import forecast_range
    # Two deals, each won with p = 0.5: the won amount is 0, 100, 200 or 300, each with chance 1/4.
    fc = pd.DataFrame({"amount": [100.0, 200.0, None], "p_win": [0.5, 0.5, 0.9]})
    r = forecast_range(fc, 0.8)
    assert (r["deals"], r["expected"], r["method"]) == (2, 150.0, "simulation")
    assert (r["low"], r["high"]) == (0.0, 300.0)       # the 10% and 90% quantiles
    assert forecast_range(fc, 0.8) == r                 # seeded: the same every time
    half = forecast_range(fc, 0.4)                     # 30% and 70% quantiles: 100 and 200
    assert (half["low"], half["high"]) == (100.0, 200.0)


def test_forecast_range_normal_approximation_for_many_deals():
    import numpy as np
    from scipy.stats import norm

    from funnelkit.metrics.forecast import SIMULATE_UP_TO, forecast_range
    n = SIMULATE_UP_TO + 1
    fc = pd.DataFrame({"amount": np.full(n, 1000.0), "p_win": np.full(n, 0.2)})
    r = forecast_range(fc, 0.9)
    sd = 1000.0 * np.sqrt(n * 0.2 * 0.8)
    assert r["method"] == "normal" and r["expected"] == pytest.approx(n * 200.0)
    assert r["high"] - r["expected"] == pytest.approx(norm.ppf(0.95) * sd)
    assert r["expected"] - r["low"] == pytest.approx(norm.ppf(0.95) * sd)


def test_forecast_range_refuses_bad_levels():
    from funnelkit.metrics.forecast import forecast_range
    with pytest.raises(ValueError, match="level"):
        forecast_range(pd.DataFrame({"amount": [1.0], "p_win": [0.5]}), 1.5)


def test_forecast_range_with_one_dominant_deal_is_simulated_and_bounded():
    import numpy as np

    from funnelkit.metrics.forecast import SIMULATE_UP_TO, forecast_range
    n = SIMULATE_UP_TO + 1
    fc = pd.DataFrame({"amount": np.r_[1_000_000.0, np.ones(n - 1)], "p_win": np.full(n, 0.5)})
    r = forecast_range(fc, 0.8)
    assert r["method"] == "simulation"                      # one deal dominates: no normal approximation
    assert 0 <= r["low"] <= r["expected"] <= r["high"] <= fc["amount"].sum()
    assert r["high"] > 1_000_000 and r["low"] < 2_000       # the big deal is won or not


def test_forecast_range_contains_its_expected_amount():
    from funnelkit.metrics.forecast import forecast_range
    r = forecast_range(pd.DataFrame({"amount": [100.0], "p_win": [0.9]}), 0.8)
    assert r["expected"] == pytest.approx(90.0)
    assert r["low"] <= r["expected"] <= r["high"] <= 100.0
    with pytest.raises(ValueError, match="simulations"):
        forecast_range(pd.DataFrame({"amount": [100.0], "p_win": [0.9]}), 0.8, simulations=0)
