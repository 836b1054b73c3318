"""Chart labels in every script: the font fallback chain (funnelkit.fonts, applied by
funnelkit.plot.set_theme), one note per script without a font, and a rendered report of a data set
named in Chinese (simplified and traditional), Japanese, Korean, Cyrillic, Greek, Arabic, Hebrew
and Devanagari with no missing-glyph warning anywhere.
"""

from __future__ import annotations

import html as html_text
import os
import re
import warnings
from pathlib import Path

import matplotlib
import nbformat
import pandas as pd
import pytest
from matplotlib import font_manager, ft2font

from funnelkit import fonts
from funnelkit import plot as fkp

matplotlib.use("Agg")

#: One label per script the charts must draw (what a CRM export names stages, sources, reps in).
LABELS = {
    "Chinese": "线索 资格确认 方案演示",      # simplified
    "Chinese (traditional)": "資格確認 報價 談判",
    "Japanese": "見積もり ひらがな カタカナ",
    "Korean": "협상 영업 담당자",
    "Cyrillic": "Переговоры Иван",
    "Greek": "Συστάσεις Ελλάδα",
    "Arabic": "إحالة العملاء",
    "Hebrew": "חיפוש ממומן",
    "Devanagari": "व्यापार मेला राहुल",
}
NEEDED_DEBIAN = "fonts-noto-cjk and fonts-noto-core (make fonts)"


def require_all_scripts() -> None:
    """Skip when this machine lacks a script's font (fail under CI, where `make test` installs them)."""
    missing = fonts.missing_scripts()
    if missing:
        reason = f"no font for {', '.join(missing)}: install {NEEDED_DEBIAN}"
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI is set, so the fonts must be there")
        pytest.skip(reason)


def _draw(labels, *, family=None) -> list[warnings.WarningMessage]:
    """Draw a funnel chart with ``labels`` as stages to PNG; return the warnings raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with matplotlib.rc_context({"font.family": family} if family else {}):
            data = pd.DataFrame({"stage": list(labels), "reached": range(len(labels), 0, -1),
                                 "conversion": [0.5] * len(labels)})
            ax = fkp.funnel_plot(data, title=" / ".join(labels[:2]))
            ax.set_xlabel(labels[-1])
            fkp.to_png(ax)
    return list(caught)


def _glyph_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_every_script_has_a_font_in_the_chain():
    fkp.set_theme()
    require_all_scripts()
    chain = list(matplotlib.rcParams["font.family"])
    assert chain == fonts.font_chain() and chain[0] == "sans-serif"
    files = [font_manager.fontManager.findfont(font_manager.FontProperties(family=[f]),
                                               fallback_to_default=False) for f in chain]
    faces = [ft2font.FT2Font(f, face_index=getattr(f, "face_index", 0)) for f in files]
    for script, text in LABELS.items():
        for char in text.replace(" ", ""):
            assert any(face.get_char_index(ord(char)) for face in faces), (script, char, chain)
    # only installed fonts are listed: matplotlib never logs "font family not found"
    assert len(set(chain)) == len(chain)


def test_labels_in_every_script_draw_without_missing_glyphs():
    fkp.set_theme()
    require_all_scripts()
    caught = _draw(list(LABELS.values()))
    assert _glyph_warnings(caught) == []
    # Before the chain (matplotlib's default font alone), the same chart misses glyphs of the
    # CJK and Devanagari labels: the check above can fail.
    before = _glyph_warnings(_draw(list(LABELS.values()), family=["DejaVu Sans"]))
    assert any("CJK UNIFIED IDEOGRAPH" in m for m in before)
    assert any("DEVANAGARI" in m for m in before)


def test_a_script_without_a_font_gets_one_note_naming_the_package():
    shown: list[tuple[str, type]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, category, *rest, **kw: shown.append((str(message), category))
        fonts.note_missing_scripts()
        fonts.note_missing_scripts()  # a second call does not stack a second hook
        with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}):
            for labels in (["नमस्ते", "व्यापार मेला"], ["राहुल", "线索"]):
                data = pd.DataFrame({"stage": labels, "reached": [2, 1]})
                fkp.to_png(fkp.funnel_plot(data, conversion=None))
        warnings.warn("an unrelated warning", UserWarning)
    notes = [m for m, c in shown if c is fonts.MissingFontWarning]
    assert notes == [
        "Chart labels in Devanagari script cannot be drawn: no installed font has it. Install "
        "fonts-noto-core (Debian/Ubuntu) or font-ttf-noto (conda-forge), then restart the kernel.",
        "Chart labels in Chinese script cannot be drawn: no installed font has it. Install "
        "fonts-noto-cjk (Debian/Ubuntu) or font-ttf-noto-cjk (conda-forge), then restart the kernel.",
    ]
    assert not [m for m, _c in shown if "Glyph" in m]
    assert ("an unrelated warning", UserWarning) in shown


@pytest.mark.parametrize("char, script", [("线", "Chinese"), ("資", "Chinese"), ("も", "Japanese"),
                                          ("カ", "Japanese"), ("협", "Korean"), ("Ж", "Cyrillic"),
                                          ("Σ", "Greek"), ("ع", "Arabic"), ("ש", "Hebrew"),
                                          ("र", "Devanagari"), ("ክ", "Ethiopic")])
def test_script_of(char, script):
    assert fonts.script_of(char) == script


def test_install_hint_for_a_script_outside_the_list_names_noto():
    assert fonts.install_hint("Tibetan") == ("a Noto Sans Tibetan font: fonts-noto-core or "
                                             "fonts-noto-extra (Debian/Ubuntu), font-ttf-noto (conda-forge)")


# ------------------------------------------------------------------------------------------------
# End to end: a quarter of a data set named in all those scripts, rendered by `funnelkit report`.

STAGES = ["线索", "資格確認", "見積もり", "협상", "Переговоры"]
SOURCES = ["Συστάσεις", "إحالة العملاء", "חיפוש ממומן", "व्यापार मेला", "客户推荐"]
# Egyptian hieroglyphs: a script no font here draws, so the report must say so once (never per glyph)
NO_FONT = "𓀀𓀁𓀂 サービス"
PRODUCTS = ["基础版", "專業版", NO_FONT]
OWNERS = ["张伟", "李娜", "田中 さくら", "김민준", "Иван Петров", "محمد علي", "דוד לוי", "राहुल शर्मा"]


def write_script_dataset(folder: Path) -> Path:
    """The synthetic sample with every stage, source, product and owner renamed into the scripts."""
    from funnelkit import sample

    deals, history, _pipeline = sample.generate(900, seed=11, start="2025-01-01", days=240)
    renames = {"source": dict(zip(sample.SOURCES, SOURCES)),
               "product": dict(zip(sample.PRODUCTS, PRODUCTS)),
               "owner": dict(zip(sample.OWNERS, OWNERS))}
    for column, names in renames.items():
        deals[column] = deals[column].astype(str).map(names)
    history["stage"] = history["stage"].astype(str).map(dict(zip(sample.STAGES, STAGES)))
    folder.mkdir(parents=True)
    deals.to_csv(folder / "deals.csv", index=False)
    history.to_csv(folder / "stage_history.csv", index=False)
    (folder / "pipeline.yml").write_text(
        "name: 多语言 pipeline\ncurrency: CNY\nstages:\n" + "".join(f"- {s}\n" for s in STAGES),
        encoding="utf-8")
    return folder


def _notebook_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(str(out.get("text", "")))
            for value in out.get("data", {}).values():
                if isinstance(value, str) and not value.startswith("iVBOR"):
                    parts.append(value)
    return "\n".join(parts)


@pytest.mark.slow
def test_report_of_a_dataset_named_in_every_script_has_no_missing_glyph(tmp_path, caplog):
    from funnelkit.period import Period
    from funnelkit.report import render_report

    require_all_scripts()
    data = write_script_dataset(tmp_path / "scripts")
    caplog.set_level("DEBUG")
    html_path = render_report(data, Period.quarter("2025Q2"), tmp_path / "out", timeout=300,
                              locale="zh_CN")
    nb = nbformat.read(html_path.with_suffix(".ipynb"), as_version=4)
    text = _notebook_text(nb) + "\n" + caplog.text
    html = html_path.read_text(encoding="utf-8")
    for haystack in (text, html):
        assert "missing from font" not in haystack
        assert "Glyph" not in haystack
        assert "findfont" not in haystack
    # one note, for the one script without a font, naming what to install; none for the nine others
    note = ("Chart labels in Egyptian script cannot be drawn: the chart fonts cover Latin, Chinese, "
            "Japanese, Korean, Cyrillic, Greek, Arabic, Hebrew, Devanagari. Install a font for it (a Noto "
            "Sans Egyptian font: fonts-noto-core or fonts-noto-extra (Debian/Ubuntu), font-ttf-noto "
            "(conda-forge)) and append its family to matplotlib.rcParams['font.family'] after "
            "funnelkit.plot.set_theme().")
    shown = html_text.unescape(html)
    assert shown.count("cannot be drawn") == 1 and shown.count(note) == 1, re.findall(r"[^>]*cannot be drawn[^<]*", shown)
    # the names are in the report (tables) and the charts were drawn
    for name in ("线索", "資格確認", "إحالة العملاء", "व्यापार मेला"):
        assert name in html
    assert html.count("data:image/png;base64,") >= 8
    # --locale zh_CN: the heading's dates and counts as Chinese readers write them
    assert "2025年4月1日 to 2025年6月30日" in html and "900 deals in the data" in html
