"""A data set whose deals are in several currencies renders: every count over all deals, one amount
block per currency, never a sum across currencies (issue 9, item 6)."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.period import Period


@pytest.fixture(scope="module")
def three_currencies(tmp_path_factory, sample_path):
    """The sample data with a currency column: deal i in EUR, USD, GBP by i mod 3."""
    folder = tmp_path_factory.mktemp("mixed") / "ds"
    shutil.copytree(sample_path, folder)
    deals = pd.read_csv(folder / "deals.csv", dtype=str, keep_default_na=False)
    deals["currency"] = [("EUR", "USD", "GBP")[i % 3] for i in range(len(deals))]
    deals.to_csv(folder / "deals.csv", index=False)
    return folder


@pytest.mark.slow
def test_a_three_currency_report_renders_one_amount_block_per_currency(three_currencies, sample_ds, tmp_path):
    from funnelkit.report import render_report
    from test_report_render import page_text
    q = Period.quarter("2026Q2")
    page = render_report(three_currencies, q, tmp_path, timeout=240).read_text(encoding="utf-8")
    text = page_text(page)
    ds = fk.load(three_currencies)
    s = fk.metrics.metrics_summary(ds, q)
    # Counts over all deals: the same as the sample's without a currency column.
    assert s["win_rate"] == fk.metrics.win_rate(sample_ds, q)
    assert s["cohort"] == fk.metrics.cohort_outcomes(sample_ds, q)
    assert f"Won deals {sum(r['won_deals'] for r in s['amount_by_source'])} " in text
    assert s["win_rate"] is not None and f"Win rate {100 * s['win_rate']:.1f}%" in text
    # One amount row per currency in the headline, each in its own unit, never a total.
    for code in ("EUR", "GBP", "USD"):
        won = sum(r["won_amount"] for r in s["by_currency"][code]["amount_by_source"] if r["won_amount"])
        assert f"Won amount ({code}) {won:,.0f} {code}" in text
        assert text.count(f"Amounts in {code}") >= 5          # deal size, target, sources, products, reps, forecast
    assert "Won amount 0" not in text and not re.search(r"Won amount [\d,]+ (EUR|GBP|USD) ", text)
    assert "The deals are in 3 currencies" in text
