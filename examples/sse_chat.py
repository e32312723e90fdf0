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
notice.

Every open ``/events`` is a member of the room. The stream starts with a ``joined``
event (``{"subscribers": N}``, the members then); ``/events?members=1`` (the page's)
also gets a ``members`` event (``{"members": N}``, no id) whenever someone joins or
leaves. The count spans every process: :class:`trio_h3.Presence` gossips each process's count
on a hub of its own. With ``REDIS_URL`` set the room spans processes::

    REDIS_URL=redis://127.0.0.1:6379/0 trio-h3 run examples.sse_chat:app --workers 2

The app is built by :func:`create_app` so tests (or several rooms) get their own hub.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import trio

from trio_h3 import (
    H3,
    Broadcast,
    H3Event,
    HTMLResponse,
    HTTPError,
    Presence,
    SSEWriter,
    StaticFiles,
    StreamClosed,
    serve,
)

log = logging.getLogger("examples.sse_chat")

TOPIC = "chat"
#: The hub topic on which the processes tell each other their member counts.
PRESENCE_TOPIC = "chat:presence"
MAX_USER = 40
MAX_TEXT = 2000
#: Messages kept for replay after a reconnect.
HISTORY = 500

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trio-h3 SSE chat</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<main>
<header class="app">
  <span class="brand">trio-h3 · Server-Sent Events</span>
  <h1>Chat</h1>
  <p>Open it in a few tabs. Each message is POSTed once and fanned out to every open page by
  the hub; a page that loses its connection gets what it missed when it is back.</p>
</header>
<p class="bar">
  <span id="status" class="status" data-state="connecting">connecting...</span>
  <span id="members" class="counts"><b id="member-count">-</b> in the room</span>
</p>
<div class="card"><ul id="messages" class="log" aria-live="polite"></ul></div>
<form id="send" class="row">
  <input id="user" placeholder="Your name" maxlength="40" required aria-label="Name">
  <input id="text" placeholder="Message" maxlength="2000" required aria-label="Message"
         autocomplete="off">
  <button id="post">Send</button>
</form>
<script>
  const status = document.getElementById("status");
  const messages = document.getElementById("messages");
  const count = document.getElementById("member-count");
  const user = document.getElementById("user");
  const text = document.getElementById("text");
  const show = (state, line) => { status.dataset.state = state; status.textContent = line; };
  const add = (line, who, kind) => {
    const item = document.createElement("li");
    if (kind) item.className = kind;
    if (who) {
      const name = document.createElement("span");
      name.className = "who";
      name.textContent = who;
      item.append(name);
    }
    item.append(line);
    messages.append(item);
    messages.scrollTop = messages.scrollHeight;
  };
  user.value = localStorage.getItem("chat-name") || "";

  const source = new EventSource("/events?members=1");
  source.addEventListener("joined", () => show("live", "connected"));
  source.addEventListener("members", (e) => { count.textContent = JSON.parse(e.data).members; });
  source.addEventListener("message", (e) => {
    const message = JSON.parse(e.data);
    add(message.text, message.user);
  });
  source.addEventListener("reset", () => {
    add("Some messages were missed while you were away.", "", "notice");
  });
  source.onerror = () => show("connecting", "reconnecting...");

  document.getElementById("send").onsubmit = async (e) => {
    e.preventDefault();
    localStorage.setItem("chat-name", user.value);
    try {
      const response = await fetch("/messages", {
        method: "POST",
        headers: {"content-type": "application/json"},
        body: JSON.stringify({user: user.value, text: text.value}),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        add("Not sent: " + (body.message || response.status), "", "error");
        return;
      }
      text.value = "";
    } catch (error) {
      add("Not sent: the server cannot be reached", "", "error");
    }
  };
</script>
</main>
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


def create_presence() -> Presence:
    """Member counts on a hub of their own (so the room's counters count messages only):
    on Redis when ``REDIS_URL`` is set, else in this process."""
    url = os.environ.get("REDIS_URL")
    if url:
        return Presence(Broadcast.from_url(url, history=100, history_ttl=60), PRESENCE_TOPIC)
    return Presence(Broadcast(history=0), PRESENCE_TOPIC)


def create_app(
    hub: Broadcast[Any] | None = None,
    *,
    presence: Presence | None = None,
    max_buffer: int = 32,
    send_timeout: float | None = 10.0,
) -> H3:
    """A chat app on ``hub`` (by default :func:`create_hub`) with member counts from
    ``presence`` (by default :func:`create_presence`); its lifespan enters both.

    ``max_buffer`` is each client's backlog in messages before the hub drops it;
    ``send_timeout`` bounds every write to a client (a stuck socket ends the stream).
    """
    room = hub if hub is not None else create_hub(max_buffer=max_buffer)
    people = presence if presence is not None else create_presence()
    app = H3()
    # The examples' shared stylesheet, served at /static/style.css.
    app.mount("/static", StaticFiles(Path(__file__).resolve().parent / "static"))

    @app.lifespan
    async def lifespan(nursery: trio.Nursery) -> Any:
        async with room, people.hub, people.running():
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
        """Join the room: a stream of ``message`` events (replayed after Last-Event-ID),
        and of ``members`` events with ``?members=1``."""
        event.start_sse(send_timeout=send_timeout)
        members = event.query.get("members") == "1"
        event.set_stream_callback(stream_chat, room, people, max_buffer, members)

    @app.get("/stats")
    async def stats(event: H3Event) -> dict[str, int]:
        """The hub's counters: subscribers, published, delivered, dropped, replayed..."""
        return asdict(room.statistics())

    return app


async def stream_chat(
    writer: SSEWriter, room: Broadcast[Any], people: Presence, max_buffer: int, members: bool
) -> None:
    """Relay the room's messages to one client until it leaves or the hub drops it.

    The by-hand form of ``room.stream(event, TOPIC)``, to send a ``joined`` event first
    and, if asked, the member count as it changes.
    """

    async def send_members(count: int) -> None:
        await writer.send_json({"members": count}, event="members")

    with people.member(TOPIC):
        async with room.subscribe(
            TOPIC, last_event_id=writer.last_event_id, max_buffer=max_buffer
        ) as subscription:
            # Sent once subscribed: a client that has read "joined" misses nothing after it.
            await writer.send_json({"subscribers": people.count(TOPIC)}, event="joined")
            try:
                async with trio.open_nursery() as nursery:
                    if members:
                        nursery.start_soon(people.follow, TOPIC, send_members)
                    async for message in subscription:
                        await writer.send_json(message.data, event=message.event, id=message.id)
                    nursery.cancel_scope.cancel()
            except* StreamClosed:
                pass  # a send found the stream over (its send timeout): nothing left to do
    if subscription.dropped:
        # Too slow to keep up. Ending the stream lets EventSource reconnect and
        # replay from its Last-Event-ID instead of lagging further behind.
        log.info("dropped a slow chat client %s", writer.event.client)


app = create_app()

if __name__ == "__main__":
    trio.run(serve, app)  # 127.0.0.1:3000 unless told otherwise
