"""Presence: how many members each room has, summed over every process on a hub.

A chat's "3 here", a dashboard's viewer count: each process knows only its own
connections, and behind ``--workers N`` or several hosts the others are elsewhere.
:class:`Presence` gossips each process's counts on one topic of a :class:`Broadcast`
(in memory for one process, on Redis for many), the way Centrifugo and Phoenix Presence
keep presence out of a central store:

- each process counts its own members (:meth:`Presence.member`) and announces all of
  its counts when they change, and every ``heartbeat`` seconds (an announcement lost or
  dropped is harmless: the next one carries everything);
- a process that starts says hello, and the others answer at once; one that stops says
  goodbye (its counts go at once), and one that dies without a word is forgotten after
  ``expiry`` seconds without a heartbeat.

::

    presence = Presence(Broadcast.from_url(url), "rooms:presence")

    @app.lifespan
    async def lifespan(nursery):
        async with presence.hub, presence.running():
            yield

    @app.ws("/rooms/:room")
    async def chat(ws: WebSocket) -> None:
        await ws.accept()
        with presence.member(ws.event.params["room"]):
            ...  # presence.count(room) counts this member, in every process

Give presence a hub of its own (or at least a topic nobody else publishes on): its
announcements are plain dicts, ``{"node", "rooms", "hello"}``.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import trio

from .hub import Broadcast
from .message import BroadcastUnavailable
from .subscription import Subscription

__all__ = ["Presence"]

logger = logging.getLogger("trio_h3.broadcast")

#: Seconds between a process's announcements besides one per change (Phoenix Presence
#: broadcasts its heartbeat every few seconds; a count is at most this stale after a
#: lost announcement).
DEFAULT_HEARTBEAT = 10.0
#: The buffer of announcements per process; drop_oldest: the latest of each process is
#: what counts, and a burst of changes must never make presence a slow consumer.
_BUFFER = 1024


class Presence:
    """How many members each room has, summed over every process on ``hub``.

    ``heartbeat``: seconds between announcements besides those on change; ``expiry``
    (default three heartbeats): a process not heard from for this long has died and its
    members are no longer counted; ``farewell_timeout`` bounds the goodbye of a process
    that is stopping. Enter :meth:`running` in the app's lifespan, once ``hub`` is entered.
    """

    def __init__(
        self,
        hub: Broadcast[Any],
        topic: str = "presence",
        *,
        heartbeat: float = DEFAULT_HEARTBEAT,
        expiry: float | None = None,
        farewell_timeout: float = 5.0,
    ) -> None:
        if heartbeat <= 0:
            raise ValueError(f"heartbeat must be positive, got {heartbeat!r}")
        expiry = 3 * heartbeat if expiry is None else expiry
        if expiry <= heartbeat:
            raise ValueError(f"expiry must be longer than the heartbeat, got {expiry!r}")
        self.hub = hub
        self.topic = topic
        self.heartbeat = heartbeat
        self.expiry = expiry
        self.farewell_timeout = farewell_timeout
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

    def counts(self) -> dict[str, int]:
        """Every room with members anywhere, and how many."""
        total = Counter(self.here)
        for _, rooms in self.others.values():
            total.update(rooms)
        return {room: count for room, count in total.items() if count > 0}

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
            self.hub.subscribe(self.topic, max_buffer=_BUFFER, policy="drop_oldest") as updates,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(self._listen, updates)
            nursery.start_soon(self._announce)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
                # Shielded and bounded: a stopping process says goodbye once, and a hub
                # that is down cannot hold its shutdown (expiry covers a lost goodbye).
                with trio.CancelScope(shield=True), trio.move_on_after(self.farewell_timeout):
                    await self._publish({}, hello=False)

    async def _publish(self, rooms: dict[str, int], *, hello: bool) -> bool:
        message = {"node": self.node, "rooms": rooms, "hello": hello}
        try:
            await self.hub.publish(self.topic, message)
        except BroadcastUnavailable as exc:
            logger.warning("presence: %s (counts are sent again in %gs)", exc, self.heartbeat)
            return False
        return True

    async def _announce(self) -> None:
        """Our counts when they change and as a heartbeat; forget the silent processes."""
        hello = True
        while True:
            self._dirty = trio.Event()
            if await self._publish(dict(self.here), hello=hello):
                hello = False
            with trio.move_on_after(self.heartbeat):
                await self._dirty.wait()
            horizon = trio.current_time() - self.expiry
            for node, (heard, rooms) in list(self.others.items()):
                if heard < horizon:
                    del self.others[node]
                    self._changed(rooms, local=False)

    async def _listen(self, updates: Subscription[Any]) -> None:
        async for message in updates:
            if message.reset:
                continue  # some were missed: the heartbeats make up for them
            said = _announcement(message.data)
            if said is None:
                logger.warning("presence: ignored a message on %r that is not ours", self.topic)
                continue
            node, rooms, hello = said
            if node == self.node:
                continue
            if hello:
                self._dirty.set()  # a newcomer: tell it our counts now
            _, before = self.others.pop(node, (0.0, {}))
            if rooms:
                self.others[node] = (trio.current_time(), rooms)
            self._changed(
                {r for r in before.keys() | rooms.keys() if before.get(r) != rooms.get(r)},
                local=False,
            )


def _announcement(data: object) -> tuple[str, dict[str, int], bool] | None:
    """``(node, rooms, hello)`` from a presence message; None for anything else (a
    message someone else published on the topic must not stop the gossip)."""
    if not isinstance(data, dict):
        return None
    node, rooms, hello = data.get("node"), data.get("rooms"), data.get("hello")
    if not (isinstance(node, str) and isinstance(rooms, dict) and isinstance(hello, bool)):
        return None
    if not all(isinstance(r, str) and type(n) is int and n > 0 for r, n in rooms.items()):
        return None
    return node, rooms, hello
