"""Salesforce data export: ``Opportunity.csv`` and ``OpportunityHistory.csv`` (standard API names).

Optional companions from the same export: ``OpportunityStage.csv`` (the stage picklist with
``SortOrder``, ``IsClosed``, ``IsWon``: gives the pipeline order) and ``User.csv`` (``Id``, ``Name``:
owner names instead of ``OwnerId``). Files are recognised by their columns.

Semantics followed (Salesforce Object Reference):

- ``IsClosed`` and ``IsWon`` decide the status (open / won / lost), not the stage label.
- ``CloseDate`` is a date; on a closed opportunity it is the close date, on an open one the
  *expected* close date (kept as ``expected_close_date``, not used as ``closed_at``).
- ``CreatedDate`` is a UTC date-time (``2024-03-05T14:02:11.000Z``).
- ``OpportunityHistory`` has one row per change of StageName, Amount, Probability or CloseDate; a row
  whose StageName differs from the previous row's is a stage entry at its ``CreatedDate``. Rows in a
  closed stage are the outcome (already in the status), not stage entries.
- ``IsDeleted = true`` rows are in the Recycle Bin: rejected with that reason.
- ``Amount`` is in the opportunity's ``CurrencyIsoCode`` (multi-currency orgs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .common import (OUTCOMES, VALUES_AT, ImportProblem, ImportResult, StageMap, change_rows, close_by_witness,
                     status_rows, default_outcome, finish, map_labels, order_stages, parse_amounts, parse_dates, read_source,
                     reject_foreign_marks, require_columns)

OPP_REQUIRED = ["Id", "CreatedDate", "StageName", "CloseDate", "Amount", "IsClosed", "IsWon"]
HIST_REQUIRED = ["OpportunityId", "StageName", "CreatedDate"]
#: The stage picklist of a new Salesforce org, in order.
DEFAULT_ORDER = ["Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
                 "Id. Decision Makers", "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review"]
#: OpportunityHistory's ForecastCategory holds the picklist's API names; Opportunity's
#: ForecastCategoryName (and the deals' forecast_category) the labels.
FORECAST_LABELS = {"BestCase": "Best Case", "Forecast": "Commit", "MostLikely": "Most Likely"}
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def _kind(df: pd.DataFrame) -> str | None:
    cols = set(df.columns)
    if {"OpportunityId", "StageName"} <= cols:
        return "history"
    if {"IsWon", "IsClosed", "StageName", "Id"} <= cols:
        return "opportunity"
    if "SortOrder" in cols and ({"MasterLabel"} & cols or {"ApiName"} & cols):
        return "stage"
    if {"Id", "Name"} <= cols and ({"Username"} & cols or {"Email"} & cols or {"IsActive"} & cols):
        return "user"
    return None


def _bool(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    t = s.astype(str).str.strip().str.lower()
    return t.isin(_TRUE), ~(t.isin(_TRUE) | t.isin(_FALSE))


def import_salesforce(sources, out, *, stage_map=None, rates=None, currency=None, encoding=None,
                      force=False, strict_dates=False, escape_formulas=False, **_) -> ImportResult:
    """Import a Salesforce data export into the data set folder ``out``.

    The steps, each a function of this module: recognise the files by their columns
    (:func:`_read_files`); reject unusable opportunity rows with their reasons
    (:func:`_usable_opportunities`); build the deals (:func:`_deals`); learn which labels are closed
    (:func:`_closed_labels`); turn OpportunityHistory into stage entries (:func:`_stage_entries`)
    and add each open deal's current stage (:func:`_current_stages`); choose the stage order
    (:func:`_stage_order`); date closes that the export dates after itself by their recorded move to
    the closed stage (:func:`~funnelkit.importers.common.close_by_witness`); then the shared
    :func:`~funnelkit.importers.common.finish` (which also gives a deal with no stage entry the
    first stage at its creation).

    Parameters
    ----------
    sources
        ``Opportunity.csv`` and usually ``OpportunityHistory.csv``; optionally ``OpportunityStage.csv``
        and ``User.csv`` (CSV, XLSX or Parquet; any order).
    out, stage_map, rates, currency, encoding, force, strict_dates, escape_formulas
        As for :func:`funnelkit.importers.import_export`.

    Returns
    -------
    ImportResult
        Accounting for each of the four files, the rejected rows with reasons, the assumptions.

    Examples
    --------
    >>> r = import_salesforce(["Opportunity.csv", "OpportunityHistory.csv"], "data/sf")  # doctest: +SKIP
    >>> print(r.summary())                                                               # doctest: +SKIP
    """
    sources = [Path(s) for s in sources]
    result = ImportResult("salesforce", [str(s) for s in sources])
    smap = StageMap.from_yaml(stage_map) if stage_map else StageMap()
    found = _read_files(sources, encoding, result)
    opp_path, opp = found["opportunity"]
    file = str(opp_path)
    default_currency = (currency or "USD").strip().upper()
    opp, parsed = _usable_opportunities(opp, file, result, default_currency)
    deals = _deals(opp, parsed, file, found, result)
    closed_labels, picklist_order = _closed_labels(found, deals)
    if smap.given:
        _check_open_labels(deals, smap, file, result)
    deals["stage_now"] = np.where(deals["status"].eq("open"), _stage_of(deals["crm_stage"], smap), "")
    hist, witness, rows = _stage_entries(found, deals, smap, closed_labels, result, default_currency)
    changes = _changes(rows, deals, found, result)
    hist = _current_stages(deals, hist, opp, result)
    stages = _stage_order(deals, hist, opp, found, smap, picklist_order, result)
    deals = close_by_witness(deals.drop(columns=["stage_now"]).reset_index(drop=True), witness,
                             _export_end(opp, found), result, what_closed="CloseDate",
                             witness_name="its OpportunityHistory row entering the closed stage")
    return finish(result, deals, hist, stages, out=out, force=force, sources=sources,
                  name="Salesforce opportunities", rates=rates, currency=currency,
                  closed_before_created="reject" if strict_dates else "keep",
                  what_closed="CloseDate", what_created="CreatedDate", inputs=[stage_map],
                  escape_formulas=escape_formulas, changes=changes)


def _read_files(sources: list[Path], encoding, result: ImportResult) -> dict[str, tuple[Path, pd.DataFrame]]:
    """Read each source and recognise it by its columns (or name); require Opportunity's columns."""
    found: dict[str, tuple[Path, pd.DataFrame]] = {}
    for path in sources:
        df, enc = read_source(path, encoding)
        kind = _kind(df)
        if kind is None:
            name = path.stem.lower()
            kind = {"opportunity": "opportunity", "opportunityhistory": "history"}.get(name)
        if kind is None:
            raise ImportProblem(f"{path}: not a Salesforce Opportunity, OpportunityHistory, OpportunityStage or "
                                "User export (columns found: " + ", ".join(c for c in df.columns
                                                                          if not c.startswith("_")) + ")")
        if kind in found:
            raise ImportProblem(f"{path}: a second {kind} file (the first is {found[kind][0]})")
        found[kind] = (path, df)
        result.account(path, len(df), enc, raw=df)
    if "opportunity" not in found:
        raise ImportProblem("no Opportunity.csv among the sources (the file with Id, StageName, IsClosed, IsWon)")
    require_columns(found["opportunity"][1], found["opportunity"][0], OPP_REQUIRED,
                    "a Salesforce Opportunity export")
    if "history" not in found:
        result.assume("no OpportunityHistory.csv given: no stage history beyond each opportunity's current stage")
    else:
        require_columns(found["history"][1], found["history"][0], HIST_REQUIRED,
                        "a Salesforce OpportunityHistory export")
    return found


def _usable_opportunities(opp: pd.DataFrame, file: str, result: ImportResult, default_currency: str):
    """Reject the opportunity rows that cannot be a deal, each with its reason; return the rest and
    the parsed columns (parsed once, for all rows). An Amount marked with another currency than the
    opportunity's (``€1000`` on a USD opportunity) is rejected, as the loader would."""
    opp = opp.copy()
    opp["_file"] = file

    def drop(mask, reason):
        nonlocal opp
        opp = result.drop_rows(opp, mask, reason)

    opp["deal_id"] = opp["Id"].str.strip()
    p = {"stage": opp["StageName"].str.strip()}
    p["closed"], bad_c = _bool(opp["IsClosed"])
    p["won"], bad_w = _bool(opp["IsWon"])
    p["created"], bad_created = parse_dates(opp["CreatedDate"])
    p["close"], bad_close = parse_dates(opp["CloseDate"])
    p["amount"], bad_amount = parse_amounts(opp["Amount"])
    drop(opp["deal_id"].eq(""), "Id is empty")
    drop(opp["deal_id"].duplicated(), "Id appears twice (the first row was used)")
    if "IsDeleted" in opp.columns:
        drop(_bool(opp["IsDeleted"])[0], "IsDeleted is true (the opportunity is in the Recycle Bin)")
    drop(bad_c, "IsClosed is not true/false")
    drop(bad_w, "IsWon is not true/false")
    drop(p["won"] & ~p["closed"], "IsWon is true but IsClosed is false (inconsistent)")
    drop(bad_created | p["created"].isna(), "CreatedDate is empty or not a date-time")
    drop(bad_close, "CloseDate is not a date")
    drop(p["closed"] & p["close"].isna(), "CloseDate is empty on a closed opportunity")
    opp = reject_foreign_marks(result, opp, "Amount", _currency_of(opp, default_currency),
                               whose="the opportunity's")
    drop(bad_amount | (p["amount"] < 0), "Amount is not a number >= 0")
    drop(p["stage"].eq(""), "StageName is empty")
    return opp, {k: v[opp.index] for k, v in p.items()}


def _currency_of(opp: pd.DataFrame, default: str) -> pd.Series:
    """Each opportunity's currency: its CurrencyIsoCode, else ``default``."""
    if "CurrencyIsoCode" not in opp.columns:
        return pd.Series(default, index=opp.index)
    cur = opp["CurrencyIsoCode"].str.strip().str.upper()
    return cur.where(cur.ne(""), default)


def _deals(opp: pd.DataFrame, p: dict, file: str, found: dict, result: ImportResult) -> pd.DataFrame:
    """The deals in the contract's columns (plus the export's useful extras), from usable rows."""
    is_closed, is_won = p["closed"], p["won"]
    status = np.where(is_closed, np.where(is_won, "won", "lost"), "open")
    result.assume("status from IsClosed/IsWon (Salesforce's own flags), not from the stage label")
    result.assume("CreatedDate is UTC; CloseDate is a date without a time, used as closed_at on closed "
                  "opportunities")
    deals = pd.DataFrame({"deal_id": opp["deal_id"], "created_at": p["created"], "status": status,
                          "closed_at": p["close"].where(is_closed), "amount": p["amount"],
                          "_file": file, "_line": opp["_line"]})
    deals["expected_close_date"] = p["close"].where(~is_closed)
    n_open_close = int((~is_closed & p["close"].notna()).sum())
    if n_open_close:
        result.assume(f"CloseDate on {n_open_close} open opportunities is the expected close date: not a "
                      "closed_at (kept as 'expected_close_date')")
    deals["source"] = opp["LeadSource"].str.strip() if "LeadSource" in opp.columns else ""
    deals["product"] = opp["Type"].str.strip() if "Type" in opp.columns else ""
    result.assume("source = LeadSource; product = Type (the opportunity type, e.g. New Business): Opportunity "
                  "has no product field (products are on OpportunityLineItem)")
    owner = opp["OwnerId"].str.strip() if "OwnerId" in opp.columns else pd.Series("", index=opp.index)
    if "user" in found:
        upath, users = found["user"]
        names = dict(zip(users["Id"].str.strip(), users["Name"].str.strip()))
        mapped = owner.map(names)
        unknown = int((mapped.isna() & owner.ne("")).sum())
        owner = mapped.fillna(owner)
        result.assume(f"owner names from {upath.name}" + (f"; {unknown} OwnerIds not in it kept as ids"
                                                          if unknown else ""))
    deals["owner"] = owner
    if "CurrencyIsoCode" in opp.columns:
        deals["currency"] = opp["CurrencyIsoCode"].str.strip()
    for col, name in (("Name", "name"), ("AccountId", "account_id"), ("ForecastCategoryName", "forecast_category")):
        if col in opp.columns:
            deals[name] = opp[col].str.strip()
    if "forecast_category" not in deals.columns and "ForecastCategory" in opp.columns:
        deals["forecast_category"] = opp["ForecastCategory"].str.strip().replace(FORECAST_LABELS)
    # When the export's values were last saved: a change the history lacks happened by then.
    when = next((c for c in ("LastModifiedDate", "SystemModstamp") if c in opp.columns), None)
    deals[VALUES_AT] = parse_dates(opp[when])[0] if when else pd.NaT
    deals["_currency"] = _currency_of(opp, "")
    deals["crm_stage"] = p["stage"]
    deals["_won"] = is_won.to_numpy()
    return deals


def _closed_labels(found: dict, deals: pd.DataFrame) -> tuple[dict[str, str], list[str]]:
    """Closed stage labels (label -> won/lost) and the picklist's open stages in SortOrder: from
    OpportunityStage.csv when given, and from the closed opportunities' own labels."""
    closed_labels: dict[str, str] = {}
    picklist_order: list[str] = []
    if "stage" in found:
        _, st = found["stage"]
        label_col = "ApiName" if "ApiName" in st.columns else "MasterLabel"
        st = st.assign(_order=pd.to_numeric(st["SortOrder"], errors="coerce")).sort_values("_order")
        none = pd.Series(False, index=st.index)
        st_closed = _bool(st["IsClosed"])[0] if "IsClosed" in st.columns else none
        st_won = _bool(st["IsWon"])[0] if "IsWon" in st.columns else none
        for lab, c, w in zip(st[label_col].str.strip(), st_closed, st_won):
            if c:
                closed_labels[lab] = "won" if w else "lost"
            else:
                picklist_order.append(lab)
    # Labels of closed opportunities: the first opportunity with each label says won or lost.
    closed = deals[deals["status"].ne("open")].drop_duplicates("crm_stage")
    for lab, w in zip(closed["crm_stage"], closed["_won"]):
        closed_labels.setdefault(lab, "won" if w else "lost")
    return closed_labels, picklist_order


def _check_open_labels(deals: pd.DataFrame, smap: StageMap, file: str, result: ImportResult) -> None:
    """With a stage map: every open opportunity's label must map to an open stage."""
    labels_open = deals.loc[deals["status"].eq("open"), "crm_stage"]
    mapped = map_labels(labels_open, smap, file=file, column="StageName", result=result, strict=True)
    bad_map = mapped.isin(OUTCOMES)
    if bad_map.any():
        raise ImportProblem(f"{file}: column 'StageName' label(s) "
                            + ", ".join(repr(x) for x in labels_open[bad_map].unique())
                            + " are on open opportunities (IsClosed = false) but the stage map maps them "
                              "to won/lost")


def _stage_of(labels: pd.Series, smap: StageMap) -> pd.Series:
    """Pipeline stage of each label (looked up once per distinct label)."""
    if not smap.given:
        return labels
    return labels.map({lab: smap.lookup(lab) or lab for lab in labels.unique()})


def _stage_entries(found: dict, deals: pd.DataFrame, smap: StageMap, closed_labels: dict,
                   result: ImportResult, default_currency: str) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """OpportunityHistory -> stage entries (with ``_file``/``_line``), each closed deal's
    *witness*: the time its history enters the closed stage it ended in (NaT when none), and the
    usable history rows (sorted by deal and time, ``outcome`` marking rows in a closed stage) from
    which :func:`_changes` reads the recorded values.

    Rows are rejected with reasons (deleted, unknown or rejected opportunity, bad date, empty
    stage); every other row is linked to its deal, so if the deal is rejected later, so are they.
    """
    empty = pd.DataFrame({"deal_id": pd.Series(dtype=object), "stage": pd.Series(dtype=object),
                          "entered_at": pd.Series(dtype="datetime64[ns]"), "_file": pd.Series(dtype=object),
                          "_line": pd.Series(dtype="int64")})
    witness = pd.Series(pd.NaT, index=pd.Index([], dtype=object), dtype="datetime64[ns]")
    if "history" not in found:
        return empty, witness, pd.DataFrame()
    hpath, h = found["history"]
    hfile = str(hpath)
    h = h.copy()

    def hdrop(mask, reason):
        nonlocal h
        h = result.drop_rows(h, mask, reason, file=hfile)

    h["deal_id"] = h["OpportunityId"].str.strip()
    if "IsDeleted" in h.columns:
        hdrop(_bool(h["IsDeleted"])[0], "IsDeleted is true (history row in the Recycle Bin)")
    all_ids = set(found["opportunity"][1]["Id"].str.strip())
    hdrop(~h["deal_id"].isin(all_ids), "OpportunityId not in Opportunity.csv")
    hdrop(~h["deal_id"].isin(set(deals["deal_id"])),
          "its opportunity's row in Opportunity.csv was rejected (see there)")
    ts, bad = parse_dates(h["CreatedDate"])
    label = h["StageName"].str.strip()
    hdrop(bad | ts.isna(), "CreatedDate is empty or not a date-time")
    hdrop(label.eq(""), "StageName is empty")
    if "Amount" in h.columns:
        # Amounts in history rows are in the opportunity's currency.
        cur = h["deal_id"].map(deals.set_index("deal_id")["_currency"]).replace("", default_currency)
        h = reject_foreign_marks(result, h, "Amount", cur, whose="the opportunity's", file=hfile)
        hdrop(parse_amounts(h["Amount"])[1] | (parse_amounts(h["Amount"])[0] < 0), "Amount is not a number >= 0")
    if "CloseDate" in h.columns:
        hdrop(parse_dates(h["CloseDate"])[1], "CloseDate is not a date")
    h = h.assign(entered_at=ts[h.index], label=label[h.index])
    h = h.sort_values(["deal_id", "entered_at"], kind="stable")
    result.link(hfile, h["deal_id"], h["_line"])
    same = h["deal_id"].eq(h["deal_id"].shift()) & h["label"].eq(h["label"].shift())
    kinds = {lab: closed_labels.get(lab) or (smap.lookup(lab) if smap.given else None) or default_outcome(lab)
             for lab in h["label"].unique()}
    outcome = h["label"].map(kinds).isin(OUTCOMES)
    n_same, n_out = int(same.sum()), int((outcome & ~same).sum())
    if n_same:
        result.assume(f"{n_same} OpportunityHistory rows change Amount, CloseDate or Probability but not the "
                      "stage: not stage entries")
    if n_out:
        result.assume(f"{n_out} OpportunityHistory rows enter a closed stage: the outcome is the deal's "
                      "status (IsClosed/IsWon) and closed_at its CloseDate, so they are not stage entries")
    # The witness: the first row of the closed run that ends the deal's history.
    last_open = h[~outcome].groupby("deal_id")["entered_at"].max()
    after = h["entered_at"] > h["deal_id"].map(last_open).fillna(pd.Timestamp.min)
    witness = h[outcome & after].groupby("deal_id")["entered_at"].min()
    entries = h[~same & ~outcome]
    if smap.given:
        map_labels(entries["label"], smap, file=hfile, column="StageName", result=result, strict=True)
    hist = pd.DataFrame({"deal_id": entries["deal_id"], "stage": _stage_of(entries["label"], smap),
                         "entered_at": entries["entered_at"], "_file": hfile, "_line": entries["_line"]})
    result.accounts[hfile].note = f"{len(hist)} stage entries"
    return hist, witness, h.assign(outcome=outcome, kind=h["label"].map(kinds).where(outcome, ""))


def _changes(rows: pd.DataFrame, deals: pd.DataFrame, found: dict, result: ImportResult) -> pd.DataFrame | None:
    """OpportunityHistory's Amount, CloseDate and ForecastCategory as changes of ``amount``,
    ``expected_close_date`` and ``forecast_category``, and its closed stages followed by open ones as
    earlier closes and reopenings (``status``): each row is a snapshot of the opportunity
    after a save, so a value that differs from the deal's previous row is a change at the row's
    CreatedDate, and the first row gives the first known value.

    - CloseDate is an expected close date only on rows in an open stage (on a row entering a closed
      stage it is the close): rows in a closed stage give no ``expected_close_date``.
    - An empty value is unknown (a change to unknown, never 0).
    - Rows of one opportunity at the same instant are ordered by evidence: the row whose value the
      next save (or Opportunity.csv) still shows is the later one; otherwise the file's order.
      :func:`~funnelkit.importers.common.settle_changes` keeps the last.
    """
    if rows.empty:
        return None
    fields = {}
    if "Amount" in rows.columns:
        fields["amount"] = (parse_amounts(rows["Amount"])[0], pd.Series(True, index=rows.index))
    if "CloseDate" in rows.columns:
        fields["expected_close_date"] = (parse_dates(rows["CloseDate"])[0], ~rows["outcome"])
    if "ForecastCategory" in rows.columns:
        fields["forecast_category"] = (rows["ForecastCategory"].str.strip().replace(FORECAST_LABELS),
                                       pd.Series(True, index=rows.index))
    hname = Path(found["history"][0]).name
    # A row in a closed stage followed by a row in an open stage: an earlier close and a reopening.
    parts, counts = [status_rows(rows["deal_id"], rows["entered_at"], rows["kind"])], []
    if parts[0]["value"].eq("open").any():
        result.assume(f"{hname}: a row in a closed stage followed by a row in an open stage is an earlier close "
                      "and a reopening, dated by those rows' CreatedDate (deal_changes.csv, field status)")
    if not fields:
        return pd.concat(parts, ignore_index=True)
    final = deals.set_index("deal_id")
    for name, (values, usable) in fields.items():
        r = rows[usable.to_numpy()]
        v = values[r.index]
        key = v.astype(str).where(v.notna() & v.astype(str).ne(""), "")
        export = (final[name] if name in final.columns else pd.Series(dtype=object))
        export_key = export.astype(str).where(export.notna() & export.astype(str).ne(""), "")
        order = _same_instant_order(r["deal_id"], r["entered_at"], key, export_key)
        r, v = r.loc[order], v.loc[order]
        parts.append(change_rows(r["deal_id"], r["entered_at"], name, v))
        counts.append(f"{name} from {len(r)} rows")
    names = {"amount": "Amount", "expected_close_date": "CloseDate (on rows in an open stage: the expected close "
             "date)", "forecast_category": "ForecastCategory"}
    result.assume(f"{hname}: " + ", ".join(names[f] for f in fields) + " are the values after each save, "
                  "dated by the row's CreatedDate; a value that "
                  "differs from the opportunity's previous row is a change (deal_changes.csv), the first row gives "
                  "the first known value, an empty value is unknown (never 0), and Amount is in the opportunity's "
                  "currency (" + "; ".join(counts) + ")")
    if "ForecastCategory" in rows.columns:
        result.assume("ForecastCategory API names are shown as Salesforce's labels (" + ", ".join(
            f"{k} = {v}" for k, v in FORECAST_LABELS.items()) + "), as in ForecastCategoryName")
    return pd.concat(parts, ignore_index=True)


def _same_instant_order(deal_id: pd.Series, at: pd.Series, key: pd.Series, export_key: pd.Series) -> pd.Index:
    """The rows' index in deal and time order where, among rows of one deal at one instant, a row
    whose value the next instant's first row (or the export, after the last) still has comes last."""
    t = pd.DataFrame({"deal": deal_id, "at": at, "key": key, "pos": np.arange(len(key))})
    t = t.sort_values(["deal", "at", "pos"], kind="stable")
    inst = t.groupby(["deal", "at"], sort=False).ngroup()
    first_key = t.groupby(inst)["key"].first()
    first_deal = t.groupby(inst)["deal"].first()
    nxt = first_key.shift(-1).where(first_deal.shift(-1).eq(first_deal))
    nxt = nxt.fillna(first_deal.map(export_key))
    t["later"] = t["key"].to_numpy() == inst.map(nxt).to_numpy()
    return t.sort_values(["deal", "at", "later", "pos"], kind="stable").index


def _current_stages(deals: pd.DataFrame, hist: pd.DataFrame, opp: pd.DataFrame,
                    result: ImportResult) -> pd.DataFrame:
    """Open deals whose current stage is not their last history entry: add the current stage,
    entered at LastStageChangeDate (or LastModifiedDate; CreatedDate with no history)."""
    last_stage = hist.sort_values("entered_at").groupby("deal_id")["stage"].last()
    is_open = deals["status"].eq("open")
    last = deals["deal_id"].map(last_stage).astype(object)
    missing = is_open & deals["stage_now"].ne(last.where(last.notna(), ""))
    if not missing.any():
        return hist
    when_col = next((c for c in ("LastStageChangeDate", "LastModifiedDate") if c in opp.columns), None)
    when = parse_dates(opp[when_col])[0] if when_col else pd.Series(pd.NaT, index=opp.index)
    no_hist = missing & ~deals["deal_id"].isin(last_stage.index)
    at = when.where(~no_hist, deals["created_at"]).fillna(deals["created_at"])
    add = pd.DataFrame({"deal_id": deals.loc[missing, "deal_id"], "stage": deals.loc[missing, "stage_now"],
                        "entered_at": at[missing]})
    n_nh = int(no_hist.sum())
    if n_nh:
        result.assume(f"{n_nh} open opportunities have no history row: their current stage is taken as "
                      "entered at CreatedDate")
    if int(missing.sum()) - n_nh:
        result.assume(f"{int(missing.sum()) - n_nh} open opportunities are in a stage their history does not "
                      f"show: entered at {when_col or 'CreatedDate'}")
    return pd.concat([hist, add], ignore_index=True)


def _stage_order(deals, hist, opp, found, smap: StageMap, picklist_order: list[str],
                 result: ImportResult) -> list[str]:
    """The pipeline order, from the first of: the stage map's ``stages``, OpportunityStage.csv's
    SortOrder, the export's ``StageSortOrder`` column, Salesforce's default picklist and the mean
    Probability per stage. The report says which was used."""
    open_labels = list(deals.loc[deals["status"].eq("open"), "stage_now"].unique()) + list(hist["stage"].unique())
    labels = list(dict.fromkeys(s for s in open_labels if s))
    if smap.stages:
        stages, how = order_stages(open_labels, smap)
        result.assume(how)
        return stages
    if picklist_order:
        order = picklist_order + [s for s in labels if s not in picklist_order]
        stages, _ = order_stages(open_labels, StageMap({}, order, "OpportunityStage.csv"))
        result.assume(f"stage order and closed stages from {found['stage'][0].name} (SortOrder, IsClosed, IsWon)")
        return stages
    sort_order = _stage_sort_order(deals, found, smap)
    if sort_order and all(s in sort_order for s in labels):
        stages = sorted(labels, key=lambda s: (sort_order[s], s))
        result.assume("pipeline stage order from the export's own StageSortOrder column ("
                      + ", ".join(f"{s!r} {sort_order[s]:g}" for s in stages) + ")")
        return stages
    if sort_order:
        result.assume("StageSortOrder does not cover the stage(s) "
                      + ", ".join(repr(s) for s in labels if s not in sort_order) + ": not used")
    score = None
    prob_parts = []
    if "Probability" in opp.columns:
        prob_parts.append(pd.DataFrame({"stage": deals["stage_now"].to_numpy(),
                                        "p": parse_amounts(opp["Probability"])[0].to_numpy()}))
    if "history" in found and "Probability" in found["history"][1].columns:
        hh = found["history"][1]
        prob_parts.append(pd.DataFrame({"stage": _stage_of(hh["StageName"].str.strip(), smap),
                                        "p": parse_amounts(hh["Probability"])[0]}))
    if prob_parts:
        score = pd.concat(prob_parts).groupby("stage")["p"].mean().to_dict()
    stages, how = order_stages(open_labels, smap, DEFAULT_ORDER, score)
    result.assume(how)
    return stages


def _stage_sort_order(deals: pd.DataFrame, found: dict, smap: StageMap) -> dict[str, float]:
    """Each stage's ``StageSortOrder`` (a column some Salesforce exports carry on Opportunity and
    OpportunityHistory rows), taken from every row that has one; empty when no file has it."""
    parts = []
    opp = found["opportunity"][1]
    if "StageSortOrder" in opp.columns:
        parts.append(pd.DataFrame({"label": opp["StageName"].str.strip(), "order": opp["StageSortOrder"]}))
    if "history" in found and "StageSortOrder" in found["history"][1].columns:
        hh = found["history"][1]
        parts.append(pd.DataFrame({"label": hh["StageName"].str.strip(), "order": hh["StageSortOrder"]}))
    if not parts:
        return {}
    t = pd.concat(parts, ignore_index=True)
    t["order"] = pd.to_numeric(t["order"].str.strip(), errors="coerce")
    t = t.dropna(subset=["order"])
    t["stage"] = _stage_of(t["label"], smap)
    return t.groupby("stage")["order"].min().to_dict()


def _export_end(opp: pd.DataFrame, found: dict) -> pd.Timestamp:
    """The export's last recorded timestamp: the latest CreatedDate, LastModifiedDate,
    SystemModstamp or LastStageChangeDate of Opportunity, or CreatedDate of OpportunityHistory."""
    latest = []
    for col in ("CreatedDate", "LastModifiedDate", "SystemModstamp", "LastStageChangeDate"):
        if col in opp.columns:
            latest.append(parse_dates(opp[col])[0].max())
    if "history" in found:
        latest.append(parse_dates(found["history"][1]["CreatedDate"])[0].max())
    latest = [t for t in latest if pd.notna(t)]
    return max(latest) if latest else pd.NaT
