"""docs/data-contract.md, the loader and the sample generator agree.

The required columns listed in the doc are the contract's; every reason the doc lists is one the
code can give (and every problem of the loader tests is listed in the doc); the worked example,
extracted from the markdown, loads and gives exactly the summary, history and errors the doc shows.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import funnelkit as fk
from funnelkit import contract
from funnelkit.sample import generate
from funnelkit.validation import DataError

from contract_cases import ROW_CASES, case_files, write_dataset

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "data-contract.md"


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _blocks() -> dict[str, str]:
    """Fenced blocks with a name after the language: ```csv deals.csv -> {"deals.csv": text}."""
    found = re.findall(r"^```\w+ ([\w./-]+)\n(.*?)^```", _doc(), flags=re.M | re.S)
    names = [n for n, _ in found]
    assert len(names) == len(set(names)), f"a block name is used twice: {names}"
    return dict(found)


def _section(title: str) -> str:
    text = _doc()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start: end if end > 0 else None]


def _table_rows(section: str) -> list[list[str]]:
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not set(line) <= set("|- "):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows[1:]  # without the header row


def _required(title: str) -> tuple[str, ...]:
    return tuple(r[0].strip("`") for r in _table_rows(_section(title)) if r[1] == "yes")


def test_required_columns_in_doc_are_the_contracts():
    assert _required("`deals.csv`") == contract.DEAL_COLUMNS
    assert _required("`stage_history.csv`") == contract.HISTORY_COLUMNS


def test_doc_names_the_contract_files_and_statuses():
    text = _doc()
    for name in (f"{contract.DEALS_FILE}.csv", f"{contract.HISTORY_FILE}.csv", contract.PIPELINE_FILE):
        assert f"`{name}`" in text
    for suffix in contract.TABLE_SUFFIXES:
        assert f"`deals{suffix}`" in text
    statuses = re.search(r"\| `status` \| yes \| `open`, `won` or `lost` \|", text)
    assert statuses and tuple(contract.STATUSES) == ("open", "won", "lost")


def _doc_reasons() -> list[str]:
    """The reason texts of the doc's problem tables (last column), split on ' / '."""
    text = _doc()
    section = text[text.index("## Problems detected"): text.index("## Worked example")]
    reasons = []
    for row in _table_rows(section):
        if row[0] == "Problem":
            continue
        reasons += re.findall(r"`([^`]+)`", row[-1])
    return reasons


def _fixed_part(reason: str) -> str:
    """The literal start of a reason: up to a '(...)' placeholder or a quoted example."""
    return re.split(r" \(\.\.\.|\(expected \.\.\.|\.\.\.| \(first seen on line N", reason)[0].strip()


def test_every_reason_in_the_doc_is_in_the_code():
    code = "".join((ROOT / "funnelkit" / f).read_text() for f in ("loading.py", "contract.py", "io.py"))
    reasons = _doc_reasons()
    assert len(reasons) >= 30
    for reason in reasons:
        fixed = _fixed_part(reason)
        # "a won deal needs closed_at" is built as "a " + status + " deal needs closed_at".
        fixed = re.sub(r"^a (won|lost) deal", "deal", fixed)
        fixed = re.sub(r" on a (won|lost) deal$", " on a ", fixed)
        # The deals file's name is filled in at run time (deals.csv, deals.xlsx, ...).
        for piece in fixed.split("deals.csv"):
            assert piece in code, f"the doc lists {reason!r} but the loader never says {piece!r}"


@pytest.mark.parametrize("case", ROW_CASES, ids=[c[0] for c in ROW_CASES])
def test_every_problem_the_loader_gives_is_in_the_doc(tmp_path, case):
    folder = write_dataset(tmp_path / "d", **case_files(case))
    with pytest.raises(DataError) as err:
        fk.load(folder)
    listed = [_fixed_part(r) for r in _doc_reasons()]
    for p in err.value.problems:
        assert any(p.reason.startswith(r) for r in listed), f"{p.reason!r} is not in the doc"


def _write_example(folder: Path, blocks: dict, prefix: str = "") -> Path:
    folder.mkdir(parents=True)
    (folder / "pipeline.yml").write_text(blocks["pipeline.yml"], encoding="utf-8")
    for name in ("deals.csv", "stage_history.csv"):
        (folder / name).write_text(blocks[prefix + name], encoding="utf-8")
    return folder


def test_worked_example_loads_as_the_doc_says(tmp_path, monkeypatch):
    blocks = _blocks()
    monkeypatch.chdir(tmp_path)
    _write_example(tmp_path / "example", blocks)
    ds = fk.load("example")
    assert ds.report.summary() + "\n" == blocks["summary"]
    hist = ds.stage_history.assign(entered_at=ds.stage_history.entered_at.astype(str))
    assert hist[["deal_id", "stage", "entered_at"]].to_csv(index=False) == blocks["history"]
    d = ds.deals.set_index("deal_id")
    assert len(d) == 4 and d.loc["D1", "amount"] == 1200.5 and d.loc["D2", "status"] == "lost"
    assert d.loc["D3", "created_at"] == pd.Timestamp("2026-01-12 09:00") and pd.isna(d.loc["D3", "amount"])
    assert d.loc["D3", "owner"] == "(not set)" and d["region"].tolist() == ["North", "South", "North", ""]
    assert ds.currency == "EUR" and ds.pipeline.name == "Example pipeline"


def test_broken_example_gives_the_errors_the_doc_shows(tmp_path, monkeypatch):
    blocks = _blocks()
    monkeypatch.chdir(tmp_path)
    _write_example(tmp_path / "broken", blocks, prefix="broken/")
    with pytest.raises(DataError) as err:
        fk.load("broken")
    assert str(err.value) + "\n" == blocks["strict-error"]
    ds = fk.load("broken", errors="report")
    for line in blocks["lenient-accounting"].splitlines():
        assert line in ds.report.summary().splitlines()
    assert len(ds.report.rejected) == 11      # "the 11 rejected rows" in the doc
    assert ds.deals["deal_id"].tolist() == ["D1"]
    assert [(r.stage, str(r.entered_at)) for r in ds.stage_history.itertuples()] == [("Lead", "2026-01-05 00:00:00")]


def test_generated_data_has_exactly_the_contract_columns(tmp_path):
    deals, history, pipeline = generate(300, seed=11)
    assert tuple(deals.columns) == contract.DEAL_COLUMNS
    assert tuple(history.columns) == contract.HISTORY_COLUMNS
    assert pipeline.stages == ("Lead", "Qualified", "Meeting", "Proposal", "Negotiation")
    # The doc says so, and names the stages.
    assert "stages Lead, Qualified, Meeting, Proposal, Negotiation" in " ".join(_doc().split())
    assert set(deals["status"]) <= set(contract.STATUSES)
