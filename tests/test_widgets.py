"""The live explorer: builds without a browser, and its callbacks redraw for the chosen slice."""

from __future__ import annotations

import builtins
import sys

import pytest

pytest.importorskip("ipywidgets", reason="the explorer needs ipywidgets")

import funnelkit as fk
from funnelkit import widgets
from funnelkit.metrics import breakdown as ab
from funnelkit.metrics import stages as st
from funnelkit.period import Period

from test_views import HOSTILE, write_tiny


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return fk.load(write_tiny(tmp_path_factory.mktemp("tinyw")))


def kinds(out) -> list[str]:
    return ["image/png" if "image/png" in o["data"] else "text/html" for o in out.outputs]


def test_builds_with_controls_and_outputs(tiny):
    ex = widgets.Explorer(tiny)
    assert ex.selection() == {"period": "2026Q2", "source": widgets.ALL, "product": widgets.ALL,
                              "owner": widgets.ALL, "stage": "Lead"}
    assert list(ex.controls["source"].options) == [widgets.ALL, HOSTILE, "Web"]
    assert list(ex.controls["stage"].options) == ["Lead", "Demo", "Proposal"]
    assert kinds(ex.outputs["funnel"]) == ["image/png", "text/html"]
    assert kinds(ex.outputs["stage"]).count("image/png") == 2
    assert ex.last["funnel"]["reached"].tolist() == st.funnel(tiny, Period.quarter("2026Q2"))["reached"].tolist()


def test_changing_a_control_redraws_that_slice(tiny):
    ex = widgets.Explorer(tiny, "2026Q2")
    before = ex.outputs["funnel"].outputs
    ex.controls["source"].value = "Web"          # fires the observe callback
    assert ex.outputs["funnel"].outputs != before
    assert set(ex.sliced().deals["source"].astype(str)) == {"Web"}
    assert ex.last["funnel"]["reached"].tolist() == [3, 2, 1]   # D3 (Demo), D4 (skips to Proposal), D5
    # the tiny data ends on 2026-06-01 (D4 won): the quarter is seen at the end of that day, and said
    assert ex.status.value == ("2026Q2 (source = Web): 3 deals created in the period; 3 in this slice overall; "
                               "data as of 2026-06-01 24:00 (the last day of the data)")
    assert str(ex.period.as_of) == "2026-06-02 00:00:00"
    expected = ab.amount_by(tiny.filter(source="Web"), Period.quarter("2026Q2"), by="product")
    assert ex.last["by_product"]["won_amount"].tolist() == expected["won_amount"].tolist()


def test_update_called_directly_and_stage_control(tiny):
    ex = widgets.Explorer(tiny)
    ex.controls["stage"].unobserve_all()
    ex.controls["stage"].value = "Demo"
    ex.update()
    assert set(ex.last["visits"]["stage"].astype(str)) <= {"Demo"}
    assert kinds(ex.outputs["stage"])[0] == "image/png"
    assert any("Stuck deals in Demo" in o["data"].get("text/html", "") for o in ex.outputs["stage"].outputs)
    ex.controls["owner"].value = "Bo"
    assert set(ex.sliced().deals["owner"].astype(str)) == {"Bo"}


def test_hostile_names_are_escaped_in_widget_html(tiny):
    ex = widgets.Explorer(tiny)
    ex.controls["source"].value = HOSTILE
    assert HOSTILE not in ex.status.value and "&lt;script&gt;" in ex.status.value
    for out in ex.outputs.values():
        for o in out.outputs:
            assert HOSTILE not in o["data"].get("text/html", "")


def test_a_failing_update_shows_an_error_instead_of_raising(tiny, monkeypatch):
    ex = widgets.Explorer(tiny)
    monkeypatch.setattr(ex, "update", lambda: (_ for _ in ()).throw(ValueError("<boom>")))
    ex._on_change()
    assert "Could not redraw" in ex.status.value and "&lt;boom&gt;" in ex.status.value


def test_missing_ipywidgets_gives_a_helpful_error(monkeypatch):
    real_import = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "ipywidgets":
            raise ImportError("No module named 'ipywidgets'")
        return real_import(name, *args, **kwargs)
    monkeypatch.delitem(sys.modules, "ipywidgets", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match="pip install ipywidgets"):
        widgets.require_ipywidgets()


def test_explorer_tables_have_readable_headers_and_no_row_numbers(tiny):
    ex = widgets.Explorer(tiny)
    html_out = " ".join(o["data"]["text/html"] for o in ex.outputs["tables"].outputs if "text/html" in o["data"])
    assert "Won amount (EUR)" in html_out and "Win rate" in html_out
    assert "won_amount" not in html_out and "mean_size" not in html_out
    assert "<th></th>" not in html_out.replace(" ", "")   # no index column


def test_status_line_counts_the_period_cohort_and_the_slice(sample_ds):
    """The status line must not present the slice's all-time size as the period's deal count."""
    ex = widgets.Explorer(sample_ds, "2026Q3")
    q3 = Period.quarter("2026Q3")
    n = st.cohort_outcomes(sample_ds, q3)["deals"]
    assert 0 < n < 3000
    assert ex.status.value == f"2026Q3 (all deals): {n:,} deals created in the period; 3,000 in the data set"
    ex.controls["source"].value = "Referrals"
    ref = sample_ds.filter(source="Referrals")
    assert ex.status.value == (f"2026Q3 (source = Referrals): {st.cohort_outcomes(ref, q3)['deals']:,} deals "
                               f"created in the period; {len(ref.deals):,} in this slice overall")


def test_controls_wrap_instead_of_overflowing(tiny):
    ex = widgets.Explorer(tiny)
    row = ex.widget.children[0]
    assert list(row.children) == [*ex.controls.values(), ex.custom_period]
    assert row.layout.flex_flow == "row wrap"


# ------------------------------------------------------------ any period, more views, CSV export

def test_period_from_text_reads_months_years_and_date_ranges():
    may = widgets.period_from_text("2026-05")
    assert (str(may.start.date()), str(may.end.date()), may.label) == ("2026-05-01", "2026-05-31", "2026-05")
    year = widgets.period_from_text(" 2026 ")
    assert (str(year.start.date()), str(year.end.date())) == ("2026-01-01", "2026-12-31")
    r = widgets.period_from_text("2026-04-01..2026-05-15")
    assert (str(r.start.date()), str(r.end.date())) == ("2026-04-01", "2026-05-15")
    assert widgets.period_from_text("2026-04-01 to 2026-05-15") == r
    assert widgets.period_from_text("2026q2") == Period.quarter("2026Q2")
    for bad in ("last spring", "2026-13", "2026Q5", ""):
        with pytest.raises(ValueError, match="2026-05") as err:
            widgets.period_from_text(bad)
        assert repr(" ".join(bad.split())) in str(err.value)
    with pytest.raises(ValueError, match="before its start"):
        widgets.period_from_text("2026-05-15..2026-04-01")


def test_an_invalid_period_is_refused_clearly(tiny):
    with pytest.raises(ValueError, match="period 'spring': not understood"):
        widgets.Explorer(tiny, "spring")
    ex = widgets.Explorer(tiny, "2026Q2")
    before = ex.last["funnel"]
    ex.custom_period.value = "2026-14"
    assert "period &#x27;2026-14&#x27;: not understood" in ex.status.value
    assert "2026-04-01..2026-05-15" in ex.status.value            # says what would work
    # nothing redrawn (the quarter is seen at the end of the tiny data, 2026-06-01 24:00)
    assert ex.period == Period.quarter("2026Q2", as_of="2026-06-02") and ex.last["funnel"] is before


def test_any_period_typed_in_redraws_for_that_period(tiny):
    ex = widgets.Explorer(tiny, "2026Q2")
    ex.custom_period.value = "2026-05"
    may = widgets.period_from_text("2026-05")
    assert ex.period == may and ex.status.value.startswith("2026-05 (all deals): 1 deals created")
    assert ex.last["funnel"]["reached"].tolist() == st.funnel(tiny, may)["reached"].tolist()
    # emptying the box goes back to the quarter of the dropdown
    ex.custom_period.value = ""
    assert ex.period.with_as_of(None) == Period.quarter("2026Q2") and ex.status.value.startswith("2026Q2 (all deals)")
    # choosing another quarter in the dropdown clears a typed period
    ex.custom_period.value = "2026"
    ex.controls["period"].options = ["2026Q1", "2026Q2"]   # (the tiny data has one quarter only)
    ex.controls["period"].value = "2026Q1"
    assert ex.custom_period.value == "" and ex.period == Period.quarter("2026Q1")
    ex2 = widgets.Explorer(tiny, "2026-04-01..2026-04-30")
    assert ex2.custom_period.value == "2026-04-01 to 2026-04-30"
    assert ex2.status.value.startswith("2026-04-01 to 2026-04-30 (all deals): 4 deals created")


def test_explorer_has_closing_size_rep_and_forecast_views(tiny):
    ex = widgets.Explorer(tiny, "2026Q2")
    for name in ("closing", "size", "reps", "forecast"):
        assert "image/png" in kinds(ex.outputs[name]), name
    # D1 won after 30 days, D4 after 58: won deals closed in Q2 are D1 and D4
    won = ex.last["days_to_close"].set_index("status").loc["won"]
    assert won["deals"] == 2 and won["median_days"] == pytest.approx((30 + 58) / 2)
    assert ex.last["by_owner"].set_index("owner")["won_amount"].to_dict() == {"Bo": 3000.0, "Ann": 1000.0}
    assert sorted(ex.last["forecast"]["deal_id"]) == ["D3", "D5"]     # open at the end of Q2


def test_explorer_opens_on_a_stage_with_data(tmp_path):
    from test_views import write_tiny
    root = write_tiny(tmp_path / "d")
    # a first stage nobody visits: the explorer must not open on it
    (root / "pipeline.yml").write_text("name: Tiny\ncurrency: EUR\nstages: [Prospect, Lead, Demo, Proposal]\n")
    ex = widgets.Explorer(fk.load(root), "2026Q2")
    assert ex.controls["stage"].value == "Lead"
    assert len(ex.last["visits"]) > 0


def test_explorer_exports_the_current_slice_as_csv(tiny, tmp_path):
    import base64
    import io
    import re as _re

    import pandas as pd
    ex = widgets.Explorer(tiny, "2026Q2")
    ex.controls["source"].value = "Web"
    paths = ex.to_csv(tmp_path)
    names = sorted(p.name for p in paths)
    assert "2026Q2_source-Web_by_product.csv" in names and "2026Q2_source-Web_days_to_close.csv" in names
    got = pd.read_csv(tmp_path / "2026Q2_source-Web_by_product.csv")
    assert got["won_amount"].tolist() == ex.last["by_product"]["won_amount"].tolist()
    links = dict(_re.findall(r'download="([^"]+)" href="data:text/csv;charset=utf-8;base64,([^"]+)"',
                             ex.downloads.value))
    assert set(links) == set(names)
    text = base64.b64decode(links["2026Q2_source-Web_by_source.csv"]).decode("utf-8-sig")
    assert pd.read_csv(io.StringIO(text))["source"].tolist() == ["Web"]


def test_the_explorer_slices_the_landing_forecast_by_owner_and_source(tiny):
    from funnelkit.metrics import landing_forecast
    ex = widgets.Explorer(tiny, "2026Q2")
    p = Period.quarter("2026Q2", as_of="2026-06-02")     # the tiny data ends on 2026-06-01: seen then, as the report
    assert ex.period == p
    team = landing_forecast(tiny, p, p.as_of)
    by_owner = team.by("owner")
    assert ex.last["landing_by_owner"]["expected_amount"].tolist() == by_owner["expected_amount"].tolist()
    owner = by_owner["owner"].iloc[0]
    ex.controls["owner"].value = owner
    got = ex.last["landing_by_owner"]
    assert got["owner"].tolist() == [owner]
    assert got["expected_amount"].tolist() == by_owner.loc[by_owner["owner"] == owner, "expected_amount"].tolist()
    html_out = "".join(o["data"].get("text/html", "") for o in ex.outputs["forecast"].outputs)
    assert "lands (all deals)" in html_out
