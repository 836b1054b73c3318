"""The validated loader: every contract problem named by file, line, column, value and reason;
lenient accounting; normalisation counts; time zones; BOM; xlsx/parquet; inputs left untouched."""

from __future__ import annotations

import csv
import hashlib
import io
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funnelkit as fk
from funnelkit.contract import DEAL_COLUMNS, HISTORY_COLUMNS
from funnelkit.parsing import parse_amounts, parse_timestamps
from funnelkit.validation import DataError

from contract_cases import (DEAL_HEADER, DEALS, HISTORY, HISTORY_HEADER, PIPELINE, ROW_CASES, replaced,
                            case_files, write_dataset)


def _hashes(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------------------------------
# The clean hand data set

def test_clean_hand_dataset_loads_with_typed_columns(tmp_path):
    ds = fk.load(write_dataset(tmp_path / "d"))
    d = ds.deals
    assert list(d.columns) == list(DEAL_COLUMNS)
    assert d["deal_id"].tolist() == ["D1", "D2", "D3", "D4"]
    assert d["status"].tolist() == ["won", "lost", "open", "open"]
    assert list(d["status"].cat.categories) == ["open", "won", "lost"]
    assert d["created_at"].dtype == "datetime64[ns]" and d["closed_at"].dtype == "datetime64[ns]"
    assert d["created_at"].tolist()[3] == pd.Timestamp("2024-01-05 10:00")
    assert d["closed_at"].isna().tolist() == [False, False, True, True]
    assert d["amount"].tolist()[:3] == [1000.0, 500.0, 2000.0] and np.isnan(d["amount"].iloc[3])
    assert ds.pipeline.stages == ("Lead", "Qualified", "Proposal") and ds.currency == "EUR"
    h = ds.stage_history
    assert list(h.columns) == ["deal_id", "stage", "stage_index", "entered_at"]
    assert h["stage"].cat.ordered and list(h["stage"].cat.categories) == ["Lead", "Qualified", "Proposal"]
    assert h["stage_index"].tolist() == [0, 1, 2, 0, 0, 1, 0]
    r = ds.report
    assert r.ok and r.entries_added == 0 and r.repeats_merged == 0
    assert [(a.read, a.loaded, a.rejected) for a in r.accounts.values()] == [(4, 4, 0), (7, 7, 0)]
    assert "no problems found" in r.summary()


def test_hand_dataset_outcome_row_by_row(tmp_path):
    """Twelve deal rows and eleven entries whose fate is known line by line."""
    deals = [
        DEAL_HEADER,
        "A1,2024-01-02,won,2024-01-20,1000,Web,Set,Ann",            # 2 ok
        "A2,2024-01-03,Lost,2024-01-12,\"€1,200.50\",Web,Set,Bo",    # 3 ok (case, text amount)
        "A3,2024-01-04,open,,,Web,Set,",                           # 4 ok (no amount, no owner)
        "A4,2024-01-05,won,,300,Web,Set,Ann",                       # 5 rejected: no closed_at
        "A5,2024-01-06,maybe,,300,Web,Set,Ann",                     # 6 rejected: status
        "A1,2024-01-07,open,,10,Web,Set,Ann",                       # 7 rejected: duplicate
        "A6,2024-01-08,lost,2024-01-07,300,Web,Set,Ann",            # 8 rejected: closed < created
        "A7,2024-01-09,open,,-3,Web,Set,Ann",                       # 9 rejected: negative
        "A8,2024-01-10T08:00:00+02:00,open,,7,Ads,Set,Cy",          # 10 ok (created 06:00 UTC)
        "A9,2024-01-11,lost,2024-01-11,0,Ads,Set,Cy",               # 11 ok (closed = created)
        "A10,2024-13-01,open,,5,Ads,Set,Cy",                        # 12 rejected: date
        "A11,2024-01-12,open,2024-01-13,5,Ads,Set,Cy",              # 13 rejected: open + closed_at
    ]
    history = [
        HISTORY_HEADER,
        "A1,Lead,2024-01-02",               # 2 ok
        "A1,Proposal,2024-01-08",           # 3 ok (skips Qualified)
        "A2,Qualified,2024-01-05",          # 4 ok (Lead added at created_at)
        "A4,Lead,2024-01-05",               # 5 rejected: its deal is invalid
        "A8,Lead,2024-01-10T06:00:00Z",     # 6 ok (= created_at after UTC conversion)
        "A8,Lead,2024-01-11",               # 7 ok but a repeat: merged
        "A8,Won,2024-01-12",                # 8 rejected: not a stage
        "A9,Lead,2024-01-10",               # 9 rejected: before created_at
        "A9,Lead,2024-01-12",               # 10 rejected: after closed_at
        "Z1,Lead,2024-01-12",               # 11 rejected: unknown deal
        "A3,Qualified,2024-01-04",          # 12 ok (starts past Lead: nothing added)
    ]
    folder = write_dataset(tmp_path / "d", deals, history)
    with pytest.raises(DataError) as err:
        fk.load(folder)
    lines = {("deals.csv" if p.file.endswith("deals.csv") else "stage_history.csv", p.line)
             for p in err.value.problems}
    want_deals = {5, 6, 7, 8, 9, 12, 13}
    want_hist = {5, 8, 9, 10, 11}
    assert lines == {("deals.csv", n) for n in want_deals} | {("stage_history.csv", n) for n in want_hist}

    ds = fk.load(folder, errors="report")
    assert ds.deals["deal_id"].tolist() == ["A1", "A2", "A3", "A8", "A9"]
    assert ds.deals["amount"].tolist()[:2] == [1000.0, 1200.5]
    assert ds.deals["status"].tolist() == ["won", "lost", "open", "open", "lost"]
    assert ds.deals.loc[3, "created_at"] == pd.Timestamp("2024-01-10 06:00")
    assert ds.deals.loc[2, "owner"] == "(not set)" and ds.report.not_set == {"source": 0, "product": 0, "owner": 1}
    rej = ds.report.rejected
    assert sorted(rej.loc[rej.file.str.endswith("deals.csv"), "line"]) == sorted(want_deals)
    assert sorted(rej.loc[rej.file.str.endswith("stage_history.csv"), "line"]) == sorted(want_hist)
    acc = {Path(k).name: (a.read, a.loaded, a.rejected) for k, a in ds.report.accounts.items()}
    assert acc == {"deals.csv": (12, 5, 7), "stage_history.csv": (11, 6, 5)}
    # A9 has no valid entry left: Lead added at created_at; A2 gets Lead before Qualified.
    assert ds.report.entries_added == 2 and ds.report.repeats_merged == 1
    got = [(r.deal_id, r.stage, str(r.entered_at)) for r in ds.stage_history.itertuples()]
    assert got == [
        ("A1", "Lead", "2024-01-02 00:00:00"), ("A1", "Proposal", "2024-01-08 00:00:00"),
        ("A2", "Lead", "2024-01-03 00:00:00"), ("A2", "Qualified", "2024-01-05 00:00:00"),
        ("A3", "Qualified", "2024-01-04 00:00:00"),
        ("A8", "Lead", "2024-01-10 06:00:00"),
        ("A9", "Lead", "2024-01-11 00:00:00"),
    ]


# ----------------------------------------------------------------------------------------------
# Every problem of issue 2, strict: the message names file, line, column, value and reason

@pytest.mark.parametrize("case", ROW_CASES, ids=[c[0] for c in ROW_CASES])
def test_row_problem_named_in_strict_error(tmp_path, case):
    name, file, line, _, column, value, reason = case
    folder = write_dataset(tmp_path / "d", **case_files(case))
    with pytest.raises(DataError) as err:
        fk.load(folder)
    matches = [p for p in err.value.problems
               if p.file == str(folder / file) and p.line == line and p.column == column]
    assert matches, f"no problem at {file} line {line} column {column}: {err.value.problems}"
    p = next(m for m in matches if reason in m.reason)
    assert p.value == value
    text = str(err.value)
    expected_value = f"value {value!r}" if value else "value empty"
    assert f"{folder / file}, line {line}, column '{column}', {expected_value}: {p.reason}" in text
    # Lenient: that row is rejected with the reason, and the accounting balances.
    ds = fk.load(folder, errors="report")
    rej = ds.report.rejected
    row = rej[(rej.file == str(folder / file)) & (rej.line == line)]
    assert len(row) == 1 and reason in row["reasons"].iloc[0]
    assert all(a.balanced for a in ds.report.accounts.values())


def test_every_problem_is_collected_not_only_the_first(tmp_path):
    deals = list(DEALS)
    deals[1] = "D1,2024-01-02,won,,1000,Web,Set,Ann"
    deals[3] = "D3,2024-01-04,pending,,2000,Web,Collection,Ann"
    history = list(HISTORY) + ["D4,Nope,2024-01-06"]
    folder = write_dataset(tmp_path / "d", deals, history)
    with pytest.raises(DataError) as err:
        fk.load(folder)
    where = [(Path(p.file).name, p.line, p.column) for p in err.value.problems]
    assert ("deals.csv", 2, "closed_at") in where and ("deals.csv", 4, "status") in where
    assert ("stage_history.csv", 9, "stage") in where
    assert str(err.value).startswith(f"{len(where)} problems in data set {folder}:")


@pytest.mark.parametrize("missing", ["deals.csv", "stage_history.csv", "pipeline.yml"])
def test_missing_file(tmp_path, missing):
    folder = write_dataset(tmp_path / "d")
    (folder / missing).unlink()
    for errors in ("raise", "report"):
        with pytest.raises(DataError) as err:
            fk.load(folder, errors=errors)
        (p,) = err.value.problems
        assert p.file == str(folder / missing) and "file is missing" in p.reason
        assert f"{folder / missing}: file is missing" in str(err.value)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="data set folder not found"):
        fk.load(tmp_path / "nowhere")


@pytest.mark.parametrize("file,header,column", [
    ("deals.csv", "deal_id,created_at,status,closed_at,source,product,owner", "amount"),
    ("stage_history.csv", "deal_id,stage", "entered_at"),
])
def test_missing_column(tmp_path, file, header, column):
    folder = write_dataset(tmp_path / "d")
    (folder / file).write_text(header + "\nX,Y\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        fk.load(folder, errors="report")
    (p,) = err.value.problems
    assert (p.file, p.line, p.column) == (str(folder / file), 1, column)
    assert str(p) == f"{folder / file}, line 1, column '{column}': required column is missing"


@pytest.mark.parametrize("content,reason", [
    ("", "file is empty (no header row)"),
    (DEAL_HEADER + "\n", "file has a header but no rows"),
])
def test_empty_file(tmp_path, content, reason):
    folder = write_dataset(tmp_path / "d")
    (folder / "deals.csv").write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        fk.load(folder)
    (p,) = err.value.problems
    assert p.file == str(folder / "deals.csv") and p.reason == reason
    assert str(p).startswith(f"{folder / 'deals.csv'}, line ")


@pytest.mark.parametrize("text,column,reason", [
    ("stages: []\n", "stages", "'stages' must be a non-empty list"),
    ("stages: [Lead, Won]\n", "stages", "won/lost/open are deal outcomes"),
    ("stages: [Lead, Lead]\n", "stages", "stage listed twice"),
    ("stages: [Lead]\ncurrency: euros\n", "currency", "currency must be a 3-letter ISO 4217 code"),
    ("- just\n- a list\n", None, "pipeline.yml must be a mapping"),
    ("stages: [Lead\n", None, "not valid YAML"),
    ("", None, "file is empty"),
])
def test_bad_pipeline(tmp_path, text, column, reason):
    folder = write_dataset(tmp_path / "d", pipeline=text)
    with pytest.raises(DataError) as err:
        fk.load(folder)
    p = err.value.problems[0]
    assert p.file == str(folder / "pipeline.yml") and (p.column or None) == column and reason in p.reason


def test_not_utf8_is_a_named_problem(tmp_path):
    folder = write_dataset(tmp_path / "d")
    (folder / "deals.csv").write_bytes((DEAL_HEADER + "\nD1,2024-01-02,won,2024-01-03,5,Caf\xe9,S,A\n")
                                       .encode("latin-1"))
    with pytest.raises(DataError, match=r"deals\.csv: not UTF-8 text"):
        fk.load(folder)


def test_ragged_rows_are_named_with_their_field_counts(tmp_path):
    # Too many fields: the cells would sit in the wrong columns; named, not read shifted.
    deals = DEALS + ["D5,2024-01-05,open,,1,Web,Set,Ann,extra,more"]
    with pytest.raises(DataError) as err:
        fk.load(write_dataset(tmp_path / "d", deals))
    [p] = err.value.problems
    assert (Path(p.file).name, p.line, p.column) == ("deals.csv", 6, None)
    assert p.reason.startswith("the row has 10 fields but the header has 8")
    # One extra field on the FIRST row used to make pandas read the first column as an index,
    # shifting every row; now only that row is named and the others load.
    first_long = [DEALS[0], DEALS[1] + ",x"] + DEALS[2:]
    ds = fk.load(write_dataset(tmp_path / "f", first_long), errors="report")
    rejected = ds.report.rejected
    assert list(rejected.loc[rejected["file"].str.endswith("deals.csv"), "line"]) == [2]
    assert list(ds.deals["deal_id"]) == ["D2", "D3", "D4"]
    # Too few fields: never padded silently.
    with pytest.raises(DataError) as err:
        fk.load(write_dataset(tmp_path / "e", DEALS + ["D5,2024-01-05,won"]))
    [p] = err.value.problems
    assert p.line == 6 and "the row has 3 fields but the header has 8" in p.reason


def test_line_numbers_count_quoted_line_breaks_and_blank_lines(tmp_path):
    folder = write_dataset(tmp_path / "d")
    text = (folder / "deals.csv").read_text().splitlines()
    header, rows = text[0] + ",note", [r + ",x" for r in text[1:]]
    rows[0] = rows[0][:-1] + '"a note\nover two lines"'      # record 1 spans lines 2-3
    rows.insert(1, "")                                       # a blank line 4
    rows[2] = rows[2].replace(",won,", ",w0n,").replace(",lost,", ",l0st,").replace(",open,", ",0pen,")
    (folder / "deals.csv").write_text("\n".join([header] + rows) + "\n")
    with pytest.raises(DataError) as err:
        fk.load(folder)
    [p] = [p for p in err.value.problems if p.file.endswith("deals.csv")]
    assert (p.line, p.column) == (5, "status")   # the second record starts on line 5 of the file


# ----------------------------------------------------------------------------------------------
# Lenient mode

def test_lenient_accounting_and_rejected_rows(tmp_path):
    deals = list(DEALS)
    deals[2] = "D2,2024-01-03,lost,,oops,Referral,Set,Bo"        # two problems, one rejected row
    folder = write_dataset(tmp_path / "d", deals)
    ds = fk.load(folder, errors="report")
    acc = {Path(k).name: (a.read, a.loaded, a.rejected) for k, a in ds.report.accounts.items()}
    # D2's own entry (line 5) goes with it.
    assert acc == {"deals.csv": (4, 3, 1), "stage_history.csv": (7, 6, 1)}
    rej = ds.report.rejected
    assert rej[["line"]].to_dict("list") == {"line": [3, 5]}
    assert rej["reasons"].iloc[0] == ("closed_at: a lost deal needs closed_at; "
                                      "amount: cannot parse the amount as a number")
    assert '"amount": "oops"' in rej["row"].iloc[0] and "_line" not in rej["row"].iloc[0]
    assert rej["reasons"].iloc[1].startswith("deal_id: the deal's own row in deals.csv is invalid")
    assert "D2" not in set(ds.deals.deal_id) and "D2" not in set(ds.stage_history.deal_id)
    summary = ds.report.summary()
    assert f"{folder / 'deals.csv'}: 4 rows read = 3 loaded + 1 rejected" in summary
    out = ds.report.write_rejected(tmp_path / "out" / "rej.csv")
    back = pd.read_csv(out)
    assert back["line"].tolist() == [3, 5] and list(back.columns) == ["file", "line", "reasons", "row"]


def test_load_never_modifies_inputs_and_writes_nothing_there(tmp_path):
    deals = list(DEALS)
    deals[3] = "D3,2024-01-04,pending,,2000,Web,Collection,Ann"
    folder = write_dataset(tmp_path / "d", deals, HISTORY + ["D1,Lead,2024-01-03"])
    before = _hashes(folder)
    with pytest.raises(DataError):
        fk.load(folder)
    ds = fk.load(folder, errors="report")
    fk.validate(folder)
    assert len(ds.report.rejected) and ds.report.repeats_merged == 1
    assert _hashes(folder) == before


# ----------------------------------------------------------------------------------------------
# Normalisation, time zones, BOM, options

def test_normalisation_counts(tmp_path):
    history = [
        HISTORY_HEADER,
        "D1,Qualified,2024-01-05",          # no entry at created_at: Lead added at 01-02
        "D1,Qualified,2024-01-06",          # repeat: merged
        "D1,Qualified,2024-01-07",          # repeat: merged
        "D1,Proposal,2024-01-10",
        "D2,Lead,2024-01-03",
        "D2,Qualified,2024-01-03",          # tie at created_at: ordered by stage, Lead first
        "D2,Lead,2024-01-03",               # same instant, same stage as line 6: a repeat
        # D3: no entry at all -> Lead added at created_at
        "D4,Qualified,2024-01-05T10:00:00",  # at created_at: starts past Lead, nothing added
        "D4,Lead,2024-01-06",               # moves back: a new visit, not a repeat
    ]
    ds = fk.load(write_dataset(tmp_path / "d", history=history))
    assert ds.report.entries_added == 2 and ds.report.repeats_merged == 3
    got = [(r.deal_id, r.stage, str(r.entered_at)) for r in ds.stage_history.itertuples()]
    assert got == [
        ("D1", "Lead", "2024-01-02 00:00:00"), ("D1", "Qualified", "2024-01-05 00:00:00"),
        ("D1", "Proposal", "2024-01-10 00:00:00"),
        ("D2", "Lead", "2024-01-03 00:00:00"), ("D2", "Qualified", "2024-01-03 00:00:00"),
        ("D3", "Lead", "2024-01-04 00:00:00"),
        ("D4", "Qualified", "2024-01-05 10:00:00"), ("D4", "Lead", "2024-01-06 00:00:00"),
    ]
    s = ds.report.summary()
    assert "stage entries added at created_at (first stage): 2" in s
    assert "repeated stage entries merged: 3" in s


def test_timezones_are_converted_to_utc_and_made_naive(tmp_path):
    deals = [
        DEAL_HEADER,
        "D1,2024-03-31T01:30:00+02:00,won,2024-04-01T00:15:00-05:00,1,W,S,A",
        "D2,2024-03-31T01:30:00Z,open,,1,W,S,A",
        "D3,2024-03-31T01:30:00+0530,open,,1,W,S,A",
        "D4,2024-03-31 01:30,open,,1,W,S,A",
    ]
    history = [HISTORY_HEADER, "D1,Lead,2024-03-30T23:30:00Z", "D1,Qualified,2024-04-01T07:00:00+02:00"]
    ds = fk.load(write_dataset(tmp_path / "d", deals, history))
    d = ds.deals.set_index("deal_id")
    assert d.loc["D1", "created_at"] == pd.Timestamp("2024-03-30 23:30")
    assert d.loc["D1", "closed_at"] == pd.Timestamp("2024-04-01 05:15")
    assert d.loc["D2", "created_at"] == pd.Timestamp("2024-03-31 01:30")
    assert d.loc["D3", "created_at"] == pd.Timestamp("2024-03-30 20:00")
    assert d.loc["D4", "created_at"] == pd.Timestamp("2024-03-31 01:30")   # naive: kept
    assert ds.deals["created_at"].dt.tz is None
    h = ds.stage_history[ds.stage_history.deal_id.eq("D1")]
    assert h["entered_at"].tolist() == [pd.Timestamp("2024-03-30 23:30"), pd.Timestamp("2024-04-01 05:00")]
    # D1's 23:30Z entry is its creation instant: entries are added only for D2, D3 and D4.
    assert ds.report.entries_added == 3


def test_bom_in_every_file(tmp_path):
    folder = write_dataset(tmp_path / "d")
    for name in ("deals.csv", "stage_history.csv", "pipeline.yml"):
        p = folder / name
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    ds = fk.load(folder)
    assert list(ds.deals.columns) == list(DEAL_COLUMNS) and len(ds.deals) == 4
    assert ds.pipeline.name == "Hand pipeline"
    assert ds.stage_history.equals(fk.load(write_dataset(tmp_path / "plain")).stage_history)


def test_date_format_option(tmp_path):
    deals = [DEAL_HEADER, "D1,02/01/2024 09:30,won,20/01/2024 00:00,1000,W,S,A",
             "D2,2024-01-03,open,,5,W,S,A"]
    history = [HISTORY_HEADER, "D1,Lead,02/01/2024 09:30", "D1,Qualified,05/01/2024 12:00"]
    folder = write_dataset(tmp_path / "d", deals, history,
                           pipeline=PIPELINE + 'date_format: "%d/%m/%Y %H:%M"\n')
    with pytest.raises(DataError) as err:
        fk.load(folder)
    (p,) = err.value.problems
    assert (p.line, p.column, p.value) == (3, "created_at", "2024-01-03")
    assert "expected the format '%d/%m/%Y %H:%M' from pipeline.yml" in p.reason
    ds = fk.load(folder, errors="report")
    assert ds.deals["closed_at"].iloc[0] == pd.Timestamp("2024-01-20")
    assert ds.stage_history["entered_at"].tolist() == [pd.Timestamp("2024-01-02 09:30"),
                                                       pd.Timestamp("2024-01-05 12:00")]


def test_extra_columns_and_currency_column(tmp_path):
    deals = [DEAL_HEADER + ",currency,region",
             "D1,2024-01-02,won,2024-01-20,1000,W,S,A,usd,North",
             "D2,2024-01-03,open,,5,W,S,A,,South",
             "D3,2024-01-03,open,,5,W,S,A,dollars,South"]
    history = [HISTORY_HEADER + ",note", "D1,Lead,2024-01-02,hello"]
    folder = write_dataset(tmp_path / "d", deals, history)
    with pytest.raises(DataError) as err:
        fk.load(folder)
    (p,) = err.value.problems
    assert (p.line, p.column, p.value) == (4, "currency", "dollars")
    ds = fk.load(folder, errors="report")
    assert list(ds.deals.columns) == list(DEAL_COLUMNS) + ["currency", "region"]
    assert ds.deals["currency"].tolist() == ["USD", "EUR"]
    assert ds.deals["region"].tolist() == ["North", "South"]
    assert ds.currencies == ["EUR", "USD"]
    assert list(ds.stage_history.columns) == ["deal_id", "stage", "stage_index", "entered_at"]


@pytest.mark.parametrize("text,value", [
    ("$1,200.50", 1200.5), ("1 200.50", 1200.5), ("1\u00a0200", 1200.0), ("EUR 300", 300.0),
    ("300 EUR", 300.0), ("€45", 45.0), ("1,234,567.8", 1234567.8), (".5", 0.5), ("0", 0.0),
    ("1e3", 1000.0), ("(25)", -25.0),
])
def test_amount_text_forms(text, value):
    v, bad = parse_amounts(pd.Series([text]))
    assert not bad.iloc[0] and v.iloc[0] == pytest.approx(value)


@pytest.mark.parametrize("text", ["1.200,50", "12,5", "1,2,3", "12abc", "inf", "nan", "--3", "1,20"])
def test_amounts_we_do_not_guess(text):
    v, bad = parse_amounts(pd.Series([text]))
    assert bad.iloc[0] and np.isnan(v.iloc[0])


@pytest.mark.parametrize("text", ["1899-12-31", "2200-01-01", "2024-02-30", "31/01/2024", "Jan 5"])
def test_timestamps_we_reject(text):
    v, bad = parse_timestamps(pd.Series([text]))
    assert bad.iloc[0] and pd.isna(v.iloc[0])


# ----------------------------------------------------------------------------------------------
# xlsx and parquet versions of the contract files load the same as CSV

def _same(a: fk.Dataset, b: fk.Dataset) -> None:
    pd.testing.assert_frame_equal(a.deals, b.deals)
    pd.testing.assert_frame_equal(a.stage_history, b.stage_history)
    assert (a.report.entries_added, a.report.repeats_merged) == (b.report.entries_added, b.report.repeats_merged)


@pytest.mark.parametrize("fmt", ["xlsx", "parquet"])
@pytest.mark.parametrize("typed", [False, True], ids=["text-cells", "typed-cells"])
def test_xlsx_and_parquet_load_the_same_as_csv(tmp_path, fmt, typed):
    deals = DEALS + ["D5,2024-01-06T14:30:00,lost,2024-02-01T09:00:00,1234.5,Ads,Set,Bo"]
    history = HISTORY + ["D5,Lead,2024-01-06T14:30:00", "D5,Qualified,2024-01-07T08:00:00"]
    csv_dir = write_dataset(tmp_path / "csv", deals, history)
    ref = fk.load(csv_dir)
    other = tmp_path / fmt
    other.mkdir()
    (other / "pipeline.yml").write_text(PIPELINE, encoding="utf-8")
    for stem in ("deals", "stage_history"):
        df = pd.read_csv(csv_dir / f"{stem}.csv", dtype=str, keep_default_na=False)
        if typed:
            for col in ("created_at", "closed_at", "entered_at"):
                if col in df:
                    df[col] = pd.to_datetime(df[col].replace("", None), format="ISO8601")
            if "amount" in df:
                df["amount"] = pd.to_numeric(df["amount"].replace("", None))
        if fmt == "xlsx":
            df.to_excel(other / f"{stem}.xlsx", index=False)
        else:
            df.to_parquet(other / f"{stem}.parquet", index=False)
    got = fk.load(other)
    _same(ref, got)
    assert {Path(k).suffix for k in got.report.accounts} == {f".{fmt}"}


def test_problem_lines_in_xlsx_are_sheet_rows(tmp_path):
    folder = write_dataset(tmp_path / "d", deals=[DEALS[0], DEALS[1], "D2,2024-01-03,won,,5,W,S,A"])
    df = pd.read_csv(folder / "deals.csv", dtype=str, keep_default_na=False)
    (folder / "deals.csv").unlink()
    df.to_excel(folder / "deals.xlsx", index=False)
    with pytest.raises(DataError) as err:
        fk.load(folder)
    assert [(Path(p.file).name, p.line, p.column) for p in err.value.problems
            if p.file.endswith("deals.xlsx")] == [("deals.xlsx", 3, "closed_at")]


# ----------------------------------------------------------------------------------------------
# Property: for random messy inputs, read == loaded + rejected per file, and strict mode raises
# iff lenient mode rejects something.

_IDS = ["D1", "D2", "D3", "D4", " D5 ", ""]
_DATES = ["2024-01-02", "2024-01-05T10:00:00", "2024-01-09T23:00:00+02:00", "2024-01-20", "",
          "2024-02-30", "soon", "2024-01-03 08:15"]
deal_row = st.tuples(
    st.sampled_from(_IDS), st.sampled_from(_DATES),
    st.sampled_from(["open", "won", "lost", "Won", "OPEN", "maybe", ""]),
    st.sampled_from(_DATES), st.sampled_from(["100", "0", "", "$1,200.50", "-5", "abc", "1.000,5"]),
    st.sampled_from(["Web", "", "Ads, paid"]), st.sampled_from(["Set", ""]), st.sampled_from(["Ann", ""]))
hist_row = st.tuples(st.sampled_from(_IDS + ["D9"]),
                     st.sampled_from(["Lead", "Qualified", "Proposal", "Won", "lead", ""]),
                     st.sampled_from(_DATES))


def _csv(header, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deals=st.lists(deal_row, min_size=1, max_size=12), hist=st.lists(hist_row, min_size=1, max_size=15))
def test_property_lenient_accounting_always_balances(deals, hist):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "d"
        folder.mkdir()
        (folder / "deals.csv").write_text(_csv(DEAL_COLUMNS, deals), encoding="utf-8")
        (folder / "stage_history.csv").write_text(_csv(HISTORY_COLUMNS, hist), encoding="utf-8")
        (folder / "pipeline.yml").write_text(PIPELINE, encoding="utf-8")
        before = _hashes(folder)
        ds = fk.load(folder, errors="report")
        r = ds.report
        d_acc, h_acc = r.accounts[str(folder / "deals.csv")], r.accounts[str(folder / "stage_history.csv")]
        assert (d_acc.read, h_acc.read) == (len(deals), len(hist))
        assert d_acc.read == d_acc.loaded + d_acc.rejected and d_acc.loaded == len(ds.deals)
        assert h_acc.read == h_acc.loaded + h_acc.rejected
        assert len(ds.stage_history) == h_acc.loaded + r.entries_added - r.repeats_merged
        assert len(r.rejected) == d_acc.rejected + h_acc.rejected
        # Every rejected row has a reason, and every problem is on a rejected row.
        assert r.rejected["reasons"].str.len().gt(0).all()
        assert {(p.file, p.line) for p in r.problems} == set(zip(r.rejected.file, r.rejected.line))
        # Loaded data keeps the contract: ids unique, every entry's deal loaded, closed deals closed.
        assert ds.deals["deal_id"].is_unique
        assert set(ds.stage_history["deal_id"]) == set(ds.deals["deal_id"])
        closed = ds.deals["status"].isin(["won", "lost"])
        assert ds.deals.loc[closed, "closed_at"].notna().all()
        assert ds.deals.loc[~closed, "closed_at"].isna().all()
        if len(r.rejected):
            with pytest.raises(DataError) as err:
                fk.load(folder)
            assert len(err.value.problems) == len(r.problems)
        else:
            strict = fk.load(folder)
            pd.testing.assert_frame_equal(strict.deals, ds.deals)
        assert _hashes(folder) == before


def test_allow_missing_amounts(tmp_path):
    deals = replaced(DEALS, 2, "D1,2024-01-02,won,2024-01-20,,Web,Set,Ann")
    folder = write_dataset(tmp_path / "d", deals)
    with pytest.raises(DataError, match="amount is empty on a won deal"):
        fk.load(folder)
    ok = write_dataset(tmp_path / "e", deals, pipeline=PIPELINE + "allow_missing_amounts: true\n")
    ds = fk.load(ok)
    assert np.isnan(ds.deals["amount"].iloc[0]) and ds.report.closed_without_amount == 1
    assert "won/lost deals with unknown amount (allowed by pipeline.yml): 1" in ds.report.summary()
    bad = write_dataset(tmp_path / "f", deals, pipeline=PIPELINE + "allow_missing_amounts: maybe\n")
    with pytest.raises(DataError, match="allow_missing_amounts must be true or false"):
        fk.load(bad)


def test_a_column_written_twice_in_the_csv_header_is_named(tmp_path):
    folder = tmp_path / "dup"
    folder.mkdir()
    (folder / "pipeline.yml").write_text("stages: [Lead, Won]\n".replace(", Won", ", Qualified"))
    (folder / "deals.csv").write_text(
        "deal_id,created_at,status,closed_at,amount,source,product,owner,amount\n"
        "D1,2024-01-01,open,,5,Web,Set,Ann,6\n")
    (folder / "stage_history.csv").write_text("deal_id,stage,entered_at\nD1,Lead,2024-01-01\n")
    with pytest.raises(DataError) as exc:
        fk.load(folder)
    [problem] = exc.value.problems
    assert (Path(problem.file).name, problem.line, problem.column) == ("deals.csv", 1, "amount")
    assert "more than once" in problem.reason


@pytest.mark.parametrize("text, column, value, reason", [
    ("stages: [Lead, yes]\n", "stages", True, "a stage name must be text: YAML reads yes/no/on/off"),
    ("stages: [Lead]\ndate_format: '%Q/%m/%Y'\n", "date_format", "%Q/%m/%Y",
     "date_format is not a valid strftime format"),
    ("stages: [Lead]\ndate_format: 'dd/mm/yyyy'\n", "date_format", "dd/mm/yyyy",
     "date_format is not a valid strftime format"),
])
def test_pipeline_settings_problems_are_named(tmp_path, text, column, value, reason):
    folder = write_dataset(tmp_path / "d", pipeline=text)
    with pytest.raises(DataError) as err:
        fk.load(folder)
    [p] = err.value.problems
    assert (Path(p.file).name, p.column, p.value) == ("pipeline.yml", column, value)
    assert p.reason.startswith(reason)


def test_pipeline_yml_that_is_a_folder_is_named(tmp_path):
    folder = write_dataset(tmp_path / "d")
    (folder / "pipeline.yml").unlink()
    (folder / "pipeline.yml").mkdir()
    with pytest.raises(DataError, match=r"pipeline\.yml: not a file \(a folder\?\)"):
        fk.load(folder)


def test_date_format_from_pipeline_yml_is_used(tmp_path):
    deals = [DEALS[0], "D1,31/01/2024,won,20/02/2024,1000,Web,Set,Ann"]
    history = [HISTORY[0], "D1,Lead,31/01/2024"]
    pipeline = PIPELINE + "date_format: '%d/%m/%Y'\n"
    ds = fk.load(write_dataset(tmp_path / "d", deals, history, pipeline))
    assert ds.deals.loc[0, "created_at"] == pd.Timestamp("2024-01-31")
    assert ds.deals.loc[0, "closed_at"] == pd.Timestamp("2024-02-20")


def _deals_file(tmp_path, text: bytes, name="d"):
    folder = write_dataset(tmp_path / name)
    (folder / "deals.csv").write_bytes(text)
    return folder


def test_a_user_column_starting_with_underscore_is_kept(tmp_path):
    text = "\n".join([DEALS[0] + ",_note"] + [r + ",x" for r in DEALS[1:]]) + "\n"
    ds = fk.load(_deals_file(tmp_path, text.encode()))
    assert list(ds.deals["_note"]) == ["x"] * (len(DEALS) - 1)


def test_reserved_column_names_are_refused(tmp_path):
    text = "\n".join([DEALS[0] + ",_line"] + [r + ",x" for r in DEALS[1:]]) + "\n"
    with pytest.raises(DataError, match="column name '_line' is reserved by funnelkit"):
        fk.load(_deals_file(tmp_path, text.encode()))


def test_lone_carriage_returns_and_quoted_breaks_give_editor_line_numbers(tmp_path):
    # line 1 header; line 2 D1 ends with a lone CR; D2 spans lines 3-4 (quoted break); D3 on line 5.
    rows = [DEALS[0], DEALS[1] + "\r", DEALS[2].replace(",Referral,", ',"Refer\nral",') + "\n",
            DEALS[3].replace(",2000,", ",xx,")]
    text = rows[0] + "\n" + rows[1] + rows[2] + rows[3] + "\n"
    with pytest.raises(DataError) as err:
        fk.load(_deals_file(tmp_path, text.encode()))
    [p] = [p for p in err.value.problems if p.file.endswith("deals.csv")]
    assert (p.line, p.column, p.value) == (5, "amount", "xx")


def test_an_unclosed_quote_is_named_with_its_line(tmp_path):
    rows = list(DEALS)
    rows[2] = rows[2].replace(",Referral,", ',"Referral,')
    rows.insert(3, "")   # a blank line sends the file to the exact reader
    text = "\n".join(rows) + "\n"
    with pytest.raises(DataError, match=r"line 3: a quoted cell opened .* never closed"):
        fk.load(_deals_file(tmp_path, text.encode()))


def test_a_stray_quote_inside_a_cell_is_read_as_text(tmp_path):
    rows = list(DEALS)
    rows[1] = rows[1].replace(",Set,", ',Set 12" screen,')
    rows.insert(2, "")
    ds = fk.load(_deals_file(tmp_path, ("\n".join(rows) + "\n").encode()))
    assert ds.deals.loc[0, "product"] == 'Set 12" screen'


def test_a_very_long_cell_is_read(tmp_path):
    rows = list(DEALS)
    rows[1] = rows[1].replace(",Web,", ',"' + "w" * 200_000 + '\nx",')
    ds = fk.load(_deals_file(tmp_path, ("\n".join(rows) + "\n").encode()))
    assert len(ds.deals.loc[0, "source"]) == 200_002


def test_a_blank_first_line_is_named(tmp_path):
    text = "\n" + "\n".join(DEALS) + "\n"
    with pytest.raises(DataError, match="line 1 is empty: the header must be the first line"):
        fk.load(_deals_file(tmp_path, text.encode()))


def test_fast_and_exact_readers_agree(tmp_path):
    from funnelkit.parsing import _read_csv_records, read_text_table
    folder = write_dataset(tmp_path / "d")
    fast = read_text_table(folder / "deals.csv", arrow_strings=True, with_lines=True)
    exact = _read_csv_records(folder / "deals.csv")
    assert fast.astype(str).values.tolist() == exact.astype(str).values.tolist()


def test_a_ragged_row_does_not_make_a_later_row_a_duplicate(tmp_path):
    deals = list(DEALS)
    deals.insert(1, DEALS[1] + ",extra")         # line 2: D1 with a field too many
    ds = fk.load(write_dataset(tmp_path / "d", deals), errors="report")
    rejected = ds.report.rejected
    assert list(rejected.loc[rejected["file"].str.endswith("deals.csv"), "line"]) == [2]
    assert "D1" in set(ds.deals["deal_id"])     # line 3's D1 loads: it is not a duplicate of line 2


# ----------------------------------------------------------------------------------------------
# Issue 9, hostile input: special files, alias bombs, formulas without values, currency columns

def test_special_files_are_file_problems_not_hangs(tmp_path):
    import os
    import time
    folder = write_dataset(tmp_path / "d")
    (folder / "deals.csv").unlink()
    os.symlink("/dev/zero", folder / "deals.csv")
    (folder / "stage_history.csv").unlink()
    os.mkfifo(folder / "stage_history.csv")
    started = time.monotonic()
    with pytest.raises(DataError) as err:
        fk.load(folder, errors="report")      # lenient too: nothing to read row by row
    assert time.monotonic() - started < 10
    assert [(Path(p.file).name, p.line, p.reason) for p in err.value.problems] == [
        ("deals.csv", None, "not a regular file but a character device: give a saved file"),
        ("stage_history.csv", None, "not a regular file but a named pipe (FIFO): give a saved file")]


def test_a_table_over_the_size_bound_is_a_file_problem(tmp_path, monkeypatch):
    folder = write_dataset(tmp_path / "d")
    monkeypatch.setenv("FUNNELKIT_MAX_INPUT_BYTES", "100")
    with pytest.raises(DataError) as err:
        fk.load(folder)
    assert [str(p) for p in err.value.problems] == [
        f"{folder / name}: file is {(folder / name).stat().st_size:,} bytes, more than the 100-byte limit "
        "on an input file; set FUNNELKIT_MAX_INPUT_BYTES (e.g. 8G) to read larger files"
        for name in ("deals.csv", "stage_history.csv")]
    monkeypatch.setenv("FUNNELKIT_MAX_INPUT_BYTES", "1M")
    assert len(fk.load(folder).deals) == 4


def test_yaml_alias_bomb_in_pipeline_is_a_named_problem(tmp_path):
    import time
    levels = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
        f"{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, n in zip("abcdefgh", "bcdefghi"))
    folder = write_dataset(tmp_path / "d", pipeline=levels + PIPELINE)
    started = time.monotonic()
    report = fk.validate(folder)
    assert time.monotonic() - started < 10
    assert [(p.line, p.reason) for p in report.problems] == [
        (1, "YAML anchors and aliases (&a, *a) are not accepted in a settings file (a few bytes of them can "
            "expand to gigabytes); write the values out")]


def test_partial_dates_load_when_date_format_says_so(tmp_path):
    deals = [DEAL_HEADER, "D1,2024-01,won,2024-03,1000,Web,Set,Ann"]
    pipeline = PIPELINE + 'date_format: "%Y-%m"\n'
    ds = fk.load(write_dataset(tmp_path / "d", deals, [HISTORY_HEADER, "D1,Lead,2024-01"], pipeline))
    assert ds.deals["closed_at"].tolist() == [pd.Timestamp("2024-03-01")]


def test_currency_marks_must_agree_with_the_currency_column(tmp_path):
    deals = [DEAL_HEADER + ",currency",
             "D1,2024-01-02,won,2024-01-20,€1000,Web,Set,Ann,EUR",      # agrees
             "D2,2024-01-03,won,2024-01-12,$500,Web,Set,Bo,CAD",       # $ may be CAD
             "D3,2024-01-04,won,2024-01-12,¥500,Web,Set,Bo,CNY",       # ¥ may be CNY
             "D4,2024-01-04,won,2024-01-12,GBP 70,Web,Set,Bo,",         # empty: the pipeline's EUR
             "D5,2024-01-04,won,2024-01-12,€9,Web,Set,Bo,USD",          # disagrees
             "D6,2024-01-04,won,2024-01-12,80 USD,Web,Set,Bo,USD"]      # agrees
    report = fk.validate(write_dataset(tmp_path / "d", deals, [HISTORY_HEADER, "D1,Lead,2024-01-02"]))
    got = [(p.line, p.value, p.reason) for p in report.problems if p.column == "amount"]
    assert got == [
        (5, "GBP 70", "the amount's currency mark (GBP) is not the deal's currency (EUR, from its currency "
                      "column): convert the amount, or give the deal its currency in a currency column"),
        (6, "€9", "the amount's currency mark (€) is not the deal's currency (USD, from its currency column): "
                  "convert the amount, or give the deal its currency in a currency column")]


def test_xlsx_formula_without_a_saved_value_is_named(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    folder = write_dataset(tmp_path / "d")
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in csv.reader(io.StringIO("\n".join(DEALS))):
        ws.append([int(v) if v.isdigit() else v for v in row])
    ws["E3"] = "=250*2"            # D2's amount: a formula openpyxl saves without its value
    wb.save(folder / "deals.xlsx")
    (folder / "deals.csv").unlink()
    with pytest.raises(DataError) as err:
        fk.load(folder)
    # Named once (not also as an empty amount); D2's stage entry goes with its deal.
    assert [(Path(p.file).name, p.line, p.column, p.value) for p in err.value.problems] == [
        ("deals.xlsx", 3, "amount", "=250*2"), ("stage_history.csv", 5, "deal_id", "D2")]
    assert err.value.problems[0].reason.startswith("a formula cell with no saved value")
    ds = fk.load(folder, errors="report")
    assert ds.deals["deal_id"].tolist() == ["D1", "D3", "D4"]


def test_a_load_reads_with_arrows_system_pool_then_gives_the_default_back(tmp_path, monkeypatch):
    # Arrow's default pool in the wheels (mimalloc) zeroed huge pages over and over while a folder
    # was read: a third of the load's CPU at 1M deals. The load swaps in the system pool and puts
    # mimalloc back, also when the data is bad, nested or in several threads; a pool chosen
    # otherwise stays.
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa

    from funnelkit import loading

    before = pa.default_memory_pool()
    if before.backend_name != "mimalloc":
        pytest.skip(f"Arrow's default pool here is {before.backend_name}, not mimalloc: nothing to swap")
    seen = []
    real = loading._load
    monkeypatch.setattr(loading, "_load",
                        lambda *a: seen.append(pa.default_memory_pool().backend_name) or real(*a))
    ds = fk.load(write_dataset(tmp_path / "good"))
    assert len(ds.deals) == len(DEALS) - 1 and seen == ["system"]
    assert pa.default_memory_pool().backend_name == "mimalloc"
    bad = write_dataset(tmp_path / "bad", deals=replaced(DEALS, 2, DEALS[1].replace(",won,", ",maybe,")))
    with pytest.raises(DataError, match="unknown status"):
        fk.load(bad)
    assert seen == ["system", "system"] and pa.default_memory_pool().backend_name == "mimalloc"
    with loading._system_arrow_pool():
        fk.load(write_dataset(tmp_path / "inner"))
        assert pa.default_memory_pool().backend_name == "system"
    assert pa.default_memory_pool().backend_name == "mimalloc"
    folders = [write_dataset(tmp_path / f"thread{i}") for i in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert [len(d.deals) for d in pool.map(fk.load, folders)] == [len(DEALS) - 1] * 4
    assert pa.default_memory_pool().backend_name == "mimalloc"
    try:
        chosen = pa.jemalloc_memory_pool()
    except NotImplementedError:
        return
    pa.set_memory_pool(chosen)
    try:
        fk.load(write_dataset(tmp_path / "chosen"))
        assert seen[-1] == "jemalloc" and pa.default_memory_pool().backend_name == "jemalloc"
    finally:
        pa.set_memory_pool(before)


def test_a_failure_in_either_reading_thread_reaches_the_caller_without_a_hang(tmp_path, monkeypatch):
    # The stage history is read and checked in a second thread, which waits for the deals' ids:
    # an unexpected failure on either side must reach the caller, not leave the other waiting. The
    # load runs in a thread of the test's own, so a hang fails the test instead of hanging it.
    import threading

    from funnelkit import loading

    folder = write_dataset(tmp_path / "d")

    def broken(*args, **kwargs):
        raise RuntimeError("broken on purpose")

    def outcome_of_load() -> BaseException | None:
        got: list = []

        def run():
            try:
                fk.load(folder)
                got.append(None)
            except BaseException as exc:        # noqa: BLE001 - handed to the test
                got.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(timeout=20)
        assert not worker.is_alive(), "fk.load hangs"
        return got[0]

    for name in ("_check_deals", "_history_cells", "_positions", "_finish_deals", "_normalise_history"):
        with monkeypatch.context() as m:
            m.setattr(loading, name, broken)
            exc = outcome_of_load()
            assert isinstance(exc, RuntimeError) and "broken on purpose" in str(exc), name
    assert outcome_of_load() is None


def test_a_load_without_threads_gives_the_same(tmp_path, monkeypatch):
    # While the interpreter shuts down (a load in an atexit handler) no thread can start: the load
    # then does the history's part itself, with the same outcome.
    from concurrent.futures import ThreadPoolExecutor

    deals = list(DEALS)
    deals[3] = "D3,2024-01-04,pending,,2000,Web,Collection,Ann"
    folder = write_dataset(tmp_path / "d", deals, list(HISTORY) + ["D9,Nope,2024-01-06"])
    expected = fk.load(folder, errors="report")

    def refused(self, fn, *args, **kwargs):
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr(ThreadPoolExecutor, "submit", refused)
    got = fk.load(folder, errors="report")
    pd.testing.assert_frame_equal(got.deals, expected.deals)
    pd.testing.assert_frame_equal(got.stage_history, expected.stage_history)
    assert [str(p) for p in got.report.problems] == [str(p) for p in expected.report.problems]
    assert [(Path(p.file).name, p.line, p.column) for p in got.report.problems] == [
        ("deals.csv", 4, "status"), ("stage_history.csv", 6, "deal_id"), ("stage_history.csv", 7, "deal_id"),
        ("stage_history.csv", 9, "deal_id"), ("stage_history.csv", 9, "stage")]


def test_the_readers_are_imported_before_the_second_thread_starts(tmp_path):
    # Two threads importing openpyxl at once could see it half initialised ("partially initialized
    # module 'openpyxl'"), and a fresh process's first xlsx load failed now and then: the loader
    # imports every reader its tables need before the history's thread starts.
    import subprocess
    import sys

    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "pipeline.yml").write_text(PIPELINE, encoding="utf-8")
    for stem, lines in (("deals", DEALS), ("stage_history", HISTORY)):
        pd.read_csv(io.StringIO("\n".join(lines)), dtype=str, keep_default_na=False).to_excel(
            folder / f"{stem}.xlsx", index=False)
    code = (
        "import sys, concurrent.futures as cf\n"
        "import funnelkit as fk\n"
        "assert 'openpyxl' not in sys.modules\n"
        "seen = []\n"
        "submit = cf.ThreadPoolExecutor.submit\n"
        "def watched(self, fn, *a, **k):\n"
        "    seen.append('openpyxl' in sys.modules)\n"
        "    return submit(self, fn, *a, **k)\n"
        "cf.ThreadPoolExecutor.submit = watched\n"
        "print(len(fk.load(sys.argv[1]).deals), seen)\n")
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "4 [True, True]"


def test_problems_of_both_tables_are_found_while_read_side_by_side(tmp_path):
    # Deals and history are checked in two threads: each table's problems come in line order,
    # those of one line in the order of its columns, the deals' file first.
    deals = list(DEALS)
    deals[2] = "D2,2024-01-03,lost,2024-01-02,500,Web,Set,Ann"         # closed before created
    history = list(HISTORY) + ["D9,Nope,soon", "D1,Lead,"]
    folder = write_dataset(tmp_path / "d", deals, history)
    with pytest.raises(DataError) as err:
        fk.load(folder)
    got = [(Path(p.file).name, p.line, p.column) for p in err.value.problems]
    assert got == [("deals.csv", 3, "closed_at"),
                   ("stage_history.csv", 5, "deal_id"),
                   ("stage_history.csv", 9, "deal_id"), ("stage_history.csv", 9, "stage"),
                   ("stage_history.csv", 9, "entered_at"), ("stage_history.csv", 10, "entered_at")]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6), unique=True,
                max_size=40),
       st.sampled_from(["object", "string[pyarrow]", "str"]))
def test_sort_ranks_order_the_ids_as_a_sorted_factorisation_does(ids, dtype):
    # The normalisation orders each deal's entries by the ranks the history's thread found; they
    # must order the ids exactly as pd.factorize(sort=True), which it used before, on any text
    # read from a file (text of UTF-8: no lone surrogate, which Arrow's text cannot hold; and no NUL:
    # pandas 2 factorises "" and "\x00" as one value; the loader rejects such an id).
    from funnelkit.loading import _sort_ranks

    distinct = pd.Index(ids, dtype=dtype)
    expected, _ = pd.factorize(pd.Series(ids, dtype=dtype), sort=True)
    assert _sort_ranks(distinct).tolist() == list(expected)
