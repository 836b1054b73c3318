"""Headless Chromium for the browser tests: Debian's package, never a downloaded browser build."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager

import pytest

#: As the machine's probe starts it: without the background-networking flags Chromium keeps trying
#: hosts this closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium() -> str:
    """The chromium executable; skip the test without it (fail when CI is set: there it must run)."""
    exe = shutil.which("chromium")
    if exe:
        return exe
    reason = ("headless Chromium not found: install Debian's package with `make browser` "
              "(apt-get install chromium)")
    if os.environ.get("CI"):
        pytest.fail(reason + "; CI is set, so the browser test must run")
    pytest.skip(reason)


@contextmanager
def launched_chromium():
    """Headless Chromium driven by playwright, closed on exit (skips as :func:`chromium` does)."""
    exe = chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True, timeout=60_000)
        try:
            yield b
        finally:
            b.close()
