"""The report's language: message catalogs complete and current, sentences whole, English unchanged."""

from __future__ import annotations

import gettext
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from babel.messages.pofile import read_po

from funnelkit import i18n
from funnelkit import takeaways as tk
from funnelkit.i18n import use_language

ROOT = Path(__file__).resolve().parents[1]
PO = ROOT / "funnelkit" / "locale" / "zh" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
REPORT = ROOT / "notebooks" / "quarterly_report.ipynb"


def _catalog(path):
    with open(path, "rb") as f:
        return read_po(f)


def _ids(catalog) -> set[str]:
    return {m.id[0] if isinstance(m.id, (tuple, list)) else m.id for m in catalog if m.id}


def test_no_untranslated_or_fuzzy_entries():
    problems = i18n.catalog_problems("zh")
    assert problems == [], "the Chinese catalog is not complete:\n" + "\n".join(problems)


def test_catalog_holds_every_marked_message(tmp_path):
    """Extract now (as `make messages` does) and compare: a marked string missing from the .po shows in English."""
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg",
                    "-k", "gettext_", "-o", str(pot), "funnelkit", "notebooks"], cwd=ROOT, check=True)
    missing = sorted(_ids(_catalog(pot)) - _ids(_catalog(PO)))
    assert not missing, "run `make messages` and translate:\n" + "\n".join(map(repr, missing))


def test_compiled_catalog_matches_the_po():
    with open(MO, "rb") as f:
        compiled = gettext.GNUTranslations(f)
    for m in _catalog(PO):
        if not m.id or "fuzzy" in m.flags:
            continue
        if isinstance(m.id, (tuple, list)):
            assert compiled.ngettext(m.id[0], m.id[1], 1) == m.string[0], m.id
        else:
            assert compiled.gettext(m.id) == m.string, f"{m.id!r}: messages.mo is stale (make messages)"


def test_language_names_and_html_lang():
    assert i18n.check_language("zh_CN") == i18n.check_language("zh-Hans") == "zh"
    assert i18n.check_language("") == "en"
    with pytest.raises(ValueError, match="no translation for language 'fr'"):
        i18n.check_language("fr")
    assert (i18n.html_lang("zh"), i18n.html_lang("en")) == ("zh-Hans", "en")


def test_use_language_restores_and_plurals():
    with use_language("zh"):
        assert i18n._("Win rate") == "赢单率"
        assert i18n.ngettext("{n} deal", "{n} deals", 1).format(n=1) == "1 个商机"
        assert i18n.ngettext("{n} deal", "{n} deals", 5).format(n=5) == "5 个商机"
    assert i18n.get_language() == "en"
    assert i18n.ngettext("{n} deal", "{n} deals", 1).format(n=1) == "1 deal"


def _headline_summaries():
    cur = {"period": {"label": "2026Q2"}, "win_rate": 0.31,
           "amount_by_source": [{"won_deals": 85, "won_amount": 1_200_000.0}]}
    prev = {"period": {"label": "2026Q1"}, "win_rate": 0.331,
            "amount_by_source": [{"won_deals": 80, "won_amount": 1_071_000.0}]}
    return cur, prev


def test_headline_takeaway_is_one_sentence_in_each_language():
    cur, prev = _headline_summaries()
    assert tk.headline_takeaway(cur, prev, "EUR") == "Won 1.2M EUR from 85 deals, up 12% on 2026Q1; win rate 31% (-2.1 pts)."
    with use_language("zh"):
        assert tk.headline_takeaway(cur, prev, "EUR") == "赢单 1.2M EUR，来自 85 个商机，较 2026Q1 增长 12%；赢单率 31%（-2.1 个百分点）。"


def test_takeaway_word_order_is_the_translations():
    """The stage name sits where the Chinese sentence puts it, not where English does."""
    funnel = pd.DataFrame({"stage": ["线索", "报价"], "reached": [10, 4], "conversion": [0.4, 0.5]})
    with use_language("zh"):
        text = tk.funnel_takeaway(funnel, {"lowest_conversion_stage": "线索", "lowest_conversion": 0.4})
    assert text == "10 个商机进入销售漏斗；瓶颈在“线索”阶段，只有 40% 的商机进入下一阶段。"
    assert tk.funnel_takeaway(funnel, {"lowest_conversion_stage": "线索", "lowest_conversion": 0.4}) == (
        "10 deals entered the funnel; the bottleneck is 线索, where only 40% move on.")


def test_headline_table_headers_and_changes_follow_language_and_locale():
    from funnelkit.formatting import use_locale
    cur, prev = _headline_summaries()
    with use_language("zh"), use_locale("de_DE"):
        t = tk.headline_table(cur, prev, "EUR")
    assert list(t.columns) == ["指标", "2026Q2", "2026Q1", "变化"]
    row = t.set_index("指标").loc["赢单率"]
    assert row["变化"] == "-2,1 个百分点"             # de_DE decimal comma in the change column
    assert t.set_index("指标").loc["赢单金额", "变化"] == "+12\xa0%"


def test_format_table_translates_headers_and_codes_only_in_chinese():
    from funnelkit.plot import format_table
    df = pd.DataFrame({"stage": ["Lead"], "status": ["won"], "won_amount": [1234.0], "bucket": ["0-7 days"]})
    assert list(format_table(df, currency="EUR").iloc[0]) == ["Lead", "won", "1,234", "0-7 days"]
    with use_language("zh"):
        out = format_table(df, currency="EUR")
    assert list(out.columns) == ["阶段", "状态", "赢单金额 (EUR)", "阶段停留天数"]
    assert list(out.iloc[0]) == ["Lead", "赢单", "1,234", "0-7 天"]


def test_notebook_markdown_translated_whole():
    nb = nbformat.read(REPORT, as_version=4)
    zh = i18n.translate_notebook(nb, "zh")
    heads = [line for c in zh.cells if c.cell_type == "markdown" for line in c.source.splitlines()
             if line.startswith("## ")]
    assert heads[:3] == ["## 核心指标", "## 能否完成目标", "## 销售漏斗"]
    assert [c.source for c in zh.cells if c.cell_type == "code"] == \
        [c.source for c in nb.cells if c.cell_type == "code"]           # code untouched
    assert i18n.translate_notebook(nb, "en").cells[0].source == nb.cells[0].source


def test_chart_labels_in_chinese():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from funnelkit import plot as fkp
    from funnelkit.formatting import use_locale
    f = pd.DataFrame({"stage": ["线索", "报价"], "reached": [1200, 4], "conversion": [0.56, 0.5]})
    with use_language("zh"), use_locale("de_DE"):
        ax = fkp.funnel_plot(f)
    texts = [t.get_text() for t in ax.texts]
    assert ax.get_title() == "销售漏斗：到达各阶段的商机" and ax.get_xlabel() == "商机数"
    assert texts[0] == "1.200  （56\xa0% 进入下一阶段）"              # the locale's number and percent
    assert texts[1] == "4  （50\xa0% 赢单）"
    plt.close("all")
    ax = fkp.funnel_plot(f)
    assert [t.get_text() for t in ax.texts][0] == "1,200  (56% to next)"
    plt.close("all")


def test_english_catalog_is_the_source_text():
    """Every English message is the msgid itself (no .mo for English): nothing in English changes."""
    assert not (ROOT / "funnelkit" / "locale" / "en").exists()
    assert i18n._("Takeaway") == "Takeaway" and i18n.get_language() == "en"


def test_explorer_follows_its_language(tmp_path):
    pytest.importorskip("ipywidgets")
    import funnelkit as fk
    from funnelkit import widgets
    from test_views import write_tiny
    ex = widgets.explore(fk.load(write_tiny(tmp_path / "d")), "2026Q2", lang="zh")
    assert ex.controls["source"].description == "线索来源" and ex.controls["source"].label == "（全部）"
    assert ex.selection()["source"] == widgets.ALL                 # the value stays the code
    assert i18n.get_language() == "en"                              # the explorer does not change the session's
    ex.update()                                                     # a redraw later is still in Chinese
    assert ex.status.value.startswith("2026Q2（全部商机）：本期新建 5 个商机")
    heads = [w.value for w in ex.widget.children if hasattr(w, "value") and "<h3" in str(w.value)]
    assert "成交周期" in heads[0]


def test_navigation_in_chinese_and_downloads_named_after_chinese_sections():
    from funnelkit.report import add_navigation
    page = ('<body><div class="jp-Cell"><h2 id="销售漏斗">销售漏斗</h2></div><a download="table.csv"></a>'
            '<div class="jp-Cell"><h2 id="成交周期">成交周期</h2></div><a download="table.csv"></a></body>')
    with use_language("zh"):
        out = add_navigation(page, label="2026Q2", data_span=("2025-01-02", "2026-09-30"), rendered_on="2026-10-01")
    assert 'download="2026Q2-销售漏斗.csv"' in out and 'download="2026Q2-成交周期.csv"' in out
    assert "<b>目录</b>" in out and "生成于 2026-10-01 · 数据范围 2025-01-02 至 2026-09-30" in out


@pytest.mark.filterwarnings("error:Glyph")         # the trend chart's Chinese labels have a font
def test_index_page_in_chinese(tmp_path):
    from bs4 import BeautifulSoup

    import funnelkit as fk
    from funnelkit import report
    from funnelkit.report import RenderOutcome
    from test_views import write_tiny
    ds = fk.load(write_tiny(tmp_path / "d"))
    out = RenderOutcome(rendered=[("2026Q1", tmp_path / "2026Q1.html"), ("2026Q2", tmp_path / "2026Q2.html")])
    with use_language("zh"):
        page = report.write_index(tmp_path, ds, out, None, ("2026-04-01", "2026-06-01")).read_text()
    soup = BeautifulSoup(page, "html.parser")
    assert soup.html["lang"] == "zh-Hans"
    assert [h.get_text() for h in soup.select("h2")] == ["核心指标（逐季度）", "报告列表"]
    rows = [tr.th.get_text(" ", strip=True) for tr in soup.select("tbody tr")]
    assert rows[0] == "赢单金额 本季度赢单的商机"
    cells = [td.get_text(" ", strip=True) for td in soup.select("tbody tr")[2].find_all("td")]
    assert cells == ["0 个商机", "700 EUR 2 个商机，其中 1 个金额未知（50%）"]
    assert soup.select_one("img.trend")["alt"].startswith("图表：逐季度对比")


def test_funnelkit_warnings_follow_the_language(sample_ds):
    """The warnings a report shows as notes are translated too (they were English in zh reports)."""
    import warnings

    from funnelkit import errors
    from funnelkit.metrics import win_forecast
    from funnelkit.period import as_period

    with use_language("zh"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        as_period("2031Q1", sample_ds)
        win_forecast(sample_ds, as_of="2024-10-02")
    texts = {w.category: str(w.message) for w in caught}
    assert texts[errors.NoDataWarning] == ("2031Q1 没有数据：该期间内没有商机被创建、结单或变更阶段"
                                           "（数据覆盖 2024-10-01 至 2026-09-30）；其数字为空，而不是零")
    assert texts[errors.TooLittleDataWarning] == "win_forecast：2024-10-02 00:00:00 之前没有已结单的商机；p_win 未知（NaN）"
