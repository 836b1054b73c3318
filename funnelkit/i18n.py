"""The language of reports and the explorer: English source text, translated through gettext catalogs.

Every sentence a reader sees is written in English in the code, marked with :func:`_` (or
:func:`ngettext` when it depends on a count, :func:`N_` where it is only stored to be translated
later), extracted by Babel into ``funnelkit/locale/messages.pot`` (``make messages``) and translated
in ``funnelkit/locale/<lang>/LC_MESSAGES/messages.po``. The compiled ``messages.mo`` next to each
``.po`` is committed and shipped as package data, so a fresh clone and an installed wheel translate
alike (``make messages`` recompiles it; a test checks it matches the ``.po``).

The language is set once per report or explorer (:func:`set_language`); English, the default, is
the source text itself. Sentences are whole messages with named placeholders, filled in after
translation, so each language orders the words its own way::

    _("{stage} loses {pct} of deals").format(stage=name, pct=pct(0.4))

Markdown cells of the report notebook are translated whole at render time (:func:`translate_notebook`);
:func:`extract_notebook` is the Babel extractor that collects them (and the marked strings of its
code cells).

Examples
--------
>>> with use_language("zh"):
...     _("Win rate")
'赢单率'
>>> _("Win rate")
'Win rate'
"""

from __future__ import annotations

import contextlib
import gettext
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ArgumentError

__all__ = ["LANGUAGES", "LOCALE_DIR", "DOMAIN", "set_language", "get_language", "use_language", "check_language",
           "_", "gettext_", "ngettext", "N_", "html_lang", "translate_notebook", "extract_notebook",
           "catalog_problems", "compile_catalogs"]

#: Where the catalogs live: ``<LOCALE_DIR>/<lang>/LC_MESSAGES/<DOMAIN>.mo``.
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
#: The languages a report can be written in (English is the source text).
LANGUAGES = ("en", "zh")
#: The HTML ``lang`` attribute of each language.
_HTML_LANG = {"en": "en", "zh": "zh-Hans"}

_current = "en"
_catalog: gettext.NullTranslations = gettext.NullTranslations()


def check_language(lang: str | None) -> str:
    """``lang`` as funnelkit names it (``"zh"`` for ``zh``, ``zh_CN``, ``zh-Hans``; ``"en"`` for None or "").

    Raises
    ------
    ValueError
        No catalog for that language, naming the ones there are.

    Examples
    --------
    >>> check_language("zh-CN"), check_language(None)
    ('zh', 'en')
    """
    if not lang:
        return "en"
    base = str(lang).replace("-", "_").split("_")[0].lower()
    if base not in LANGUAGES:
        raise ArgumentError(f"no translation for language {lang!r}: choose one of {', '.join(LANGUAGES)}")
    return base


def set_language(lang: str | None) -> None:
    """Translate everything that follows into ``lang`` (``"zh"``); None, ``""`` or ``"en"``: English.

    Examples
    --------
    >>> set_language("zh"); _("Stage")
    '阶段'
    >>> set_language(None); _("Stage")
    'Stage'
    """
    global _current, _catalog
    _current = check_language(lang)
    _catalog = _load(_current)


def get_language() -> str:
    """The language set by :func:`set_language` (``"en"`` by default)."""
    return _current


@contextlib.contextmanager
def use_language(lang: str | None) -> Iterator[None]:
    """Translate into ``lang`` inside a ``with`` block, then restore the previous language."""
    previous = _current
    set_language(lang)
    try:
        yield
    finally:
        set_language(previous)


def _(message: str) -> str:
    """``message`` (English) in the current language; the message itself when it has no translation."""
    return _catalog.gettext(message)


#: :func:`_` under a name that does not clash with IPython's ``_`` (the last output) in notebooks.
gettext_ = _


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural message for ``n``, in the current language (Chinese has one form).

    Examples
    --------
    >>> ngettext("{n} deal", "{n} deals", 2).format(n=2)
    '2 deals'
    """
    return _catalog.ngettext(singular, plural, int(n))


def N_(message: str) -> str:
    """Mark ``message`` for translation without translating it now (it is translated where it is shown)."""
    return message


def html_lang(lang: str | None = None) -> str:
    """The ``lang`` attribute of an HTML page in ``lang`` (default: the current language).

    Examples
    --------
    >>> html_lang("zh"), html_lang("en")
    ('zh-Hans', 'en')
    """
    return _HTML_LANG[check_language(lang) if lang else _current]


def _load(lang: str) -> gettext.NullTranslations:
    if lang == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=str(LOCALE_DIR), languages=[lang])


# ------------------------------------------------------------------------------- notebooks

def _markdown_message(source: str) -> str:
    return source.strip()


def translate_notebook(nb: Any, lang: str | None = None) -> Any:
    """A copy of the notebook (``nbformat`` node) with every markdown cell translated into ``lang``
    (default: the current language) as one message; cells without a translation stay as they are.
    """
    import copy

    out = copy.deepcopy(nb)
    catalog = _load(check_language(lang) if lang else _current)
    for cell in out.cells:
        if cell.get("cell_type") == "markdown":
            message = _markdown_message(cell.source)
            if message:
                cell.source = catalog.gettext(message)
    return out


def extract_notebook(fileobj, keywords, comment_tags, options):
    """Babel extractor for ``.ipynb`` files: each markdown cell as one message, and the marked
    strings (``fki.gettext_(...)``, ``ngettext``) of the code cells, with their line in the cell.

    Named in ``babel.cfg`` as ``[funnelkit.i18n:extract_notebook: **.ipynb]``.
    """
    import io

    from babel.messages.extract import extract_python

    nb = json.loads(fileobj.read().decode("utf-8"))
    for index, cell in enumerate(nb.get("cells", [])):
        source = "".join(cell.get("source", ""))
        if cell.get("cell_type") == "markdown":
            message = _markdown_message(source)
            if message:
                yield index + 1, None, message, [f"markdown cell {index}"]
        elif cell.get("cell_type") == "code":
            for lineno, funcname, messages, comments in extract_python(
                    io.BytesIO(source.encode("utf-8")), keywords, comment_tags, options):
                yield index + 1, funcname, messages, comments + [f"code cell {index}, line {lineno}"]


# ------------------------------------------------------------------------------- catalogs

def _po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def _fields(text: str) -> list[str]:
    """The ``{name}`` fields of a message (what ``.format`` fills in), sorted."""
    import string

    try:
        return sorted(f for _t, f, _s, _c in string.Formatter().parse(text) if f is not None)
    except ValueError:          # unbalanced braces: reported as a field of its own
        return ["<unbalanced braces>"]


def catalog_problems(lang: str) -> list[str]:
    """What is wrong with the ``lang`` catalog, one line per entry: untranslated, fuzzy, or a
    translation whose ``{fields}`` differ from the English message (``.format`` would fail or
    drop a value). Empty when the catalog is complete.

    Examples
    --------
    >>> catalog_problems("zh")
    []
    """
    from babel.messages.pofile import read_po

    with open(_po_path(lang), "rb") as f:
        catalog = read_po(f)
    out = []
    for m in catalog:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, (tuple, list)) else (m.id,)
        strings = m.string if isinstance(m.string, (tuple, list)) else (m.string,)
        where = ", ".join(f"{p}:{n}" for p, n in m.locations[:2])
        if "fuzzy" in m.flags:
            out.append(f"fuzzy: {ids[0]!r} ({where})")
        elif not all(strings):
            out.append(f"untranslated: {ids[0]!r} ({where})")
        elif any(_fields(s) != _fields(ids[-1]) for s in strings):
            out.append(f"fields differ: {ids[0]!r} -> {strings[0]!r} ({where})")
    return out


def compile_catalogs() -> list[Path]:
    """Compile every language's ``messages.po`` into the ``messages.mo`` next to it (``make messages``).

    Babel's own ``compile`` reads ``80% range`` as a ``%``-format placeholder and refuses the
    Chinese text; funnelkit's messages use ``{name}`` fields only, checked by :func:`catalog_problems`.
    Fuzzy entries are left out (shown in English).
    """
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for lang in LANGUAGES:
        po = _po_path(lang)
        if not po.is_file():
            continue
        with open(po, "rb") as f:
            catalog = read_po(f)
        mo = po.with_suffix(".mo")
        with open(mo, "wb") as f:
            write_mo(f, catalog, use_fuzzy=False)
        written.append(mo)
    return written
