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

from .common import (OUTCOMES, ImportProblem, ImportResult, StageMap, default_outcome, finish, map_labels,
                     order_stages, parse_amounts, parse_dates, read_source, require_columns)

OPP_REQUIRED = ["Id", "CreatedDate", "StageName", "CloseDate", "Amount", "IsClosed", "IsWon"]
HIST_REQUIRED = ["OpportunityId", "StageName", "CreatedDate"]
#: The stage picklist of a new Salesforce org, in order.
DEFAULT_ORDER = ["Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
                 "Id. Decision Makers", "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review"]
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
                      force=False, **_) -> ImportResult:
    sources = [Path(s) for s in sources]
    result = ImportResult("salesforce", [str(s) for s in sources])
    smap = StageMap.from_yaml(stage_map) if stage_map else StageMap()
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
    opp_path, opp = found["opportunity"]
    require_columns(opp, opp_path, OPP_REQUIRED, "a Salesforce Opportunity export")
    if "history" not in found:
        result.assume("no OpportunityHistory.csv given: no stage history beyond each opportunity's current stage")
    else:
        require_columns(found["history"][1], found["history"][0], HIST_REQUIRED,
                        "a Salesforce OpportunityHistory export")
    file = str(opp_path)
    opp = opp.copy()
    opp["_file"] = file

    def drop(mask, reason):
        nonlocal opp
        mask = mask.reindex(opp.index, fill_value=False).fillna(False).astype(bool)
        if mask.any():
            grp = opp[mask]
            result.reject(file, grp["_line"], reason, grp)
        opp = opp[~mask]

    # Each column is parsed once (values are parsed one by one, so parsing all rows and taking
    # the rows still kept gives the same values as parsing the kept rows again).
    opp["deal_id"] = opp["Id"].str.strip()
    stage_all = opp["StageName"].str.strip()
    closed_all, bad_c = _bool(opp["IsClosed"])
    won_all, bad_w = _bool(opp["IsWon"])
    created_all, bad_created = parse_dates(opp["CreatedDate"])
    close_all, bad_close = parse_dates(opp["CloseDate"])
    drop(opp["deal_id"].eq(""), "Id is empty")
    drop(opp["deal_id"].duplicated(), "Id appears twice (the first row was used)")
    if "IsDeleted" in opp.columns:
        deleted, _ = _bool(opp["IsDeleted"])
        drop(deleted, "IsDeleted is true (the opportunity is in the Recycle Bin)")
    drop(bad_c, "IsClosed is not true/false")
    drop(bad_w & ~bad_c, "IsWon is not true/false")
    drop(won_all & ~closed_all, "IsWon is true but IsClosed is false (inconsistent)")
    drop(bad_created | created_all.isna(), "CreatedDate is empty or not a date-time")
    drop(bad_close, "CloseDate is not a date")
    drop(closed_all & close_all.isna(), "CloseDate is empty on a closed opportunity")
    amount_all, bad = parse_amounts(opp["Amount"])
    drop(bad | (amount_all < 0), "Amount is not a number >= 0")
    drop(stage_all.eq(""), "StageName is empty")

    kept = opp.index
    is_closed, is_won = closed_all[kept], won_all[kept]
    status = np.where(is_closed, np.where(is_won, "won", "lost"), "open")
    created, close, amount = created_all[kept], close_all[kept], amount_all[kept]
    result.assume("status from IsClosed/IsWon (Salesforce's own flags), not from the stage label")
    result.assume("CreatedDate is UTC; CloseDate is a date without a time, used as closed_at on closed "
                  "opportunities")
    deals = pd.DataFrame({"deal_id": opp["deal_id"], "created_at": created, "status": status,
                          "closed_at": close.where(is_closed), "amount": amount,
                          "_file": file, "_line": opp["_line"]})
    deals["expected_close_date"] = close.where(~is_closed)
    n_open_close = int((~is_closed & close.notna()).sum())
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
    deals["crm_stage"] = stage_all[kept]

    # Stage labels: closed ones (from the picklist, the opportunities and the defaults) are outcomes.
    stage_tab = found.get("stage")
    closed_labels: dict[str, str] = {}
    picklist_order: list[str] = []
    if stage_tab is not None:
        spath, st = stage_tab
        label_col = "ApiName" if "ApiName" in st.columns else "MasterLabel"
        st = st.assign(_order=pd.to_numeric(st["SortOrder"], errors="coerce")).sort_values("_order")
        st_closed, _ = _bool(st["IsClosed"]) if "IsClosed" in st.columns else (pd.Series(False, index=st.index), None)
        st_won, _ = _bool(st["IsWon"]) if "IsWon" in st.columns else (pd.Series(False, index=st.index), None)
        for lab, c, w in zip(st[label_col].str.strip(), st_closed, st_won):
            if c:
                closed_labels[lab] = "won" if w else "lost"
            else:
                picklist_order.append(lab)
        result.assume(f"stage order and closed stages from {spath.name} (SortOrder, IsClosed, IsWon)")
    # Labels of closed opportunities: the first opportunity with each label says won or lost.
    first = pd.DataFrame({"lab": deals["crm_stage"], "won": is_won})[is_closed].drop_duplicates("lab")
    for lab, w in zip(first["lab"], first["won"]):
        closed_labels.setdefault(lab, "won" if w else "lost")

    open_smap = smap
    if smap.given:
        labels_open = deals.loc[deals["status"].eq("open"), "crm_stage"]
        mapped = map_labels(labels_open, smap, file=file, column="StageName", result=result, strict=True)
        bad_map = mapped.isin(OUTCOMES)
        if bad_map.any():
            raise ImportProblem(f"{file}: column 'StageName' label(s) "
                                + ", ".join(repr(x) for x in labels_open[bad_map].unique())
                                + " are on open opportunities (IsClosed = false) but the stage map maps them "
                                  "to won/lost")
    def stage_of(labels: pd.Series) -> pd.Series:
        """Pipeline stage of each label (looked up once per distinct label)."""
        if not smap.given:
            return labels
        return labels.map({lab: smap.lookup(lab) or lab for lab in labels.unique()})

    deals["stage_now"] = np.where(deals["status"].eq("open"), stage_of(deals["crm_stage"]), "")

    hist = pd.DataFrame(columns=["deal_id", "stage", "entered_at"])
    if "history" in found:
        hpath, h = found["history"]
        hfile = str(hpath)
        h = h.copy()

        def hdrop(mask, reason):
            nonlocal h
            mask = mask.fillna(False).astype(bool)
            if mask.any():
                result.reject(hfile, h.loc[mask, "_line"], reason, h[mask])
            h = h[~mask]

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
        hdrop(label.reindex(h.index).eq(""), "StageName is empty")
        h = h.assign(entered_at=ts[h.index], label=label[h.index])
        h = h.sort_values(["deal_id", "entered_at"], kind="stable")
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
        entries = h[~same & ~outcome]
        if smap.given:
            map_labels(entries["label"], smap, file=hfile, column="StageName", result=result, strict=True)
        hist = pd.DataFrame({"deal_id": entries["deal_id"], "stage": stage_of(entries["label"]),
                             "entered_at": entries["entered_at"]})
        result.accounts[hfile].note = f"{len(hist)} stage entries"

    # Open deals whose current stage is not their last history entry: add the current stage.
    last_stage = hist.sort_values("entered_at").groupby("deal_id")["stage"].last()
    is_open = deals["status"].eq("open")
    missing = is_open & deals["stage_now"].ne(deals["deal_id"].map(last_stage).fillna(""))
    if missing.any():
        when_col = next((c for c in ("LastStageChangeDate", "LastModifiedDate") if c in opp.columns), None)
        when = parse_dates(opp[when_col])[0] if when_col else pd.Series(pd.NaT, index=opp.index)
        no_hist = missing & ~deals["deal_id"].isin(last_stage.index)
        at = when.where(~no_hist, deals["created_at"]).fillna(deals["created_at"])
        add = pd.DataFrame({"deal_id": deals.loc[missing, "deal_id"], "stage": deals.loc[missing, "stage_now"],
                            "entered_at": at[missing]})
        hist = pd.concat([hist, add], ignore_index=True)
        n_nh = int(no_hist.sum())
        if n_nh:
            result.assume(f"{n_nh} open opportunities have no history row: their current stage is taken as "
                          "entered at CreatedDate")
        if int(missing.sum()) - n_nh:
            result.assume(f"{int(missing.sum()) - n_nh} open opportunities are in a stage their history does not "
                          f"show: entered at {when_col or 'CreatedDate'}")
    no_entries = ~deals["deal_id"].isin(hist["deal_id"])
    # Closed deals without history: the loader's rule (first stage at created_at), said here.
    score = None
    prob_parts = []
    if "Probability" in opp.columns:
        prob_parts.append(pd.DataFrame({"stage": deals["stage_now"], "p": parse_amounts(opp["Probability"])[0]}))
    if "history" in found and "Probability" in found["history"][1].columns:
        hh = found["history"][1]
        prob_parts.append(pd.DataFrame({"stage": stage_of(hh["StageName"].str.strip()),
                                        "p": parse_amounts(hh["Probability"])[0]}))
    if prob_parts:
        score = pd.concat(prob_parts).groupby("stage")["p"].mean().to_dict()
    open_labels = list(deals.loc[is_open, "stage_now"].unique()) + list(hist["stage"].unique())
    if picklist_order and not smap.stages:
        open_smap = StageMap({}, [s for s in picklist_order] + [s for s in dict.fromkeys(open_labels)
                                                               if s not in picklist_order], "OpportunityStage.csv")
    stages, how = order_stages(open_labels, open_smap, DEFAULT_ORDER, score)
    if not picklist_order or smap.stages:
        result.assume(how)
    if no_entries.any():
        result.assume(f"{int(no_entries.sum())} opportunities have no stage entry: recorded as entering the first "
                      f"stage ({stages[0]!r}) at CreatedDate")
        hist = pd.concat([hist, pd.DataFrame({"deal_id": deals.loc[no_entries, "deal_id"], "stage": stages[0],
                                              "entered_at": deals.loc[no_entries, "created_at"]})],
                         ignore_index=True)
    deals = deals.drop(columns=["stage_now"]).reset_index(drop=True)
    return finish(result, deals, hist, stages, out=out, force=force, sources=sources,
                  name="Salesforce opportunities", rates=rates, currency=currency,
                  what_closed="CloseDate", what_created="CreatedDate", inputs=[stage_map])
