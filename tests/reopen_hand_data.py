"""Hand-made data of the earlier-close and reopening tests (and docs/metrics.md section 9, "Earlier
closes and reopenings").

Pipeline: Lead -> Qualified -> Proposal. The interval is [2026-04-01, 2026-07-01). deals.csv holds each
deal's final state; the change log's ``status`` rows hold the earlier closes and the reopenings.

====  ==========  =====================  =====================================  ==============================
deal  created     final (deals.csv)      status changes (deal_changes)          amount (deal_changes)
====  ==========  =====================  =====================================  ==============================
P     2026-03-01  open, 1000             lost 04-10, open 05-01                 (none)
Q     2026-02-01  open, 1500             lost 03-15, open 04-20                 02-01: 1200, 03-20: 1500
R     2026-03-10  won 2026-06-10, 2000   lost 03-25, open 05-05                 (none)
S     2026-03-05  open, 900              lost 05-15, open 06-01                 03-05: 500, 05-15: 700,
                                                                                06-01: 900
T     2026-03-01  open, 300              (none)                                 (none)
V     2026-02-10  open, 600              lost 03-01, open 07-10                 (none)
====  ==========  =====================  =====================================  ==============================

Stage entries: every deal enters Lead at its creation; R enters Proposal on 05-20, S Qualified on
05-15 (the instant of its amount change and its close).
"""

from __future__ import annotations

from pathlib import Path

from hand_io import write_folder
from movement_hand_data import write_changes

STAGES = ["Lead", "Qualified", "Proposal"]

DEALS = [
    ("P", "2026-03-01", "open", "", "1000", "Web", "Basic", "Ann"),
    ("Q", "2026-02-01", "open", "", "1500", "Web", "Pro", "Bo"),
    ("R", "2026-03-10", "won", "2026-06-10", "2000", "Referral", "Pro", "Ann"),
    ("S", "2026-03-05", "open", "", "900", "Partner", "Basic", "Cy"),
    ("T", "2026-03-01", "open", "", "300", "Web", "Basic", "Bo"),
    ("V", "2026-02-10", "open", "", "600", "Web", "Pro", "Cy"),
]

HISTORY = [
    ("P", "Lead", "2026-03-01"), ("Q", "Lead", "2026-02-01"),
    ("R", "Lead", "2026-03-10"), ("R", "Proposal", "2026-05-20"),
    ("S", "Lead", "2026-03-05"), ("S", "Qualified", "2026-05-15"),
    ("T", "Lead", "2026-03-01"), ("V", "Lead", "2026-02-10"),
]

CHANGES = [
    ("P", "2026-04-10", "status", "lost"),
    ("P", "2026-05-01", "status", "open"),
    ("Q", "2026-02-01", "amount", "1200"),
    ("Q", "2026-03-15", "status", "lost"),
    ("Q", "2026-03-20", "amount", "1500"),
    ("Q", "2026-04-20", "status", "open"),
    ("R", "2026-03-25", "status", "lost"),
    ("R", "2026-05-05", "status", "open"),
    ("S", "2026-03-05", "amount", "500"),
    ("S", "2026-05-15", "amount", "700"),
    ("S", "2026-05-15", "status", "lost"),
    ("S", "2026-06-01", "amount", "900"),
    ("S", "2026-06-01", "status", "open"),
    ("V", "2026-03-01", "status", "lost"),
    ("V", "2026-07-10", "status", "open"),
]

START, END = "2026-04-01", "2026-07-01"


def write_reopen(folder: Path, *, changes=CHANGES, deals=DEALS) -> Path:
    """The hand data set; ``changes=None`` writes it without deal_changes.csv."""
    write_folder(folder, deals, HISTORY, STAGES)
    if changes is not None:
        write_changes(folder, changes)
    return Path(folder)
