"""The exported report in a real browser: headless Chromium (Debian's ``chromium`` package, driven
by Python playwright; never a downloaded browser build).

Opens a rendered quarter whose data has sources named ``<script>window.__pwned=1</script>`` and
``<img src=x onerror="window.__pwned=2">``, switches a slice with the report's ``<select>``, takes
screenshots (under the test's tmp_path), checks the visible view changed, that no script from the
data ran, no dialog fired and no request left the machine.

Without Chromium the tests skip with the reason, except under CI (env var ``CI`` set), where they
fail: ``make browser`` installs it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import chromium, launched_chromium

from funnelkit.period import Period
from funnelkit.report import render_report

from test_report_render import TIMEOUT, make_dataset, report_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEP_MS = 30_000  # every browser step has a timeout



@pytest.fixture(scope="module")
def browser():
    with launched_chromium() as b:
        yield b


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    chromium()  # skip before spending a render when there is no browser
    data = make_dataset(tmp_path_factory.mktemp("browser") / "data", n=200)
    out = tmp_path_factory.mktemp("browser_out")
    return render_report(data, Period.quarter("2026Q1"), out, timeout=TIMEOUT, notebook=report_notebook())


@pytest.fixture()
def page(browser, report):
    context = browser.new_context(viewport={"width": 1200, "height": 900}, java_script_enabled=True)
    pg = context.new_page()
    pg.set_default_timeout(STEP_MS)
    pg.dialogs, pg.requests, pg.errors = [], [], []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    # Anything not from the file itself is aborted (and recorded): the report must not need it.
    context.route("**/*", lambda route: route.abort() if not route.request.url.startswith(("file:", "data:"))
                  else route.continue_())
    pg.goto(report.resolve().as_uri(), wait_until="load", timeout=STEP_MS)
    yield pg
    context.close()


VISIBLE_STATE = """root => {
  const visible = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  const imgs = Array.from(root.querySelectorAll('img')).filter(visible).map(i => i.src.slice(-80));
  return {text: root.innerText, imgs: imgs};
}"""


def _slicer(page):
    select = page.locator("select").first
    assert select.count() == 1, "the report has no <select> slice switcher"
    # The switcher and its views share the output area the notebook wrote them into.
    root = select.locator("xpath=ancestor::div[contains(@class,'jp-OutputArea-output')][1]")
    return select, root


def test_switching_a_slice_changes_the_view(page, tmp_path):
    select, root = _slicer(page)
    before = root.evaluate(VISIBLE_STATE)
    shot_before = root.screenshot(path=str(tmp_path / "slice-before.png"), timeout=STEP_MS)
    options = select.locator("option").all_inner_texts()
    assert len(options) >= 2
    current = select.input_value()
    values = [o.get_attribute("value") for o in select.locator("option").all()]
    target = next(v for v in values if v != current)
    select.select_option(value=target, timeout=STEP_MS)
    after = root.evaluate(VISIBLE_STATE)
    shot_after = root.screenshot(path=str(tmp_path / "slice-after.png"), timeout=STEP_MS)
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True, timeout=STEP_MS)
    assert select.input_value() == target
    assert before != after, "the visible view did not change after switching the slice"
    assert before["imgs"] or before["text"].strip()
    assert shot_before != shot_after
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert page.errors == []


def test_no_script_from_the_data_runs(page):
    # The data's "sources" appear as visible text (escaped), in the report and in the slice menu.
    body = page.locator("body").inner_text()
    assert "<script>window.__pwned=1</script>" in body or "window.__pwned=1" in body
    select, _ = _slicer(page)
    labels = select.locator("option").all_inner_texts()
    hostile = [i for i, t in enumerate(labels) if "__pwned" in t]
    # Switch to every view showing hostile names (or, if the menu has none, to each view in turn).
    for i in hostile or range(len(labels)):
        select.select_option(index=i, timeout=STEP_MS)
    page.wait_for_timeout(300)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.dialogs == []
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"], img[onerror]').length") == 0


def test_report_makes_no_network_requests(page):
    page.wait_for_load_state("load", timeout=STEP_MS)
    external = [u for u in page.requests if not u.startswith(("file:", "data:"))]
    assert external == []


def test_the_check_catches_an_unescaped_page(browser, tmp_path):
    # The same browser set-up does run injected markup, so the checks above can fail.
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><p>source: <img src=x onerror="window.__pwned=2"></p>'
                   "<script>window.__pwned = window.__pwned || 1</script></body></html>")
    context = browser.new_context()
    try:
        pg = context.new_page()
        pg.goto(bad.as_uri(), wait_until="load", timeout=STEP_MS)
        pg.wait_for_function("typeof window.__pwned !== 'undefined'", timeout=STEP_MS)
        assert pg.evaluate("window.__pwned") in (1, 2)
    finally:
        context.close()
