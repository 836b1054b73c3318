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

from ..contract import CHANGE_FIELDS, DEAL_COLUMNS, HISTORY_COLUMNS, STATUS_FIELD, Pipeline
from ..errors import FunnelkitError
from ..io import InputRefused, atomic_write_text, check_input_file, is_inside, read_settings_yaml
from ..writer import write_dataset
from ..parsing import currency_marks, mark_agrees, parse_amounts, parse_timestamps, read_text_table

REPORT_MD = "import_report.md"
REPORT_JSON = "import_report.json"
REJECTED_CSV = "import_rejected.csv"
OUTCOMES = ("won", "lost")
#: Columns the importers add to a source table for their own bookkeeping (never shown as the export's).
INTERNAL = ("_line", "_file", "_export", "_snap", "_key", "_jkey")


class ImportProblem(FunnelkitError, ValueError):
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
    #: Changes written to deal_changes.csv per field (empty: no change log).
    changes_written: dict[str, int] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    currency: str = "USD"
    currencies: dict[str, int] = field(default_factory=dict)
    #: Each source table as read (text cells and ``_line``), to show a rejected row as it was in the file.
    raw: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    #: Rows of other files that belong to a deal (e.g. its history rows): ``deal_id``, ``file``, ``line``.
    #: When the deal is rejected, :meth:`drop_deals` rejects them too, so no row counts as used in vain.
    links: list[pd.DataFrame] = field(default_factory=list, repr=False)

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

    def reject(self, file: str, lines, reason, rows: pd.DataFrame | None = None, *, detail=None) -> None:
        """Reject rows of ``file`` (their line numbers) with ``reason``.

        ``reason`` is one text for all rows, or one per row; ``detail`` (optional, one text per row)
        adds the row's own values (``reason: detail`` in the rejected-rows file). The summary groups
        rows by ``reason`` and shows the details of the first few, so no value is hidden.
        """
        lines = list(lines)
        if not lines:
            return
        reasons = list(reason) if isinstance(reason, (list, pd.Series, np.ndarray)) else [reason] * len(lines)
        details = list(detail) if detail is not None else [""] * len(lines)
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
        for line, why, more, text in zip(lines, reasons, details, texts):
            self.rejected_rows.append({"file": str(file), "line": int(line), "kind": why,
                                       "reason": f"{why}: {more}" if more else why, "row": text})
        self.accounts[str(file)].rejected += len(lines)

    def link(self, file: str | Path, deal_ids, lines) -> None:
        """Record that rows ``lines`` of ``file`` belong to the deals ``deal_ids`` (one per row)."""
        self.links.append(pd.DataFrame({"deal_id": np.asarray(deal_ids, dtype=object),
                                        "file": str(file), "line": np.asarray(lines, dtype=np.int64)}))

    def drop_rows(self, rows: pd.DataFrame, mask, reason, *, file: str | None = None, detail=None) -> pd.DataFrame:
        """Reject the rows of a source table where ``mask`` holds; return the others.

        The one way an importer drops a row: ``rows`` is (a part of) a source table with ``_line``
        and either a ``_file`` column or ``file``; ``reason`` is one text or one per row of ``rows``,
        ``detail`` (optional) one text per row of ``rows`` with the row's own values.

        Examples
        --------
        >>> r = ImportResult("table", ["t.csv"])
        >>> _ = r.account("t.csv", 2)
        >>> t = pd.DataFrame({"id": ["A", ""], "_line": [2, 3]})
        >>> r.drop_rows(t, t["id"].eq(""), "id is empty", file="t.csv")["id"].tolist()
        ['A']
        >>> r.accounts["t.csv"].rejected
        1
        """
        mask = pd.Series(mask, index=rows.index) if not isinstance(mask, pd.Series) else mask
        mask = mask.reindex(rows.index, fill_value=False).fillna(False).astype(bool)
        if not mask.any():
            return rows
        pick = mask.to_numpy()

        def part(values):
            if values is None or isinstance(values, str):
                return values
            return list(np.asarray(values, dtype=object)[pick])

        bad = rows[mask].assign(_why=part(reason) if not isinstance(reason, str) else reason,
                                _detail=part(detail) if detail is not None else "")
        files = bad["_file"] if file is None else pd.Series(str(file), index=bad.index)
        for f, grp in bad.groupby(files, sort=False):
            self.reject(f, grp["_line"], list(grp["_why"]), grp.drop(columns=["_why", "_detail"]),
                        detail=list(grp["_detail"]) if detail is not None else None)
        return rows[~mask]

    def drop_deals(self, deals: pd.DataFrame, mask, reason: str, detail=None) -> pd.DataFrame:
        """Reject the deals where ``mask`` holds, and every linked row of theirs; return the rest.

        The one way to drop a deal once it is built: its own row (``_file``, ``_line``) is rejected
        with ``reason`` (and ``detail``, one text per rejected deal), and the rows of other files that
        belong to it (see :meth:`link`) with "its deal was rejected", naming the deal's file and line.

        Examples
        --------
        >>> r = ImportResult("table", ["t.csv"])
        >>> _ = r.account("t.csv", 2)
        >>> d = pd.DataFrame({"deal_id": ["A", "B"], "_file": "t.csv", "_line": [2, 3]})
        >>> r.drop_deals(d, d["deal_id"].eq("B"), "no good")["deal_id"].tolist()
        ['A']
        >>> r.rejected[["line", "reason"]].values.tolist()
        [[3, 'no good']]
        """
        mask = pd.Series(mask, index=deals.index).fillna(False).astype(bool)
        if not mask.any():
            return deals
        if detail is not None:  # one per dropped deal: spread over all rows for drop_rows
            full = np.full(len(deals), "", dtype=object)
            full[mask.to_numpy()] = list(detail)
            detail = full
        self._reject_linked(deals[mask], reason)
        return self.drop_rows(deals, mask, reason, detail=detail)

    def _reject_linked(self, bad: pd.DataFrame, reason: str) -> None:
        if not self.links:
            return
        links = pd.concat(self.links, ignore_index=True)
        done = {(r["file"], r["line"]) for r in self.rejected_rows}
        hit = links["deal_id"].isin(set(bad["deal_id"])) & ~pd.Series(
            [(f, int(n)) in done for f, n in zip(links["file"], links["line"])], index=links.index, dtype=bool)
        if not hit.any():
            return
        where = dict(zip(bad["deal_id"], zip(bad["_file"], bad["_line"])))
        for f, grp in links[hit].groupby("file", sort=False):
            self.reject(f, grp["line"], f"its deal was rejected ({reason})",
                        detail=[f"deal {d}, {Path(where[d][0]).name} line {where[d][1]}" for d in grp["deal_id"]])
        self.links = [links[~hit]]

    @property
    def rejected(self) -> pd.DataFrame:
        return pd.DataFrame(self.rejected_rows, columns=["file", "line", "reason", "row"])

    def reasons(self) -> dict[str, int]:
        """Rejected rows per reason (without the rows' own values), most frequent first."""
        counts: dict[str, int] = {}
        for r in self.rejected_rows:
            counts[r["kind"]] = counts.get(r["kind"], 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def reason_lines(self, examples: int = 3) -> list[str]:
        """One line per reason: ``N x reason``, then the first rows' values (file, line, detail)."""
        out = []
        for why, n in self.reasons().items():
            rows = [r for r in self.rejected_rows if r["kind"] == why and r["reason"] != why][:examples]
            shown = "; ".join(f"{Path(r['file']).name} line {r['line']}: {r['reason'][len(why) + 2:]}"
                              for r in rows)
            more = ", ..." if shown and n > len(rows) else ""
            out.append(f"{n} x {why}" + (f" ({shown}{more})" if shown else ""))
        return out

    # -- output
    def _changes_text(self) -> str:
        total = sum(self.changes_written.values())
        return f"{total} (" + ", ".join(f"{k} {v}" for k, v in self.changes_written.items()) + ")"

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
        if self.changes_written:
            lines.append("  changes written (deal_changes.csv): " + self._changes_text())
        lines.append(f"  pipeline stages: {' > '.join(self.stages)}")
        if len(self.currencies) > 1:
            cur = ", ".join(f"{c} {n}" for c, n in self.currencies.items())
            lines.append(f"  currencies: {cur} (kept apart in the 'currency' column; never added together)")
        else:
            lines.append(f"  currency: {self.currency}")
        if self.rejected_rows:
            lines.append(f"  rejected rows: {len(self.rejected_rows)} (with reasons in {REJECTED_CSV}):")
            lines += [f"    - {text}" for text in self.reason_lines()]
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
            "changes_written": dict(self.changes_written),
            "status": dict(self.status_counts),
            "stages": list(self.stages),
            "currency": self.currency,
            "currencies": dict(self.currencies),
            "rejected": len(self.rejected_rows),
            "rejected_reasons": self.reasons(),
            "assumptions": list(self.assumptions),
        }

    def markdown(self) -> str:
        """The report as Markdown; every text from the export (labels, values, paths) is escaped, so a
        Markdown or HTML viewer shows it as text (a ``<script>`` stage label stays text)."""
        d = self.to_dict()
        e = md_escape
        out = [f"# Import report: {e(self.format)}", "",
               "Sources (read only, never modified):", ""]
        out += [f"- {e(s)}" for s in d["sources"]]
        out += ["", "## Rows", "", "| file | encoding | read | used | rejected | note |", "|---|---|---|---|---|---|"]
        for name, a in d["files"].items():
            out.append(f"| {e(name)} | {e(a['encoding'])} | {a['read']} | {a['used']} | {a['rejected']} | "
                       f"{e(a['note'])} |")
        st = ", ".join(f"{k} {v}" for k, v in d["status"].items())
        out += ["", f"Deals written: **{self.deals_written}** ({st}). Stage entries written: "
                f"**{self.history_written}**."
                + (f" Changes written to `deal_changes.csv`: {e(self._changes_text())}." if self.changes_written
                   else ""), "",
                f"Pipeline stages: {e(' > '.join(self.stages))}. Currency: {e(self.currency)}"
                + (f" (deals in {e(', '.join(self.currencies))}: see the `currency` column)"
                   if len(self.currencies) > 1 else "") + ".", "", "## Rejected rows", ""]
        if self.rejected_rows:
            out.append(f"{len(self.rejected_rows)} rows, each with its reason in `{REJECTED_CSV}`:")
            out.append("")
            out += [f"- {e(text)}" for text in self.reason_lines()]
        else:
            out.append("None.")
        out += ["", "## Assumptions", ""]
        out += [f"- {e(a)}" for a in self.assumptions]
        return "\n".join(out) + "\n"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(text: object) -> str:
    """``text`` shown as text by a Markdown viewer and by the HTML it becomes.

    ``<`` becomes ``&lt;`` (no HTML tag can form), an ``&`` that would start an entity becomes
    ``&amp;``, the Markdown marks that work inside a line (backtick, ``*``, ``_``, ``[``, ``]``,
    ``|``, ``~``, backslash) are backslash-escaped, and line breaks become spaces (every text sits
    in one list item or table cell, after its start, so ``>`` and ``#`` cannot start a quote or a
    heading and are left as they are).

    Examples
    --------
    >>> print(md_escape("<script>alert(1)</script> *won* | R&D &amp; co"))
    &lt;script>alert(1)&lt;/script> \\*won\\* \\| R&D &amp;amp; co
    """
    text = re.sub(r"&(?=#?\w+;)", "&amp;", str(text))
    text = text.replace("<", "&lt;")
    text = re.sub(r"[\r\n]+", " ", text)
    return _MD_SPECIAL.sub(r"\\\1", text)


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
        deals["amount"] = deals["amount"] * factor  # not rounded: the original precision carries
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

#: What to do with a won/lost deal whose close date lies before its creation date (the deal was
#: entered into the CRM after it was signed): ``keep`` it (the default; flagged ``dates_estimated``)
#: or ``reject`` it (``--strict-dates``). ``clamp`` is the older name of ``keep``.
CLOSED_BEFORE_CREATED = ("keep", "reject", "clamp")
#: The optional deals.csv column that flags deals whose dates are estimated (see docs/data-contract.md).
FLAG = "dates_estimated"
#: The creation date the export gave a flagged deal, kept beside the estimate.
RECORDED_CREATED = "crm_created_at"


def reconcile(deals: pd.DataFrame, history: pd.DataFrame, result: ImportResult, *,
              closed_before_created: str = "keep", what_closed: str = "close date",
              what_created: str = "create date") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Make the dates consistent with the contract, saying what was done.

    Three steps, each reported: a close earlier on the creation day is moved to the creation time
    (:func:`_close_on_creation_day`); a close on an earlier day is kept and flagged, or rejected
    (:func:`_close_before_creation`); stage entries are put within their deal's life
    (:func:`_entries_within_deal`).

    Parameters
    ----------
    deals
        The deals, with ``_file`` and ``_line`` (their source row).
    history
        Stage entries: ``deal_id``, ``stage``, ``entered_at``; with ``_file`` and ``_line`` when the
        entries are rows of a source file (then an entry left out is a rejected row).
    result
        Where decisions and rejections are recorded.
    closed_before_created
        ``keep`` (default) or ``reject``; see :data:`CLOSED_BEFORE_CREATED`.
    what_closed, what_created
        The export's names of the close and creation dates, used in the messages.

    Returns
    -------
    tuple of DataFrame
        The deals (with a ``dates_estimated`` column when any deal is flagged) and the history.

    Examples
    --------
    >>> r = ImportResult("table", ["t.csv"]); _ = r.account("t.csv", 1)
    >>> d = pd.DataFrame({"deal_id": ["A"], "created_at": pd.to_datetime(["2024-03-10"]),
    ...                   "closed_at": pd.to_datetime(["2024-03-01"]), "status": ["won"],
    ...                   "_file": "t.csv", "_line": [2]})
    >>> h = pd.DataFrame({"deal_id": ["A"], "stage": ["Lead"], "entered_at": pd.to_datetime(["2024-03-10"])})
    >>> d2, h2 = reconcile(d, h, r)
    >>> d2.loc[0, ["created_at", "closed_at"]].tolist(), bool(d2.loc[0, "dates_estimated"])
    ([Timestamp('2024-03-01 00:00:00'), Timestamp('2024-03-01 00:00:00')], True)
    """
    if closed_before_created not in CLOSED_BEFORE_CREATED:
        raise ImportProblem(f"closed_before_created must be keep or reject, not {closed_before_created!r}")
    names = (what_closed, what_created)
    deals = _close_on_creation_day(deals.copy(), result, *names)
    deals = _close_before_creation(deals, result, "reject" if closed_before_created == "reject" else "keep",
                                   *names).reset_index(drop=True)
    return deals, _entries_within_deal(deals, history, result, *names)


def _close_on_creation_day(deals, result, what_closed, what_created):
    """A close earlier on the creation day (close dates are often dates without a time): closed_at
    set to created_at."""
    closed, created = deals["closed_at"], deals["created_at"]
    same_day = closed.notna() & (closed < created) & (closed.dt.normalize() == created.dt.normalize())
    if same_day.any():
        deals.loc[same_day, "closed_at"] = created[same_day]
        result.assume(f"{int(same_day.sum())} deals closed on their creation day with a {what_closed} "
                      f"earlier in that day than the {what_created} (close dates are often dates without a "
                      "time): closed_at set to created_at")
    return deals


def _close_before_creation(deals, result, how, what_closed, what_created):
    """Deals closed on a day before their creation (entered into the CRM after they were signed).

    ``keep``: the close (the signing, the real event) stays ``closed_at``; ``created_at`` becomes the
    close too (the deal existed by then at the latest), the export's creation date is kept in
    ``crm_created_at``, and the deal is flagged ``dates_estimated`` (left out of durations).
    ``reject``: the deals are rejected, with their linked rows.
    """
    closed, created = deals["closed_at"], deals["created_at"]
    worse = closed.notna() & (closed < created)
    if not worse.any():
        return deals
    bad = deals[worse]
    detail = (f"{what_closed} " + _fmt_ts(bad["closed_at"]) + f", {what_created} " + _fmt_ts(bad["created_at"])
              + ", deal " + bad["deal_id"].astype(str))
    if how == "reject":
        result.assume(f"{int(worse.sum())} deals have a {what_closed} on a day before their {what_created}: "
                      "rejected (strict dates); by default they are kept and flagged dates_estimated")
        return result.drop_deals(deals, worse, f"{what_closed} is before the {what_created}", detail.to_numpy())
    days = (created[worse] - closed[worse]).dt.total_seconds() / 86400
    deals[RECORDED_CREATED] = created.where(worse)
    deals[FLAG] = worse.to_numpy()
    deals.loc[worse, "created_at"] = closed[worse]
    by_status = bad["status"].value_counts()
    amounts = ""
    if "amount" in bad.columns:
        cur = bad["currency"].astype(str).str.strip().str.upper() if "currency" in bad.columns else \
            pd.Series("", index=bad.index)
        parts = [f"{c + ' ' if c else ''}{v:,.15g}" for c, v in
                 bad.groupby(cur)["amount"].sum(min_count=1).dropna().items()]
        amounts = f"; amount {', '.join(parts)}" if parts else ""
    named = _named(bad["deal_id"])
    result.assume(
        f"{len(bad)} deals have a {what_closed} before their {what_created} (by {_span(days)}: entered into "
        "the CRM after they were signed; "
        + ", ".join(f"{k} {v}" for k, v in by_status.items()) + amounts + "): kept for counts and amounts, "
        f"with the {what_closed} (the signing) as closed_at and as created_at (the {what_created} is kept "
        f"in '{RECORDED_CREATED}'), flagged '{FLAG}' = true, and left out of the durations (days to close, "
        "the close-time estimate, time in stage, the stuck thresholds, the forecasts' training); "
        f"--strict-dates rejects them instead. Deals: {named}")
    return deals


def _entries_within_deal(deals, history, result, what_closed, what_created):
    """Stage entries before the creation moved to it; after the close: the same day moves the close
    to the entry, another day (or any day on a flagged deal) leaves the entry out (a rejected row
    when it is one)."""
    cols = ["deal_id", "stage", "entered_at"] + [c for c in ("_file", "_line") if c in history.columns]
    h = history[cols].merge(deals[["deal_id", "created_at", "closed_at"]], on="deal_id", how="inner")
    flagged = h["deal_id"].isin(set(deals.loc[deals[FLAG], "deal_id"])) if FLAG in deals.columns else \
        pd.Series(False, index=h.index)
    early = (h["entered_at"] < h["created_at"]) & ~flagged
    if early.any():
        h.loc[early, "entered_at"] = h.loc[early, "created_at"]
        result.assume(f"{int(early.sum())} stage entries dated before their deal's {what_created} moved to "
                      "the create date")
    late = h["closed_at"].notna() & ((h["entered_at"] > h["closed_at"]) | (flagged & (h["entered_at"] < h["created_at"])))
    if late.any():
        same = late & ~flagged & (h["entered_at"].dt.normalize() == h["closed_at"].dt.normalize())
        if same.any():
            last = h[same].groupby("deal_id")["entered_at"].max()
            idx = deals["deal_id"].isin(last.index)
            deals.loc[idx, "closed_at"] = deals.loc[idx, "deal_id"].map(last).astype("datetime64[ns]")
            result.assume(f"{len(last)} deals had a stage entry later on the day of their {what_closed}: "
                          "closed_at moved to that entry's time (the close date has no time)")
        drop = late & ~same
        if drop.any():
            out = h[drop]
            why = (f"stage entry dated after its deal's {what_closed} (on another day, or recorded after a "
                   "deal entered into the CRM once signed): left out of the stage history")
            rows = out["_file"].notna() if "_file" in out.columns else pd.Series(False, index=out.index)
            for f, grp in (out[rows].groupby("_file", sort=False) if rows.any() else []):  # rows of a file
                result.reject(f, grp["_line"], why, detail=("deal " + grp["deal_id"].astype(str) + ", entered "
                                                          + _fmt_ts(grp["entered_at"]) + f", {what_closed} "
                                                          + _fmt_ts(grp["closed_at"])).to_numpy())
            if (~rows).any():  # entries the importer derived (dates in columns, snapshots)
                result.assume(f"{int((~rows).sum())} {why}")
        h = h[~drop]
    return h[["deal_id", "stage", "entered_at"]].reset_index(drop=True)


#: The close date the export gave a deal whose close was dated by a witness instead.
RECORDED_CLOSE = "crm_close_date"


def close_by_witness(deals: pd.DataFrame, witness: pd.Series, export_end, result: ImportResult, *,
                     what_closed: str = "close date", witness_name: str = "the history") -> pd.DataFrame:
    """Closed deals whose close date lies after the export's last recorded timestamp.

    No close can happen after the export was taken: such a close date is a planned date that was
    never updated when the deal was closed (CRMs keep the expected close date a user typed). When
    the export holds a *witness*, a recorded event of the close (Salesforce: the OpportunityHistory
    row that enters the closed stage; HubSpot: the first export that shows the deal closed), that
    is the close; the export's date is kept in ``crm_close_date``. Without a witness the close date
    stays. Either way the deals are named in the import report.

    Parameters
    ----------
    deals
        The deals (``deal_id``, ``status``, ``closed_at``).
    witness
        The time of each deal's witness, indexed by deal id (deals without one may be absent).
    export_end
        The export's last recorded timestamp (NaT: nothing is checked).
    result
        Where the decisions are recorded.
    what_closed, witness_name
        The export's name of the close date and of the witness, for the report.

    Examples
    --------
    >>> r = ImportResult("salesforce", [])
    >>> d = pd.DataFrame({"deal_id": ["A", "B"], "status": ["lost", "lost"],
    ...                   "closed_at": pd.to_datetime(["2024-09-30", "2024-03-01"])})
    >>> w = pd.Series(pd.to_datetime(["2024-04-02 10:00"]), index=["A"])
    >>> close_by_witness(d, w, pd.Timestamp("2024-05-02 10:00"), r)["closed_at"].tolist()
    [Timestamp('2024-04-02 10:00:00'), Timestamp('2024-03-01 00:00:00')]
    """
    if pd.isna(export_end):
        return deals
    after = deals["status"].isin(OUTCOMES) & (deals["closed_at"] > export_end)
    if not after.any():
        return deals
    seen = pd.Series(pd.to_datetime(witness).reindex(deals["deal_id"].to_numpy()).to_numpy(), index=deals.index,
                     dtype="datetime64[ns]")
    has = after & seen.notna() & (seen <= export_end)
    end = pd.Timestamp(export_end).strftime("%Y-%m-%d %H:%M")
    if has.any():
        deals = deals.copy()
        deals[RECORDED_CLOSE] = deals["closed_at"].where(has)
        deals.loc[has, "closed_at"] = seen[has]
        lag = (deals.loc[has, RECORDED_CLOSE] - seen[has]).dt.days
        result.assume(f"{int(has.sum())} closed deals have a {what_closed} after the export's last recorded "
                      f"timestamp ({end}; by {_span(lag)} after the recorded close): no close "
                      f"lies after the export, so that {what_closed} is a planned date never updated; closed_at "
                      f"is taken from {witness_name}, the recorded close ({what_closed} kept in "
                      f"'{RECORDED_CLOSE}'). Deals: {_named(deals.loc[has, 'deal_id'])}")
    rest = after & ~has
    if rest.any():
        result.assume(f"{int(rest.sum())} closed deals have a {what_closed} after the export's last recorded "
                      f"timestamp ({end}) and {witness_name} is missing: their {what_closed} is kept as closed_at, so "
                      f"they count as open until then. Deals: {_named(deals.loc[rest, 'deal_id'])}")
    return deals


def _span(days: pd.Series) -> str:
    """``"1 day"``, ``"16 days"`` or ``"16 to 58 days"`` (whole days, rounded)."""
    lo, hi = int(round(float(days.min()))), int(round(float(days.max())))
    return (f"{lo} day" if lo == 1 else f"{lo} days") if lo == hi else f"{lo} to {hi} days"


def _named(ids, limit: int = 20) -> str:
    """Deal ids for the report: the first ``limit``, then how many more."""
    ids = [str(i) for i in ids]
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def format_amounts(amount: pd.Series) -> pd.Series:
    """Amounts as text with the export's precision (no rounding to cents); NaN -> "".

    Each value is written with up to 15 significant digits (``repr``-like, without float noise):
    ``1200``, ``12.5``, ``9225.225``, ``0.0001``. Every decimal number of up to 15 significant
    digits, which covers every amount an export writes, comes back exactly as it was read.

    Examples
    --------
    >>> format_amounts(pd.Series([9225.225, 1200.0, 0.1 + 0.2, float("nan")])).tolist()
    ['9225.225', '1200', '0.3', '']
    """
    v = pd.to_numeric(amount, errors="coerce").to_numpy(dtype=float)
    known = ~np.isnan(v)
    out = np.full(len(v), "", dtype=object)
    out[known] = [_amount_text(x) for x in v[known].tolist()]
    return pd.Series(out, index=amount.index, dtype=object)


def _amount_text(x: float) -> str:
    text = f"{x:.15g}"
    if "e" in text:  # very large or small: plain digits, still 15 significant at most
        text = np.format_float_positional(float(text), trim="-")
    return text


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


# ---------------------------------------------------------------------------------------------
# The change log (deal_changes.csv)

#: Internal deals column: when the export's own values (deals.csv) were known, for a deal whose last
#: recorded change disagrees with them (e.g. Salesforce's LastModifiedDate; the export's date).
VALUES_AT = "_values_at"


def change_rows(deal_id, changed_at, field_name: str, value) -> pd.DataFrame:
    """Changes of one field in the importers' shape: ``deal_id``, ``changed_at`` (datetime64),
    ``field``, ``value`` (a float for amounts, a timestamp for dates, text for categories; NaN / NaT
    / ``""`` = unknown), in the order they were saved (a later row at the same instant is a later save).

    Examples
    --------
    >>> change_rows(["A"], pd.to_datetime(["2024-01-02"]), "amount", [100.0])["field"].tolist()
    ['amount']
    """
    return pd.DataFrame({"deal_id": np.asarray(deal_id, dtype=object),
                         "changed_at": pd.to_datetime(pd.Series(np.asarray(changed_at))).to_numpy(dtype="datetime64[ns]"),
                         "field": field_name, "value": pd.Series(np.asarray(value, dtype=object)).to_numpy()})


def status_rows(deal_id: pd.Series, at: pd.Series, outcome: pd.Series) -> pd.DataFrame:
    """Earlier closes and reopenings as changes of ``status``, from a deal's dated states: rows in deal
    and time order, ``outcome`` ``won``/``lost`` on a row where the deal is closed and ``""`` where it
    is open. A closed row after an open one (or first: a deal is open from its creation) is a close,
    an open row after a closed one a reopening. The deal's final close is among them;
    :func:`settle_changes` leaves it to deals.csv.

    Examples
    --------
    >>> r = status_rows(pd.Series(["A"] * 4), pd.to_datetime(pd.Series(["2024-01-01", "2024-02-01",
    ...                 "2024-03-01", "2024-04-01"])), pd.Series(["", "lost", "", "won"]))
    >>> list(zip(r["changed_at"].dt.strftime("%m-%d"), r["value"]))
    [('02-01', 'lost'), ('03-01', 'open'), ('04-01', 'won')]
    """
    closed = outcome.fillna("").astype(str).ne("").to_numpy()
    same = deal_id.eq(deal_id.shift()).to_numpy()
    was_closed = same & np.r_[False, closed[:-1]]
    hit = closed != was_closed
    return change_rows(deal_id[hit], at[hit], STATUS_FIELD,
                       np.where(closed, outcome.astype(str).to_numpy(), "open")[hit])


def _settle_status(grp: pd.DataFrame, deals_by_id: pd.DataFrame, result: ImportResult) -> pd.DataFrame:
    """A deal's status changes as the contract wants them: before its final close, closes and
    reopenings alternating from a close, the last a reopening (deals.csv holds the final state)."""
    closed = grp["deal_id"].map(deals_by_id["closed_at"])
    late = (closed.notna() & (grp["changed_at"] >= closed)).to_numpy()
    reopens = grp["text"].eq("open").to_numpy()
    grp = grp[~late].sort_values(["deal_id", "changed_at", "_order"], kind="stable")
    grp = grp.drop_duplicates(["deal_id", "changed_at"], keep="last")   # the last save at an instant holds
    shut = grp["text"].ne("open").to_numpy()
    same = grp["deal_id"].eq(grp["deal_id"].shift()).to_numpy()
    grp = grp[shut != (same & np.r_[False, shut[:-1]])]                 # the first of each run
    last = ~grp["deal_id"].eq(grp["deal_id"].shift(-1)).to_numpy()
    grp = grp[~(last & grp["text"].ne("open").to_numpy())]              # a final close: deals.csv's
    reopened = grp["text"].eq("open")
    if reopened.any():
        result.assume(f"{int((~reopened).sum())} earlier closes and {int(reopened.sum())} reopenings of "
                      f"{grp['deal_id'].nunique()} deals recorded as status changes (deal_changes.csv, field "
                      "status); deals.csv keeps each deal's final state")
    # Closes at or after closed_at are the final close itself (normal); a reopening there is not kept.
    n_late = int((late & reopens).sum())
    if n_late:
        result.assume(f"{n_late} reopenings dated at or after their deal's final close (closed_at) are left out "
                      "(with the close before them): deals.csv holds the final close")
    return grp


def _value_text(field_name: str, values: pd.Series) -> pd.Series:
    """Change values as the contract's text: amounts at full precision, dates ISO, unknown = ``""``."""
    if field_name == "amount":
        return format_amounts(pd.to_numeric(values, errors="coerce"))
    if field_name == "expected_close_date":
        return _fmt_ts(pd.to_datetime(values, errors="coerce"))
    text = values.astype(object).where(values.notna(), "").astype(str).str.strip()
    return text


def _final_values(deals: pd.DataFrame, field_name: str) -> pd.Series | None:
    """Each deal's value at export (its deals.csv value) as text, NaN where the contract checks none."""
    if field_name not in deals.columns:
        return None
    text = _value_text(field_name, deals[field_name]).set_axis(deals.index)
    if field_name == "expected_close_date":
        text = text.where(deals["status"].eq("open"))   # only open deals have one (the loader's rule)
    return text


def settle_changes(deals: pd.DataFrame, changes: pd.DataFrame | None, result: ImportResult, *,
                   factor: pd.Series | None = None) -> pd.DataFrame | None:
    """The change log as the contract's text table, consistent with the deals that are written.

    1. Changes of deals not written are left out (their rows were rejected with the deal).
    2. A change dated before the deal's ``created_at`` is put at ``created_at``, one after its
       ``closed_at`` at ``closed_at`` (a closed deal keeps the values it closed with; CRMs save the
       final values with, or after, the close); counted in the report.
    3. Amounts are converted with the deal's rate when ``--rates`` converted the deals (``factor``).
    4. A deal's last value that disagrees with its value at export (deals.csv) is followed by a
       change to the export's value at ``_values_at`` (or the close), named in the report.
    5. Of several changes of one field at one instant the last saved holds; a change to the value the
       field already had is dropped.

    Returns None when there is no change to write (the data set then has no ``deal_changes.csv``).
    """
    if changes is None:
        return None
    deals_by_id = deals.set_index("deal_id")
    ch = changes[changes["deal_id"].isin(deals_by_id.index)].reset_index(drop=True)
    if ch.empty:
        return None
    created = ch["deal_id"].map(deals_by_id["created_at"])
    closed = ch["deal_id"].map(deals_by_id["closed_at"])
    at = ch["changed_at"]
    before, after = at < created, closed.notna() & (at > closed)
    ch["changed_at"] = at.where(~before, created).where(~after, closed)
    ch["_moved"] = np.where(before, "before", np.where(after, "after", ""))
    if factor is not None:
        is_amount = ch["field"].eq("amount")
        scale = ch["deal_id"].map(factor).where(is_amount, 1.0).astype(float)
        ch.loc[is_amount, "value"] = pd.to_numeric(ch.loc[is_amount, "value"], errors="coerce") * scale[is_amount]
    parts = []
    for name, grp in ch.groupby("field", sort=False):
        grp = grp.assign(text=_value_text(name, grp["value"]).to_numpy(), _order=np.arange(len(grp)))
        if name == STATUS_FIELD:
            parts.append(_settle_status(grp, deals_by_id, result))
            continue
        final = _final_values(deals_by_id.reset_index(), name)
        if final is not None:
            grp = _append_export_values(grp, name, final.set_axis(deals["deal_id"].to_numpy()), deals_by_id, result)
        grp = grp.sort_values(["deal_id", "changed_at", "_order"], kind="stable")
        grp = grp.drop_duplicates(["deal_id", "changed_at"], keep="last")   # the last save at an instant holds
        same = grp["deal_id"].eq(grp["deal_id"].shift()) & grp["text"].eq(grp["text"].shift())
        grp = grp[~same]
        # A field never known for a deal (every value empty, as at export) says nothing: left out.
        never = grp["text"].eq("").groupby(grp["deal_id"]).transform("all")
        parts.append(grp[~never.to_numpy()])
    out = pd.concat(parts, ignore_index=True)
    if out.empty:
        return None
    _say_moved(out, result)
    out = out.sort_values(["deal_id", "changed_at", "field"], kind="stable")
    result.changes_written = {f: int((out["field"] == f).sum()) for f in CHANGE_FIELDS if (out["field"] == f).any()}
    return pd.DataFrame({"deal_id": out["deal_id"].astype(str), "changed_at": _fmt_ts(out["changed_at"]),
                         "field": out["field"], "value": out["text"]})


def _say_moved(out: pd.DataFrame, result: ImportResult) -> None:
    """Report the written changes that were re-dated into their deal's life (a deal's first value is
    not counted: it stands for the time before anyway)."""
    later = out["deal_id"].eq(out["deal_id"].shift()) & out["field"].eq(out["field"].shift())
    moved = out["_moved"].fillna("")
    for kind, text in (("before", "before their deal's created_at: dated at created_at"),
                       ("after", "after their deal's close (edits of a closed deal): dated at the close, since a "
                                 "closed deal keeps the values it closed with (its values at export)")):
        hit = later & moved.eq(kind)
        if hit.any():
            result.assume(f"{int(hit.sum())} recorded changes of {out.loc[hit, 'deal_id'].nunique()} "
                          f"deals are dated {text}")


def _append_export_values(grp: pd.DataFrame, name: str, final: pd.Series, deals_by_id: pd.DataFrame,
                          result: ImportResult) -> pd.DataFrame:
    """Follow each deal's last recorded value that disagrees with its export value by a change to it."""
    last = grp.sort_values(["changed_at", "_order"], kind="stable").drop_duplicates("deal_id", keep="last")
    want = last["deal_id"].map(final)
    wrong = want.notna() & last["text"].ne(want)
    if not wrong.any():
        return grp
    ids = last.loc[wrong, "deal_id"]
    d = deals_by_id.loc[ids]
    when = (d[VALUES_AT] if VALUES_AT in d.columns else pd.Series(pd.NaT, index=d.index)).fillna(d["closed_at"])
    when = when.where(d["closed_at"].isna(), d["closed_at"])
    when = when.where(when >= last.loc[wrong, "changed_at"].to_numpy(), last.loc[wrong, "changed_at"].to_numpy())
    add = pd.DataFrame({"deal_id": ids.to_numpy(), "changed_at": when.to_numpy(dtype="datetime64[ns]"),
                        "field": name, "value": None, "text": want[wrong].to_numpy(),
                        "_order": len(grp) + np.arange(int(wrong.sum()))})
    result.assume(f"{int(wrong.sum())} deals' last recorded {name} disagrees with their {name} at export (the "
                  f"export's own value, deals.csv): the export's value is taken as a change at the time the "
                  f"export last saw the deal (its close, for a closed deal). Deals: {_named(sorted(ids))}")
    return pd.concat([grp, add], ignore_index=True)


def reject_foreign_marks(result: ImportResult, rows: pd.DataFrame, column: str, currency, *,
                         whose: str = "the deal's", file: str | None = None) -> pd.DataFrame:
    """Reject the rows whose amount in ``column`` carries a currency mark that is not the row's
    currency (the loader's rule, :func:`funnelkit.parsing.mark_agrees`: ``€1000`` on a USD deal;
    ``$`` and ``¥`` stand for each currency of their family); return the other rows.

    Examples
    --------
    >>> r = ImportResult("table", ["t.csv"]); _ = r.account("t.csv", 2)
    >>> t = pd.DataFrame({"Amount": ["€1000", "$5"], "_line": [2, 3]})
    >>> reject_foreign_marks(r, t, "Amount", "USD", file="t.csv")["Amount"].tolist()
    ['$5']
    >>> r.rejected["reason"].iat[0]
    "Amount's currency mark is not the deal's currency: Amount '€1000' is marked €, the deal is in USD"
    """
    cur = (currency.reindex(rows.index) if isinstance(currency, pd.Series)
           else pd.Series(currency, index=rows.index)).astype(str).str.strip().str.upper()
    marks = currency_marks(rows[column])
    marked = marks.ne("")
    if not marked.any():
        return rows
    wrong = pd.Series(False, index=rows.index)
    wrong[marked] = [not mark_agrees(m, c) for m, c in zip(marks[marked], cur[marked])]
    detail = (f"{column} '" + rows[column].astype(str).str.strip() + "' is marked " + marks + ", "
              + (whose[:-2] if whose.endswith("'s") else whose) + " is in " + cur)
    return result.drop_rows(rows, wrong, f"{column}'s currency mark is not {whose} currency", file=file,
                            detail=detail.where(wrong, "").tolist())


def finish(result: ImportResult, deals: pd.DataFrame, history: pd.DataFrame, stages: list[str], *,
           out, force: bool, sources, name: str, currency_default: str | None = None,
           rates: str | None = None, currency: str | None = None,
           closed_before_created: str = "keep", what_closed: str = "close date",
           what_created: str = "create date", missing_amount: str = "unknown", inputs=(),
           escape_formulas: bool = False, changes: pd.DataFrame | None = None) -> ImportResult:
    """Apply the shared rules, write the data set atomically, check that it loads, write the report.

    The last steps of every importer, in order: refuse a bad ``--out`` (:func:`check_out`),
    reconcile the dates (:func:`reconcile`), settle closed deals without an amount
    (:func:`_missing_amounts`), settle currencies (:func:`apply_currency`), turn the tables into the
    contract's text (:func:`contract_tables`), and write them with the report (:func:`_write`).

    Parameters
    ----------
    result
        The import so far (accounting, rejections, assumptions); completed and returned.
    deals, history
        The importer's deals (contract columns as values plus extras; ``_file``/``_line``) and stage
        entries (``deal_id``, ``stage``, ``entered_at``; ``_file``/``_line`` when rows of a file).
    stages
        The pipeline's open stages in order.
    out, force, sources, inputs
        The data set folder, whether to replace it, and the files read (never inside ``out``).
    name
        The pipeline's display name.
    currency_default, rates, currency
        See :func:`apply_currency`.
    closed_before_created, what_closed, what_created
        See :func:`reconcile`.
    missing_amount
        ``unknown`` (default), ``zero`` or ``reject``: won/lost deals without an amount.
    escape_formulas
        Prefix text cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``)
        with ``'`` (see :func:`escape_formula_cells`); off by default: cells are kept verbatim.
    changes
        Recorded values of the deals' amount, expected close date and forecast category (see
        :func:`change_rows`); written as ``deal_changes.csv`` after :func:`settle_changes` made them
        agree with the deals as written. None: no change log.

    Returns
    -------
    ImportResult
        ``result``, with what was written.
    """
    given = Path(out)
    # --out a symbolic link: the folder it points to is replaced, and the link keeps pointing at it.
    out = Path(os.path.realpath(given)) if given.is_symlink() else given
    check_out(out, sources, [rates, *inputs])
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"--out {out} is not empty; use --force to replace it")

    stages, history = _reserved_stage_names(stages, history, result)
    deals, history = reconcile(deals, history, result, closed_before_created=closed_before_created,
                               what_closed=what_closed, what_created=what_created)
    lone = ~deals["deal_id"].isin(history["deal_id"])
    if lone.any():
        # No entry at all, or none left (a flagged deal's entries recorded after its close): the
        # loader's rule, said.
        history = pd.concat([history, pd.DataFrame({"deal_id": deals.loc[lone, "deal_id"], "stage": stages[0],
                                                    "entered_at": deals.loc[lone, "created_at"]})],
                            ignore_index=True)
        result.assume(f"{int(lone.sum())} deals have no stage entry: recorded as entering the first stage "
                      f"({stages[0]!r}) at created_at (their path through the stages is unknown)")
    if deals.empty:
        listed = "; ".join(f"{n} x {why}" for why, n in list(result.reasons().items())[:10])
        raise ImportProblem(f"no deal left to write: every row was rejected ({listed or 'the export has no rows'})")
    deals, allow_missing_amounts = _missing_amounts(deals, result, missing_amount)
    history = history[history["deal_id"].isin(deals["deal_id"])]
    if currency_default is None:
        currency_default = (currency or "USD").strip().upper()
        if "currency" not in deals.columns:
            result.assume(f"the export names no currency: amounts taken to be in {currency_default}"
                          + ("" if currency else " (say which with --currency)"))
    deals, cur = apply_currency(deals, result, default=currency_default, rates=rates, target=currency)
    factor = None
    if rates and "currency_original" in deals.columns:
        table = read_rates(rates)
        table.setdefault(cur, 1.0)
        factor = pd.Series(deals["currency_original"].map(table).astype(float).to_numpy(), index=deals["deal_id"])
    out_changes = settle_changes(deals, changes, result, factor=factor)

    for acc in result.accounts.values():
        acc.used = acc.read - acc.rejected
    pipeline = Pipeline(tuple(stages), currency=cur, name=name,
                        allow_missing_amounts=allow_missing_amounts)
    out_deals, out_hist = contract_tables(deals, history)
    if escape_formulas:
        out_deals, n_deals = escape_formula_cells(out_deals)
        out_hist, n_hist = escape_formula_cells(out_hist, skip=("stage",))  # stage names are pipeline.yml's
        if out_changes is not None:   # the same cells as in deals.csv, so the last values still agree
            out_changes, _ = escape_formula_cells(out_changes, skip=("changed_at", "field"))
        result.assume(f"--escape-formulas: {n_deals + n_hist} text cells starting with =, +, - or @ were "
                      "prefixed with ' so a spreadsheet shows them as text")

    result.out = given
    result.deals_written = len(out_deals)
    result.history_written = len(out_hist)
    result.stages = list(stages)
    result.currency = cur
    result.status_counts = {s: int((out_deals["status"] == s).sum()) for s in ("open", "won", "lost")}
    _write(result, out, out_deals, out_hist, pipeline, deals, given, out_changes)
    return result


def _reserved_stage_names(stages: list[str], history: pd.DataFrame, result: ImportResult):
    """A CRM stage literally named ``Open``, ``Won`` or ``Lost`` (any case) becomes ``<name> (stage)``:
    those words are deal outcomes in the contract, never stage names."""
    reserved = {s: f"{s} (stage)" for s in stages if str(s).strip().lower() in ("open", "won", "lost")}
    if not reserved:
        return list(stages), history
    for old, new in reserved.items():
        result.assume(f"the CRM stage {old!r} is an open stage, but {old.lower()!r} is a deal status in the data "
                      f"contract: the stage is named {new!r} (the deal's own label stays in 'crm_stage')")
    history = history.assign(stage=history["stage"].replace(reserved))
    return [reserved.get(s, s) for s in stages], history


def _missing_amounts(deals: pd.DataFrame, result: ImportResult, how: str) -> tuple[pd.DataFrame, bool]:
    """Won/lost deals without an amount: kept as unknown (and allowed in pipeline.yml), written as 0
    (flagged ``amount_missing``) or rejected. Returns the deals and whether unknown amounts are allowed."""
    closed = deals["status"].isin(OUTCOMES)
    no_amount = closed & deals["amount"].isna()
    if not no_amount.any():
        return deals, False
    if how == "reject":
        return result.drop_deals(deals, no_amount, "a won/lost deal without an amount").reset_index(drop=True), False
    counts = ", ".join(f"{k} {v}" for k, v in deals.loc[no_amount, "status"].value_counts().items())
    if how == "zero":
        deals["amount_missing"] = np.where(no_amount, "yes", "")
        deals.loc[no_amount, "amount"] = 0.0
        result.assume(f"{int(no_amount.sum())} closed deals have no amount ({counts}): written as 0 (the column "
                      "map says amount_missing_on_closed: zero), flagged amount_missing=yes")
        return deals, False
    result.assume(f"{int(no_amount.sum())} closed deals have no amount ({counts}): kept with an unknown (empty) "
                  "amount, and pipeline.yml says allow_missing_amounts: true; sums skip them, deal-size means "
                  "use known amounts")
    return deals, True


def contract_tables(deals: pd.DataFrame, history: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The deals and stage history as the text tables of the contract: the required columns first,
    then the extras; timestamps ISO 8601, amounts at full precision, the ``dates_estimated`` flag as
    ``true`` or empty; bookkeeping columns (``_file``, ``_line``) dropped."""
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
        if c == FLAG:
            out_deals[c] = np.where(col.fillna(False).astype(bool), "true", "")
        elif pd.api.types.is_datetime64_any_dtype(col):
            out_deals[c] = _fmt_ts(col)
        else:
            out_deals[c] = col.astype(str)
    hist = history.sort_values(["deal_id", "entered_at"], kind="stable")
    out_hist = pd.DataFrame({"deal_id": hist["deal_id"].astype(str), "stage": hist["stage"],
                             "entered_at": _fmt_ts(hist["entered_at"])})
    return out_deals, out_hist


#: First characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_formula_cells(table: pd.DataFrame, skip=()) -> tuple[pd.DataFrame, int]:
    """Prefix with ``'`` every text cell that a spreadsheet would run as a formula; return the table
    and how many cells were changed.

    Cells that are numbers or timestamps are left alone (``-5`` is a number, not a formula), so the
    data set still loads; only text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
    return is changed.

    Examples
    --------
    >>> t = pd.DataFrame({"owner": ["=HYPERLINK(1)", "Ann", "-5", "@SUM(A1)"]})
    >>> escape_formula_cells(t)[0]["owner"].tolist(), escape_formula_cells(t)[1]
    (["'=HYPERLINK(1)", 'Ann', '-5', "'@SUM(A1)"], 2)
    """
    out, changed = table.copy(), 0
    for col in [c for c in out.columns if c not in skip]:
        text = out[col].astype(str)
        risky = text.str.startswith(FORMULA_START) & pd.to_numeric(text, errors="coerce").isna()
        if risky.any():
            out[col] = text.where(~risky, "'" + text)
            changed += int(risky.sum())
    return out, changed


def _write(result: ImportResult, out: Path, out_deals, out_hist, pipeline: Pipeline, deals, given: Path,
           out_changes=None) -> None:
    """Write the data set and the report into a temporary folder beside ``out``, check that it loads
    strictly, then put it in place of ``out`` (atomic for readers: old or new, never half). ``given``
    is ``--out`` as the user wrote it (``out`` is where a symbolic link points), for messages."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # mkdtemp makes a private (0700) folder: give the data set the mode a new folder gets (umask),
    # or, when replacing one, the mode it had.
    mode = (out.stat().st_mode & 0o7777) if out.is_dir() else (0o777 & ~_umask())
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        os.chmod(tmp, mode)
        write_dataset(tmp, out_deals, out_hist, pipeline, changes=out_changes)
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
