"""Nothing lost, nothing silently reinterpreted (issue 9): each case is built here, row by row, as a
small Salesforce / HubSpot / table export, and its outcome is known by hand."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from funnelkit.cli import main
from funnelkit.importers import import_export
from funnelkit.loading import load
from funnelkit.metrics import close_time_survival, days_to_close, win_rate
from funnelkit.metrics.breakdown import amount_by
from funnelkit.period import Period
from funnelkit.validation import DataError

OPP_HEAD = ["Id", "Name", "StageName", "Amount", "Probability", "CloseDate", "Type", "LeadSource", "IsClosed",
            "IsWon", "OwnerId", "CreatedDate", "CurrencyIsoCode", "LastModifiedDate"]
HIST_HEAD = ["Id", "OpportunityId", "StageName", "Amount", "Probability", "CloseDate", "CreatedDate"]


def write_csv(path: Path, head: list[str], rows: list[list[str]], encoding="utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        w.writerow(head)
        w.writerows(rows)
    return path


def opp(i, stage, amount, close, closed, won, created, cur="EUR", prob="10", modified=None, **extra):
    return [f"006A{i}", f"Café {i}", stage, amount, prob, close, "New Business", "Web", closed, won, "005U1",
            created, cur, modified or created]


def hist(j, i, stage, at, amount="1000", prob="10", close="2024-06-30"):
    return [f"008H{j}", f"006A{i}", stage, amount, prob, close, at]


def hubspot_export(folder: Path, head: str, rows: list[str]) -> Path:
    """A HubSpot deals export taken on 2024-05-01 (the date is in its name)."""
    src = folder / "deals-2024-05-01.csv"
    src.write_text("\n".join([head] + rows) + "\n", encoding="utf-8")
    return src


@pytest.fixture
def signed_before_entered(tmp_path):
    """Six opportunities; 3 and 4 were signed before they were entered into Salesforce."""
    o = write_csv(tmp_path / "Opportunity.csv", OPP_HEAD, [
        opp(1, "Closed Won", "1000", "2024-02-15", "true", "true", "2024-01-05T09:00:00.000Z"),
        opp(2, "Closed Lost", "500", "2024-03-01", "true", "false", "2024-01-10T09:00:00.000Z"),
        # signed 2024-03-20, entered 2024-04-05: 16 days before its creation
        opp(3, "Closed Won", "4000", "2024-03-20", "true", "true", "2024-04-05T10:00:00.000Z"),
        # signed 2024-02-01, entered 2024-03-30: 58 days before
        opp(4, "Closed Won", "2500.5", "2024-02-01", "true", "true", "2024-03-30T10:00:00.000Z"),
        opp(5, "Qualification", "700", "2024-07-31", "false", "false", "2024-02-01T09:00:00.000Z"),
        opp(6, "Closed Won", "300", "2024-03-10", "true", "true", "2024-02-20T09:00:00.000Z"),
    ], encoding="cp1252")
    h = write_csv(tmp_path / "OpportunityHistory.csv", HIST_HEAD, [
        hist(1, 1, "Prospecting", "2024-01-05T09:00:00.000Z"),
        hist(2, 1, "Qualification", "2024-01-20T09:00:00.000Z"),
        hist(3, 1, "Closed Won", "2024-02-15T09:00:00.000Z"),
        hist(4, 2, "Prospecting", "2024-01-10T09:00:00.000Z"),
        hist(5, 2, "Closed Lost", "2024-03-01T09:00:00.000Z"),
        hist(6, 3, "Prospecting", "2024-04-05T10:00:00.000Z"),        # entered, then closed at once
        hist(7, 3, "Closed Won", "2024-04-05T10:05:00.000Z"),
        hist(8, 4, "Closed Won", "2024-03-30T10:00:00.000Z"),
        hist(9, 5, "Prospecting", "2024-02-01T09:00:00.000Z"),
        hist(10, 5, "Qualification", "2024-02-10T09:00:00.000Z"),
        hist(11, 6, "Prospecting", "2024-02-20T09:00:00.000Z"),
        hist(12, 6, "Closed Won", "2024-03-10T09:00:00.000Z"),
    ])
    return o, h


# ------------------------------------------------------------------- 1. closed before created: kept

def test_signed_before_entered_kept_flagged_and_left_out_of_durations(tmp_path, signed_before_entered):
    o, h = signed_before_entered
    r = import_export("salesforce", [o, h], tmp_path / "ds")
    ds = load(tmp_path / "ds")
    d = ds.deals.set_index("deal_id")
    assert d["dates_estimated"].to_dict() == {"006A1": False, "006A2": False, "006A3": True, "006A4": True,
                                              "006A5": False, "006A6": False}
    # The signing (CloseDate) is the close, and the creation estimated as the same day; the
    # export's CreatedDate is kept.
    assert d.loc["006A3", "closed_at"] == d.loc["006A3", "created_at"] == pd.Timestamp("2024-03-20")
    assert d.loc["006A3", "crm_created_at"] == "2024-04-05T10:00:00"
    assert d.loc["006A4", "closed_at"] == pd.Timestamp("2024-02-01")
    assert ds.report.dates_estimated == 2
    # Counts and amounts keep them: Q1 2024 won 1, 3, 4, 6 (1000 + 4000 + 2500.5 + 300), lost 2.
    q1 = Period.quarter("2024Q1")
    assert win_rate(ds, q1) == pytest.approx(4 / 5)
    assert amount_by(ds, q1)["won_amount"].sum() == pytest.approx(7800.5)
    # Durations leave them out and say how many: won days to close = deals 1 (41 d) and 6 (19 d).
    dtc = days_to_close(ds, q1).set_index("status")
    assert dtc.loc["won", "deals"] == 2
    assert dtc.loc["won", "mean_days"] == pytest.approx(((41 - 9 / 24) + (19 - 9 / 24)) / 2)
    assert dtc.attrs["left_out_dates_estimated"] == 2
    km = close_time_survival(ds, Period("2024-02-01", "2024-03-31"))
    assert km.left_out_dates_estimated == 2          # deals 3 and 4, created (estimated) 03-20 and 02-01
    assert set(km.cohort["deal_id"]) == {"006A5", "006A6"}
    # Named in the import report, with the amounts kept.
    text = next(a for a in r.assumptions if "before their CreatedDate" in a)
    assert "2 deals" in text and "006A3, 006A4" in text and "won 2" in text and "EUR 6,500.5" in text
    assert "16 to 58 days" in text
    # Deal 3's history (recorded after the signing) is left out: rejected rows, with the reason.
    rej = r.rejected.set_index("line")
    assert rej.loc[7, "reason"].startswith("stage entry dated after its deal's CloseDate")
    assert "deal 006A3" in rej.loc[7, "reason"]
    acc = {Path(k).name: a for k, a in r.accounts.items()}
    assert (acc["OpportunityHistory.csv"].read, acc["OpportunityHistory.csv"].used,
            acc["OpportunityHistory.csv"].rejected) == (12, 11, 1)


def test_strict_dates_rejects_them_with_their_history(tmp_path, signed_before_entered, capsys):
    o, h = signed_before_entered
    assert main(["import", "salesforce", str(o), str(h), "--out", str(tmp_path / "ds"), "--strict-dates"]) == 0
    out = capsys.readouterr().out
    ds = load(tmp_path / "ds")
    assert sorted(ds.deals["deal_id"]) == ["006A1", "006A2", "006A5", "006A6"]
    # 2. Exact accounting: the history rows of the two rejected deals are rejected too, not "used".
    assert "Opportunity.csv [cp1252]: 6 rows read = 4 used + 2 rejected" in out
    assert "OpportunityHistory.csv [utf-8]: 12 rows read = 9 used + 3 rejected" in out
    rej = pd.read_csv(tmp_path / "ds" / "import_rejected.csv")
    hist_rej = rej[rej["file"].str.endswith("OpportunityHistory.csv")].sort_values("line")
    assert hist_rej["line"].tolist() == [7, 8, 9]
    assert hist_rej["reason"].iat[0] == ("its deal was rejected (CloseDate is before the CreatedDate): "
                                         "deal 006A3, Opportunity.csv line 4")
    # 7. The values are shown, not '#' placeholders.
    assert "#" not in out
    assert ("2 x CloseDate is before the CreatedDate (Opportunity.csv line 4: CloseDate 2024-03-20, CreatedDate "
            "2024-04-05T10:00:00, deal 006A3; Opportunity.csv line 5: CloseDate 2024-02-01, CreatedDate "
            "2024-03-30T10:00:00, deal 006A4)") in out


def test_same_rule_in_hubspot(tmp_path):
    src = hubspot_export(tmp_path, "Record ID,Deal Stage,Create Date,Close Date,Amount", [
        "1,Closed won,2024-03-10 09:00,2024-03-01 12:00,900",
        "2,Closed won,2024-03-10 09:00,2024-03-20 12:00,100",
        "3,Discovery,2024-03-10 09:00,,50"])
    import_export("hubspot", [src], tmp_path / "ds", currency="EUR")
    d = load(tmp_path / "ds").deals.set_index("deal_id")
    assert bool(d.loc["1", "dates_estimated"]) and d.loc["1", "created_at"] == pd.Timestamp("2024-03-01 12:00")
    r = import_export("hubspot", [src], tmp_path / "strict", currency="EUR", strict_dates=True)
    assert r.rejected["line"].tolist() == [2]
    assert "1" not in load(tmp_path / "strict").deals["deal_id"].tolist()


def test_loader_accepts_closed_before_created_only_when_flagged(tmp_path):
    folder = tmp_path / "hand"
    folder.mkdir()
    (folder / "pipeline.yml").write_text("stages: [Lead]\n")
    (folder / "stage_history.csv").write_text("deal_id,stage,entered_at\nD1,Lead,2024-03-01\n")
    head = "deal_id,created_at,status,closed_at,amount,source,product,owner,dates_estimated\n"
    (folder / "deals.csv").write_text(head + "D1,2024-03-01,won,2024-03-05,10,,,,\n"
                                             "D2,2024-03-10,won,2024-03-02,20,,,,true\n")
    ds = load(folder)
    d = ds.deals.set_index("deal_id")
    # The close (the signing) is kept; the creation is taken as the close.
    assert d.loc["D2", "created_at"] == d.loc["D2", "closed_at"] == pd.Timestamp("2024-03-02")
    assert d["dates_estimated"].tolist() == [False, True]
    assert "deals with dates_estimated (counted, left out of durations): 1" in ds.report.summary()
    (folder / "deals.csv").write_text(head + "D1,2024-03-01,won,2024-03-05,10,,,,\n"
                                             "D2,2024-03-10,won,2024-03-02,20,,,,\n")
    with pytest.raises(DataError, match="closed_at is before created_at .*set dates_estimated=true"):
        load(folder)
    (folder / "deals.csv").write_text(head + "D1,2024-03-01,won,2024-03-05,10,,,,maybe\n")
    with pytest.raises(DataError, match="dates_estimated must be true, false or empty"):
        load(folder)


# ------------------------------------------------------------------- 3. close dates after the export

def test_close_date_after_the_export_dated_by_the_history(tmp_path):
    """Lost in April (the history says so), CloseDate still the planned 2024-09-30; the export was
    taken on 2024-05-02. Before: open at the end of Q2, lost in Q3. After: lost in Q2."""
    o = write_csv(tmp_path / "Opportunity.csv", OPP_HEAD, [
        opp(1, "Closed Lost", "800", "2024-09-30", "true", "false", "2024-03-01T09:00:00.000Z",
            modified="2024-04-12T15:00:00.000Z"),
        opp(2, "Closed Lost", "200", "2024-10-31", "true", "false", "2024-03-05T09:00:00.000Z",
            modified="2024-04-20T15:00:00.000Z"),                      # no history: no witness
        opp(3, "Qualification", "100", "2024-06-30", "false", "false", "2024-04-01T09:00:00.000Z",
            modified="2024-05-02T11:30:00.000Z"),                      # the export's last timestamp
    ])
    h = write_csv(tmp_path / "OpportunityHistory.csv", HIST_HEAD, [
        hist(1, 1, "Prospecting", "2024-03-01T09:00:00.000Z"),
        hist(2, 1, "Closed Lost", "2024-04-12T15:00:00.000Z", close="2024-09-30"),
        hist(3, 1, "Closed Lost", "2024-04-13T08:00:00.000Z", amount="900"),  # a later amount edit
        hist(4, 3, "Qualification", "2024-04-01T09:00:00.000Z"),
    ])
    r = import_export("salesforce", [o, h], tmp_path / "ds")
    ds = load(tmp_path / "ds")
    d = ds.deals.set_index("deal_id")
    assert d.loc["006A1", "closed_at"] == pd.Timestamp("2024-04-12 15:00")
    assert d.loc["006A1", "crm_close_date"] == "2024-09-30"
    assert d.loc["006A2", "closed_at"] == pd.Timestamp("2024-10-31")           # no witness: kept
    texts = [a for a in r.assumptions if "after the export's last recorded timestamp (2024-05-02 11:30" in a]
    assert len(texts) == 2
    assert "Deals: 006A1" in texts[0] and "by 170 days after the recorded close" in texts[0]
    assert "Deals: 006A2" in texts[1] and "no its OpportunityHistory" not in texts[1]
    assert win_rate(ds, Period.quarter("2024Q2")) == 0.0                  # deal 1 lost in Q2


# ------------------------------------------------------------------- 4. precision, 5. stage order

def test_amount_precision_kept(tmp_path):
    o = write_csv(tmp_path / "Opportunity.csv", OPP_HEAD, [
        opp(1, "Closed Won", "9225.225", "2024-02-15", "true", "true", "2024-01-05T09:00:00.000Z", cur="USD"),
        opp(2, "Closed Won", "0.0001", "2024-02-15", "true", "true", "2024-01-05T09:00:00.000Z", cur="EUR"),
        opp(3, "Closed Won", "12000.00", "2024-02-15", "true", "true", "2024-01-05T09:00:00.000Z", cur="USD"),
    ])
    import_export("salesforce", [o], tmp_path / "ds")
    text = pd.read_csv(tmp_path / "ds" / "deals.csv", dtype=str).set_index("deal_id")["amount"]
    assert text.to_dict() == {"006A1": "9225.225", "006A2": "0.0001", "006A3": "12000"}
    assert load(tmp_path / "ds").deals.set_index("deal_id").loc["006A1", "amount"] == 9225.225
    rates = write_csv(tmp_path / "rates.csv", ["currency", "rate"], [["EUR", "1.1"]])
    import_export("salesforce", [o], tmp_path / "usd", rates=rates, currency="USD")
    conv = pd.read_csv(tmp_path / "usd" / "deals.csv", dtype=str).set_index("deal_id")["amount"]
    assert conv.to_dict() == {"006A1": "9225.225", "006A2": "0.00011", "006A3": "12000"}


def test_stage_sort_order_of_the_export_is_used(tmp_path):
    head = OPP_HEAD + ["StageSortOrder"]
    # Probabilities would order Pitch (50) before Demo (60) ... and Scoping (5) first; the export says
    # Scoping 1, Demo 2, Pitch 3.
    o = write_csv(tmp_path / "Opportunity.csv", head, [
        opp(1, "Pitch", "1", "2024-06-30", "false", "false", "2024-01-05T09:00:00.000Z", prob="70") + ["3"],
        opp(2, "Demo", "1", "2024-06-30", "false", "false", "2024-01-05T09:00:00.000Z", prob="60") + ["2"],
        opp(3, "Scoping", "1", "2024-06-30", "false", "false", "2024-01-05T09:00:00.000Z", prob="80") + ["1"],
    ])
    r = import_export("salesforce", [o], tmp_path / "ds")
    assert load(tmp_path / "ds").stages == ["Scoping", "Demo", "Pitch"]
    assert "pipeline stage order from the export's own StageSortOrder column ('Scoping' 1, 'Demo' 2, " \
           "'Pitch' 3)" in r.assumptions
    # Without the column: guessed from Probability, and said so.
    (tmp_path / "o2").mkdir()
    o2 = write_csv(tmp_path / "o2" / "Opportunity.csv", OPP_HEAD,
                   [row[:-1] for row in pd.read_csv(o, dtype=str).values.tolist()])
    r2 = import_export("salesforce", [o2], tmp_path / "ds2")
    assert load(tmp_path / "ds2").stages == ["Demo", "Pitch", "Scoping"]
    assert any(a.startswith("pipeline stage order guessed") for a in r2.assumptions)


# ------------------------------------------------------------------- 14. output hygiene

def test_formula_cells_kept_verbatim_or_escaped(tmp_path):
    src = hubspot_export(tmp_path, "Record ID,Deal Stage,Create Date,Close Date,Amount,Deal owner,Deal Name", [
        '1,Discovery,2024-03-10 09:00,,50,=HYPERLINK("http://x"),@SUM(A1)',
        "2,Discovery,2024-03-10 09:00,,60,-Ann,+1 555",
        "3,Discovery,2024-03-10 09:00,,70,Bo,-5"])
    import_export("hubspot", [src], tmp_path / "plain", currency="EUR")
    plain = pd.read_csv(tmp_path / "plain" / "deals.csv", dtype=str, keep_default_na=False)
    assert plain["owner"].tolist() == ['=HYPERLINK("http://x")', "-Ann", "Bo"]        # verbatim by default
    r = import_export("hubspot", [src], tmp_path / "safe", currency="EUR", escape_formulas=True)
    safe = pd.read_csv(tmp_path / "safe" / "deals.csv", dtype=str, keep_default_na=False)
    assert safe["owner"].tolist() == ['\'=HYPERLINK("http://x")', "'-Ann", "Bo"]
    assert safe["deal_name"].tolist() == ["'@SUM(A1)", "'+1 555", "-5"]               # -5 is a number
    assert any("4 text cells" in a for a in r.assumptions)
    assert len(load(tmp_path / "safe").deals) == 3


def test_report_markdown_escapes_labels_and_open_stage_imports(tmp_path):
    src = hubspot_export(tmp_path, "Record ID,Deal Stage,Create Date,Close Date,Amount", [
        "1,Open,2024-03-10 09:00,,50",
        "2,<script>alert(1)</script>,2024-03-11 09:00,,60",
        "3,Closed won,2024-03-10 09:00,2024-03-20 10:00,70"])
    r = import_export("hubspot", [src], tmp_path / "ds", currency="EUR")
    ds = load(tmp_path / "ds")
    assert "Open (stage)" in ds.stages
    assert ds.deals.set_index("deal_id").loc["1", "crm_stage"] == "Open"
    assert any("'Open' is an open stage" in a for a in r.assumptions)
    md = (tmp_path / "ds" / "import_report.md").read_text()
    assert "<script>" not in md and "&lt;script>alert(1)&lt;/script>" in md
    import mistune  # nbconvert's Markdown renderer (what a notebook or an HTML viewer would show)

    html = mistune.html(md)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
