"""Takeaways on the shapes the real imports have (Maven CRM, Olist, HubSpot), built by hand here:
price clusters, amounts unknown or known only at close (hindsight), stages no deal entered, 30
categories, a field recorded on won deals only, slices, mostly-open cohorts. Each test says which
real data set has the shape. Every takeaway function of funnelkit/takeaways.py is exercised.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from funnelkit import takeaways as tk
from funnelkit.metrics import breakdown, forecast, size, stages
from funnelkit.metrics.summary import amount_coverage, metrics_summary
from funnelkit.period import Period

from close_hand_data import make_dataset

Q = Period.quarter("2024Q2")          # as_of 2024-07-01


def deals(rows):
    """rows: (id, created, status, closed or None, amount or None, source, product, owner)."""
    d = pd.DataFrame(rows, columns=["deal_id", "created_at", "status", "closed_at", "amount", "source",
                                    "product", "owner"])
    d["created_at"] = pd.to_datetime(d["created_at"])
    d["closed_at"] = pd.to_datetime(d["closed_at"])
    d["amount"] = d["amount"].astype(float)
    return d


def maven_like():
    """Maven CRM's amounts: won deals carry their value, lost deals 0, open deals none (recorded at
    close). W1-W3 won in Q2; H1 and H2 open at the end of Q2 and won / lost after it; O1, O2 still
    open at the end of the data."""
    return make_dataset(deals([
        ("W1", "2024-04-02", "won", "2024-04-20", 1000, "Web", "A", "Ann"),
        ("W2", "2024-04-03", "won", "2024-05-20", 3000, "Web", "B", "Bo"),
        ("W3", "2024-04-04", "won", "2024-06-20", 2000, "Ads", "A", "Ann"),
        ("L1", "2024-04-05", "lost", "2024-05-02", 0, "Ads", "B", "Bo"),
        ("H1", "2024-05-01", "won", "2024-08-10", 5000, "Web", "A", "Ann"),
        ("H2", "2024-05-02", "lost", "2024-08-11", 0, "Ads", "A", "Bo"),
        ("O1", "2024-06-01", "open", None, None, "Web", "B", "Ann"),
        ("O2", "2024-06-02", "open", None, None, "Ads", "B", "Bo"),
    ]))


# ------------------------------------------------------------------------ unknown and hindsight

def test_hindsight_is_detected_and_marked_never_compared():
    ds = maven_like()
    cov = amount_coverage(ds, Q)
    # Open at 07-01: H1 (5000), H2 (0), O1, O2 (unknown). H1 and H2 have amounts only because
    # they closed later, and no deal still open has one: hindsight.
    assert cov["open"] == {"deals": 4, "amount_unknown": 2, "unknown_share": 0.5, "amount_known_after_close": 2}
    assert cov["amounts_recorded_at_close"] and cov["hindsight"]
    assert cov["won"] == {"deals": 3, "amount_unknown": 0, "unknown_share": 0.0}
    s = metrics_summary(ds, Q)
    notes = {c["topic"]: c["text"] for c in s["caveats"]}
    assert "amount_won" not in notes and "hindsight" in notes
    assert notes["amount_open"].startswith("2 of the 4 deals open at the end of the period (50%) have an unknown amount")
    t = tk.headline_table(s, s, "USD").set_index("Metric")
    assert t.loc["Open pipeline amount"].iloc[0] == "5,000 USD (2 of 4 deals unknown, 50%) (hindsight)"
    assert t.loc["Open pipeline amount", "Change"] == "not computed (hindsight)"
    assert t.loc["Won amount", "Change"] == "0%"                      # won amounts lean on nothing
    f = forecast.win_forecast(ds, Q.as_of)
    assert tk.forecast_takeaway(f, "USD", hindsight=True).endswith(
        "these amounts lean on hindsight: the data records an amount only when a deal closes, so only "
        "deals that closed later have one.")


def test_a_sum_over_only_unknown_amounts_is_unknown_everywhere():
    """Maven 2017Q4: every open deal has an unknown amount; the report said "0 USD, -100%"."""
    ds = maven_like()
    end = Period.quarter("2024Q3", as_of="2024-09-01")   # only O1, O2 open (amounts unknown)
    s = metrics_summary(ds, end)
    t = tk.headline_table(s, metrics_summary(ds, Q), "USD").set_index("Metric")
    assert t.loc["Open pipeline amount"].iloc[0] == "unknown (all 2 deals)"
    assert t.loc["Open pipeline amount", "Change"] == "not computed (unknown)"
    assert t.loc["Expected won from open deals"].iloc[0] == "unknown (all 2 deals)"
    assert not any(re.search(r"\b0 USD", v) for v in t.loc[["Open pipeline amount",
                                                             "Expected won from open deals"]].iloc[:, 0])
    notes = {c["topic"]: c["text"] for c in s["caveats"]}
    assert notes["amount_open"].startswith("all 2 deals open at the end of the period have an unknown amount")
    assert "hindsight" not in notes              # both still open at the end of the data: nothing known later
    f = forecast.win_forecast(ds, end.as_of)
    text = tk.forecast_takeaway(f, "USD")
    assert text.startswith("The 2 open deals all have an unknown amount, so the amount they may bring is unknown")
    assert " -." not in text
    by = forecast.expected_won_by(f, "stage")
    # Lead holds both (unknown, not 0); "Won?" has no open deal (0, a sum over nothing).
    assert by["expected_won_amount"].isna().tolist() == [True, False] and by["expected_won_amount"].iloc[1] == 0
    snap = stages.snapshot(ds, end.as_of)
    assert np.isnan(snap["open_amount"].iloc[0]) and snap["open_amount_unknown"].iloc[0] == 2


def test_all_unknown_won_amounts():
    """HubSpot: closed deals may have no Amount. All won deals unknown: no "0" anywhere."""
    ds = make_dataset(deals([
        ("A", "2024-04-02", "won", "2024-04-20", None, "Web", "A", "Ann"),
        ("B", "2024-04-03", "won", "2024-05-20", None, "Ads", "B", "Bo"),
        ("C", "2024-04-04", "lost", "2024-05-20", None, "Ads", "B", "Bo"),
    ]))
    s = metrics_summary(ds, Q)
    assert tk.won_amount(s) is None
    assert tk.headline_table(s).set_index("Metric").loc["Won amount"].iloc[0] == "unknown (all 2 deals)"
    assert tk.headline_takeaway(s) == "Won 2 deals, all of unknown amount; win rate 67%."
    by = breakdown.amount_by(ds, Q, by="source")
    assert by["won_amount"].isna().tolist() == [True, True]
    assert tk.amount_by_takeaway(by, "source", "USD") == (
        "2 deals were won, all of unknown amount, so no source can be ranked by won amount; Ads had the most "
        "won deals (1).")
    assert tk.product_mix_takeaway(breakdown.amount_by(ds, Q, by="product"), "product", "USD").startswith(
        "2 deals were won, all of unknown amount")
    assert tk.rep_takeaway(breakdown.amount_by(ds, Q, by="owner"), "USD").startswith(
        "2 deals were won, all of unknown amount, so no rep can be ranked")
    assert tk.deal_size_takeaway(size.deal_size(ds, Q), "USD") == (
        "2 won deals, all of unknown amount: their size is unknown.")
    assert tk.target_takeaway(size.target_plan(ds, Q, 1000), "USD").startswith("Cannot plan for 1.0k USD")


# ------------------------------------------------------------------------------ deal size

def clustered():
    """Maven's price list: amounts cluster around 55, 600 and 4,800 (no outlier on a log scale)."""
    rng = np.random.default_rng(3)
    amounts = np.r_[rng.uniform(50, 60, 40), rng.uniform(500, 700, 30), rng.uniform(4400, 5200, 30)]
    return make_dataset(deals([(f"D{i}", "2024-04-01", "won", "2024-05-01", a, "Web", "A", "Ann")
                               for i, a in enumerate(amounts)]))


def test_price_clusters_are_not_called_a_few_big_deals():
    ds = clustered()
    won = size.outlier_deals(ds, Q, flagged_only=False)
    outliers = size.outlier_deals(ds, Q)
    s = size.deal_size(ds, Q)
    text = tk.deal_size_takeaway(s, "USD", won)
    assert outliers.empty and tk.outliers_takeaway(outliers).startswith("No won deal is an outlier")
    assert "pulled up by" not in text and "a few big deals" not in text
    assert "fall into 3 price clusters" in text
    assert re.search(r"around 5\d USD \(40 deals\), 6\d\d USD \(30 deals\), 4\.\dk USD \(30 deals\)", text), text


def test_a_few_big_deals_are_named_only_when_they_are_outliers():
    amounts = [100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 100000, 120000]
    ds = make_dataset(deals([(f"D{i}", "2024-04-01", "won", "2024-05-01", a, "Web", "A", "Ann")
                             for i, a in enumerate(amounts)]))
    won = size.outlier_deals(ds, Q, flagged_only=False)
    text = tk.deal_size_takeaway(size.deal_size(ds, Q), "USD", won)
    assert (won["side"] == "high").sum() == 2
    assert "pulled up by 2 big deals (the outliers below)" in text
    assert tk.outliers_takeaway(size.outlier_deals(ds, Q), sum(amounts), "USD").startswith("2 outlier deals")


def test_all_zero_amounts_are_said_to_be_zero():
    """Olist: declared_monthly_revenue is 0.0 on most won deals."""
    ds = make_dataset(deals([(f"D{i}", "2024-04-01", "won", "2024-05-01", 0, "Web", p, "Ann")
                             for i, p in enumerate(["home_decor"] * 3 + ["air_conditioning"] * 2)]))
    assert tk.deal_size_takeaway(size.deal_size(ds, Q), "BRL") == "5 won deals, every one with an amount of 0 BRL."
    text = tk.product_mix_takeaway(breakdown.amount_by(ds, Q, by="product"), "product", "BRL")
    assert "out-earned" not in text and "averaging 0" not in text
    assert text == ("5 deals were won, all with an amount of 0 BRL, so no product can be ranked by won amount; "
                    "home_decor had the most won deals (3).")
    monthly = size.deal_size_by_month(ds, Q)
    assert tk.deal_size_trend_takeaway(monthly, "BRL") == "Too few months with won deals to show a trend."


# ---------------------------------------------------------------- many categories, won-only fields

def olist_like(n_products=30):
    """Olist: 30+ products, the product known on won deals only (every lost lead is "(not set)")."""
    rows = []
    for i in range(n_products):
        for j in range(i % 3 + 1):
            rows.append((f"W{i}-{j}", "2024-04-01", "won", "2024-05-01", 100 * (i + 1), "Web", f"p{i:02d}", f"r{i}"))
    rows += [(f"L{k}", "2024-04-01", "lost", "2024-05-02", None, "Web", "(not set)", "(not set)") for k in range(40)]
    return make_dataset(deals(rows))


def test_thirty_categories_and_a_field_known_on_won_deals_only():
    ds = olist_like()
    by = breakdown.amount_by(ds, Q, by="product")
    assert len(by) == 31 and (by.loc[by["product"] != "(not set)", "win_rate"] == 1).all()
    text = tk.amount_by_takeaway(by, "product", "BRL")
    # p29 has 3 deals of 3,000: the most won amount; no "converts best" claim from 100% artefacts.
    assert text.startswith("p29 brought the most won amount: 9.0k BRL")
    assert "converts best" not in text and "win rate" not in text.split(";")[0]
    assert text.endswith('product is recorded on won deals only (every lost deal\'s product is "(not set)"), '
                         "so win rates by product say nothing.")
    mix = tk.product_mix_takeaway(by, "product", "BRL")
    assert mix.startswith("p29 (9.0k BRL from 3 deals averaging 3.0k BRL) leads on total won amount")
    reps = tk.rep_takeaway(breakdown.amount_by(ds, Q, by="owner"), "BRL")
    assert reps.endswith("the owner is recorded on won deals only, so win rates by rep say nothing.")
    # A real spread of lost deals over products is not mistaken for a won-only field.
    mixed = make_dataset(pd.concat([olist_like().deals, deals(
        [(f"X{k}", "2024-04-01", "lost", "2024-05-02", None, "Web", "p01", "r1") for k in range(5)])]))
    assert "recorded on won deals only" not in tk.amount_by_takeaway(
        breakdown.amount_by(mixed, Q, by="product"), "product", "BRL")


# ------------------------------------------------------------------------------------ funnel

def test_funnel_leaves_out_unvisited_stages_and_waits_while_most_deals_are_open():
    """Maven: Prospecting is never entered (its deals were rejected); in a recent quarter most of the
    cohort is still open."""
    f = pd.DataFrame({"stage": pd.Categorical(["Prospecting", "Engaging"], ordered=True),
                      "reached": [100, 100], "conversion": [1.0, 0.23]})
    cohort = {"deals": 100, "won": 23, "lost": 16, "open": 61}
    text = tk.funnel_takeaway(f, {"lowest_conversion_stage": "Engaging", "lowest_conversion": 0.23}, cohort,
                              unvisited=["Prospecting"])
    assert "bottleneck is" not in text
    assert text == ("Of 100 deals created in the period, 23 (23%) are won so far and 61 (61%) are still open; "
                    "too early to name a bottleneck: the lowest conversion so far, 23% at Engaging, counts "
                    "deals still open there as not moving on (Prospecting: no deal ever entered it, so it is "
                    "left out).")
    done = {"deals": 100, "won": 23, "lost": 70, "open": 7}
    assert "the bottleneck is Engaging, where only 23% move on" in tk.funnel_takeaway(f, None, done)


def test_unvisited_stages_leave_the_funnel_chart_and_the_summary_says_so():
    from funnelkit.views import funnel_chart, funnel_text
    ds = maven_like()
    ds.pipeline = type(ds.pipeline)(("Prospecting", "Engaging"))
    ds.stage_history["stage"] = pd.Categorical.from_codes(np.ones(len(ds.stage_history), int),
                                                          categories=["Prospecting", "Engaging"], ordered=True)
    ds.stage_history["stage_index"] = 1
    ds.refresh()
    assert stages.unvisited_stages(ds) == ["Prospecting"]
    ax = funnel_chart(ds, Q)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Engaging"]
    assert funnel_text(ds, Q).endswith("(Prospecting: no deal ever entered it, so it is left out).")
    s = metrics_summary(ds, Q)
    assert s["unvisited_stages"] == ["Prospecting"]
    assert any(c["topic"] == "funnel" and "Prospecting" in c["text"] for c in s["caveats"])


def test_each_slice_shows_its_own_takeaway():
    """The funnel text follows the slice selector (it said "Of 2,770 deals" under a 533-deal chart)."""
    from funnelkit.views import funnel_chart, funnel_text, sliced_views
    ds = maven_like()
    v = sliced_views(ds, Q, chart=funnel_chart, takeaway=funnel_text, by=["source"])
    figures = re.findall(r'<figure class="fk-view".*?</figure>', v.html, flags=re.S)
    assert v.labels == ["All deals", "source: Ads", "source: Web"] and len(figures) == 3
    # All deals: 8 created in Q2 (none after as_of); Ads: L1, W3, H2, O2 -> 4; Web: 4.
    assert "Of 8 deals created in the period" in figures[0]
    assert "Of 4 deals created in the period" in figures[1] and "Of 4 deals" in figures[2]
    assert all(f.count("fk-takeaway") == 1 for f in figures)


# ------------------------------------------------------------------------ the other takeaways

def test_other_takeaways_on_mostly_open_unknown_data():
    """Snapshot, stage flow, time in stage, win rate by time, days to close, survival, calibration on
    the Maven-like set: they count deals, so unknown amounts change nothing in them."""
    from funnelkit.metrics import closing, stage_time
    ds = maven_like()
    weekly = stages.weekly_snapshots(ds, Q, amounts=False)
    assert tk.snapshot_takeaway(weekly, stages.bottleneck(ds, Q)).startswith(
        "Open deals were 4 at both the first and the last snapshot")
    assert tk.stage_flow_takeaway(stages.stage_flow(ds, Q)).endswith(
        "4 of 8 visits begun in the period are still open.")
    stuck = stage_time.stuck_deals(ds, Q.as_of)
    tis = stage_time.time_in_stage(ds, Q)
    assert "of unknown amount" not in tk.time_in_stage_takeaway(tis, stuck.iloc[:0], "USD")
    assert tk.win_rate_by_time_takeaway(stage_time.win_rate_by_time_in_stage(ds, Q)).startswith(
        "Too few closed deals")
    text = tk.days_to_close_takeaway(closing.days_to_close(ds, Q))
    assert text.startswith("Won deals closed in a median 47 days (n=3), lost deals in 27 days (n=1)")
    assert tk.survival_takeaway(closing.close_time_survival(ds, Q)).startswith("Counting open deals too")
    assert tk.calibration_takeaway(None) == ("Not enough closed deals before the backtest dates to score the "
                                             "forecast.")


@pytest.mark.parametrize("week", ["2024-06-17", "2024-06-16 12:00"])
def test_week_label(week):
    assert tk.week_label(week) in ("2024-06-16",)
