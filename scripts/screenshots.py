"""Screenshots of examples/dashboard for the README: ``python scripts/screenshots.py``.

Serves the dashboard in this process on a free 127.0.0.1 port (metrics every 0.1 s, so
the charts fill quickly), drives Debian's headless Chromium through Playwright from a
worker thread, and writes docs/images/dashboard-login.png and docs/images/dashboard.png.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser import STEP_MS, chromium  # noqa: E402

from examples.dashboard import app as dashboard  # noqa: E402
from trio_h3 import serve  # noqa: E402

IMAGES = ROOT / "docs" / "images"


def shoot(url: str) -> list[Path]:
    IMAGES.mkdir(parents=True, exist_ok=True)
    login, board = IMAGES / "dashboard-login.png", IMAGES / "dashboard.png"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 760})
        page.set_default_timeout(STEP_MS)
        page.goto(url)
        page.wait_for_selector("#login-form")
        page.fill("#name", "Ada Lovelace")
        page.screenshot(path=str(login))
        page.click("button[type=submit]")
        page.wait_for_function("Number(document.getElementById('ticks').textContent) >= 60")
        page.screenshot(path=str(board))
    return [login, board]


async def main() -> None:
    dashboard.INTERVAL = 0.1
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(
            partial(serve, dashboard.app, port=0, access_log=False, shutdown_trigger=done)
        )
        url = f"http://127.0.0.1:{addresses[0].port}/"
        try:
            with trio.fail_after(60):
                for path in await trio.to_thread.run_sync(shoot, url):
                    print(path.relative_to(ROOT))
        finally:
            done.set()


if __name__ == "__main__":
    trio.run(main)
