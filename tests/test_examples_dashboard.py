"""examples/dashboard: the API through the TestClient, the committed .br/.gz against their
sources, and the page itself in headless Chromium: log in, see live updates arrive, and
reload with the session kept."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import brotli
import pytest
import trio
from browser import STEP_MS, chromium
from helpers import RunServer
from playwright.sync_api import Response
from trio.testing import MockClock

from examples.dashboard import app as dashboard
from examples.dashboard.build import sources
from trio_h3 import Broadcast
from trio_h3.testing import TestClient


@pytest.fixture(autouse=True)
def fresh_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test serves the dashboard on a new hub: a hub closes with the lifespan that
    entered it, and the app looks its module's ``hub`` up as it runs."""
    monkeypatch.setattr(dashboard, "hub", Broadcast())


def test_the_committed_precompressed_assets_match_their_sources() -> None:
    assert [p.name for p in sources()] == ["app.js", "index.html", "style.css"]
    for source in sources():
        data = source.read_bytes()
        assert brotli.decompress(Path(f"{source}.br").read_bytes()) == data, source.name
        assert gzip.decompress(Path(f"{source}.gz").read_bytes()) == data, source.name


async def test_login_session_and_assets(autojump_clock: MockClock) -> None:
    async with TestClient(dashboard.app) as client:
        assert (await client.get("/api/me")).json() == {"user": None}
        assert (await client.get("/api/metrics")).status == 401
        assert (await client.post("/api/login", json={"name": ""})).status == 422
        r = await client.post("/api/login", json={"name": "Ada"})
        assert r.json() == {"user": "Ada"}
        assert (await client.get("/api/me")).json() == {"user": "Ada"}
        r = await client.get("/style.css", headers={"accept-encoding": "br, gzip"})
        assert r.headers["content-encoding"] == "br"
        assert r.headers["content-type"] == "text/css; charset=utf-8"
        r = await client.get("/", headers={"accept-encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip"
        assert b"trio-h3 live dashboard" in gzip.decompress(r.content)
        async with client.stream("GET", "/api/metrics", headers={"accept-encoding": "gzip"}) as s:
            assert s.headers["content-encoding"] == "gzip"
        await client.post("/api/logout")
        assert (await client.get("/api/me")).json() == {"user": None}


@pytest.mark.slow
async def test_the_dashboard_in_chromium(
    running_server: RunServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "INTERVAL", 0.1)
    async with running_server(dashboard.app) as server:

        def scenario() -> dict[str, Any]:
            with chromium() as browser:
                page = browser.new_page()
                page.set_default_timeout(STEP_MS)
                encodings: dict[str, str | None] = {}

                def seen(response: Response) -> None:
                    name = response.url.rsplit("/", 1)[1]
                    encodings.setdefault(name, response.headers.get("content-encoding"))

                page.on("response", seen)
                page.goto(server.url + "/")
                page.wait_for_selector("#login-form")
                page.fill("#name", "Ada")
                page.click("button[type=submit]")
                page.wait_for_selector("#dashboard:not([hidden])")
                page.wait_for_function("Number(document.getElementById('ticks').textContent) >= 3")
                first = int(page.inner_text("#ticks"))
                page.wait_for_function(
                    f"Number(document.getElementById('ticks').textContent) > {first}"
                )
                page.reload()
                page.wait_for_selector("#dashboard:not([hidden])")
                page.wait_for_function("Number(document.getElementById('ticks').textContent) >= 2")
                return {
                    "user": page.inner_text("#user"),
                    "login_hidden": page.is_hidden("#login"),
                    "encodings": encodings,
                }

        result = await trio.to_thread.run_sync(scenario)
    assert result["user"] == "Ada" and result["login_hidden"]
    assert result["encodings"]["metrics"] == "gzip"
    assert result["encodings"]["style.css"] == "br"
    assert result["encodings"]["app.js"] == "br"
