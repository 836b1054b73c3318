"""One-line takeaways on hand-made tables, every expected sentence worked out by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from funnelkit import takeaways as tk


def amounts(by="source"):
    return pd.DataFrame({by: ["Web", "Ads", "Fairs"], "won_amount": [3000.0, 1000.0, 0.0],
                         "won_deals": [3, 1, 0], "lost_deals": [1, 5, 2], "win_rate": [0.75, 1 / 6, 0.0],
                         "mean_size": [1000.0, 1000.0, None], "share": [0.75, 0.25, 0.0],
                         "open_amount": [0.0, 0.0, 10.0]})


def summary(label, won, won_deals, win_rate, mean=None):
    return {"period": {"label": label}, "win_rate": win_rate,
            "amount_by_source": [{"won_amount": won, "won_deals": won_deals}],
            "deal_size": {"deals": won_deals, "mean": mean, "median": None},
            "deals_per_stage": [{"open_amount": 50.0}, {"open_amount": None}],
            "forecast": {"open_deals": 4, "expected_won_amount": 20.0}, "cohort": {"deals": 10},
            "days_to_close": {"won": {"median_days": 12.25}}, "stuck_deals_total": 2}


def test_headline_table_changes():
    t = tk.headline_table(summary("2026Q2", 1200.0, 6, 0.30, 200.0), summary("2026Q1", 1000.0, 4, 0.25, 250.0), "EUR")
    assert list(t.columns) == ["metric", "2026Q2", "2026Q1", "change"]
    row = t.set_index("metric")
    assert row.loc["Won amount"].tolist() == ["1,200 EUR", "1,000 EUR", "+20%"]
    assert row.loc["Won deals", "change"] == "+50%"
    assert row.loc["Win rate"].tolist() == ["30.0%", "25.0%", "+5.0 pts"]
    assert row.loc["Mean won deal size", "change"] == "-20%"
    assert row.loc["Median won deal size", "change"] == "-"
    assert row.loc["Open pipeline amount", "2026Q2"] == "50 EUR"
    assert row.loc["Median days to close (won)", "2026Q2"] == "12.2"


def test_headline_without_previous_and_from_zero():
    t = tk.headline_table(summary("P", 10.0, 1, 0.5), None)
    assert (t["change"] == "-").all()
    cur, prev = summary("2026Q2", 500.0, 2, 0.5), summary("2026Q1", 0.0, 0, None)
    assert tk.headline_table(cur, prev).set_index("metric").loc["Won amount", "change"] == "new"
    assert tk.headline_takeaway(cur, prev, "EUR") == "Won 500 EUR from 2 deals (nothing was won in 2026Q1); win rate 50%."


def test_headline_takeaway():
    text = tk.headline_takeaway(summary("2026Q2", 1200.0, 6, 0.30), summary("2026Q1", 1500.0, 4, 0.25), "EUR")
    assert text == "Won 1.2k EUR from 6 deals, down 20% on 2026Q1; win rate 30% (+5.0 pts)."


def test_amount_by_takeaway_names_top_and_best_converting():
    assert tk.amount_by_takeaway(amounts(), "source", "EUR") == (
        "Web brought the most won amount: 3.0k EUR (75% of the total) at a 75% win rate.")
    d = amounts()
    d.loc[2, ["won_amount", "won_deals", "lost_deals", "win_rate"]] = [500.0, 9, 1, 0.9]
    assert tk.amount_by_takeaway(d, "source", "EUR").endswith("; Fairs converts best (90% of 10 closed).")
    assert tk.amount_by_takeaway(amounts().assign(won_amount=0.0)) == "Nothing was won in this period, by any source."


def test_product_mix_many_small_vs_few_big():
    small = pd.DataFrame({"product": ["Kits", "Suites"], "won_amount": [5000.0, 4000.0], "won_deals": [50, 2],
                          "lost_deals": [10, 5], "win_rate": [0.8, 0.3], "mean_size": [100.0, 2000.0]})
    assert tk.product_mix_takeaway(small, currency="EUR") == (
        "Many small contracts beat a few big ones: Kits (5.0k EUR from 50 deals averaging 100 EUR) "
        "out-earned Suites (4.0k EUR from 2 deals averaging 2.0k EUR).")
    big = small.assign(won_amount=[5000.0, 8000.0], mean_size=[100.0, 4000.0])
    assert tk.product_mix_takeaway(big, currency="EUR").startswith(
        "A few big contracts beat many small ones: Suites (8.0k EUR from 2 deals")
    both = small.assign(won_deals=[50, 60], won_amount=[5000.0, 9000.0], mean_size=[100.0, 150.0])
    assert tk.product_mix_takeaway(both).endswith("leads on total won amount, number of deals and deal size alike.")


def test_funnel_takeaway_uses_cohort_and_bottleneck():
    f = pd.DataFrame({"stage": ["Lead", "Demo"], "reached": [20, 5], "conversion": [0.25, 0.4]})
    text = tk.funnel_takeaway(f, {"lowest_conversion_stage": "Lead", "lowest_conversion": 0.25},
                              {"deals": 20, "won": 2, "lost": 10, "open": 8})
    assert text == ("Of 20 deals created in the period, 2 (10%) are won so far; the bottleneck is Lead, "
                    "where only 25% move on.")
    assert tk.funnel_takeaway(f) == "20 deals entered the funnel; the bottleneck is Lead, where only 25% move on."
    assert tk.funnel_takeaway(f.assign(reached=0)) == "No deals were created in this period."


def test_snapshot_and_flow_takeaways():
    w = pd.DataFrame({"at": pd.to_datetime(["2026-04-06", "2026-04-06", "2026-04-13", "2026-04-13"]),
                      "stage": ["A", "B", "A", "B"], "open_deals": [5, 5, 3, 4]})
    b = {"largest_drop_stage": "A", "largest_drop": 2, "largest_drop_week": pd.Timestamp("2026-04-13")}
    assert tk.snapshot_takeaway(w, b) == ("Open deals went from 10 to 7 (-3) between the first and last snapshot; "
                                          "the largest weekly drop was in A, 2 deals (week ending 2026-04-13).")
    flow = pd.DataFrame({"stage": ["A", "B"], "visits": [10, 4], "lost": [2, 3], "still there": [1, 1]})
    assert tk.stage_flow_takeaway(flow) == ("Visits to B end lost most often (75% of 4); 2 of 14 visits begun "
                                            "in the period are still open.")


def test_time_in_stage_takeaway():
    tis = pd.DataFrame({"stage": ["A", "B"], "median_days": [2.0, 9.4], "p90_days": [5.0, 20.0]})
    stuck = pd.DataFrame({"stage": ["B", "B", "A"], "amount": [100.0, None, 50.0]})
    assert tk.time_in_stage_takeaway(tis, stuck, "EUR") == (
        "Deals sit longest in B (median 9 days, 90th percentile 20 days); 3 open deals worth 150 EUR "
        "are stuck past their stage's threshold, most in B (2).")
    assert tk.time_in_stage_takeaway(tis, stuck.iloc[:0]).endswith("no open deal is stuck past its stage's threshold.")


def test_win_rate_by_time_takeaway_pools_stages():
    d = pd.DataFrame({"stage": ["A", "A", "B", "B"],
                      "bucket": pd.Categorical(["0-7", "7+", "0-7", "7+"], categories=["0-7", "7+"]),
                      "deals": [4, 4, 6, 2], "won": [2, 1, 4, 0], "lost": [2, 3, 2, 2]})
    # 0-7: 6 won of 10 = 60%; 7+: 1 won of 6 = 17%
    assert tk.win_rate_by_time_takeaway(d) == ("Closed deals that spent 0-7 in a stage won 60%, those that spent "
                                               "7+ won 17%: the longer deals sit, the less they close.")
    # with 7 closed deals needed, the 7+ bucket (6 closed) is left out and no comparison is possible
    assert tk.win_rate_by_time_takeaway(d, min_closed=7).startswith("Too few closed deals")


def test_days_to_close_takeaway_with_survival():
    dtc = pd.DataFrame({"status": ["won", "lost"], "deals": [3, 5], "mean_days": [40.0, 10.0],
                        "median_days": [35.0, 8.0]})
    surv = SimpleNamespace(median_days=21.6, p_close_within=lambda d: {30: 0.6, 90: 0.9}[d])
    assert tk.days_to_close_takeaway(dtc, surv) == (
        "Won deals closed in a median 35 days (n=3), lost deals in 8 days (n=5); counting open deals too, "
        "half close within 22 days, 60% within 30 days and 90% within 90.")
    assert tk.days_to_close_takeaway(dtc.iloc[:0]) == "No deals closed in this period."


def test_deal_size_takeaways():
    assert tk.deal_size_takeaway({"deals": 4, "mean": 150.0, "median": 100.0, "trimmed_mean": 120.0}, "EUR") == (
        "4 won deals: median 100 EUR, mean 150 EUR, 10% trimmed mean 120 EUR; the mean is 50% above the median, "
        "pulled up by a few big deals, so plan with the trimmed mean or the median.")
    assert tk.deal_size_takeaway({"deals": 2, "mean": 100.0, "median": 100.0, "trimmed_mean": 100.0}).endswith(
        "mean and median agree, so a few big deals do not distort the average.")
    assert tk.deal_size_takeaway({"deals": 0, "mean": None}) == "No won deals with a known amount in this period."
    m = pd.DataFrame({"month": ["2026-04", "2026-05", "2026-06"], "median": [200.0, None, 250.0]})
    assert tk.deal_size_trend_takeaway(m, "EUR") == "The median won deal rose from 200 EUR in 2026-04 to 250 EUR in 2026-06 (+25%)."
    out = pd.DataFrame({"amount": [900.0, 100.0]})
    assert tk.outliers_takeaway(out, 4000.0, "EUR") == (
        "2 outlier deals (beyond 1.5 IQR of log amount) total 1.0k EUR (25% of the won amount).")


def test_target_takeaway_rounds_up():
    plan = {"target": 10000.0, "deals_needed": 9.2, "deals_to_work": 30.1}
    assert tk.target_takeaway(plan, "EUR") == ("To win 10k EUR at this period's mean deal size, close about 10 deals; "
                                               "at this period's win rate that means working about 31 deals to a close.")
    assert tk.target_takeaway(None).startswith("No revenue target given")


def test_rep_forecast_and_calibration_takeaways():
    reps = amounts("owner")
    # only Ads has 5+ closed deals (Web 4, Fairs 2): one rep qualifies, so no range is given
    assert tk.rep_takeaway(reps, "EUR") == "Web won the most (3.0k EUR, 3 deals)."
    reps = reps.assign(owner=["Ann", "Bo", "Cy"])
    assert tk.rep_takeaway(reps, "EUR", min_closed=4) == (
        "Ann won the most (3.0k EUR, 3 deals); win rates range from 17% (Bo) to 75% (Ann) among reps with at "
        "least 4 closed deals.")
    fc = pd.DataFrame({"stage": ["A", "B", "B"], "amount": [100.0, 200.0, 100.0],
                       "expected_won_amount": [10.0, 100.0, 50.0]})
    assert tk.forecast_takeaway(fc, "EUR") == ("The 3 open deals are expected to bring 160 EUR (40% of their "
                                               "400 EUR open amount); most from B (150 EUR).")
    bt = SimpleNamespace(brier=0.15, baseline_brier=0.2)
    assert tk.calibration_takeaway(bt) == ("In the backtest the forecast's Brier score is 0.150, better than the "
                                           "stage-only baseline's 0.200 (25% lower) (0 is perfect; lower is better).")


def test_as_html_escapes_data():
    h = tk.as_html("<script>alert(1)</script> & more", label="<b>")
    assert "<script>" not in h and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in h
    assert "&lt;b&gt;" in h
    assert tk.show("x <i>").data == tk.as_html("x <i>")
