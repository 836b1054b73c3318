"""Fonts for chart labels in any script: a per-glyph fallback chain over the fonts on this machine.

Matplotlib (3.11 and later) draws each character with the first font of ``font.family`` that has
it, and shapes the text with libraqm: Arabic letters join, Arabic and Hebrew run right to left,
Devanagari forms its conjuncts. This module picks, for every script a CRM export is likely to
name things in, an installed font that has it (Noto on Linux, the system fonts on macOS and
Windows), and lists only fonts that exist, so matplotlib never logs "font family not found".

When a label uses a script no installed font has, matplotlib warns once per missing character.
:func:`note_missing_scripts` turns those warnings into one :class:`MissingFontWarning` per script,
naming the package to install.

Examples
--------
>>> chain = font_chain()
>>> chain[0]
'sans-serif'
>>> script_of("线")
'Chinese'
>>> script_of("न")
'Devanagari'
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import FunnelkitWarning

__all__ = ["ScriptFonts", "SCRIPTS", "MissingFontWarning", "font_chain", "missing_scripts",
           "script_of", "install_hint", "note_missing_scripts"]


class MissingFontWarning(FunnelkitWarning):
    """Chart labels use a script that no installed font can draw."""


@dataclass(frozen=True)
class ScriptFonts:
    """A script, a few of its letters, the families that draw it and the packages that install one."""

    name: str
    sample: str
    families: tuple[str, ...]
    debian: str
    conda: str


_CJK_DEBIAN, _CJK_CONDA = "fonts-noto-cjk", "font-ttf-noto-cjk"
_NOTO_DEBIAN, _NOTO_CONDA = "fonts-noto-core", "font-ttf-noto"
_CJK = ("Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK JP", "Noto Sans CJK KR",
        "Source Han Sans SC", "Source Han Sans", "Noto Sans SC")

#: The scripts whose labels must render, in the order their fonts join the chain. Each lists the
#: families tried for it (Linux, then macOS, then Windows); the first installed one that has the
#: sample letters is used unless a font earlier in the chain has them already.
SCRIPTS: tuple[ScriptFonts, ...] = (
    ScriptFonts("Chinese", "线索资格确認報價", _CJK + ("PingFang SC", "Hiragino Sans GB",
                "Microsoft YaHei", "Microsoft JhengHei", "WenQuanYi Zen Hei", "Droid Sans Fallback"),
                _CJK_DEBIAN, _CJK_CONDA),
    ScriptFonts("Japanese", "ひらがなカタカナ", _CJK + ("Hiragino Sans", "Yu Gothic", "Meiryo",
                "MS Gothic"), _CJK_DEBIAN, _CJK_CONDA),
    ScriptFonts("Korean", "협상한국", _CJK + ("Apple SD Gothic Neo", "AppleGothic", "Malgun Gothic"),
                _CJK_DEBIAN, _CJK_CONDA),
    ScriptFonts("Cyrillic", "ПродажаЖё", ("DejaVu Sans", "Noto Sans", "Arial", "Segoe UI"),
                _NOTO_DEBIAN, _NOTO_CONDA),
    ScriptFonts("Greek", "Ελλάδαω", ("DejaVu Sans", "Noto Sans", "Arial", "Segoe UI"),
                _NOTO_DEBIAN, _NOTO_CONDA),
    ScriptFonts("Arabic", "مرحبابالعال", ("Noto Sans Arabic", "DejaVu Sans", "Geeza Pro", "Arial",
                "Segoe UI"), _NOTO_DEBIAN, _NOTO_CONDA),
    ScriptFonts("Hebrew", "שלוםעולם", ("Noto Sans Hebrew", "DejaVu Sans", "Arial Hebrew", "Arial",
                "Segoe UI"), _NOTO_DEBIAN, _NOTO_CONDA),
    ScriptFonts("Devanagari", "नमस्तेक", ("Noto Sans Devanagari", "Kohinoor Devanagari",
                "Devanagari Sangam MN", "Nirmala UI", "Mangal"), _NOTO_DEBIAN, _NOTO_CONDA),
)

_GLYPH_WARNING = re.compile(r"Glyph (\d+) \(.*\) missing from font")
# Unicode character names that start with these words belong to these scripts.
_SCRIPT_NAMES = {"CJK": "Chinese", "HIRAGANA": "Japanese", "KATAKANA": "Japanese",
                 "HANGUL": "Korean", "CYRILLIC": "Cyrillic", "GREEK": "Greek", "ARABIC": "Arabic",
                 "HEBREW": "Hebrew", "DEVANAGARI": "Devanagari"}


def font_chain() -> list[str]:
    """The ``font.family`` list for charts: the theme's sans-serif font, then one font per script.

    Only installed families are listed. When a script finds no font, matplotlib's font list is
    refreshed once from the system's fonts (fonts installed after matplotlib built its cache).

    Examples
    --------
    >>> "sans-serif" in font_chain()
    True
    """
    chain, missing = _chain()
    if missing and _add_new_system_fonts():
        _chain.cache_clear()
        chain, missing = _chain()
    return list(chain)


def missing_scripts() -> list[str]:
    """Names of the scripts in :data:`SCRIPTS` that no installed font draws (empty when all render).

    Examples
    --------
    >>> isinstance(missing_scripts(), list)
    True
    """
    font_chain()
    return list(_chain()[1])


def script_of(char: str) -> str:
    """The script a character belongs to, from its Unicode name (``"Chinese"``, ``"Arabic"`` ...).

    Examples
    --------
    >>> script_of("ש"), script_of("Ж"), script_of("ክ")
    ('Hebrew', 'Cyrillic', 'Ethiopic')
    """
    name = unicodedata.name(char, "")
    if not name:
        return f"U+{ord(char):04X}"
    first = name.split()[0]
    return _SCRIPT_NAMES.get(first, first.title())


def install_hint(script: str) -> str:
    """What to install so that labels in ``script`` render.

    Examples
    --------
    >>> install_hint("Chinese")
    'fonts-noto-cjk (Debian/Ubuntu) or font-ttf-noto-cjk (conda-forge)'
    """
    for entry in SCRIPTS:
        if entry.name == script:
            return f"{entry.debian} (Debian/Ubuntu) or {entry.conda} (conda-forge)"
    return (f"a Noto Sans {script} font: {_NOTO_DEBIAN} or fonts-noto-extra (Debian/Ubuntu), "
            f"{_NOTO_CONDA} (conda-forge)")


def note_missing_scripts() -> None:
    """Replace matplotlib's per-character "Glyph ... missing" warnings by one note per script.

    Installed once per process (calling it again does nothing). Every other warning keeps the
    handling it had. The note is a :class:`MissingFontWarning` naming the script and the package
    that brings a font for it.

    Examples
    --------
    >>> note_missing_scripts()
    >>> note_missing_scripts()  # idempotent
    """
    if getattr(warnings.showwarning, "_funnelkit_glyph_notes", False):
        return
    previous = warnings.showwarning
    noted: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        match = _GLYPH_WARNING.match(str(message))
        if match is None:
            return previous(message, category, filename, lineno, file, line)
        script = script_of(chr(int(match.group(1))))
        if script not in noted:
            noted.add(script)
            warnings.warn(_missing_note(script), MissingFontWarning, stacklevel=1)
        return None

    show._funnelkit_glyph_notes = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def _missing_note(script: str) -> str:
    if script in {entry.name for entry in SCRIPTS}:
        return (f"Chart labels in {script} script cannot be drawn: no installed font has it. "
                f"Install {install_hint(script)}, then restart the kernel.")
    covered = ", ".join(entry.name for entry in SCRIPTS)
    return (f"Chart labels in {script} script cannot be drawn: the chart fonts cover Latin, {covered}. "
            f"Install a font for it ({install_hint(script)}) and append its family to "
            "matplotlib.rcParams['font.family'] after funnelkit.plot.set_theme().")


@lru_cache(maxsize=1)
def _chain() -> tuple[tuple[str, ...], tuple[str, ...]]:
    chain = ["sans-serif"]
    files = [_font_file("sans-serif")]
    missing = []
    for entry in SCRIPTS:
        if any(_covers(f, entry.sample) for f in files):
            continue
        found = next(((family, f) for family in entry.families
                      if _covers(f := _font_file(family), entry.sample)), None)
        if found is None:
            missing.append(entry.name)
        elif found[0] not in chain:
            chain.append(found[0])
            files.append(found[1])
    return tuple(chain), tuple(missing)


def _font_file(family: str):
    """The font file matplotlib uses for ``family`` (a path with a face index), or None."""
    from matplotlib import font_manager

    try:
        return font_manager.fontManager.findfont(font_manager.FontProperties(family=[family]),
                                                 fallback_to_default=False)
    except ValueError:
        return None


def _covers(path, sample: str) -> bool:
    """Whether the font file (None: no font) has a glyph for every character of ``sample``."""
    return path is not None and _has_glyphs(str(path), getattr(path, "face_index", 0), sample)


@lru_cache(maxsize=64)
def _has_glyphs(path: str, face_index: int, sample: str) -> bool:
    from matplotlib import ft2font

    try:
        font = ft2font.FT2Font(path, face_index=face_index)
    except (OSError, RuntimeError, ValueError):
        return False
    return all(font.get_char_index(ord(c)) for c in sample)


def _add_new_system_fonts() -> bool:
    """Add the system's font files that matplotlib's cached list lacks; True when any was added.

    The refreshed list is written back to matplotlib's cache file, so the next process starts
    with it.
    """
    from matplotlib import font_manager, get_cachedir

    known = {str(Path(f.fname)) for f in font_manager.fontManager.ttflist}
    added = False
    for path in font_manager.findSystemFonts():
        if str(Path(path)) in known:
            continue
        try:
            font_manager.fontManager.addfont(path)
            added = True
        except (OSError, RuntimeError, ValueError):
            continue
    if added:
        cache = Path(get_cachedir(), f"fontlist-v{font_manager.FontManager.__version__}.json")
        try:
            font_manager.json_dump(font_manager.fontManager, cache)
        except OSError:
            pass
    return added
