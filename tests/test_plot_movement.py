"""The charts of the pipeline-movement sections: the waterfall walks from start to end, the pushes chart
and the cohort curves draw what the metrics give (hand data of movement_hand_data.py)."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from movement_hand_data import END, START, write_movement

matplotlib.use("Agg")

import funnelkit as fk  # noqa: E402
import funnelkit.plot as fkp  # noqa: E402
from funnelkit.metrics import cohort_conversion, pipeline_waterfall, win_rate_by_pushes  # noqa: E402
from funnelkit.metrics.movement import MOVEMENTS  # noqa: E402


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    return fk.load(write_movement(tmp_path_factory.mktemp("plot") / "hand"))


def test_waterfall_bars_walk_from_start_to_end(hand):
    w = pipeline_waterfall(hand, START, END, window="2026Q2")
    ax = fkp.waterfall_plot(w.movements, start_amount=w.start_amount, end_amount=w.end_amount, currency="USD")
    bars = ax.patches
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "start", "created", "pulled in", "reopened", "amount up", "amount down", "pushed out", "won", "lost", "end"]
    assert [b.get_height() for b in bars] == [10800, 2000, 3800, 0, 500, 500, 3000, 3200, 3500, 6900]
    # Each movement bar floats between the running totals before and after it.
    levels = 10800 + np.cumsum([0, 2000, 3800, 0, 500, -500, -3000, -3200, -3500])
    assert [b.get_y() for b in bars[1:9]] == [min(a, b) for a, b in zip(levels[:-1], levels[1:])]
    assert levels[-1] == 6900


def test_pushes_and_cohort_charts(hand):
    ax = fkp.win_rate_by_pushes_plot(win_rate_by_pushes(hand, fk.Period.quarter("2026Q2")))
    assert [round(b.get_height(), 4) for b in ax.patches] == [round(2 / 3, 4), 0, 0, 0]
    ax = fkp.cohort_curves_plot(cohort_conversion(hand, "2026-06-15", months=4))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["2026-01", "2026-02", "2026-03", "2026-04"]


def test_waterfall_labels_with_unknown_amounts_do_not_run_into_each_other():
    """Seen on the real HubSpot 2023Q2 render: "47.7M + 7 unknown" beside "1.2M + 2 unknown" overlapped;
    the unknown count now has a line of its own, so no two bar labels share any space."""
    from matplotlib.transforms import Bbox
    moves = pd.DataFrame({"movement": list(MOVEMENTS),
                          "deals": [12, 3, 2, 9, 8, 5, 7, 11],
                          "change": [47.7e6, 1.2e6, 215.5e6, 3.3e6, -2.1e6, -30.4e6, -12.8e6, -9.9e6],
                          "amount_unknown": [7, 2, 5, 1, 3, 2, 4, 6]})
    ax = fk.plot.waterfall_plot(moves, start_amount=120.0e6, end_amount=332.5e6, start_unknown=9,
                                end_unknown=20, currency="GBP")
    fig = ax.figure
    fig.canvas.draw()
    boxes = [t.get_window_extent(fig.canvas.get_renderer()) for t in ax.texts]
    assert len(boxes) == 10 and "\n+ 7 unknown" in ax.texts[1].get_text()
    for i in range(len(boxes) - 1):
        assert not Bbox.intersection(boxes[i], boxes[i + 1]), (ax.texts[i].get_text(), ax.texts[i + 1].get_text())
    plt.close(fig)
