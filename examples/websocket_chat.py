"""A WebSocket chat: ``python examples/websocket_chat.py`` then open http://127.0.0.1:3000/.

Rooms come from the path (``/rooms/:room``). Every member has a bounded outbox; the room
fans a message out with ``send_nowait``, so a member whose outbox is full (a slow
reader) is dropped with close code 1008 instead of blocking the room. Members leave the
room when they disconnect, whichever way that happens.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import trio

from trio_h3 import H3, H3Event, HTMLResponse, WebSocket, WebSocketClosed, serve

#: Messages buffered per member before it counts as too slow and is dropped.
OUTBOX_SIZE = 32
PAGE = Path(__file__).parent / "static" / "websocket_chat.html"


@dataclass(eq=False)
class Member:
    """One connected client: its name and the sending side of its outbox."""

    name: str
    outbox: trio.MemorySendChannel[str]
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    dropped: bool = False


@dataclass
class Rooms:
    """Members per room name; empty rooms disappear."""

    members: dict[str, set[Member]] = field(default_factory=lambda: defaultdict(set))

    def join(self, room: str, member: Member) -> None:
        self.members[room].add(member)

    def leave(self, room: str, member: Member) -> None:
        self.members[room].discard(member)
        if not self.members[room]:
            del self.members[room]

    def broadcast(self, room: str, text: str) -> None:
        """Queue ``text`` for every member without waiting; drop members that lag."""
        for member in list(self.members.get(room, ())):
            try:
                member.outbox.send_nowait(text)
            except trio.WouldBlock:
                # Its sender may be stuck on a full socket: stop the member's tasks,
                # its handler then closes the connection with 1008.
                member.dropped = True
                member.scope.cancel()
                self.leave(room, member)
            except trio.ClosedResourceError:
                self.leave(room, member)


app = H3()
rooms = Rooms()


@app.get("/")
async def index(event: H3Event) -> HTMLResponse:
    return HTMLResponse(PAGE.read_text())


@app.ws("/rooms/:room")
async def chat(ws: WebSocket) -> None:
    room = ws.event.params["room"]
    name = ws.event.query.get("name") or "anonymous"
    outbox, inbox = trio.open_memory_channel[str](OUTBOX_SIZE)
    member = Member(name, outbox)
    await ws.accept()
    rooms.join(room, member)
    rooms.broadcast(room, f"* {name} joined {room}")
    try:
        with member.scope:
            async with trio.open_nursery() as nursery:

                async def deliver() -> None:
                    # One sender per member: a slow socket only stalls its own loop.
                    async with inbox:
                        async for text in inbox:
                            await ws.send(text)

                nursery.start_soon(deliver)
                try:
                    async for message in ws:
                        if isinstance(message, bytes):
                            message = message.decode("utf-8", "replace")
                        text = message
                        rooms.broadcast(room, f"{name}: {text}")
                except WebSocketClosed:
                    pass  # an abnormal close: still leave the room below
                nursery.cancel_scope.cancel()
        if member.dropped:
            await ws.close(1008, "too slow")
    finally:
        # Synchronous, so it runs even when the session cancels this handler.
        rooms.leave(room, member)
        outbox.close()
        rooms.broadcast(room, f"* {name} left")


if __name__ == "__main__":
    trio.run(serve, app)  # 127.0.0.1:3000 unless told otherwise
