"""The notebooks as stored in git: parameters, section order, no outputs; and data-path resolution."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from funnelkit import notebook as fkn

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
                   "title": '""', "lenient": "False"}
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
