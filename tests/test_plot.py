"""Plotting helpers: titles, axis labels with units and currency, stable stage colours, escaping."""

from __future__ import annotations

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from funnelkit import plot as fkp

STAGES = ["Lead", "Demo", "Proposal"]


def cat(values, cats=STAGES):
    return pd.Categorical(values, categories=cats, ordered=True)


@pytest.fixture
def funnel():
    return pd.DataFrame({"stage": cat(STAGES), "reached": [10, 6, 3], "conversion": [0.6, 0.5, 1 / 3]})


@pytest.fixture
def weekly():
    at = pd.to_datetime(["2026-04-06"] * 3 + ["2026-04-13"] * 3)
    return pd.DataFrame({"at": at, "stage": cat(STAGES * 2), "open_deals": [5, 3, 1, 4, 4, 2],
                         "open_amount": [5e3, 3e3, 1e3, 4e3, 4e3, 2e3]})


@pytest.fixture
def by_source():
    return pd.DataFrame({"source": ["Web", "Ads"], "won_amount": [3000.0, 1000.0], "won_deals": [3, 1],
                         "lost_deals": [1, 3], "win_rate": [0.75, 0.25], "mean_size": [1000.0, 1000.0],
                         "share": [0.75, 0.25], "open_amount": [0.0, 500.0]})


def labels(ax: Axes) -> tuple[str, str, str]:
    return ax.get_title(), ax.get_xlabel(), ax.get_ylabel()


def facecolours(ax: Axes) -> list[str]:
    return [mcolors.to_hex(p.get_facecolor()).upper() for p in ax.patches]


def test_stage_palette_is_stable_and_positional():
    a = fkp.stage_palette(STAGES)
    assert a == fkp.stage_palette(list(STAGES))
    assert list(a) == STAGES
    assert len(set(a.values())) == 3
    # a stage keeps its colour when the pipeline is longer: colours go by position
    longer = fkp.stage_palette(STAGES + ["Negotiation"])
    assert all(longer[s] == a[s] for s in STAGES)
    many = fkp.stage_palette([f"S{i}" for i in range(14)])
    assert len(set(many.values())) == 14


def test_funnel_plot_titles_units_and_stage_colours(funnel):
    ax = fkp.funnel_plot(funnel)
    title, x, y = labels(ax)
    assert title and "(count)" in x and y == "Stage"
    assert [t.get_text() for t in ax.get_yticklabels()] == STAGES
    pal = fkp.stage_palette(STAGES)
    assert facecolours(ax) == [pal[s].upper() for s in STAGES]
    texts = [t.get_text() for t in ax.texts]
    assert texts[0] == "10  (60% to next)" and texts[-1] == "3  (33% to won)"


def test_same_stage_same_colour_across_charts(funnel, weekly):
    pal = fkp.stage_palette(STAGES)
    ax1 = fkp.funnel_plot(funnel)
    ax2 = fkp.snapshot_plot(weekly)
    stack = [mcolors.to_hex(c.get_facecolor()[0]).upper() for c in ax2.collections]
    assert facecolours(ax1) == stack == [pal[s].upper() for s in STAGES]
    tis = pd.DataFrame({"stage": cat(STAGES), "visits": [4, 3, 2], "mean_days": [2.0, 5, 9],
                        "median_days": [1.5, 4, 8], "p90_days": [3.0, 8, 15]})
    ax3 = fkp.time_in_stage_plot(tis)
    assert facecolours(ax3) == [pal[s].upper() for s in STAGES]


def test_snapshot_amount_axis_names_currency(weekly):
    ax = fkp.snapshot_plot(weekly, value="open_amount", currency="EUR")
    assert "EUR" in ax.get_ylabel() and ax.get_title()
    assert fkp.snapshot_plot(weekly).get_ylabel() == "Open deals (count)"


def test_amount_by_plot_sorted_with_currency(by_source):
    ax = fkp.amount_by_plot(by_source.iloc[::-1], by="source", currency="EUR")
    title, x, y = labels(ax)
    assert "source" in title and x == "Won amount (EUR)" and y == "Source"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Web", "Ads"]
    assert ax.texts[0].get_text() == "3.0k EUR  win rate 75%"


def test_product_mix_plot_three_panels(by_source):
    fig = fkp.product_mix_plot(by_source.rename(columns={"source": "product"}), currency="USD")
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert fig._suptitle.get_text()
    assert [a.get_xlabel() for a in fig.axes] == ["Won amount (USD)", "Won deals (count)",
                                                  "Mean won deal size (USD)"]


def test_time_and_close_charts_label_days():
    visits = pd.DataFrame({"stage": cat(["Lead", "Lead", "Demo"]), "days": [1.0, 3.0, 10.0]})
    thr = pd.DataFrame({"stage": cat(STAGES), "threshold_days": [2.5, 9.0, np.nan], "visits": [2, 1, 0]})
    ax = fkp.duration_plot(visits, stages=STAGES, thresholds=thr)
    assert "Days" in ax.get_xlabel() and ax.get_title()
    dtc = pd.DataFrame({"status": ["won", "lost"], "deals": [3, 2], "mean_days": [30.0, 10.0],
                        "median_days": [25.0, 8.0]})
    ax = fkp.days_to_close_plot(dtc)
    assert ax.get_xlabel() == "Days from created to closed" and ax.get_title()
    sf = pd.DataFrame({"KM_estimate": [1.0, 0.6, 0.3]}, index=[0.0, 10.0, 40.0])
    ax = fkp.survival_plot(sf, median_days=10.0)
    assert ax.get_xlabel() == "Days since created" and "%" in ax.get_ylabel()
    wrt = pd.DataFrame({"stage": cat(["Lead", "Lead"]), "bucket": ["0-7 days", "7-14 days"], "deals": [10, 2],
                        "won": [5, 1], "lost": [5, 1], "win_rate": [0.5, 0.5]})
    ax = fkp.win_rate_by_time_plot(wrt, min_deals=5)
    line = ax.get_lines()[0].get_ydata()
    assert line[0] == 0.5 and np.isnan(line[1])  # a 2-deal bucket is not drawn
    assert "%" in ax.get_ylabel() and "Days in stage" in ax.get_xlabel()


def test_deal_size_charts_name_currency():
    monthly = pd.DataFrame({"month": ["2026-04", "2026-05"], "deals": [2, 3], "mean": [150.0, 200.0],
                            "median": [100.0, 180.0], "trimmed_mean": [120.0, 190.0]})
    ax = fkp.deal_size_trend_plot(monthly, currency="GBP")
    assert ax.get_ylabel() == "Won deal size (GBP)" and ax.get_xlabel() == "Month closed"
    assert len(ax.get_lines()) == 3
    won = pd.DataFrame({"amount": [100.0, 120.0, 5000.0], "side": [None, None, "high"]})
    ax = fkp.deal_size_plot(won, outlier="side", stats={"mean": 1740.0, "median": 120.0}, currency="GBP")
    assert "GBP" in ax.get_xlabel() and ax.get_ylabel() == "Won deals (count)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "outliers (1)" in legend and "median 120 GBP" in legend


def test_forecast_charts():
    ew = pd.DataFrame({"stage": cat(STAGES), "open_deals": [4, 2, 1], "expected_won_amount": [100.0, 300.0, 500.0]})
    ax = fkp.expected_won_plot(ew, currency="EUR")
    assert ax.get_xlabel() == "Expected won amount (EUR)" and ax.get_title()
    cal = pd.DataFrame({"mean_predicted": [0.1, 0.5], "observed_win_rate": [0.12, 0.4], "deals": [30, 10]})
    ax = fkp.calibration_plot(cal, predicted="mean_predicted", observed="observed_win_rate")
    assert "Predicted" in ax.get_xlabel() and "Observed" in ax.get_ylabel() and ax.get_title()


def test_empty_data_gives_a_labelled_empty_chart(funnel, by_source):
    ax = fkp.funnel_plot(funnel.assign(reached=0))
    assert ax.get_title() and ax.get_xlabel() == "Deals (count)"
    assert any("no data" in t.get_text() for t in ax.texts)
    ax = fkp.amount_by_plot(by_source.iloc[:0], currency="EUR")
    assert ax.get_xlabel() == "Won amount (EUR)" and any("no data" in t.get_text() for t in ax.texts)


def test_helpers_draw_on_a_given_axes_and_never_show(funnel, monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show called"))
    fig, axes = plt.subplots(1, 2)
    assert fkp.funnel_plot(funnel, ax=axes[1]) is axes[1]


def test_to_png_is_small_and_closes(funnel):
    ax = fkp.funnel_plot(funnel)
    n = len(plt.get_fignums())
    png = fkp.to_png(ax)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 60_000
    assert len(plt.get_fignums()) == n - 1
    assert fkp.png_data_uri(fkp.funnel_plot(funnel)).startswith("data:image/png;base64,")


@pytest.mark.parametrize("value,expected", [(950, "950 EUR"), (1234, "1.2k EUR"), (35_400, "35k EUR"),
                                            (2_500_000, "2.5M EUR"), (None, "-"), (float("nan"), "-")])
def test_money(value, expected):
    assert fkp.money(value, "EUR") == expected


def test_format_table_escapes_and_formats():
    df = pd.DataFrame({"source": ["<script>alert(1)</script>"], "won_amount": [1234.5], "win_rate": [0.3333],
                       "days": [np.nan]})
    out = fkp.format_table(df, currency="EUR", days_cols=["days"])
    assert list(out.columns) == ["Source", "Won amount (EUR)", "Win rate", "Days"]
    assert out.iloc[0].tolist() == ["<script>alert(1)</script>", "1,234", "33.3%", "-"]
    assert "<script>" not in out._repr_html_() and "&lt;script&gt;" in out._repr_html_()
    assert isinstance(out.index, pd.RangeIndex) and out.index[0] == 0  # a plain index: not shown


def test_format_table_headers_have_units_and_numbers_are_formatted():
    tis = pd.DataFrame({"stage": cat(STAGES), "visits": [1200, 3, 0], "mean_days": [7.06, 15.44, np.nan],
                        "median_days": [4.9, 10.0, np.nan], "p90_days": [14.66, 26.6, np.nan]})
    out = fkp.format_table(tis)
    assert list(out.columns) == ["Stage", "Visits", "Mean (days)", "Median (days)", "90th percentile (days)"]
    assert out.iloc[0].tolist() == ["Lead", "1,200", "7.1", "4.9", "14.7"]
    assert out.iloc[2].tolist() == ["Proposal", "0", "-", "-", "-"]
    fc = pd.DataFrame({"owner": ["Ann"], "open_deals": [3], "expected_won_deals": [1.234],
                       "expected_won_amount": [12345.6], "median_days_to_close": [47.08], "share": [-0.0001]})
    out = fkp.format_table(fc, currency="USD")
    assert list(out.columns) == ["Owner", "Open deals", "Expected won deals", "Expected won amount (USD)",
                                 "Median days to close, won (days)", "Share of won amount"]
    assert out.iloc[0].tolist() == ["Ann", "3", "1.2", "12,346", "47.1", "0.0%"]   # never "-0.0%"
    bt = pd.DataFrame({"brier": [0.203142], "scored": [671], "skill_vs_baseline": [0.04275]},
                      index=pd.Index(["stage + time in stage"], name="model")).reset_index()
    out = fkp.format_table(bt)
    assert out.iloc[0].tolist() == ["stage + time in stage", "0.203", "671", "4.3%"]
    assert "Brier score (lower is better)" in out.columns
    assert not any("_" in c for c in out.columns)


def test_format_table_movement_and_slippage_columns():
    moves = pd.DataFrame({"deal_id": ["D1"], "amount_before": [90167.5], "amount_after": [np.nan],
                          "past_due": [True], "won_share": [0.3125], "start_amount": [0.0]})
    out = fkp.format_table(moves, currency="USD")
    assert list(out.columns) == ["Deal", "Amount before (USD)", "Amount after (USD)", "Past due", "Won share",
                                 "Amount at the start (USD)"]
    assert out.iloc[0].tolist() == ["D1", "90,168", "-", "yes", "31.2%", "0"]
    assert fkp.format_table(pd.DataFrame({"past_due": [False]})).iloc[0].tolist() == ["no"]


def test_days_to_close_labels_name_each_marker():
    dtc = pd.DataFrame({"status": ["won", "lost"], "deals": [34, 128], "mean_days": [80.0, 27.0],
                        "median_days": [57.0, 16.0]})
    ax = fkp.days_to_close_plot(dtc)
    texts = {t.get_text(): t.get_position()[0] for t in ax.texts}
    assert set(texts) == {"median 57 d · mean 80 d · n=34", "median 16 d · mean 27 d · n=128"}
    # the labels stand in one column right of every bar and dot, not at the mean dot
    assert len(set(texts.values())) == 1 and min(texts.values()) > 80
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "mean (dot)" in legend and "won: median (bar)" in legend


def test_duration_plot_has_plain_day_ticks_and_legend_outside():
    visits = pd.DataFrame({"stage": cat(["Lead", "Lead", "Demo"]), "days": [0.5, 3.0, 60.0]})
    thr = pd.DataFrame({"stage": cat(STAGES), "threshold_days": [2.5, 9.0, np.nan]})
    ax = fkp.duration_plot(visits, stages=STAGES, thresholds=thr)
    ax.figure.canvas.draw()
    ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert ticks and set(ticks) <= {"0.5", "1", "3", "7", "14", "30", "90"} and "3" in ticks
    assert not any("10^" in t or "$" in t for t in ticks)
    box = ax.get_legend().get_window_extent()
    assert box.y1 < ax.get_window_extent().y0          # the legend sits below the axes


def test_survival_day_lines_are_labelled():
    sf = pd.DataFrame({"KM_estimate": [1.0, 0.6, 0.3, 0.1]}, index=[0.0, 10.0, 40.0, 95.0])
    ax = fkp.survival_plot(sf)
    texts = [t.get_text() for t in ax.texts]
    assert " 30 days\n40% closed" in texts and " 60 days\n70% closed" in texts and " 90 days\n70% closed" in texts


def test_snapshot_weeks_are_plotted_on_their_sunday(weekly):
    ax = fkp.snapshot_plot(weekly)
    xs = ax.get_xlim()
    import matplotlib.dates as mdates
    first = mdates.num2date(xs[0]).replace(tzinfo=None)
    assert pd.Timestamp(first).date() == pd.Timestamp("2026-04-05").date()   # snapshot at Monday 04-06 00:00


