"""What a browser makes of the kit, in headless Chromium: CORS from a page on another
origin (another port), allowed and refused, EventSource withCredentials across origins; a
session surviving a reload; EventSource events through gzip arriving one by one."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from browser import STEP_MS, chromium
from helpers import RunServer

from trio_h3 import H3, H3Event, HTMLResponse, Sessions, SSEWriter, compress, cors

pytestmark = pytest.mark.slow

PAGE = """<!doctype html><meta charset="utf-8"><title>t</title><body>
<script>
window.log = [];
async function call(url, init) {
  try {
    const r = await fetch(url, init);
    return {status: r.status, body: await r.text()};
  } catch (e) { return {error: String(e)}; }
}
</script>"""


def page_app() -> H3:
    """The app that serves the page (its own origin)."""
    app = H3()

    @app.get("/")
    async def index(event: H3Event) -> HTMLResponse:
        return HTMLResponse(PAGE)

    return app


def api_app(allowed: str) -> H3:
    app = H3()
    app.use(cors(origins=[allowed], credentials=True))
    app.use(Sessions(secret="b" * 32))

    @app.post("/login")
    async def login(event: H3Event) -> dict[str, bool]:
        event.session["user"] = "ada"
        return {"ok": True}

    @app.put("/items/1")
    async def put_item(event: H3Event) -> dict[str, Any]:
        return {"put": await event.json(), "user": event.session.get("user")}

    @app.get("/live")
    async def live(event: H3Event) -> None:
        user = event.session.get("user")
        event.start_sse()

        async def produce(writer: SSEWriter) -> None:
            await writer.send(f"hello {user}")

        event.set_stream_callback(produce)

    return app


async def test_cors_from_another_origin_allowed_and_refused(running_server: RunServer) -> None:
    async with running_server(page_app()) as good, running_server(page_app()) as evil:
        allowed = f"http://127.0.0.1:{good.port}"
        async with running_server(api_app(allowed)) as api:
            # Cookies of 127.0.0.1 are shared across ports: a credentialed cross-origin
            # request carries the API's session (SameSite=Lax allows it, same site).
            put = (
                f"call('{api.url}/items/1', {{method: 'PUT', credentials: 'include', "
                "headers: {'Content-Type': 'application/json', 'X-Token': 't'}, "
                "body: JSON.stringify({n: 1})})"
            )

            def scenario() -> dict[str, Any]:
                with chromium() as browser:
                    page = browser.new_page()
                    page.set_default_timeout(STEP_MS)
                    page.goto(good.url + "/")
                    login = page.evaluate(
                        f"call('{api.url}/login', {{method: 'POST', credentials: 'include'}})"
                    )
                    ok = page.evaluate(put)  # JSON + a custom header: a preflight first
                    source = page.evaluate(
                        f"""new Promise(resolve => {{
                          const es = new EventSource('{api.url}/live', {{withCredentials: true}});
                          es.onmessage = e => {{ es.close(); resolve(e.data); }};
                          es.onerror = () => {{ es.close(); resolve('error'); }};
                        }})"""
                    )
                    page.goto(evil.url + "/")
                    refused = page.evaluate(put)
                    refused_get = page.evaluate(f"call('{api.url}/items/1')")
                    return {
                        "login": login,
                        "ok": ok,
                        "source": source,
                        "refused": refused,
                        "refused_get": refused_get,
                    }

            result = await trio.to_thread.run_sync(scenario)
    assert result["login"]["status"] == 200
    assert result["ok"]["status"] == 200
    assert json.loads(result["ok"]["body"]) == {"put": {"n": 1}, "user": "ada"}
    assert result["source"] == "hello ada"
    # The browser blocks both: fetch rejects with a TypeError.
    assert "TypeError" in result["refused"]["error"]
    assert "TypeError" in result["refused_get"]["error"]


def sessions_app() -> H3:
    app = H3()
    app.use(Sessions(secret="r" * 32))

    @app.get("/")
    async def index(event: H3Event) -> HTMLResponse:
        user = event.session.get("user", "nobody")
        return HTMLResponse(f'{PAGE}<p id="user">{user}</p>')

    @app.post("/login")
    async def login(event: H3Event) -> None:
        event.session["user"] = "grace"

    return app


async def test_a_session_survives_a_reload(running_server: RunServer) -> None:
    async with running_server(sessions_app()) as server:

        def scenario() -> list[str]:
            with chromium() as browser:
                page = browser.new_page()
                page.set_default_timeout(STEP_MS)
                page.goto(server.url + "/")
                seen = [page.inner_text("#user")]
                page.evaluate("call('/login', {method: 'POST'})")
                page.reload()
                seen.append(page.inner_text("#user"))
                cookies = page.context.cookies()
                seen.append(str([(c["name"], c["httpOnly"]) for c in cookies]))
                return seen

        seen = await trio.to_thread.run_sync(scenario)
    assert seen == ["nobody", "grace", "[('session', True)]"]


async def test_eventsource_through_gzip_receives_events_one_by_one(
    running_server: RunServer,
) -> None:
    app = H3()
    app.use(compress())
    release = trio.Semaphore(0)

    @app.get("/")
    async def index(event: H3Event) -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.get("/events")
    async def events(event: H3Event) -> None:
        event.start_sse(ping_interval=None)

        async def produce(writer: SSEWriter) -> None:
            for i in range(5):
                await release.acquire()  # the test decides when each event goes
                await writer.send(f"event {i}")

        event.set_stream_callback(produce)

    async with running_server(app) as server:

        def scenario() -> tuple[list[int], str | None, list[str]]:
            with chromium() as browser:
                page = browser.new_page()
                page.set_default_timeout(STEP_MS)
                encodings: list[str | None] = []
                page.on(
                    "response",
                    lambda r: (
                        encodings.append(r.headers.get("content-encoding"))
                        if r.url.endswith("/events")
                        else None
                    ),
                )
                page.goto(server.url + "/")
                page.evaluate(
                    """() => {
                      window.source = new EventSource('/events');
                      source.onmessage = e => log.push([e.data, performance.now()]);
                    }"""
                )
                counts = []
                for i in range(5):
                    trio.from_thread.run_sync(release.release)
                    # The event is there before the next one is even written: nothing
                    # holds it in a compression buffer.
                    page.wait_for_function(f"log.length === {i + 1}")
                    counts.append(page.evaluate("log.length"))
                data = page.evaluate("log.map(e => e[0])")
                page.evaluate("source.close()")
                return counts, encodings[0] if encodings else None, data

        counts, encoding, data = await trio.to_thread.run_sync(scenario)
    assert counts == [1, 2, 3, 4, 5]
    assert encoding == "gzip"
    assert data == [f"event {i}" for i in range(5)]
