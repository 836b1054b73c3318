"""Hand-made data of the landing-forecast tests (and docs/metrics.md, "Will we hit the number").

One stage ``A`` (then ``B``, never reached). Period P = 2024Q2 (2024-04-01..2024-06-30), seen at
``at`` = 2024-05-01. Every amount is 1000 (so every deal is in the same size quartile).

====  ==========  ======  ==========  =========================================================
deal  created     status  closed      role
====  ==========  ======  ==========  =========================================================
H1    2024-01-01  won     2024-01-21  evidence: 20 days in A, won 20 days after entry (a hit)
H2    2024-01-05  lost    2024-02-04  evidence: 30 days in A, lost
H3    2024-01-10  won     2024-04-10  evidence: won 91 days after entry (outside the window);
                                      won in P before ``at``: won so far
H4    2024-02-01  open                evidence: still in A (90 days at ``at``)
N1    2024-02-10  won     2024-03-01  evidence (a hit) and the new-deal term of 2024Q1
W1    2024-03-01  won     2024-04-15  won so far; evidence only for a deal just entering A
O1    2024-04-21  open                the open deal forecast: 10 days in A at ``at``
====  ==========  ======  ==========  =========================================================

For O1 (d = 10 days, window [10, 71) days after entry, since P ends 61 days after ``at``): the
similar visits whose window had passed by ``at`` are H1, H2, H3, H4 and N1 (5); H1 and N1 were won
in the window: p_in_period = 2/5 = 0.4 (prior_strength 0, no group adjustments). H4 (90 days in A)
has no similar visit whose window had passed, so it takes the share for a deal just entering A:
H1, H2, H3, H4, N1 and W1 (entered by 2024-03-01), of which H1, N1 and W1 won within 61 days: 3/6.
"""

from __future__ import annotations

from hand_io import write_folder

import funnelkit as fk

STAGES = ["A", "B"]

DEALS = [
    ("H1", "2024-01-01", "won", "2024-01-21", "1000", "Web", "P", "Ann"),
    ("H2", "2024-01-05", "lost", "2024-02-04", "1000", "Web", "P", "Ann"),
    ("H3", "2024-01-10", "won", "2024-04-10", "1000", "Web", "P", "Bo"),
    ("H4", "2024-02-01", "open", "", "1000", "Web", "P", "Bo"),
    ("N1", "2024-02-10", "won", "2024-03-01", "1000", "Web", "P", "Ann"),
    ("W1", "2024-03-01", "won", "2024-04-15", "1000", "Web", "P", "Bo"),
    ("O1", "2024-04-21", "open", "", "1000", "Web", "P", "Ann"),
]

HISTORY = [(d[0], "A", d[1]) for d in DEALS]


def landing_dataset(folder):
    return fk.load(write_folder(folder, DEALS, HISTORY, STAGES))


def categories_dataset(folder):
    """The same deals with forecast categories (H4 Pipeline, O1 Commit), O1 won on 2024-06-10 and a
    deal Z created after P (so P has ended in the data)."""
    from hand_io import DEAL_HEADER
    cats = {"H4": "Pipeline", "O1": "Commit"}
    deals = [(*d[:2], "won", "2024-06-10", *d[4:]) if d[0] == "O1" else d for d in DEALS]
    deals.append(("Z", "2024-07-05", "open", "", "1000", "Web", "P", "Ann"))
    rows = [(*d, cats.get(d[0], "")) for d in deals]
    history = [(d[0], "A", d[1]) for d in deals]
    return fk.load(write_folder(folder, rows, history, STAGES, header=[*DEAL_HEADER, "forecast_category"]))
