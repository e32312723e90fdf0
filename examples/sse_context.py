"""A callback that uses the request: ``python examples/sse_context.py``.

Open http://127.0.0.1:3000/ . ``GET /rooms/:room/events?count=20&batch=5`` streams the
updates ``0 .. count-1`` of a room as ``update`` events with ids. The callback reads:

- the route parameter ``room`` (``writer.event.params``);
- the query (``count``: updates in all, ``batch``: updates per connection), parsed and
  validated by the handler and passed as callback arguments, like
  ``nursery.start_soon(fn, *args)``;
- ``writer.last_event_id``: the ``Last-Event-ID`` header a reconnecting EventSource
  sends, so the stream resumes at the next id instead of starting over.

To show resumption live, each connection sends only ``batch`` updates and then ends;
the browser reconnects after ``retry`` ms with ``Last-Event-ID`` and gets the next
batch. After the last update comes a ``done`` event.
"""

from __future__ import annotations

from pathlib import Path

import trio

from trio_h3 import H3, H3Event, HTMLResponse, HTTPError, SSEEvent, SSEWriter, StaticFiles, serve

app = H3()

# The examples' shared stylesheet, served at /static/style.css.
app.mount("/static", StaticFiles(Path(__file__).resolve().parent / "static"))

#: Seconds between updates.
UPDATE_INTERVAL = 0.5
#: Reconnection delay the server asks browsers to use (ms).
RETRY_MS = 500

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trio-h3 SSE with context</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<main>
<header class="app">
  <span class="brand">trio-h3 · Server-Sent Events</span>
  <h1>Room <span id="room">lobby</span></h1>
  <p>Each connection gets a batch of five updates, then ends; the browser reconnects with
  <code>Last-Event-ID</code> and the stream resumes where it stopped.</p>
</header>
<p id="status" class="status" data-state="connecting">connecting...</p>
<div class="card"><ol class="log" id="updates" start="0"></ol></div>
<script>
  const room = "lobby";
  const source = new EventSource("/rooms/" + room + "/events?count=20&batch=5");
  const status = document.getElementById("status");
  const show = (state, text) => { status.dataset.state = state; status.textContent = text; };
  let connects = 0;
  source.onopen = () => { connects += 1; show("live", "connected (connection " + connects + ")"); };
  source.onerror = () => show("connecting", "the server ended a batch: reconnecting...");
  source.addEventListener("update", (e) => {
    const update = JSON.parse(e.data);
    const item = document.createElement("li");
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = "id " + e.lastEventId;
    item.append(meta, update.text);
    document.getElementById("updates").appendChild(item);
  });
  source.addEventListener("done", (e) => { show("done", e.data); source.close(); });
</script>
</main>
</body>
</html>
"""


def int_query(event: H3Event, name: str, default: int, *, low: int, high: int) -> int:
    """Query parameter ``name`` as an int in ``[low, high]``; anything else is a 400."""
    raw = event.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPError(400, f"Query parameter {name!r} must be an integer") from None
    if not low <= value <= high:
        raise HTTPError(400, f"Query parameter {name!r} must be between {low} and {high}")
    return value


def resume_from(last_event_id: str | None) -> int:
    """The first id to send: one past ``Last-Event-ID``, or 0 without a usable one."""
    if last_event_id is None:
        return 0
    try:
        last = int(last_event_id)
    except ValueError:
        return 0  # not one of ours: start over rather than fail
    return max(last + 1, 0)


@app.get("/")
async def index(event: H3Event) -> HTMLResponse:
    """The page that listens with EventSource."""
    return HTMLResponse(PAGE)


@app.get("/rooms/:room/events")
async def room_events(event: H3Event) -> None:
    """Validate the query in the handler (a bad one is a 400, not a broken stream)."""
    count = int_query(event, "count", 20, low=1, high=10_000)
    batch = int_query(event, "batch", 5, low=1, high=10_000)
    event.start_sse(retry=RETRY_MS)
    event.set_stream_callback(stream_room, count, batch)


async def stream_room(writer: SSEWriter, count: int, batch: int) -> None:
    """Send the next ``batch`` updates after ``Last-Event-ID``; ``done`` after the last."""
    room = writer.event.params["room"]
    start = resume_from(writer.last_event_id)
    end = min(start + batch, count)
    for seq in range(start, end):
        update = {"room": room, "seq": seq, "text": f"update {seq} in {room}"}
        await writer.send_json(update, event="update", id=str(seq))
        await trio.sleep(UPDATE_INTERVAL)
    if end >= count:
        await writer.send(SSEEvent(data=f"all {count} updates of {room} sent", event="done"))
    # Otherwise just return: the stream ends cleanly and EventSource reconnects with
    # Last-Event-ID set to the last id above.


if __name__ == "__main__":
    trio.run(serve, app)  # 127.0.0.1:3000 unless told otherwise
