"""Pre-rendered sliced views: one view per slice, everything from the data escaped, a working selector."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pytest

import funnelkit as fk
from funnelkit import views
from funnelkit.period import Period

HOSTILE = "<script>alert(1)</script>"


def write_tiny(root: Path, hostile: str = HOSTILE) -> Path:
    """Five deals in 2026Q2: two sources (one hostile), two products."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipeline.yml").write_text("name: Tiny\ncurrency: EUR\nstages: [Lead, Demo, Proposal]\n")
    src = hostile.replace('"', '""')
    deals = [
        ("D1", "2026-04-01T09:00", "won", "2026-05-01T09:00", "1000", f'"{src}"', "A", "Ann"),
        ("D2", "2026-04-02T09:00", "lost", "2026-04-20T09:00", "500", f'"{src}"', "B", "Bo"),
        ("D3", "2026-04-03T09:00", "open", "", "700", "Web", "A", "Ann"),
        ("D4", "2026-04-04T09:00", "won", "2026-06-01T09:00", "3000", "Web", "B", "Bo"),
        ("D5", "2026-05-04T09:00", "open", "", "", "Web", "A", "Bo"),
    ]
    (root / "deals.csv").write_text("deal_id,created_at,status,closed_at,amount,source,product,owner\n"
                                    + "\n".join(",".join(r) for r in deals) + "\n")
    hist = [("D1", "Lead", "2026-04-01T09:00"), ("D1", "Demo", "2026-04-10T09:00"),
            ("D1", "Proposal", "2026-04-20T09:00"), ("D2", "Lead", "2026-04-02T09:00"),
            ("D3", "Lead", "2026-04-03T09:00"), ("D3", "Demo", "2026-04-05T09:00"),
            ("D4", "Lead", "2026-04-04T09:00"), ("D4", "Proposal", "2026-05-04T09:00"),
            ("D5", "Lead", "2026-05-04T09:00")]
    (root / "stage_history.csv").write_text("deal_id,stage,entered_at\n"
                                            + "\n".join(",".join(r) for r in hist) + "\n")
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return fk.load(write_tiny(tmp_path_factory.mktemp("tiny")))


Q2 = Period.quarter("2026Q2")


def test_one_view_per_slice(tiny):
    v = views.sliced_views(tiny, Q2, chart=views.funnel_chart, by=["source", "product"])
    assert v.labels == ["All deals", "source: Web", f"source: {HOSTILE}", "product: A", "product: B"]
    assert v.html.count('<figure class="fk-view"') == 5
    assert v.html.count("<option ") == 5
    assert len(re.findall(r'<img src="data:image/png;base64,', v.html)) == 5
    # only the first view is visible before the reader picks another one
    assert v.html.count('style="display:none"') == 4
    assert v._repr_html_() == v.html


def test_hostile_names_are_escaped(tiny):
    v = views.sliced_views(tiny, Q2, chart=views.funnel_chart, by=["source"], title=HOSTILE)
    # the only script is ours; the hostile name appears only in escaped form
    assert v.html.count("<script") == 1
    assert "alert(1)" not in v.html.split("<script>", 1)[1]
    assert html.escape(HOSTILE) in v.html
    assert HOSTILE not in v.html


def test_hostile_quotes_cannot_break_attributes(tmp_path):
    evil = 'x" onerror="alert(1)'
    ds = fk.load(write_tiny(tmp_path / "q", hostile=evil))
    v = views.sliced_views(ds, Q2, chart=views.funnel_chart, by=["source"])
    assert 'onerror="alert' not in v.html
    assert "x&quot; onerror=&quot;alert(1)" in v.html


def test_embedded_pngs_are_small_pngs(tiny):
    v = views.sliced_views(tiny, Q2, chart=views.amount_by_chart("source"), by=["product"])
    for b64 in re.findall(r'data:image/png;base64,([A-Za-z0-9+/=]+)', v.html):
        raw = base64.b64decode(b64)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(raw) < 120_000


def test_failing_slice_becomes_a_note_not_an_error(tiny):
    def chart(ds, period):
        if len(ds.deals) < 5:
            raise ValueError("too small")
        return views.funnel_chart(ds, period)
    v = views.sliced_views(tiny, Q2, chart=chart, by=["product"])
    assert len(v) == 3
    assert v.html.count("<img ") == 1
    assert v.html.count("too little data in this slice") == 2


def test_max_slices_keeps_the_biggest(tiny):
    assert views.slice_values(tiny, "source", max_slices=1) == ["Web"]
    v = views.sliced_views(tiny, Q2, chart=views.funnel_chart, by=["source"], max_slices=1)
    assert v.labels == ["All deals", "source: Web"]


def test_a_single_view_has_no_menu(tiny):
    v = views.sliced_views(tiny, Q2, chart=views.funnel_chart, by=[])
    assert v.labels == ["All deals"] and "<select" not in v.html and "<script" not in v.html
    assert v.html.count("<img ") == 1


def test_block_ids_are_unique(tiny):
    a = views.sliced_views(tiny, Q2, chart=views.funnel_chart, by=["source"])
    b = views.sliced_views(tiny, Q2, chart=views.funnel_chart, by=["source"])
    ida = re.search(r'id="(fk-views-[^"]+)"', a.html).group(1)
    idb = re.search(r'id="(fk-views-[^"]+)"', b.html).group(1)
    assert ida != idb
    assert f"getElementById('{ida}')" in a.html


def test_each_view_title_names_its_slice(tiny, monkeypatch):
    titles = []
    real = views._name_slice

    def spy(fig, label):
        real(fig, label)
        titles.append(fig.axes[0].get_title() if not fig._suptitle else fig._suptitle.get_text())
    monkeypatch.setattr(views, "_name_slice", spy)
    views.sliced_views(tiny, Q2, chart=views.funnel_chart, by=["source"])
    assert titles == ["Funnel: deals reaching each stage — All deals", "Funnel: deals reaching each stage — source: Web",
                      f"Funnel: deals reaching each stage — source: {HOSTILE}"]
    titles.clear()
    views.sliced_views(tiny, Q2, chart=views.product_mix_chart, by=["product"], max_slices=1)
    assert titles[1].endswith(" — product: A") and titles[1].startswith("Won amount, won deals")


def test_a_column_with_one_value_adds_no_views(tmp_path):
    root = write_tiny(tmp_path / "one")
    deals = (root / "deals.csv").read_text().splitlines()
    # every deal's product is A: a "product: A" view would repeat "All deals"
    (root / "deals.csv").write_text("\n".join([deals[0]] + [",".join(r.split(",")[:6] + ["A"] + r.split(",")[7:])
                                                            for r in deals[1:]]) + "\n")
    ds = fk.load(root)
    v = views.sliced_views(ds, Q2, chart=views.funnel_chart, by=["product", "source"])
    assert v.labels == ["All deals", "source: Web", f"source: {HOSTILE}"]


def test_every_value_is_offered_by_default(tmp_path):
    """11 sources: the selector offers all 11 (grouped under "source"), not only the biggest 8."""
    root = write_tiny(tmp_path / "many")
    lines = (root / "deals.csv").read_text().splitlines()
    extra = [f"X{k},2026-04-0{1 + k % 9}T09:00,open,,100,src{k:02d},A,Ann" for k in range(10)]
    (root / "deals.csv").write_text("\n".join(lines + extra) + "\n")
    (root / "stage_history.csv").write_text((root / "stage_history.csv").read_text() + "".join(
        f"X{k},Lead,2026-04-0{1 + k % 9}T09:00\n" for k in range(10)))
    ds = fk.load(root)
    assert len(views.slice_values(ds, "source")) == 12
    v = views.sliced_views(ds, Q2, chart=views.funnel_chart, by=["source"])
    assert len(v.labels) == 13 and v.html.count("<option ") == 13
    assert v.html.count('<optgroup label="source">') == 1
    assert "(13 views)" in v.html


def test_table_html_is_collapsible_and_its_csv_is_the_table():
    import io

    import pandas as pd
    df = pd.DataFrame({"Deal": [f"<b>{k}</b>" for k in range(40)], "Amount (BRL)": [f"{k:,}" for k in range(40)]})
    block = views.table_html(df, max_rows=25, name="stuck deals")
    assert block.count("<table") == 2 and "Show the other 15 rows" in block
    assert "<b>0</b>" not in block and "&lt;b&gt;0&lt;/b&gt;" in block
    assert 'download="stuck_deals.csv"' in block and "(CSV, 40 rows)" in block
    uri = re.search(r'href="data:text/csv;charset=utf-8;base64,([^"]+)"', block).group(1)
    back = pd.read_csv(io.StringIO(base64.b64decode(uri).decode("utf-8-sig")), dtype=str, keep_default_na=False)
    assert back.equals(df)
    short = views.table_html(df.head(3))
    assert "<details" not in short and "(CSV, 3 rows)" in short
