"""The examples look like real apps: one shared stylesheet, phone-sized pages, errors shown.

- Every example page links ``/static/style.css`` (examples/static/style.css, served by
  the example itself through ``StaticFiles``) and sets the viewport for phones.
- In Chromium at a phone's width (390 px), no page scrolls sideways.
- ``sse_text`` says what went wrong when its stream fails, instead of "thinking..."
  forever: a refused question shows the server's message, an answer that breaks off says
  so, and EventSource does not ask the question again by itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from functools import partial
from pathlib import Path
from types import ModuleType

import pytest
import trio
from browser import STEP_MS, chromium
from helpers import RunServer
from trio.testing import MockClock

from examples import (
    sse_context,
    sse_counter,
    sse_errors,
    sse_minimal,
    sse_proxy,
    sse_text,
    upload,
)
from trio_h3 import H3
from trio_h3.testing import TestClient

ROOT = Path(__file__).resolve().parent.parent
STYLESHEET = ROOT / "examples" / "static" / "style.css"
#: The examples with a page. (sse_chat and websocket_chat get the stylesheet when the
#: hub's changes to them land.)
STYLED: dict[str, ModuleType] = {
    "sse_counter": sse_counter,
    "sse_minimal": sse_minimal,
    "sse_text": sse_text,
    "sse_context": sse_context,
    "sse_errors": sse_errors,
    "sse_proxy": sse_proxy,
    "upload": upload,
}


def app_of(module: ModuleType) -> H3:
    app = module.app
    assert isinstance(app, H3)
    return app


@pytest.mark.parametrize("name", sorted(STYLED))
async def test_each_page_uses_the_shared_stylesheet(name: str, autojump_clock: MockClock) -> None:
    async with TestClient(app_of(STYLED[name])) as client:
        page = await client.get("/")
        css = await client.get("/static/style.css")
    assert page.status_code == 200
    assert '<link rel="stylesheet" href="/static/style.css">' in page.text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.text
    assert "<style" not in page.text  # one stylesheet, not a copy per page
    assert css.status_code == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert css.content == STYLESHEET.read_bytes()


def widths(url: str) -> tuple[int, int]:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
        page.set_default_timeout(STEP_MS)
        page.goto(url)
        page.wait_for_load_state("load")
        scroll: int = page.evaluate("document.documentElement.scrollWidth")
        client: int = page.evaluate("document.documentElement.clientWidth")
        return scroll, client


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STYLED))
async def test_each_page_fits_a_phone(name: str, running_server: RunServer) -> None:
    async with running_server(app_of(STYLED[name]), bound=60) as server:
        scroll, client = await trio.to_thread.run_sync(widths, f"{server.url}/")
    assert scroll <= client, f"{name}: the page is {scroll} px wide on a {client} px screen"


def ask(url: str, question: str) -> tuple[str, str, str]:
    """Ask on the sse_text page; its status once it says error (or done), and the answer."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.set_default_timeout(STEP_MS)
        page.goto(url)
        page.fill("#q", question)
        page.click("#send")
        page.wait_for_function(
            "['error', 'done'].includes(document.getElementById('status').dataset.state)"
        )
        status = page.locator("#status")
        state = status.get_attribute("data-state") or ""
        return state, status.inner_text(), page.locator("#answer").inner_text()


@pytest.mark.slow
async def test_sse_text_shows_the_servers_refusal(running_server: RunServer) -> None:
    async with running_server(sse_text.app, bound=60) as server:
        state, status, _ = await trio.to_thread.run_sync(ask, f"{server.url}/", "   ")
    assert (state, status) == ("error", "error: Ask something: /answer?q=...")


@pytest.mark.slow
async def test_sse_text_says_when_the_answer_breaks_off(
    running_server: RunServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = 0

    async def broken(question: str) -> AsyncGenerator[str, None]:
        nonlocal requests
        requests += 1
        yield "Half"
        yield " an"
        raise RuntimeError("the model went away")

    monkeypatch.setattr(sse_text, "generate_answer", broken)
    async with running_server(sse_text.app, bound=60) as server:
        state, status, answer = await trio.to_thread.run_sync(ask, f"{server.url}/", "Why?")
        await trio.sleep(1)  # an EventSource left to reconnect would have asked again by now
    assert state == "error"
    assert status == "error: the answer broke off after 2 tokens; ask again"
    assert answer == "Half an"
    assert requests == 1


@pytest.mark.slow
async def test_sse_text_still_answers(running_server: RunServer) -> None:
    async with running_server(sse_text.app, bound=60) as server:
        state, status, answer = await trio.to_thread.run_sync(ask, f"{server.url}/", "Why?")
    assert state == "done" and status.startswith("done: ")
    assert answer.startswith("You asked: Why?")


@pytest.mark.parametrize(
    ("argv", "upstream"),
    [
        (["--upstream", "http://127.0.0.1:8000/stream"], "http://127.0.0.1:8000/stream"),
        (["--port", "3005"], "http://127.0.0.1:3005/source"),  # its own demo source
    ],
)
def test_sse_proxy_takes_its_upstream_from_a_flag(
    argv: list[str],
    upstream: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv(sse_proxy.UPSTREAM_ENV, raising=False)
    ran: list[partial[None]] = []
    monkeypatch.setattr(trio, "run", ran.append)
    caplog.set_level(logging.INFO, "examples.sse_proxy")
    sse_proxy.main(argv)
    (run,) = ran
    assert run.keywords["port"] == (3005 if "--port" in argv else 3000)
    assert f"relaying {upstream}" in caplog.messages
