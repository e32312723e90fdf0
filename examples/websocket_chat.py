"""A WebSocket chat on the hub: ``python examples/websocket_chat.py``, then open
http://127.0.0.1:3000/.

Rooms come from the path (``/rooms/:room``); each room is a hub topic. Messages are
text lines: ``name: text``, and ``* name joined room`` / ``* name left`` as members come
and go. A client that connects with ``?members=1`` (the page does) also gets
``#members N`` whenever the room's member count changes, a count that spans every
process: :class:`Presence` gossips each process's counts on a hub of its own.

Every member subscribes with a bounded buffer; a member whose buffer overflows (a slow
reader) is dropped by the hub (policy ``"disconnect"``) and its connection closed with
1008, while the room goes on. With ``REDIS_URL`` set (``REDIS_URL=redis://127.0.0.1:6379/0
trio-h3 run examples.websocket_chat:app --workers 2``) the rooms span every worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import trio

from trio_h3 import (
    H3,
    Broadcast,
    BroadcastUnavailable,
    H3Event,
    HTMLResponse,
    StaticFiles,
    Subscription,
    WebSocket,
    WebSocketClosed,
    serve,
)

log = logging.getLogger("examples.websocket_chat")

#: Messages buffered per member before it counts as too slow and is dropped.
OUTBOX_SIZE = 32
#: Bound on the farewell publish of a member that is leaving (it may be cancelled),
#: and on the goodbye of a process that is stopping.
FAREWELL_TIMEOUT = 5.0
#: The hub topic on which the processes tell each other their member counts.
PRESENCE_TOPIC = "rooms:presence"
#: Seconds between a process's presence announcements (besides one per change).
PRESENCE_HEARTBEAT = 10.0
#: A process not heard from for this long has died: its members are no longer counted.
PRESENCE_EXPIRY = 3 * PRESENCE_HEARTBEAT
STATIC = Path(__file__).resolve().parent / "static"
PAGE = STATIC / "websocket_chat.html"


def create_hub() -> Broadcast[Any]:
    """The rooms' hub: on Redis when ``REDIS_URL`` is set, else in this process.

    No replay for a WebSocket chat (there is no Last-Event-ID): a small history only.
    """
    url = os.environ.get("REDIS_URL")
    if url:
        return Broadcast.from_url(url, history=100, max_buffer=OUTBOX_SIZE)
    return Broadcast(history=0, max_buffer=OUTBOX_SIZE)


def create_presence() -> Presence:
    """Member counts on a hub of their own (so the rooms' counters count messages only):
    on Redis when ``REDIS_URL`` is set, else in this process."""
    url = os.environ.get("REDIS_URL")
    if url:
        return Presence(Broadcast.from_url(url, history=100, history_ttl=60), PRESENCE_TOPIC)
    return Presence(Broadcast(history=0), PRESENCE_TOPIC)


def topic(room: str) -> str:
    """The hub topic of a room."""
    return f"room:{room}"


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


def create_app(hub: Broadcast[Any] | None = None, *, presence: Presence | None = None) -> H3:
    """The chat app on ``hub`` (by default :func:`create_hub`) with member counts from
    ``presence`` (by default :func:`create_presence`); its lifespan enters both."""
    rooms = hub if hub is not None else create_hub()
    people = presence if presence is not None else create_presence()
    app = H3()
    # The examples' shared stylesheet, served at /static/style.css.
    app.mount("/static", StaticFiles(STATIC))

    @app.lifespan
    async def lifespan(nursery: trio.Nursery) -> Any:
        async with rooms, people.hub, people.running():
            yield

    @app.get("/")
    async def index(event: H3Event) -> HTMLResponse:
        return HTMLResponse(PAGE.read_text())

    @app.ws("/rooms/:room")
    async def chat(ws: WebSocket) -> None:
        room = ws.event.params["room"]
        name = ws.event.query.get("name") or "anonymous"
        members = ws.event.query.get("members") == "1"
        await ws.accept()
        with people.member(room):
            async with rooms.subscribe(topic(room), policy="disconnect") as subscription:
                await rooms.publish(topic(room), f"* {name} joined {room}")
                try:
                    async with trio.open_nursery() as nursery:

                        async def deliver() -> None:
                            # One sender per member: a slow socket only stalls its own loop.
                            async for message in subscription:
                                await ws.send(message.data)
                            nursery.cancel_scope.cancel()

                        async def watch_drop() -> None:
                            # The hub dropped us (our buffer overflowed): give up the send
                            # that may be stuck on a full socket.
                            await subscription.ended.wait()
                            nursery.cancel_scope.cancel()

                        async def announce() -> None:
                            # The room's member count, now and whenever it changes.
                            with contextlib.suppress(WebSocketClosed):
                                await people.follow(room, lambda n: ws.send(f"#members {n}"))
                            nursery.cancel_scope.cancel()

                        nursery.start_soon(deliver)
                        nursery.start_soon(watch_drop)
                        if members:
                            nursery.start_soon(announce)
                        try:
                            async for text in ws:
                                if isinstance(text, bytes):
                                    text = text.decode("utf-8", "replace")
                                await rooms.publish(topic(room), f"{name}: {text}")
                        except WebSocketClosed:
                            pass  # an abnormal close: still leave the room below
                        nursery.cancel_scope.cancel()
                    if subscription.dropped:
                        await ws.close(1008, "too slow")
                finally:
                    # Shielded and bounded: the session may be cancelling this handler.
                    with trio.CancelScope(shield=True), trio.move_on_after(FAREWELL_TIMEOUT):
                        await rooms.publish(topic(room), f"* {name} left")

    return app


hub = create_hub()
app = create_app(hub)

if __name__ == "__main__":
    trio.run(serve, app)  # 127.0.0.1:3000 unless told otherwise
