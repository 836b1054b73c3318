"""Render the quarterly report notebook to shareable, self-contained HTML.

:func:`render_report` executes ``notebooks/quarterly_report.ipynb`` with papermill for one period
and writes ``<out>/<label>.html`` plus the executed ``<out>/<label>.ipynb``;
:func:`render_all_quarters` does it for every quarter in the data and writes an ``index.html``.

Guarantees
----------
- **Never hangs.** Every execution has a per-cell timeout (and a kernel start-up timeout). A render
  that times out is retried once, with a warning on the ``funnelkit.report`` logger; a second timeout
  raises :class:`ReportError`. (Papermill runs of widget notebooks without an execution timeout were
  seen to hang forever in a few percent of runs; what is known is in :data:`HANG_NOTES`.)
- **Atomic.** Both files are written to temporary names in ``out`` and renamed only when the render
  succeeded. A failed render raises :class:`ReportError` naming the period and the failing cell
  (index, exception name and message, first source line), leaves no HTML behind, and keeps the
  executed notebook with its traceback as ``<label>.failed.ipynb`` for debugging. A render killed
  midway leaves its hidden ``.<label>.ipynb.XXXXXXXX.tmp``; the next render of that label removes it
  (only temporary files of that naming whose writer has ended: :func:`funnelkit.io.atomic_path`). A
  full disk ends the run with ``OSError`` naming the output (the CLI: ``PATH: no space left on
  device``), not a retry.
- **Offline.** The HTML uses the template in ``funnelkit/templates/funnelkit_offline``: nbconvert's
  ``lab`` template minus everything it would fetch from a CDN (require.js, MathJax, mermaid, the
  ipywidgets HTML manager). Its CSS is inlined, plots are inline ``data:image/png;base64`` images, and
  live-widget outputs (which need a kernel) are dropped from the HTML (they stay in the ``.ipynb``);
  the notebook's pre-rendered slice views with a ``<select>`` and inline script are what a reader
  uses instead. After export, :func:`external_loads` checks that nothing is fetched from a network
  (any stray ``<script src=http...>``/``<link href=http...>`` is stripped with a warning).
- **Escaped.** Text from the data must never become markup. pandas ``DataFrame.to_html`` escapes by
  default, but ``IPython.display.Markdown``/``HTML`` and ``Styler`` (without ``escape="html"``) do
  not: notebook and widget code puts every data value (source, product, owner, deal id, pipeline
  and stage names, titles) through :func:`escape` before building Markdown or HTML from it.

Examples
--------
>>> from funnelkit.period import Period
>>> render_report("data/sample", Period.quarter("2026Q3"), "reports")     # doctest: +SKIP
PosixPath('reports/2026Q3.html')
"""

from __future__ import annotations

import contextlib
import errno
import html as _html
import logging
import os
import re
import shutil
import time
import warnings
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import ArgumentError, FunnelkitError
from .formatting import check_locale
from .i18n import _, check_language, html_lang, translate_notebook, use_language
from .io import atomic_path, atomic_write_text
from .period import Period, PeriodLike, as_period, quarters_between

__all__ = ["render_report", "render_all_quarters", "escape", "export_html", "external_loads",
           "default_notebook", "ReportError", "RenderFailure", "RenderOutcome", "TEMPLATE_DIR", "TEMPLATE_NAME",
           "add_navigation", "quarter_headlines", "write_index"]

log = logging.getLogger("funnelkit.report")

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "funnelkit_offline"
NOTEBOOK_NAME = "quarterly_report.ipynb"
#: Environment variable naming another report notebook (e.g. a user's own copy).
NOTEBOOK_ENV = "FUNNELKIT_REPORT_NOTEBOOK"
KERNEL = "python3"
START_TIMEOUT = 120  # seconds to wait for the kernel to start

HANG_NOTES = """\
Papermill/nbclient wait for a cell's execute_reply with ``shell_channel.get_msg(timeout=None)`` when
no execution timeout is set, so any lost or never-sent reply blocks forever; with a timeout the same
wait is a bounded poll. Widget cells are where it shows up: ``interact``/``interactive`` open many
comms and send a burst of comm_open/comm_msg/display messages on iopub right before the reply
(nteract/papermill#723 "Papermill stuck on @widgets.interact", jupyter/nbclient#312 "when cell
contains ipywidget, execute cell will sometimes block", ssciwr/lunch-time-python#102; a similar hang
after the last cell in papermill's kernel_info wait: nteract/papermill#711, PR #726). We did not
reproduce the root cause; funnelkit always passes an execution timeout and retries once.
"""


class ReportError(FunnelkitError, RuntimeError):
    """A report could not be rendered (the message names the period and, when known, the cell)."""


@dataclass
class RenderFailure:
    label: str
    message: str


@dataclass
class RenderOutcome:
    """What an all-quarters run produced: ``(label, html path)`` per rendered quarter, and failures."""
    rendered: list[tuple[str, Path]] = field(default_factory=list)
    failed: list[RenderFailure] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Escaping

# CommonMark's backslash-escapable punctuation that can start markup; ":" too, so that a value such
# as "http://x" or "www.x" is not auto-linked. "&", "<", ">" and '"' become entities instead.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$:=^])")


def escape(value: Any, *, markdown: bool = False) -> str:
    """Text from the data, safe to put into HTML (or, with ``markdown=True``, into Markdown).

    Use it for every data value (sources, products, owners, deal ids, stage names, titles) that goes
    into ``IPython.display.HTML``/``Markdown``, an f-string of HTML, or an HTML attribute.
    ``DataFrame.to_html`` already escapes; ``Styler`` needs ``.format(escape="html")``.

    Parameters
    ----------
    value
        Anything; ``str(value)`` is escaped.
    markdown
        Also backslash-escape Markdown punctuation and collapse whitespace (newlines included) to
        single spaces, so the value is plain inline text inside Markdown: no emphasis, links,
        auto-links, headings, lists, code blocks, raw HTML or ``$`` math.
        ``&``, ``<`` and ``>`` become entities either way.

    Examples
    --------
    >>> escape('<script>alert("x")</script>')
    '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'
    >>> print(escape("Partner *A* <b>[x](javascript:1)</b>", markdown=True))
    Partner \\*A\\* &lt;b&gt;\\[x\\]\\(javascript\\:1\\)&lt;/b&gt;
    """
    text = "" if value is None else str(value)
    if not markdown:
        return _html.escape(text, quote=True)
    text = " ".join(text.split())  # no line breaks (blocks) and no indented code
    # Markdown punctuation first (backslash escapes), then the three HTML specials as entities;
    # "&lt;" etc. contain none of the escaped punctuation, so the two steps do not interfere.
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# --------------------------------------------------------------------------------------------
# Offline HTML

_EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)
# Tag/attribute pairs that make a browser fetch something (links <a href> do not).
_LOADING = {"script": ("src",), "link": ("href",), "img": ("src", "srcset"), "iframe": ("src",),
            "frame": ("src",), "embed": ("src",), "object": ("data",), "source": ("src", "srcset"),
            "video": ("src", "poster"), "audio": ("src",), "track": ("src",), "input": ("src",),
            "image": ("href",), "use": ("href",)}
_CSS_URL = re.compile(r"(?:url\(\s*['\"]?|@import\s+['\"])\s*((?:https?:)?//[^'\")\s]+)", re.I)
_JS_URL = re.compile(r"""(?:import\s*\(|\.src\s*=|fetch\s*\(|require\s*\(\s*\[?)\s*['"`]((?:https?:)?//[^'"`]+)""",
                     re.I)


class _LoadFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str, str]] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value and name in _LOADING.get(tag, ()) and _EXTERNAL.match(value):
                self.found.append((tag, name, value))
            if value and name == "style":
                self.found += [(tag, "style", u) for u in _CSS_URL.findall(value)]
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "style":
            self.found += [("style", "url", u) for u in _CSS_URL.findall(data)]
        elif self._in == "script":
            self.found += [("script", "code", u) for u in _JS_URL.findall(data)]


def external_loads(html: str) -> list[tuple[str, str, str]]:
    """Every resource the page would fetch from another host: ``(tag, attribute, url)`` triples.

    Covers ``src``/``href``/``srcset`` of loading tags, CSS ``url()``/``@import`` and the usual
    script-side loaders (``import("//...")``, ``x.src = "//..."``, ``fetch``, ``require``). Plain
    ``<a href>`` links are not loads.

    Examples
    --------
    >>> external_loads('<script src="https://cdn.example/x.js"></script><a href="https://x.org">x</a>')
    [('script', 'src', 'https://cdn.example/x.js')]
    """
    finder = _LoadFinder()
    finder.feed(html)
    finder.close()
    return finder.found


_STRIP = [re.compile(r"<script\b[^>]*\bsrc\s*=\s*['\"]?(?:https?:)?//[^>]*>\s*</script>", re.I),
          re.compile(r"<link\b[^>]*\bhref\s*=\s*['\"]?(?:https?:)?//[^>]*>", re.I)]


_STYLE = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.S | re.I)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def _strip_css_comments(html: str) -> str:
    # The inlined JupyterLab CSS is ~270 KB, a good part of it comments (some quoting URLs).
    return _STYLE.sub(lambda m: m.group(1) + _CSS_COMMENT.sub("", m.group(2)) + m.group(3), html)


def _make_offline(html: str) -> str:
    """Strip stray external script/link tags; raise if any other external load remains."""
    html = _strip_css_comments(html)
    for pattern in _STRIP:
        html, n = pattern.subn("", html)
        if n:
            log.warning("removed %d external <script>/<link> load(s) from the report HTML", n)
    left = external_loads(html)
    if left:
        raise ReportError("the report HTML would load from the network: " +
                          ", ".join(f"<{t} {a}={u}>" for t, a, u in left[:5]))
    return html


def _drop_widget_outputs(nb) -> None:
    """Remove outputs that need a live kernel (ipywidgets views) and the saved widget state."""
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        cell.outputs = [o for o in cell.get("outputs", [])
                        if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
    nb.metadata.pop("widgets", None)


def _drop_stderr(nb) -> None:
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell.outputs = [o for o in cell.get("outputs", [])
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]


def export_html(nb, *, with_code: bool = False, title: str | None = None, label: str = "",
                data_span: tuple[str, str] | None = None, lang: str | None = None) -> str:
    """Export an executed notebook (``NotebookNode``) to self-contained, offline HTML text.

    Code cells' inputs and prompts are hidden unless ``with_code``; with code hidden, stderr output
    (warnings) is dropped too. Cells tagged ``remove-cell``, ``remove-input`` or ``remove-output``
    lose that part in either case. The page then gets a manager's navigation
    (:func:`add_navigation`): a linked table of contents, the date it was rendered and
    ``data_span`` (first and last date in the data), and named CSV downloads (``label`` in the name).
    ``lang`` (default: the current language, :mod:`funnelkit.i18n`) sets the page's ``lang``
    attribute and the language of the navigation.
    """
    import copy

    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    nb = copy.deepcopy(nb)
    _drop_widget_outputs(nb)
    if not with_code:
        _drop_stderr(nb)
    if title:
        nb.metadata["title"] = str(title)
    c = Config()
    c.TagRemovePreprocessor.remove_cell_tags = ("remove-cell",)
    c.TagRemovePreprocessor.remove_input_tags = ("remove-input", "hide-input")
    c.TagRemovePreprocessor.remove_all_outputs_tags = ("remove-output",)
    exporter = HTMLExporter(config=c, template_name=TEMPLATE_NAME,
                            extra_template_basedirs=[str(TEMPLATE_DIR)])
    exporter.register_preprocessor(TagRemovePreprocessor(config=c), enabled=True)
    exporter.embed_images = True
    exporter.exclude_input = not with_code
    exporter.exclude_input_prompt = not with_code
    exporter.exclude_output_prompt = not with_code
    exporter.anchor_link_text = ""
    quiet = logging.getLogger("funnelkit.report.nbconvert")
    quiet.setLevel(logging.ERROR)  # e.g. "Alternative text is missing on N image(s)" per chart
    exporter.log = quiet
    with use_language(lang) if lang else contextlib.nullcontext():
        body, _resources = exporter.from_notebook_node(nb, resources={"metadata": {"name": title or _("Report")}})
        body = _HTML_LANG.sub(f'<html lang="{html_lang()}"', body, count=1)
        return _make_offline(add_navigation(body, label=label, data_span=data_span))


_HTML_LANG = re.compile(r'<html lang="[^"]*"')



# --------------------------------------------------------------------------------------------
# A manager's navigation: contents, rendered-on line, named downloads

_H2 = re.compile(r'<h2 id="([^"]+)"[^>]*>(.*?)</h2>', re.S)
_HEADING = re.compile(r'<h[23] id="([^"]+)"', re.S)
_TAG = re.compile(r"<[^>]+>")
_DOWNLOAD = re.compile(r'download="table\.csv"')


def _text(fragment: str) -> str:
    return " ".join(_html.unescape(_TAG.sub("", fragment)).split())


def add_navigation(page: str, *, label: str = "", data_span: tuple[str, str] | None = None,
                   rendered_on: str | None = None) -> str:
    """Add to an exported report: a "Contents" box linking every section (``<h2>``), a line with
    the date it was rendered and the data's date range, placed before the first section, and a
    file name per CSV download (``<label>-<section>.csv``, numbered within a section).

    Examples
    --------
    >>> page = '<body><div class="jp-Cell"><h2 id="Funnel">Funnel</h2></div><a download="table.csv"></a></body>'
    >>> out = add_navigation(page, label="2026Q3", data_span=("2025-01-02", "2026-09-30"),
    ...                      rendered_on="2026-10-01")
    >>> '<a href="#Funnel">Funnel</a>' in out, 'download="2026Q3-Funnel.csv"' in out
    (True, True)
    >>> "Rendered on 2026-10-01" in out and "data from 2025-01-02 to 2026-09-30" in out
    True
    """
    page = _name_downloads(page, label)
    sections = [(ident, _text(inner)) for ident, inner in _H2.findall(page)]
    first = page.find("<h2 id=")
    if first < 0:
        return page
    cell = page.rfind('<div class="jp-Cell', 0, first)
    at = cell if cell >= 0 else first
    when = rendered_on or time.strftime("%Y-%m-%d", time.gmtime())
    meta = escape(_("Rendered on {date}").format(date=when))
    if data_span:
        meta += " · " + escape(_("data from {first} to {last} (first deal created to last event)").format(
            first=data_span[0], last=data_span[1]))
    items = "".join(f'<li><a href="#{escape(ident)}">{escape(text)}</a></li>' for ident, text in sections)
    contents = escape(_("Contents"))
    block = (f'<p class="fk-meta">{meta}</p>'
             f'<nav class="fk-toc" aria-label="{contents}"><p><b>{contents}</b></p><ol>{items}</ol></nav>')
    return page[:at] + block + page[at:]


def _name_downloads(page: str, label: str) -> str:
    marks = [(m.start(), m.group(1)) for m in _HEADING.finditer(page)]
    seen: dict[str, int] = {}
    out, last = [], 0
    for m in _DOWNLOAD.finditer(page):
        section = next((ident for pos, ident in reversed(marks) if pos < m.start()), "table")
        seen[section] = seen.get(section, 0) + 1
        name = "-".join(x for x in (_slug(label) if label else "", _slug(section)) if x)
        name += f"-{seen[section]}" if seen[section] > 1 else ""
        out += [page[last:m.start()], f'download="{escape(name)}.csv"']
        last = m.end()
    return "".join(out) + page[last:]


# --------------------------------------------------------------------------------------------
# Rendering

def default_notebook() -> Path:
    """The report notebook: ``$FUNNELKIT_REPORT_NOTEBOOK``, else the one shipped inside the package
    (``funnelkit/notebooks/quarterly_report.ipynb``; a checkout's ``notebooks/`` links to that folder,
    so an installed wheel and a clone render the same notebook)."""
    env = os.environ.get(NOTEBOOK_ENV)
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parent / "notebooks" / NOTEBOOK_NAME)
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError("report notebook not found; looked at " + ", ".join(map(str, candidates)) +
                            f" (set {NOTEBOOK_ENV} to use another one)")


def _slug(label: str) -> str:
    # letters of any script stay (a Chinese section's CSV is named after it, not "report")
    return re.sub(r"[^\w.-]+", "_", label).strip("._") or "report"


def _parameters(path: Path, period: Period, *, target, stuck_quantile, title, lenient, currency,
                locale=None, lang="en") -> dict:
    is_quarter = bool(re.fullmatch(r"\d{4}Q[1-4]", period.label or ""))
    # locale and lang only when given: a notebook without those parameters renders as before
    return ({"locale": locale} if locale else {}) | ({"lang": lang} if lang != "en" else {}) | {
        "data_path": str(path),
        "quarter": period.label if is_quarter else "",
        "start": "" if is_quarter else period.start.date().isoformat(),
        "end": "" if is_quarter else period.end.date().isoformat(),
        "as_of": "" if period.as_of == period.stop else period.as_of.isoformat(),
        "target": None if target is None else float(target),
        "stuck_quantile": float(stuck_quantile),
        "currency": (currency or "").upper(),
        "title": title or "",
        "lenient": bool(lenient),
    }


def _working_dir(notebook: Path) -> Path:
    # The project root when the notebook lives in <root>/notebooks, so the notebook's own relative
    # defaults (data/sample) resolve as in a checkout; the data path itself is passed absolute.
    folder = notebook.resolve().parent
    return folder.parent if folder.name == "notebooks" else folder


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or (
        isinstance(exc, RuntimeError) and "didn't respond" in str(exc))  # kernel start-up


def _cell_message(nb_path: Path, index: int | None) -> str:
    """Name a cell of the executed notebook by its In [n] number and first line.

    After a failure papermill inserts an error banner cell at the top, so the failed cell is looked
    up by its error output (an index from papermill would be one off)."""
    try:
        import nbformat
        cells = nbformat.read(nb_path, as_version=4).cells
    except Exception:  # noqa: BLE001 - best effort only
        return "" if index is None else f"cell {index}"
    failed = [c for c in cells if c.cell_type == "code"
              and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    if failed:
        cell = failed[-1]
    elif index is not None and 0 <= index < len(cells):
        cell = cells[index]
    else:
        return "" if index is None else f"cell {index}"
    first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
    number = f"In [{cell.execution_count}]" if cell.get("execution_count") else str(cells.index(cell))
    return f"cell {number} ({first[:80]!r})"


def _timeout_cell(nb_path: Path) -> int | None:
    """Index of the cell papermill was running when the render was stopped (from its metadata)."""
    try:
        import nbformat
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # noqa: BLE001
        return None
    # Papermill marks a cell's start_time when it starts it, and after a timeout sets the stopped
    # cell's status to "completed" like the others: the stopped cell is the last one started.
    started = [i for i, cell in enumerate(nb.cells)
               if cell.get("metadata", {}).get("papermill", {}).get("start_time")]
    return started[-1] if started else None


def _execute(notebook: Path, out_nb: Path, params: dict, timeout: int, label: str, lang: str = "en"):
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    kwargs = dict(parameters=params, kernel_name=KERNEL, progress_bar=False, log_output=False,
                  start_timeout=START_TIMEOUT, execution_timeout=int(timeout),
                  cwd=str(_working_dir(notebook)),
                  # the kernel's own start-up warnings (e.g. "running over TCP without encryption"
                  # on loopback) would repeat once per quarter on the terminal; errors still show
                  extra_arguments=["--IPKernelApp.log_level=ERROR"])
    for attempt in (1, 2):
        try:
            started = time.monotonic()
            with warnings.catch_warnings():
                # the temporary output name ends in .tmp, which papermill warns about
                warnings.filterwarnings("ignore", message="The specified file .* does not end in")
                source = (str(notebook) if lang == "en" else    # markdown cells in the report's language
                          translate_notebook(nbformat.read(notebook, as_version=4), lang))
                nb = pm.execute_notebook(source, str(out_nb), **kwargs)
            log.info("%s: executed in %.1f s", label, time.monotonic() - started)
            return nb
        except PapermillExecutionError as exc:
            where = _cell_message(out_nb, exc.cell_index)
            raise ReportError(f"report {label} failed in {where}: {exc.ename}: {exc.evalue}") from exc
        except Exception as exc:  # noqa: BLE001 - timeouts retried, the rest named and re-raised
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise     # the disk is full: the caller names the output; a retry cannot help
            if not _is_timeout(exc):
                where = _cell_message(out_nb, _timeout_cell(out_nb))
                raise ReportError(f"report {label} failed{' in ' + where if where else ''}: "
                                  f"{type(exc).__name__}: {exc}") from exc
            where = _cell_message(out_nb, _timeout_cell(out_nb)) or "kernel start-up"
            if attempt == 1:
                log.warning("report %s: %s timed out after %s s; retrying once", label, where, timeout)
                continue
            raise ReportError(f"report {label} timed out twice in {where} (timeout {timeout} s per "
                              "cell); raise --timeout if the notebook is just slow") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def render_report(path: str | Path, period: PeriodLike, out: str | Path, *, with_code: bool = False,
                  timeout: int = 300, target: float | None = None, stuck_quantile: float = 0.9,
                  title: str | None = None, lenient: bool = False, currency: str | None = None,
                  notebook: str | Path | None = None, locale: str | None = None, lang: str | None = None,
                  _write_rejected: bool = True, _span: tuple[str, str] | None = None) -> Path:
    """Execute the report notebook for ``period`` and export it as self-contained HTML.

    Parameters
    ----------
    path
        The data set folder.
    period
        The reporting period: a :class:`Period`, ``"2026Q3"``, ``"2026-05"``, ``"2026"`` or a
        ``(start, end)`` pair (see :func:`funnelkit.period.as_period`).
    out
        Output folder; gets ``<label>.html`` and the executed ``<label>.ipynb``.
    with_code
        Keep the code cells in the HTML (hidden by default).
    timeout
        Execution timeout per cell, in seconds (must be positive: renders never run unbounded).
        A timed-out render is retried once.
    target, stuck_quantile, title, lenient, currency
        Passed to the notebook's parameters cell.
    locale
        Write numbers, money, percents, days and dates the way this locale does (``"zh_CN"``,
        ``"de_DE"``; :mod:`funnelkit.formatting`). None: funnelkit's plain style.
    lang
        The language of the report's text (``"zh"``: Simplified Chinese; :mod:`funnelkit.i18n`):
        headings, explanations, table headers, chart labels and takeaways. None: English.
    notebook
        Another report notebook with the same parameters (default :func:`default_notebook`).

    Returns
    -------
    Path
        The HTML file.

    Raises
    ------
    ReportError
        The notebook failed (message: period, cell index and first line, exception) or timed out
        twice. No HTML is written; the executed notebook is kept as ``<label>.failed.ipynb``.
    """
    period = as_period(period)
    if not timeout or timeout <= 0:
        raise ArgumentError("timeout must be a positive number of seconds (renders are never unbounded)")
    locale, lang = check_locale(locale), check_language(lang)
    data = Path(path).resolve()
    if not data.is_dir():
        raise FileNotFoundError(f"data set folder not found: {path}")
    _check_out(out, data)
    if lenient and _write_rejected:
        write_rejected_rows(data, out)
    nb_path = Path(notebook) if notebook else default_notebook()
    if not nb_path.is_file():
        raise FileNotFoundError(f"report notebook not found: {nb_path}")
    out = Path(out)
    label = period.label or f"{period.start.date()}_{period.end.date()}"
    slug = _slug(label)
    html_path, ipynb_path, failed_path = (out / f"{slug}.html", out / f"{slug}.ipynb",
                                          out / f"{slug}.failed.ipynb")
    params = _parameters(data, period, target=target, stuck_quantile=stuck_quantile, title=title,
                         lenient=lenient, currency=currency, locale=locale, lang=lang)
    with use_language(lang):
        shown_title = title or _("Sales funnel report {label}").format(label=label)
    with atomic_path(ipynb_path) as tmp_nb:
        try:
            nb = _execute(nb_path, tmp_nb, params, timeout, label, lang)
        except ReportError:
            if tmp_nb.exists() and tmp_nb.stat().st_size:
                try:
                    shutil.copyfile(tmp_nb, failed_path)
                except OSError:      # e.g. the disk is full: the render's own error matters more
                    failed_path.unlink(missing_ok=True)
            raise
        if _span is None:
            _span = _data_span(_load(data, lenient, currency))
        html = export_html(nb, with_code=with_code, title=shown_title, label=label, data_span=_span, lang=lang)
        atomic_write_text(html_path, html)
    if failed_path.exists():
        failed_path.unlink()
    return html_path


def _check_out(out: str | Path, data: Path) -> None:
    from .io import is_inside
    if is_inside(out, data):
        raise ArgumentError(f"--out {out} is inside the data folder {data}: input folders are never "
                         "written to; choose another folder")


def write_rejected_rows(path: str | Path, out: str | Path) -> Path | None:
    """For a lenient render: write the rows a lenient load drops, with their reasons, to
    ``<out>/<data folder name>.rejected.csv`` and log the accounting. None when nothing is dropped."""
    from .loading import validate
    report = validate(path)
    target = Path(out) / f"{Path(path).resolve().name}.rejected.csv"
    if not len(report.rejected):
        # A rejected-rows file from an earlier run would describe data that is no longer there.
        target.unlink(missing_ok=True)
        return None
    written = report.write_rejected(target)
    accounts = "; ".join(f"{Path(a.file).name}: {a.read} read = {a.loaded} loaded + {a.rejected} rejected"
                         for a in report.accounts.values())
    log.warning("lenient: %s; rejected rows with their reasons in %s", accounts, written)
    return written


def _load(path: Path, lenient: bool, currency: str | None):
    from .loading import load
    ds = load(path, errors="report" if lenient else "raise")
    return ds.in_currency(currency) if currency else ds


def _data_span(ds) -> tuple[str, str] | None:
    """First ``created_at`` and last event (creation, close or stage entry) in the data, as dates."""
    d = ds.deals
    times = [d["created_at"].min(), d["created_at"].max(), d["closed_at"].max(),
             ds.stage_history["entered_at"].max() if len(ds.stage_history) else None]
    times = [t for t in times if t is not None and t == t]  # drop NaT
    return (str(min(times).date()), str(max(times).date())) if times else None


def _quarters_in(ds, path: Path) -> list[str]:
    d = ds.deals
    times = [d["created_at"].min(), d["created_at"].max(), d["closed_at"].min(), d["closed_at"].max()]
    times = [t for t in times if t is not None and t == t]  # drop NaT
    if not times:
        raise ArgumentError(f"no dated deals in {path}: nothing to render")
    return quarters_between(min(times), max(times))


def render_all_quarters(path: str | Path, out: str | Path, *, with_code: bool = False,
                        timeout: int = 300, target: float | None = None, stuck_quantile: float = 0.9,
                        title: str | None = None, lenient: bool = False, currency: str | None = None,
                        notebook: str | Path | None = None, quarters: list[str] | None = None,
                        progress: bool = True, locale: str | None = None, lang: str | None = None) -> Path:
    """Render every quarter in the data (first ``created_at`` to last ``created_at``/``closed_at``).

    A failed quarter does not stop the others: each is rendered, ``index.html`` links the reports
    that succeeded and lists the failures, and then :class:`ReportError` is raised naming every
    failed quarter (so the CLI exits non-zero). ``quarters`` restricts the run to those labels.

    Returns
    -------
    Path
        ``<out>/index.html``.
    """
    locale, lang = check_locale(locale), check_language(lang)
    data = Path(path)
    if not data.is_dir():
        raise FileNotFoundError(f"data set folder not found: {path}")
    _check_out(out, data)
    ds = _load(data, lenient, currency)
    found, span = _quarters_in(ds, data), _data_span(ds)
    if lenient:
        write_rejected_rows(data, out)          # once for the whole run, not once per quarter
    labels = quarters or found
    from tqdm.auto import tqdm

    outcome = RenderOutcome()
    # disable=None: a bar on a terminal, none in a log file (CI) where it would print \r frames.
    bar = tqdm(labels, desc="rendering quarters", unit="quarter", disable=None if progress else True)
    for label in bar:
        bar.set_postfix_str(label)
        try:
            html = render_report(data, Period.quarter(label), out, with_code=with_code, timeout=timeout,
                                 target=target, stuck_quantile=stuck_quantile, title=title,
                                 lenient=lenient, currency=currency, notebook=notebook,
                                 locale=locale, lang=lang, _write_rejected=False, _span=span)
            outcome.rendered.append((label, html))
        except ReportError as exc:
            log.error("%s", exc)
            outcome.failed.append(RenderFailure(label, str(exc)))
    bar.close()
    with use_language(lang):
        index = write_index(Path(out), ds, outcome, title, span)
    if outcome.failed:
        raise ReportError(f"{len(outcome.failed)} of {len(labels)} quarters failed: " +
                          "; ".join(f.message for f in outcome.failed) + f" (index: {index})")
    return index


def quarter_headlines(ds, labels: list[str]) -> pd.DataFrame:
    """Each quarter's headline numbers, one row per quarter label, for the index page.

    ``won_amount`` (sum of the known amounts of deals won in the quarter; NaN when every won deal's
    amount is unknown), ``won_deals``, ``won_unknown`` (won deals of unknown amount), ``win_rate``
    (:func:`funnelkit.metrics.size.win_rate`), ``open_deals``, ``open_amount`` and ``open_unknown``
    (deals open at the quarter's end; amount as for won; 0 when there are no such deals). Each
    quarter is seen as of its end.
    """
    from .history import deals_as_of
    from .metrics.closing import closed_in_period
    from .metrics.size import win_rate

    rows = []
    for label in labels:
        q = Period.quarter(label)
        closed = closed_in_period(ds, q)
        won = closed.loc[closed["status"].astype(str) == "won", "amount"].astype(float)
        d = deals_as_of(ds, q.as_of)
        open_amounts = d.loc[d["status_as_of"].astype(str) == "open", "amount"].astype(float)
        # nothing won is 0; won deals none of whose amounts is known is unknown (NaN)
        rows.append({"quarter": label, "won_amount": won.sum(min_count=1) if len(won) else 0.0,
                     "won_deals": len(won), "won_unknown": int(won.isna().sum()), "win_rate": win_rate(ds, q),
                     "open_deals": len(open_amounts),
                     "open_amount": open_amounts.sum(min_count=1) if len(open_amounts) else 0.0,
                     "open_unknown": int(open_amounts.isna().sum())})
    return pd.DataFrame(rows, columns=["quarter", "won_amount", "won_deals", "won_unknown", "win_rate",
                                       "open_deals", "open_amount", "open_unknown"])


def _amount_cell(amount: float, deals: int, unknown: int, currency: str) -> str:
    from .plot import money
    if deals == 0:
        return escape(_("{n} deals").format(n=0))
    n = f"{deals:,}"
    if unknown == deals:
        return f"{escape(_('unknown'))}<br><small>{escape(_('{n} deals, no amount known').format(n=n))}</small>"
    text = money(amount, currency)
    note = (_("{n} deals, {unknown} of unknown amount ({pct})").format(
        n=n, unknown=f"{unknown:,}", pct=f"{100 * unknown / deals:.0f}%") if unknown else _("{n} deals").format(n=n))
    return f"{escape(text)}<br><small>{escape(note)}</small>"


def _trend_chart(h: pd.DataFrame, currency: str) -> str:
    """A small three-panel trend (won amount, win rate, open pipeline per quarter) as an <img>, its
    labels (Chinese with ``--lang zh``) drawn with the font fallback chain of :mod:`funnelkit.fonts`."""
    import matplotlib
    matplotlib.use("Agg")

    from . import fonts
    with matplotlib.rc_context({"font.family": fonts.font_chain()}):
        return _trend_img(h, currency)


def _trend_img(h: pd.DataFrame, currency: str) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    from .plot import money_axis, chart_alt_text, png_data_uri
    x = np.arange(len(h))
    fig, axes = plt.subplots(1, 3, figsize=(max(7.5, 1.0 + 0.55 * len(h) * 3), 2.3), dpi=90)
    panels = (("won_amount", _("Won amount ({currency})").format(currency=currency), True),
              ("win_rate", _("Win rate"), False),
              ("open_amount", _("Open pipeline at quarter end ({currency})").format(currency=currency), True))
    step = max(1, int(np.ceil(len(h) / 8)))
    for ax, (col, name, is_money) in zip(axes, panels):
        v = pd.to_numeric(h[col], errors="coerce").to_numpy(dtype=float)
        ax.plot(x, v, marker="o", color="#4C72B0", lw=1.5)
        for xi in x[~np.isfinite(v)]:      # unknown is shown as unknown, not as a zero
            ax.annotate("?", (xi, 0), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                        color="#C44E52", fontsize=9)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(x[::step], labels=h["quarter"].tolist()[::step], fontsize=7.5)
        ax.tick_params(axis="y", labelsize=7.5)
        if is_money:
            money_axis(ax, currency)
        else:
            from matplotlib.ticker import PercentFormatter
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        finite = v[np.isfinite(v)]
        ax.set_ylim(0, (finite.max() * 1.15) if len(finite) and finite.max() > 0 else 1)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(_("Quarter by quarter (? = unknown)"), fontsize=10, fontweight="bold")
    fig.tight_layout()
    alt = chart_alt_text(fig, _("Won amount, win rate and open pipeline amount for each quarter, "
                                "oldest left; the table below has the exact numbers."))
    return f'<img class="trend" src="{png_data_uri(fig)}" alt="{escape(alt)}">'


def write_index(out: Path, ds, outcome: RenderOutcome, title: str | None,
                span: tuple[str, str] | None = None) -> Path:
    """Write ``<out>/index.html``: each rendered quarter's headline numbers side by side (columns
    linking to the reports; unknown amounts said so), a small trend chart, the list of reports and
    the failures. ``span`` is the data's first and last date."""
    from urllib.parse import quote

    def dates(label: str, broken: bool = False) -> str:
        p = Period.quarter(label)
        text = escape(_("{start} to {end}").format(start=p.start.date(), end=p.end.date()))
        end = str(p.end.date())
        at = text.rfind(end)
        return text[:at].rstrip() + "<br>" + text[at:] if broken and at > 0 else text

    name, currency = ds.name, ds.currency
    heading = title or _("{name}: quarterly sales funnel reports").format(name=name)
    links = {label: p.name for label, p in outcome.rendered}
    labels = [label for label, _p in outcome.rendered]
    h = quarter_headlines(ds, labels)
    head = "".join(f'<th scope="col"><a href="{escape(quote(links[q]))}">{escape(q)}</a>'
                   f'<br><small>{dates(q, broken=True)}</small></th>' for q in labels)
    won = "".join(f"<td>{_amount_cell(r.won_amount, r.won_deals, r.won_unknown, currency)}</td>"
                  for r in h.itertuples())
    t = {k: escape(v) for k, v in dict(
        none=_("no deal closed"), quarter=_("Quarter"), won=_("Won amount"), won_note=_("deals won in the quarter"),
        rate=_("Win rate"), rate_note=_("won / (won + lost), deals closed in the quarter"),
        pipe=_("Open pipeline"), pipe_note=_("deals open at the quarter's end"),
        nothing=_("No quarter was rendered."), headline=_("Headline numbers, quarter by quarter"),
        reports=_("Reports"), failed=_("Failed")).items()}
    rate = "".join("<td>" + (f"-<br><small>{t['none']}</small>" if r.win_rate is None or r.win_rate != r.win_rate
                             else f"{100 * r.win_rate:.1f}%") + "</td>" for r in h.itertuples())
    pipe = "".join(f"<td>{_amount_cell(r.open_amount, r.open_deals, r.open_unknown, currency)}</td>"
                   for r in h.itertuples())
    table = (f'<div class="scroll"><table><thead><tr><th scope="col">{t["quarter"]}</th>{head}</tr></thead><tbody>'
             f'<tr><th scope="row">{t["won"]}<br><small>{t["won_note"]}</small></th>{won}</tr>'
             f'<tr><th scope="row">{t["rate"]}<br><small>{t["rate_note"]}</small></th>'
             f'{rate}</tr>'
             f'<tr><th scope="row">{t["pipe"]}<br><small>{t["pipe_note"]}</small></th>{pipe}</tr>'
             f"</tbody></table></div>") if labels else f"<p>{t['nothing']}</p>"
    trend = _trend_chart(h, currency) if len(labels) > 1 else ""
    failed = "\n".join(f"  <li>{escape(f.label)}: {escape(f.message)}</li>" for f in outcome.failed)
    meta = escape(_("Rendered on {date}").format(date=time.strftime('%Y-%m-%d', time.gmtime())))
    if span:
        meta += " · " + escape(_("data from {first} to {last}").format(first=span[0], last=span[1]))
    meta += " · " + escape(_("amounts in {currency}").format(currency=currency)) + " · " + escape(
        _("each quarter as seen at its end"))
    reports = "\n".join(f'  <li><a href="{escape(quote(p.name))}">{escape(label)}</a> '
                        f'<span class="dates">{dates(label)}</span></li>' for label, p in outcome.rendered)
    page = f"""<!DOCTYPE html>
<html lang="{html_lang()}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(heading)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;line-height:1.45}}
.meta{{color:#555}}.failed li{{color:#a00}}.dates{{color:#666;margin-left:.5em}}
.scroll{{max-width:100%;overflow-x:auto}}table{{border-collapse:collapse;font-size:.92em}}
th,td{{border-bottom:1px solid #ddd;padding:.35em .7em;text-align:right;vertical-align:top}}
th[scope=row]{{text-align:left;font-weight:600;min-width:11em}}small{{color:#666;font-weight:normal}}
thead small{{white-space:nowrap}}
img.trend{{max-width:100%;height:auto;margin:.5em 0 1em 0}}
@media print{{th,td{{font-size:9pt}}.scroll{{overflow:visible}}table,img{{break-inside:avoid}}}}</style></head>
<body>
<h1>{escape(heading)}</h1>
<p class="meta">{meta}</p>
<h2>{t["headline"]}</h2>
{trend}
{table}
<h2>{t["reports"]}</h2>
<ul class="reports">
{reports}
</ul>
{f"<h2>{t['failed']}</h2><ul class='failed'>" + chr(10) + failed + chr(10) + "</ul>" if failed else ""}
</body>
</html>
"""
    return atomic_write_text(out / "index.html", page)
