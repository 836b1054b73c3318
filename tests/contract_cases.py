"""A small clean data set for the loader tests, and one broken variant per contract problem.

``write_dataset(folder, deals=..., history=..., pipeline=...)`` writes the three files from lists of
CSV lines (header included) so a test can break exactly one line. ``ROW_CASES`` lists, per problem
in issue 2, the line to replace and the problem it must give (file, line, column, value, reason).
"""

from __future__ import annotations

from pathlib import Path

PIPELINE = "name: Hand pipeline\ncurrency: EUR\nstages:\n  - Lead\n  - Qualified\n  - Proposal\n"

DEAL_HEADER = "deal_id,created_at,status,closed_at,amount,source,product,owner"
DEALS = [
    DEAL_HEADER,
    "D1,2024-01-02,won,2024-01-20,1000,Web,Set,Ann",          # line 2
    "D2,2024-01-03,lost,2024-01-12,500,Referral,Set,Bo",      # line 3
    "D3,2024-01-04,open,,2000,Web,Collection,Ann",           # line 4
    "D4,2024-01-05T10:00:00,open,,,Event,Set,Cy",            # line 5 (no amount yet: fine)
]
HISTORY_HEADER = "deal_id,stage,entered_at"
HISTORY = [
    HISTORY_HEADER,
    "D1,Lead,2024-01-02",            # line 2
    "D1,Qualified,2024-01-05",       # line 3
    "D1,Proposal,2024-01-10",        # line 4
    "D2,Lead,2024-01-03",            # line 5
    "D3,Lead,2024-01-04",            # line 6
    "D3,Qualified,2024-01-06",       # line 7
    "D4,Lead,2024-01-05T10:00:00",   # line 8
]


def write_dataset(folder: Path, deals=None, history=None, pipeline=None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "deals.csv").write_text("\n".join(DEALS if deals is None else deals) + "\n", encoding="utf-8")
    (folder / "stage_history.csv").write_text(
        "\n".join(HISTORY if history is None else history) + "\n", encoding="utf-8")
    (folder / "pipeline.yml").write_text(PIPELINE if pipeline is None else pipeline, encoding="utf-8")
    return folder


def replaced(lines: list[str], line_no: int, text: str) -> list[str]:
    """``lines`` with file line ``line_no`` (header = 1) replaced by ``text``."""
    out = list(lines)
    out[line_no - 1] = text
    return out


# (id, file, line number to replace, new text, expected column, expected value, reason fragment)
ROW_CASES = [
    ("duplicate deal_id", "deals.csv", 4, "D1,2024-01-04,open,,2000,Web,Collection,Ann",
     "deal_id", "D1", "duplicate deal_id (first seen on line 2)"),
    ("empty deal_id", "deals.csv", 4, ",2024-01-04,open,,2000,Web,Collection,Ann",
     "deal_id", "", "deal_id is empty"),
    ("unknown status", "deals.csv", 4, "D3,2024-01-04,pending,,2000,Web,Collection,Ann",
     "status", "pending", "unknown status"),
    ("unparseable created_at", "deals.csv", 4, "D3,04/01/2024,open,,2000,Web,Collection,Ann",
     "created_at", "04/01/2024", "cannot parse the date"),
    ("empty created_at", "deals.csv", 4, "D3,,open,,2000,Web,Collection,Ann",
     "created_at", "", "created_at is required"),
    ("unparseable closed_at", "deals.csv", 2, "D1,2024-01-02,won,2024-02-31,1000,Web,Set,Ann",
     "closed_at", "2024-02-31", "cannot parse the date"),
    ("unparseable amount", "deals.csv", 2, "D1,2024-01-02,won,2024-01-20,12abc,Web,Set,Ann",
     "amount", "12abc", "cannot parse the amount as a number"),
    ("european amount", "deals.csv", 2, 'D1,2024-01-02,won,2024-01-20,"1.000,50",Web,Set,Ann',
     "amount", "1.000,50", "cannot parse the amount as a number"),
    ("negative amount", "deals.csv", 2, "D1,2024-01-02,won,2024-01-20,-5,Web,Set,Ann",
     "amount", "-5", "amount is negative"),
    ("won without closed_at", "deals.csv", 2, "D1,2024-01-02,won,,1000,Web,Set,Ann",
     "closed_at", "", "a won deal needs closed_at"),
    ("lost without closed_at", "deals.csv", 3, "D2,2024-01-03,LOST,,500,Referral,Set,Bo",
     "closed_at", "", "a lost deal needs closed_at"),
    ("open with closed_at", "deals.csv", 4, "D3,2024-01-04,open,2024-01-09,2000,Web,Collection,Ann",
     "closed_at", "2024-01-09", "an open deal must not have closed_at"),
    ("closed before created", "deals.csv", 3, "D2,2024-01-03,lost,2024-01-01,500,Referral,Set,Bo",
     "closed_at", "2024-01-01", "closed_at is before created_at (2024-01-03)"),
    ("won without amount", "deals.csv", 2, "D1,2024-01-02,won,2024-01-20,,Web,Set,Ann",
     "amount", "", "amount is empty on a won deal"),
    ("stage not in pipeline", "stage_history.csv", 3, "D1,Qualifed,2024-01-05",
     "stage", "Qualifed", "stage not in pipeline.yml (stages: Lead, Qualified, Proposal)"),
    ("entry for unknown deal", "stage_history.csv", 6, "D9,Lead,2024-01-04",
     "deal_id", "D9", "stage entry for a deal not in deals.csv"),
    ("entry before created_at", "stage_history.csv", 7, "D3,Qualified,2024-01-03",
     "entered_at", "2024-01-03", "stage entry before the deal's created_at (2024-01-04)"),
    ("entry after closed_at", "stage_history.csv", 4, "D1,Proposal,2024-01-21",
     "entered_at", "2024-01-21", "stage entry after the deal's closed_at (2024-01-20)"),
    ("unparseable entered_at", "stage_history.csv", 7, "D3,Qualified,yesterday",
     "entered_at", "yesterday", "cannot parse the date"),
    ("empty entered_at", "stage_history.csv", 7, "D3,Qualified,",
     "entered_at", "", "entered_at is required"),
    ("empty history deal_id", "stage_history.csv", 7, ",Qualified,2024-01-06",
     "deal_id", "", "deal_id is empty"),
    # Issue 9: values that must not be silently reinterpreted.
    ("foreign currency mark", "deals.csv", 2, "D1,2024-01-02,won,2024-01-20,$1000,Web,Set,Ann",
     "amount", "$1000", "the amount's currency mark ($) is not the deal's currency (EUR, from pipeline.yml)"),
    ("foreign currency code", "deals.csv", 3, "D2,2024-01-03,lost,2024-01-12,JPY 1000000,Referral,Set,Bo",
     "amount", "JPY 1000000", "the amount's currency mark (JPY) is not the deal's currency (EUR"),
    ("accounting negative", "deals.csv", 2, "D1,2024-01-02,won,2024-01-20,(-5),Web,Set,Ann",
     "amount", "(-5)", "amount is negative (parentheses are accounting notation for a negative amount)"),
    ("amount too large", "deals.csv", 2, "D1,2024-01-02,won,2024-01-20,1e308,Web,Set,Ann",
     "amount", "1e308", "amount is 1,000,000,000,000,000 or more"),
    ("year-month date", "deals.csv", 4, "D3,2024-01,open,,2000,Web,Collection,Ann",
     "created_at", "2024-01", "a partial date (a year or a year and month, not a day)"),
    ("year-only date", "stage_history.csv", 7, "D3,Qualified,2024",
     "entered_at", "2024", "a partial date"),
    ("NUL byte in a label", "deals.csv", 3, "D2,2024-01-03,lost,2024-01-12,500,Referral,Set,Bo\0",
     "owner", "Bo\0", "the value contains a NUL byte"),
    ("NUL byte in an id", "stage_history.csv", 5, "D2\0,Lead,2024-01-03",
     "deal_id", "D2\0", "the value contains a NUL byte"),
]


def case_files(case) -> dict:
    """The deals and history lines for one ROW_CASES entry."""
    _, file, line, text, *_ = case
    if file == "deals.csv":
        return {"deals": replaced(DEALS, line, text), "history": HISTORY}
    return {"deals": DEALS, "history": replaced(HISTORY, line, text)}
