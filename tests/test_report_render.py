"""End-to-end tests of the report renderer (funnelkit.report): papermill execution, offline HTML,
atomic outputs, failures, timeouts, escaping of data text, all-quarters rendering and the CLI.

The report notebook is ``notebooks/quarterly_report.ipynb`` when it exists, else a small stand-in
with the same parameters cell (tests/fixtures/notebooks/report_fixture.ipynb). Every execution
passes a timeout.
"""

from __future__ import annotations

import json
import logging
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funnelkit.period import Period
from funnelkit.report import (ReportError, escape, export_html, external_loads, render_all_quarters,
                              render_report)

ROOT = Path(__file__).resolve().parents[1]
REAL_NOTEBOOK = ROOT / "notebooks" / "quarterly_report.ipynb"
FIXTURE_NOTEBOOK = ROOT / "tests" / "fixtures" / "notebooks" / "report_fixture.ipynb"
SAMPLE = ROOT / "data" / "sample"
TIMEOUT = 240  # per cell; the machine is shared, so generous, but never unbounded

XSS_SOURCES = ("<script>window.__pwned=1</script>", '<img src=x onerror="window.__pwned=2">',
               "Referrals & partners", "Web")

def report_notebook() -> Path:
    """The real report notebook (the fixture notebook serves only the guard tests)."""
    assert REAL_NOTEBOOK.is_file(), f"{REAL_NOTEBOOK} is missing"
    return REAL_NOTEBOOK


PARAMETERS = '''data_path = "data/sample"
quarter = "2026Q3"
start = ""
end = ""
as_of = ""
target = None
stuck_quantile = 0.9
currency = ""
title = ""
lenient = False'''


def small_notebook(path: Path, *cells: str) -> Path:
    """A notebook with the agreed parameters cell followed by ``cells`` (code)."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells.append(nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}))
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


def make_dataset(folder: Path, n: int = 160, seed: int = 3, sources=XSS_SOURCES,
                 start: str = "2026-01-05", days: int = 70) -> Path:
    """A small valid data set: 4 stages, deals created over ``days`` from ``start``."""
    rng = np.random.default_rng(seed)
    stages = ["Lead", "Qualified", "Proposal", "Negotiation"]
    t0 = pd.Timestamp(start)
    deals, hist = [], []
    for i in range(n):
        created = t0 + pd.Timedelta(minutes=int(rng.integers(0, days * 1440)))
        reached = int(rng.integers(1, len(stages) + 1))
        t = created
        for s in stages[:reached]:
            hist.append((f"D{i:04d}", s, t.isoformat()))
            t = t + pd.Timedelta(hours=int(rng.integers(6, 24 * 12)))
        status = rng.choice(["won", "lost", "open"], p=[0.35, 0.4, 0.25])
        closed = "" if status == "open" else t.isoformat()
        amount = f"{rng.lognormal(8.5, 0.8):.2f}"
        deals.append((f"D{i:04d}", created.isoformat(), status, closed, amount,
                      sources[i % len(sources)], ["Basic", "Pro"][int(rng.integers(0, 2))],
                      ["Ann Lee", "Bo <b>Chen</b>"][i % 2]))
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(deals, columns=["deal_id", "created_at", "status", "closed_at", "amount", "source",
                                 "product", "owner"]).to_csv(folder / "deals.csv", index=False)
    pd.DataFrame(hist, columns=["deal_id", "stage", "entered_at"]).to_csv(folder / "stage_history.csv",
                                                                          index=False)
    (folder / "pipeline.yml").write_text("name: Test pipeline\ncurrency: EUR\nstages:\n" +
                                         "".join(f"- {s}\n" for s in stages))
    return folder


def busiest_quarter(path: Path) -> str:
    import funnelkit as fk
    closed = fk.load(path).deals["closed_at"].dropna()
    q = closed.dt.to_period("Q").value_counts().idxmax()
    return f"{q.year}Q{q.quarter}"


class _Text(HTMLParser):
    """Visible-ish text of a page (script and style contents left out)."""

    def __init__(self):
        super().__init__()
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def page_text(html: str) -> str:
    p = _Text()
    p.feed(html)
    return " ".join(" ".join(p.parts).split())


def tags(html: str) -> list[tuple[str, dict]]:
    found = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))
    P().feed(html)
    return found


# --------------------------------------------------------------------------------------------
# One render of a quarter of the sample data, shared by the content checks.

@pytest.fixture(scope="module")
def sample_data(tmp_path_factory) -> Path:
    if (SAMPLE / "pipeline.yml").is_file():
        return SAMPLE
    from funnelkit.sample import write_sample
    return write_sample(tmp_path_factory.mktemp("sample"), deals=1500, seed=7)


@pytest.fixture(scope="module")
def rendered(sample_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    label = busiest_quarter(sample_data)
    html_path = render_report(sample_data, Period.quarter(label), out, timeout=TIMEOUT,
                              notebook=report_notebook())
    return label, out, html_path, html_path.read_text(encoding="utf-8")


@pytest.mark.slow
def test_writes_html_and_executed_notebook_atomically(rendered):
    label, out, html_path, _ = rendered
    assert html_path == out / f"{label}.html"
    assert sorted(p.name for p in out.iterdir()) == [f"{label}.html", f"{label}.ipynb"]  # no temp files
    nb = nbformat.read(out / f"{label}.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and f'quarter = "{label}"' in injected[0].source
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code" and c.source.strip())


@pytest.mark.slow
def test_html_has_the_story_and_embedded_images(rendered):
    label, _, _, html = rendered
    headings = [page_text(h) for h in re.findall(r"<h[1-3][^>]*>(.*?)</h[1-3]>", html, re.S)]
    assert any(label in h for h in headings), headings
    assert len(headings) >= 3
    images = [a.get("src", "") for t, a in tags(html) if t == "img"]
    assert images and all(src.startswith("data:image/") for src in images)
    assert sum(src.startswith("data:image/png;base64,") for src in images) >= 1


@pytest.mark.slow
def test_html_loads_nothing_from_the_network(rendered):
    html = rendered[3]
    assert external_loads(html) == []
    for tag, attrs in tags(html):
        for attr in ("src", "href", "srcset", "data"):
            value = attrs.get(attr) or ""
            if tag != "a":
                assert not re.match(r"\s*(https?:)?//", value), (tag, attr, value)
    assert "require.min.js" not in html and "mathjax" not in html.lower()
    assert "html-manager" not in html and "mermaid.esm" not in html
    assert "application/vnd.jupyter.widget-state+json" not in html


@pytest.mark.slow
def test_html_is_small_and_code_is_hidden(rendered):
    label, out, html_path, html = rendered
    assert html_path.stat().st_size < 5 * 1024 * 1024
    assert "jp-InputArea-editor" not in re.sub(r"<style.*?</style>", "", html, flags=re.S)
    assert "import funnelkit" not in html and "fk.load(" not in html
    with_code = export_html(nbformat.read(out / f"{label}.ipynb", as_version=4), with_code=True)
    assert "jp-InputArea-editor" in with_code
    assert "funnelkit" in page_text(re.sub(r"<style.*?</style>", "", with_code, flags=re.S))


@pytest.mark.slow
def test_headline_numbers_match_funnelkit_metrics(rendered, sample_data):
    import funnelkit as fk
    import funnelkit.metrics.summary as summary_mod
    label, _, _, html = rendered
    s = summary_mod.metrics_summary(fk.load(sample_data), Period.quarter(label))
    s = json.loads(json.dumps(s, allow_nan=False))  # what `funnelkit metrics --format json` prints
    text = page_text(html)
    cur = s["dataset"]["currency"]
    won_amount = sum(r["won_amount"] or 0 for r in s["amount_by_source"])
    open_amount = sum(r["open_amount"] or 0 for r in s["deals_per_stage"])
    # The headline table's cells, row by row: "<metric> <this period> <previous> <change>".
    assert f"Won amount {won_amount:,.0f} {cur} " in text
    assert f"Won deals {s['deal_size']['deals']} " in text
    assert f"Win rate {100 * s['win_rate']:.1f}% " in text
    assert f"Median won deal size {s['deal_size']['median']:,.0f} {cur} " in text
    assert f"Open deals at period end {s['forecast']['open_deals']} " in text
    assert f"Open pipeline amount {open_amount:,.0f} {cur} " in text
    assert f"Expected won from open deals {s['forecast']['expected_won_amount']:,.0f} {cur} " in text
    assert f"Stuck deals {s['stuck_deals_total']} " in text


# --------------------------------------------------------------------------------------------
# Data text is escaped; with_code keeps the code.

@pytest.fixture(scope="module")
def xss_render(tmp_path_factory):
    data = make_dataset(tmp_path_factory.mktemp("xss") / "data")
    out = tmp_path_factory.mktemp("xss_out")
    html_path = render_report(data, Period.quarter("2026Q1"), out, with_code=True, timeout=TIMEOUT,
                              title="Q1 <b>review</b> & *plan*", notebook=report_notebook())
    return html_path.read_text(encoding="utf-8")


@pytest.mark.slow
def test_data_text_is_escaped_end_to_end(xss_render):
    html = xss_render
    assert "<script>window.__pwned" not in html
    assert "<img src=x onerror" not in html and '<img src="x"' not in html
    assert "<b>Chen</b>" not in html and "<b>review</b>" not in html
    text = page_text(html)
    assert "<script>window.__pwned=1</script>" in text  # shown as text
    assert "Q1 <b>review</b> & *plan*" in text
    srcs = [a.get("src") for t, a in tags(html) if t == "img"]
    assert "x" not in srcs
    assert all(not any(k.startswith("on") for k in a) for _, a in tags(html))


@pytest.mark.slow
def test_with_code_keeps_the_code(xss_render):
    assert "jp-InputArea-editor" in xss_render
    assert "funnelkit" in page_text(re.sub(r"<style.*?</style>", "", xss_render, flags=re.S))


# --------------------------------------------------------------------------------------------
# Failures and timeouts.

@pytest.mark.slow
def test_failed_render_names_quarter_and_cell_and_leaves_no_html(tmp_path):
    data = make_dataset(tmp_path / "data", n=40)
    nb = small_notebook(tmp_path / "fails.ipynb", "x = 1",
                        "raise ValueError('deliberate failure in ' + quarter)", "print('never')")
    out = tmp_path / "out"
    with pytest.raises(ReportError) as info:
        render_report(data, Period.quarter("2026Q1"), out, timeout=60, notebook=nb)
    msg = str(info.value)
    assert "2026Q1" in msg
    # parameters In [1], injected parameters In [2], x = 1 In [3], then the failing cell
    assert "cell In [4] (\"raise ValueError('deliberate failure in ' + quarter)\")" in msg
    assert "ValueError" in msg and "deliberate failure in 2026Q1" in msg
    names = sorted(p.name for p in out.iterdir())
    assert names == ["2026Q1.failed.ipynb"]  # no HTML, no temp files, the traceback kept


@pytest.mark.slow
def test_failure_keeps_a_previous_good_report(tmp_path):
    data = make_dataset(tmp_path / "data", n=40)
    out = tmp_path / "out"
    good = small_notebook(tmp_path / "good.ipynb", "print('fine ' + quarter)")
    bad = small_notebook(tmp_path / "bad.ipynb", "1 / 0")
    first = render_report(data, Period.quarter("2026Q1"), out, timeout=60, notebook=good)
    before = first.read_bytes()
    with pytest.raises(ReportError, match="ZeroDivisionError"):
        render_report(data, Period.quarter("2026Q1"), out, timeout=60, notebook=bad)
    assert first.read_bytes() == before
    render_report(data, Period.quarter("2026Q1"), out, timeout=60, notebook=good)
    assert not (out / "2026Q1.failed.ipynb").exists()


@pytest.mark.slow
def test_timeout_is_retried_once_then_reported(tmp_path, caplog):
    data = make_dataset(tmp_path / "data", n=20)
    nb = small_notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(120)")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="funnelkit.report"):
        with pytest.raises(ReportError) as info:
            render_report(data, Period.quarter("2026Q1"), out, timeout=2, notebook=nb)
    assert "timed out twice" in str(info.value) and "2026Q1" in str(info.value)
    assert "'import time'" in str(info.value) and "cell cell" not in str(info.value)   # named once, by its first line
    assert [r for r in caplog.records if "retrying once" in r.getMessage()]
    assert not list(out.glob("*.html")) and not list(out.glob(".*"))


def test_out_inside_the_data_folder_is_refused(tmp_path):
    data = make_dataset(tmp_path / "data", n=10)
    with pytest.raises(ValueError, match="never written"):
        render_report(data, Period.quarter("2026Q1"), data / "reports", timeout=60,
                      notebook=FIXTURE_NOTEBOOK)
    with pytest.raises(ValueError, match="never written"):
        render_all_quarters(data, data, timeout=60, notebook=FIXTURE_NOTEBOOK, progress=False)
    assert sorted(p.name for p in data.iterdir()) == ["deals.csv", "pipeline.yml", "stage_history.csv"]


@pytest.mark.slow
def test_custom_period_passes_start_end_and_as_of(tmp_path):
    data = make_dataset(tmp_path / "data", n=20)
    nb = small_notebook(tmp_path / "p.ipynb", "print('params', repr(quarter), start, end, as_of)")
    period = Period("2026-01-01", "2026-02-15", as_of="2026-03-01 12:00")
    html = render_report(data, period, tmp_path / "out", timeout=60, notebook=nb)
    assert html.name == "2026-01-01_to_2026-02-15.html"
    assert "params '' 2026-01-01 2026-02-15 2026-03-01T12:00:00" in page_text(html.read_text())


def test_timeout_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="timeout"):
        render_report(tmp_path, Period.quarter("2026Q1"), tmp_path / "out", timeout=0)


# --------------------------------------------------------------------------------------------
# All quarters, the index page and the CLI.

@pytest.mark.slow
def test_all_quarters_index_and_failed_quarter(tmp_path, monkeypatch, capsys):
    # created 2026-01-05 .. 2026-03-15, closings spill into Q2: quarters 2026Q1 and 2026Q2
    data = make_dataset(tmp_path / "data", n=40, days=70)
    nb = small_notebook(tmp_path / "q.ipynb",
                        "from IPython.display import Markdown, display\n"
                        "from funnelkit.report import escape\n"
                        "display(Markdown('# Report ' + escape(quarter, markdown=True)))",
                        "if quarter == '2026Q2':\n    raise RuntimeError('no data for ' + quarter)")
    out = tmp_path / "out"
    with pytest.raises(ReportError) as info:
        render_all_quarters(data, out, timeout=60, notebook=nb, title="<i>All</i> reports",
                            progress=False)
    assert "2026Q2" in str(info.value) and "1 of 2" in str(info.value)
    index = (out / "index.html").read_text()
    assert '<a href="2026Q1.html">2026Q1</a>' in index
    assert "2026Q2.html" not in index and "no data for 2026Q2" in index
    assert "&lt;i&gt;All&lt;/i&gt; reports" in index and "<i>" not in index
    assert (out / "2026Q1.html").is_file() and not (out / "2026Q2.html").exists()

    # The CLI: same run, non-zero exit naming the failed quarter, no traceback.
    from funnelkit.cli import main
    monkeypatch.setenv("FUNNELKIT_REPORT_NOTEBOOK", str(nb))
    code = main(["report", str(data), "--all-quarters", "--out", str(tmp_path / "cli"),
                 "--timeout", "60"])
    err = capsys.readouterr().err
    assert code != 0 and "2026Q2" in err and "Traceback" not in err
    assert (tmp_path / "cli" / "2026Q1.html").is_file()


@pytest.mark.slow
def test_cli_single_quarter(tmp_path, monkeypatch, capsys):
    data = make_dataset(tmp_path / "data", n=30)
    nb = small_notebook(tmp_path / "ok.ipynb", "print('report for', quarter, data_path)")
    monkeypatch.setenv("FUNNELKIT_REPORT_NOTEBOOK", str(nb))
    from funnelkit.cli import main
    code = main(["report", str(data), "--quarter", "2026Q1", "--out", str(tmp_path / "r"),
                 "--timeout", "60"])
    assert code == 0, capsys.readouterr().err
    html = (tmp_path / "r" / "2026Q1.html").read_text()
    assert "report for 2026Q1 " + str(data.resolve()) in page_text(html)


# --------------------------------------------------------------------------------------------
# escape() and external_loads() on their own (fast).

@pytest.mark.parametrize("value", [*XSS_SOURCES, "[x](javascript:alert(1))", "# heading", "1. item",
                                   "    indented", "http://example.org/x", "*a* _b_ `c`", "$5 and $6"])
def test_escape_markdown_renders_as_plain_text(value):
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    out = markdown2html_mistune("Source: " + escape(value, markdown=True))
    assert [t for t, _ in tags(out)] == ["p"]  # one paragraph, no other element
    assert page_text(out) == "Source: " + " ".join(value.split())


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40))
def test_escape_markdown_is_text_for_any_input(value):
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    out = markdown2html_mistune("x " + escape(value, markdown=True) + " y")
    assert [t for t, _ in tags(out)] == ["p"]
    assert page_text(out) == " ".join(("x " + value + " y").split())


@given(st.text(max_size=40))
def test_escape_html_has_no_markup(value):
    out = escape(value)
    assert not set("<>\"'") & set(out)
    import html
    assert html.unescape(out) == value


def test_external_loads_finds_cdn_scripts_and_allows_links():
    page = ('<link rel="stylesheet" href="https://cdn.x/a.css"><script src="//cdn.x/r.js"></script>'
            '<img src="data:image/png;base64,AAAA"><a href="https://example.org">docs</a>'
            '<style>@import "https://f.x/f.css"; b{background:url(http://x/y.png)}</style>'
            '<script>var s=document.createElement("script"); s.src="https://cdn.x/w.js";</script>')
    found = external_loads(page)
    assert ("link", "href", "https://cdn.x/a.css") in found
    assert ("script", "src", "//cdn.x/r.js") in found
    assert ("style", "url", "https://f.x/f.css") in found and ("style", "url", "http://x/y.png") in found
    assert ("script", "code", "https://cdn.x/w.js") in found
    assert not [f for f in found if "example.org" in f[2] or f[2].startswith("data:")]
