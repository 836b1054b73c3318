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
    assert list(t.columns) == ["Metric", "2026Q2", "2026Q1", "Change"]
    row = t.set_index("Metric")
    assert row.loc["Won amount"].tolist() == ["1,200 EUR", "1,000 EUR", "+20%"]
    assert row.loc["Won deals", "Change"] == "+50%"
    assert row.loc["Win rate"].tolist() == ["30.0%", "25.0%", "+5.0 pts"]
    assert row.loc["Mean won deal size", "Change"] == "-20%"
    assert row.loc["Median won deal size", "Change"] == "-"
    assert row.loc["Open pipeline amount", "2026Q2"] == "50 EUR"
    assert row.loc["Median days to close (won)", "2026Q2"] == "12.2"


def test_headline_without_previous_and_from_zero():
    t = tk.headline_table(summary("P", 10.0, 1, 0.5), None)
    assert (t["Change"] == "-").all()
    cur, prev = summary("2026Q2", 500.0, 2, 0.5), summary("2026Q1", 0.0, 0, None)
    assert tk.headline_table(cur, prev).set_index("Metric").loc["Won amount", "Change"] == "new"
    assert tk.headline_takeaway(cur, prev, "EUR") == "Won 500 EUR from 2 deals (nothing was won in 2026Q1); win rate 50%."


def test_changes_that_round_to_zero_have_no_sign():
    # -0.2% and -0.04 pts round to zero: "0%" and "0.0 pts", never "-0%"
    t = tk.headline_table(summary("B", 998.0, 4, 0.2500), summary("A", 1000.0, 4, 0.2504), "EUR")
    row = t.set_index("Metric")
    assert row.loc["Won amount", "Change"] == "0%"
    assert row.loc["Won deals", "Change"] == "0%"
    assert row.loc["Win rate", "Change"] == "0.0 pts"
    assert tk.headline_takeaway(summary("B", 998.0, 4, 0.25), summary("A", 1000.0, 4, 0.25)) == (
        "Won 998 from 4 deals, unchanged on A; win rate 25% (0.0 pts).")


def test_previous_period_before_the_data_is_not_compared():
    cur = summary("2024Q4", 500.0, 2, 0.5)
    prev = {"period": {"label": "2024Q3", "start": "2024-07-01", "end": "2024-09-30"}}
    start = pd.Timestamp("2024-10-01 07:00")
    assert tk.previous_precedes_data(prev, start)
    assert not tk.previous_precedes_data(prev, pd.Timestamp("2024-09-30 23:00"))  # a deal on its last day
    t = tk.headline_table(cur, prev, "EUR", data_start=start).set_index("Metric")
    assert (t["2024Q3"] == "no data before 2024-10-01").all()
    assert (t["Change"] == "-").all()
    assert tk.headline_takeaway(cur, prev, "EUR", data_start=start) == (
        "Won 500 EUR from 2 deals; win rate 50% (no comparison with 2024Q3: no data before 2024-10-01).")
    # a previous period with data is compared as usual
    real_prev = summary("2024Q3", 250.0, 1, 0.5) | {"period": {"label": "2024Q3", "end": "2024-09-30"}}
    assert tk.headline_table(cur, real_prev, "EUR", data_start=pd.Timestamp("2024-08-01")) \
        .set_index("Metric").loc["Won amount", "Change"] == "+100%"


def test_headline_takeaway():
    text = tk.headline_takeaway(summary("2026Q2", 1200.0, 6, 0.30), summary("2026Q1", 1500.0, 4, 0.25), "EUR")
    assert text == "Won 1.2k EUR from 6 deals, down 20% on 2026Q1; win rate 30% (+5.0 pts)."


def test_amount_by_takeaway_names_top_and_best_converting():
    assert tk.amount_by_takeaway(amounts(), "source", "EUR") == (
        "Web brought the most won amount: 3.0k EUR (75% of the total) at a 75% win rate.")
    d = amounts()
    d.loc[2, ["won_amount", "won_deals", "lost_deals", "win_rate"]] = [500.0, 9, 1, 0.9]
    assert tk.amount_by_takeaway(d, "source", "EUR").endswith("; Fairs converts best (90% of 10 closed).")
    # Won deals whose amounts are all 0 are not "nothing won": the text says what is known.
    assert tk.amount_by_takeaway(amounts().assign(won_amount=0.0)) == (
        "4 deals were won, all with an amount of 0, so no source can be ranked by won amount; "
        "Web had the most won deals (3).")
    assert tk.amount_by_takeaway(amounts().assign(won_amount=0.0, won_deals=0)) == (
        "Nothing was won in this period, by any source.")


def test_product_mix_many_small_vs_few_big():
    small = pd.DataFrame({"product": ["Kits", "Suites"], "won_amount": [5000.0, 4000.0], "won_deals": [50, 2],
                          "lost_deals": [10, 5], "win_rate": [0.8, 0.3], "mean_size": [100.0, 2000.0]})
    assert tk.product_mix_takeaway(small, currency="EUR") == (
        "Many small contracts beat a few big ones: Kits (5.0k EUR from 50 deals averaging 100 EUR) "
        "out-earned Suites (4.0k EUR from 2 deals averaging 2.0k EUR).")
    big = small.assign(won_amount=[5000.0, 8000.0], mean_size=[100.0, 4000.0])
    assert tk.product_mix_takeaway(big, currency="EUR").startswith(
        "A few big contracts beat many small ones: Suites (8.0k EUR from 2 deals")
    # the top earner is neither the most frequent nor the biggest: say who is which
    mixed = pd.DataFrame({"product": ["Pro", "Basic", "Giant"], "won_amount": [1100.0, 140.0, 105.0],
                          "won_deals": [226, 256, 4], "lost_deals": [1, 1, 1], "win_rate": [0.6, 0.6, 0.6],
                          "mean_size": [4.9, 0.55, 26.0]})
    assert tk.product_mix_takeaway(mixed) == (
        "Pro (1.1k from 226 deals averaging 5) brought the most won amount; Basic had the most won deals (256) "
        "and Giant the largest mean size (26).")
    both = small.assign(won_deals=[50, 60], won_amount=[5000.0, 9000.0], mean_size=[100.0, 150.0])
    assert tk.product_mix_takeaway(both).endswith("leads on total won amount, number of deals and deal size alike.")


def test_funnel_takeaway_uses_cohort_and_bottleneck():
    f = pd.DataFrame({"stage": ["Lead", "Demo"], "reached": [20, 5], "conversion": [0.25, 0.4]})
    text = tk.funnel_takeaway(f, {"lowest_conversion_stage": "Lead", "lowest_conversion": 0.25},
                              {"deals": 20, "won": 2, "lost": 10, "open": 8})
    assert text == ("Of 20 deals created in the period, 2 (10%) are won so far and 8 (40%) are still open; "
                    "the bottleneck is Lead, where only 25% move on.")
    assert tk.funnel_takeaway(f) == "20 deals entered the funnel; the bottleneck is Lead, where only 25% move on."
    assert tk.funnel_takeaway(f.assign(reached=0)) == "No deals were created in this period."


def test_snapshot_and_flow_takeaways():
    w = pd.DataFrame({"at": pd.to_datetime(["2026-04-06", "2026-04-06", "2026-04-13", "2026-04-13"]),
                      "stage": ["A", "B", "A", "B"], "open_deals": [5, 5, 3, 4]})
    # the drop seen at the Monday 2026-04-13 00:00 snapshot is the week ending Sunday 2026-04-12
    b = {"largest_drop_stage": "A", "largest_drop": 2, "largest_drop_week": pd.Timestamp("2026-04-13")}
    assert tk.snapshot_takeaway(w, b) == ("Open deals went from 10 to 7 (-3) between the first and last snapshot; "
                                          "the largest weekly drop was in A, 2 deals (week ending 2026-04-12).")
    same = w.assign(open_deals=[5, 5, 6, 4])
    assert tk.snapshot_takeaway(same).startswith("Open deals were 10 at both the first and the last snapshot")
    assert tk.week_label(pd.Timestamp("2026-06-15")) == "2026-06-14"      # Monday 00:00 = Sunday 24:00
    assert tk.week_label(pd.Timestamp("2026-06-30 12:00")) == "2026-06-30"


def flow_table(stage, visits, advanced, won, lost, still):
    return pd.DataFrame({"stage": stage, "visits": visits, "advanced": advanced, "skipped ahead": 0,
                         "moved back": 0, "won": won, "lost": lost, "still there": still})


def test_stage_flow_takeaway_names_the_largest_outcome():
    # B: lost 3 of 4 is its largest outcome
    flow = flow_table(["A", "B"], [10, 4], [7, 0], [0, 0], [2, 3], [1, 1])
    assert tk.stage_flow_takeaway(flow, min_visits=1) == (
        "Visits to B end lost more often than anything else: 75% of 4, the highest lost share of any stage; "
        "2 of 14 visits begun in the period are still open.")
    # Engaging: 16% lost is the highest lost share, but most visits are still open: say so
    maven = flow_table(["Prospecting", "Engaging"], [0, 100], [0, 0], [0, 23], [0, 16], [0, 61])
    assert tk.stage_flow_takeaway(maven) == (
        "Engaging loses the largest share of its visits (16% of 100 ended lost), though its most common "
        "outcome is \"still there\" (61%); 61 of 100 visits begun in the period are still open.")
    # stages with fewer than min_visits visits are not compared (B, 4 visits)
    assert tk.stage_flow_takeaway(flow).startswith("A loses the largest share of its visits (20% of 10")


def test_empty_stages_draw_no_conclusion():
    # "Prospecting" was never entered: no bottleneck there, even if the metric named it
    f = pd.DataFrame({"stage": ["Prospecting", "Engaging"], "reached": [0, 50], "conversion": [None, 0.4]})
    assert tk.funnel_takeaway(f, {"lowest_conversion_stage": "Prospecting", "lowest_conversion": 0.0}) == (
        "0 deals entered the funnel; the bottleneck is Engaging, where only 40% move on.")
    tis = pd.DataFrame({"stage": ["Prospecting", "Engaging"], "median_days": [None, 9.0], "p90_days": [None, 30.0]})
    assert tk.time_in_stage_takeaway(tis).startswith("Deals sit longest in Engaging")


def test_time_in_stage_takeaway():
    tis = pd.DataFrame({"stage": ["A", "B"], "median_days": [2.0, 9.4], "p90_days": [5.0, 20.0]})
    stuck = pd.DataFrame({"stage": ["B", "B", "A"], "amount": [100.0, None, 50.0]})
    assert tk.time_in_stage_takeaway(tis, stuck, "EUR") == (
        "Deals sit longest in B (median 9 days, 90th percentile 20 days); 3 open deals worth 150 EUR "
        "(1 more of unknown amount) are stuck past their stage's threshold, most in B (2).")
    assert tk.time_in_stage_takeaway(tis, stuck.assign(amount=None), "EUR").endswith(
        "3 open deals of unknown amount are stuck past their stage's threshold, most in B (2).")
    assert tk.time_in_stage_takeaway(tis, stuck.iloc[:0]).endswith("no open deal is stuck past its stage's threshold.")


def wrt(rows):
    """rows: (stage, bucket, won, lost)"""
    d = pd.DataFrame(rows, columns=["stage", "bucket", "won", "lost"])
    d["bucket"] = pd.Categorical(d["bucket"], categories=["0-7", "7-30", "30+"])
    d["stage"] = pd.Categorical(d["stage"], categories=["Empty", "A", "B"])
    return d.assign(deals=d["won"] + d["lost"], win_rate=d["won"] / (d["won"] + d["lost"]))


def test_win_rate_by_time_claims_a_decline_only_on_evidence():
    # A: 30/40 = 75%, 20/40 = 50%, 8/40 = 20%: steady, 55 points, trend z about -4.9 -> a decline.
    # B: 5/10 = 50%, 4/10 = 40%: 10 points but z about -0.45 (noise) -> no clear trend.
    d = wrt([("A", "0-7", 30, 10), ("A", "7-30", 20, 20), ("A", "30+", 8, 32),
             ("B", "0-7", 5, 5), ("B", "7-30", 4, 6), ("B", "30+", 0, 1)])
    assert tk.win_rate_by_time_takeaway(d) == (
        "In A, the longer deals sat, the less often they were won: from 75% (0-7) to 20% (30+); "
        "no clear trend in B.")
    # B's 30+ bucket (1 closed deal) is below the chart's 5-deal minimum: its 0% is not quoted


def test_win_rate_by_time_is_neutral_on_noise_and_small_gaps():
    # first 60% (6/10) vs last 17% (1/6) pooled was called a decline before; per stage it is noise
    d = wrt([("A", "0-7", 2, 3), ("A", "7-30", 1, 4), ("B", "0-7", 4, 2), ("B", "7-30", 3, 3)])
    assert tk.win_rate_by_time_takeaway(d) == (
        "Win rates show no clear trend with time in stage (no stage has a steady change of 10+ points "
        "beyond chance).")
    # significant but small (5 points over 4000 deals) -> no claim either
    big = wrt([("A", "0-7", 1100, 900), ("A", "30+", 1000, 1000)])
    assert tk.win_rate_by_time_takeaway(big).startswith("Win rates show no clear trend")
    assert tk.win_rate_by_time_takeaway(big, min_gap=0.04).startswith("In A, the longer deals sat")
    # a rise is reported as a rise
    up = wrt([("B", "0-7", 10, 30), ("B", "7-30", 20, 20), ("B", "30+", 30, 10)])
    assert tk.win_rate_by_time_takeaway(up) == (
        "In B, deals that sat longer were won more often: from 25% (0-7) to 75% (30+).")
    assert tk.win_rate_by_time_takeaway(wrt([("A", "0-7", 2, 1)])).startswith("Too few closed deals")


def test_days_to_close_takeaway_with_survival():
    dtc = pd.DataFrame({"status": ["won", "lost"], "deals": [3, 5], "mean_days": [40.0, 10.0],
                        "median_days": [35.0, 8.0]})
    surv = SimpleNamespace(median_days=21.6, p_close_within=lambda d: {30: 0.6, 90: 0.9}[d])
    assert tk.days_to_close_takeaway(dtc, surv) == (
        "Won deals closed in a median 35 days (n=3), lost deals in 8 days (n=5); counting open deals too, "
        "half close within 22 days, 60% within 30 days and 90% within 90.")
    assert tk.days_to_close_takeaway(dtc.iloc[:0]) == "No deals closed in this period."
    # the chart under the survival curve gets only the survival part (no repeat of the medians)
    assert tk.survival_takeaway(surv) == "Counting open deals too, half close within 22 days, 60% within 30 days and 90% within 90."
    assert tk.days_to_close_takeaway(dtc) == "Won deals closed in a median 35 days (n=3), lost deals in 8 days (n=5)."


def test_deal_size_takeaways():
    assert tk.deal_size_takeaway({"deals": 4, "mean": 150.0, "median": 100.0, "trimmed_mean": 120.0}, "EUR") == (
        "4 won deals: median 100 EUR, mean 150 EUR, 10% trimmed mean 120 EUR; the mean is 50% above the median, "
        "so plan with the trimmed mean or the median.")
    assert tk.deal_size_takeaway({"deals": 2, "mean": 100.0, "median": 100.0, "trimmed_mean": 100.0}).endswith(
        "mean and median agree, so a few big deals do not distort the average.")
    assert tk.deal_size_takeaway({"deals": 0, "mean": None}) == "No won deals with a known amount in this period."
    m = pd.DataFrame({"month": ["2026-04", "2026-05", "2026-06"], "median": [200.0, None, 250.0]})
    assert tk.deal_size_trend_takeaway(m, "EUR") == (
        "The monthly median won deal rose every month: 200 EUR in 2026-04, 250 EUR in 2026-06.")
    # the middle month counts: 2.1k, 5.7k, 2.5k is no rise
    m = pd.DataFrame({"month": ["2026-04", "2026-05", "2026-06"], "median": [2100.0, 5700.0, 2500.0]})
    assert tk.deal_size_trend_takeaway(m, "USD") == (
        "The monthly median won deal had no steady trend: 2.1k USD in 2026-04, 5.7k USD in 2026-05, "
        "2.5k USD in 2026-06.")
    m = pd.DataFrame({"month": [f"2026-0{i}" for i in range(1, 7)], "median": [300.0, 250, 900, 200, 260, 280]})
    assert tk.deal_size_trend_takeaway(m) == (
        "The monthly median won deal had no steady trend over 6 months, from 300 in 2026-01 to 280 in 2026-06 "
        "(lowest 200 in 2026-04, highest 900 in 2026-03).")
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
    fc = pd.DataFrame({"stage": ["A", "B", "B"], "amount": [100.0, 200.0, 100.0], "p_win": [0.1, 0.5, 0.5],
                       "expected_won_amount": [10.0, 100.0, 50.0]})
    # Won amount: 0 with chance .225, 100 .25, 200 .25, 300 .25, 400 .025: 10% quantile 0, 90% 300.
    assert tk.forecast_takeaway(fc, "EUR") == ("The 3 open deals are expected to bring 160 EUR (40% of their "
                                               "400 EUR open amount); 8 times in 10 the won amount lands "
                                               "between 0 EUR and 300 EUR; most from B (150 EUR).")
    bt = SimpleNamespace(brier=0.15, baseline_brier=0.2)
    assert tk.calibration_takeaway(bt) == ("In the backtest the forecast's Brier score is 0.150, better than the "
                                           "stage-only baseline's 0.200 (25% lower) (0 is perfect; lower is better).")


def test_as_html_escapes_data():
    h = tk.as_html("<script>alert(1)</script> & more", label="<b>")
    assert "<script>" not in h and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in h
    assert "&lt;b&gt;" in h
    assert tk.show("x <i>").data == tk.as_html("x <i>")
