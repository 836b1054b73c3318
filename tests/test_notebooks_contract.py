"""The notebooks as stored in git: parameters, section order, no outputs; and data-path resolution."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from funnelkit import notebook as fkn
from funnelkit.errors import NoDataWarning, TooLittleDataWarning

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "notebooks" / "quarterly_report.ipynb"
EXPLORE = ROOT / "notebooks" / "explore.ipynb"

SECTIONS = ["## Headline numbers", "## Funnel", "## Deals per stage", "## Time in stage", "## Days to close",
            "## Deal size", "## Amount and win rate by source", "## Amount, count and mean size by product",
            "## Per-rep table", "## Win forecast"]


def test_report_parameters_cell():
    papermill = pytest.importorskip("papermill")
    params = papermill.inspect_notebook(str(REPORT))
    got = {k: v["default"] for k, v in params.items()}
    assert got == {"data_path": '"data/sample"', "quarter": '"2026Q3"', "start": '""', "end": '""',
                   "as_of": '""', "target": "None", "stuck_quantile": "0.9", "currency": '""',
                   "title": '""', "lenient": "False", "locale": '""', "lang": '""'}
    nb = nbformat.read(REPORT, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1


def test_report_sections_in_reading_order():
    nb = nbformat.read(REPORT, as_version=4)
    heads = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
             if line.startswith("## ")]
    positions = [next(i for i, h in enumerate(heads) if h.startswith(s)) for s in SECTIONS]
    assert positions == sorted(positions)


@pytest.mark.parametrize("path", [REPORT, EXPLORE], ids=lambda p: p.name)
def test_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for c in nb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None
    assert "widgets" not in nb.metadata


def test_explore_widget_cells_ignore_output():
    nb = nbformat.read(EXPLORE, as_version=4)
    for c in nb.cells:
        if c.cell_type == "code" and "explore(" in c.source:
            assert "nbval-ignore-output" in c.metadata.get("tags", [])


def test_data_path_resolves_from_the_notebooks_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT / "notebooks")
    assert fkn.resolve_data_path("data/sample") == (ROOT / "data" / "sample").resolve()
    monkeypatch.chdir(tmp_path)
    assert fkn.resolve_data_path("data/sample") == (ROOT / "data" / "sample").resolve()
    assert fkn.resolve_data_path(tmp_path) == tmp_path
    (tmp_path / "mine").mkdir()
    assert fkn.resolve_data_path("mine") == (tmp_path / "mine").resolve()


def test_report_period_from_parameters():
    p = fkn.report_period("2026Q3")
    assert (str(p.start.date()), str(p.end.date()), p.label) == ("2026-07-01", "2026-09-30", "2026Q3")
    p = fkn.report_period("2026Q3", start="2026-01-01", end="2026-01-31", as_of="2026-02-15")
    assert str(p.as_of) == "2026-02-15 00:00:00" and str(p.end.date()) == "2026-01-31"
    with pytest.raises(ValueError):
        fkn.report_period("")


def _code(path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def test_report_hides_no_warnings_and_computes_nothing_itself():
    code = _code(REPORT)
    assert "filterwarnings" not in code and "simplefilter" not in code   # warnings become notes
    assert "fkn.warnings_as_notes()" in code
    assert ".sum(" not in code and ".mean(" not in code                  # no metric logic in the notebook
    assert "days_cols=" not in code and "money_cols=" not in code         # one table helper formats everything


def test_every_report_table_goes_through_a_display_helper():
    import re
    code = _code(REPORT)
    calls = re.findall(r"fkn\.show_table\(([\w.]+)\(", code)
    assert calls and set(calls) <= {"fkn.format_table", "tk.headline_table", "fkn.target_plan_table",
                                    "fkn.backtest_table"}, calls


def test_each_chart_appears_once():
    code = _code(REPORT)
    # amount by source / product: only the sliced view (its default is All deals), no static copy
    assert "fkp.amount_by_plot(" not in code and "fkp.product_mix_plot(" not in code
    assert code.count("section=sections.by_source") == 1 and code.count("section=sections.by_product") == 1
    assert code.count("sections.by_source") == 1 and code.count("sections.by_product") == 1
    # days to close: one section, whose two charts each have their takeaway once
    assert code.count("sections.days_to_close(") == 1
    wiring = (ROOT / "funnelkit" / "sections.py").read_text(encoding="utf-8")
    assert wiring.count("tk.days_to_close_takeaway(") == 1 and wiring.count("tk.survival_takeaway(") == 1


def test_as_of_reads_as_end_of_period():
    assert fkn.as_of_text(fkn.report_period("2026Q2")) == "2026-06-30 24:00 (end of period)"
    assert fkn.as_of_text(fkn.report_period("2026Q2", as_of="2026-07-01 12:00")) == "2026-07-01 12:00"


def test_target_plan_table_shows_each_count_once_rounded_up():
    plan = {"target": 622431.0, "currency": "USD", "size_measure": "mean", "deal_size": 6817.43,
            "win_rate": 0.18993, "deals_needed": 91.3, "deals_to_work": 480.7,
            "deals_needed_whole": 92, "deals_to_work_whole": 481}
    t = fkn.target_plan_table(plan, "USD")
    assert t["Value"].tolist() == ["622,431", "6,817", "19.0%", "92", "481"]
    assert t["Plan"].iloc[3].startswith("Deals to win") and "rounded up" in t["Plan"].iloc[3]
    assert not t["Value"].str.contains(r"\.\d", regex=True).iloc[[0, 1, 3, 4]].any()  # no 91.3 next to 92
    # without the *_whole keys the counts are rounded up here
    t = fkn.target_plan_table({k: v for k, v in plan.items() if not k.endswith("_whole")}, "USD")
    assert t["Value"].tolist()[3:] == ["92", "481"]


def _tiny_data(root, sources):
    from test_views import write_tiny
    root = write_tiny(root)
    lines = (root / "deals.csv").read_text().splitlines()
    rows = [line.split(",") for line in lines[1:]]
    (root / "deals.csv").write_text(lines[0] + "\n" + "\n".join(
        ",".join(r[:5] + [sources[i % len(sources)]] + r[6:]) for i, r in enumerate(rows)) + "\n")
    return fk_load(root)


def fk_load(root):
    import funnelkit as fk
    return fk.load(root)


def test_single_value_note(tmp_path):
    ds = _tiny_data(tmp_path / "a", [""])
    assert fkn.single_value_note(ds, "source") == (
        "The data has no source information (every deal's source is \"(not set)\").")
    ds = _tiny_data(tmp_path / "b", ["Web"])
    assert fkn.single_value_note(ds, "source").startswith("Every deal has the same source, Web")
    ds = _tiny_data(tmp_path / "c", ["Web", "Ads"])
    assert fkn.single_value_note(ds, "source") is None


def test_previous_summary_before_the_data(tmp_path):
    ds = _tiny_data(tmp_path / "d", ["Web"])       # first deal 2026-04-01 09:00
    prev = fkn.previous_summary(ds, fkn.report_period("2026Q1"))
    assert prev == {"period": {"start": "2026-01-01", "end": "2026-03-31", "label": "2026Q1"}}
    from funnelkit import takeaways as tk
    assert tk.previous_precedes_data(prev, fkn.data_start(ds))
    assert "amount_by_source" in fkn.previous_summary(ds, fkn.report_period("2026Q2"))


def test_funnelkit_warnings_become_notes(monkeypatch):
    import warnings
    shown = []
    monkeypatch.setattr(fkn, "show_note", shown.append)
    others = []
    monkeypatch.setattr(warnings, "showwarning", lambda *a, **k: others.append(str(a[0])))
    fkn.warnings_as_notes()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn_explicit("no deal closed before 2024-10-01", TooLittleDataWarning, "x.py", 1)
        warnings.warn_explicit("no deal closed before 2024-10-01", TooLittleDataWarning, "y.py", 2)
        # told apart by category, not by file: a plain RuntimeWarning from funnelkit's own file
        # keeps Python's handling, funnelkit's class from any file becomes a note
        warnings.warn_explicit("overflow in exp", RuntimeWarning, fkn.__file__, 3)
        warnings.warn_explicit("no deal was created in 2030Q1", NoDataWarning, "z.py", 4)
    assert shown == ["no deal closed before 2024-10-01", "no deal was created in 2030Q1"]   # once each
    assert others == ["overflow in exp"]


def test_without_as_of_a_period_the_data_ends_in_is_seen_at_the_data_s_end(tmp_path, capsys):
    import json

    import funnelkit as fk
    from funnelkit.cli import main
    from funnelkit.metrics.summary import data_span_notes
    from test_views import write_tiny
    tiny = fk.load(write_tiny(tmp_path / "tiny"))      # events from 2026-04-01 09:00 to 2026-06-01 09:00
    q2 = fkn.report_period("2026Q2", ds=tiny)
    assert (str(q2.as_of), str(q2.end.date())) == ("2026-06-02 00:00:00", "2026-06-30")
    assert fkn.data_end_text(tiny, q2) == "data as of 2026-06-01 24:00 (the last day of the data)"
    assert data_span_notes(tiny, q2) == ["the data ends on 2026-06-01, before the end of the period: every number "
                                         "is as the data stood at the end of that day"]
    # a given as_of is kept; periods before and after the data keep theirs; without ds, the plain default
    given = fkn.report_period("2026Q2", as_of="2026-07-01", ds=tiny)
    assert str(given.as_of) == "2026-07-01 00:00:00"
    assert fkn.data_end_text(tiny, given) == "data as of 2026-06-30 24:00 (end of period); the data ends on 2026-06-01"
    assert str(fkn.report_period("2026Q1", ds=tiny).as_of) == "2026-04-01 00:00:00"
    assert str(fkn.report_period("2026Q3", ds=tiny).as_of) == "2026-10-01 00:00:00"
    assert str(fkn.report_period("2026Q2").as_of) == "2026-07-01 00:00:00"
    # D3 (open, in Demo since 04-05) has been there 57.625 days at 06-02 00:00, not 86.625 at 07-01
    from funnelkit.metrics import stage_time
    at = stage_time.stuck_deals(tiny, q2.as_of, quantile=0.0).set_index("deal_id")
    assert at.loc["D3", "days_in_stage"] == pytest.approx(57.625)
    # funnelkit metrics: the same instant without --as-of (additive dataset.data_end), the given one with it
    folder = str(tmp_path / "tiny")
    assert main(["metrics", folder, "--quarter", "2026Q2", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["period"]["as_of"] == "2026-06-02T00:00:00" and out["dataset"]["data_end"] == "2026-06-01T09:00:00"
    assert main(["metrics", folder, "--quarter", "2026Q2", "--as-of", "2026-07-01", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["period"]["as_of"] == "2026-07-01T00:00:00"
