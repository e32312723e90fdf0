"""Errors in streams stay in their stream: ``python examples/sse_errors.py``.

Open http://127.0.0.1:3000/ . Three routes:

- ``GET /events/fail``: sends a few ``tick`` events, then the callback raises. trio-h3
  logs the traceback on the ``trio_h3`` logger, ends that stream cleanly (the
  terminating chunk is sent) with ``close_reason == "callback_error"``, and nothing
  else is affected. (The browser's EventSource sees a normal end and reconnects; to
  tell it something went wrong, catch the error and send an event yourself.)
- ``GET /events/ok``: a well-behaved stream that keeps going while the other fails.
- ``GET /events/unavailable``: the handler raises *before* starting the stream, so
  the answer is an ordinary JSON error (503) -- EventSource treats a non-200 answer
  as fatal and does not reconnect.

Every stream registers an ``on_close`` hook that logs why it ended (on logger
``examples.sse_errors``): it runs exactly once, whatever the ending.
"""

from __future__ import annotations

import logging
from pathlib import Path

import trio

from trio_h3 import H3, H3Event, HTMLResponse, HTTPError, SSEEvent, SSEWriter, StaticFiles, serve

app = H3()

# The examples' shared stylesheet, served at /static/style.css.
app.mount("/static", StaticFiles(Path(__file__).resolve().parent / "static"))
log = logging.getLogger("examples.sse_errors")

TICK_INTERVAL = 1.0
#: Ticks sent before /events/fail breaks.
TICKS_BEFORE_FAILURE = 3
#: Ticks sent by /events/ok before its done event.
OK_TICKS = 10

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trio-h3 SSE errors</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<main>
<header class="app">
  <span class="brand">trio-h3 · Server-Sent Events</span>
  <h1>A failing stream next to a healthy one</h1>
  <p><code>/events/fail</code> raises after three ticks: only that stream ends (cleanly, so
  EventSource reconnects). <code>/events/ok</code> carries on.</p>
</header>
<div class="grid">
  <section class="card"><h2>/events/fail</h2><ul class="log" id="fail"></ul></section>
  <section class="card"><h2>/events/ok</h2><ul class="log" id="ok"></ul></section>
</div>
<script>
  function watch(path, listId, maxConnects) {
    const list = document.getElementById(listId);
    const note = (text) => {
      const item = document.createElement("li");
      item.textContent = text;
      list.appendChild(item);
    };
    let connects = 0;
    const source = new EventSource(path);
    source.onopen = () => { connects += 1; note("connected (#" + connects + ")"); };
    source.addEventListener("tick", (e) => note("tick " + e.data));
    source.addEventListener("done", (e) => { note(e.data); source.close(); });
    source.onerror = () => {
      note("stream ended; EventSource will reconnect");
      if (connects >= maxConnects) { source.close(); note("gave up"); }
    };
  }
  watch("/events/fail", "fail", 3);
  watch("/events/ok", "ok", 1);
</script>
</main>
</body>
</html>
"""


def report_close(writer: SSEWriter) -> None:
    """An ``on_close`` hook: runs once per stream, whatever the ending."""
    log.info(
        "stream %s ended: %s after %d events",
        writer.event.path,
        writer.close_reason,
        writer.events_sent,
    )


@app.get("/")
async def index(event: H3Event) -> HTMLResponse:
    """The page that listens with EventSource."""
    return HTMLResponse(PAGE)


@app.get("/events/fail")
async def failing_events(event: H3Event) -> None:
    """A stream whose callback breaks half-way."""
    event.start_sse(retry=3000)
    event.set_stream_callback(failing_stream)


async def failing_stream(writer: SSEWriter) -> None:
    """A few ticks, then an unexpected error (a data source went away, say)."""
    writer.on_close(report_close, writer)
    for i in range(TICKS_BEFORE_FAILURE):
        await writer.send(SSEEvent(data=str(i), event="tick", id=str(i)))
        await trio.sleep(TICK_INTERVAL)
    raise RuntimeError("the data source failed")


@app.get("/events/ok")
async def ok_events(event: H3Event) -> None:
    """A stream that completes, whatever its neighbours do."""
    event.start_sse()
    event.set_stream_callback(ok_stream)


async def ok_stream(writer: SSEWriter) -> None:
    """``OK_TICKS`` ticks, then ``done``."""
    writer.on_close(report_close, writer)
    for i in range(OK_TICKS):
        await writer.send(SSEEvent(data=str(i), event="tick", id=str(i)))
        await trio.sleep(TICK_INTERVAL)
    await writer.send(SSEEvent(data="all ticks sent", event="done"))


@app.get("/events/unavailable")
async def unavailable(event: H3Event) -> None:
    """Fails before the stream starts: an ordinary JSON error response."""
    raise HTTPError(503, "The event source is unavailable")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    trio.run(serve, app)  # 127.0.0.1:3000 unless told otherwise
