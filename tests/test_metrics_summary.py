"""`funnelkit metrics` and metrics_summary on the hand-made data set of tests/stages_hand_data.py.

Period P = January 2024, as_of = 2024-02-01. Expected values computed by hand from the table in
stages_hand_data.py (see the comments at each assertion).
"""

from __future__ import annotations

import json
import math

import pytest

import funnelkit as fk
from funnelkit.cli import main
from funnelkit.metrics.summary import format_summary, jsonable, metrics_summary
from funnelkit.period import Period

from stages_hand_data import write_dataset

JAN = Period("2024-01-01", "2024-01-31")


@pytest.fixture()
def hand_dir(tmp_path):
    return write_dataset(tmp_path / "hand")


@pytest.fixture()
def summary(hand_dir):
    return metrics_summary(fk.load(hand_dir), JAN)


def test_required_fields_are_present(summary):
    for key in ("period", "deals_per_stage", "time_in_stage", "days_to_close", "deal_size", "win_rate",
                "amount_by_source", "amount_by_product", "forecast"):
        assert key in summary
    assert summary["period"] == {"start": "2024-01-01", "end": "2024-01-31",
                                 "as_of": "2024-02-01T00:00:00", "label": "2024-01-01 to 2024-01-31"}
    assert set(summary["deals_per_stage"][0]) >= {"stage", "open_deals", "open_amount", "reached", "conversion"}
    assert set(summary["time_in_stage"][0]) >= {"stage", "visits", "mean_days", "median_days", "p90_days",
                                                "stuck_deals"}
    assert set(summary["days_to_close"]) == {"won", "lost"}
    assert set(summary["deal_size"]) >= {"deals", "mean", "median", "trimmed_mean"}
    assert set(summary["forecast"]) >= {"open_deals", "expected_won_amount"}
    for row in summary["amount_by_source"]:
        assert set(row) >= {"source", "won_amount", "won_deals", "lost_deals", "win_rate", "mean_size",
                            "share", "open_amount"}


def test_deals_per_stage_by_hand(summary):
    rows = {r["stage"]: r for r in summary["deals_per_stage"]}
    assert [r["stage"] for r in summary["deals_per_stage"]] == ["Lead", "Qualified", "Proposal", "Negotiation"]
    # Open at 2024-02-01: D8 in Lead (no amount); D3 (moved back) and D6 in Qualified;
    # D4 in Negotiation (won only on 02-10, after as_of). D5 is created after as_of.
    assert [rows[s]["open_deals"] for s in rows] == [1, 2, 0, 1]
    assert rows["Qualified"]["open_amount"] == 2700
    # Lead holds only D8, whose amount is unknown: the stage's open amount is unknown (null), not 0.
    assert rows["Lead"]["open_amount"] is None and rows["Lead"]["open_amount_unknown"] == 1
    assert rows["Proposal"]["open_amount"] == 0 and rows["Proposal"]["open_amount_unknown"] == 0
    assert rows["Negotiation"]["open_amount"] == 800
    # Cohort created in January: D1, D3, D4, D7, D8. D1 won (passes every stage); D4 skipped Proposal.
    assert [rows[s]["reached"] for s in rows] == [5, 3, 3, 2]
    assert rows["Lead"]["conversion"] == pytest.approx(3 / 5)
    assert rows["Qualified"]["conversion"] == pytest.approx(1.0)
    assert rows["Proposal"]["conversion"] == pytest.approx(2 / 3)
    assert rows["Negotiation"]["conversion"] == pytest.approx(1 / 2)   # won / reached(last)
    assert summary["forecast"]["open_deals"] == 4


def test_close_and_size_by_hand(summary):
    # Closed in January: D1 won (01-02 -> 01-20, 18 d); D2 lost (12-20 -> 01-12, 23 d); D7 lost (3 d).
    assert summary["days_to_close"]["won"] == {"deals": 1, "mean_days": 18.0, "median_days": 18.0}
    assert summary["days_to_close"]["lost"] == {"deals": 2, "mean_days": 13.0, "median_days": 13.0}
    assert summary["deal_size"]["deals"] == 1
    assert summary["deal_size"]["mean"] == summary["deal_size"]["trimmed_mean"] == 1000
    assert summary["win_rate"] == pytest.approx(1 / 3)


def test_amount_by_source_by_hand(summary):
    rows = summary["amount_by_source"]
    # Web: D1 won 1000, D7 lost, D3 open 2000. Event: D4 open 800 and D8 open without amount.
    # Referral: D2 lost, D6 open 700. Sorted by won amount, ties by name.
    assert [r["source"] for r in rows] == ["Web", "Event", "Referral"]
    web, event, referral = rows
    assert web == {"source": "Web", "won_amount": 1000.0, "won_deals": 1, "lost_deals": 1, "win_rate": 0.5,
                   "mean_size": 1000.0, "share": 1.0, "open_amount": 2000.0, "won_amount_unknown": 0,
                   "open_deals": 1, "open_amount_unknown": 0}
    assert event["win_rate"] is None and event["mean_size"] is None and event["open_amount"] == 800
    # Event's open amount covers D4 only: D8's amount is unknown, and the row says so.
    assert (event["open_deals"], event["open_amount_unknown"]) == (2, 1)
    assert referral["win_rate"] == 0.0 and referral["lost_deals"] == 1 and referral["open_amount"] == 700


def test_json_has_no_nan(summary):
    text = json.dumps(summary, allow_nan=False)   # raises on NaN/inf
    assert "NaN" not in text


def test_cli_json_matches_library(hand_dir, summary, capsys):
    assert main(["metrics", str(hand_dir), "--start", "2024-01-01", "--end", "2024-01-31",
                 "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(summary))


def test_cli_table_names_the_numbers(hand_dir, capsys):
    assert main(["metrics", str(hand_dir), "--start", "2024-01-01", "--end", "2024-01-31"]) == 0
    out = capsys.readouterr().out
    assert "Win rate 33.3%" in out
    assert "Deals per stage" in out and "Negotiation" in out


def test_cli_bad_period_is_a_clean_error(hand_dir, capsys):
    assert main(["metrics", str(hand_dir), "--start", "2024-02-01", "--end", "2024-01-01"]) == 2
    err = capsys.readouterr().err
    assert "before its start" in err and "Traceback" not in err


def _mixed(tmp_path):
    """The hand data with a currency column: D1, D3, D5, D7 in USD; D2, D4, D6, D8 in EUR."""
    folder = write_dataset(tmp_path / "mixed")
    text = (folder / "deals.csv").read_text().splitlines()
    rows = [text[0] + ",currency"] + [line + (",EUR" if i % 2 else ",USD") for i, line in enumerate(text[1:])]
    (folder / "deals.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_mixed_currencies_give_every_count_and_amounts_per_currency(tmp_path, hand_dir, summary, capsys):
    folder = _mixed(tmp_path)
    assert main(["metrics", str(folder), "--start", "2024-01-01", "--end", "2024-01-31", "--format", "json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["currencies"] == ["EUR", "USD"] and s["dataset"]["currency"] is None
    # Every count metric is the one of the same deals without a currency column.
    for key in ("win_rate", "time_in_stage", "days_to_close", "cohort", "bottleneck", "stage_flow",
                "close_time_survival", "stuck_deals_total"):
        assert s[key] == json.loads(json.dumps(summary[key])), key
    assert [r["open_deals"] for r in s["deals_per_stage"]] == [1, 2, 0, 1]
    assert [r["reached"] for r in s["deals_per_stage"]] == [5, 3, 3, 2]
    web = next(r for r in s["amount_by_source"] if r["source"] == "Web")
    assert (web["won_deals"], web["lost_deals"], web["win_rate"]) == (1, 1, 0.5)
    assert s["deal_size"]["deals"] == 1 and s["forecast"]["open_deals"] == 4
    # ... and no amount is summed across currencies: every top-level amount is null.
    assert all(r["open_amount"] is None for r in s["deals_per_stage"])
    assert all(r["won_amount"] is None and r["open_amount"] is None for r in s["amount_by_source"])
    assert s["deal_size"]["mean"] is None and s["forecast"]["expected_won_amount"] is None
    assert s["sales_velocity"]["amount_per_day"] is None and s["sales_velocity"]["opportunities"] == 5
    # Amounts per currency. USD: D1 won 1000 (Web), D3 open 2000 in Qualified.
    usd, eur = s["by_currency"]["USD"], s["by_currency"]["EUR"]
    assert [r["open_amount"] for r in usd["deals_per_stage"]] == [0, 2000, 0, 0]
    assert usd["deal_size"]["mean"] == 1000 and usd["amount_by_source"][0]["won_amount"] == 1000
    # EUR: nothing won; open D8 (Lead, no amount), D6 700 (Qualified), D4 800 (Negotiation).
    assert [r["open_amount"] for r in eur["deals_per_stage"]] == [None, 700, 0, 800]
    assert [r["open_amount_unknown"] for r in eur["deals_per_stage"]] == [1, 0, 0, 0]
    assert eur["deal_size"]["deals"] == 0 and eur["amount_coverage"]["open"]["amount_unknown"] == 1
    # The forecast's probabilities come from all deals: per currency, the same deals' expected amounts.
    fc = fk.metrics.win_forecast(fk.load(hand_dir), JAN.as_of).set_index("deal_id")
    assert usd["forecast"]["expected_won_amount"] == pytest.approx(fc.loc["D3", "expected_won_amount"])
    assert eur["forecast"]["expected_won_amount"] == pytest.approx(fc.loc[["D4", "D6"], "expected_won_amount"].sum())
    assert eur["forecast"]["amount_unknown_deals"] == 1
    assert any("2 currencies" in n for n in s["notes"])
    # The table output gives one amount block per currency.
    assert main(["metrics", str(folder), "--start", "2024-01-01", "--end", "2024-01-31"]) == 0
    out = capsys.readouterr().out
    assert "Amounts in EUR" in out and "Amounts in USD" in out and "Win rate 33.3%" in out
    # Slicing to one currency still works.
    assert main(["metrics", str(folder), "--quarter", "2024Q1", "--currency", "eur", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"]["currency"] == "EUR"


def test_jsonable_turns_missing_values_into_null():
    import numpy as np
    import pandas as pd
    assert jsonable({"a": np.float64("nan"), "b": pd.NaT, "c": np.int64(3), "d": [math.inf]}) == \
        {"a": None, "b": None, "c": 3, "d": [None]}


def test_sample_summary_is_consistent(sample_ds):
    q = Period.quarter("2026Q2")
    s = metrics_summary(sample_ds, q, target=100000)
    assert sum(r["open_deals"] for r in s["deals_per_stage"]) == s["forecast"]["open_deals"]
    total_won = sum(r["won_amount"] for r in s["amount_by_source"])
    assert total_won == pytest.approx(sum(r["won_amount"] for r in s["amount_by_product"]))
    assert total_won == pytest.approx(s["deal_size"]["mean"] * s["deal_size"]["deals"])
    # Independently from the deals table: won deals closed in the quarter (all closes lie before as_of).
    d = sample_ds.deals
    closed_in_q = (d["closed_at"] >= "2026-04-01") & (d["closed_at"] < "2026-07-01")
    won = d.loc[closed_in_q & d["status"].eq("won"), "amount"]
    lost = int((closed_in_q & d["status"].eq("lost")).sum())
    assert s["deal_size"]["deals"] == len(won) and s["deal_size"]["mean"] == pytest.approx(won.mean())
    assert s["win_rate"] == pytest.approx(len(won) / (len(won) + lost))
    assert s["target_plan"]["deals_needed"] == pytest.approx(100000 / won.mean())
    assert s["target_plan"]["deals_to_work"] == pytest.approx(100000 / won.mean() / (len(won) / (len(won) + lost)))
    assert "Deals per stage" in format_summary(s)


def test_json_of_a_period_without_won_deals_has_nulls(sample_path, capsys):
    # The sample's first week: four deals lost, none won, nothing to forecast from yet.
    assert main(["metrics", str(sample_path), "--start", "2024-10-01", "--end", "2024-10-07",
                 "--format", "json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["days_to_close"]["won"] == {"deals": 0, "mean_days": None, "median_days": None}
    assert s["days_to_close"]["lost"]["deals"] == 4
    assert s["deal_size"]["mean"] is None and s["win_rate"] == 0.0


def test_cli_currency_not_in_the_data_is_named(sample_path, capsys):
    assert main(["metrics", str(sample_path), "--quarter", "2026Q2", "--currency", "GBP"]) == 2
    err = capsys.readouterr().err
    assert "no deals in GBP" in err and "USD" in err and "Traceback" not in err
    assert main(["metrics", str(sample_path), "--quarter", "2026Q2", "--currency", "usd",
                 "--format", "json"]) == 0


def test_cli_refuses_quarter_and_dates_together(sample_path, capsys):
    assert main(["metrics", str(sample_path), "--quarter", "2025Q1", "--start", "2025-05-01",
                 "--end", "2025-05-31"]) == 2
    assert "not both" in capsys.readouterr().err


def test_cli_lenient_prints_the_accounting(tmp_path, capsys):
    folder = write_dataset(tmp_path / "bad")
    text = (folder / "deals.csv").read_text().replace("D7,2024-01-15,lost,2024-01-18,400",
                                                      "D7,2024-01-15,lost,2024-01-18,-400")
    (folder / "deals.csv").write_text(text)
    assert main(["metrics", str(folder), "--start", "2024-01-01", "--end", "2024-01-31"]) == 2
    assert main(["metrics", str(folder), "--start", "2024-01-01", "--end", "2024-01-31", "--lenient",
                 "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert "8 rows read = 7 loaded + 1 rejected" in captured.err
    assert "amount is negative" in captured.err
    # D7 (lost) is gone: January has one won and one lost deal left.
    assert json.loads(captured.out)["win_rate"] == 0.5


def test_docs_list_every_json_field(hand_dir):
    import re
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "metrics.md").read_text(encoding="utf-8")
    table = doc.split("## The JSON of `funnelkit metrics`", 1)[1]
    documented = set()
    for cell in re.findall(r"^\| (`[^|]*`(?:, `[^|]*`)*) \|", table, flags=re.M):
        documented |= set(re.findall(r"`([a-z_]+)`", cell))
    s = metrics_summary(fk.load(hand_dir), JAN, target=1000)
    assert documented == set(s) | {"by_currency"}      # by_currency: only with several currencies


def test_notes_say_when_the_period_lies_outside_the_data(sample_ds):
    # The sample runs from 2024-10-01 to 2026-09-30.
    def period_notes(s):
        return [c["text"] for c in s["caveats"] if c["topic"] == "period"]
    inside = metrics_summary(sample_ds, Period.quarter("2026Q2"))
    assert period_notes(inside) == []
    # The sample's two open deals without an amount are said (and nothing else).
    assert inside["notes"] == ["2 of the 142 deals open at the end of the period (1%) have an unknown amount: "
                               "the open pipeline amount and the expected won amount cover only the other 140"]
    after = period_notes(metrics_summary(sample_ds, Period.quarter("2030Q1")))
    assert len(after) == 1 and "starts after the last event in the data (2026-09-30)" in after[0]
    before = metrics_summary(sample_ds, Period.quarter("2020Q1"))   # nothing to forecast from: a note
    assert "ends before the data starts (2024-10-01)" in before["notes"][0]
    assert before["notes"][1].startswith("win_forecast: no deal closed before 2020-04-01")
    assert [c["topic"] for c in before["caveats"]] == ["period", "forecast"]
    partly = period_notes(metrics_summary(sample_ds, Period("2024-09-01", "2024-10-31")))
    assert partly == ["the data starts on 2024-10-01, inside the period: the period is only partly covered"]


def test_sales_velocity_by_hand(summary):
    # January: 5 deals created (D1, D3, D4, D7, D8); closed: D1 won (1000, 18 days), D2 and D7 lost.
    v = summary["sales_velocity"]
    assert v["opportunities"] == 5
    assert v["win_rate"] == pytest.approx(1 / 3) and v["mean_won_size"] == 1000.0
    assert v["mean_days_to_win"] == 18.0
    assert v["amount_per_day"] == pytest.approx(5 * (1 / 3) * 1000 / 18)


def test_forecast_range_brackets_the_expected_amount(sample_ds):
    f = metrics_summary(sample_ds, Period.quarter("2026Q2"))["forecast"]
    assert f["expected_won_amount_low"] < f["expected_won_amount"] < f["expected_won_amount_high"]
    assert f["range_level"] == 0.8


def test_report_all_quarters_refuses_period_flags(sample_path, tmp_path, capsys):
    assert main(["report", str(sample_path), "--all-quarters", "--quarter", "2025Q1",
                 "--out", str(tmp_path / "r")]) == 2
    assert "--all-quarters renders every quarter" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_amount_by_refuses_a_column_named_twice(hand_dir):
    from funnelkit.metrics.breakdown import amount_by
    with pytest.raises(ValueError, match="names a column twice"):
        amount_by(fk.load(hand_dir), JAN, by=["source", "source"])
