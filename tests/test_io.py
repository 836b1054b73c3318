"""Atomic output: all or nothing, no temporary file left behind (not even by a killed process, once
the next write comes), usual permissions, a full disk named; inputs: only regular files, bounded;
settings YAML without aliases."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from funnelkit.io import (MAX_SETTINGS_BYTES, AliasRefused, InputRefused, atomic_path, atomic_write_text,
                          check_input_file, is_inside, max_input_bytes, read_settings_yaml,
                          remove_stale_temp_files)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out" / "report.html"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]


def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("good")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("render failed")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_outputs_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        target = atomic_write_text(tmp_path / "a.csv", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_is_inside(tmp_path):
    assert is_inside(tmp_path / "a" / "b", tmp_path)
    assert is_inside(tmp_path, tmp_path)
    assert not is_inside(tmp_path.parent, tmp_path)


# ----------------------------------------------------------------------------------------------
# A full disk: the target keeps its old content, no temporary file stays, the error names the target

def test_full_disk_names_the_target_and_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "2024Q1.html"
    target.write_text("old report")

    def full(self, data):
        Path.write_text(self, "half")        # part of it got written before the disk filled up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError) as err:
        atomic_write_text(target, "new report")
    assert (err.value.errno, err.value.filename) == (errno.ENOSPC, str(target))
    assert target.read_text() == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["2024Q1.html"]


# ----------------------------------------------------------------------------------------------
# Stale temporary files of our own naming, left by a killed process, go on the next write

_HOLD = """
import sys, time
from funnelkit.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_text("half an executed notebook")
    print(tmp.name, flush=True)
    time.sleep(600)
"""


def _age(path: Path, seconds: float = 60) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_temp_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "2024Q1.ipynb"
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        name = proc.stdout.readline().strip()
        left = tmp_path / name
        assert left.exists() and name.startswith(".2024Q1.ipynb.") and name.endswith(".tmp")
        _age(left)
        # While the writer lives, its temporary file is in use: never taken as stale.
        assert remove_stale_temp_files(target) == [] and left.exists()
        proc.send_signal(signal.SIGKILL)       # a killed render: its `finally` never runs
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdout.close()
    assert left.exists()
    atomic_write_text(target, "the next run")
    assert not left.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["2024Q1.ipynb"]


def test_only_our_own_stale_temp_files_are_removed(tmp_path):
    target = tmp_path / "2024Q1.ipynb"
    names = {
        ".2024Q1.ipynb.k3j_9x0a.tmp": False,      # ours and stale: removed
        ".2024Q1.ipynb.tmp": True,                 # not our naming
        ".2024Q1.ipynb.k3j_9x0a.txt": True,        # not our naming
        ".2024Q2.ipynb.k3j_9x0a.tmp": True,        # another target's
        "2024Q1.ipynb.k3j_9x0a.tmp": True,         # not hidden: not ours
        ".2024Q1.ipynb.fresh000.tmp": True,        # ours but seconds old (may be about to be locked)
    }
    for name in names:
        (tmp_path / name).write_text("x")
        if name != ".2024Q1.ipynb.fresh000.tmp":
            _age(tmp_path / name)
    os.symlink(tmp_path / "elsewhere", tmp_path / ".2024Q1.ipynb.link0000.tmp")   # a link: never ours
    removed = remove_stale_temp_files(target)
    assert [p.name for p in removed] == [".2024Q1.ipynb.k3j_9x0a.tmp"]
    kept = {p.name for p in tmp_path.iterdir()}
    assert kept == {n for n, keep in names.items() if keep} | {".2024Q1.ipynb.link0000.tmp"}


# ----------------------------------------------------------------------------------------------
# Inputs: regular files only (checked before opening), bounded

def test_special_files_are_refused_before_opening(tmp_path):
    fifo = tmp_path / "deals.csv"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(InputRefused, match="not a regular file but a named pipe"):
        check_input_file(fifo)                 # opening it would block for ever
    assert time.monotonic() - started < 5
    link = tmp_path / "zero.csv"
    os.symlink("/dev/zero", link)
    with pytest.raises(InputRefused, match="not a regular file but a character device"):
        check_input_file(link)
    with pytest.raises(InputRefused, match="not a regular file but a folder"):
        check_input_file(tmp_path)
    ok = tmp_path / "ok.csv"
    ok.write_text("a\n1\n")
    os.symlink(ok, tmp_path / "link.csv")
    check_input_file(tmp_path / "link.csv")    # a link to a regular file is fine


def test_input_size_bound_is_named_and_overridable(tmp_path, monkeypatch):
    f = tmp_path / "deals.csv"
    f.write_bytes(b"x" * 2048)
    monkeypatch.setenv("FUNNELKIT_MAX_INPUT_BYTES", "1K")
    assert max_input_bytes() == 1024
    with pytest.raises(InputRefused, match="file is 2,048 bytes, more than the 1,024-byte limit.*"
                                           "FUNNELKIT_MAX_INPUT_BYTES"):
        check_input_file(f)
    monkeypatch.setenv("FUNNELKIT_MAX_INPUT_BYTES", "2048")
    check_input_file(f)
    monkeypatch.delenv("FUNNELKIT_MAX_INPUT_BYTES")
    assert max_input_bytes() == 2 * 1024**3
    monkeypatch.setenv("FUNNELKIT_MAX_INPUT_BYTES", "lots")
    with pytest.raises(ValueError, match="FUNNELKIT_MAX_INPUT_BYTES='lots' is not a size"):
        max_input_bytes()


# ----------------------------------------------------------------------------------------------
# Settings YAML: no anchors or aliases (a billion-laughs file is refused at once), bounded

_BOMB = "".join(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 12))


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    p = tmp_path / "pipeline.yml"
    p.write_text('l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + _BOMB
                 + "stages: [Lead]\n")
    assert p.stat().st_size < 1000             # 9**12 strings once expanded
    started = time.monotonic()
    with pytest.raises(AliasRefused) as err:
        read_settings_yaml(p)
    assert time.monotonic() - started < 5
    assert err.value.problem_mark.line == 0 and "YAML anchors and aliases (&l0, *l0)" in str(err.value)


def test_settings_yaml_reads_plain_files_and_refuses_big_ones(tmp_path):
    p = tmp_path / "pipeline.yml"
    p.write_text("\ufeffstages:\n  - Lead\n  - Won't say\ncurrency: EUR\n", encoding="utf-8")
    assert read_settings_yaml(p) == {"stages": ["Lead", "Won't say"], "currency": "EUR"}
    p.write_text("# " + "x" * MAX_SETTINGS_BYTES + "\nstages: [Lead]\n")
    with pytest.raises(InputRefused, match="limit"):
        read_settings_yaml(p)
