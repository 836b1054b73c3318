"""Hand-made data of the change-log, waterfall and slippage tests (and docs/metrics.md section 9).

Pipeline: Lead -> Qualified -> Proposal. The interval is [2026-04-01, 2026-07-01); the window is the
quarter 2026Q2 (expected close date 2026-04-01..2026-06-30).

====  ==========  ======  ==========  =============================  ================================
deal  created     status  closed      amount (deal_changes)          expected close (deal_changes)
====  ==========  ======  ==========  =============================  ================================
A     2026-03-01  open                1000                           2026-05-15 (deals.csv only)
B     2026-04-10  won     2026-05-20  2000                           2026-05-30 (deals.csv only)
C     2026-03-05  open                3000                           03-05: 06-10, 04-15: 08-01 (push),
                                                                     05-10: 06-20 (pulled back in)
D     2026-02-01  open                02-01: 500, 04-20: 800         02-01: 09-15, 05-05: 06-01
E     2026-03-10  lost    2026-06-05  03-10: 4000, 06-05: 3500       03-10: 06-30
F     2026-03-20  open                03-20: 1000, 04-25: 1500       2026-05-31 (deals.csv only)
G     2026-04-05  open                700                            (none)
H     2026-01-10  won     2026-03-20  900                            (none)
J     2026-03-01  won     2026-07-15  600                            2026-06-15 (deals.csv only)
K     2026-03-25  won     2026-06-25  1200                           2026-06-30 (deals.csv only)
====  ==========  ======  ==========  =============================  ================================

E's amount change is at the instant of its close (2026-06-05 00:00): it closed with 3500.
"""

from __future__ import annotations

import csv
from pathlib import Path

from hand_io import write_folder

STAGES = ["Lead", "Qualified", "Proposal"]
HEADER = ["deal_id", "created_at", "status", "closed_at", "amount", "source", "product", "owner",
          "expected_close_date", "forecast_category", "lost_reason"]

DEALS = [
    ("A", "2026-03-01", "open", "", "1000", "Web", "Basic", "Ann", "2026-05-15", "Commit", ""),
    ("B", "2026-04-10", "won", "2026-05-20", "2000", "Web", "Pro", "Bo", "2026-05-30", "Closed", ""),
    ("C", "2026-03-05", "open", "", "3000", "Referral", "Pro", "Ann", "2026-06-20", "Best Case", ""),
    ("D", "2026-02-01", "open", "", "800", "Web", "Basic", "Bo", "2026-06-01", "Pipeline", ""),
    ("E", "2026-03-10", "lost", "2026-06-05", "3500", "Referral", "Basic", "Ann", "", "Omitted", "Price"),
    ("F", "2026-03-20", "open", "", "1500", "Web", "Pro", "Bo", "2026-05-31", "Pipeline", ""),
    ("G", "2026-04-05", "open", "", "700", "Partner", "Basic", "Cy", "", "", ""),
    ("H", "2026-01-10", "won", "2026-03-20", "900", "Partner", "Pro", "Cy", "", "Closed", ""),
    ("J", "2026-03-01", "won", "2026-07-15", "600", "Web", "Basic", "Ann", "2026-06-15", "Commit", ""),
    ("K", "2026-03-25", "won", "2026-06-25", "1200", "Web", "Basic", "Cy", "2026-06-30", "Commit", ""),
]

HISTORY = [
    ("A", "Lead", "2026-03-01"), ("A", "Qualified", "2026-03-10"),
    ("B", "Lead", "2026-04-10"), ("B", "Proposal", "2026-05-01"),
    ("C", "Lead", "2026-03-05"), ("C", "Qualified", "2026-04-20"),
    ("D", "Lead", "2026-02-01"),
    ("E", "Lead", "2026-03-10"), ("E", "Proposal", "2026-04-10"),
    ("F", "Lead", "2026-03-20"),
    ("G", "Lead", "2026-04-05"),
    ("H", "Lead", "2026-01-10"),
    ("J", "Qualified", "2026-03-01"),
]

CHANGES = [
    ("C", "2026-03-05", "expected_close_date", "2026-06-10"),
    ("C", "2026-04-15", "expected_close_date", "2026-08-01"),
    ("C", "2026-05-10", "expected_close_date", "2026-06-20"),
    ("D", "2026-02-01", "amount", "500"),
    ("D", "2026-04-20", "amount", "800"),
    ("D", "2026-02-01", "expected_close_date", "2026-09-15"),
    ("D", "2026-05-05", "expected_close_date", "2026-06-01"),
    ("E", "2026-03-10", "amount", "4000"),
    ("E", "2026-06-05", "amount", "3500"),
    ("E", "2026-03-10", "expected_close_date", "2026-06-30"),
    ("F", "2026-03-20", "amount", "1000"),
    ("F", "2026-04-25", "amount", "1500"),
    ("C", "2026-04-15", "forecast_category", "Pipeline"),
    ("C", "2026-05-10", "forecast_category", "Best Case"),
]

START, END = "2026-04-01", "2026-07-01"


def write_changes(folder: Path, rows=CHANGES) -> None:
    with open(Path(folder) / "deal_changes.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["deal_id", "changed_at", "field", "value"])
        w.writerows(rows)


def write_movement(folder: Path, *, changes=CHANGES, deals=DEALS) -> Path:
    """The hand data set; ``changes=None`` writes it without deal_changes.csv."""
    write_folder(folder, deals, HISTORY, STAGES, header=HEADER)
    if changes is not None:
        write_changes(folder, changes)
    return Path(folder)
