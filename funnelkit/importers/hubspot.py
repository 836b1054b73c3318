"""HubSpot deal exports ("All deals" CSV or XLSX), one or several snapshots of the same pipeline.

Columns used (HubSpot's export names): ``Record ID``, ``Deal Stage``, ``Create Date``,
``Close Date``, ``Amount`` (required); ``Deal owner``, ``Deal Name``, ``Pipeline``,
``Original Source Type``, ``Deal Type``, ``Closed Lost Reason``, ``Deal currency code`` and the
``Date entered "<stage> (<pipeline>)"`` columns when present.

Semantics followed:

- won/lost come from the stage label ("Closed won", "Closed: lost", "Closed: abandoned" ...), with
  an override by ``--stage-map``; every such decision is listed in the import report.
- HubSpot sets Close Date when a deal is closed; on open deals it is the *expected* close date, so it
  is not a ``closed_at`` (it is kept as ``expected_close_date``).
- Several exports taken on different dates are combined: each deal's latest row gives its state; a
  change of stage between two exports is recorded at the later export's date (an approximation the
  report states). The export date is read from the file name (``...-2023-05-09.csv``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .common import (OUTCOMES, VALUES_AT, default_outcome, ImportProblem, ImportResult, StageMap, change_rows,
                     close_by_witness, finish, map_labels, order_stages, parse_amounts, parse_dates, read_source,
                     reject_foreign_marks, require_columns, status_rows)

REQUIRED = ["Record ID", "Deal Stage", "Create Date", "Close Date", "Amount"]
#: HubSpot's default sales pipeline, in order.
DEFAULT_ORDER = ["Appointment Scheduled", "Qualified To Buy", "Presentation Scheduled",
                 "Decision Maker Bought-In", "Contract Sent"]
_ENTERED = re.compile(r'^Date entered\s+["“]?(?P<stage>.+?)(?:\s+\((?P<pipe>[^()]*)\))?["”]?\s*$', re.I)
_DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
KEEP = {"Deal Name": "deal_name", "Pipeline": "pipeline", "Deal Type": "deal_type",
        "Closed Won Reason": "closed_won_reason"}
#: HubSpot's column of the rep's forecast call (the data contract's ``forecast_category``).
FORECAST = "Forecast category"


def export_date(path: Path, df: pd.DataFrame) -> tuple[pd.Timestamp, str]:
    m = _DATE_IN_NAME.search(path.name)
    if m:
        return pd.Timestamp(m.group(1)), "file name"
    for col in ("Last Modified Date", "Create Date"):
        if col in df.columns:
            ts, _ = parse_dates(df[col])
            if ts.notna().any():
                return ts.max().normalize() + pd.Timedelta(days=1), f"the latest '{col}' in the file"
    raise ImportProblem(f"{path}: cannot tell when this export was taken: put its date in the file name "
                        "(e.g. deals-2024-05-31.csv)")


def import_hubspot(sources, out, *, stage_map=None, rates=None, currency=None, encoding=None,
                   force=False, strict_dates=False, escape_formulas=False, **_) -> ImportResult:
    """Import one or several HubSpot deal exports (snapshots of one pipeline) into ``out``.

    Parameters
    ----------
    sources
        The exports (CSV or XLSX), each dated by the ``YYYY-MM-DD`` in its file name; any order.
    out, stage_map, rates, currency, encoding, force, strict_dates, escape_formulas
        As for :func:`funnelkit.importers.import_export`.

    Returns
    -------
    ImportResult
        Per export file: rows read, used, rejected; the rejected rows; every assumption.

    Examples
    --------
    >>> r = import_hubspot(["deals-2024-03-01.csv", "deals-2024-03-15.csv"], "data/hs")  # doctest: +SKIP
    """
    sources = [Path(s) for s in sources]
    result = ImportResult("hubspot", [str(s) for s in sources])
    smap = StageMap.from_yaml(stage_map) if stage_map else StageMap()
    rows, latest = _read_exports(sources, encoding, result)
    multi = len(sources) > 1
    rows = _usable_rows(rows, result, (currency or "USD").strip().upper())
    rows["mapped"] = _map_stages(rows, smap, sources, result)
    hist_parts = _history_from_columns(rows, smap, result)
    rows = rows.sort_values(["deal_id", "_snap"], kind="stable")  # each deal's rows, oldest export first
    deals, first_closed, pipes = _deals(rows, latest, multi, result)
    entries, stages = _stage_history(rows, deals, hist_parts, smap, multi, result)
    changes = _changes(rows, result) if multi else None
    name = (sorted(pipes)[0] if len(pipes) == 1 else "HubSpot deals")
    # A Close Date after the latest export cannot be the close: the first export showing the deal
    # closed witnesses it (its date is the day that export was taken).
    deals = close_by_witness(deals, first_closed, latest + pd.Timedelta(days=1), result,
                             what_closed="Close Date", witness_name="the date of the first export that "
                             "shows it closed")
    return finish(result, deals, entries, stages, out=out, force=force, sources=sources, name=name,
                  rates=rates, currency=currency, inputs=[stage_map],
                  closed_before_created="reject" if strict_dates else "keep", what_closed="Close Date",
                  what_created="Create Date", escape_formulas=escape_formulas, changes=changes)


def _read_exports(sources: list[Path], encoding, result: ImportResult) -> tuple[pd.DataFrame, pd.Timestamp]:
    """All exports as one table of text rows (with ``_file``, ``_line``, ``_export`` (its date) and
    ``_snap`` (0 = oldest)), and the latest export's date. Two exports of one date are refused."""
    frames = []
    for path in sources:
        df, enc = read_source(path, encoding)
        require_columns(df, path, REQUIRED, "a HubSpot deals export")
        when, how = export_date(path, df)
        result.account(path, len(df), enc, note=f"export of {when.date()}", raw=df)
        df["_file"], df["_export"] = str(path), when
        frames.append(df)
        if how != "file name":
            result.assume(f"{path.name}: export date taken as {when.date()} from {how} (no date in the file name)")
    dates = [f["_export"].iat[0] if len(f) else None for f in frames]
    if len(set(dates)) < len(dates):
        raise ImportProblem("two exports have the same date (" + ", ".join(
            f"{p.name}: {d.date()}" for p, d in zip(sources, dates)) + "); give exports of different dates")
    order = np.argsort([d.value for d in dates])
    frames = [frames[i] for i in order]
    has_forecast = {f["_file"].iat[0]: FORECAST in f.columns for f in frames if len(f)}
    rows = pd.concat(frames, ignore_index=True, sort=False).fillna("").copy()
    # A column absent from an export is not an empty value: remember which rows had it.
    rows["_forecast"] = rows["_file"].map(has_forecast).fillna(False).astype(bool)
    rows["_snap"] = rows["_export"].rank(method="dense").astype(int) - 1
    rows["deal_id"] = rows["Record ID"].str.strip()
    rows["Deal Stage"] = rows["Deal Stage"].str.strip()  # (rejected rows are shown from the file as read)
    return rows, dates[order[-1]]


def _usable_rows(rows: pd.DataFrame, result: ImportResult, default_currency: str) -> pd.DataFrame:
    """Reject the rows that cannot be a deal's state, each with its reason; parse the dates and amounts.
    An Amount marked with another currency than the deal's (``Deal currency code``, else
    ``--currency``, else USD) is rejected, as the loader would."""
    bad = rows["deal_id"].eq("")
    rows = result.drop_rows(rows, bad, "Record ID is empty")
    dup = rows.duplicated(["_file", "deal_id"], keep="first")
    rows = result.drop_rows(rows, dup, "Record ID appears twice in this export (the first row was used)")
    empty_stage = rows["Deal Stage"].eq("")
    rows = result.drop_rows(rows, empty_stage, "Deal Stage is empty (the deal is in no pipeline stage)")
    created, bad_created = parse_dates(rows["Create Date"])
    rows = rows.assign(created_at=created)
    rows = result.drop_rows(rows, bad_created | created.isna(), "Create Date is empty or not a date")
    close, bad_close = parse_dates(rows["Close Date"])
    rows = rows.assign(close_date=close)
    rows = result.drop_rows(rows, bad_close, "Close Date is not a date")
    cur = (rows["Deal currency code"].str.strip().str.upper() if "Deal currency code" in rows.columns
           else pd.Series("", index=rows.index))
    rows = reject_foreign_marks(result, rows, "Amount", cur.where(cur.ne(""), default_currency))
    amount, bad_amount = parse_amounts(rows["Amount"])
    rows = rows.assign(amount=amount)
    rows = result.drop_rows(rows, bad_amount | (amount < 0), "Amount is not a number >= 0")
    return rows


def _map_stages(rows: pd.DataFrame, smap: StageMap, sources: list[Path], result: ImportResult) -> pd.Series:
    """Each row's pipeline stage or won/lost; checked against HubSpot's own ``Is Deal Closed?``."""
    mapped = map_labels(rows["Deal Stage"], smap, file=", ".join(s.name for s in sources),
                         column="Deal Stage", result=result, strict=smap.given)
    if "Is Deal Closed?" in rows.columns:
        for label, grp in rows.groupby("Deal Stage"):
            flag = set(grp["Is Deal Closed?"].str.lower()) - {""}
            target = mapped[grp.index[0]]
            if target in OUTCOMES and flag == {"false"}:
                result.assume(f"HubSpot does not treat {label!r} as a closed stage (Is Deal Closed? = false), "
                              f"but its label names an outcome: imported as {target}")
            if target not in OUTCOMES and flag == {"true"}:
                raise ImportProblem(f"{', '.join(s.name for s in sources)}: stage {label!r} is closed in HubSpot "
                                    "(Is Deal Closed? = true) but maps to an open stage: map it to won or lost "
                                    "with --stage-map")
    return mapped


def _history_from_columns(rows: pd.DataFrame, smap: StageMap, result: ImportResult) -> list[pd.DataFrame]:
    """Stage entries from the ``Date entered "<stage> (<pipeline>)"`` columns, when the export has them."""
    entered_cols = {c: _ENTERED.match(c).group("stage") for c in rows.columns if _ENTERED.match(c)}
    hist_parts = []
    if entered_cols:
        for col, label in entered_cols.items():
            target = smap.lookup(label)
            if target is None and not smap.given:
                target = default_outcome(label) or label
            if target is None or target in OUTCOMES:
                continue  # outcomes are the deal's status, not stages
            ts, _ = parse_dates(rows[col])
            ok = ts.notna()
            hist_parts.append(pd.DataFrame({"deal_id": rows.loc[ok, "deal_id"], "stage": target,
                                            "entered_at": ts[ok]}))
        result.assume("stage history read from the 'Date entered <stage>' columns")
    return hist_parts


def _deals(rows: pd.DataFrame, latest: pd.Timestamp, multi: bool, result: ImportResult):
    """The deals: each one's state is its row in the latest export that has it. Returns the deals,
    the date of the first export showing each closed deal closed, and the HubSpot pipelines seen."""
    # Each deal's state = its row in the latest export that has it.
    rows = rows.sort_values(["deal_id", "_snap"], kind="stable")
    last = rows.drop_duplicates("deal_id", keep="last").set_index("deal_id")
    status = np.where(last["mapped"].isin(OUTCOMES), last["mapped"], "open")
    deals = pd.DataFrame({"deal_id": last.index, "created_at": last["created_at"].to_numpy(),
                          "status": status, "amount": last["amount"].to_numpy()})
    # closed_at: HubSpot's Close Date on closed deals; else the export date it was first seen closed.
    is_closed = deals["status"].isin(OUTCOMES).to_numpy()
    closed_at = last["close_date"].where(is_closed)
    first_closed = rows[rows["mapped"].isin(OUTCOMES)].groupby("deal_id")["_export"].min()
    no_close = pd.Series(is_closed, index=last.index) & closed_at.isna()
    if no_close.any():
        closed_at[no_close] = first_closed.reindex(last.index)[no_close]
        result.assume(f"{int(no_close.sum())} closed deals have no Close Date: closed_at set to the date of "
                      "the first export that shows them closed")
    deals["closed_at"] = closed_at.to_numpy()
    open_close = (~is_closed) & last["close_date"].notna().to_numpy()
    deals["expected_close_date"] = last["close_date"].where(~is_closed).to_numpy()
    if open_close.any():
        result.assume(f"Close Date on {int(open_close.sum())} open deals is HubSpot's expected close date, "
                      "not a close: not used as closed_at (kept as 'expected_close_date')")
    deals["owner"] = last["Deal owner"].to_numpy() if "Deal owner" in last.columns else ""
    if "Deal owner" not in last.columns:
        result.assume("no 'Deal owner' column: owner left empty")
    deals["source"] = last["Original Source Type"].to_numpy() if "Original Source Type" in last.columns else ""
    result.assume("source = 'Original Source Type' where the export has it" if "Original Source Type" in last.columns
                  else "no 'Original Source Type' column: source left empty")
    deals["product"] = ""
    result.assume("HubSpot deal exports carry no product type: product left empty ('(not set)')")
    if "Deal currency code" in last.columns:
        deals["currency"] = last["Deal currency code"].to_numpy()
    for col, name in KEEP.items():
        if col in last.columns:
            deals[name] = last[col].to_numpy()
    if "Closed Lost Reason" in last.columns:
        # The contract's lost_reason: why a lost deal was lost (on other deals the cell is not a reason).
        reason = np.where(deals["status"].eq("lost"), last["Closed Lost Reason"].astype(str).str.strip(), "")
        if (reason != "").any():
            deals["lost_reason"] = reason
            result.assume(f"lost_reason = 'Closed Lost Reason' on lost deals ({int((reason != '').sum())} have one)")
        else:
            result.assume("'Closed Lost Reason' is empty on every lost deal: no lost_reason")
    if rows["_forecast"].any():
        # The forecast category in the latest export that has the column (a missing column is not a value).
        fc = rows[rows["_forecast"]].drop_duplicates("deal_id", keep="last").set_index("deal_id")[FORECAST]
        fc = fc.reindex(deals["deal_id"]).fillna("").str.strip()
        if fc.ne("").any():
            deals["forecast_category"] = fc.to_numpy()
        else:
            result.assume(f"'{FORECAST}' is empty on every deal: no forecast_category")
    deals[VALUES_AT] = last["_export"].to_numpy()
    deals["crm_stage"] = last["Deal Stage"].to_numpy()
    deals["_file"] = last["_file"].to_numpy()
    deals["_line"] = last["_line"].to_numpy()
    pipes = set(last["Pipeline"]) - {""} if "Pipeline" in last.columns else set()
    if len(pipes) > 1:
        result.assume(f"deals of {len(pipes)} HubSpot pipelines combined ({', '.join(sorted(pipes))}); "
                      "their stage labels form one pipeline")

    if multi:
        gone = last["_export"] < latest
        deals["last_export"] = last["_export"].dt.strftime("%Y-%m-%d").to_numpy()
        if gone.any():
            n_open = int((gone.to_numpy() & (deals["status"] == "open").to_numpy()).sum())
            result.assume(f"{int(gone.sum())} deals are in an earlier export but not in the latest "
                          f"({latest.date()}): deleted or merged in HubSpot; kept with their state in the "
                          "last export that had them (column 'last_export')"
                          + (f"; {n_open} of them were open then and count as open (and, once their expected "
                             "close date is past, as past due) after it, though HubSpot no longer has them: "
                             f"ds.filter(last_export='{latest.date()}') leaves them out" if n_open else ""))
        ever = rows["mapped"].isin(OUTCOMES).groupby(rows["deal_id"]).any()
        reopened = ever.reindex(deals["deal_id"]).to_numpy() & (deals["status"] == "open").to_numpy()
        if reopened.any():
            result.assume(f"{int(reopened.sum())} deals closed in an earlier export are open again in a later "
                          "one: imported as open, their earlier close and reopening recorded as status changes "
                          "(deal_changes.csv) at the exports' dates, an approximation")

    return deals, first_closed, pipes


def _changes(rows: pd.DataFrame, result: ImportResult) -> pd.DataFrame:
    """The differences between consecutive exports of each deal as changes dated at the later
    export's date (an approximation, as for stage changes); the first export that has a deal gives
    its first known value. Amount on every row (empty = unknown); Close Date only on rows where the
    deal is open (there it is the expected close date; on a closed row it is the close); the
    forecast category only from exports that have the column. A deal closed in one export and open
    in a later one was closed and reopened: a ``status`` change to won/lost at the first export that
    shows it closed and one to ``open`` at the first later export that shows it open (approximate
    dates too). Rows are in deal and export order.
    """
    is_open = ~rows["mapped"].isin(OUTCOMES)
    fc = rows[rows["_forecast"]]
    parts = [status_rows(rows["deal_id"], rows["_export"], rows["mapped"].where(~is_open, "")),
             change_rows(rows["deal_id"], rows["_export"], "amount", rows["amount"]),
             change_rows(rows.loc[is_open, "deal_id"], rows.loc[is_open, "_export"], "expected_close_date",
                         rows.loc[is_open, "close_date"]),
             change_rows(fc["deal_id"], fc["_export"], "forecast_category",
                         fc[FORECAST].str.strip() if len(fc) else [])]
    result.assume("amounts, expected close dates (Close Date on open deals) and forecast categories that differ "
                  "between consecutive exports are recorded as changes (deal_changes.csv) at the later export's "
                  "date: an approximation (the change happened at some time between the two exports); the first "
                  "export that has a deal gives its first known value; an empty Amount is unknown (never 0)")
    return pd.concat(parts, ignore_index=True)


def _stage_history(rows, deals, hist_parts, smap: StageMap, multi: bool, result: ImportResult):
    """Stage entries from the snapshots (deals without 'Date entered' history), the first stage for
    deals only ever seen closed, and the pipeline's stage order. Returns the entries and the stages."""
    # Stage history from the snapshots (for deals without 'Date entered' history).
    covered = set(pd.concat(hist_parts)["deal_id"]) if hist_parts else set()
    snap = rows[~rows["deal_id"].isin(covered) & ~rows["mapped"].isin(OUTCOMES)]
    snap = snap[["deal_id", "_snap", "_export", "mapped", "created_at"]]
    first_seen = snap.groupby("deal_id")["_snap"].transform("min")
    prev = snap.groupby("deal_id")["mapped"].shift()
    is_first = snap["_snap"].eq(first_seen)
    changed = ~is_first & snap["mapped"].ne(prev)
    entries = pd.concat([
        pd.DataFrame({"deal_id": snap.loc[is_first, "deal_id"], "stage": snap.loc[is_first, "mapped"],
                      "entered_at": snap.loc[is_first, "created_at"]}),
        pd.DataFrame({"deal_id": snap.loc[changed, "deal_id"], "stage": snap.loc[changed, "mapped"],
                      "entered_at": snap.loc[changed, "_export"]}),
    ] + hist_parts, ignore_index=True)
    result.assume("each deal's open stage in the first export that has it is taken as entered at its Create "
                  "Date (earlier moves are not in the export)")
    if multi:
        result.assume(f"{int(changed.sum())} stage changes between exports recorded at the later export's "
                      "date: an approximation (the change happened at some time between the two exports)")
        # Changes of label between consecutive exports of a deal (rows are sorted by deal, export).
        seen = rows[~rows["deal_id"].isin(covered)]
        prev_label = seen.groupby("deal_id")["mapped"].shift()
        moves = int((prev_label.notna() & seen["mapped"].ne(prev_label)).sum())
        n_out = moves - int(changed.sum())
        if n_out > 0:
            result.assume(f"{n_out} changes between exports went to won/lost (or between them): the outcome "
                          "is the deal's status, dated by its Close Date")
    never_open = deals.loc[~deals["deal_id"].isin(entries["deal_id"]), "deal_id"]
    # Deals seen only closed: their path is unknown; the loader's rule puts them in the first stage.
    open_labels = list(pd.unique(rows.loc[~rows["mapped"].isin(OUTCOMES), "mapped"]))
    score = None
    if "Deal probability" in rows.columns:
        p, _ = parse_amounts(rows["Deal probability"])
        score = p.groupby(rows["mapped"]).mean().to_dict()
    stages, how = order_stages(open_labels + list(entries["stage"].unique()), smap, DEFAULT_ORDER, score)
    result.assume(how)
    if len(never_open):
        result.assume(f"{len(never_open)} deals are closed in every export that has them: their stage path is "
                      f"unknown, so they are recorded as entering the first stage ({stages[0]!r}) at their "
                      "Create Date")
        entries = pd.concat([entries, pd.DataFrame({
            "deal_id": never_open.to_numpy(), "stage": stages[0],
            "entered_at": deals.set_index("deal_id").loc[never_open, "created_at"].to_numpy()})],
            ignore_index=True)
    return entries, stages
