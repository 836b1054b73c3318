"""Small file helpers shared by the loader, the importers and the report renderer.

Outputs are written atomically: to a temporary name in the same folder, then renamed, so a reader
never sees a half-written file and a failure leaves nothing behind. A temporary file left by a
killed process (its lock released with the process) is removed by the next write to the same target.

Inputs are checked before they are opened: only regular files are read (not a device such as
``/dev/zero``, a FIFO or a socket, which could fill memory or hang), and only up to a size bound.
Settings files (``pipeline.yml``, stage and column maps) are small YAML read without aliases.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml

from .errors import ArgumentError, FunnelkitError

__all__ = ["atomic_write_text", "atomic_write_bytes", "atomic_path", "is_inside", "InputRefused",
           "check_input_file", "max_input_bytes", "read_settings_yaml", "MAX_SETTINGS_BYTES",
           "DEFAULT_MAX_INPUT_BYTES", "AliasRefused", "remove_stale_temp_files"]

#: Default bound on one input table (deals, stage history, an export): 2 GiB. Override it with the
#: environment variable ``FUNNELKIT_MAX_INPUT_BYTES`` (bytes, or with a K/M/G suffix, e.g. ``8G``).
DEFAULT_MAX_INPUT_BYTES = 2 * 1024**3
#: Bound on a settings file (pipeline.yml, a stage map, a column map): 1 MiB.
MAX_SETTINGS_BYTES = 1024**2
#: A temporary file younger than this is never taken as stale (it may be about to be locked).
_STALE_AFTER_S = 5.0


class InputRefused(FunnelkitError, ValueError):
    """An input file funnelkit will not read; ``str()`` is the reason (without the path)."""


# --------------------------------------------------------------------------------------------
# Inputs

def max_input_bytes() -> int:
    """The bound on one input table: ``$FUNNELKIT_MAX_INPUT_BYTES`` or :data:`DEFAULT_MAX_INPUT_BYTES`.

    Examples
    --------
    >>> max_input_bytes() >= 1024**2
    True
    """
    raw = os.environ.get("FUNNELKIT_MAX_INPUT_BYTES", "").strip()
    if not raw:
        return DEFAULT_MAX_INPUT_BYTES
    m = re.fullmatch(r"(\d+)\s*([kKmMgG]?)i?[bB]?", raw)
    if not m:
        raise ArgumentError(f"FUNNELKIT_MAX_INPUT_BYTES={raw!r} is not a size (bytes, or e.g. 500M, 8G)")
    return int(m.group(1)) * 1024 ** " KMG".index(m.group(2).upper() or " ")


def check_input_file(path: str | Path, limit: int | None = None) -> None:
    """Refuse, before opening it, a file that is not a regular file or is larger than ``limit``.

    A symbolic link is followed (a link to a regular file is fine; one to ``/dev/zero`` is not).
    ``limit`` defaults to :func:`max_input_bytes`.

    Raises
    ------
    InputRefused
        With the reason: not a regular file (device, FIFO, socket, folder), or too large.
    OSError
        When the file cannot be examined (missing, no permission).

    Examples
    --------
    >>> check_input_file("/dev/zero")
    Traceback (most recent call last):
    ...
    funnelkit.io.InputRefused: not a regular file but a character device: give a saved file
    """
    st = os.stat(path)               # follows links; never opens (a FIFO would block)
    if not stat.S_ISREG(st.st_mode):
        raise InputRefused(f"not a regular file but {_kind(st.st_mode)}: give a saved file")
    limit = max_input_bytes() if limit is None else limit
    if st.st_size > limit:
        raise InputRefused(
            f"file is {st.st_size:,} bytes, more than the {limit:,}-byte limit on an input file; "
            "set FUNNELKIT_MAX_INPUT_BYTES (e.g. 8G) to read larger files")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def read_settings_yaml(path: str | Path) -> object:
    """Parse a small YAML settings file (regular, at most :data:`MAX_SETTINGS_BYTES`, no aliases).

    YAML anchors and aliases (``&a`` / ``*a``) are refused: a few hundred bytes of nested aliases
    expand to gigabytes ("billion laughs"), and a settings file has no need for them.

    Raises
    ------
    InputRefused
        Not a regular file, or too large.
    yaml.YAMLError
        Not valid YAML; :class:`AliasRefused` (a ``yaml.YAMLError``) for an anchor or alias.
    UnicodeDecodeError, OSError
        Not UTF-8; cannot be read.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.yml"
    >>> _ = p.write_text("a: &x [1]\\nb: *x\\n")
    >>> read_settings_yaml(p)
    Traceback (most recent call last):
    ...
    funnelkit.io.AliasRefused: YAML anchors and aliases (&x, *x) are not accepted in a settings file (a few bytes of them can expand to gigabytes); write the values out
    """
    check_input_file(path, MAX_SETTINGS_BYTES)
    with open(path, "rb") as fh:
        data = fh.read(MAX_SETTINGS_BYTES + 1)
    if len(data) > MAX_SETTINGS_BYTES:     # grew since it was examined
        raise InputRefused(f"file is more than the {MAX_SETTINGS_BYTES:,}-byte limit on a settings file")
    return yaml.load(data.decode("utf-8-sig"), Loader=_SettingsLoader)  # noqa: S506 - a SafeLoader


class AliasRefused(FunnelkitError, yaml.YAMLError):
    """A YAML anchor or alias in a settings file (``problem_mark`` is where it is)."""

    def __init__(self, mark, name: str):
        self.problem_mark, self.name = mark, name
        super().__init__(f"YAML anchors and aliases (&{name}, *{name}) are not "
                         "accepted in a settings file (a few bytes of them can expand to gigabytes); "
                         "write the values out")


class _SettingsLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing any anchor (and so any alias) before it is composed."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise AliasRefused(event.start_mark, anchor)
        return super().compose_node(parent, index)


# --------------------------------------------------------------------------------------------
# Outputs

@contextmanager
def atomic_path(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds.

    The temporary file is named ``.<target name>.<8 random characters><suffix>.tmp`` and locked
    while in use; stale ones of that naming (left by a killed process: unlocked, and older than a
    few seconds) are removed first. An ``OSError`` without a file name (e.g. a full disk while
    writing) is raised again naming ``target``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(out) as tmp:
    ...     _ = tmp.write_text("hi")
    >>> out.read_text()
    'hi'
    """
    target = Path(target)
    if not target.name:
        raise ArgumentError(f"{target} is not a file name to write to")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(target, suffix)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        _lock(fd)
        try:
            yield tmp
            if tmp.exists():
                # mkstemp creates files private (0600); give outputs the usual permissions.
                os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)
        except OSError as exc:
            if exc.errno is None or (exc.filename not in (None, str(tmp), tmp)):
                raise
            raise type(exc)(exc.errno, exc.strerror, str(target)) from exc
    finally:
        os.close(fd)
        if tmp.exists():
            tmp.unlink()


def remove_stale_temp_files(target: str | Path, suffix: str = "") -> list[Path]:
    """Remove the temporary files of :func:`atomic_path` for ``target`` that no process holds.

    Only names of our own making (``.<name>.<8 characters><suffix>.tmp``, regular files) are
    considered; one is stale when its lock can be taken (the process that wrote it has ended) and
    it is older than a few seconds. Without file locks (Windows), only those a day old are removed.
    Returns the removed paths.
    """
    target = Path(target)
    pattern = re.compile(re.escape(f".{target.name}.") + r"[a-z0-9_]{8}" + re.escape(suffix + ".tmp"))
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not pattern.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        path = Path(entry.path)
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if age >= _STALE_AFTER_S and _unheld(path, age):
                path.unlink()
                removed.append(path)
        except OSError:
            continue          # gone meanwhile, or not ours to remove
    return removed


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:    # pragma: no cover - Windows: stale files are recognised by age
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unheld(path: Path, age: float) -> bool:
    try:
        import fcntl
    except ImportError:    # pragma: no cover
        return age > 86400
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(target: str | Path, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | Path, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(target, text.encode(encoding))


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """True when ``path`` is ``folder`` or lies below it (after resolving links)."""
    p, f = Path(path).resolve(), Path(folder).resolve()
    return p == f or f in p.parents
