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
    assert ex.status.value == "2026Q2 (source = Web): 3 deals created in the period; 3 in this slice overall"
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
    assert list(row.children) == list(ex.controls.values())
    assert row.layout.flex_flow == "row wrap"
