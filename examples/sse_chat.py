"""A chat room over SSE with a fan-out hub: ``python examples/sse_chat.py``.

Open http://127.0.0.1:3000/ in a few tabs. ``POST /messages`` with
``{"user": ..., "text": ...}`` publishes a message; every client connected to
``GET /events`` receives it as a ``message`` event. ``GET /stats`` shows the hub's
counters.

Fan-out goes through :class:`trio_h3.broadcast.Broadcast`: each stream subscribes with
a bounded buffer, and publishing never waits for anyone. A client that stops reading
first fills its socket, then its buffer, and is then dropped by the hub -- the other
clients never notice. The dropped stream's iteration ends; if its socket is stuck,
``send_timeout`` ends the stream soon after, so memory stays bounded either way.

The app is built by :func:`create_app` so tests (or several rooms) get their own hub.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import asdict, dataclass
from typing import Any

import trio

from trio_h3 import H3, Broadcast, H3Event, HTMLResponse, HTTPError, SSEWriter, serve

log = logging.getLogger("examples.sse_chat")

TOPIC = "chat"
MAX_USER = 40
MAX_TEXT = 2000

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


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat message. Frozen: the hub hands the same object to every subscriber."""

    id: int
    user: str
    text: str


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


def create_app(
    hub: Broadcast[ChatMessage] | None = None,
    *,
    max_buffer: int = 32,
    send_timeout: float | None = 10.0,
) -> H3:
    """A chat app on ``hub`` (a new one by default).

    ``max_buffer`` is each client's backlog in messages before the hub drops it;
    ``send_timeout`` bounds every write to a client (a stuck socket ends the stream).
    """
    room: Broadcast[ChatMessage] = hub if hub is not None else Broadcast(max_buffer=max_buffer)
    ids = itertools.count(1)
    app = H3()

    @app.get("/")
    async def index(event: H3Event) -> HTMLResponse:
        """The chat page."""
        return HTMLResponse(PAGE)

    @app.post("/messages")
    async def post_message(event: H3Event) -> dict[str, int]:
        """Publish a message to every connected client; never waits for any of them."""
        user, text = parse_message(await event.json())
        message = ChatMessage(next(ids), user, text)
        delivered = room.publish(TOPIC, message)
        event.status = 201
        return {"id": message.id, "delivered": delivered}

    @app.get("/events")
    async def events(event: H3Event) -> None:
        """Join the room: a stream of ``message`` events."""
        event.start_sse(send_timeout=send_timeout)
        event.set_stream_callback(stream_chat, room, max_buffer)

    @app.get("/stats")
    async def stats(event: H3Event) -> dict[str, int]:
        """The hub's counters: subscribers, published, delivered, dropped."""
        return asdict(room.statistics())

    return app


async def stream_chat(writer: SSEWriter, room: Broadcast[ChatMessage], max_buffer: int) -> None:
    """Relay the room's messages to one client until it leaves or the hub drops it."""
    async with room.subscribe(TOPIC, max_buffer=max_buffer) as subscription:
        # Sent once subscribed: a client that has read "joined" misses nothing after it.
        await writer.send_json({"subscribers": room.subscriber_count(TOPIC)}, event="joined")
        async for message in subscription:
            await writer.send_json(asdict(message), event="message", id=str(message.id))
    if subscription.dropped:
        # Too slow to keep up. Ending the stream lets EventSource reconnect and
        # start afresh instead of lagging further behind.
        log.info("dropped a slow chat client %s", writer.event.client)


app = create_app()

if __name__ == "__main__":
    trio.run(serve, app)  # 127.0.0.1:3000 unless told otherwise
