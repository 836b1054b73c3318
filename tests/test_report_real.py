"""The Olist import (30+ products, 11 sources) rendered end to end, as a manager reads it.

Charts drawn as the report draws them have no overprinted labels (matplotlib text bounding boxes);
every slice selector offers every value; every table's CSV download holds exactly the table;
every chart has alt text; the contents link to sections that exist; and in headless Chromium
(Debian's ``chromium``) no table runs off the page, on a wide screen, a narrow one, and printed on A4
and Letter. Skipped when ../shared/data/real is absent.
"""

from __future__ import annotations

import base64
import io

import pandas as pd
import pytest
from bs4 import BeautifulSoup
from matplotlib.figure import Figure
from browser_helpers import launched_chromium
from label_overlap import overlapping_labels

from funnelkit import plot as fkp
from funnelkit import views
from funnelkit.importers import import_export
from funnelkit.loading import load
from funnelkit.metrics import closing as dtc
from funnelkit.metrics import forecast as fc
from funnelkit.metrics.breakdown import amount_by
from funnelkit.period import Period
from funnelkit.report import quarter_headlines, render_report

from test_report_render import TIMEOUT, report_notebook

pytestmark = [pytest.mark.slow, pytest.mark.real]

Q = Period.quarter("2018Q1")


@pytest.fixture(scope="module")
def olist_path(real_path, tmp_path_factory):
    folder = real_path / "olist_funnel"
    srcs = [folder / "olist_marketing_qualified_leads_dataset.csv", folder / "olist_closed_deals_dataset.csv"]
    out = tmp_path_factory.mktemp("olist_report") / "olist"
    import_export("table", srcs, out, column_map="olist_funnel")
    return out


@pytest.fixture(scope="module")
def olist(olist_path):
    return load(olist_path)


@pytest.fixture(scope="module")
def page_html(olist_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("olist_html")
    path = render_report(olist_path, Q, out, timeout=TIMEOUT, notebook=report_notebook())
    return path


def test_olist_has_many_categories(olist):
    assert len(views.slice_values(olist, "product")) >= 30
    assert len(views.slice_values(olist, "source")) == 11


@pytest.mark.parametrize("name", ["amount by source", "amount by product", "amount by owner", "product mix",
                                  "days to close by product", "expected won by source", "funnel"])
def test_olist_charts_have_no_overprinted_labels(olist, name):
    charts = {
        "amount by source": lambda: views.amount_by_chart("source")(olist, Q),
        "amount by product": lambda: views.amount_by_chart("product")(olist, Q),
        "amount by owner": lambda: fkp.amount_by_plot(amount_by(olist, Q, by="owner"), by="owner", currency="BRL"),
        "product mix": lambda: views.product_mix_chart(olist, Q),
        "days to close by product": lambda: fkp.days_to_close_plot(dtc.days_to_close(olist, Q, by="product"),
                                                                   by="product"),
        "expected won by source": lambda: fkp.expected_won_plot(
            fc.expected_won_by(fc.win_forecast(olist, Q.as_of), "source"), by="source", currency="BRL"),
        "funnel": lambda: views.funnel_chart(olist, Q),
    }
    out = charts[name]()
    fig = out if isinstance(out, Figure) else out.figure
    assert overlapping_labels(fig) == [], name


def test_olist_index_numbers_match_the_raw_export(real_path, olist):
    raw = pd.read_csv(real_path / "olist_funnel" / "olist_closed_deals_dataset.csv")
    won = pd.to_datetime(raw["won_date"])
    in_q = ((won >= "2018-01-01") & (won < "2018-04-01")).sum()
    h = quarter_headlines(olist, ["2018Q1"]).iloc[0]
    assert h["won_deals"] == in_q == 333


def _soup(path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def test_every_selector_offers_every_value(page_html, olist):
    soup = _soup(page_html)
    selects = soup.select(".fk-views select")
    assert len(selects) >= 3
    for sel in selects:
        offered: dict[str, list[str]] = {}
        for group in sel.select("optgroup"):
            offered[group["label"]] = [o.get_text().split(": ", 1)[1] for o in group.select("option")]
        assert offered, sel
        for column, values in offered.items():
            assert sorted(values) == sorted(views.slice_values(olist, column)), column


def _seen(text: str) -> str:
    """A cell as a reader sees it: HTML collapses runs of whitespace (e.g. an indented label)."""
    return " ".join(str(text).split())


def _table_rows(table) -> tuple[list[str], list[list[str]]]:
    head = [_seen(th.get_text()) for th in table.select("thead th")]
    body = [[_seen(td.get_text()) for td in tr.find_all(["td", "th"])] for tr in table.select("tbody tr")]
    return head, body


def test_every_table_downloads_as_csv_equal_to_the_table(page_html):
    blocks = _soup(page_html).select("div.fk-table")
    assert len(blocks) >= 8
    long_ones = 0
    for block in blocks:
        tables = block.select("table")
        head, rows = _table_rows(tables[0])
        for more in tables[1:]:                      # the collapsed rest of a long table
            assert _table_rows(more)[0] == head
            rows += _table_rows(more)[1]
        long_ones += len(tables) > 1
        link = block.select_one("a[download]")
        assert link["download"].startswith("2018Q1-") and link["download"].endswith(".csv")
        prefix = "data:text/csv;charset=utf-8;base64,"
        assert link["href"].startswith(prefix)
        text = base64.b64decode(link["href"][len(prefix):]).decode("utf-8-sig")
        csv = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        assert [_seen(c) for c in csv.columns] == head
        assert [[_seen(v) for v in row] for row in csv.values.tolist()] == rows
        assert int(block["data-rows"]) == len(rows)
    assert long_ones >= 1        # Olist's per-rep table is longer than 30 rows: collapsed, not cut


def test_contents_alt_text_and_rendered_on(page_html):
    soup = _soup(page_html)
    links = [a["href"] for a in soup.select("nav.fk-toc a")]
    assert len(links) >= 8
    for href in links:
        assert soup.find(id=href[1:]) is not None, href
    meta = soup.select_one(".fk-meta").get_text()
    assert meta.startswith("Rendered on ") and "data from 2017-06-14 to" in meta
    imgs = soup.select("img")
    assert len(imgs) > 20
    for img in imgs:
        assert img.get("alt", "").startswith("Chart: "), img.get("alt")
    titled = [img["alt"] for img in imgs if "Takeaway" not in img["alt"]]
    assert any("Days to close by product" in a and "Won deals closed" in a for a in titled)


# ----------------------------------------------------------------------------------- browser

WIDTH_CHECK = """() => {
  const page = document.documentElement.clientWidth;
  const bad = [];
  for (const t of document.querySelectorAll('table')) {
    const box = t.closest('.fk-table-scroll') || t;
    const r = box.getBoundingClientRect();
    if (r.width > 0 && (r.right > page + 1 || r.left < -1)) bad.push([t.innerText.slice(0, 60), r.left, r.right, page]);
  }
  return {bad, scroll: document.documentElement.scrollWidth, page};
}"""


@pytest.fixture(scope="module")
def browser():
    with launched_chromium() as b:
        yield b


@pytest.mark.browser
@pytest.mark.parametrize("width", [1200, 760])
def test_tables_stay_within_the_page_width(browser, page_html, width):
    pg = browser.new_page(viewport={"width": width, "height": 900})
    try:
        pg.goto(page_html.resolve().as_uri(), wait_until="load", timeout=60_000)
        got = pg.evaluate(WIDTH_CHECK)
        assert got["bad"] == [] and got["scroll"] <= got["page"], got
        # the collapsed rest of a long table opens, and still fits
        pg.locator("details.fk-more summary").first.click()
        got = pg.evaluate(WIDTH_CHECK)
        assert got["bad"] == [] and got["scroll"] <= got["page"], got
    finally:
        pg.close()


@pytest.mark.browser
def test_prints_on_a4_and_letter_within_the_page(browser, page_html, tmp_path):
    pg = browser.new_page(viewport={"width": 794, "height": 1123})     # A4 at 96 dpi
    try:
        pg.goto(page_html.resolve().as_uri(), wait_until="load", timeout=60_000)
        pg.emulate_media(media="print")
        got = pg.evaluate(WIDTH_CHECK)
        assert got["scroll"] <= got["page"], got
        hidden = pg.evaluate("() => getComputedStyle(document.querySelector('.fk-views label')).display")
        assert hidden == "none"                                            # no dead selector on paper
        for fmt in ("A4", "Letter"):
            pdf = pg.pdf(format=fmt, print_background=True)
            assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") > 5
            (tmp_path / f"report-{fmt}.pdf").write_bytes(pdf)
    finally:
        pg.close()


@pytest.mark.browser
def test_csv_download_in_the_browser_is_the_table(browser, page_html, tmp_path):
    pg = browser.new_page(accept_downloads=True)
    try:
        pg.goto(page_html.resolve().as_uri(), wait_until="load", timeout=60_000)
        link = pg.locator("div.fk-table a[download]").last
        with pg.expect_download(timeout=30_000) as info:
            link.click()
        target = tmp_path / info.value.suggested_filename
        info.value.save_as(target)
        csv = pd.read_csv(target, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        first = pg.locator("div.fk-table").last.locator("table").first
        assert list(csv.columns) == [c.strip() for c in first.locator("thead th").all_inner_texts()]
        assert len(csv) >= 1
    finally:
        pg.close()
