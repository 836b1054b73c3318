"""A data set folder whose ``database.yml`` points at tables in a database: the same numbers as the
folder's CSV files, every command works on it, and its mistakes are named."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.cli import main
from funnelkit.validation import DataError

from contract_cases import write_dataset
from engines import POSTGRES_ENV, put_tables, raw_tables


def _duckdb_folder(tmp_path: Path, source: Path, tables: dict[str, pd.DataFrame] | None = None,
                   settings: str = "deals: opps\nstage_history: opp_stages\n") -> Path:
    """``source``'s tables (or ``tables`` by name) in a DuckDB file, and a folder with ``source``'s
    pipeline.yml and a database.yml pointing at them (``settings`` besides the url)."""
    import ibis

    if tables is None:
        deals, hist = raw_tables(fk.load(source))
        tables = {"opps": deals, "opp_stages": hist}
    con = ibis.duckdb.connect(str(tmp_path / "crm.duckdb"))
    for name, frame in tables.items():
        con.create_table(name, frame)
    con.disconnect()
    folder = tmp_path / "db"
    folder.mkdir()
    shutil.copy(source / "pipeline.yml", folder / "pipeline.yml")
    (folder / "database.yml").write_text(f"url: duckdb://{tmp_path}/crm.duckdb\n{settings}", encoding="utf-8")
    return folder


def _metrics_json(folder: Path, capsys) -> dict:
    assert main(["metrics", str(folder), "--quarter", "2024Q1", "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_database_folder_gives_the_csv_folders_numbers(tmp_path, capsys):
    csv = write_dataset(tmp_path / "csv")
    db = _duckdb_folder(tmp_path, csv)
    ds = fk.load(db)
    assert type(ds).__name__ == "DatabaseDataset" and ds.path == db
    assert sorted(ds.deals["deal_id"]) == ["D1", "D2", "D3", "D4"]
    from_db, from_csv = _metrics_json(db, capsys), _metrics_json(csv, capsys)
    assert from_db == from_csv
    # hand-checked: one won deal of 1000 (D1), one lost (D2), two open
    assert from_db["dataset"]["deals"] == 4 and from_db["dataset"]["currency"] == "EUR"
    assert main(["validate", str(db)]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_a_data_set_derived_from_a_database_one_lives_in_memory(tmp_path):
    from dataclasses import replace

    ds = fk.load(_duckdb_folder(tmp_path, write_dataset(tmp_path / "csv")))
    early = replace(ds, deals=ds.deals[ds.deals["deal_id"] < "D3"])
    assert type(early) is fk.Dataset and early.deals["deal_id"].tolist() == ["D1", "D2"]
    assert early.pipeline == ds.pipeline and early.path == ds.path


def _with_change_log(tmp_path: Path, rows: list[str] | None = None) -> tuple[Path, Path]:
    """A sample with a change log as CSV files, and the same tables in a DuckDB file (``rows``, when
    given, are extra change-log rows added to the database's table only)."""
    from funnelkit.sample import write_sample

    csv = write_sample(tmp_path / "csv", deals=300, seed=5, with_changes=True)
    deals, hist = raw_tables(fk.load(csv))
    changes = pd.read_csv(csv / "deal_changes.csv", dtype=str, keep_default_na=False)
    if rows:
        changes = pd.concat([changes, pd.DataFrame([r.split(",") for r in rows], columns=changes.columns)])
    changes["changed_at"] = pd.to_datetime(changes["changed_at"], format="ISO8601").astype("datetime64[us]")
    tables = {"deals": deals, "stage_history": hist, "deal_changes": changes}
    return csv, _duckdb_folder(tmp_path, csv, tables, settings="deal_changes: deal_changes\n")


def test_a_change_log_in_the_database_gives_the_csv_change_logs_numbers(tmp_path, capsys):
    csv, db = _with_change_log(tmp_path)
    ds, ref = fk.load(db), fk.load(csv)
    assert len(ds.deal_changes) == len(ref.deal_changes) > 500
    pd.testing.assert_frame_equal(ds.deal_changes, ref.deal_changes)
    assert ds.report.earliest_known == ref.report.earliest_known
    assert main(["metrics", str(db), "--quarter", "2025Q3", "--format", "json"]) == 0
    from_db = json.loads(capsys.readouterr().out)
    assert main(["metrics", str(csv), "--quarter", "2025Q3", "--format", "json"]) == 0
    assert from_db == json.loads(capsys.readouterr().out)
    moves = {w["window"]: w["movements"] for w in from_db["pipeline_waterfall"]}
    assert moves["period"]["pushed_out"]["deals"] > 0     # the change log is used, not ignored


@pytest.mark.engines
def test_a_change_log_in_postgres_gives_the_csv_change_logs_waterfall(tmp_path, request):
    from funnelkit.sample import write_sample

    csv = write_sample(tmp_path / "csv", deals=300, seed=5, with_changes=True)
    ref = fk.load(csv)
    deals, hist = raw_tables(ref)
    changes = pd.read_csv(csv / "deal_changes.csv", dtype=str, keep_default_na=False)
    changes["changed_at"] = pd.to_datetime(changes["changed_at"], format="ISO8601").astype("datetime64[us]")
    con, names = put_tables("postgres", request, deals, hist, changes)
    ds = fk.connect(con, deals=names[0], stage_history=names[1], deal_changes=names[2], pipeline=csv)
    pd.testing.assert_frame_equal(ds.deal_changes, ref.deal_changes)
    period = fk.Period.quarter("2025Q3")
    for window in (None, period):
        got = fk.metrics.pipeline_waterfall(ds, period.start, period.as_of, window=window)
        want = fk.metrics.pipeline_waterfall(ref, period.start, period.as_of, window=window)
        pd.testing.assert_frame_equal(got.movements, want.movements)
        assert (got.start_amount, got.end_amount) == pytest.approx((want.start_amount, want.end_amount))
    got, want = (fk.metrics.amount_by(d, period, by="source") for d in (ds, ref))
    pd.testing.assert_frame_equal(got, want)        # open amounts as known, computed in Postgres


def test_status_changes_in_the_database_give_the_csv_folders_reopenings(tmp_path):
    from reopen_hand_data import CHANGES, END, START, write_reopen

    csv = write_reopen(tmp_path / "csv")
    deals, hist = raw_tables(fk.load(csv))
    changes = pd.DataFrame(CHANGES, columns=["deal_id", "changed_at", "field", "value"])
    changes["changed_at"] = pd.to_datetime(changes["changed_at"]).astype("datetime64[us]")
    db = _duckdb_folder(tmp_path, csv, {"deals": deals, "stage_history": hist, "deal_changes": changes},
                        settings="deal_changes: deal_changes\n")
    ds, ref = fk.load(db), fk.load(csv)
    pd.testing.assert_frame_equal(ds.deal_changes, ref.deal_changes)
    got, want = (fk.metrics.pipeline_waterfall(d, START, END) for d in (ds, ref))
    pd.testing.assert_frame_equal(got.movements, want.movements)
    assert got.movements.set_index("movement").loc["reopened", "deals"] == 4      # the hand count
    # A bad status in the table is named with its row, like a CSV's.
    bad = pd.concat([changes, pd.DataFrame({"deal_id": ["T"], "changed_at": [pd.Timestamp("2026-04-02")],
                                            "field": ["status"], "value": ["reopened"]})])
    bad["changed_at"] = bad["changed_at"].astype("datetime64[us]")
    (tmp_path / "two").mkdir()
    db2 = _duckdb_folder(tmp_path / "two", csv, {"deals": deals, "stage_history": hist, "deal_changes": bad},
                         settings="deal_changes: deal_changes\n")
    with pytest.raises(DataError) as err:
        fk.load(db2)
    assert [p.reason for p in err.value.problems] == ["unknown status (expected open, won or lost, in any case)"]


def test_a_bad_change_in_the_database_is_named_with_its_row(tmp_path):
    _, db = _with_change_log(tmp_path, ["D00001,2024-10-05T00:00:00,colour,red"])
    with pytest.raises(DataError) as err:
        fk.load(db)
    where = "table deal_changes (row, in deal_id, changed_at, field order), line 1"   # sorted first
    assert [str(p) for p in err.value.problems] == [
        f"{where}, column 'field', value 'colour': unknown field (expected amount, expected_close_date, "
        "forecast_category or status)",
        f"{where}, column 'changed_at', value '2024-10-05T00:00:00': change before the deal's created_at "
        "(2026-05-09 14:00:00)"]
    report = fk.validate(db)
    assert [p.reason for p in report.problems] == [p.reason for p in err.value.problems]


def test_database_settings_mistakes_are_named(tmp_path, monkeypatch):
    folder = write_dataset(tmp_path / "d")
    for name in ("deals.csv", "stage_history.csv"):
        (folder / name).unlink()
    settings = folder / "database.yml"
    settings.write_text("url: postgres://me@localhost/${FK_NO_SUCH_VARIABLE}\ntables: x\n", encoding="utf-8")
    monkeypatch.delenv("FK_NO_SUCH_VARIABLE", raising=False)
    with pytest.raises(DataError) as err:
        fk.load(folder)
    assert [str(p) for p in err.value.problems] == [
        f"{settings}, line 2, column 'tables', value 'x': unknown key "
        "(database.yml takes url, deals, stage_history, deal_changes, database)",
        f"{settings}, line 1, column 'url', value '${{FK_NO_SUCH_VARIABLE}}': environment variable not set",
    ]
    settings.write_text("deals: 3\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        fk.load(folder)
    assert [p.reason for p in err.value.problems] == [
        "expected text", "missing: the database's URL (e.g. postgres://user@host:5432/db or "
        "duckdb:///path/crm.duckdb)"]


def test_a_failed_connection_shows_the_url_without_its_password(tmp_path, capsys):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "pipeline.yml").write_text("stages: [Lead, Won]\n", encoding="utf-8")
    (folder / "database.yml").write_text("url: postgres://me:s3cret@127.0.0.1:1/crm\n", encoding="utf-8")
    assert main(["validate", str(folder)]) == 1
    out = capsys.readouterr().out
    assert f"{folder / 'database.yml'}, line 1, column 'url', value 'postgres://me:***@127.0.0.1:1/crm': " \
           "cannot connect" in out
    assert "s3cret" not in out


def test_a_folder_with_both_tables_and_a_database_is_refused(tmp_path):
    folder = write_dataset(tmp_path / "d")
    (folder / "database.yml").write_text("url: duckdb://\n", encoding="utf-8")
    with pytest.raises(DataError, match="also holds deals, stage_history tables: a data set folder holds "
                                        "its tables or a database.yml pointing at them, not both"):
        fk.load(folder)


def test_a_missing_table_is_named(tmp_path):
    csv = write_dataset(tmp_path / "csv")
    db = _duckdb_folder(tmp_path, csv)
    (db / "database.yml").write_text(f"url: duckdb://{tmp_path}/crm.duckdb\ndeals: nope\n", encoding="utf-8")
    with pytest.raises(DataError, match="table nope: cannot open the deals table"):
        fk.load(db)


def _visible_text(html_file: Path) -> str:
    from bs4 import BeautifulSoup

    text = BeautifulSoup(html_file.read_text(encoding="utf-8"), "html.parser").get_text(" ")
    return re.sub(r"\s+", " ", text)


@pytest.mark.engines
@pytest.mark.slow
def test_a_report_renders_from_a_postgres_held_data_set(tmp_path, request):
    """The same quarter rendered from CSV files and from Postgres tables reads the same, word for word
    (apart from where the data came from)."""
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_ENV} (make engines starts one on localhost)")
    from funnelkit.sample import write_sample

    csv = write_sample(tmp_path / "csv", deals=400, seed=3)
    deals, hist = raw_tables(fk.load(csv))
    _, names = put_tables("postgres", request, deals, hist)
    db = tmp_path / "db"
    db.mkdir()
    shutil.copy(csv / "pipeline.yml", db / "pipeline.yml")
    (db / "database.yml").write_text(
        f"url: ${{{POSTGRES_ENV}}}\ndeals: {names[0]}\nstage_history: {names[1]}\n", encoding="utf-8")
    pages = {}
    for name, folder in (("csv", csv), ("db", db)):
        assert main(["report", str(folder), "--quarter", "2025Q2", "--out", str(tmp_path / f"out-{name}")]) == 0
        [page] = (tmp_path / f"out-{name}").glob("*.html")
        # The rendered-on date is today's: the two renders may fall either side of midnight (a CI run did).
        text = re.sub(r"Rendered on \d{4}-\d{2}-\d{2}", "Rendered on DATE", _visible_text(page))
        pages[name] = text.replace(str(folder), "FOLDER")
    assert "Deals per stage" in pages["db"] and "Rendered on DATE" in pages["db"]
    assert pages["db"] == pages["csv"]
