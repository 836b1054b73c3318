"""Write a small hand-made data set folder (deals.csv, stage_history.csv, pipeline.yml) for tests."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

DEAL_HEADER = ["deal_id", "created_at", "status", "closed_at", "amount", "source", "product", "owner"]


def write_folder(folder: Path, deals, history, stages, *, header=DEAL_HEADER, currency: str = "USD",
                 name: str = "Hand") -> Path:
    """Write rows (tuples, in ``header`` order) and stage entries (deal_id, stage, entered_at)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "deals.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(deals)
    with open(folder / "stage_history.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["deal_id", "stage", "entered_at"])
        w.writerows(history)
    (folder / "pipeline.yml").write_text(
        yaml.safe_dump({"name": name, "currency": currency, "stages": list(stages)}), encoding="utf-8")
    return folder
