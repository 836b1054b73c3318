"""The CLI's promise for failures of the machine, not of the data: a full disk (ENOSPC) or an odd
--out gives "funnelkit CMD: PATH: reason" and exit 2, never a traceback, and leaves nothing
half-written (issue 9, item 11)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import funnelkit as fk
from funnelkit.cli import main

from contract_cases import DEALS, HISTORY, replaced, write_dataset

HS_HEAD = "Record ID,Deal Name,Deal Stage,Close Date,Deal owner,Amount,Create Date"
HS_ROWS = ["1,Alpha,Discovery,2024-04-30 10:00,Ann,1000,2024-01-10 09:00",
           "2,Beta,Closed won,2024-02-20 12:00,Bo,300,2024-01-20 09:00"]


def _export(folder: Path, rows=HS_ROWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "deals-2024-03-01.csv"
    path.write_text("\n".join([HS_HEAD] + rows) + "\n", encoding="utf-8")
    return path


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and "Errno" not in err


# ----------------------------------------------------------------------------------------------
# A full disk

def test_validate_lenient_on_a_full_disk(tmp_path, monkeypatch, capsys):
    data = write_dataset(tmp_path / "d", replaced(DEALS, 3, "D2,2024-01-03,lost,,500,Referral,Set,Bo"), HISTORY)
    out = tmp_path / "out"
    monkeypatch.setattr(Path, "write_bytes", _disk_full)
    assert main(["validate", str(data), "--lenient", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"funnelkit validate: {out / 'd.rejected.csv'}: no space left on device" in err
    _no_traceback(err)
    assert list(out.iterdir()) == []             # no half-written CSV, no temporary file


def test_report_on_a_full_disk(tmp_path, monkeypatch, capsys):
    import papermill

    data = write_dataset(tmp_path / "d")
    out = tmp_path / "reports"
    monkeypatch.setattr(papermill, "execute_notebook", _disk_full)    # the executed notebook's write
    assert main(["report", str(data), "--quarter", "2024Q1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"funnelkit report: {out / '2024Q1.ipynb'}: no space left on device" in err
    _no_traceback(err)
    assert list(out.iterdir()) == []


def test_import_on_a_full_disk(tmp_path, monkeypatch, capsys):
    import pandas as pd

    src = _export(tmp_path / "src")
    out = tmp_path / "data"
    monkeypatch.setattr(pd.DataFrame, "to_csv", _disk_full)
    assert main(["import", "hubspot", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"funnelkit import: {out}: no space left on device" in err
    _no_traceback(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]   # no --out, no temporary folder


# ----------------------------------------------------------------------------------------------
# --out a symbolic link, and --out /

def test_import_force_through_a_symlinked_out(tmp_path, capsys):
    src = _export(tmp_path / "src")
    real, link = tmp_path / "real", tmp_path / "link"
    assert main(["import", "hubspot", str(src), "--out", str(real)]) == 0
    link.symlink_to(real)
    _export(tmp_path / "src", HS_ROWS + ["3,Gamma,Discovery,,Cy,,2024-02-01 09:00"])
    for _ in range(2):                              # and again: it never stays broken
        assert main(["import", "hubspot", str(src), "--out", str(link), "--force"]) == 0
        assert link.is_symlink() and link.resolve() == real.resolve()
        assert len(fk.load(link).deals) == 3 and len(fk.load(real).deals) == 3
        assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real", "src"]   # no .NAME.old
    capsys.readouterr()


def test_import_cleans_a_leftover_old_link(tmp_path, capsys):
    """What an earlier version left behind (a `.real.old` link) is removed, not followed."""
    src = _export(tmp_path / "src")
    real = tmp_path / "real"
    assert main(["import", "hubspot", str(src), "--out", str(real)]) == 0
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious.txt").write_text("x")
    (tmp_path / ".real.old").symlink_to(keep)
    assert main(["import", "hubspot", str(src), "--out", str(real), "--force"]) == 0
    assert not os.path.lexists(tmp_path / ".real.old") and (keep / "precious.txt").exists()
    capsys.readouterr()


def test_import_out_root_is_refused_clearly(tmp_path, capsys):
    src = _export(tmp_path / "src")
    assert main(["import", "hubspot", str(src), "--out", "/", "--force"]) == 2
    err = capsys.readouterr().err
    assert "funnelkit import: --out / is the root folder: give a new folder for the data set" in err
    assert "empty name" not in err
    _no_traceback(err)
