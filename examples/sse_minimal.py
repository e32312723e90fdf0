"""The smallest SSE app: ``python examples/sse_minimal.py``, then open http://127.0.0.1:3000/.

Both forms of a stream, side by side:

- ``GET /events``: the callback form. The handler calls ``event.start_sse()`` and
  ``event.set_stream_callback(cb)``; ``cb(writer)`` runs after the head is sent.
- ``GET /inline``: the inline form, ``async with event.sse() as writer`` inside the
  handler itself. Same machinery: disconnect cancels the block, heartbeats run.

Each sends three greetings a second apart, then a ``done`` event.
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
<title>trio-h3 minimal SSE</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<main>
<header class="app">
  <span class="brand">trio-h3 · Server-Sent Events</span>
  <h1>Minimal SSE</h1>
  <p>Both forms of a stream side by side: a callback (<code>/events</code>) and inline
  (<code>/inline</code>).</p>
</header>
<div class="grid">
  <section class="card"><h2>/events</h2><ul class="log" id="events"></ul></section>
  <section class="card"><h2>/inline</h2><ul class="log" id="inline"></ul></section>
</div>
<script>
  for (const path of ["/events", "/inline"]) {
    const log = document.getElementById(path.slice(1));
    const note = (text) => {
      const item = document.createElement("li");
      item.textContent = text;
      log.appendChild(item);
    };
    const source = new EventSource(path);
    source.onmessage = (e) => note(e.data);
    source.addEventListener("done", () => { note("(done)"); source.close(); });
  }
</script>
</main>
</body>
</html>
"""

GREETINGS = ("Hello", "from", "trio-h3!")


@app.get("/")
async def index(event: H3Event) -> HTMLResponse:
    """The page that listens with EventSource."""
    return HTMLResponse(PAGE)


@app.get("/events")
async def events(event: H3Event) -> None:
    """The callback form."""
    event.start_sse()
    event.set_stream_callback(greet)


async def greet(writer: SSEWriter) -> None:
    """Three plain ``message`` events, then ``done``."""
    for word in GREETINGS:
        await writer.send(word)  # a str is the data of a plain "message" event
        await trio.sleep(1)
    await writer.send(SSEEvent(data="bye", event="done"))


@app.get("/inline")
async def inline(event: H3Event) -> None:
    """The inline form: the handler streams itself."""
    async with event.sse() as writer:
        await greet(writer)


if __name__ == "__main__":
    trio.run(serve, app)  # 127.0.0.1:3000 unless told otherwise
