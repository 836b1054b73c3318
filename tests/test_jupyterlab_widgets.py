"""The explorer notebook's live widgets in a real JupyterLab, driven like an analyst would.

Starts JupyterLab on a free loopback port (no token, in a temporary folder holding a copy of
``notebooks/explore.ipynb`` and a small generated data set at ``data/sample``, so the notebook's
relative data path must resolve from the kernel's working folder ``notebooks/``), opens the notebook
in headless Chromium (Debian's ``chromium`` driven by Python playwright; never a downloaded build),
runs all cells from the Run menu, then picks another source and another period in the explorer's
dropdowns and checks that the charts and tables were redrawn for that slice: the status line, the
funnel takeaway (its deal count matches :func:`funnelkit.metrics.stages.cohort_outcomes` for the
slice) and the images all change, no cell shows an error, and a source named like an HTML tag shows
as text without running. Screenshots go to the test's tmp_path (or to ``$FUNNELKIT_SCREENSHOTS``).

Without Chromium the test skips with the reason, except under CI (env var ``CI`` set), where it
fails. Every wait is bounded; the server (and with it the kernel) is stopped in the fixture teardown.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from browser_helpers import CHROMIUM_ARGS, chromium

import funnelkit as fk
from funnelkit.metrics import stages as st
from funnelkit.period import Period
from funnelkit.sample import write_sample

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
START_S = 40       # JupyterLab start-up takes 5-20 s on a busy 2-core machine
STEP_MS = 15_000   # any single browser step
RUN_ALL_MS = 30_000
BUDGET_S = 85      # the whole test, server start-up included; every wait is cut to what is left
_deadline = [float("inf")]


def _ms(step_ms: float) -> float:
    """A wait of at most ``step_ms``, cut to the time left in the test's budget."""
    left = (_deadline[0] - time.monotonic()) * 1000
    if left <= 0:
        pytest.fail(f"the JupyterLab test ran over its {BUDGET_S} s budget")
    return min(step_ms, left)
HOSTILE = '<img src=x onerror="window.__pwned=1">'
RENAMED = "Referrals"  # this sample source is renamed to HOSTILE in the test's data



def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server: SIGTERM (it shuts its kernels down), then SIGKILL its process group if need be.

    Kernels run in their own session but exit by themselves when the server is gone (ipykernel
    watches its parent).
    """
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A copy of the notebook set-up: notebooks/explore.ipynb and data/sample (small, one hostile source)."""
    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "explore.ipynb", root / "notebooks" / "explore.ipynb")
    data = write_sample(root / "data" / "sample", deals=400, seed=3)
    deals = pd.read_csv(data / "deals.csv", dtype=str, keep_default_na=False)
    assert (deals["source"] == RENAMED).any()
    deals["source"] = deals["source"].replace(RENAMED, HOSTILE)
    deals.to_csv(data / "deals.csv", index=False)
    return root


@pytest.fixture(scope="module")
def lab(workdir, tmp_path_factory):
    """A JupyterLab server on a free loopback port serving ``workdir``; yields its base URL."""
    chromium()  # skip before starting a server when there is no browser
    pytest.importorskip("jupyterlab", reason="needs jupyterlab")
    pytest.importorskip("playwright.sync_api", reason="needs Python playwright")
    state = tmp_path_factory.mktemp("labstate")
    settings = state / "settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text('{"autosave": false}')  # never write the copy
    news = state / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')  # no news toast
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(state / "runtime"), "JUPYTER_CONFIG_DIR": str(state / "config"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    log = (state / "server.log").open("wb")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", "--ServerApp.token=", "--ServerApp.password=",
           f"--ServerApp.root_dir={workdir}", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly",
           f"--LabApp.user_settings_dir={state / 'settings'}", f"--LabApp.workspaces_dir={state / 'workspaces'}"]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _deadline[0] = time.monotonic() + BUDGET_S
        deadline = time.monotonic() + START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{(state / 'server.log').read_text()[-3000:]}")
            try:
                _get(base + "/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab not ready after {START_S} s:\n{(state / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield base
    finally:
        _stop(proc)
        log.close()


@pytest.fixture()
def page(lab):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True, timeout=_ms(30_000))
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            pg = context.new_page()
            pg.set_default_timeout(STEP_MS)
            pg.errors, pg.dialogs = [], []
            pg.on("pageerror", lambda e: pg.errors.append(str(e)))
            pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
            yield pg
        finally:
            browser.close()


def _shots() -> Path | None:
    d = os.environ.get("FUNNELKIT_SCREENSHOTS")
    return Path(d) if d else None


def _explorer(pg) -> dict:
    """Status line, whole text and image sources of the explorer widget."""
    return pg.evaluate("""() => {
        const w = document.querySelector('.jp-OutputArea-output .widget-vbox');
        if (!w) return null;
        const status = w.querySelector(':scope > .widget-html');
        return {status: status ? status.innerText.trim() : '', text: w.innerText,
                imgs: [...w.querySelectorAll('img')].map(i => i.src)};
    }""")


def _wait_redrawn(pg, expect_status: str, old: dict) -> dict:
    """Wait until the status line shows ``expect_status`` and the kernel is idle again with new images."""
    pg.wait_for_function(
        """([want, oldImgs]) => {
            const w = document.querySelector('.jp-OutputArea-output .widget-vbox');
            const ind = document.querySelector('.jp-Notebook-ExecutionIndicator');
            if (!w || !ind || ind.dataset.status !== 'idle') return false;
            const s = w.querySelector(':scope > .widget-html');
            const imgs = [...w.querySelectorAll('img')].map(i => i.src);
            return s && s.innerText.includes(want) && imgs.length > 0 && imgs[0] !== oldImgs[0]
                   && imgs[imgs.length - 1] !== oldImgs[oldImgs.length - 1];
        }""", arg=[expect_status, old["imgs"]], timeout=_ms(STEP_MS))
    pg.wait_for_timeout(300)
    return _explorer(pg)


def _choose(pg, label: str, option: str) -> None:
    """Click the dropdown called ``label`` and pick ``option``, as a user would."""
    select = pg.locator(".widget-dropdown", has_text=label).locator("select")
    select.click(timeout=_ms(STEP_MS))
    select.select_option(value=option, timeout=_ms(STEP_MS))
    pg.keyboard.press("Escape")


def _ensure_kernel(pg, base: str, shots: Path, timeout: float = 30.0) -> None:
    """Wait until the notebook's kernel is up and idle.

    On a cold server JupyterLab may open the notebook before it has the kernel specs and then asks
    which kernel to start (its "Select Kernel" dialog) instead of starting the notebook's own: accept
    the proposed kernel there, as an analyst would.
    """
    deadline = time.monotonic() + _ms(timeout * 1000) / 1000
    dialog = pg.locator(".jp-Dialog", has_text="Select Kernel")
    while time.monotonic() < deadline:
        if dialog.count() and dialog.first.is_visible():
            dialog.first.locator(".jp-Dialog-button.jp-mod-accept").click()
        sessions = [x for x in _get(base + "/api/sessions") if x.get("path", "").endswith("explore.ipynb")]
        if (sessions and (sessions[0].get("kernel") or {}).get("execution_state") == "idle"
                and pg.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count()):
            return
        pg.wait_for_timeout(250)
    pg.screenshot(path=str(shots / "lab-no-kernel.png"))
    pytest.fail(f"the notebook's kernel was not idle within {timeout:.0f} s: {_get(base + '/api/sessions')}")


def _cohort(text: str) -> int:
    m = re.search(r"Of ([\d,]+) deals created in the period", text)
    assert m, text[:500]
    return int(m.group(1).replace(",", ""))


def test_dropdowns_redraw_the_explorer_in_jupyterlab(lab, page, workdir, tmp_path):
    t0 = time.monotonic()
    shots = _shots() or tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    ds = fk.load(workdir / "data" / "sample")
    pg = page
    pg.goto(lab + "/lab/tree/notebooks/explore.ipynb", wait_until="domcontentloaded", timeout=_ms(STEP_MS))
    pg.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=_ms(2 * STEP_MS))
    _ensure_kernel(pg, lab, shots)

    pg.click(".lm-MenuBar-itemLabel:text-is('Run')", timeout=_ms(STEP_MS))
    pg.click(".lm-Menu-itemLabel:text-is('Run All Cells')", timeout=_ms(STEP_MS))
    code_prompts = ".jp-Notebook .jp-CodeCell .jp-InputArea-prompt"
    try:
        pg.wait_for_function(
            f"""() => {{
                const p = [...document.querySelectorAll('{code_prompts}')];
                const ind = document.querySelector('.jp-Notebook-ExecutionIndicator');
                return p.length > 0 && p.every(e => /\\[\\d+\\]/.test(e.textContent))
                       && ind && ind.dataset.status === 'idle';
            }}""", timeout=_ms(RUN_ALL_MS))
    except Exception:
        pg.screenshot(path=str(shots / "lab-run-all-timeout.png"))
        prompts = pg.eval_on_selector_all(code_prompts, "ps => ps.map(p => p.textContent)")
        outs = pg.eval_on_selector_all(".jp-OutputArea-output", "os => os.map(o => o.innerText.slice(0, 300))")
        pytest.fail(f"Run All did not finish in {RUN_ALL_MS / 1000:.0f} s: prompts {prompts}, outputs {outs}")
    pg.wait_for_selector(".jp-OutputArea-output .widget-vbox .widget-dropdown select", timeout=_ms(STEP_MS))
    outputs = pg.eval_on_selector_all(".jp-OutputArea-output", "os => os.map(o => o.innerText)")
    errors = pg.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'],"
        " .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']", "os => os.map(o => o.innerText)")
    assert not errors, errors
    # widgets rendered as widgets, not as their text repr, and the data came from the copy's data/sample
    assert not any(re.search(r"\b(VBox|Dropdown|Output)\(", t) for t in outputs), outputs
    assert any("400 deals" in t for t in outputs), outputs[:3]
    names = pg.eval_on_selector_all(".widget-vbox .widget-dropdown label", "ls => ls.map(l => l.innerText.trim())")
    assert names == ["Period", "Source", "Product", "Owner", "Stage"]

    first = _explorer(pg)
    last_q = Period.quarter("2026Q3")
    n_q3 = st.cohort_outcomes(ds, last_q)["deals"]
    assert first["status"] == f"2026Q3 (all deals): {n_q3} deals created in the period; 400 in the data set"
    assert len(first["imgs"]) >= 5 and all(i.startswith("data:image/png") for i in first["imgs"])
    assert _cohort(first["text"]) == n_q3
    pg.screenshot(path=str(shots / "lab-1-initial.png"))

    # another source: every chart and table is redrawn for that slice
    _choose(pg, "Source", "Backlinks")
    by_source = _wait_redrawn(pg, "source = Backlinks", first)
    assert by_source["text"] != first["text"]
    assert _cohort(by_source["text"]) == st.cohort_outcomes(ds.filter(source="Backlinks"), last_q)["deals"]
    # the amount-by-source table (the per-rep table above it also has a "Won amount" column)
    table = pg.locator(".widget-vbox table", has_text="Won amount").filter(
        has=pg.locator("th", has_text="Source")).first.inner_text()
    assert "Backlinks" in table and "Targeted ads" not in table, table
    pg.screenshot(path=str(shots / "lab-2-source.png"))

    # another period, same source
    _choose(pg, "Period", "2025Q2")
    by_period = _wait_redrawn(pg, "2025Q2", by_source)
    assert by_period["status"].startswith("2025Q2") and "source = Backlinks" in by_period["status"]
    assert _cohort(by_period["text"]) == st.cohort_outcomes(ds.filter(source="Backlinks"),
                                                             Period.quarter("2025Q2"))["deals"]
    pg.screenshot(path=str(shots / "lab-3-period.png"))

    # a source named like an HTML tag is shown as text and never runs
    _choose(pg, "Source", HOSTILE)
    hostile = _wait_redrawn(pg, "source = " + HOSTILE, by_period)
    assert HOSTILE in hostile["status"]
    # the long name wraps the controls onto two lines instead of pushing "Stage" out of view
    right = pg.evaluate("""() => {
        const area = document.querySelector('.jp-OutputArea-output .widget-vbox').getBoundingClientRect();
        const sel = [...document.querySelectorAll('.widget-vbox .widget-dropdown select')].map(
            s => s.getBoundingClientRect().right);
        return [area.right, Math.max(...sel)];
    }""")
    assert right[1] <= right[0] + 1, right
    pg.screenshot(path=str(shots / "lab-4-hostile-source.png"))
    assert pg.evaluate("() => window.__pwned") is None
    assert not pg.dialogs and not pg.errors, (pg.dialogs, pg.errors)
    assert time.monotonic() - t0 < 75, "the JupyterLab round trip took too long"
