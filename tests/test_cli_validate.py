"""`funnelkit validate`: exit codes, the report, the rejected-rows CSV, and never a traceback."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from funnelkit.cli import main

from contract_cases import DEALS, HISTORY, replaced, write_dataset


def _broken(folder: Path) -> Path:
    deals = replaced(DEALS, 3, "D2,2024-01-03,lost,,500,Referral,Set,Bo")   # no closed_at
    return write_dataset(folder, deals, HISTORY + ["D1,Won,2024-01-11"])       # not a stage


def _hashes(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "funnelkit", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_clean_data_set_exits_0(tmp_path, capsys):
    folder = write_dataset(tmp_path / "d")
    assert main(["validate", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"{folder / 'deals.csv'}: 4 rows read = 4 loaded + 0 rejected" in out
    assert "no problems found" in out


def test_shipped_sample_exits_0(sample_path, capsys):
    assert main(["validate", str(sample_path)]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_problems_exit_1_with_the_report_and_no_traceback(tmp_path):
    folder = _broken(tmp_path / "d")
    before = _hashes(folder)
    r = _run("validate", "d", cwd=tmp_path)
    assert r.returncode == 1
    assert "d/deals.csv, line 3, column 'closed_at', value empty: a lost deal needs closed_at" in r.stdout
    assert "d/stage_history.csv, line 9, column 'stage', value 'Won': stage not in pipeline.yml" in r.stdout
    assert "d/stage_history.csv, line 5, column 'deal_id', value 'D2': the deal's own row" in r.stdout
    assert "3 problem(s):" in r.stdout
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    # Strict validate writes nothing anywhere.
    assert _hashes(folder) == before and sorted(p.name for p in tmp_path.iterdir()) == ["d"]


@pytest.mark.parametrize("breakage", ["missing file", "missing column", "missing folder", "bad yaml"])
def test_folder_level_problems_exit_1_without_traceback(tmp_path, breakage):
    folder = write_dataset(tmp_path / "d")
    if breakage == "missing file":
        (folder / "stage_history.csv").unlink()
    elif breakage == "missing column":
        (folder / "deals.csv").write_text("deal_id,created_at\nD1,2024-01-01\n")
    elif breakage == "bad yaml":
        (folder / "pipeline.yml").write_text("stages: [Lead\n")
    else:
        folder = tmp_path / "nowhere"
    r = _run("validate", str(folder), "--lenient", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "problem(s):" in r.stdout and str(folder) in r.stdout
    assert "Traceback" not in r.stderr


def test_lenient_writes_rejected_rows_outside_the_input_and_exits_1(tmp_path, capsys):
    folder = _broken(tmp_path / "d")
    before = _hashes(folder)
    out = tmp_path / "out"
    # Not clean, so non-zero, but the accounting and the rejected rows are there.
    assert main(["validate", str(folder), "--lenient", "--out", str(out)]) == 1
    text = capsys.readouterr().out
    assert f"{folder / 'deals.csv'}: 4 rows read = 3 loaded + 1 rejected" in text
    assert f"{folder / 'stage_history.csv'}: 8 rows read = 6 loaded + 2 rejected" in text
    written = out / "d.rejected.csv"
    assert f"rejected rows with their reasons: {written}" in text
    rej = pd.read_csv(written)
    assert [(Path(f).name, n) for f, n in zip(rej.file, rej.line)] == [
        ("deals.csv", 3), ("stage_history.csv", 5), ("stage_history.csv", 9)]
    assert rej.reasons.iloc[2].startswith("stage: stage not in pipeline.yml")
    assert _hashes(folder) == before


def test_lenient_refuses_to_write_into_the_input_folder(tmp_path):
    folder = _broken(tmp_path / "d")
    before = _hashes(folder)
    for target in ("d", "d/reports"):
        r = _run("validate", "d", "--lenient", "--out", target, cwd=tmp_path)
        assert r.returncode == 2
        assert "is inside the input folder" in r.stderr and "Traceback" not in r.stderr
    assert _hashes(folder) == before and not (folder / "reports").exists()


def test_lenient_default_out_is_reports_in_the_working_folder(tmp_path):
    _broken(tmp_path / "d")
    r = _run("validate", "d", "--lenient", cwd=tmp_path)
    assert r.returncode == 1
    assert (tmp_path / "reports" / "d.rejected.csv").exists()
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["deals.csv", "pipeline.yml", "stage_history.csv"]


def test_json_format(tmp_path, capsys):
    folder = _broken(tmp_path / "d")
    assert main(["validate", str(folder), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["files"][str(folder / "deals.csv")] == {"read": 4, "loaded": 3, "rejected": 1}
    # D2 is rejected with its entry; every loaded deal has an entry at its creation.
    assert data["entries_added"] == 0 and data["repeats_merged"] == 0
    assert len(data["problems"]) == 3


def test_clean_lenient_writes_no_rejected_file(tmp_path):
    write_dataset(tmp_path / "d")
    r = _run("validate", "d", "--lenient", cwd=tmp_path)
    assert r.returncode == 0 and not (tmp_path / "reports").exists()


def test_a_fixed_data_set_clears_the_earlier_rejected_file(tmp_path):
    folder = _broken(tmp_path / "d")
    r = _run("validate", "d", "--lenient", cwd=tmp_path)
    assert r.returncode == 1 and (tmp_path / "reports" / "d.rejected.csv").exists()
    write_dataset(folder)                       # the data set, fixed
    r = _run("validate", "d", "--lenient", cwd=tmp_path)
    assert r.returncode == 0 and "removed the earlier" in r.stdout
    assert not (tmp_path / "reports" / "d.rejected.csv").exists()


def test_a_bad_targets_file_is_named_by_validate(tmp_path, capsys):
    folder = write_dataset(tmp_path / "d")
    (folder / "targets.csv").write_text("period,owner,target\n2026Q2,,900000\nQ3,,lots\n", encoding="utf-8")
    assert main(["validate", str(folder)]) == 1
    out = capsys.readouterr().out
    assert f"{folder / 'targets.csv'}, line 3, column 'period', value 'Q3': not a period" in out
    assert f"{folder / 'targets.csv'}, line 3, column 'target', value 'lots': not a number" in out
    assert "2 problem(s):" in out


def test_a_good_targets_file_keeps_validate_clean(tmp_path, capsys):
    folder = write_dataset(tmp_path / "d")
    (folder / "targets.csv").write_text("period,owner,target\n2026Q2,,900000\n2026Q2,Ann,1\n", encoding="utf-8")
    assert main(["validate", str(folder)]) == 0
    assert "no problems found" in capsys.readouterr().out
