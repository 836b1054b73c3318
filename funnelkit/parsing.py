"""Vectorised parsing of the contract's text values: timestamps and amounts.

Each parser takes a Series of strings (empty string = missing) and returns the parsed values plus
a boolean mask of the non-empty values it could not parse, so the caller can name them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import ArgumentError

__all__ = ["parse_timestamps", "partial_dates", "parse_amounts", "currency_marks", "mark_agrees",
           "read_text_table", "import_readers", "nul_cells", "arrow_text"]

_TZ_SUFFIX = r"(?:Z|[+-]\d{2}(?::?\d{2})?)$"
#: Dates outside this range are almost always typos or spreadsheet artefacts (Excel's 1900 epoch).
EARLIEST = pd.Timestamp("1900-01-01")
LATEST = pd.Timestamp("2200-01-01")


def parse_timestamps(raw: pd.Series, date_format: str | None = None) -> tuple[pd.Series, pd.Series]:
    """Parse ISO 8601 dates or date-times (or ``date_format``) into naive ``datetime64[ns]``.

    Timezone-aware values are converted to UTC and made naive; naive values are kept as they are.

    Returns
    -------
    (parsed, bad)
        ``parsed`` has NaT for empty and bad values; ``bad`` is True where a non-empty value could
        not be parsed or lies outside 1900..2200.

    Examples
    --------
    >>> p, bad = parse_timestamps(pd.Series(["2024-01-02", "2024-01-02T10:00:00+02:00", "", "soon"]))
    >>> [str(x) for x in p], bad.tolist()
    (['2024-01-02 00:00:00', '2024-01-02 08:00:00', 'NaT', 'NaT'], [False, False, False, True])
    """
    # pyarrow-backed text (the loader's fast CSV path) stays as it is: its string ops are vectorised.
    text = (raw if arrow_text(raw) else raw.astype("string")).fillna("").str.strip()
    empty = text.eq("")
    if not date_format and arrow_text(text):
        # The usual export: every value empty or a plain ISO date / date-time (no zone, not partial,
        # in range): one regex and one cast instead of the general path's three.
        plain = _iso_by_arrow(text[~empty]) if not empty.all() else None
        if plain is not None:
            out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
            out[~empty] = plain
            return out, pd.Series(False, index=text.index)
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    # A year or a year-month alone is not a day (pandas would read it as the first day): bad,
    # unless date_format says that is the shape of the dates.
    partial = _partial(text) if not date_format else pd.Series(False, index=text.index)
    empty = empty | partial
    if date_format:
        parsed = pd.to_datetime(text.where(~empty), format=date_format, errors="coerce")
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        out = _to_ns(parsed)
    else:
        aware = text.str.contains(_TZ_SUFFIX, regex=True) & ~empty
        naive = ~aware & ~empty
        if naive.any():
            sub = text[naive]
            fast = _iso_by_arrow(sub) if arrow_text(sub) else None
            out[naive] = fast if fast is not None else _to_ns(
                pd.to_datetime(sub, format="ISO8601", errors="coerce"))
        if aware.any():
            # Mixed offsets parse fine with utc=True; then drop the zone.
            parsed = pd.to_datetime(text[aware], format="ISO8601", errors="coerce", utc=True)
            out[aware] = _to_ns(parsed.dt.tz_localize(None))
    in_range = out.isna() | ((out >= EARLIEST) & (out < LATEST))
    out = out.where(in_range)
    bad = (~empty & out.isna()) | partial
    return out, bad


def partial_dates(raw: pd.Series, date_format: str | None = None) -> pd.Series:
    """True where a value is only a year or a year and month (``2025``, ``2025-05``, ``202505``).

    :func:`parse_timestamps` counts them as bad unless ``date_format`` is given (which then decides).

    Examples
    --------
    >>> partial_dates(pd.Series(["2025", "2025-05", "2025-05-01", ""])).tolist()
    [True, True, False, False]
    """
    if date_format:
        return pd.Series(False, index=raw.index)
    text = (raw if arrow_text(raw) else raw.astype("string")).fillna("").str.strip()
    return _partial(text)


def _partial(text: pd.Series) -> pd.Series:
    return text.str.fullmatch(r"[+-]?\d{4}(?:-?\d{2})?").fillna(False).astype(bool)


#: The two shapes the fast path takes (years 1900-2199, valid clock times); anything else -> pandas.
_ISO_PLAIN = (r"^(19|20|21)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
              r"(T([01]\d|2[0-3]):[0-5]\d:[0-5]\d)?$")


def _iso_by_arrow(text: pd.Series) -> pd.Series | None:
    """Parse pyarrow-backed ``YYYY-MM-DD`` / ``YYYY-MM-DDTHH:MM:SS`` values with pyarrow (several
    times faster than pandas on millions of values). None when any value has another shape or is
    not a real date (e.g. 2024-02-31): the caller then parses the column with pandas as before."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(text.array)
    if not pc.all(pc.match_substring_regex(arr, _ISO_PLAIN)).as_py():
        return None
    try:
        parsed = pc.cast(arr, pa.timestamp("ns"))
    except pa.ArrowException:
        return None
    return pd.Series(parsed.to_numpy(zero_copy_only=False), index=text.index, dtype="datetime64[ns]")


def nul_cells(text: pd.Series) -> pd.Series:
    """True where a text cell contains a NUL byte (``\\0``).

    pyarrow-backed text is first looked at as the bytes of its columns' data buffers: when no
    byte is 0 (the usual case) no cell is looked at one by one.

    Examples
    --------
    >>> nul_cells(pd.Series(["a", "b\\x00", ""])).tolist()
    [False, True, False]
    """
    if arrow_text(text):
        import pyarrow as pa

        arr = pa.array(text.array)
        chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
        data = [c.buffers()[2] for c in chunks]
        if all(d is None or d.size == 0 or np.frombuffer(d, dtype=np.uint8).min() > 0 for d in data):
            return pd.Series(False, index=text.index)
    return text.str.contains("\x00", regex=False)


def arrow_text(s: pd.Series | pd.Index) -> bool:
    """True for pyarrow-backed text (what :func:`read_text_table` gives with ``arrow_strings``)."""
    return isinstance(s.dtype, pd.StringDtype) and str(s.dtype.storage).startswith("pyarrow")


def _to_ns(s: pd.Series) -> pd.Series:
    # Out-of-range values would overflow nanoseconds: blank them first; the caller flags them.
    if s.dtype != "datetime64[ns]":
        s = s.where(s.isna() | ((s >= EARLIEST) & (s < LATEST)))
        s = s.astype("datetime64[ns]")
    return s


_CURRENCY_MARKS = r"^(?:[A-Z]{3}|[$€£¥₹]|R\$|US\$)\s*|\s*(?:[A-Z]{3}|[$€£¥₹])$"
_LEADING_MARK = r"^\(?\s*(US\$|R\$|[A-Z]{3}|[$€£¥₹])"
_TRAILING_MARK = r"([A-Z]{3}|[$€£¥₹])\s*\)?$"

#: The currencies a symbol may stand for: ``$`` and ``¥`` are each used by several.
CURRENCY_SYMBOLS = {
    "$": ("USD", "CAD", "AUD", "NZD", "SGD", "HKD", "TWD", "MXN", "ARS", "CLP", "COP"),
    "US$": ("USD",), "R$": ("BRL",), "€": ("EUR",), "£": ("GBP",), "¥": ("JPY", "CNY"), "₹": ("INR",),
}


def currency_marks(raw: pd.Series) -> pd.Series:
    """The currency symbol or ISO code written with each amount (``""`` when none).

    These are the marks :func:`parse_amounts` strips; :func:`mark_agrees` tells whether one fits a
    currency.

    Examples
    --------
    >>> currency_marks(pd.Series(["€1000", "JPY 5", "100 GBP", "US$ 3", "12", "(£4)"])).tolist()
    ['€', 'JPY', 'GBP', 'US$', '', '£']
    """
    text = raw.astype("string").fillna("").str.strip()
    marks = pd.Series("", index=text.index, dtype=object)
    maybe = text.str.contains(r"[A-Z$€£¥₹]", regex=True).fillna(False).astype(bool)
    if maybe.any():
        t = text[maybe]
        lead = t.str.extract(_LEADING_MARK, expand=False)
        trail = t.str.extract(_TRAILING_MARK, expand=False)
        marks[maybe] = lead.fillna(trail).fillna("").astype(object)
    return marks


def mark_agrees(mark: str, currency: str) -> bool:
    """True when an amount's currency ``mark`` can stand for ISO ``currency`` (or there is no mark).

    Examples
    --------
    >>> mark_agrees("$", "CAD"), mark_agrees("€", "USD"), mark_agrees("USD", "USD")
    (True, False, True)
    """
    return not mark or mark == currency or currency in CURRENCY_SYMBOLS.get(mark, ())


def parse_amounts(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse amounts such as ``1200.5``, ``"$1,200.50"``, ``"1 200.50"``, ``"EUR 300"`` or ``"(25)"``.

    Commas and spaces (also non-breaking ones) are thousands separators; the decimal mark is ``.``.
    A currency symbol or ISO code before or after the number is stripped here; the loader checks
    it against the deal's currency (:func:`currency_marks`). ``(25)`` is accounting notation for
    -25, and ``(-25)`` is -25 as well; ``(+25)`` is not a number.

    Returns
    -------
    (parsed, bad)
        ``parsed`` is float64 with NaN for empty and bad values; ``bad`` marks non-empty values that
        are not numbers.

    Examples
    --------
    >>> v, bad = parse_amounts(pd.Series(["$1,200.50", "1 200.50", "", "12abc"]))
    >>> v.tolist()[:2], bad.tolist()
    ([1200.5, 1200.5], [False, False, False, True])
    """
    if arrow_text(raw):
        plain = _plain_amounts(raw)
        if plain is not None:
            return plain, pd.Series(False, index=raw.index)
    text = raw.astype("string").fillna("").str.strip()
    empty = text.eq("")
    fast = pd.to_numeric(text.where(~empty), errors="coerce")
    slow = fast.isna() & ~empty
    if slow.any():
        t = text[slow]
        paren = t.str.match(r"^\(.*\)$")
        t = t.str.replace(r"^\((.*)\)$", r"\1", regex=True)
        t = t.str.replace(_CURRENCY_MARKS, "", regex=True)
        t = t.str.strip()
        # Thousands separators must group digits in threes; anything else is not a number we trust
        # (so "1.200,50" or "12,5" is rejected, not read as 1.2005 or 125).
        ok_shape = t.str.fullmatch(
            r"[+-]?(?:\d{1,3}(?:[,\s\u00a0\u202f]\d{3})+|\d+)(?:\.\d*)?|[+-]?\.\d+").fillna(False)
        t = t.str.replace(r"[\s\u00a0\u202f,]", "", regex=True)
        vals = pd.to_numeric(t.where(ok_shape), errors="coerce")
        # (25) is -25; (-25) is -25 too (the sign repeats the parentheses); (+25) contradicts them.
        signed = t.str.match(r"^[+-]")
        vals = vals.where(~paren | signed, -vals).where(~(paren & t.str.startswith("+")))
        fast = fast.astype("float64")
        fast[slow] = vals.astype("float64")
    values = fast.astype("float64")
    bad = ~empty & (values.isna() | ~np.isfinite(values.fillna(0)))
    return values.where(~bad), bad


#: Amounts the fast path takes: plain decimals of at most 15 digits each side (exact as floats
#: whichever reader parses them); anything else (marks, separators, parentheses) -> the general path.
_PLAIN_AMOUNT = r"^-?\d{1,15}(\.\d{1,15})?$"


def _plain_amounts(raw: pd.Series) -> pd.Series | None:
    """pyarrow-backed amounts that are all empty or plain decimals, parsed by pyarrow (NaN for
    empty); None when any value has another shape (then :func:`parse_amounts` parses as before)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.utf8_trim_whitespace(pa.array(raw.fillna("").array))
    empty = pc.equal(text, "")
    if not pc.all(pc.or_(empty, pc.match_substring_regex(text, _PLAIN_AMOUNT))).as_py():
        return None
    values = pc.cast(pc.if_else(empty, pa.scalar(None, text.type), text), pa.float64())
    return pd.Series(values.to_numpy(zero_copy_only=False), index=raw.index, dtype="float64")


#: The modules reading each table format needs (imported on first use, by pandas too).
_READER_MODULES = {".csv": ("csv", "pyarrow", "pyarrow.csv", "pyarrow.compute"),
                   ".xlsx": ("zipfile", "openpyxl"), ".parquet": ("pyarrow", "pyarrow.parquet")}


def import_readers(paths) -> None:
    """Import the modules :func:`read_text_table` needs for the tables at ``paths`` (those installed),
    before several threads read them: a module two threads import at once can be seen half
    initialised by one of them (``openpyxl`` was: "partially initialized module").

    Examples
    --------
    >>> import sys
    >>> import_readers(["deals.parquet"])
    >>> "pyarrow.parquet" in sys.modules
    True
    """
    import importlib
    from pathlib import Path

    for path in paths:
        for name in _READER_MODULES.get(Path(path).suffix.lower(), ()):
            try:
                importlib.import_module(name)
            except ImportError:       # not installed: reading says so, as without this
                pass


def read_text_table(path, sheet: str | int = 0, *, arrow_strings: bool = False,
                    with_lines: bool = False) -> pd.DataFrame:
    """Read a CSV, XLSX or Parquet table with every cell as text ('' for missing).

    CSV files may be UTF-8 with or without BOM. Raises ``UnicodeDecodeError`` for other encodings
    (the loader turns it into a named problem).

    With ``arrow_strings=True`` a CSV is read by pyarrow's multi-threaded reader into pyarrow-backed
    text columns (much faster string operations on millions of rows); anything that reader would
    treat differently from pandas' (a bad row, odd header, not UTF-8, ...) falls back to pandas'
    reader, so results and error messages are the same.

    With ``with_lines=True`` two columns are added: ``_line``, the line in the file where each record
    starts (the header is line 1; quoted cells spanning lines and blank lines are counted as in an
    editor; for XLSX the sheet row, for Parquet the row number + 1), and ``_fields``, the number of
    fields the record has (a CSV record with more or fewer fields than the header is kept, padded or
    cut to the header, so the loader can name it).
    """
    from pathlib import Path

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        df = _read_csv_arrow(path) if arrow_strings else None
        if df is not None and with_lines:
            _refuse_reserved(df.columns)
        if df is None:
            df = _read_csv_records(path)      # the csv module: exact lines, any field counts
        elif with_lines:
            lines = _simple_lines(path, len(df))
            if lines is None:                 # quoted line breaks or blank lines: count exactly
                df = _read_csv_records(path)
            else:
                df["_line"], df["_fields"] = lines, len(df.columns)
        if not with_lines:
            df = df.drop(columns=["_line", "_fields"], errors="ignore")
    elif suffix == ".xlsx":
        df = pd.read_excel(path, sheet_name=sheet, dtype=object)
        df = _cells_to_text(df)
        df.attrs["formulas_without_value"] = _formulas_without_value(path, sheet, list(df.columns))
    elif suffix == ".parquet":
        df = _cells_to_text(pd.read_parquet(path))
    else:
        raise ArgumentError(f"{path}: unsupported table format '{suffix}' (use .csv, .xlsx or .parquet)")
    df.columns = [str(c).strip() for c in df.columns]
    if with_lines and suffix != ".csv":
        _refuse_reserved(df.columns)
        width = len(df.columns)
        df["_line"] = np.arange(2, len(df) + 2)
        df["_fields"] = width
    return df


def _formulas_without_value(path, sheet: str | int, columns: list) -> list[tuple[int, str, str]]:
    """``(sheet row, column name, formula)`` of each data cell holding a formula with no saved value.

    A workbook written by a program (not saved by Excel) may carry formulas without their results;
    read for values such a cell is empty, which would silently lose what it computes. The sheet XML
    is first scanned for formulas (most exports have none, so the workbook is read once only).
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/") and n.endswith(".xml")]
            if not any(_has_formula(z, n) for n in sheets):
                return []
    except (zipfile.BadZipFile, OSError, KeyError):
        return []
    import openpyxl

    found = []
    wb_f = openpyxl.load_workbook(path, read_only=True, data_only=False)
    wb_v = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        ws_f = wb_f.worksheets[sheet] if isinstance(sheet, int) else wb_f[sheet]
        ws_v = wb_v.worksheets[sheet] if isinstance(sheet, int) else wb_v[sheet]
        rows = zip(ws_f.iter_rows(min_row=2), ws_v.iter_rows(min_row=2, values_only=True))
        for r, (cells, values) in enumerate(rows, start=2):
            for j, cell in enumerate(cells):
                value = values[j] if j < len(values) else None
                if getattr(cell, "data_type", None) == "f" and value is None and j < len(columns):
                    found.append((r, str(columns[j]).strip(), str(cell.value)))
    finally:
        wb_f.close()
        wb_v.close()
    return found


def _has_formula(z, name: str) -> bool:
    """True when the sheet XML has a formula element (read in chunks: the XML may be large)."""
    tail = b""
    with z.open(name) as fh:
        while chunk := fh.read(1 << 20):
            if b"<f>" in tail + chunk or b"<f " in tail + chunk:
                return True
            tail = chunk[-2:]
    return False


def _refuse_reserved(columns) -> None:
    reserved = [str(c).strip() for c in columns if str(c).strip() in INTERNAL_COLUMNS]
    if reserved:
        raise pd.errors.ParserError(f"line 1: column name {reserved[0]!r} is reserved by funnelkit; rename it")


#: Columns read_text_table(with_lines=True) adds; a file may not use these names itself.
INTERNAL_COLUMNS = ("_line", "_fields")


def _simple_lines(path, records: int) -> np.ndarray | None:
    """Line numbers 2..n+1 when the file has exactly one line per record (the usual case), else None.

    Only for files whose line ends are all \\n or \\r\\n: a lone \\r is a line end to some readers
    and not to others, so such files go to the csv-module reader, which counts lines exactly."""
    with open(path, "rb") as fh:
        data = fh.read()
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return None
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    return np.arange(2, records + 2) if lines == records + 1 else None


def _read_csv_records(path) -> pd.DataFrame:
    """Read a CSV with the csv module, keeping each record's first line and field count.

    Blank lines are skipped (they hold no data). Records with too many or too few fields are padded
    or cut to the header's width; ``_fields`` keeps their real count for the loader to report.
    """
    import csv

    # Cells of any length (the default limit, 128 KiB, would make a long note unreadable).
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    try:
        return _csv_records(path, strict=True)
    except _StrayQuote:
        # A quote inside an unquoted cell (e.g. 12" screen): read it as text, as spreadsheets do.
        return _csv_records(path, strict=False)


class _StrayQuote(Exception):
    pass


def _csv_records(path, strict: bool) -> pd.DataFrame:
    import csv

    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, strict=strict)
        start = 1
        try:
            header = next(reader)
            if not header or not any(h.strip() for h in header):
                raise pd.errors.ParserError("line 1 is empty: the header must be the first line")
            width = len(header)
            rows, lines, counts = [], [], []
            start = reader.line_num + 1
            for rec in reader:
                if rec:
                    lines.append(start)
                    counts.append(len(rec))
                    rows.append(rec[:width] + [""] * (width - len(rec)) if len(rec) != width else rec)
                start = reader.line_num + 1
        except StopIteration:
            raise pd.errors.EmptyDataError("no header") from None
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise pd.errors.ParserError(
                    f"line {start}: a quoted cell opened in the record starting on this line is never "
                    "closed, so every later line would be read into it (an unclosed quote)") from None
            if strict:
                raise _StrayQuote() from None
            raise pd.errors.ParserError(f"line {reader.line_num}: {exc}") from None
    _refuse_reserved(header)
    # Keep repeated header names as written (the loader names them); build by position.
    df = pd.DataFrame(rows if rows else None, columns=range(width), dtype=object)
    if not rows:
        df = pd.DataFrame({i: pd.Series([], dtype=object) for i in range(width)})
    df.columns = header
    df = df.fillna("")
    df["_line"] = np.asarray(lines, dtype="int64")
    df["_fields"] = np.asarray(counts, dtype="int64")
    return df


def _read_csv_arrow(path) -> pd.DataFrame | None:
    """The CSV as pyarrow-backed text columns, or None where pandas' reader must decide."""
    import csv

    try:
        import pyarrow as pa
        import pyarrow.csv as pcsv
    except ImportError:
        return None
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            names = next(csv.reader(fh))
    except (UnicodeDecodeError, StopIteration, csv.Error, OSError):
        return None
    # pandas renames duplicate and empty header cells: leave those files to it.
    if not names or len(set(names)) != len(names) or any(n == "" for n in names):
        return None
    try:
        table = pcsv.read_csv(
            path, read_options=pcsv.ReadOptions(use_threads=True),
            parse_options=pcsv.ParseOptions(newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                strings_can_be_null=False,
                                                quoted_strings_can_be_null=False))
    except (pa.ArrowException, OSError, ValueError):
        return None
    if table.column_names != names or table.num_rows == 0:
        return None
    dtype = pd.StringDtype("pyarrow")
    return table.to_pandas(types_mapper={pa.string(): dtype, pa.large_string(): dtype}.get)


def _cell_text(v) -> str:
    if v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
        return ""
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _cells_to_text(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell of a typed table (Parquet, XLSX) as the text a CSV would hold ('' for missing).

    Typed columns are converted column-wise; only object columns that mix types go cell by cell.
    """
    out = {}
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            if getattr(s.dt, "tz", None) is not None:
                s = s.dt.tz_convert("UTC").dt.tz_localize(None)
            text = s.dt.strftime("%Y-%m-%dT%H:%M:%S").astype(object)
        elif pd.api.types.is_bool_dtype(s) or pd.api.types.is_integer_dtype(s):
            text = s.astype(object).where(s.notna(), "").astype(str)
        elif pd.api.types.is_float_dtype(s):
            v = s.to_numpy(dtype="float64")
            whole = np.isfinite(v) & (v == np.round(v)) & (np.abs(v) < 2**53)
            text = pd.Series(np.where(whole, np.round(np.where(whole, v, 0)).astype("int64").astype(str),
                                      v.astype(str)), index=s.index, dtype=object)
            text = text.where(s.notna(), "")
        elif s.map(type).eq(str).all() if len(s) else True:
            text = s
        else:
            text = s.map(_cell_text)
        out[str(col)] = text.fillna("").astype(object)
    return pd.DataFrame(out, index=df.index)
