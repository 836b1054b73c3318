"""End to end: the Chinese sample rendered with --lang zh --locale zh_CN has no English left a reader sees.

Allowed Latin text: codes and names that stay as they are in a Chinese report (currency and file
formats, method names, file, column and parameter names quoted from the docs), deal ids and the
data set's folder name. Anything else is listed with the line it is on.
"""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

pytestmark = pytest.mark.slow

QUARTER = "2026Q2"
#: Latin words a Chinese report keeps: codes, method and proper names, file/column/parameter names.
ALLOWED = {"CNY", "CSV", "IQR", "Brier", "Kaplan-Meier", "funnelkit", "funnelkit.metrics", "report",
           "docs", "metrics.md", "docs/metrics.md", "targets.csv", "deal_changes.csv", "expected_close_date",
           "stuck_quantile", "target", "--target"}
_WORD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9'_./-]*[A-Za-z0-9]")
_DEAL_ID = re.compile(r"^D\d+$")


class _VisibleText(HTMLParser):
    """Text a reader sees: every text node outside <head>, <script> and <style>, plus image alt text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hidden = 0
        self.lines: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("head", "script", "style"):
            self.hidden += 1
        elif tag == "img" and not self.hidden:
            alt = dict(attrs).get("alt")
            if alt:
                self.lines.append(" ".join(alt.split()))

    def handle_endtag(self, tag):
        if tag in ("head", "script", "style"):
            self.hidden -= 1

    def handle_data(self, data):
        if not self.hidden and data.strip():
            self.lines.append(" ".join(data.split()))


def visible_lines(page: str) -> list[str]:
    parser = _VisibleText()
    parser.feed(page)
    return parser.lines


def english_left(lines: list[str], allowed: set[str]) -> list[str]:
    """``word  <- line`` for every Latin word that is not allowed."""
    out = []
    for line in lines:
        for word in _WORD.findall(line):
            if word not in allowed and not _DEAL_ID.match(word):
                out.append(f"{word!r}  <- {line[:160]}")
    return out


def test_the_checker_finds_english():
    lines = visible_lines("<html><head><title>Report</title></head><body><p>赢单率 win rate 31%</p>"
                          "<script>var x = 'code';</script><img alt='Chart: 销售漏斗'><p>D00012 CNY</p></body></html>")
    assert [e.split()[0] for e in english_left(lines, ALLOWED)] == ["'win'", "'rate'", "'Chart'"]


@pytest.fixture(scope="module")
def zh_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("zh")
    cli = [sys.executable, "-m", "funnelkit"]
    subprocess.run(cli + ["sample-data", str(root / "sample-zh"), "--lang", "zh"], check=True, capture_output=True)
    done = subprocess.run(cli + ["report", str(root / "sample-zh"), "--quarter", QUARTER, "--lang", "zh",
                                 "--locale", "zh_CN", "--out", str(root / "out")],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    return root / "out" / f"{QUARTER}.html", done.stderr


def test_zh_report_has_no_visible_english(zh_report):
    html_path, _log = zh_report
    page = html_path.read_text(encoding="utf-8")
    assert '<html lang="zh-Hans"' in page
    left = english_left(visible_lines(page), ALLOWED | {"sample-zh"})
    assert not left, f"{len(left)} English words left in the Chinese report:\n" + "\n".join(left[:80])


def test_zh_report_text_is_chinese(zh_report):
    html_path, log = zh_report
    lines = visible_lines(html_path.read_text(encoding="utf-8"))
    assert "销售漏斗" in lines and "核心指标" in lines and "目录" in lines
    assert any(line.startswith("要点：") for line in lines)
    assert any("赢单率" in line and "个百分点" in line for line in lines)     # the headline's change, in Chinese
    assert any(re.search(r"¥[\d.,]+万", line) for line in lines)                # zh_CN compact money
    assert "Glyph" not in log and "missing from font" not in log
    nb = html_path.with_suffix(".ipynb").read_text(encoding="utf-8")
    assert "missing from font" not in nb and "Glyph" not in nb
