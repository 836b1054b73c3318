"""The data contract checked inside the engine, for a data set held in a database.

The same rules as the folder loader (``docs/data-contract.md``), run as queries where the data is:
each broken rule becomes one :class:`~funnelkit.validation.Problem` naming the table, the column,
how many rows break it and a few example deal ids (there are no file lines in a table). The typed
tables and the normalised stage entries are built here too, so the metrics see exactly what was
checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..contract import DATES_ESTIMATED, DEAL_COLUMNS, HISTORY_COLUMNS, NOT_SET, STATUSES, Pipeline
from ..validation import Problem
from .views import count_if

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["Checked", "check_tables", "EXAMPLES", "trimmed_text"]

#: How many example deal ids a problem lists.
EXAMPLES = 5

_LABEL_COLUMNS = ("source", "product", "owner")
#: The raw text of the dates_estimated flag, kept on the typed deals only while they are checked.
_FLAG_TEXT = "_dates_estimated_text"
_TIME_COLUMNS = {"created_at": "deals", "closed_at": "deals", "entered_at": "stage_history"}


@dataclass
class Checked:
    """The outcome of :func:`check_tables`: typed deals, normalised entries, what was found."""

    deals: "ir.Table | None"
    entries: "ir.Table | None"
    problems: list[Problem]
    entries_added: int = 0
    repeats_merged: int = 0
    closed_without_amount: int = 0
    dates_estimated: int = 0


def check_tables(deals: "ir.Table", history: "ir.Table", pipeline: Pipeline, *,
                 deals_name: str, history_name: str) -> Checked:
    """Type the raw tables, check every contract rule in the engine and normalise the entries.

    Parameters
    ----------
    deals, history
        The raw deal and stage-history tables (Ibis), with the contract's column names.
    pipeline
        The pipeline settings (stages, currency, ``allow_missing_amounts``).
    deals_name, history_name
        How problems name the tables (e.g. ``"table crm.opportunity"``).

    Returns
    -------
    Checked
        ``problems`` is empty when the data set meets the contract; the tables are then usable.

    Examples
    --------
    >>> checked = check_tables(con.table("deals"), con.table("stage_history"), pipeline,
    ...                        deals_name="table deals", history_name="table stage_history")  # doctest: +SKIP
    >>> [str(p) for p in checked.problems]                                                   # doctest: +SKIP
    """
    problems = _missing_columns(deals, DEAL_COLUMNS, deals_name) + \
        _missing_columns(history, HISTORY_COLUMNS, history_name)
    problems += _wrong_types(deals, history, deals_name, history_name)
    if problems:
        return Checked(None, None, problems)
    d = _typed_deals(deals, pipeline)
    h = _typed_entries(history, pipeline)
    problems = _deal_problems(d, pipeline, deals_name) + _entry_problems(h, d, pipeline, history_name)
    closed_without_amount = 0
    if pipeline.allow_missing_amounts:
        closed_without_amount = int(count_if(d.status.isin(["won", "lost"]) & d.amount.isnull()).execute())
    flagged = 0
    if _FLAG_TEXT in d.columns:
        d = d.drop(_FLAG_TEXT)
        flagged = int(count_if(d[DATES_ESTIMATED]).execute())
    entries, added, merged = _normalised(h, d)
    return Checked(d, entries, problems, added, merged, closed_without_amount, flagged)


def _missing_columns(t: "ir.Table", required, name: str) -> list[Problem]:
    have = set(t.columns)
    return [Problem(name, None, col, None, f"required column missing (columns: {', '.join(t.columns)})")
            for col in required if col not in have]


def _wrong_types(deals, history, deals_name: str, history_name: str) -> list[Problem]:
    out = []
    for col, which in _TIME_COLUMNS.items():
        t, name = (deals, deals_name) if which == "deals" else (history, history_name)
        dtype = t.schema()[col]
        if not (dtype.is_timestamp() or dtype.is_date() or dtype.is_null()):
            out.append(Problem(name, None, col, None, (
                f"is {dtype} in the database: store timestamps, or pass an Ibis expression that "
                f"parses the text, e.g. t.mutate({col}=t.{col}.as_timestamp('%Y-%m-%d'))")))
    dtype = deals.schema()["amount"]
    if not (dtype.is_numeric() or dtype.is_null()):
        out.append(Problem(deals_name, None, "amount", None,
                           f"is {dtype} in the database: amounts must be numbers (null = unknown)"))
    return out


#: Leading or trailing whitespace (``\s`` plus the vertical tab, which RE2 leaves out of ``\s``), as
#: the loader's ``str.strip`` removes it. A regex rather than Ibis's ``strip()``: on PySpark that
#: trims ``string.whitespace`` written as escapes Spark SQL reads as letters (a text ``false`` became
#: ``alse``), and ``lstrip()``/``rstrip()`` there trim spaces only.
_EDGE_WHITESPACE = r"^[\s\v]+|[\s\v]+$"


def trimmed_text(column) -> "ir.StringValue":
    """An Ibis column as text without leading or trailing whitespace, the same on every engine.

    Examples
    --------
    >>> import ibis
    >>> trimmed_text(ibis.literal(" \\tfive\\n")).execute()
    'five'
    """
    return column.cast("string").re_replace(_EDGE_WHITESPACE, "")


def _typed_deals(raw: "ir.Table", pipeline: Pipeline) -> "ir.Table":
    import ibis

    extra = [c for c in raw.columns if c not in DEAL_COLUMNS and c not in ("deal_row", DATES_ESTIMATED)]
    cols = {
        "deal_id": trimmed_text(raw.deal_id),
        "created_at": raw.created_at.cast("timestamp"),
        "status": trimmed_text(raw.status).lower(),
        "closed_at": raw.closed_at.cast("timestamp"),
        "amount": raw.amount.cast("float64"),
    }
    if DATES_ESTIMATED in raw.columns:
        # As the loader: true/false/empty in any case; a flagged deal closed before its recorded
        # creation is taken as created at its close (docs/data-contract.md, dates_estimated).
        if raw[DATES_ESTIMATED].type().is_boolean():
            cols[DATES_ESTIMATED] = raw[DATES_ESTIMATED].fill_null(False)
        else:
            flag = trimmed_text(raw[DATES_ESTIMATED]).lower()
            cols[_FLAG_TEXT] = flag
            cols[DATES_ESTIMATED] = flag.fill_null("") == "true"
        signed_first = cols[DATES_ESTIMATED] & (cols["closed_at"] < cols["created_at"])
        cols["created_at"] = ibis.ifelse(signed_first, cols["closed_at"], cols["created_at"])
    for col in _LABEL_COLUMNS:
        text = trimmed_text(raw[col])
        cols[col] = ibis.ifelse(text.fill_null("") == "", NOT_SET, text)
    for col in extra:
        text = trimmed_text(raw[col])
        if col == "currency":
            text = text.upper()
            text = ibis.ifelse(text.fill_null("") == "", pipeline.currency, text)
        elif col == "expected_close_date":    # a date as in deals.csv (the loader parses it too)
            cols[col] = raw[col].cast("timestamp")
            continue
        cols[col] = text
    t = raw.select(**cols)
    return t.mutate(deal_row=ibis.row_number().over(order_by=t.deal_id).cast("int64"))


def _typed_entries(raw: "ir.Table", pipeline: Pipeline) -> "ir.Table":
    import ibis

    stage = trimmed_text(raw.stage)
    index = ibis.cases(*[(stage == s, i) for i, s in enumerate(pipeline.stages)], else_=ibis.null("int64"))
    return raw.select(deal_id=trimmed_text(raw.deal_id), stage=stage, stage_index=index.cast("int64"),
                      entered_at=raw.entered_at.cast("timestamp"))


class _Rules:
    """Named boolean conditions on one table, counted in one query; examples fetched per broken rule."""

    def __init__(self, table: "ir.Table", name: str):
        self.table, self.name, self.rules = table, name, []

    def add(self, column: str, bad, reason: str, show: "ir.Value | None" = None) -> None:
        self.rules.append((column, bad, reason, show))

    def problems(self) -> list[Problem]:
        if not self.rules:
            return []
        counts = self.table.aggregate(**{f"r{i}": count_if(bad) for i, (_, bad, _, _) in
                                         enumerate(self.rules)}).execute().iloc[0]
        out = []
        for i, (column, bad, reason, show) in enumerate(self.rules):
            n = int(counts[f"r{i}"])
            if n:
                out.append(self._problem(n, column, bad, reason, show))
        return out

    def _problem(self, n: int, column: str, bad, reason: str, show) -> Problem:
        t = self.table
        cols = {"deal_id": t.deal_id} if show is None else {"deal_id": t.deal_id, "value": show}
        ex = t.filter(bad).select(**cols).order_by("deal_id").limit(EXAMPLES).execute()
        ids = ", ".join(str(x) for x in ex["deal_id"])
        values = None
        if show is not None:
            values = ", ".join(sorted({repr(str(v)) for v in ex["value"]}))
        rows = "row" if n == 1 else "rows"
        return Problem(self.name, None, column, values,
                       f"{reason}: {n} {rows} (deal ids, e.g.: {ids})")


def _deal_problems(d: "ir.Table", pipeline: Pipeline, name: str) -> list[Problem]:
    r = _Rules(d, name)
    r.add("deal_id", d.deal_id.fill_null("") == "", "deal_id is empty")
    r.add("status", ~d.status.fill_null("").isin(list(STATUSES)),
          "unknown status (expected open, won or lost, in any case)", show=d.status)
    r.add("created_at", d.created_at.isnull(), "created_at is required")
    closed_status = d.status.isin(["won", "lost"])
    r.add("closed_at", closed_status & d.closed_at.isnull(), "a won or lost deal needs closed_at")
    r.add("closed_at", (d.status == "open") & d.closed_at.notnull(),
          "an open deal must not have closed_at (won/lost deals have one)")
    r.add("closed_at", d.closed_at < d.created_at, "closed_at is before created_at")
    if _FLAG_TEXT in d.columns:
        r.add(DATES_ESTIMATED, ~d[_FLAG_TEXT].fill_null("").isin(["", "true", "false"]),
              f"{DATES_ESTIMATED} must be true, false or empty", show=d[_FLAG_TEXT])
    r.add("amount", d.amount < 0, "amount is negative", show=d.amount)
    if not pipeline.allow_missing_amounts:
        r.add("amount", closed_status & d.amount.isnull(),
              "amount is empty on a won or lost deal (allowed only for open deals, unless "
              "pipeline.yml says allow_missing_amounts: true)")
    if "currency" in d.columns:
        r.add("currency", ~d.currency.re_search(r"^[A-Z]{3}$"),
              "currency must be a 3-letter ISO 4217 code such as EUR", show=d.currency)
    problems = r.problems()
    dup = d.group_by("deal_id").aggregate(n=d.count()).filter(lambda g: g.n > 1)
    dup_rules = _Rules(d.join(dup.select("deal_id"), "deal_id"), name)
    dup_rules.add("deal_id", dup_rules.table.deal_id.notnull(), "duplicate deal_id")
    return problems + dup_rules.problems()


def _entry_problems(h: "ir.Table", d: "ir.Table", pipeline: Pipeline, name: str) -> list[Problem]:
    first = d.group_by("deal_id").aggregate(created_at=d.created_at.min(), closed_at=d.closed_at.max(),
                                            _known=d.count())
    j = h.left_join(first, h.deal_id == first.deal_id).select(
        h.deal_id, h.stage, h.stage_index, h.entered_at, first.created_at, first.closed_at, first._known)
    r = _Rules(j, name)
    r.add("deal_id", j.deal_id.fill_null("") == "", "deal_id is empty")
    r.add("deal_id", j._known.isnull() & (j.deal_id.fill_null("") != ""),
          "stage entry for a deal not in the deals table")
    r.add("stage", j.stage_index.isnull(),
          "stage not in pipeline.yml (stages: " + ", ".join(pipeline.stages) + ")", show=j.stage)
    r.add("entered_at", j.entered_at.isnull(), "entered_at is required")
    r.add("entered_at", j.entered_at < j.created_at, "stage entry before the deal's created_at")
    r.add("entered_at", j.entered_at > j.closed_at, "stage entry after the deal's closed_at")
    return r.problems()


def _normalised(h: "ir.Table", d: "ir.Table") -> tuple["ir.Table", int, int]:
    """Entries in the loader's normal form: a first-stage entry at ``created_at`` for deals with no
    entry at or before it, and an entry of the same stage as the one before it merged into it."""
    import ibis

    h = h.select("deal_id", "stage_index", "entered_at")
    first = h.group_by("deal_id").aggregate(first_at=h.entered_at.min())
    j = d.left_join(first, d.deal_id == first.deal_id)
    needs = j.filter(j.first_at.isnull() | (j.first_at > j.created_at))
    added = needs.select(deal_id=needs.deal_id, stage_index=ibis.literal(0, "int64"),
                         entered_at=needs.created_at)
    every = h.union(added)
    w = ibis.window(group_by=every.deal_id, order_by=[every.entered_at, every.stage_index])
    every = every.mutate(_prev=every.stage_index.lag().over(w))
    repeat = every._prev.notnull() & (every._prev == every.stage_index)
    merged = int(count_if(repeat).execute())
    entries = every.filter(~repeat).select("deal_id", "stage_index", "entered_at")
    return entries, int(added.count().execute()), merged
