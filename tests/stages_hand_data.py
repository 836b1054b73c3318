"""The hand-made data set of the stage and time-in-stage tests (and of docs/metrics.md sections 1-2).

Pipeline: Lead -> Qualified -> Proposal -> Negotiation. Period P = January 2024, as_of = 2024-02-01.

====  ==========  ======  ==========  ======  =====================================================
deal  created     status  closed      amount  stage entries
====  ==========  ======  ==========  ======  =====================================================
D1    2024-01-02  won     2024-01-20  1000    Lead 01-02, Qualified 01-05, Proposal 01-10
D2    2023-12-20  lost    2024-01-12   500    Lead 12-20, Proposal 12-28 (skips Qualified)
D3    2024-01-03  open                2000    Lead 01-03, Qualified 01-06, Proposal 01-09,
                                              Qualified 01-16 (moves back)
D4    2024-01-10  won     2024-02-10   800    Lead 01-10 and Qualified 01-10 (tie),
                                              Negotiation 01-25 (skips Proposal); closed after as_of
D5    2024-02-05  open                 300    Lead 02-05 (created after as_of)
D6    2023-11-01  open                 700    Lead 11-01, Qualified 11-15
D7    2024-01-15  lost    2024-01-18   400    Lead 01-15
D8    2024-01-20 12:00 open         (none)    Lead 01-20 12:00
====  ==========  ======  ==========  ======  =====================================================
"""

from __future__ import annotations

from pathlib import Path

from hand_io import write_folder

STAGES = ["Lead", "Qualified", "Proposal", "Negotiation"]

DEALS = [
    # deal_id, created_at, status, closed_at, amount, source, product, owner
    ("D1", "2024-01-02", "won", "2024-01-20", "1000", "Web", "A", "Ann"),
    ("D2", "2023-12-20", "lost", "2024-01-12", "500", "Referral", "B", "Bo"),
    ("D3", "2024-01-03", "open", "", "2000", "Web", "A", "Ann"),
    ("D4", "2024-01-10", "won", "2024-02-10", "800", "Event", "B", "Bo"),
    ("D5", "2024-02-05", "open", "", "300", "Web", "A", "Ann"),
    ("D6", "2023-11-01", "open", "", "700", "Referral", "A", "Cy"),
    ("D7", "2024-01-15", "lost", "2024-01-18", "400", "Web", "B", "Ann"),
    ("D8", "2024-01-20T12:00:00", "open", "", "", "Event", "A", "Cy"),
]

HISTORY = [
    ("D1", "Lead", "2024-01-02"), ("D1", "Qualified", "2024-01-05"), ("D1", "Proposal", "2024-01-10"),
    ("D2", "Lead", "2023-12-20"), ("D2", "Proposal", "2023-12-28"),
    ("D3", "Lead", "2024-01-03"), ("D3", "Qualified", "2024-01-06"), ("D3", "Proposal", "2024-01-09"),
    ("D3", "Qualified", "2024-01-16"),
    # the tie is listed Qualified first on purpose: the loader orders ties by stage order
    ("D4", "Qualified", "2024-01-10"), ("D4", "Lead", "2024-01-10"), ("D4", "Negotiation", "2024-01-25"),
    ("D5", "Lead", "2024-02-05"),
    ("D6", "Lead", "2023-11-01"), ("D6", "Qualified", "2023-11-15"),
    ("D7", "Lead", "2024-01-15"),
    ("D8", "Lead", "2024-01-20T12:00:00"),
]



def write_dataset(folder: Path, deals=DEALS, history=HISTORY, stages=STAGES, currency="USD", **kw) -> Path:
    """Write deals.csv, stage_history.csv and pipeline.yml into ``folder`` (created)."""
    return write_folder(folder, deals, history, stages, currency=currency, **kw)
