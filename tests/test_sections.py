"""One wiring per report section: ``funnelkit.sections`` computes, draws and words each section once;
the report notebook, the pre-rendered slices and the explorer all call it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

import funnelkit as fk
from funnelkit import sections, takeaways, views
from funnelkit.errors import ArgumentError

from test_views import write_tiny

ROOT = Path(__file__).resolve().parents[1]
Q2 = "2026Q2"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return fk.load(write_tiny(tmp_path_factory.mktemp("tinys")))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_funnel_section_counts_the_cohort_and_slices_it(tiny):
    s = sections.funnel(tiny, Q2)
    # all five deals were created in Q2; Demo: D1, D3 and D4 (which skipped it); Proposal: D1, D4
    assert s.tables["funnel"]["reached"].tolist() == [5, 3, 2]
    assert [type(p).__name__ for p in s.parts] == ["Chart"]
    assert s.charts[0].takeaway == views.funnel_text(tiny, fk.Period.quarter(Q2))
    web = sections.funnel(tiny, Q2, source="Web")          # D3, D4, D5
    assert web.tables["funnel"]["reached"].tolist() == [3, 2, 1]
    assert sections.funnel(tiny, Q2, source=None).tables["funnel"]["reached"].tolist() == [5, 3, 2]


def test_amount_sections_hold_the_hand_computed_amounts(tiny):
    by_product = sections.by_product(tiny, Q2).tables["by_product"].set_index("product")
    assert by_product["won_amount"].to_dict() == {"A": 1000.0, "B": 3000.0}     # D1; D4
    reps = sections.per_rep(tiny, Q2)
    assert reps.tables["by_owner"].set_index("owner")["won_amount"].to_dict() == {"Bo": 3000.0, "Ann": 1000.0}
    # the per-rep section is the table and the coaching takeaway (no chart), as in the report
    assert [type(p).__name__ for p in reps.parts] == ["Table", "Text"]
    by_source = sections.by_source(tiny, Q2, product="B").tables["by_source"]
    assert by_source["won_amount"].sum() == 3000.0 and by_source["lost_deals"].sum() == 1   # D4 won, D2 lost


def test_days_to_close_and_forecast_sections(tiny):
    won = sections.days_to_close(tiny, Q2).tables["days_to_close"].set_index("status").loc["won"]
    assert won["deals"] == 2 and won["median_days"] == pytest.approx((30 + 58) / 2)   # D1 30 days, D4 58
    fc = sections.forecast(tiny, Q2)
    assert sorted(fc.tables["forecast"]["deal_id"]) == ["D3", "D5"]            # open at the end of Q2


def test_time_in_stage_narrowed_to_one_stage(tiny):
    whole = sections.time_in_stage(tiny, Q2)
    assert [type(p).__name__ for p in whole.parts] == ["Chart", "Table", "Chart"]
    demo = sections.time_in_stage(tiny, Q2, stage="Demo")
    assert set(demo.tables["visits"]["stage"].astype(str)) == {"Demo"}
    # D1's Demo visit ended on 2026-04-20 (10 days), D3's is still open: one ended Demo visit
    assert demo.tables["visits"]["days"].tolist() == [pytest.approx(10.0)]
    assert len(demo.charts) == 2


def test_sliced_views_from_a_section_match_the_chart_and_takeaway_pair(tiny):
    q = fk.Period.quarter(Q2)
    old = views.sliced_views(tiny, q, chart=views.funnel_chart, takeaway=views.funnel_text, by=["source"])
    new = views.sliced_views(tiny, q, section=sections.funnel, by=["source"])
    assert new.labels == old.labels == ["All deals", "source: Web", "source: <script>alert(1)</script>"]

    def same(block: str) -> str:
        return re.sub(r"fk-views-\d+-[0-9a-f]{8}", "ID", block)
    assert same(new.html) == same(old.html)          # the same images and takeaways, byte for byte
    assert new.section.tables["funnel"]["reached"].tolist() == [5, 3, 2]   # the all-deals section
    with pytest.raises(ArgumentError, match="not both"):
        views.sliced_views(tiny, q, section=sections.funnel, chart=views.funnel_chart)


def test_the_report_notebook_draws_each_section_through_its_function():
    nb = json.loads((ROOT / "funnelkit" / "notebooks" / "quarterly_report.ipynb").read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    for name in ("funnel", "stage_flow", "snapshots", "time_in_stage", "stuck_deals", "days_to_close",
                 "deal_size", "by_source", "by_product", "per_rep", "forecast", "pipeline_movement",
                 "slipping_deals"):
        assert f"sections.{name}" in code, name
    # no second wiring of those sections in the notebook: their plots and takeaways are not called there
    for wired in ("funnel_plot", "stage_flow_plot", "snapshot_plot", "duration_plot", "win_rate_by_time_plot",
                  "days_to_close_plot", "survival_plot", "deal_size_plot", "amount_by_plot",
                  "product_mix_plot", "expected_won_plot", "funnel_takeaway", "rep_takeaway",
                  "forecast_takeaway", "deal_size_takeaway", "waterfall_plot", "waterfall_takeaway",
                  "stage_movement", "win_rate_by_pushes", "pushes_takeaway", "slipping_deals(ds_c",
                  "lost_reasons"):
        assert wired not in code, wired


def test_the_explorer_shows_the_report_s_sections(tiny):
    pytest.importorskip("ipywidgets", reason="the explorer needs ipywidgets")
    from funnelkit import widgets
    ex = widgets.Explorer(tiny, Q2)
    funnel_html = [o["data"]["text/html"] for o in ex.outputs["funnel"].outputs if "text/html" in o["data"]]
    # the explorer's funnel takeaway is the report's (it used to miss the bottleneck)
    assert funnel_html == [takeaways.as_html(sections.funnel(tiny, Q2).charts[0].takeaway)]
    reps_html = "".join(o["data"].get("text/html", "") for o in ex.outputs["reps"].outputs)
    assert takeaways.as_html(takeaways.rep_takeaway(ex.last["by_owner"], "EUR")) in reps_html


# ------------------------------------------------- where the pipeline went, slipping deals (issue 13)

@pytest.fixture(scope="module")
def moving(tmp_path_factory):
    from movement_hand_data import write_movement
    return fk.load(write_movement(tmp_path_factory.mktemp("moving") / "hand"))


def _check(section, window):
    return section.tables["waterfall_check"].set_index("window").loc[window].to_dict()


def test_pipeline_movement_section_by_hand(moving):
    s = sections.pipeline_movement(moving, Q2)
    # two waterfalls (every open deal; expected to close in Q2), the heading, then the two tables
    assert [type(p).__name__ for p in s.parts] == ["Chart", "Chart", "Heading", "Table", "Table"]
    every, in_q2 = _check(s, "all"), _check(s, "period")       # test_metrics_movement's hand numbers
    assert (every["start_deals"], every["start_amount"], every["end_deals"], every["end_amount"]) == (7, 11300, 6, 7600)
    assert (in_q2["start_deals"], in_q2["start_amount"], in_q2["end_deals"], in_q2["end_amount"]) == (6, 10800, 5, 6900)
    assert every["balanced"] and in_q2["balanced"]
    assert "Check: start + movements = end adds up (5 deals = 5; 6.9k USD = 6.9k USD)" in s.charts[1].takeaway
    moves = s.tables["movements"]
    assert moves["amount"].tolist() == sorted(moves["amount"], reverse=True)      # largest first
    assert "change" not in s.parts[3].frame.columns                                # shown without it


def test_a_slice_of_the_waterfall_still_balances_and_says_so(moving):
    ann = sections.pipeline_movement(moving, Q2, owner="Ann")     # A, C, E, J
    every = _check(ann, "all")
    # at 04-01: A 1000, C 3000, E 4000, J 600; E's amount falls to 3500 at its close (06-05), then lost
    assert (every["start_deals"], every["start_amount"]) == (4, 8600)
    assert (every["start_plus_movements_deals"], every["start_plus_movements_amount"]) == (3, 4600)
    assert (every["end_deals"], every["end_amount"], every["balanced"]) == (3, 4600, True)
    m = ann.tables["waterfall"].query("window == 'period'").set_index("movement")
    assert m.loc[["pushed_out", "pulled_in", "amount_down", "lost"], "deals"].tolist() == [1, 1, 1, 1]  # C out, back in
    assert m["deals"].sum() == 4
    for chart in ann.charts:
        assert "Check: start + movements = end adds up (3 deals = 3; 4.6k USD = 4.6k USD)" in chart.takeaway


def test_slipping_deals_section_by_hand(moving):
    s = sections.slipping_deals(moving, Q2)
    assert [type(p).__name__ for p in s.parts] == ["Chart", "Table", "Table", "Table"]
    assert s.tables["win_rate_by_pushes"][["deals", "won", "lost"]].values.tolist()[0] == [3, 2, 1]   # B, K won; E lost
    assert s.tables["slipping"]["deal_id"].tolist() == ["C", "F", "A", "D", "J"]   # past due or pushed; not G
    ann = sections.slipping_deals(moving, Q2, owner="Ann")
    assert ann.tables["slipping"]["deal_id"].tolist() == ["C", "A", "J"]           # C pushed; A, J past due
    assert ann.tables["expected_to_close"].set_index("owner").loc["Ann", ["deals", "lost", "still_open"]].tolist() \
        == [4, 1, 3]
    assert ann.tables["lost_reasons"].to_dict("records") == [
        {"lost_reason": "Price", "stage": "Proposal", "deals": 1, "amount": 3500.0, "amount_unknown": 0}]


def test_without_expected_close_dates_the_sections_say_why(tiny):
    movement = sections.pipeline_movement(tiny, Q2)
    assert [type(p).__name__ for p in movement.parts] == ["Chart", "Note", "Heading", "Table", "Table"]
    assert list(movement.tables["waterfall_check"]["window"]) == ["all"]
    slipping = sections.slipping_deals(tiny, Q2)
    assert [type(p).__name__ for p in slipping.parts] == ["Note", "Table"]
    assert "pushes and past-due deals cannot be shown" in slipping.parts[0].text


def test_the_explorer_slices_the_waterfall_and_the_slipping_deals(moving):
    pytest.importorskip("ipywidgets", reason="the explorer needs ipywidgets")
    from funnelkit import widgets
    ex = widgets.Explorer(moving, Q2)
    ex.controls["owner"].value = "Ann"

    def shown(name):
        return "".join(o["data"].get("text/html", "") for o in ex.outputs[name].outputs)
    assert "Check: start + movements = end adds up (3 deals = 3; 4.6k USD = 4.6k USD)" in shown("movement")
    assert sum("image/png" in o["data"] for o in ex.outputs["movement"].outputs) == 2
    assert ex.last["waterfall_check"]["balanced"].all() and ex.last["slipping"]["deal_id"].tolist() == ["C", "A", "J"]
    assert "Chose" not in shown("slipping") and "Price" in shown("slipping")
    ex.controls["owner"].value = widgets.ALL
    assert ex.last["waterfall_check"].set_index("window").loc["all", "end_deals"] == 6
