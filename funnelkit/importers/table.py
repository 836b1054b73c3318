"""Any one-row-per-deal table export, mapped by a small YAML column map.

A column map says which column holds what, how stage labels map to pipeline stages or won/lost,
and how dates are written. Shipped maps (``funnelkit/importers/maps/*.yml``) can be named instead of
a path: ``--map maven_crm``, ``--map olist_funnel``. Keys:

``name``, ``currency`` (ISO code of the amounts), ``date_format`` (strftime, or a list tried in turn;
default ISO 8601), ``columns`` (deal_id, created_at, closed_at, amount, stage or status, source,
product, owner, currency; optional expected_close_date, forecast_category, lost_reason: each an export
column or null), ``keep`` (more columns to carry over),
``stages`` (the pipeline order), ``stage_map`` (label: stage | won | lost), ``stage_dates``
(stage: column with the date that stage was entered), ``status`` (instead of a stage column:
``won_when: COLUMN`` non-empty = won; ``lost_after_days: N`` un-won deals count as lost N days after
creation when that lies within the data, else open), ``join`` (``file`` and ``on``: a second export
joined to the first, one row per key), ``missing_created_at`` (``reject`` or ``latest``),
``closed_before_created`` (``keep``, the default: a deal closed before its creation is kept, dated
by its close and flagged ``dates_estimated``; or ``reject``; ``clamp`` is the older name of ``keep``), ``amount_missing_on_closed`` (``unknown``, the default, ``zero`` or
``reject``), ``notes`` (assumptions the map makes, copied into the import report).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..io import InputRefused, read_settings_yaml
from .common import (OUTCOMES, ImportProblem, ImportResult, StageMap, finish, map_labels, order_stages,
                     parse_amounts, parse_dates, read_source, reject_foreign_marks, require_columns)

TARGETS = ("deal_id", "created_at", "closed_at", "amount", "stage", "source", "product", "owner", "currency",
           "expected_close_date", "forecast_category", "lost_reason")


def resolve_map(column_map) -> tuple[dict, str]:
    """Load a column map from a path or a shipped map name."""
    from . import shipped_maps

    if column_map is None:
        raise ImportProblem("the table format needs --map: a YAML column map, or a shipped map name ("
                            + ", ".join(shipped_maps()) + ")")
    if isinstance(column_map, dict):
        return column_map, "column map"
    p = Path(column_map)
    label = str(p)
    if not p.exists():
        shipped = shipped_maps()
        if str(column_map) in shipped:
            p = shipped[str(column_map)]
            label = f"{column_map} (shipped with funnelkit)"
        else:
            raise FileNotFoundError(f"column map {column_map!r} not found (a YAML file, or one of the shipped "
                                    f"maps: {', '.join(shipped)})")
    try:
        raw = read_settings_yaml(p)
    except InputRefused as exc:
        raise ImportProblem(f"{p}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ImportProblem(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("columns"), dict):
        raise ImportProblem(f"{p}: a column map needs a 'columns:' mapping (deal_id: ..., created_at: ..., ...)")
    unknown = [k for k in raw["columns"] if k not in TARGETS]
    if unknown:
        raise ImportProblem(f"{p}: unknown target(s) under 'columns': {', '.join(unknown)} "
                            f"(known: {', '.join(TARGETS)})")
    for req in ("deal_id", "created_at"):
        if not raw["columns"].get(req):
            raise ImportProblem(f"{p}: 'columns' must name the {req} column")
    if not raw["columns"].get("stage") and not raw.get("status"):
        raise ImportProblem(f"{p}: give either columns.stage (with a stage_map) or a 'status:' rule")
    return raw, label


def import_table(sources, out, *, column_map=None, stage_map=None, rates=None, currency=None, encoding=None,
                 force=False, strict_dates=False, escape_formulas=False, **_) -> ImportResult:
    """Import a one-row-per-deal table (plus an optional joined second file) with a column map.

    Parameters
    ----------
    sources
        The table, and the file named under the map's ``join:`` when it has one.
    column_map
        A YAML column map (path or dict) or the name of a shipped map; see this module's docstring.
    out, stage_map, rates, currency, encoding, force, strict_dates, escape_formulas
        As for :func:`funnelkit.importers.import_export`; ``strict_dates`` overrides the map's
        ``closed_before_created`` with ``reject``.

    Returns
    -------
    ImportResult
        The table's accounting (and the joined file's), its rejected rows and assumptions.

    Examples
    --------
    >>> r = import_table(["sales_pipeline.csv"], "data/maven", column_map="maven_crm")  # doctest: +SKIP
    """
    cmap, map_name = resolve_map(column_map)
    sources = [Path(s) for s in sources]
    result = ImportResult("table", [str(s) for s in sources])
    result.assume(f"column map: {map_name}")
    cols = {k: v for k, v in cmap["columns"].items() if v}
    main_path, join_path = _main_and_joined(cmap, sources, map_name)
    df, file = _read_and_join(main_path, join_path, cmap.get("join"), encoding, map_name, result)
    need = [c for t, c in cols.items()] + list((cmap.get("stage_dates") or {}).values()) + list(cmap.get("keep") or [])
    won_when = (cmap.get("status") or {}).get("won_when")
    if won_when:
        need.append(won_when)
    require_columns(df, main_path if join_path is None else f"{main_path} (+ {join_path.name})",
                    list(dict.fromkeys(need)), f"the column map {map_name}")
    df = df.copy()

    def drop(mask, reason, detail=None):
        nonlocal df
        df = result.drop_rows(df, mask, reason, detail=detail)

    fmt = cmap.get("date_format")
    df["deal_id"] = df[cols["deal_id"]].str.strip()
    drop(df["deal_id"].eq(""), f"{cols['deal_id']} (deal_id) is empty")
    first_line = df.groupby("deal_id")["_line"].transform("first")
    drop(df["deal_id"].duplicated(), f"{cols['deal_id']} (deal_id) appears twice (the first row was used)",
         detail="first on line " + first_line.astype(str))

    # Status and stage.
    smap = StageMap.from_yaml(None, {"stages": cmap.get("stages") or [], "map": cmap.get("stage_map") or {}})
    smap.source = map_name
    if stage_map:
        smap = smap.merged(StageMap.from_yaml(stage_map))
    closed_col = cols.get("closed_at")
    if cols.get("stage"):
        sc = cols["stage"]
        drop(df[sc].str.strip().eq(""), f"{sc} (stage) is empty")
        mapped = map_labels(df[sc].str.strip(), smap, file=file, column=sc, result=result, strict=smap.given)
        df["status"] = np.where(mapped.isin(OUTCOMES), mapped, "open")
        df["stage_now"] = np.where(mapped.isin(OUTCOMES), "", mapped)
    else:
        df["status"] = np.where(df[won_when].str.strip().ne(""), "won", "open")
        df["stage_now"] = np.where(df["status"].eq("open"), (cmap.get("stages") or ["Open"])[0], "")
        result.assume(f"status: won where {won_when} is filled; the export has no lost records")

    created, bad = parse_dates(df[cols["created_at"]], fmt)
    drop(bad, f"{cols['created_at']} (created_at) is not a date")
    created, _ = parse_dates(df[cols["created_at"]], fmt)
    closed = parse_dates(df[closed_col], fmt) if closed_col else (pd.Series(pd.NaT, index=df.index), None)
    if closed_col:
        drop(closed[1], f"{closed_col} (closed_at) is not a date")
        closed = parse_dates(df[closed_col], fmt)[0]
    else:
        closed = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]")
    created = created.reindex(df.index)
    dates_all = pd.concat([created, closed.reindex(df.index)])
    latest = dates_all.max()
    no_created = created.isna()
    if no_created.any():
        how = cmap.get("missing_created_at", "reject")
        stages_of = df.loc[no_created, "stage_now"].replace("", "closed").value_counts()
        desc = ", ".join(f"{n} in {s!r}" for s, n in stages_of.items())
        if how == "latest":
            created = created.fillna(latest.normalize())
            result.assume(f"{int(no_created.sum())} deals ({desc}) have no {cols['created_at']}: created_at set "
                          f"to the latest date in the export ({latest.date()}), an upper bound")
        else:
            drop(no_created, f"{cols['created_at']} (created_at) is empty: the deal cannot be placed in time "
                 "(set missing_created_at: latest in the column map to keep such deals)")
            result.assume(f"{int(no_created.sum())} deals ({desc}) have no {cols['created_at']}: rejected (listed "
                          "in the rejected rows); a column map can keep them with missing_created_at: latest")
    created = created.reindex(df.index)
    closed = closed.reindex(df.index)

    status_rule = cmap.get("status") or {}
    if status_rule.get("lost_after_days") is not None:
        n = int(status_rule["lost_after_days"])
        unwon = df["status"].eq("open")
        deadline = created + pd.Timedelta(days=n)
        lost = unwon & (deadline <= latest)
        df.loc[lost, "status"] = "lost"
        df.loc[lost, "stage_now"] = ""
        closed = closed.where(~lost, deadline)
        result.assume(f"leads not won are taken as lost {n} days after {cols['created_at']} "
                      f"(closed_at = {cols['created_at']} + {n} days) when that lies within the data "
                      f"(up to {latest.date()}): {int(lost.sum())} lost; the {int((unwon & ~lost).sum())} younger "
                      "un-won leads stay open")
    is_closed = df["status"].isin(OUTCOMES)
    open_close = ~is_closed & closed.notna()
    if open_close.any():
        result.assume(f"{closed_col} on {int(open_close.sum())} open deals is not a close: not used as closed_at "
                      + (f"(the expected close date is {cols['expected_close_date']})" if cols.get("expected_close_date")
                         else "(kept as 'expected_close_date')"))
    no_close = is_closed & closed.isna()
    drop(no_close, f"{closed_col or 'closed_at'} is empty on a " + df["status"] + " deal")
    is_closed = df["status"].isin(OUTCOMES)
    idx = df.index
    amount = pd.Series(np.nan, index=idx)
    expected = None
    if cols.get("expected_close_date"):
        expected, bad = parse_dates(df[cols["expected_close_date"]], fmt)
        drop(bad, f"{cols['expected_close_date']} (expected_close_date) is not a date")
    if cols.get("amount"):
        cur = (df[cols["currency"]].str.strip().str.upper() if cols.get("currency")
               else pd.Series("", index=df.index))
        default = str(currency or cmap.get("currency") or "USD").strip().upper()
        df = reject_foreign_marks(result, df, cols["amount"], cur.where(cur.ne(""), default))
        amount, bad = parse_amounts(df[cols["amount"]])
        drop(bad | (amount < 0), f"{cols['amount']} (amount) is not a number >= 0")
        amount = amount.reindex(df.index)
    idx = df.index
    deals = pd.DataFrame({"deal_id": df["deal_id"], "created_at": created[idx], "status": df["status"],
                          "closed_at": closed[idx].where(df["status"].isin(OUTCOMES)),
                          "amount": amount[idx], "_file": df["_file"], "_line": df["_line"]})
    if expected is not None:
        deals["expected_close_date"] = expected[idx].where(~df["status"].isin(OUTCOMES))
        result.assume(f"expected_close_date = {cols['expected_close_date']} on open deals")
    elif open_close[idx].any():
        deals["expected_close_date"] = closed[idx].where(~df["status"].isin(OUTCOMES))
    for t in ("forecast_category", "lost_reason"):
        if cols.get(t):
            text = df[cols[t]].str.strip()
            deals[t] = text.where(df["status"].eq("lost"), "") if t == "lost_reason" else text
            result.assume(f"{t} = {cols[t]}" + (" on lost deals" if t == "lost_reason" else ""))
    for t in ("source", "product", "owner", "currency"):
        if cols.get(t):
            deals[t] = df[cols[t]].str.strip()
        elif t != "currency":
            deals[t] = ""
            result.assume(f"the export has no {t} column: {t} left empty ('(not set)')")
    for k in cmap.get("keep") or []:
        if k not in deals.columns:
            deals[k] = df[k].str.strip()
    if cols.get("stage"):
        deals["crm_stage"] = df[cols["stage"]].str.strip()

    # Stage history.
    hist, stages = _stage_history(df, deals, created, cmap, smap, cols, result)
    for note in cmap.get("notes") or []:
        result.assume(str(note).strip())
    return finish(result, deals.reset_index(drop=True), hist, stages, out=out, force=force, sources=sources,
                  name=str(cmap.get("name") or main_path.stem),
                  currency_default=None if not cmap.get("currency") else str(cmap["currency"]).upper(),
                  rates=rates, currency=currency,
                  closed_before_created="reject" if strict_dates else cmap.get("closed_before_created", "keep"),
                  what_closed=closed_col or "closed_at", what_created=cols["created_at"],
                  missing_amount=cmap.get("amount_missing_on_closed", "unknown"),
                  inputs=[stage_map, column_map if isinstance(column_map, (str, Path)) else None],
                  escape_formulas=escape_formulas)



def _main_and_joined(cmap: dict, sources: list[Path], map_name: str) -> tuple[Path, Path | None]:
    """The main table and the joined file (``join:`` in the map), among the sources."""
    join = cmap.get("join")
    main_path = sources[0]
    join_path = None
    if join:
        want = join.get("file")
        cands = [s for s in sources if want and s.name == want] or sources[1:2]
        if not cands:
            raise ImportProblem(f"{map_name}: the map joins a second file ({want or 'see join:'}); give it as a "
                                "second source")
        join_path = cands[0]
        rest = [s for s in sources if s != join_path]
        main_path = rest[0]
        if len(rest) > 1:
            raise ImportProblem(f"too many sources for this map: {', '.join(map(str, sources))}")
    elif len(sources) > 1:
        raise ImportProblem("the table format reads one file (its map has no 'join:'); got "
                            + ", ".join(map(str, sources)))
    return main_path, join_path


def _read_and_join(main_path: Path, join_path: Path | None, join: dict | None, encoding, map_name: str,
                   result: ImportResult) -> tuple[pd.DataFrame, str]:
    """Read the main table (and join the second file on the map's key: one row per key, rows of it
    matching no main row rejected); return the table and the main file's name."""
    df, enc = read_source(main_path, encoding)
    result.account(main_path, len(df), enc, raw=df)
    file = str(main_path)
    df["_file"] = file
    if join_path is not None:
        key = join.get("key") or join.get("on") or join.get(True)  # YAML 1.1 reads a bare on: as True
        jdf, jenc = read_source(join_path, encoding)
        jacc = result.account(join_path, len(jdf), jenc, raw=jdf)
        require_columns(jdf, join_path, [key], f"the join in {map_name}")
        require_columns(df, main_path, [key], f"the join in {map_name}")
        jdf = jdf.copy()
        jdf["_key"] = jdf[key].str.strip()
        dup = jdf["_key"].duplicated()
        jdf = result.drop_rows(jdf, dup, f"{key} appears twice (the first row was used)", file=str(join_path))
        orphan = ~jdf["_key"].isin(set(df[key].str.strip()))
        jdf = result.drop_rows(jdf, orphan, f"{key} not in {main_path.name}", file=str(join_path))
        jacc.note = f"joined on {key}: {len(jdf)} rows matched"
        clash = [c for c in jdf.columns if c in df.columns and c not in (key,) and not c.startswith("_")]
        jdf = jdf.drop(columns=["_line", key] + clash).rename(columns={"_key": "_jkey"})
        df = df.assign(_jkey=df[key].str.strip()).merge(jdf, on="_jkey", how="left").drop(columns="_jkey")
        df = df.fillna("")
        result.assume(f"{join_path.name} joined to {main_path.name} on {key} ({len(jdf)} matches)")
    return df, file


def _stage_history(df, deals, created, cmap: dict, smap: StageMap, cols: dict, result: ImportResult):
    """Stage entries from the map's ``stage_dates`` columns, each open deal's current stage (entered
    at created_at when undated) and the first stage for deals with none; and the stage order."""
    fmt = cmap.get("date_format")
    stages_listed = list(cmap.get("stages") or [])
    parts = []
    for stage, col in (cmap.get("stage_dates") or {}).items():
        ts = parse_dates(df[col], fmt)[0]
        ok = ts.notna()
        parts.append(pd.DataFrame({"deal_id": df.loc[ok, "deal_id"], "stage": stage, "entered_at": ts[ok]}))
        result.assume(f"{col} is the date the deal entered {stage!r}")
    hist = (pd.concat(parts, ignore_index=True) if parts else
            pd.DataFrame({"deal_id": pd.Series(dtype=str), "stage": pd.Series(dtype=str),
                          "entered_at": pd.Series(dtype="datetime64[ns]")}))
    now = df[df["stage_now"].ne("")]
    have = pd.MultiIndex.from_arrays([hist["deal_id"].astype(object), hist["stage"].astype(object)])
    dated = pd.MultiIndex.from_arrays([now["deal_id"].astype(object), now["stage_now"].astype(object)]).isin(have)
    now = now[~dated]
    if len(now):
        hist = pd.concat([hist, pd.DataFrame({"deal_id": now["deal_id"], "stage": now["stage_now"],
                                              "entered_at": created[now.index]})], ignore_index=True)
        if len(stages_listed) > 1 or cols.get("stage"):
            result.assume(f"{len(now)} open deals have no date for entering their current stage: taken as entered "
                          "at created_at")
    stages, how = order_stages(list(df["stage_now"].unique()) + list(hist["stage"].unique()), smap)
    if not smap.stages:
        result.assume(how)
    no_entry = ~deals["deal_id"].isin(hist["deal_id"])
    if no_entry.any():
        hist = pd.concat([hist, pd.DataFrame({"deal_id": deals.loc[no_entry, "deal_id"], "stage": stages[0],
                                              "entered_at": deals.loc[no_entry, "created_at"]})], ignore_index=True)
        if len(stages) > 1:
            result.assume(f"{int(no_entry.sum())} closed deals have no stage dates: recorded as entering "
                          f"{stages[0]!r} at created_at")
    return hist, stages
