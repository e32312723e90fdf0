"""A WebSocket chat on the hub: ``python examples/websocket_chat.py``, then open
http://127.0.0.1:3000/.

Rooms come from the path (``/rooms/:room``); each room is a hub topic. Messages are
text lines: ``name: text``, and ``* name joined room`` / ``* name left`` as members come
and go. A client that connects with ``?members=1`` (the page does) also gets
``#members N`` whenever the room's member count changes, a count that spans every
process: :class:`trio_h3.Presence` gossips each process's counts on a hub of its own.

Every member subscribes with a bounded buffer; a member whose buffer overflows (a slow
reader) is dropped by the hub (policy ``"disconnect"``) and its connection closed with
1008, while the room goes on. With ``REDIS_URL`` set (``REDIS_URL=redis://127.0.0.1:6379/0
trio-h3 run examples.websocket_chat:app --workers 2``) the rooms span every worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import trio

from trio_h3 import (
    H3,
    Broadcast,
    H3Event,
    HTMLResponse,
    Presence,
    StaticFiles,
    WebSocket,
    WebSocketClosed,
    serve,
)

log = logging.getLogger("examples.websocket_chat")

#: Messages buffered per member before it counts as too slow and is dropped.
OUTBOX_SIZE = 32
#: Bound on the farewell publish of a member that is leaving (it may be cancelled).
FAREWELL_TIMEOUT = 5.0
#: The hub topic on which the processes tell each other their member counts.
PRESENCE_TOPIC = "rooms:presence"
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
