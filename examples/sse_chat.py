"""A chat room over SSE on the hub: ``python examples/sse_chat.py``.

Open http://127.0.0.1:3000/ in a few tabs. ``POST /messages`` with
``{"user": ..., "text": ...}`` publishes a message; every client connected to
``GET /events`` receives it as a ``message`` event. ``GET /stats`` shows the hub's
counters (this process's).

Fan-out goes through :class:`trio_h3.Broadcast`. Each message gets the hub's id, sent
as the SSE ``id``: a browser that loses its connection reconnects with
``Last-Event-ID`` and the hub replays what it missed, then goes on live; if that is
older than the history, a ``reset`` event tells the page (it says so). A client that
stops reading fills its socket, then its buffer, and is then dropped by the hub: its
stream ends, and EventSource reconnects and replays -- the other clients never
notice. With ``REDIS_URL`` set the room spans processes::

    REDIS_URL=redis://127.0.0.1:6379/0 trio-h3 run examples.sse_chat:app --workers 2

The app is built by :func:`create_app` so tests (or several rooms) get their own hub.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from typing import Any

import trio

from trio_h3 import H3, Broadcast, H3Event, HTMLResponse, HTTPError, SSEWriter, serve

log = logging.getLogger("examples.sse_chat")

TOPIC = "chat"
MAX_USER = 40
MAX_TEXT = 2000
#: Messages kept for replay after a reconnect.
HISTORY = 500

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>trio-h3 SSE chat</title></head>
<body>
<h1>Chat</h1>
<p id="status">connecting...</p>
<ul id="messages"></ul>
<form id="send">
  <input id="user" placeholder="name" size="10" required>
  <input id="text" placeholder="message" size="40" required>
  <button>Send</button>
</form>
<script>
  const status = document.getElementById("status");
  const messages = document.getElementById("messages");
  const source = new EventSource("/events");
  source.addEventListener("joined", (e) => {
    status.textContent = "connected, " + JSON.parse(e.data).subscribers + " in the room";
  });
  source.addEventListener("message", (e) => {
    const message = JSON.parse(e.data);
    const item = document.createElement("li");
    item.textContent = message.user + ": " + message.text;
    messages.appendChild(item);
  });
  source.addEventListener("reset", () => {
    const item = document.createElement("li");
    item.textContent = "(some messages were missed while you were away)";
    messages.appendChild(item);
  });
  source.onerror = () => { status.textContent = "reconnecting..."; };
  document.getElementById("send").onsubmit = async (e) => {
    e.preventDefault();
    const text = document.getElementById("text");
    await fetch("/messages", {
      method: "POST",
      headers: {"content-type": "application/json"},
      body: JSON.stringify({user: document.getElementById("user").value, text: text.value}),
    });
    text.value = "";
  };
</script>
</body>
</html>
"""


def parse_message(data: Any) -> tuple[str, str]:
    """``(user, text)`` from a POSTed JSON body; anything malformed is a 400."""
    if not isinstance(data, dict):
        raise HTTPError(400, 'Expected a JSON object {"user": ..., "text": ...}')
    user, text = data.get("user"), data.get("text")
    if not isinstance(user, str) or not user.strip() or len(user) > MAX_USER:
        raise HTTPError(400, f"'user' must be a non-empty string of at most {MAX_USER} characters")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise HTTPError(400, f"'text' must be a non-empty string of at most {MAX_TEXT} characters")
    return user.strip(), text


def create_hub(*, max_buffer: int = 32) -> Broadcast[Any]:
    """The room's hub: on Redis when ``REDIS_URL`` is set, else in this process."""
    url = os.environ.get("REDIS_URL")
    if url:
        return Broadcast.from_url(url, history=HISTORY, max_buffer=max_buffer)
    return Broadcast(history=HISTORY, max_buffer=max_buffer)


def create_app(
    hub: Broadcast[Any] | None = None,
    *,
    max_buffer: int = 32,
    send_timeout: float | None = 10.0,
) -> H3:
    """A chat app on ``hub`` (by default :func:`create_hub`); its lifespan enters it.

    ``max_buffer`` is each client's backlog in messages before the hub drops it;
    ``send_timeout`` bounds every write to a client (a stuck socket ends the stream).
    """
    room = hub if hub is not None else create_hub(max_buffer=max_buffer)
    app = H3()

    @app.lifespan
    async def lifespan(nursery: trio.Nursery) -> Any:
        async with room:
            yield

    @app.get("/")
    async def index(event: H3Event) -> HTMLResponse:
        """The chat page."""
        return HTMLResponse(PAGE)

    @app.post("/messages")
    async def post_message(event: H3Event) -> dict[str, str]:
        """Publish a message to every connected client; never waits for any of them."""
        user, text = parse_message(await event.json())
        message_id = await room.publish(TOPIC, {"user": user, "text": text}, event="message")
        event.status = 201
        return {"id": message_id}

    @app.get("/events")
    async def events(event: H3Event) -> None:
        """Join the room: a stream of ``message`` events (replayed after Last-Event-ID)."""
        event.start_sse(send_timeout=send_timeout)
        event.set_stream_callback(stream_chat, room, max_buffer)

    @app.get("/stats")
    async def stats(event: H3Event) -> dict[str, int]:
        """The hub's counters: subscribers, published, delivered, dropped, replayed..."""
        return asdict(room.statistics())

    return app


async def stream_chat(writer: SSEWriter, room: Broadcast[Any], max_buffer: int) -> None:
    """Relay the room's messages to one client until it leaves or the hub drops it.

    The by-hand form of ``room.stream(event, TOPIC)``, to send a ``joined`` event first.
    """
    async with room.subscribe(
        TOPIC, last_event_id=writer.last_event_id, max_buffer=max_buffer
    ) as subscription:
        # Sent once subscribed: a client that has read "joined" misses nothing after it.
        await writer.send_json({"subscribers": room.subscriber_count(TOPIC)}, event="joined")
        async for message in subscription:
            await writer.send_json(message.data, event=message.event, id=message.id)
    if subscription.dropped:
        # Too slow to keep up. Ending the stream lets EventSource reconnect and
        # replay from its Last-Event-ID instead of lagging further behind.
        log.info("dropped a slow chat client %s", writer.event.client)


app = create_app()

if __name__ == "__main__":
    trio.run(serve, app)  # 127.0.0.1:3000 unless told otherwise
