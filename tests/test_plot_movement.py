"""The charts of the pipeline-movement sections: the waterfall walks from start to end, the pushes chart
and the cohort curves draw what the metrics give (hand data of movement_hand_data.py)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from movement_hand_data import END, START, write_movement

matplotlib.use("Agg")

import funnelkit as fk  # noqa: E402
import funnelkit.plot as fkp  # noqa: E402
from funnelkit.metrics import cohort_conversion, pipeline_waterfall, win_rate_by_pushes  # noqa: E402


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
