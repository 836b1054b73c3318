"""Plotting helpers: titles, axis labels with units and currency, stable stage colours, escaping."""

from __future__ import annotations

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from funnelkit import plotting as fkp

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
    out = fkp.format_table(df, currency="EUR", money_cols=["won_amount"], pct_cols=["win_rate"], days_cols=["days"])
    assert list(out.columns) == ["source", "won_amount (EUR)", "win_rate", "days"]
    assert out.iloc[0].tolist() == ["<script>alert(1)</script>", "1,234", "33.3%", "-"]
    assert "<script>" not in out._repr_html_() and "&lt;script&gt;" in out._repr_html_()
