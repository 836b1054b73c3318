"""Amount by source / product / owner on the hand data set; expected values computed by hand."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import funnelkit as fk
from funnelkit.dataset import MixedCurrencyError
from funnelkit.metrics.breakdown import amount_by
from funnelkit.metrics.size import deal_size, win_rate
from funnelkit.period import Period
from engines import ENGINES, on_engine
from close_hand_data import (deal_tuples, make_dataset, random_deals, write_dataset,
                             write_mixed_currency)

APRIL = Period("2024-04-01", "2024-04-30")
COLUMNS = ["won_amount", "won_deals", "lost_deals", "win_rate", "mean_size", "share", "open_amount"]
NAN = float("nan")


@pytest.fixture(scope="module", params=ENGINES)
def ds(request, tmp_path_factory):
    return on_engine(request.param, write_dataset(tmp_path_factory.mktemp("hand")), request)


def check(out, by, expected):
    assert list(out.columns[:8]) == [by] + COLUMNS
    assert out[by].tolist() == [row[0] for row in expected]
    got = out[COLUMNS].to_numpy(dtype=float)
    np.testing.assert_allclose(got, np.array([row[1:] for row in expected], dtype=float),
                               rtol=1e-12, equal_nan=True)


def test_by_source(ds):
    out = amount_by(ds, APRIL)          # by="source" is the default
    # won in P: D1 1000 Web, D2 3000 Web, D4 5000 Referral (total 9000); lost: D3 Ref, D5 Web, D10 Web
    # open at as_of: D6 4000 Partner (closed after as_of), D7 unknown Web, D8 700 Web, D11 2500 Ref
    # "Trade show" (only D9, closed before P) does not appear; Partner appears from its open deal.
    check(out, "source", [
        ("Referral", 5000, 1, 1, 0.5, 5000, 5 / 9, 2500),
        ("Web", 4000, 2, 2, 0.5, 2000, 4 / 9, 700),
        ("Partner", 0, 0, 0, NAN, NAN, 0, 4000),
    ])
    assert "median_days_to_close" not in out.columns
    assert out["won_deals"].dtype.kind == "i" and all(isinstance(x, str) for x in out["source"])


def test_by_product_hides_groups_with_no_deal_in_view(ds):
    out = amount_by(ds, APRIL, by="product")
    # Enterprise is a category of the column (D9) but has no deal closed in P or open: left out
    check(out, "product", [
        ("Pro", 8000, 2, 1, 2 / 3, 4000, 8 / 9, 6500),
        ("Basic", 1000, 1, 2, 1 / 3, 1000, 1 / 9, 700),
    ])


def test_by_owner_per_rep_view(ds):
    out = amount_by(ds, APRIL, by="owner")
    check(out, "owner", [
        ("Ann", 6000, 2, 1, 2 / 3, 3000, 2 / 3, 2500),
        ("Bo", 3000, 1, 1, 0.5, 3000, 1 / 3, 700),
        ("Cy", 0, 0, 1, 0.0, NAN, 0, 4000),
    ])
    # median days to close of the deals won in P: Ann D1 40, D4 20 -> 30; Bo D2 10; Cy none
    np.testing.assert_allclose(out["median_days_to_close"], [30.0, 10.0, NAN], equal_nan=True)
    assert "median_days_to_close" not in amount_by(ds, APRIL, by="owner", with_days=False).columns


def test_as_of_inside_period(ds):
    out = amount_by(ds, Period("2024-04-01", "2024-04-30", as_of="2024-04-20 12:00"), by="source")
    # seen at 04-20 12:00: won D1 1000 Web, D2 3000 Web; lost D5 Web; D10 (Web) was open then.
    # open: D3 2000 Ref, D4 5000 Ref (closed later), D6 4000 Partner, D7 (unknown) Web, D10 1500 Web
    # ties at won_amount 0: by name (Partner before Referral)
    check(out, "source", [
        ("Web", 4000, 2, 1, 2 / 3, 2000, 1.0, 1500),
        ("Partner", 0, 0, 0, NAN, NAN, 0, 4000),
        ("Referral", 0, 0, 0, NAN, NAN, 0, 7000),
    ])


def test_empty_period_and_no_wins(ds):
    out = amount_by(ds, Period("2025-01-01", "2025-01-31"))
    # nothing closes in Jan 2025; open at 2025-02-01: D7 (unknown) Web, D8 700 Web, D11 2500 Referral
    check(out, "source", [
        ("Referral", 0, 0, 0, NAN, NAN, NAN, 2500),
        ("Web", 0, 0, 0, NAN, NAN, NAN, 700),
    ])


def test_other_columns_and_unknown_column(ds):
    out = amount_by(ds, APRIL, by="status")
    assert set(out["status"]) == {"won", "lost", "open"}
    with pytest.raises(ValueError, match="no deal column"):
        amount_by(ds, APRIL, by="region")


def test_mixed_currencies_refused(tmp_path):
    mixed = fk.load(write_mixed_currency(tmp_path / "m"))
    with pytest.raises(MixedCurrencyError, match="amount by source"):
        amount_by(mixed, APRIL)
    usd = amount_by(mixed.filter(currency="USD"), APRIL)
    assert usd["won_amount"].sum() == 6000.0           # D2 (EUR 3000) left out


# --- properties ---------------------------------------------------------------------------------

@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deal_tuples())
def test_amount_by_properties(tuples):
    ds = make_dataset(random_deals(tuples))
    d = ds.deals
    won = d[(d.status == "won") & APRIL.contains(d.closed_at) & (d.closed_at < APRIL.as_of)]
    total = won["amount"].sum()
    for by in ("source", "product", "owner"):
        out = amount_by(ds, APRIL, by=by)
        assert out["won_amount"].sum() == pytest.approx(total, rel=1e-9, abs=1e-6)
        assert out["won_deals"].sum() == len(won) == deal_size(ds, APRIL)["deals"]
        assert out[by].is_unique
        known = out["won_amount"].dropna()
        assert list(known) == sorted(known, reverse=True) and out["won_amount"].iloc[len(known):].isna().all()
        # Unknown (NaN) exactly where a group's won deals all have unknown amounts; 0 only without won deals.
        unknown = (out["won_deals"] > 0) & (out["won_amount_unknown"] == out["won_deals"])
        assert (out["won_amount"].isna() == unknown).all()
        assert out["won_amount_unknown"].sum() == won["amount"].isna().sum()
        rates = out["win_rate"].dropna()
        assert ((rates >= 0) & (rates <= 1)).all()
        if total > 0:
            assert out["share"].sum() == pytest.approx(1.0)
        else:
            assert out["share"].isna().all()
        closed = out["won_deals"].sum() + out["lost_deals"].sum()
        rate = win_rate(ds, APRIL)
        if rate is not None:
            assert rate == pytest.approx(out["won_deals"].sum() / closed)


def test_extra_column_with_empty_values_groups_them_as_not_set(tmp_path):
    from stages_hand_data import write_dataset
    folder = write_dataset(tmp_path / "region")
    lines = (folder / "deals.csv").read_text().splitlines()
    regions = {"D1": "North", "D2": "", "D7": "North"}
    out = [lines[0] + ",region"] + [f"{line},{regions.get(line.split(',')[0], '')}" for line in lines[1:]]
    (folder / "deals.csv").write_text("\n".join(out) + "\n")
    table = amount_by(fk.load(folder), Period("2024-01-01", "2024-01-31"), by="region")
    # Closed in January: D1 won 1000 (North), D2 lost (empty), D7 lost (North); open: D3, D4, D6, D8 (empty)
    rows = {r["region"]: r for r in table.to_dict("records")}
    assert set(rows) == {"North", "(not set)"}
    assert (rows["North"]["won_deals"], rows["North"]["lost_deals"]) == (1, 1)
    assert (rows["(not set)"]["lost_deals"], rows["(not set)"]["open_amount"]) == (1, 2000 + 800 + 700)


def test_breakdown_by_two_columns_keeps_ratios_per_combination(tmp_path):
    from stages_hand_data import write_dataset
    ds = fk.load(write_dataset(tmp_path / "hand"))
    jan = Period("2024-01-01", "2024-01-31")
    out = amount_by(ds, jan, by=["source", "owner"])
    rows = {(r["source"], r["owner"]): r for r in out.to_dict("records")}
    # Closed in January: D1 Web/Ann won 1000, D7 Web/Ann lost, D2 Referral/Bo lost.
    # Open at as_of: D3 Web/Ann 2000, D4 Event/Bo 800, D6 Referral/Cy 700, D8 Event/Cy (no amount).
    assert set(rows) == {("Web", "Ann"), ("Referral", "Bo"), ("Referral", "Cy"), ("Event", "Bo"), ("Event", "Cy")}
    web_ann = rows[("Web", "Ann")]
    assert (web_ann["won_deals"], web_ann["lost_deals"], web_ann["win_rate"]) == (1, 1, 0.5)
    assert (web_ann["won_amount"], web_ann["share"], web_ann["open_amount"]) == (1000, 1.0, 2000)
    assert rows[("Referral", "Bo")]["win_rate"] == 0.0 and rows[("Referral", "Cy")]["open_amount"] == 700
    assert list(out.columns[:2]) == ["source", "owner"] and out.iloc[0]["source"] == "Web"
    # Summed over owners, the breakdown gives the by-source table exactly.
    one = amount_by(ds, jan, by="source").set_index("source")
    two = out.groupby("source")[["won_amount", "won_deals", "lost_deals", "open_amount"]].sum()
    assert (two.loc[one.index] == one[["won_amount", "won_deals", "lost_deals", "open_amount"]]).all().all()
