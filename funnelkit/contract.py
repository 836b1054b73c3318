"""The data contract: file names, required columns, status values and the pipeline settings.

A data set is a folder with ``deals.csv``, ``stage_history.csv`` and ``pipeline.yml``
(``docs/data-contract.md`` describes it in full). The loader, the sample generator, the importers
and the contract doc all take their names from here, and a test keeps the doc in agreement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "DEALS_FILE",
    "HISTORY_FILE",
    "CHANGES_FILE",
    "PIPELINE_FILE",
    "DATABASE_FILE",
    "DEAL_COLUMNS",
    "HISTORY_COLUMNS",
    "CHANGE_COLUMNS",
    "CHANGE_FIELDS",
    "STATUS_FIELD",
    "STATUSES",
    "MAX_AMOUNT",
    "DATES_ESTIMATED",
    "Pipeline",
]

DEALS_FILE = "deals"
HISTORY_FILE = "stage_history"
#: The optional change log: dated values of a deal's amount, expected close date, forecast category.
CHANGES_FILE = "deal_changes"
PIPELINE_FILE = "pipeline.yml"
#: In a data set folder instead of the tables: where they live in a database (docs/engines.md).
DATABASE_FILE = "database.yml"
#: Table file formats the loader reads, in order of preference when more than one is present.
TABLE_SUFFIXES = (".csv", ".parquet", ".xlsx")

#: Required columns of deals.csv, in the order the sample generator writes them.
DEAL_COLUMNS = ("deal_id", "created_at", "status", "closed_at", "amount", "source", "product", "owner")
#: Required columns of stage_history.csv.
HISTORY_COLUMNS = ("deal_id", "stage", "entered_at")
#: Required columns of the optional deal_changes.csv.
CHANGE_COLUMNS = ("deal_id", "changed_at", "field", "value")
#: The change log's field of earlier closes and reopenings (values open/won/lost); deals.csv keeps the
#: final state. Unlike the other fields, before its first change a deal is open (since its creation).
STATUS_FIELD = "status"
#: The fields the change log may change; each is also an (optional, for expected_close_date and
#: forecast_category) deals.csv column.
CHANGE_FIELDS = ("amount", "expected_close_date", "forecast_category", STATUS_FIELD)
#: Optional deals.csv column: ``true`` marks a deal whose dates do not measure its duration (e.g.
#: entered into the CRM after it was signed): counted, but left out of duration metrics.
DATES_ESTIMATED = "dates_estimated"
#: The label shown for an empty source, product, owner (or any grouping column).
NOT_SET = "(not set)"
#: Amounts from this on are refused: no deal is worth a thousand trillion, and sums of such
#: values (1e308) overflow to infinity. Below it a float64 holds every whole unit exactly
#: (up to 2**53, about 9e15), and sums over millions of deals stay finite.
MAX_AMOUNT = 1e15
#: Deal outcomes; ``won`` and ``lost`` are closed.
STATUSES = ("open", "won", "lost")

_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _valid_date_format(fmt: str) -> bool:
    """True when ``fmt`` has at least one directive and strptime accepts all of them."""
    from datetime import datetime

    if "%" not in fmt:
        return False
    try:
        datetime.strptime(datetime(2024, 3, 31, 14, 5, 6).strftime(fmt), fmt)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Pipeline:
    """The settings in ``pipeline.yml``.

    Parameters
    ----------
    stages
        The pipeline stages in order; the first is the entry stage.
    currency
        ISO 4217 code of the amounts (default ``USD``).
    name
        A display name for the pipeline.
    date_format
        A ``strftime`` format for non-ISO dates, or ``None`` for ISO 8601.
    allow_missing_amounts
        When true, won/lost deals may have an empty ``amount`` (unknown, as real CRM exports often
        have); by default only open deals may. Sums skip unknown amounts; means use known ones.

    Examples
    --------
    >>> Pipeline(stages=("Lead", "Won deal?")).stage_index("Lead")
    0
    """

    stages: tuple[str, ...]
    currency: str = "USD"
    name: str = "Sales pipeline"
    date_format: str | None = None
    allow_missing_amounts: bool = False
    extra: dict = field(default_factory=dict, compare=False)

    def stage_index(self, stage: str) -> int:
        """Position of ``stage`` in the pipeline (0 = entry stage)."""
        return self.stages.index(stage)

    @property
    def first_stage(self) -> str:
        return self.stages[0]

    def to_yaml_dict(self) -> dict:
        out: dict = {"name": self.name, "currency": self.currency, "stages": list(self.stages)}
        if self.date_format:
            out["date_format"] = self.date_format
        if self.allow_missing_amounts:
            out["allow_missing_amounts"] = True
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, raw: object) -> tuple["Pipeline | None", list[tuple[str, object, str]]]:
        """Parse the YAML mapping; return the pipeline (or None) and a list of problems.

        Each problem is ``(key, value, reason)``.
        """
        problems: list[tuple[str, object, str]] = []
        if not isinstance(raw, dict):
            return None, [("", raw, "pipeline.yml must be a mapping with a 'stages:' list")]
        stages = raw.get("stages")
        if not isinstance(stages, list) or not stages:
            problems.append(("stages", stages, "'stages' must be a non-empty list of stage names"))
            stages = []
        clean: list[str] = []
        for s in stages:
            if isinstance(s, bool):
                why = "a stage name must be text: YAML reads yes/no/on/off as true/false, so quote it ('yes')"
                problems.append(("stages", s, why))
            elif not isinstance(s, (str, int, float)) or str(s).strip() == "":
                problems.append(("stages", s, "a stage name must be non-empty text"))
            elif str(s).strip() in clean:
                problems.append(("stages", s, "stage listed twice"))
            else:
                clean.append(str(s).strip())
        for reserved in ("won", "lost", "open"):
            if reserved in [c.lower() for c in clean]:
                problems.append(("stages", reserved,
                                 "won/lost/open are deal outcomes in deals.csv 'status', not stages"))
        currency = str(raw.get("currency", "USD") or "USD").strip().upper()
        if not _CURRENCY.match(currency):
            problems.append(("currency", raw.get("currency"), "currency must be a 3-letter ISO 4217 code"))
        date_format = raw.get("date_format")
        if date_format is not None and not isinstance(date_format, str):
            problems.append(("date_format", date_format, "date_format must be a strftime format string"))
        elif date_format is not None and not _valid_date_format(date_format):
            problems.append(("date_format", date_format,
                             "date_format is not a valid strftime format (e.g. %d/%m/%Y)"))
        name = str(raw.get("name") or "Sales pipeline")
        allow_missing = raw.get("allow_missing_amounts", False)
        if not isinstance(allow_missing, bool):
            problems.append(("allow_missing_amounts", allow_missing, "allow_missing_amounts must be true or false"))
        known = {"stages", "currency", "name", "date_format", "allow_missing_amounts"}
        extra = {k: v for k, v in raw.items() if k not in known}
        if problems:
            return None, problems
        return cls(tuple(clean), currency, name, date_format or None, bool(allow_missing), extra), []
