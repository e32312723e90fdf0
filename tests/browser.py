"""Headless Chromium for the tests, driven by Playwright's sync API from a worker thread.

Debian's ``/usr/bin/chromium`` (never a downloaded build): the tests run it beside the
Trio server under test, in ``trio.to_thread.run_sync``, and call back into Trio with
``trio.from_thread`` when the server must do something at a given moment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
#: Milliseconds any one browser step may take.
STEP_MS = 10_000


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium for one test (closed at the end, whatever happens)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=STEP_MS)
        try:
            yield browser
        finally:
            browser.close()
