"""Relay an upstream SSE source to browsers: ``python examples/sse_proxy.py``.

Open http://127.0.0.1:3000/ . ``GET /events`` connects to the upstream SSE URL with
``httpx.AsyncClient`` + ``httpx_sse.aconnect_sse`` (httpx runs on Trio through AnyIO)
and relays every event, passing the browser's ``Last-Event-ID`` upstream so a
reconnect resumes there too.

The upstream URL comes from :func:`create_app` (``upstream=``) or the
``SSE_PROXY_UPSTREAM`` environment variable. By default it is this app's own demo
source, ``GET /source`` (a tick a second), so the example works on its own. There
is deliberately no "upstream from the query string" switch: that would make the
server an open relay to any URL (SSRF).

Cancellation is structured: the upstream request runs inside the stream callback, so
when the browser leaves, the callback is cancelled, the ``async with`` blocks exit
and the upstream connection is closed -- the upstream server sees the disconnect at
once instead of streaming into the void.
"""

from __future__ import annotations

import logging
import os

import httpx
import trio
from httpx_sse import SSEError, aconnect_sse

from trio_h3 import H3, H3Event, HTMLResponse, SSEEvent, SSEWriter, serve

log = logging.getLogger("examples.sse_proxy")

UPSTREAM_ENV = "SSE_PROXY_UPSTREAM"
DEFAULT_UPSTREAM = "http://127.0.0.1:3000/source"

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>trio-h3 SSE proxy</title></head>
<body>
<h1>Relayed events</h1>
<p id="status">connecting...</p>
<ul id="events"></ul>
<script>
  const status = document.getElementById("status");
  const source = new EventSource("/events");
  const show = (e) => {
    const item = document.createElement("li");
    item.textContent = e.type + " #" + e.lastEventId + ": " + e.data;
    document.getElementById("events").prepend(item);
  };
  source.onopen = () => { status.textContent = "connected"; };
  source.onmessage = show;
  source.addEventListener("tick", show);
  source.addEventListener("upstream_error", (e) => {
    status.textContent = "upstream unavailable: " + JSON.parse(e.data).error;
  });
</script>
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

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    trio.run(serve, app)  # 127.0.0.1:3000 unless told otherwise
