"""The index page of ``funnelkit report --all-quarters``: each quarter's headline numbers side by
side (won amount, win rate, open pipeline) with a small trend chart, unknown amounts said so; and
the report's navigation (contents, rendered-on line, named CSV downloads)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from bs4 import BeautifulSoup

import funnelkit as fk
from funnelkit import report
from funnelkit.report import RenderFailure, RenderOutcome, add_navigation, quarter_headlines

from test_views import write_tiny


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return fk.load(write_tiny(tmp_path_factory.mktemp("tiny_index")))


def test_quarter_headlines_hand_computed(tiny):
    h = quarter_headlines(tiny, ["2026Q1", "2026Q2"]).set_index("quarter")
    q2 = h.loc["2026Q2"]
    # won in Q2: D1 (1000) and D4 (3000); lost: D2; open at the end: D3 (700) and D5 (amount unknown)
    assert (q2.won_amount, q2.won_deals, q2.won_unknown) == (4000.0, 2, 0)
    assert q2.win_rate == pytest.approx(2 / 3)
    assert (q2.open_deals, q2.open_amount, q2.open_unknown) == (2, 700.0, 1)
    q1 = h.loc["2026Q1"]
    assert q1.won_deals == 0 and q1.open_deals == 0 and pd.isna(q1.win_rate)
    assert q1.won_amount == 0.0 and q1.open_amount == 0.0          # nothing won is 0, not unknown


def test_index_shows_quarters_side_by_side_with_a_trend(tiny, tmp_path):
    out = RenderOutcome(rendered=[("2026Q1", tmp_path / "2026Q1.html"), ("2026Q2", tmp_path / "2026Q2.html")],
                   failed=[RenderFailure("2026Q3", "boom <b>")])
    page = report.write_index(tmp_path, tiny, out, None, ("2026-04-01", "2026-06-01")).read_text()
    soup = BeautifulSoup(page, "html.parser")
    heads = [th.get_text(" ", strip=True) for th in soup.select("thead th")]
    assert heads[1].startswith("2026Q1") and heads[2].startswith("2026Q2")
    assert [a["href"] for a in soup.select("thead a")] == ["2026Q1.html", "2026Q2.html"]
    rows = {tr.th.get_text(" ", strip=True).split(" ")[0]: [td.get_text(" ", strip=True) for td in tr.find_all("td")]
            for tr in soup.select("tbody tr")}
    assert rows["Won"] == ["0 deals", "4.0k EUR 2 deals"]
    assert rows["Win"] == ["- no deal closed", "66.7%"]
    assert rows["Open"] == ["0 deals", "700 EUR 2 deals, 1 of unknown amount (50%)"]
    img = soup.select_one("img.trend")
    assert img["src"].startswith("data:image/png;base64,") and img["alt"].startswith("Chart: Quarter by quarter")
    assert "data from 2026-04-01 to 2026-06-01" in soup.select_one(".meta").get_text()
    assert "boom &lt;b&gt;" in page and "boom <b>" not in page


def test_index_says_unknown_when_no_amount_is_known(tmp_path):
    root = write_tiny(tmp_path / "d")
    (root / "pipeline.yml").write_text((root / "pipeline.yml").read_text() + "allow_missing_amounts: true\n")
    deals = (root / "deals.csv").read_text().replace(",1000,", ",,").replace(",3000,", ",,")
    (root / "deals.csv").write_text(deals)
    ds = fk.load(root)
    out = RenderOutcome(rendered=[("2026Q2", tmp_path / "2026Q2.html")])
    page = report.write_index(tmp_path, ds, out, None).read_text()
    won = BeautifulSoup(page, "html.parser").select("tbody tr")[0].td.get_text(" ", strip=True)
    assert won == "unknown 2 deals, no amount known"


def test_navigation_links_every_section_and_names_downloads():
    page = ('<body><div class="jp-Cell"><h1>T</h1></div>'
            '<div class="jp-Cell"><h2 id="Headline-numbers">Headline numbers<a class="anchor-link" href="#x"></a></h2>'
            '<a download="table.csv" href="data:,">x</a></div>'
            '<div class="jp-Cell"><h2 id="Per-rep">Per-rep &amp; more</h2><a download="table.csv" href="data:,">'
            '</a><a download="table.csv" href="data:,"></a></div></body>')
    out = add_navigation(page, label="2018Q1", data_span=("2017-06-14", "2018-11-14"), rendered_on="2026-11-30")
    soup = BeautifulSoup(out, "html.parser")
    toc = [(a["href"], a.get_text()) for a in soup.select("nav.fk-toc a")]
    assert toc == [("#Headline-numbers", "Headline numbers"), ("#Per-rep", "Per-rep & more")]
    assert out.index("fk-toc") < out.index('id="Headline-numbers"') and out.index("<h1>") < out.index("fk-toc")
    assert soup.select_one(".fk-meta").get_text() == (
        "Rendered on 2026-11-30 · data from 2017-06-14 to 2018-11-14 (first deal created to last event)")
    assert [a["download"] for a in soup.select("a[download]")] == [
        "2018Q1-Headline-numbers.csv", "2018Q1-Per-rep.csv", "2018Q1-Per-rep-2.csv"]


def test_template_gives_charts_their_alt_text():
    import nbformat

    from funnelkit.report import export_html
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="},
                                           metadata={"image/png": {"alt": 'Chart: Funnel "A" <b>. Most win.'}})]
    nb.cells.append(cell)
    page = export_html(nb)
    img = BeautifulSoup(page, "html.parser").select_one("img")
    assert img["alt"] == 'Chart: Funnel "A" <b>. Most win.' and "<b>. Most" not in page
    assert "@media print" in page and "break-inside: avoid" in page


def test_show_chart_puts_title_and_takeaway_in_the_alt_text():
    from unittest import mock

    from funnelkit import notebook as fkn
    from funnelkit import plot as fkp
    ax = fkp.funnel_plot(pd.DataFrame({"stage": ["Lead"], "reached": [3], "conversion": [0.5]}))
    with mock.patch("IPython.display.display") as shown:
        fkn.show_chart(ax, "Half go on.")
    image = shown.call_args_list[0].args[0]
    assert image.metadata == {"alt": "Chart: Funnel: deals reaching each stage. Half go on."}


ROOT = Path(__file__).resolve().parents[1]
