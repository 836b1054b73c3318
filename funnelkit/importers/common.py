"""Shared machinery of the importers: reading sources (with encoding detection), stage-label
mapping, reconciling dates, currencies, and writing the data set plus its import report.

Every importer builds a deals table and a stage-history table in the contract's columns, rejects
rows it cannot use (with a reason, never silently), and records every assumption it makes in the
:class:`ImportResult`. :func:`finish` then applies the shared rules and writes the data set.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..contract import DEAL_COLUMNS, HISTORY_COLUMNS, PIPELINE_FILE, Pipeline
from ..io import InputRefused, atomic_write_text, check_input_file, is_inside, read_settings_yaml
from ..parsing import parse_amounts, parse_timestamps, read_text_table

REPORT_MD = "import_report.md"
REPORT_JSON = "import_report.json"
REJECTED_CSV = "import_rejected.csv"
OUTCOMES = ("won", "lost")
#: Columns the importers add to a source table for their own bookkeeping (never shown as the export's).
INTERNAL = ("_line", "_file", "_export", "_snap", "_key", "_jkey")


class ImportProblem(ValueError):
    """The export cannot be imported as asked (wrong format, missing column, unmapped label...)."""


# ---------------------------------------------------------------------------------------------
# The result and report

@dataclass
class SourceAccount:
    """Rows of one source file: ``read == used + rejected``."""

    file: str
    read: int = 0
    used: int = 0
    rejected: int = 0
    encoding: str = ""
    note: str = ""


@dataclass
class ImportResult:
    """What an import did: per-file accounting, rejected rows with reasons, and every assumption."""

    format: str
    sources: list[str]
    out: Path | None = None
    accounts: dict[str, SourceAccount] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)
    rejected_rows: list[dict] = field(default_factory=list)
    deals_written: int = 0
    history_written: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    currency: str = "USD"
    currencies: dict[str, int] = field(default_factory=dict)
    #: Each source table as read (text cells and ``_line``), to show a rejected row as it was in the file.
    raw: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    # -- building
    def account(self, file: str | Path, read: int, encoding: str = "", note: str = "",
                raw: pd.DataFrame | None = None) -> SourceAccount:
        """Count the rows of a source; ``raw`` (its table from :func:`read_source`) lets rejected rows
        be shown with the values they have in the file."""
        acc = SourceAccount(str(file), read=read, encoding=encoding, note=note)
        self.accounts[str(file)] = acc
        if raw is not None:
            self.raw[str(file)] = raw
            if raw.attrs.get("line_note"):
                self.assume(f"{Path(file).name}: {raw.attrs['line_note']}")
        return acc

    def assume(self, text: str) -> None:
        if text not in self.assumptions:
            self.assumptions.append(text)

    def reject(self, file: str, lines, reason, rows: pd.DataFrame | None = None) -> None:
        """Reject rows of ``file`` (their line numbers) with ``reason`` (a text or one per row)."""
        lines = list(lines)
        if not lines:
            return
        reasons = list(reason) if isinstance(reason, (list, pd.Series, np.ndarray)) else [reason] * len(lines)
        raw = self.raw.get(str(file))
        pos = None
        if raw is not None and len(raw):
            at = raw["_line"].to_numpy()
            want = np.asarray(lines, dtype=np.int64)
            pos = np.minimum(np.searchsorted(at, want), len(at) - 1)
            if not (at[pos] == want).all():
                pos = None
        if pos is not None:
            # The row as it is in the file: only rejected rows are turned into JSON.
            cols = [c for c in raw.columns if c not in INTERNAL]
            vals = raw[cols].to_numpy()[pos]
            texts = [json.dumps(dict(zip(cols, v)), ensure_ascii=False, default=str) for v in vals]
        else:
            records = rows.to_dict("records") if rows is not None else [{}] * len(lines)
            texts = [json.dumps({k: v for k, v in rec.items() if not str(k).startswith("_")},
                                ensure_ascii=False, default=str) for rec in records]
        for line, why, text in zip(lines, reasons, texts):
            self.rejected_rows.append({"file": str(file), "line": int(line), "reason": why, "row": text})
        self.accounts[str(file)].rejected += len(lines)

    @property
    def rejected(self) -> pd.DataFrame:
        return pd.DataFrame(self.rejected_rows, columns=["file", "line", "reason", "row"])

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.rejected_rows:
            key = re.sub(r"\d[\d:\-T. ]*\d|\d", "#", r["reason"])
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    # -- output
    def summary(self) -> str:
        lines = [f"Imported {self.format} export into {self.out}"]
        for a in self.accounts.values():
            enc = f" [{a.encoding}]" if a.encoding else ""
            note = f" ({a.note})" if a.note else ""
            lines.append(f"  {Path(a.file).name}{enc}: {a.read} rows read = {a.used} used + "
                         f"{a.rejected} rejected{note}")
        st = ", ".join(f"{k} {v}" for k, v in self.status_counts.items())
        lines.append(f"  deals written: {self.deals_written} ({st}); stage entries written: "
                     f"{self.history_written}")
        lines.append(f"  pipeline stages: {' > '.join(self.stages)}")
        if len(self.currencies) > 1:
            cur = ", ".join(f"{c} {n}" for c, n in self.currencies.items())
            lines.append(f"  currencies: {cur} (kept apart in the 'currency' column; never added together)")
        else:
            lines.append(f"  currency: {self.currency}")
        if self.rejected_rows:
            lines.append(f"  rejected rows: {len(self.rejected_rows)} (with reasons in {REJECTED_CSV}):")
            lines += [f"    - {n} x {why}" for why, n in self.reasons().items()]
        else:
            lines.append("  rejected rows: none")
        lines.append(f"  assumptions ({len(self.assumptions)}):")
        lines += [f"    - {a}" for a in self.assumptions]
        if self.out is not None:
            lines.append(f"  report: {Path(self.out) / REPORT_MD}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "sources": [str(s) for s in self.sources],
            "out": str(self.out) if self.out else None,
            "files": {Path(k).name: {"path": a.file, "read": a.read, "used": a.used, "rejected": a.rejected,
                                     "encoding": a.encoding, "note": a.note}
                      for k, a in self.accounts.items()},
            "deals_written": self.deals_written,
            "stage_entries_written": self.history_written,
            "status": dict(self.status_counts),
            "stages": list(self.stages),
            "currency": self.currency,
            "currencies": dict(self.currencies),
            "rejected": len(self.rejected_rows),
            "rejected_reasons": self.reasons(),
            "assumptions": list(self.assumptions),
        }

    def markdown(self) -> str:
        d = self.to_dict()
        out = [f"# Import report: {self.format}", "",
               "Sources (read only, never modified):", ""]
        out += [f"- `{s}`" for s in d["sources"]]
        out += ["", "## Rows", "", "| file | encoding | read | used | rejected | note |", "|---|---|---|---|---|---|"]
        for name, a in d["files"].items():
            out.append(f"| {name} | {a['encoding']} | {a['read']} | {a['used']} | {a['rejected']} | {a['note']} |")
        st = ", ".join(f"{k} {v}" for k, v in d["status"].items())
        out += ["", f"Deals written: **{self.deals_written}** ({st}). Stage entries written: "
                f"**{self.history_written}**.", "",
                f"Pipeline stages: {' > '.join(self.stages)}. Currency: {self.currency}"
                + (f" (deals in {', '.join(self.currencies)}: see the `currency` column)"
                   if len(self.currencies) > 1 else "") + ".", "", "## Rejected rows", ""]
        if self.rejected_rows:
            out.append(f"{len(self.rejected_rows)} rows, each with its reason in `{REJECTED_CSV}`:")
            out.append("")
            out += [f"- {n} x {why}" for why, n in self.reasons().items()]
        else:
            out.append("None.")
        out += ["", "## Assumptions", ""]
        out += [f"- {a}" for a in self.assumptions]
        return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Reading sources

def detect_encoding(data: bytes) -> str:
    """The encoding of ``data``: UTF-8 (with or without BOM) when it decodes, else charset-normalizer's guess.

    For Western single-byte text charset-normalizer may name a sibling code page; those are
    reported as ``cp1252``, the Windows code page that Excel and Salesforce exports use.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    guess = (best.encoding if best is not None else "cp1252").lower().replace("-", "_")
    if guess in ("latin_1", "iso8859_1", "iso8859_15", "cp1252", "windows_1252", "cp1250", "cp850",
                 "mac_roman", "iso8859_2"):
        # These differ only in rarely used characters; cp1252 also decodes 0x80-0x9f (e.g. the euro sign).
        try:
            data.decode("cp1252")
            return "cp1252"
        except UnicodeDecodeError:
            return guess
    return guess


def read_source(path: str | Path, encoding: str | None = None) -> tuple[pd.DataFrame, str]:
    """Read a CSV/XLSX/Parquet export as text cells; return the table (with ``_line``) and its encoding."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: source file not found")
    if path.is_dir():
        raise ImportProblem(f"{path}: is a folder; give the export file(s)")
    try:
        check_input_file(path)     # before opening: a device or FIFO would fill memory or hang
    except InputRefused as exc:
        raise ImportProblem(f"{path}: {exc}") from None
    suffix = path.suffix.lower()
    lines = None
    if suffix in (".xlsx", ".parquet"):
        df, enc = read_text_table(path), "binary (" + suffix[1:] + ")"
    elif suffix in (".csv", ".txt", ".tsv"):
        data = path.read_bytes()
        enc = encoding or detect_encoding(data)
        try:
            text = data.decode(enc)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ImportProblem(f"{path}: cannot decode as {enc}: {exc}") from None
        if text.startswith("\ufeff"):
            text = text[1:]
        sep = "\t" if suffix == ".tsv" else ","
        try:
            df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False, sep=sep)
        except pd.errors.EmptyDataError:
            raise ImportProblem(f"{path}: file is empty (no header row)") from None
        except pd.errors.ParserError as exc:
            raise ImportProblem(f"{path}: not a readable CSV table: {exc}") from None
        lines = record_lines(text, sep)
    else:
        raise ImportProblem(f"{path}: unsupported file type '{suffix}' (use .csv, .xlsx or .parquet)")
    df.columns = [str(c).strip() for c in df.columns]
    df = df.fillna("")
    if suffix in (".xlsx", ".parquet") or lines is None or len(lines) != len(df):
        if suffix not in (".xlsx", ".parquet"):
            df.attrs["line_note"] = ("line numbers of rejected rows count records (header = 1), not lines "
                                     "of the file: its line structure could not be followed exactly")
        lines = np.arange(2, len(df) + 2)
    df["_line"] = lines
    return df, enc


def record_lines(text: str, sep: str = ",") -> np.ndarray | None:
    """The physical line (1 = first line of the file) on which each data record of ``text`` starts.

    A quoted cell may span lines and blank (or whitespace-only) lines are skipped, as pandas'
    reader does; line breaks are ``\\n``, ``\\r\\n`` or ``\\r``. Returns None when the text is not
    a CSV table the :mod:`csv` module can follow.
    """
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(max(limit, min(len(text) + 1, sys.maxsize)))
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
        starts: list[int] = []
        append = starts.append
        prev, header = 0, False
        for row in reader:
            # pandas skips empty lines and lines of only spaces/tabs (a quoted "" is a record).
            if row and not (len(row) == 1 and row[0] != "" and not row[0].strip()):
                if header:
                    append(prev + 1)
                else:
                    header = True
            prev = reader.line_num
    except csv.Error:
        return None
    finally:
        csv.field_size_limit(limit)
    return np.asarray(starts, dtype=np.int64)


def require_columns(df: pd.DataFrame, file: str | Path, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        have = ", ".join(c for c in df.columns if c not in INTERNAL)
        raise ImportProblem(f"{file}: required column{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(repr(m) for m in missing)} missing for {what} "
                            f"(columns found: {have})")


def parse_dates(raw: pd.Series, date_format: str | None = None) -> tuple[pd.Series, pd.Series]:
    """Like :func:`parse_timestamps`, but ``date_format`` may also be a list of formats tried in turn."""
    if isinstance(date_format, (list, tuple)):
        out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
        bad = pd.Series(True, index=raw.index)
        for fmt in date_format:
            p, b = parse_timestamps(raw, fmt)
            take = out.isna() & p.notna()
            out[take] = p[take]
            bad &= b
        return out, bad & out.isna()
    return parse_timestamps(raw, date_format)


# ---------------------------------------------------------------------------------------------
# Stage labels

def _norm(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", str(label).lower()).strip()


_WON = re.compile(r"\b(won|win|closed won|signed|booked)\b")
_LOST = re.compile(r"\b(lost|abandon\w*|cancel\w*|declin\w*|dead|disqualif\w*|withdrawn|rejected|"
                   r"no decision|unqualified|churn\w*)\b")


def default_outcome(label: str) -> str | None:
    """``won``/``lost`` for labels that clearly name an outcome, else None (an open stage)."""
    n = _norm(label)
    if not n:
        return None
    if n in ("won", "closed won", "closedwon", "win") or (n.startswith("closed") and _WON.search(n)):
        return "won"
    if n in ("lost", "closed lost", "closedlost") or (n.startswith("closed") and _LOST.search(n)) \
            or _LOST.fullmatch(n):
        return "lost"
    return None


@dataclass
class StageMap:
    """CRM stage labels -> pipeline stage, ``won`` or ``lost``; and the pipeline's stage order."""

    mapping: dict[str, str] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    source: str = ""

    @classmethod
    def from_yaml(cls, path: str | Path | None, raw: dict | None = None) -> "StageMap":
        if path is None and raw is None:
            return cls()
        if raw is None:
            p = Path(path)
            if not p.exists():
                raise FileNotFoundError(f"{p}: stage map not found")
            try:
                raw = read_settings_yaml(p) or {}
            except InputRefused as exc:
                raise ImportProblem(f"{p}: {exc}") from None
            except yaml.YAMLError as exc:
                raise ImportProblem(f"{p}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ImportProblem(f"{path}: a stage map is a mapping 'CRM label: stage | won | lost' "
                                "(optionally under 'map:', with 'stages:' giving the pipeline order)")
        stages = [str(s) for s in (raw.get("stages") or [])]
        mapping = raw.get("map", raw.get("stage_map"))
        if mapping is None:
            mapping = {k: v for k, v in raw.items() if k not in ("stages",)}
        if not isinstance(mapping, dict):
            raise ImportProblem(f"{path}: 'map' must be a mapping of CRM label to stage, won or lost")
        clean = {}
        for k, v in mapping.items():
            v = str(v).strip()
            clean[str(k).strip()] = v.lower() if v.lower() in OUTCOMES + ("open",) else v
        for label, target in clean.items():
            if target not in OUTCOMES and stages and target not in stages:
                raise ImportProblem(f"{path}: label {label!r} maps to {target!r}, which is not in its "
                                    f"'stages:' list ({', '.join(stages)}) nor won/lost")
        return cls(clean, stages, str(path or "column map"))

    def merged(self, other: "StageMap") -> "StageMap":
        """This map overridden by ``other`` (e.g. --stage-map over a column map's stage_map)."""
        if not other.mapping and not other.stages:
            return self
        return StageMap({**self.mapping, **other.mapping}, other.stages or self.stages,
                        other.source or self.source)

    @property
    def given(self) -> bool:
        return bool(self.mapping or self.stages)

    def lookup(self, label: str) -> str | None:
        if label in self.mapping:
            return self.mapping[label]
        if label in self.stages:
            return label
        # Case-insensitive second chance.
        low = {k.lower(): v for k, v in self.mapping.items()}
        if label.lower() in low:
            return low[label.lower()]
        for s in self.stages:
            if s.lower() == label.lower():
                return s
        return None


def map_labels(labels: pd.Series, smap: StageMap, *, file: str, column: str, result: ImportResult,
               strict: bool, default=default_outcome) -> pd.Series:
    """Map each label to a pipeline stage or won/lost.

    ``strict`` (a stage map was given): a label the map does not cover is an error naming the
    file, column and value. Otherwise labels are mapped by ``default`` (outcome words) and every
    other label becomes an open stage of the same name; each such decision is an assumption.
    """
    uniq = [u for u in pd.unique(labels.astype(str)) if u != ""]
    out: dict[str, str] = {}
    unmapped = []
    for u in uniq:
        t = smap.lookup(u)
        if t is None and not strict:
            t = default(u) if default else None
            if t in OUTCOMES:
                result.assume(f"stage label {u!r} mapped to {t} (from its wording; override with --stage-map)")
            else:
                t = u
        if t is None:
            unmapped.append(u)
        else:
            out[u] = t
    if unmapped:
        counts = labels.value_counts()
        listed = ", ".join(f"{u!r} ({counts.get(u, 0)} rows)" for u in unmapped)
        raise ImportProblem(f"{file}: column {column!r} has stage label(s) the stage map "
                            f"({smap.source}) does not map: {listed}. Map each to a pipeline stage, "
                            f"'won' or 'lost'.")
    if smap.given:
        for u in uniq:
            if u in smap.mapping and out[u] in OUTCOMES:
                result.assume(f"stage label {u!r} mapped to {out[u]} (stage map {smap.source})")
    return labels.astype(str).map(out).fillna("")


def order_stages(open_labels, smap: StageMap, preferred: list[str] | None = None,
                 score: dict[str, float] | None = None) -> tuple[list[str], str]:
    """The pipeline order: the stage map's ``stages``, else known CRM defaults, then by ``score``.

    Returns the stages and a sentence saying how the order was chosen.
    """
    labels = [s for s in dict.fromkeys(open_labels) if s]
    if smap.stages:
        extra = [s for s in labels if s not in smap.stages]
        if extra:
            raise ImportProblem(f"stage map {smap.source}: stage(s) {', '.join(map(repr, extra))} are used "
                                "but not listed in its 'stages:'")
        return list(smap.stages), f"pipeline stage order from {smap.source}"
    preferred = preferred or []
    known = [p for p in preferred if p in labels]
    rest = [s for s in labels if s not in known]
    how = []
    if known:
        how.append("the CRM's standard stage order for " + ", ".join(map(repr, known)))
    if rest:
        if score:
            rest.sort(key=lambda s: (score.get(s, np.inf) if not pd.isna(score.get(s, np.nan)) else np.inf, s))
            how.append("the others by their mean win probability in the export (" +
                       ", ".join(f"{s!r} {score.get(s, float('nan')):.2f}" for s in rest) + ")")
        else:
            rest.sort()
            how.append("the others alphabetically (no better information in the export)")
    if not labels:
        labels = ["Open"]
        return labels, "no open stage labels in the export: one stage 'Open'"
    return known + rest, ("pipeline stage order guessed from " + "; ".join(how) +
                          ": give the real order with --stage-map (a 'stages:' list)")


# ---------------------------------------------------------------------------------------------
# Currencies

def read_rates(path: str | Path) -> dict[str, float]:
    """Read a rates CSV with columns ``currency,rate`` (rate = value of 1 unit in the target currency)."""
    df, _ = read_source(path)
    require_columns(df, path, ["currency", "rate"], "a rates table")
    rates: dict[str, float] = {}
    vals, bad = parse_amounts(df["rate"])
    for cur, v, b, line in zip(df["currency"], vals, bad, df["_line"]):
        cur = cur.strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", cur):
            raise ImportProblem(f"{path}, line {line}: column 'currency' value {cur!r} is not a 3-letter ISO code")
        if b or not (v > 0):
            raise ImportProblem(f"{path}, line {line}: column 'rate' value for {cur} must be a positive number")
        rates[cur] = float(v)
    return rates


def apply_currency(deals: pd.DataFrame, result: ImportResult, *, default: str, rates: str | None,
                   target: str | None) -> tuple[pd.DataFrame, str]:
    """Convert or label the currencies of the deals; return the deals and the pipeline currency."""
    target = target.strip().upper() if target else None
    if target and not re.fullmatch(r"[A-Z]{3}", target):
        raise ImportProblem(f"--currency {target!r} is not a 3-letter ISO 4217 code")
    if "currency" in deals.columns:
        cur = deals["currency"].astype(str).str.strip().str.upper()
        empty = cur.eq("")
        if empty.any():
            result.assume(f"{int(empty.sum())} deals without a currency code taken to be in {default}")
        cur = cur.where(~empty, default)
        deals["currency"] = cur
    else:
        cur = pd.Series(default, index=deals.index)
    present = sorted(cur.unique().tolist())
    if rates:
        if not target:
            raise ImportProblem("--rates needs --currency: the currency to convert the amounts into")
        table = read_rates(rates)
        table.setdefault(target, 1.0)
        missing = [c for c in present if c not in table]
        if missing:
            counts = cur.value_counts()
            raise ImportProblem(f"{rates}: no rate for {', '.join(f'{c} ({counts[c]} deals)' for c in missing)}; "
                                f"add a line 'CODE,rate' (value of 1 CODE in {target})")
        if abs(table[target] - 1.0) > 1e-12:
            raise ImportProblem(f"{rates}: the rate of the target currency {target} must be 1, not {table[target]}")
        factor = cur.map(table).astype(float)
        converted = present != [target]
        deals["amount_original"] = deals["amount"]
        deals["currency_original"] = cur
        deals["amount"] = (deals["amount"] * factor).round(2)
        deals = deals.drop(columns=["currency"])
        used = ", ".join(f"1 {c} = {table[c]:g} {target}" for c in present if c != target)
        if converted:
            result.assume(f"amounts converted to {target} with the rates in {rates} ({used}); the "
                          "original amount and currency are kept in 'amount_original' and 'currency_original'")
        result.currencies = {target: len(deals)}
        return deals, target
    if len(present) > 1:
        if target:
            counts = cur.value_counts()
            raise ImportProblem(f"the deals are in {len(present)} currencies ("
                                + ", ".join(f"{c}: {n}" for c, n in counts.items())
                                + f"): --currency {target} needs --rates RATES.csv (columns currency,rate) to convert them")
        counts = cur.value_counts()
        result.currencies = {c: int(n) for c, n in counts.items()}
        main = counts.index[0]
        result.assume("deals are in several currencies (" + ", ".join(f"{c}: {n}" for c, n in counts.items())
                      + "); no rates were given, so amounts are NOT converted: each deal keeps its currency "
                      "in the 'currency' column and metrics that add amounts refuse to mix them (slice with "
                      f"--currency, or re-import with --rates). pipeline.yml names {main}, the most common")
        return deals, main
    only = present[0]
    if target and target != only:
        raise ImportProblem(f"the amounts are in {only}; converting to --currency {target} needs --rates")
    if "currency" in deals.columns:
        deals = deals.drop(columns=["currency"])
    result.currencies = {only: len(deals)}
    return deals, only


# ---------------------------------------------------------------------------------------------
# Reconciling dates, then writing

def reconcile(deals: pd.DataFrame, history: pd.DataFrame, result: ImportResult, *,
              closed_before_created: str = "reject", what_closed: str = "close date",
              what_created: str = "create date") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Make dates consistent with the contract, saying what was done.

    ``deals`` needs ``_file`` and ``_line`` (for rejections); ``history`` has deal_id, stage, entered_at.
    """
    closed = deals["closed_at"]
    created = deals["created_at"]
    before = closed.notna() & (closed < created)
    same_day = before & (closed.dt.normalize() == created.dt.normalize())
    if same_day.any():
        deals.loc[same_day, "closed_at"] = created[same_day]
        result.assume(f"{int(same_day.sum())} deals closed on their creation day with a {what_closed} "
                      f"earlier in that day than the {what_created} (close dates are often dates without a "
                      "time): closed_at set to created_at")
    worse = before & ~same_day
    if worse.any():
        if closed_before_created == "clamp":
            n = int(worse.sum())
            days = (created[worse] - closed[worse]).dt.total_seconds() / 86400
            deals.loc[worse, "closed_at"] = created[worse]
            result.assume(f"{n} deals have a {what_closed} before their {what_created} (by up to "
                          f"{days.max():.1f} days), a defect of the export: closed_at set to created_at "
                          "(0 days to close) rather than dropping the deal")
        else:
            bad = deals[worse]
            for f, grp in bad.groupby("_file", sort=False):
                result.reject(f, grp["_line"], [f"{what_closed} {c} is before the {what_created} {k}"
                                                for c, k in zip(grp["closed_at"], grp["created_at"])], grp)
            deals = deals[~worse]
    deals = deals.reset_index(drop=True)

    h = history.merge(deals[["deal_id", "created_at", "closed_at"]], on="deal_id", how="inner")
    early = h["entered_at"] < h["created_at"]
    if early.any():
        h.loc[early, "entered_at"] = h.loc[early, "created_at"]
        result.assume(f"{int(early.sum())} stage entries dated before their deal's {what_created} moved to "
                      "the create date")
    late = h["closed_at"].notna() & (h["entered_at"] > h["closed_at"])
    if late.any():
        same = late & (h["entered_at"].dt.normalize() == h["closed_at"].dt.normalize())
        if same.any():
            last = h[same].groupby("deal_id")["entered_at"].max()
            idx = deals["deal_id"].isin(last.index)
            deals.loc[idx, "closed_at"] = deals.loc[idx, "deal_id"].map(last).astype("datetime64[ns]")
            result.assume(f"{len(last)} deals had a stage entry later on the day of their {what_closed}: "
                          "closed_at moved to that entry's time (the close date has no time)")
        drop = late & ~same
        if drop.any():
            result.assume(f"{int(drop.sum())} stage entries dated after their deal's {what_closed} "
                          f"(on another day) were left out of the stage history")
        h = h[~drop]
    return deals, h[["deal_id", "stage", "entered_at"]].reset_index(drop=True)


def format_amounts(amount: pd.Series) -> pd.Series:
    """Amounts as text with at most 2 decimals and no trailing zeros (``1200``, ``12.5``, ``0.07``); NaN -> "".

    Text is made per value (``f"{v:.2f}"``, rounding as Python does), but only for known amounts and
    over plain floats. A numpy version (whole cents, a table of decimal parts) gave the same text but
    was no faster: numpy also turns numbers into text one by one.
    """
    v = pd.to_numeric(amount, errors="coerce").to_numpy(dtype=float)
    known = ~np.isnan(v)
    out = np.full(len(v), "", dtype=object)
    out[known] = [t.rstrip("0").rstrip(".") for t in map("{:.2f}".format, v[known].tolist())]
    return pd.Series(out, index=amount.index, dtype=object)


def _fmt_ts(s: pd.Series) -> pd.Series:
    """``YYYY-MM-DD`` when no value has a time, else ``YYYY-MM-DDTHH:MM:SS``; NaT -> ""."""
    s = pd.to_datetime(s)
    has_time = (s.dropna() != s.dropna().dt.normalize()).any()
    fmt = "%Y-%m-%dT%H:%M:%S" if has_time else "%Y-%m-%d"
    arr = s.to_numpy(dtype="datetime64[ns]")
    ok = ~np.isnat(arr)
    if not has_time or (arr[ok].astype(np.int64) % 10**9 != 0).any():
        # pandas is fast for dates; with fractions of a second, strftime drops them (as before).
        return s.dt.strftime(fmt).fillna("")
    # numpy writes ISO 8601 date-times in C (several times faster than strftime); same text.
    text = np.datetime_as_string(arr, unit="s").astype(object)
    text[~ok] = ""
    return pd.Series(text, index=s.index, dtype=object)


def finish(result: ImportResult, deals: pd.DataFrame, history: pd.DataFrame, stages: list[str], *,
           out, force: bool, sources, name: str, currency_default: str | None = None,
           rates: str | None = None, currency: str | None = None,
           closed_before_created: str = "reject", what_closed: str = "close date",
           what_created: str = "create date", missing_amount: str = "unknown", inputs=()) -> ImportResult:
    """Apply the shared rules, write the data set atomically, check it loads, write the report.

    ``inputs``: other files the import read (stage map, column map); like the sources and the rates
    table they must not lie in ``out`` (see :func:`check_out`).
    """
    given = Path(out)
    # --out a symbolic link: the folder it points to is replaced, and the link keeps pointing at it.
    out = Path(os.path.realpath(given)) if given.is_symlink() else given
    check_out(out, sources, [rates, *inputs])
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"--out {out} is not empty; use --force to replace it")

    deals, history = reconcile(deals, history, result, closed_before_created=closed_before_created,
                               what_closed=what_closed, what_created=what_created)
    if deals.empty:
        listed = "; ".join(f"{n} x {why}" for why, n in list(result.reasons().items())[:10])
        raise ImportProblem(f"no deal left to write: every row was rejected ({listed or 'the export has no rows'})")
    allow_missing_amounts = False
    closed = deals["status"].isin(OUTCOMES)
    no_amount = closed & deals["amount"].isna()
    if no_amount.any():
        if missing_amount == "reject":
            for f, grp in deals[no_amount].groupby("_file", sort=False):
                result.reject(f, grp["_line"], "a won/lost deal without an amount", grp)
            deals = deals[~no_amount].reset_index(drop=True)
            history = history[history["deal_id"].isin(deals["deal_id"])]
        elif missing_amount == "zero":
            counts = deals.loc[no_amount, "status"].value_counts()
            deals["amount_missing"] = np.where(no_amount, "yes", "")
            deals.loc[no_amount, "amount"] = 0.0
            result.assume(f"{int(no_amount.sum())} closed deals have no amount ("
                          + ", ".join(f"{k} {v}" for k, v in counts.items()) +
                          "): written as 0 (the column map says amount_missing_on_closed: zero), "
                          "flagged amount_missing=yes")
        else:
            counts = deals.loc[no_amount, "status"].value_counts()
            allow_missing_amounts = True
            result.assume(f"{int(no_amount.sum())} closed deals have no amount ("
                          + ", ".join(f"{k} {v}" for k, v in counts.items()) +
                          "): kept with an unknown (empty) amount, and pipeline.yml says "
                          "allow_missing_amounts: true; sums skip them, deal-size means use known amounts")
    if currency_default is None:
        currency_default = (currency or "USD").strip().upper()
        if "currency" not in deals.columns:
            result.assume(f"the export names no currency: amounts taken to be in {currency_default}"
                          + ("" if currency else " (say which with --currency)"))
    deals, cur = apply_currency(deals, result, default=currency_default, rates=rates, target=currency)

    for acc in result.accounts.values():
        acc.used = acc.read - acc.rejected
    pipeline = Pipeline(tuple(stages), currency=cur, name=name,
                        allow_missing_amounts=allow_missing_amounts)

    out_deals = pd.DataFrame({
        "deal_id": deals["deal_id"].astype(str),
        "created_at": _fmt_ts(deals["created_at"]),
        "status": deals["status"],
        "closed_at": _fmt_ts(deals["closed_at"]),
        "amount": format_amounts(deals["amount"]),
    })
    for col in ("source", "product", "owner"):
        out_deals[col] = deals[col].astype(str).str.strip() if col in deals.columns else ""
    extra = [c for c in deals.columns if c not in out_deals.columns and not c.startswith("_")]
    for c in extra:
        col = deals[c]
        out_deals[c] = _fmt_ts(col) if pd.api.types.is_datetime64_any_dtype(col) else col.astype(str)
    hist = history.sort_values(["deal_id", "entered_at"], kind="stable")
    out_hist = pd.DataFrame({"deal_id": hist["deal_id"].astype(str), "stage": hist["stage"],
                             "entered_at": _fmt_ts(hist["entered_at"])})

    result.out = given
    result.deals_written = len(out_deals)
    result.history_written = len(out_hist)
    result.stages = list(stages)
    result.currency = cur
    result.status_counts = {s: int((out_deals["status"] == s).sum()) for s in ("open", "won", "lost")}

    out.parent.mkdir(parents=True, exist_ok=True)
    # mkdtemp makes a private (0700) folder: give the data set the mode a new folder gets (umask),
    # or, when replacing one, the mode it had.
    mode = (out.stat().st_mode & 0o7777) if out.is_dir() else (0o777 & ~_umask())
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        os.chmod(tmp, mode)
        out_deals.to_csv(tmp / "deals.csv", index=False)
        out_hist.to_csv(tmp / "stage_history.csv", index=False)
        (tmp / PIPELINE_FILE).write_text(yaml.safe_dump(pipeline.to_yaml_dict(), sort_keys=False,
                                                        allow_unicode=True), encoding="utf-8")
        from ..loading import load

        try:
            load(tmp)  # strict: an import must always produce a valid data set
        except Exception as exc:
            # The temporary folder is about to be deleted: name the --out files and the source rows.
            raise ImportProblem(_load_failure(exc, tmp, out, deals)) from exc
        result.rejected.to_csv(tmp / REJECTED_CSV, index=False)
        (tmp / REPORT_JSON).write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False),
                                       encoding="utf-8")
        (tmp / REPORT_MD).write_text(result.markdown(), encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            _remove(old)            # left by an interrupted earlier run
            out.rename(old)
            tmp.rename(out)
            _remove(old)
        else:
            tmp.rename(out)
    except OSError as exc:
        if exc.errno is None or (exc.filename is not None and str(tmp) not in str(exc.filename)):
            raise
        raise type(exc)(exc.errno, exc.strerror, str(given)) from exc   # e.g. a full disk
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return result


def _remove(path: Path) -> None:
    """Remove a file, a link (not what it points to) or a folder tree, if present."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_out(out: Path, sources, inputs=()) -> None:
    """Refuse an ``--out`` that would overwrite or delete what the import reads.

    Refused: ``--out`` being a source file, the folder a source (or the rates table, stage map or
    column map) is in, or any folder above it, since ``--force`` replaces the whole folder; and a
    source inside ``.<out>.old``, the name the old ``--out`` gets while it is replaced. Allowed: a
    new subfolder next to the export (``--out ./imported``).
    """
    if not out.resolve().name:
        raise ImportProblem(f"--out {out} is the root folder: give a new folder for the data set, "
                            "e.g. ./imported")
    old = out.resolve().with_name(f".{out.resolve().name}.old")
    named = [("source", s) for s in sources] + [("input", p) for p in inputs if p]
    for what, s in named:
        s = Path(s)
        if not s.exists():
            continue
        if s.resolve() == out.resolve():
            raise ImportProblem(f"--out {out} is the {what} file {s}: sources are never overwritten; "
                                "choose a new folder, e.g. a subfolder next to the export")
        if is_inside(s, out):
            where = ("is the folder of" if s.resolve().parent == out.resolve() else "contains")
            raise ImportProblem(f"--out {out} {where} the {what} {s}: the data set folder is replaced as a "
                                "whole, so it must not hold what the import reads; choose a new folder, "
                                f"e.g. {out / 'imported'}")
        if is_inside(s, old):
            raise ImportProblem(f"the {what} {s} is inside {old}, the folder funnelkit uses (and deletes) while "
                                f"replacing --out {out}: move it or choose another --out")


def _load_failure(exc: Exception, tmp: Path, out: Path, deals: pd.DataFrame) -> str:
    """The text of a load failure of the imported data set, naming --out paths and source rows."""
    from ..validation import MAX_LISTED, DataError

    def fix(text: str) -> str:
        return text.replace(str(tmp), str(out)).replace(tmp.name, out.name)

    head = (f"the imported data set does not pass the strict loader, so nothing was written to {out} "
            "(an export defect the importer did not catch: please report it)")
    if not isinstance(exc, DataError):
        return f"{head}: {fix(str(exc))}"
    lines = [f"{head}; {len(exc.problems)} problem(s) in the files it would have written:"]
    for p in exc.problems[:MAX_LISTED]:
        text = fix(str(p))
        i = (p.line - 2) if (p.line and Path(p.file).name == "deals.csv") else -1
        if 0 <= i < len(deals) and "_file" in deals.columns:
            text += f" [source: {deals['_file'].iat[i]}, line {deals['_line'].iat[i]}]"
        lines.append(f"  - {text}")
    if len(exc.problems) > MAX_LISTED:
        lines.append(f"  ... and {len(exc.problems) - MAX_LISTED} more")
    return "\n".join(lines)


def label_columns(df: pd.DataFrame, spec: dict[str, str | None]) -> dict[str, pd.Series]:
    """Pick the text columns named in ``spec`` (target -> source column or None = empty)."""
    return {t: (df[s].astype(str).str.strip() if s else pd.Series("", index=df.index)) for t, s in spec.items()}


def snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


__all__ = ["ImportResult", "ImportProblem", "StageMap", "read_source", "detect_encoding", "finish",
           "map_labels", "order_stages", "default_outcome", "read_rates", "apply_currency", "reconcile",
           "require_columns", "parse_dates", "snake", "check_out", "record_lines", "DEAL_COLUMNS", "HISTORY_COLUMNS", "atomic_write_text"]
