"""Sums and means the engine computes do not depend on the order it adds the rows in.

A float sum's last digits depend on the order of the additions (1e16 + 1 + 1 is 1e16 added left to
right, 1e16 + 2 right to left), and a parallel engine (DuckDB) adds in no fixed order: at 1M deals
four calls of ``amount_by`` gave four won amounts. The engine adds amounts and days as exact
decimals (``engine.views.exact_sum`` / ``exact_mean``), so the hand data below, written in two row
orders, gives the same numbers both ways: the amounts' exact decimal sum, rounded once.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hand_io import write_folder

import funnelkit as fk
from funnelkit.metrics.breakdown import amount_by
from funnelkit.metrics.closing import days_to_close
from funnelkit.metrics.size import TRIM, deal_size, sales_velocity
from funnelkit.metrics.stage_time import time_in_stage
from funnelkit.period import Period
from engines import ENGINES, on_engine

APRIL = Period("2024-04-01", "2024-04-30")
STAGES = ["Lead", "Qualified", "Proposal"]
# Won in April, by Ann: a 1e14 deal then small ones (below half the float spacing at 1e14, 1/64),
# closed 1..8 seconds after creation except the big one (created 30 years before); open at as_of:
# the same kind of amounts.
WON = ["100000000000000", "0.005", "0.005", "0.005", "0.005", "0.001", "0.001", "0.001"]
OPEN = ["100000000000000", "0.005", "0.005", "0.005", "0.001"]


def _rows():
    rows, history = [], []
    for i, amount in enumerate(WON):
        created = "1994-04-10T00:00:00" if i == 0 else "2024-04-10T00:00:00"
        rows.append((f"W{i}", created, "won", f"2024-04-10T00:00:{i + 1:02d}", amount, "Web", "Basic", "Ann"))
        history.append((f"W{i}", "Qualified", "2024-04-10T00:00:00"))
    for i, amount in enumerate(OPEN):
        rows.append((f"O{i}", f"2024-04-1{i}T00:00:00", "open", "", amount, "Web", "Basic", "Ann"))
    return rows, history


@pytest.fixture(scope="module", params=ENGINES)
def two_orders(request, tmp_path_factory):
    """The same data set on the engine, rows as listed and reversed."""
    rows, history = _rows()
    out = []
    for name, order in (("listed", 1), ("reversed", -1)):
        folder = write_folder(tmp_path_factory.mktemp(name), rows[::order], history[::order], STAGES)
        out.append(on_engine(request.param, folder, request))
    return out


def _exact(amounts: list[str]) -> float:
    return float(sum(Decimal(a) for a in amounts))


def test_won_and_open_amounts_are_the_exact_decimal_sums(two_orders):
    got = [amount_by(ds, APRIL, by="owner").set_index("owner") for ds in two_orders]
    for out in got:
        # 1e14 + 0.023, nearest float 1e14 + 1/64; added left to right, each small amount rounds away: 1e14
        assert out.loc["Ann", "won_amount"] == _exact(WON) == 1e14 + 1 / 64
        assert out.loc["Ann", "open_amount"] == _exact(OPEN) == 1e14 + 1 / 64
        assert out.loc["Ann", "mean_size"] == _exact(WON) / len(WON)
    pd.testing.assert_frame_equal(got[0], got[1])


def test_deal_size_means_are_exact(two_orders):
    values = sorted(WON, key=Decimal)
    cut = math.floor(TRIM * len(values))
    kept = values[cut:len(values) - cut]
    for ds in two_orders:
        got = deal_size(ds, APRIL)
        assert got["mean"] == _exact(WON) / len(WON)
        assert got["trimmed_mean"] == _exact(kept) / len(kept)
    assert deal_size(two_orders[0], APRIL) == deal_size(two_orders[1], APRIL)


def test_mean_days_do_not_depend_on_row_order(two_orders):
    # days to close: about 10957 for W0, then 2..8 seconds; their exact mean, to float precision
    seconds = [(pd.Timestamp("2024-04-10T00:00:01") - pd.Timestamp("1994-04-10")).total_seconds()]
    seconds += [i + 1.0 for i in range(1, len(WON))]
    mean = math.fsum(s / 86_400.0 for s in seconds) / len(seconds)
    closing = [days_to_close(ds, APRIL) for ds in two_orders]
    velocity = [sales_velocity(ds, APRIL) for ds in two_orders]
    stage_time = [time_in_stage(ds, APRIL) for ds in two_orders]
    # to float precision: PostgreSQL turns a float into a decimal through its 15 significant digits
    for c, v in zip(closing, velocity):
        assert c.set_index("status").loc["won", "mean_days"] == pytest.approx(mean, rel=1e-14)
        assert v["mean_days_to_win"] == pytest.approx(mean, rel=1e-14)
    pd.testing.assert_frame_equal(closing[0], closing[1], check_exact=True)
    assert velocity[0] == velocity[1]
    pd.testing.assert_frame_equal(stage_time[0], stage_time[1], check_exact=True)
    assert np.isfinite(stage_time[0]["mean_days"]).any()


def test_amounts_too_small_for_the_decimals_keep_their_float_sum(tmp_path):
    # Every won amount below 10**-10 / 2: as decimals they would add to 0 (and amount_by's shares to
    # 0); their float sum is kept. A zero total of larger amounts (5 + -5) stays exactly 0.
    tiny = [("T1", "2024-04-02T00:00:00", "won", "2024-04-10T00:00:00", "1.04e-167", "Web", "Basic", "Ann"),
            ("T2", "2024-04-02T00:00:00", "won", "2024-04-11T00:00:00", "3e-12", "Web", "Basic", "Bo")]
    history = [(r[0], "Lead", r[1]) for r in tiny]
    ds = fk.load(write_folder(tmp_path / "tiny", tiny, history, STAGES))
    got = amount_by(ds, APRIL, by="owner").set_index("owner")
    assert got.loc["Ann", "won_amount"] == 1.04e-167 and got.loc["Bo", "won_amount"] == 3e-12
    assert got["share"].sum() == pytest.approx(1.0)
    assert deal_size(ds, APRIL)["mean"] == (1.04e-167 + 3e-12) / 2
