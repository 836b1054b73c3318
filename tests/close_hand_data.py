"""Hand-made data of the days-to-close, deal-size and amount-by tests (and docs/metrics.md sections 3-6).

Pipeline: Lead -> Qualified -> Proposal. Period P = April 2024, as_of = 2024-05-01 00:00.

====  ==========  ======  ================  ======  ==========  ==========  =====  ===================
deal  created     status  closed            amount  source      product     owner  note
====  ==========  ======  ================  ======  ==========  ==========  =====  ===================
D1    2024-03-01  won     2024-04-10          1000  Web         Basic       Ann    created before P
D2    2024-04-02  won     2024-04-12          3000  Web         Pro         Bo
D3    2024-04-05  lost    2024-04-26          2000  Referral    Basic       Ann
D4    2024-04-01  won     2024-04-21          5000  Referral    Pro         Ann
D5    2024-04-10  lost    2024-04-14           500  Web         Basic       Bo
D6    2024-04-20  won     2024-05-05          4000  Partner     Pro         Cy     closed after as_of
D7    2024-04-15  open                      (none)  Web         Basic       Bo     amount unknown
D8    2024-04-25  open                         700  Web         Basic       Bo
D9    2024-02-01  won     2024-03-15          9000  Trade show  Enterprise  Dee    closed before P
D10   2024-03-20  lost    2024-04-30 12:00    1500  Web         Pro         Cy     created before P
D11   2024-04-28  open                        2500  Referral    Pro         Ann
D12   2024-05-03  won     2024-05-10          8000  Partner     Pro         Cy     created after as_of
====  ==========  ======  ================  ======  ==========  ==========  =====  ===================

The deal-size set (``write_sizes``): P = 2024-07-01..2024-09-30; won in July 100, 200, 300, 400;
won in August 500, 600, 700, 800, 2000, 50000; one lost in August (1000); one won on 2024-10-02
(after P, 7). September has no deals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from hand_io import DEAL_HEADER, write_folder

from funnelkit.contract import Pipeline
from funnelkit.dataset import Dataset

STAGES = ["Lead", "Qualified", "Proposal"]

DEALS = [
    ("D1", "2024-03-01", "won", "2024-04-10", "1000", "Web", "Basic", "Ann"),
    ("D2", "2024-04-02", "won", "2024-04-12", "3000", "Web", "Pro", "Bo"),
    ("D3", "2024-04-05", "lost", "2024-04-26", "2000", "Referral", "Basic", "Ann"),
    ("D4", "2024-04-01", "won", "2024-04-21", "5000", "Referral", "Pro", "Ann"),
    ("D5", "2024-04-10", "lost", "2024-04-14", "500", "Web", "Basic", "Bo"),
    ("D6", "2024-04-20", "won", "2024-05-05", "4000", "Partner", "Pro", "Cy"),
    ("D7", "2024-04-15", "open", "", "", "Web", "Basic", "Bo"),
    ("D8", "2024-04-25", "open", "", "700", "Web", "Basic", "Bo"),
    ("D9", "2024-02-01", "won", "2024-03-15", "9000", "Trade show", "Enterprise", "Dee"),
    ("D10", "2024-03-20", "lost", "2024-04-30T12:00:00", "1500", "Web", "Pro", "Cy"),
    ("D11", "2024-04-28", "open", "", "2500", "Referral", "Pro", "Ann"),
    ("D12", "2024-05-03", "won", "2024-05-10", "8000", "Partner", "Pro", "Cy"),
]
HISTORY = [("D1", "Qualified", "2024-03-05"), ("D2", "Proposal", "2024-04-05"),
           ("D4", "Qualified", "2024-04-03")]


def _write(folder: Path, deals, history, header=DEAL_HEADER) -> Path:
    return write_folder(folder, deals, history, STAGES, header=header)


def write_dataset(folder: Path) -> Path:
    """The April 2024 hand data set."""
    return _write(folder, DEALS, HISTORY)


def write_mixed_currency(folder: Path) -> Path:
    """The hand data set with a currency column: D2 in EUR, the rest in USD."""
    deals = [row + ("EUR" if row[0] == "D2" else "USD",) for row in DEALS]
    return _write(folder, deals, HISTORY, DEAL_HEADER + ["currency"])


SIZES_WON_JULY = [100, 200, 300, 400]
SIZES_WON_AUGUST = [500, 600, 700, 800, 2000, 50000]


def write_sizes(folder: Path) -> Path:
    """The deal-size set: ten deals won in P = 2024-07-01..2024-09-30, one lost, one won after P."""
    rows = []
    for i, a in enumerate(SIZES_WON_JULY):
        rows.append((f"J{i}", "2024-06-01", "won", f"2024-07-{10 + i}", str(a), "Web", "Basic", "Ann"))
    for i, a in enumerate(SIZES_WON_AUGUST):
        rows.append((f"A{i}", "2024-06-01", "won", f"2024-08-{10 + i}", str(a), "Web", "Pro", "Bo"))
    rows.append(("L0", "2024-06-01", "lost", "2024-08-20", "1000", "Web", "Pro", "Bo"))
    rows.append(("X0", "2024-06-01", "won", "2024-10-02", "7", "Web", "Pro", "Bo"))
    return _write(folder, rows, [("J0", "Lead", "2024-06-01")])


def make_dataset(deals: pd.DataFrame, stages=("Lead", "Won?")) -> Dataset:
    """A Dataset straight from a deals table (for property tests; no files).

    ``deals`` needs deal_id, created_at, status, closed_at, amount, source, product, owner; the
    label columns and status become categoricals as the loader makes them. The stage history holds
    one first-stage entry per deal at its creation.
    """
    d = deals.copy()
    d["status"] = pd.Categorical(d["status"], categories=["open", "won", "lost"])
    for col in ("source", "product", "owner"):
        d[col] = d[col].astype("category")
    hist = pd.DataFrame({
        "deal_id": d["deal_id"].to_numpy(),
        "stage": pd.Categorical.from_codes(np.zeros(len(d), dtype=int), categories=list(stages),
                                           ordered=True),
        "stage_index": np.zeros(len(d), dtype="int16"),
        "entered_at": d["created_at"].to_numpy(),
    })
    return Dataset(deals=d.reset_index(drop=True), stage_history=hist, pipeline=Pipeline(tuple(stages)))


def random_deals(draw_list) -> pd.DataFrame:
    """Deals from hypothesis-drawn tuples (created day, status, close after days, amount or None,
    source, product, owner); day 0 is 2024-03-01, each tuple's hour offsets spread the times."""
    base = pd.Timestamp("2024-03-01")
    rows = []
    for i, (created, status, close_after, amount, source, product, owner) in enumerate(draw_list):
        c = base + pd.Timedelta(hours=created)
        closed = c + pd.Timedelta(hours=close_after) if status != "open" else pd.NaT
        rows.append({"deal_id": f"R{i}", "created_at": c, "status": status, "closed_at": closed,
                     "amount": np.nan if amount is None else float(amount), "source": source,
                     "product": product, "owner": owner})
    d = pd.DataFrame(rows, columns=DEAL_HEADER)
    d["created_at"] = pd.to_datetime(d["created_at"])
    d["closed_at"] = pd.to_datetime(d["closed_at"])
    return d


def deal_tuples():
    """A hypothesis strategy for :func:`random_deals` input."""
    from hypothesis import strategies as st
    deal = st.tuples(
        st.integers(0, 24 * 120), st.sampled_from(["open", "won", "lost"]), st.integers(0, 24 * 90),
        st.one_of(st.none(), st.integers(0, 10**6), st.floats(0, 1e7, allow_nan=False)),
        st.sampled_from(["Web", "Referral", "Partner"]), st.sampled_from(["Basic", "Pro"]),
        st.sampled_from(["Ann", "Bo", "Cy", "Dee"]))
    return st.lists(deal, min_size=0, max_size=40)
