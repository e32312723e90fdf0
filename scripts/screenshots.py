"""The screenshots in README.md and the docs: ``python scripts/screenshots.py``.

Serves each example in this process on a free 127.0.0.1 port (with its delays
shortened, so the pages fill quickly), drives Debian's headless Chromium through
Playwright from a worker thread, and writes the PNGs to docs/images/:

- ``dashboard-login.png`` and ``dashboard.png``: examples/dashboard, before and after
  logging in;
- ``example-NAME.png`` for each example with a page, at a laptop's width, and
  ``example-NAME-phone.png`` for a few, at a phone's.

``--only NAME,NAME`` takes some of them (the names above without ``.png``),
``--out DIR`` writes elsewhere (the test suite does both). The images are regenerated
rather than drawn by hand: run this after changing a page, and commit the result.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser import STEP_MS, chromium  # noqa: E402
from playwright.sync_api import Page  # noqa: E402

from examples import (  # noqa: E402
    live_prices,
    sse_chat,
    sse_context,
    sse_counter,
    sse_errors,
    sse_minimal,
    sse_proxy,
    sse_text,
    upload,
    websocket_chat,
)
from examples.dashboard import app as dashboard  # noqa: E402
from trio_h3 import H3, serve  # noqa: E402

IMAGES = ROOT / "docs" / "images"
LAPTOP = {"width": 960, "height": 640}
PHONE = {"width": 390, "height": 740}


@dataclass
class Shot:
    """One page to photograph: the app, what to do on the page, which images to write."""

    name: str
    app: Callable[[str], H3]  # given the URL of an upstream server (only sse_proxy uses it)
    act: Callable[[Page], None]
    phone: bool = False
    extra: list[str] = field(default_factory=list)
    viewport: dict[str, int] = field(default_factory=lambda: LAPTOP)


def wait_text(page: Page, selector: str, text: str) -> None:
    page.wait_for_function(
        "([selector, text]) => (document.querySelector(selector)?.textContent ?? '')"
        ".includes(text)",
        arg=[selector, text],
    )


def count_at_least(page: Page, selector: str, count: int) -> None:
    page.wait_for_function(
        "([selector, count]) => document.querySelectorAll(selector).length >= count",
        arg=[selector, count],
    )


def act_counter(page: Page) -> None:
    page.wait_for_function("Number(document.getElementById('count').textContent) >= 4")


def act_minimal(page: Page) -> None:
    count_at_least(page, "#events li", 4)
    count_at_least(page, "#inline li", 4)


def act_text(page: Page) -> None:
    page.fill("#q", "Why do streams need structured concurrency?")
    page.click("#send")
    wait_text(page, "#status", "done")


def act_context(page: Page) -> None:
    count_at_least(page, "#updates li", 8)


def act_errors(page: Page) -> None:
    wait_text(page, "#fail", "gave up")
    wait_text(page, "#ok", "all ticks sent")


def act_proxy(page: Page) -> None:
    count_at_least(page, "#events li", 4)


def act_upload(page: Page) -> None:
    page.fill("#title", "Holiday photos")
    page.fill("#note", "The ones from the lake, and the itinerary.")


def wait_exact(page: Page, selector: str, text: str) -> None:
    page.wait_for_function(
        "([selector, text]) => document.querySelector(selector)?.textContent === text",
        arg=[selector, text],
    )


def act_sse_chat(page: Page) -> None:
    """Two members: this page and a second tab in the same browser."""
    wait_text(page, "#status", "connected")
    other = page.context.new_page()
    other.goto(page.url)
    wait_exact(page, "#member-count", "2")
    for tab, name, text in [
        (other, "Grace", "Hi! Is the hub fanning this out to every tab?"),
        (page, "Ada", "It is: one POST, every EventSource gets it."),
        (other, "Grace", "And if my connection drops, I get what I missed."),
    ]:
        tab.fill("#user", name)
        tab.fill("#text", text)
        tab.click("#post")
        wait_text(page, "#messages", text)


def act_websocket_chat(page: Page) -> None:
    """Two members of the lobby: this page and a second tab in the same browser."""
    other = page.context.new_page()
    for tab, name in [(page, "Ada"), (other, "Grace")]:
        if tab is other:
            other.goto(page.url)
        tab.fill("#name", name)
        tab.click("#enter")
        wait_text(tab, "#status", f"connected as {name}")
    wait_exact(page, "#member-count", "2")
    for tab, text in [
        (other, "Hello, lobby!"),
        (page, "Hi Grace. Pick another room and the count follows you."),
    ]:
        tab.fill("#text", text)
        tab.click("#send")
        wait_text(page, "#log", text)


def act_live_prices(page: Page) -> None:
    count_at_least(page, "#ticks li", 5)
    page.click("#drop")
    count_at_least(page, "#ticks li.replayed", 3)
    wait_text(page, "#status", "live")
    count_at_least(page, "#ticks li:not(.replayed)", 8)


def act_dashboard(page: Page) -> None:
    page.wait_for_selector("#login-form")
    page.fill("#name", "Ada Lovelace")
    page.screenshot(path=str(IMAGES / "dashboard-login.png"))
    page.click("button[type=submit]")
    page.wait_for_function("Number(document.getElementById('ticks').textContent) >= 60")


SHOTS = [
    Shot(
        "dashboard",
        lambda _: dashboard.app,
        act_dashboard,
        extra=["dashboard-login"],
        viewport={"width": 1200, "height": 760},
    ),
    Shot("example-sse_counter", lambda _: sse_counter.app, act_counter),
    Shot("example-sse_minimal", lambda _: sse_minimal.app, act_minimal),
    Shot("example-sse_text", lambda _: sse_text.app, act_text, phone=True),
    Shot("example-sse_context", lambda _: sse_context.app, act_context),
    Shot("example-sse_errors", lambda _: sse_errors.app, act_errors, phone=True),
    Shot("example-sse_proxy", lambda upstream: sse_proxy.create_app(upstream), act_proxy),
    Shot("example-upload", lambda _: upload.app, act_upload, phone=True),
    Shot("example-sse_chat", lambda _: sse_chat.create_app(), act_sse_chat, phone=True),
    Shot(
        "example-websocket_chat",
        lambda _: websocket_chat.create_app(),
        act_websocket_chat,
        phone=True,
    ),
    Shot(
        "example-live_prices",
        lambda _: live_prices.create_app(tick_interval=live_prices.TICK_INTERVAL),
        act_live_prices,
        phone=True,
    ),
]


def names(shot: Shot) -> list[str]:
    """The images a shot writes (without ``.png``)."""
    return [shot.name, *shot.extra, *([f"{shot.name}-phone"] if shot.phone else [])]


def shoot(shot: Shot, url: str) -> list[Path]:
    written = []
    with chromium() as browser:
        sizes = [("", shot.viewport)] + ([("-phone", PHONE)] if shot.phone else [])
        for suffix, viewport in sizes:
            # A context of its own per size (a shot may open more tabs in it, as the
            # chats do for a second member): closing it closes them all.
            context = browser.new_context(viewport=viewport)
            context.set_default_timeout(STEP_MS)
            page = context.new_page()
            page.goto(url)
            shot.act(page)
            path = IMAGES / f"{shot.name}{suffix}.png"
            page.screenshot(path=str(path))
            written.append(path)
            context.close()
    return written + [IMAGES / f"{extra}.png" for extra in shot.extra]


def quiet() -> None:
    """Only the images' paths on the output (sse_errors' failing stream logs by design)."""
    logging.getLogger("trio_h3").setLevel(logging.CRITICAL)


def quicken() -> None:
    """Shorten the examples' delays: the same pages, filled in a second or two."""
    dashboard.INTERVAL = 0.1
    sse_text.TOKEN_DELAY = 0.01
    sse_context.UPDATE_INTERVAL = 0.1
    sse_errors.TICK_INTERVAL = 0.2
    live_prices.TICK_INTERVAL = 0.25
    live_prices.RETRY_MS = 1500


async def run(shots: list[Shot]) -> None:
    quicken()
    quiet()
    options: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "access_log": False}
    for shot in shots:
        done = trio.Event()
        async with trio.open_nursery() as nursery:
            # The proxy relays a second server's demo source, as it would any upstream.
            upstream = await nursery.start(
                partial(serve, sse_proxy.create_app(), shutdown_trigger=done, **options)
            )
            app = shot.app(f"http://127.0.0.1:{upstream[0].port}/source")
            addresses = await nursery.start(partial(serve, app, shutdown_trigger=done, **options))
            try:
                with trio.fail_after(90):
                    url = f"http://127.0.0.1:{addresses[0].port}/"
                    for path in await trio.to_thread.run_sync(shoot, shot, url):
                        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
            finally:
                done.set()


def main(argv: list[str] | None = None) -> None:
    global IMAGES
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", help="comma-separated image names (default: all)")
    parser.add_argument("--out", type=Path, default=IMAGES, help="folder (docs/images)")
    args = parser.parse_args(argv)
    IMAGES = args.out
    IMAGES.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only.split(",")) if args.only else None
    shots = [shot for shot in SHOTS if wanted is None or wanted & set(names(shot))]
    if wanted is not None and not shots:
        parser.error(f"no such image: {args.only}")
    trio.run(run, shots)


if __name__ == "__main__":
    main()
