"""Relay an upstream SSE source to browsers: ``python examples/sse_proxy.py``.

Open http://127.0.0.1:3000/ . ``GET /events`` connects to the upstream SSE URL with
``httpx.AsyncClient`` + ``httpx_sse.aconnect_sse`` (httpx runs on Trio through AnyIO)
and relays every event, passing the browser's ``Last-Event-ID`` upstream so a
reconnect resumes there too.

The upstream URL is a command-line flag, ``python examples/sse_proxy.py --upstream URL``
(``--port`` and ``--host`` too), or :func:`create_app`'s ``upstream=``, or the
``SSE_PROXY_UPSTREAM`` environment variable (what ``trio-h3 run examples.sse_proxy:app``
reads). By default it is this app's own demo source, ``GET /source`` (a tick a second),
so the example works on its own. It needs the ``proxy`` extra (httpx and httpx-sse):
``pip install -e '.[proxy]'``. There
is deliberately no "upstream from the query string" switch: that would make the
server an open relay to any URL (SSRF).

Cancellation is structured: the upstream request runs inside the stream callback, so
when the browser leaves, the callback is cancelled, the ``async with`` blocks exit
and the upstream connection is closed -- the upstream server sees the disconnect at
once instead of streaming into the void.
"""

from __future__ import annotations

import argparse
import logging
import os
from functools import partial
from pathlib import Path

import httpx
import trio
from httpx_sse import SSEError, aconnect_sse

from trio_h3 import H3, H3Event, HTMLResponse, SSEEvent, SSEWriter, StaticFiles, serve

log = logging.getLogger("examples.sse_proxy")

UPSTREAM_ENV = "SSE_PROXY_UPSTREAM"
DEFAULT_UPSTREAM = "http://127.0.0.1:3000/source"
STATIC = Path(__file__).resolve().parent / "static"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trio-h3 SSE proxy</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<main>
<header class="app">
  <span class="brand">trio-h3 · Server-Sent Events</span>
  <h1>Relayed events</h1>
  <p>Events from an upstream SSE source, relayed as they come; close the tab and the
  upstream request is closed too.</p>
</header>
<p id="status" class="status" data-state="connecting">connecting...</p>
<div class="card"><ul class="log" id="events"></ul></div>
<script>
  const status = document.getElementById("status");
  const show = (state, text) => { status.dataset.state = state; status.textContent = text; };
  const source = new EventSource("/events");
  const events = document.getElementById("events");
  const note = (e) => {
    const item = document.createElement("li");
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = e.type + " #" + e.lastEventId;
    item.append(meta, e.data);
    events.prepend(item);
    while (events.children.length > 50) events.lastChild.remove();
  };
  source.onopen = () => show("live", "connected");
  source.onmessage = note;
  source.addEventListener("tick", note);
  source.addEventListener("upstream_error", (e) => {
    show("error", "upstream unavailable: " + JSON.parse(e.data).error);
  });
  source.onerror = () => {
    if (status.dataset.state !== "error") show("connecting", "reconnecting...");
  };
</script>
</main>
</body>
</html>
"""


def create_app(
    upstream: str | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    connect_timeout: float = 5.0,
    read_timeout: float | None = 60.0,
) -> H3:
    """A proxy app relaying ``upstream`` (default: ``$SSE_PROXY_UPSTREAM`` or the demo).

    ``transport`` replaces httpx's network transport (tests use ``httpx.MockTransport``).
    ``read_timeout`` is the longest silence accepted from upstream (heartbeats count);
    ``None`` waits forever.
    """
    url = upstream or os.environ.get(UPSTREAM_ENV) or DEFAULT_UPSTREAM
    timeout = httpx.Timeout(connect_timeout, read=read_timeout)
    app = H3()
    # The examples' shared stylesheet, served at /static/style.css.
    app.mount("/static", StaticFiles(STATIC))

    @app.get("/")
    async def index(event: H3Event) -> HTMLResponse:
        """The page that listens with EventSource."""
        return HTMLResponse(PAGE)

    @app.get("/events")
    async def events(event: H3Event) -> None:
        """Open a relayed stream."""
        event.start_sse()
        event.set_stream_callback(relay, url, timeout, transport)

    @app.get("/source")
    async def source(event: H3Event) -> None:
        """The demo upstream: a ``tick`` a second, resuming after ``Last-Event-ID``."""
        event.start_sse()
        event.set_stream_callback(ticks)

    return app


async def relay(
    writer: SSEWriter,
    upstream: str,
    timeout: httpx.Timeout,
    transport: httpx.AsyncBaseTransport | None,
) -> None:
    """Copy upstream's events to ``writer`` until either side ends.

    A failing upstream becomes one ``upstream_error`` event, then the stream ends (the
    browser reconnects after its retry delay). The client leaving cancels this
    function, which closes the upstream request on the way out.
    """
    headers = {}
    if writer.last_event_id is not None:
        headers["Last-Event-ID"] = writer.last_event_id
    # trust_env=False: a server-side relay should not pick up HTTP(S)_PROXY by surprise.
    async with httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False) as client:
        try:
            async with aconnect_sse(client, "GET", upstream, headers=headers) as source:
                if source.response.status_code != 200:
                    raise SSEError(f"upstream answered {source.response.status_code}")
                async for sse in source.aiter_sse():
                    if not sse.data and sse.event == "message":
                        continue  # an id- or retry-only frame: nothing for a browser to show
                    await writer.send(
                        SSEEvent(
                            data=sse.data,
                            event=None if sse.event == "message" else sse.event,
                            id=sse.id or None,
                            retry=sse.retry,
                        )
                    )
        except (httpx.HTTPError, SSEError) as exc:
            log.warning("upstream %s failed: %s", upstream, exc)
            error = str(exc) or type(exc).__name__
            await writer.send_json({"error": error}, event="upstream_error")


async def ticks(writer: SSEWriter) -> None:
    """``tick`` events with increasing ids, one a second, forever."""
    try:
        n = int(writer.last_event_id or "-1") + 1
    except ValueError:
        n = 0
    while True:
        await writer.send(SSEEvent(data=f"tick {n}", event="tick", id=str(n)))
        n += 1
        await trio.sleep(1)


app = create_app()


def main(argv: list[str] | None = None) -> None:
    """``python examples/sse_proxy.py [--upstream URL] [--host H] [--port N]``."""
    parser = argparse.ArgumentParser(description="Relay an upstream SSE source to browsers.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="port to bind (3000)")
    parser.add_argument(
        "--upstream",
        metavar="URL",
        help=f"the SSE source to relay (${UPSTREAM_ENV}, else this server's own /source)",
    )
    args = parser.parse_args(argv)
    upstream = args.upstream or os.environ.get(UPSTREAM_ENV)
    if upstream is None:
        upstream = f"http://127.0.0.1:{args.port}/source"
    logging.basicConfig(level=logging.INFO)
    log.info("relaying %s", upstream)
    trio.run(partial(serve, create_app(upstream), host=args.host, port=args.port))


if __name__ == "__main__":
    main()
