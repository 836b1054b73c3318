"""The oracle agrees on data nobody here wrote: funnelkit's metrics against the independent DuckDB
SQL (benchmarks/duckdb_metrics.py, via benchmarks/crosscheck.py) on every real import and on the
sample, for every quarter each touches. Skipped when ../shared/data/real is absent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from funnelkit.importers import import_export

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def crosscheck():
    sys.path.insert(0, str(BENCH))
    try:
        import crosscheck
        yield crosscheck
    finally:
        sys.path.remove(str(BENCH))


def _import(real: Path, name: str, out: Path) -> Path:
    if name == "maven":
        import_export("table", [real / "maven_crm" / "sales_pipeline.csv"], out, column_map="maven_crm")
    elif name == "olist":
        folder = real / "olist_funnel"
        import_export("table", [folder / "olist_marketing_qualified_leads_dataset.csv",
                                folder / "olist_closed_deals_dataset.csv"], out, column_map="olist_funnel")
    else:
        import_export("hubspot", sorted((real / "hubspot_markstringer").glob("*.csv")), out, currency="GBP")
    return out


@pytest.mark.real
@pytest.mark.parametrize("name, fractions", [("maven", []), ("olist", []), ("hubspot", [0.5])])
def test_every_quarter_of_a_real_import_agrees_with_the_duckdb_sql(real_path, tmp_path, crosscheck, capsys,
                                                                   name, fractions):
    folder = _import(real_path, name, tmp_path / name)
    differing = crosscheck.check_folder(folder, None, fractions, "13:45", verbose=True)
    printed = capsys.readouterr().out
    assert printed.count(": same") >= 5, printed          # every quarter was compared
    assert differing == 0, printed


def test_the_sample_agrees_inside_its_quarters_too(crosscheck, capsys):
    differing = crosscheck.check_folder(SAMPLE, ["2025Q3", "2026Q2"], [0.3, 0.77], "13:45", verbose=True)
    printed = capsys.readouterr().out
    assert printed.count(": same") == 6, printed
    assert differing == 0, printed
