"""Import CRM exports into a data set in the funnelkit contract.

``import_export(fmt, sources, out, ...)`` (CLI: ``funnelkit import FORMAT SRC... --out DIR``) reads
the export, writes ``deals.csv``, ``stage_history.csv`` and ``pipeline.yml`` to ``out`` atomically
(the sources are only read), checks that the result loads strictly, and writes the import report:
``import_report.md``, ``import_report.json`` and ``import_rejected.csv`` (every rejected row with
its reason). See ``docs/importing.md``.

Formats: ``hubspot`` (deal exports, one or several snapshots), ``salesforce`` (``Opportunity.csv``
plus ``OpportunityHistory.csv``), ``table`` (any one-row-per-deal table with a YAML column map;
shipped maps: ``maven_crm``, ``olist_funnel``).
"""

from __future__ import annotations

from pathlib import Path

from .common import REJECTED_CSV, REPORT_JSON, REPORT_MD, ImportProblem, ImportResult, StageMap, check_out

#: Re-exported: the report file names an import writes into ``--out``, and the stage map type.
__all__ = ["import_export", "ImportResult", "ImportProblem", "FORMATS", "shipped_maps", "StageMap",
           "REJECTED_CSV", "REPORT_JSON", "REPORT_MD"]

FORMATS = ("hubspot", "salesforce", "table")


def shipped_maps() -> dict[str, Path]:
    """The column maps shipped with funnelkit, by name (usable as ``--map NAME``)."""
    folder = Path(__file__).parent / "maps"
    return {p.stem: p for p in sorted(folder.glob("*.yml"))}


def import_export(fmt: str, sources, out, *, column_map=None, stage_map=None, rates=None,
                  currency=None, encoding=None, force: bool = False, strict_dates: bool = False,
                  escape_formulas: bool = False) -> ImportResult:
    """Import the export ``sources`` of format ``fmt`` into the data set folder ``out``.

    Parameters
    ----------
    fmt
        ``hubspot``, ``salesforce`` or ``table``.
    sources
        The export file(s). HubSpot: one or more snapshots; Salesforce: ``Opportunity.csv`` and
        ``OpportunityHistory.csv`` (optionally ``OpportunityStage.csv`` and ``User.csv``); table: the
        table (plus the file named under ``join:`` in the map).
    out
        The data set folder to write (must be empty or absent unless ``force``).
    column_map
        ``table`` only: a YAML column map, or the name of a shipped map (``maven_crm``, ``olist_funnel``).
    stage_map
        YAML mapping of CRM stage labels to pipeline stages, ``won`` or ``lost`` (optional ``stages:``
        list for the pipeline order). With a stage map, every label must be mapped.
    rates, currency
        A CSV ``currency,rate`` (value of 1 unit in ``currency``) to convert all amounts into ``currency``.
        Without rates, several currencies are kept apart in a ``currency`` column.
    encoding
        Source encoding; detected when not given (UTF-8 with or without BOM, else e.g. cp1252).
    force
        Replace a non-empty ``out``.
    strict_dates
        Reject won/lost deals whose close date lies on a day before their creation date. By default
        they are kept for counts and amounts (the close date, the signing, is the close and also
        taken as the creation; the export's creation date is kept in ``crm_created_at``), flagged
        ``dates_estimated`` and left out of duration metrics. A table map can ask for the same with
        ``closed_before_created: reject``.
    escape_formulas
        Prefix text cells starting with ``=``, ``+``, ``-`` or ``@`` with ``'`` so that a spreadsheet
        shows them as text (for files meant to be opened in one). Off by default: cells are kept
        verbatim.

    Returns
    -------
    ImportResult
        Accounting per source file, rejected rows with reasons, and every assumption; ``.summary()``.

    Examples
    --------
    >>> r = import_export("table", ["sales_pipeline.csv"], "data/maven", column_map="maven_crm")  # doctest: +SKIP
    >>> print(r.summary())                                                                        # doctest: +SKIP
    """
    fmt = str(fmt).strip().lower()
    if fmt not in FORMATS:
        raise ImportProblem(f"unknown import format {fmt!r}: use one of {', '.join(FORMATS)}")
    sources = [Path(s) for s in ([sources] if isinstance(sources, (str, Path)) else sources)]
    if not sources:
        raise ImportProblem("no source files given")
    for s in sources:
        if not s.exists():
            raise FileNotFoundError(f"{s}: source file not found")
    # Refuse an --out that would overwrite what the import reads before doing any work.
    check_out(Path(out), sources, [rates, stage_map,
                                   column_map if isinstance(column_map, (str, Path)) else None])
    if fmt != "table" and column_map:
        raise ImportProblem(f"--map is for the 'table' format; {fmt} exports have fixed column names")
    if fmt == "hubspot":
        from .hubspot import import_hubspot as run
    elif fmt == "salesforce":
        from .salesforce import import_salesforce as run
    else:
        from .table import import_table as run
    return run(sources, out, column_map=column_map, stage_map=stage_map, rates=rates, currency=currency,
               encoding=encoding, force=force, strict_dates=strict_dates, escape_formulas=escape_formulas)
