"""Right-to-left and joined scripts in charts, checked in headless Chromium and in the glyph layout.

matplotlib 3.11 shapes text with libraqm (HarfBuzz + FriBiDi): Arabic letters take their joined
(initial/medial/final) forms, Arabic and Hebrew run right to left, Devanagari forms conjuncts. The
charts are PNGs, so the browser shows what matplotlib drew. Two checks, neither against a stored
reference image:

* the glyph layout of each label, read from the SVG the same chart writes (font and glyph index of
  every glyph, and its x position): every glyph comes from a real font (not matplotlib's Last
  Resort boxes), Arabic uses contextual forms instead of the letters' isolated glyphs, Arabic and
  Hebrew are laid out right to left;
* the PNG as headless Chromium displays it: each label has ink, and the Arabic label drawn as it
  is has fewer connected ink blobs than the same letters kept apart with zero-width non-joiners
  (joined letters touch; isolated ones do not).

The screenshot of the chart is written to the test's tmp_path (docs/img/scripts.png is a copy).
"""

from __future__ import annotations

import base64
import io
import re
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from browser_helpers import CHROMIUM_ARGS, chromium
from matplotlib import font_manager, ft2font
from scipy import ndimage

from funnelkit import plot as fkp

from test_fonts import require_all_scripts

matplotlib.use("Agg")
pytestmark = pytest.mark.browser

STEP_MS = 30_000
ARABIC = "إحالة العملاء"           # "customer referral"; starts with alef, which never joins left
HEBREW = "חיפוש ממומן"             # "paid search"
STAGES = ["线索", "資格確認", "見積もり", "협상", "Переговоры", "Συστάσεις", ARABIC, HEBREW,
          "व्यापार मेला"]
ZWNJ = "\u200c"  # zero-width non-joiner: the same letters, each in its isolated form


def glyph_layout(text: str) -> list[tuple[str, int, float]]:
    """(font, glyph index, x) of every glyph matplotlib lays out for ``text``, from its SVG output."""
    fig = plt.figure(figsize=(4, 0.8))
    fig.text(0.05, 0.3, text)
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path"}):
        fig.savefig(buf, format="svg")
    plt.close(fig)
    uses = re.finditer(r'<use xlink:href="#([^"]+)-([0-9a-f]+)"(?: transform="translate\(([-\d.e]+) )?',
                       buf.getvalue())
    return [(m[1], int(m[2], 16), float(m[3] or 0)) for m in uses]


def nominal_glyphs(text: str, font: str) -> list[int]:
    """The default (unshaped, isolated) glyph of each letter of ``text`` in ``font`` (a PostScript
    name from :func:`glyph_layout`), in logical order."""
    for family in matplotlib.rcParams["font.family"]:
        path = font_manager.fontManager.findfont(font_manager.FontProperties(family=[family]))
        face = ft2font.FT2Font(path, face_index=getattr(path, "face_index", 0))
        if face.postscript_name.replace(" ", "") == font:
            return [face.get_char_index(ord(c)) for c in text]
    raise AssertionError(f"{font} is not in the font chain")


def label_png(text: str) -> bytes:
    fig = plt.figure(figsize=(3.2, 0.6))
    fig.text(0.04, 0.3, text, fontsize=20)
    return fkp.to_png(fig, dpi=100)


def blobs(png: bytes) -> int:
    """Connected ink regions of a label image."""
    img = plt.imread(io.BytesIO(png))[..., :3].mean(axis=2)
    return ndimage.label(img < 0.5)[1]


def uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@pytest.fixture(scope="module")
def themed():
    fkp.set_theme()
    require_all_scripts()


def test_every_glyph_comes_from_a_real_font(themed):
    for text in STAGES:
        layout = glyph_layout(text)
        assert layout, text
        assert not [f for f, _g, _x in layout if f.startswith("LastResort")], (text, layout)


def test_arabic_is_joined_and_right_to_left(themed):
    layout = sorted(glyph_layout(ARABIC), key=lambda g: g[2])   # left to right on the page
    glyphs = [g for _f, g, _x in layout]
    nominal = nominal_glyphs(ARABIC, layout[0][0])
    # joined: most letters take a contextual form (not their isolated glyph); lam-alef may ligate
    assert sum(g not in nominal for g in glyphs) >= 5, (glyphs, nominal)
    # right to left: the first letter (alef with hamza, isolated form) is the rightmost glyph
    assert glyphs[-1] == nominal[0] and glyphs[0] != nominal[0]
    # the same letters kept apart by non-joiners are their nominal glyphs (the check can fail)
    # (HarfBuzz draws each non-joiner as an empty space glyph)
    space = nominal[ARABIC.index(" ")]
    apart = [g for _f, g, _x in glyph_layout(ZWNJ.join(ARABIC)) if g != space]
    assert sorted(apart) == sorted(g for g in nominal if g != space)


def test_hebrew_is_right_to_left(themed):
    layout = sorted(glyph_layout(HEBREW), key=lambda g: g[2])
    assert [g for _f, g, _x in layout] == nominal_glyphs(HEBREW, layout[0][0])[::-1]


def test_chart_in_chromium_shows_joined_arabic_and_every_label(themed, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    data = pd.DataFrame({"stage": STAGES, "reached": np.arange(len(STAGES), 0, -1) * 40,
                         "conversion": [0.6] * len(STAGES)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chart = fkp.to_png(fkp.funnel_plot(data, title="漏斗 · Воронка · قمع · משפך · फ़नल"))
        labels = {t: label_png(t) for t in STAGES}
        apart = label_png(ZWNJ.join(ARABIC))
    assert not [w for w in caught if "missing from font" in str(w.message)]
    page_html = ("<html><body style='margin:0;background:#fff'>"
                 f"<img id='chart' src='{uri(chart)}'>"
                 + "".join(f"<div><img class='label' src='{uri(png)}'></div>" for png in labels.values())
                 + f"<div><img id='apart' src='{uri(apart)}'></div></body></html>")
    page_file = tmp_path / "scripts.html"
    page_file.write_text(page_html, encoding="utf-8")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True,
                                     timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1400}, device_scale_factor=1)
            page.goto(page_file.resolve().as_uri(), wait_until="load", timeout=STEP_MS)
            assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
            shot = page.locator("#chart").screenshot(path=str(tmp_path / "scripts.png"), timeout=STEP_MS)
            shown = [page.locator("img.label").nth(i).screenshot(timeout=STEP_MS)
                     for i in range(len(STAGES))]
            shown_apart = page.locator("#apart").screenshot(timeout=STEP_MS)
        finally:
            browser.close()
    assert len(shot) > 10_000
    for text, png in zip(STAGES, shown):
        assert blobs(png) >= 1, f"{text}: nothing drawn"
    joined, isolated = blobs(shown[STAGES.index(ARABIC)]), blobs(shown_apart)
    assert joined < isolated - 3, (joined, isolated)
