"""The examples look like real apps: one shared stylesheet, phone-sized pages, errors shown.

- Every example page links ``/static/style.css`` (examples/static/style.css, served by
  the example itself through ``StaticFiles``) and sets the viewport for phones.
- In Chromium at a phone's width (390 px), no page scrolls sideways.
- ``sse_text`` says what went wrong when its stream fails, instead of "thinking..."
  forever: a refused question shows the server's message, an answer that breaks off says
  so, and EventSource does not ask the question again by itself.
- Both chats show a member count that follows other tabs as they come, go, or (the
  WebSocket chat) move to another room.
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
from playwright.sync_api import Page
from trio.testing import MockClock

from examples import (
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
from trio_h3 import H3
from trio_h3.testing import TestClient

ROOT = Path(__file__).resolve().parent.parent
STYLESHEET = ROOT / "examples" / "static" / "style.css"
#: The examples with a page.
STYLED: dict[str, ModuleType] = {
    "sse_counter": sse_counter,
    "sse_minimal": sse_minimal,
    "sse_text": sse_text,
    "sse_context": sse_context,
    "sse_errors": sse_errors,
    "sse_proxy": sse_proxy,
    "upload": upload,
    "sse_chat": sse_chat,
    "websocket_chat": websocket_chat,
    "live_prices": live_prices,
}
#: Those on a hub: a hub closes with its app's lifespan, so each test builds the app anew.
ON_A_HUB = {sse_chat, websocket_chat, live_prices}


def app_of(module: ModuleType) -> H3:
    app = module.create_app() if module in ON_A_HUB else module.app
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


def shows(page: Page, selector: str, text: str) -> None:
    """Until ``selector``'s text is exactly ``text`` (within STEP_MS)."""
    page.wait_for_function(
        "([selector, text]) => document.querySelector(selector)?.textContent === text",
        arg=[selector, text],
    )


def sse_chat_counts(url: str) -> list[str]:
    """Two tabs of the SSE chat: the first one's member count as the second comes and goes."""
    seen = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 390, "height": 844})
        context.set_default_timeout(STEP_MS)
        ada = context.new_page()
        ada.goto(url)
        shows(ada, "#member-count", "1")
        seen.append(ada.inner_text("#members"))
        grace = context.new_page()
        grace.goto(url)
        shows(grace, "#member-count", "2")
        shows(ada, "#member-count", "2")
        seen.append(ada.inner_text("#members"))
        grace.close()  # its EventSource goes with it
        shows(ada, "#member-count", "1")
        seen.append(ada.inner_text("#members"))
    return seen


@pytest.mark.slow
async def test_sse_chat_member_count_updates(running_server: RunServer) -> None:
    async with running_server(sse_chat.create_app(), bound=60) as server:
        seen = await trio.to_thread.run_sync(sse_chat_counts, f"{server.url}/")
    assert seen == ["1 in the room", "2 in the room", "1 in the room"]


def join(page: Page, room: str, name: str) -> None:
    page.fill("#room", room)
    page.fill("#name", name)
    page.click("#enter")
    shows(page, "#status", f"connected as {name}")


def websocket_chat_counts(url: str) -> list[str]:
    """Two tabs of the WebSocket chat: the lobby's count on the first as the second
    joins, moves to another room, and leaves."""
    seen = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 390, "height": 844})
        context.set_default_timeout(STEP_MS)
        ada, grace = context.new_page(), context.new_page()
        ada.goto(url)
        grace.goto(url)
        join(ada, "lobby", "Ada")
        shows(ada, "#member-count", "1")
        seen.append(ada.inner_text("#members"))
        join(grace, "lobby", "Grace")
        shows(ada, "#member-count", "2")
        shows(grace, "#member-count", "2")
        seen.append(ada.inner_text("#members"))
        join(grace, "kitchen", "Grace")
        shows(grace, "#member-count", "1")
        seen.append(grace.inner_text("#members"))
        shows(ada, "#member-count", "1")
        seen.append(ada.inner_text("#members"))
        join(grace, "lobby", "Grace")
        shows(ada, "#member-count", "2")
        grace.close()  # its WebSocket goes with it
        shows(ada, "#member-count", "1")
        seen.append(ada.inner_text("#members"))
        seen.append(ada.inner_text("#log"))
    return seen


@pytest.mark.slow
async def test_websocket_chat_member_count_updates(running_server: RunServer) -> None:
    async with running_server(websocket_chat.create_app(), bound=60) as server:
        *seen, log = await trio.to_thread.run_sync(websocket_chat_counts, f"{server.url}/")
    assert seen == ["1 in lobby", "2 in lobby", "1 in kitchen", "1 in lobby", "1 in lobby"]
    assert log.split("\n") == [
        "Ada joined lobby",
        "Grace joined lobby",
        "Grace left",
        "Grace joined lobby",
        "Grace left",
    ]


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
