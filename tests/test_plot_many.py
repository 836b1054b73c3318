"""Charts of many categories (30 products, 11 sources, as in the Olist import): the top N by the
chart's own measure plus "other (K more)", sized to their content, no overprinted labels (measured
with matplotlib text bounding boxes), readable axes when the values are all zero or tiny, and
calibration points at 100% drawn whole."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from label_overlap import overlapping_labels, tick_texts

from funnelkit import plot as fkp

N = 30


@pytest.fixture
def many():
    """30 products with won amounts 1000, 2000, ... 30000 (product p29 the biggest), long names."""
    i = np.arange(N)
    won = (i + 1).astype(int)
    lost = (N - i).astype(int)
    amount = 1000.0 * (i + 1)
    return pd.DataFrame({"product": [f"p{k:02d} housewares and garden supplies {k}" for k in i],
                         "won_amount": amount, "won_deals": won, "lost_deals": lost,
                         "win_rate": won / (won + lost), "mean_size": amount / won,
                         "share": amount / amount.sum(), "open_amount": 10.0 * i})


def test_top_categories_keeps_the_biggest_and_sums_the_rest(many):
    t = fkp.top_categories(many, "product", "won_amount", top=12)
    assert len(t) == 13
    assert t["product"].iloc[0].startswith("p29") and t["product"].iloc[11].startswith("p18")
    other = t.iloc[-1]
    assert other["product"] == "other (18 more)"
    # p00..p17: amounts 1000..18000, won 1..18, lost 30..13
    assert other["won_amount"] == 1000.0 * sum(range(1, 19)) == 171000.0
    assert other["won_deals"] == 171 and other["lost_deals"] == sum(range(13, 31)) == 387
    assert other["win_rate"] == pytest.approx(171 / (171 + 387))
    assert other["mean_size"] == pytest.approx(171000.0 / 171)
    assert other["share"] == pytest.approx(171000.0 / many["won_amount"].sum())
    assert t["won_amount"].sum() == many["won_amount"].sum()          # nothing lost in the lump


def test_top_categories_leaves_short_lists_alone_and_keeps_unknown_unknown():
    d = pd.DataFrame({"source": list("abc"), "won_amount": [np.nan, np.nan, 5.0], "won_deals": [1, 2, 1],
                      "lost_deals": [0, 0, 0]})
    assert fkp.top_categories(d, "source", "won_amount", top=2)["source"].tolist() == ["c", "a", "b"]
    d4 = pd.concat([d, d.assign(source=["d", "e", "f"])], ignore_index=True)
    t = fkp.top_categories(d4, "source", "won_amount", top=2)
    assert t["source"].tolist() == ["c", "f", "other (4 more)"]
    assert np.isnan(t["won_amount"].iloc[-1])                  # unknown + unknown is unknown, not 0
    assert t["won_deals"].iloc[-1] == 6


def test_amount_by_plot_of_30_products_shows_top_12_and_other_without_overprint(many):
    ax = fkp.amount_by_plot(many, by="product", currency="BRL")
    labels = tick_texts(ax, "y")
    assert len(labels) == 13 and labels[-1] == "other (18 more)"
    assert all(len(t) <= fkp.LABEL_CHARS for t in labels)
    assert overlapping_labels(ax.figure) == []
    assert ax.figure.get_size_inches()[1] >= 0.27 * 13          # grows with its rows


def test_product_mix_of_30_products_without_overprint(many):
    fig = fkp.product_mix_plot(many, currency="BRL")
    assert len(tick_texts(fig.axes[0], "y")) == 13
    assert overlapping_labels(fig) == []


def test_days_to_close_by_30_products_without_overprint():
    rows = []
    for k in range(N):
        for status, n in (("won", k + 1), ("lost", 2)):
            rows.append({"status": status, "product": f"product {k:02d}", "deals": n,
                         "mean_days": 10.0 + k, "median_days": 8.0 + k})
    ax = fkp.days_to_close_plot(pd.DataFrame(rows), by="product")
    labels = tick_texts(ax, "y")
    assert labels[0] == "product 29" and labels[-1] == "other (18 more)" and len(labels) == 13
    texts = [t.get_text() for t in ax.texts]
    # other: products 00..17, won n=1..18 (171 deals), mean = sum(n*(10+k))/171; its median is not drawn
    want = sum((k + 1) * (10.0 + k) for k in range(18)) / 171
    assert any(t == f"mean {want:.0f} d · n=171" for t in texts), texts
    assert overlapping_labels(ax.figure) == []


def test_expected_won_by_11_sources_without_overprint():
    d = pd.DataFrame({"source": [f"source {k}" for k in range(11)] + ["unknown"],
                      "open_deals": list(range(1, 13)), "expected_won_amount": [100.0 * k for k in range(12)]})
    ax = fkp.expected_won_plot(d, by="source", currency="BRL")
    assert overlapping_labels(ax.figure) == []
    assert len(tick_texts(ax, "y")) == 12                      # 12 rows: 11 + 1 would lump one row only


def test_all_zero_amounts_do_not_read_0_0_0_1_1_1(many):
    zero = many.assign(won_amount=0.0, mean_size=0.0, share=np.nan)
    fig = fkp.product_mix_plot(zero, currency="BRL")
    amount_ax, count_ax, mean_ax = fig.axes
    assert tick_texts(amount_ax) == [] and tick_texts(mean_ax) == []
    assert "all zero" in [t.get_text() for t in amount_ax.texts]
    counts = tick_texts(count_ax)
    assert len(counts) == len(set(counts)) >= 2                 # whole numbers, each once
    assert overlapping_labels(fig) == []
    unknown = many.assign(won_amount=np.nan, mean_size=np.nan)
    fig = fkp.product_mix_plot(unknown, currency="BRL")
    assert "no amount known" in [t.get_text() for t in fig.axes[0].texts]


@pytest.mark.parametrize("values", [[0.2, 0.5, 1.0], [1.0, 2.0, 3.0], [1200.0, 1500.0, 1800.0]])
def test_small_money_axes_have_distinct_ticks(values):
    d = pd.DataFrame({"source": ["a", "b", "c"], "won_amount": values, "win_rate": [0.5] * 3})
    ax = fkp.amount_by_plot(d, currency="BRL")
    ticks = tick_texts(ax, "x")
    assert len(ticks) == len(set(ticks)) >= 2, ticks


def test_calibration_points_at_100_percent_are_not_clipped():
    cal = pd.DataFrame({"predicted": [0.05, 0.5, 1.0], "observed": [0.0, 0.5, 1.0], "deals": [10, 10, 10]})
    ax = fkp.calibration_plot(cal)
    assert ax.get_xlim()[1] > 1.0 and ax.get_ylim()[1] > 1.0 and ax.get_ylim()[0] < 0.0
    scatter = ax.collections[0]
    assert scatter.get_clip_on() is False


def test_chart_alt_text_has_title_and_takeaway(many):
    fig = fkp.product_mix_plot(many, currency="BRL")
    assert fkp.chart_alt_text(fig, "Few big.") == \
        "Chart: Won amount, won deals and mean size by product. Few big."


def test_all_zero_deal_size_trend_has_one_zero_tick():
    d = pd.DataFrame({"month": ["2018-01", "2018-02"], "mean": [0.0, 0.0], "median": [0.0, 0.0],
                      "trimmed_mean": [0.0, 0.0], "deals": [3, 4]})
    ax = fkp.deal_size_trend_plot(d, currency="BRL")
    assert tick_texts(ax, "y") == ["0"]
