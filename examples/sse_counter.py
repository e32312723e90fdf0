"""The seed's SSE counter: ``python examples/sse_counter.py``, then open http://127.0.0.1:3000/.

``GET /events`` streams a ``counter`` event with id and data 0..30, one a second, then a
``done`` event ("Counter complete!"). The handler only starts the stream and registers
the callback; the callback runs in the connection's stream nursery once the head has
been sent, and is cancelled at its next checkpoint if the browser goes away.
"""

from __future__ import annotations

from pathlib import Path

import trio

from trio_h3 import H3, H3Event, HTMLResponse, SSEEvent, SSEWriter, StaticFiles, serve

app = H3()

# The examples' shared stylesheet, served at /static/style.css.
app.mount("/static", StaticFiles(Path(__file__).resolve().parent / "static"))

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trio-h3 SSE counter</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<main>
<header class="app">
  <span class="brand">trio-h3 · Server-Sent Events</span>
  <h1>SSE counter</h1>
  <p>A count from 0 to 30, one a second, pushed by the server over one EventSource.</p>
</header>
<p id="status" class="status" data-state="connecting">connecting...</p>
<div class="card">
  <div class="big" id="count">-</div>
  <p>Last event id: <code id="last-id">none</code></p>
</div>
<script>
  const status = document.getElementById("status");
  const show = (state, text) => { status.dataset.state = state; status.textContent = text; };
  const source = new EventSource("/events");
  source.onopen = () => show("live", "connected");
  source.addEventListener("counter", (e) => {
    document.getElementById("count").textContent = e.data;
    document.getElementById("last-id").textContent = e.lastEventId;
  });
  source.addEventListener("done", (e) => {
    show("done", e.data);
    source.close();  // otherwise EventSource reconnects and counts again
  });
  source.onerror = () => show("connecting", "reconnecting...");
</script>
</main>
</body>
</html>
"""


@app.get("/")
async def index(event: H3Event) -> HTMLResponse:
    """The page that listens with EventSource."""
    return HTMLResponse(PAGE)


@app.get("/events")
async def counter(event: H3Event) -> None:
    """Start the SSE response and hand the stream to :func:`stream_counter`."""
    event.start_sse()
    event.set_stream_callback(stream_counter)


async def stream_counter(writer: SSEWriter) -> None:
    """0 at once, then 1..30 one a second (30 seconds in all), then ``done``.

    Exactly the seed's loop: send the initial value, then sleep a second and send the
    next value until 30 seconds have passed.
    """
    await writer.send(SSEEvent(data="0", event="counter", id="0"))
    for i in range(1, 31):
        await trio.sleep(1)
        await writer.send(SSEEvent(data=str(i), event="counter", id=str(i)))
    await writer.send(SSEEvent(data="Counter complete!", event="done"))


if __name__ == "__main__":
    trio.run(serve, app)  # 127.0.0.1:3000 unless told otherwise
