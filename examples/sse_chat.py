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
leaves. The count spans every process: :class:`Presence` gossips each process's count
on a hub of its own. With ``REDIS_URL`` set the room spans processes::

    REDIS_URL=redis://127.0.0.1:6379/0 trio-h3 run examples.sse_chat:app --workers 2

The app is built by :func:`create_app` so tests (or several rooms) get their own hub.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import trio

from trio_h3 import (
    H3,
    Broadcast,
    BroadcastUnavailable,
    H3Event,
    HTMLResponse,
    HTTPError,
    SSEWriter,
    StaticFiles,
    StreamClosed,
    Subscription,
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
#: Seconds between a process's presence announcements (besides one per change).
PRESENCE_HEARTBEAT = 10.0
#: A process not heard from for this long has died: its members are no longer counted.
PRESENCE_EXPIRY = 3 * PRESENCE_HEARTBEAT
#: Bound on the goodbye of a process that is stopping.
FAREWELL_TIMEOUT = 5.0

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


class Presence:
    """How many members each room has, summed over every process on a hub.

    Each process counts its own members (:meth:`member`) and announces its counts on
    ``topic`` when they change, and every ``PRESENCE_HEARTBEAT`` seconds; each sums
    what it last heard from the others with its own. A process that starts says hello
    and the others answer at once; one that stops says goodbye (its counts go), and one
    that dies without a word is forgotten after ``PRESENCE_EXPIRY`` seconds. Enter
    :meth:`running` in the app's lifespan, once its hub is entered.
    """

    def __init__(self, hub: Broadcast[Any], topic: str) -> None:
        self.hub = hub
        self.topic = topic
        #: This process on the hub (a worker restarted is a new one).
        self.node = secrets.token_hex(8)
        #: Members here, per room.
        self.here: Counter[str] = Counter()
        #: The other processes' counts: node -> (when last heard, room -> members).
        self.others: dict[str, tuple[float, dict[str, int]]] = {}
        self._waiters: dict[str, trio.Event] = {}
        self._dirty = trio.Event()

    def count(self, room: str) -> int:
        """The members of ``room`` in every process."""
        return self.here[room] + sum(rooms.get(room, 0) for _, rooms in self.others.values())

    @contextmanager
    def member(self, room: str) -> Iterator[None]:
        """One more member of ``room`` for the duration of the block."""
        self.here[room] += 1
        self._changed({room}, local=True)
        try:
            yield
        finally:
            self.here[room] -= 1
            if not self.here[room]:
                del self.here[room]
            self._changed({room}, local=True)

    async def follow(self, room: str, send: Callable[[int], Awaitable[object]]) -> None:
        """``await send(count)`` now and whenever ``room``'s count changes, until cancelled.

        A send that waits on a slow client skips the counts it missed: the next one
        is the latest.
        """
        sent: int | None = None
        while True:
            changed = self._waiters.setdefault(room, trio.Event())
            if (count := self.count(room)) != sent:
                await send(count)
                sent = count
            await changed.wait()

    def _changed(self, rooms: Iterable[str], *, local: bool) -> None:
        for room in rooms:
            waiter = self._waiters.pop(room, None)
            if waiter is not None:
                waiter.set()
        if local:
            self._dirty.set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Gossip for the duration of the block (on the hub, entered); say goodbye at its end."""
        async with (
            # Every announcement carries all of a process's counts: one lost is harmless.
            self.hub.subscribe(self.topic, max_buffer=1024, policy="drop_oldest") as updates,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(self._listen, updates)
            nursery.start_soon(self._announce)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
                with trio.CancelScope(shield=True), trio.move_on_after(FAREWELL_TIMEOUT):
                    await self._publish({}, hello=False)

    async def _publish(self, rooms: dict[str, int], *, hello: bool) -> bool:
        message = {"node": self.node, "rooms": rooms, "hello": hello}
        try:
            await self.hub.publish(self.topic, message)
        except BroadcastUnavailable as exc:
            log.warning("presence: %s (counts are sent again in %gs)", exc, PRESENCE_HEARTBEAT)
            return False
        return True

    async def _announce(self) -> None:
        """Our counts when they change and as a heartbeat; forget the silent processes."""
        hello = True
        while True:
            self._dirty = trio.Event()
            if await self._publish(dict(self.here), hello=hello):
                hello = False
            with trio.move_on_after(PRESENCE_HEARTBEAT):
                await self._dirty.wait()
            horizon = trio.current_time() - PRESENCE_EXPIRY
            for node, (heard, rooms) in list(self.others.items()):
                if heard < horizon:
                    del self.others[node]
                    self._changed(rooms, local=False)

    async def _listen(self, updates: Subscription[Any]) -> None:
        async for message in updates:
            if message.reset:
                continue  # some were missed: the heartbeats make up for them
            node, rooms = message.data["node"], message.data["rooms"]
            if node == self.node:
                continue
            if message.data["hello"]:
                self._dirty.set()  # a newcomer: tell it our counts now
            _, before = self.others.pop(node, (0.0, {}))
            if rooms:
                self.others[node] = (trio.current_time(), rooms)
            self._changed(
                {r for r in before.keys() | rooms.keys() if before.get(r) != rooms.get(r)},
                local=False,
            )


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
