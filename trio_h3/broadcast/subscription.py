"""One subscriber: a bounded buffer with a slow-consumer policy, and the rule that makes
replay exact -- hand out each position once, in order, and notice every hole.

A subscription is registered *before* its history is read, so a message published
while the replay is being fetched lands in the buffer as well as (perhaps) in the
replay; whatever is at or below the last position handed out is dropped as a
duplicate. Every entry names the position before it (``previous``): a live entry
whose ``previous`` is not the last position handed out means something was missed
(a reader that reconnected, two subscribers racing on a new topic), and the gap is
fetched from the history -- or, when it is gone, announced with a ``reset``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import trio

from .message import (
    ORIGIN,
    RESET_OTHER_EPOCH,
    RESET_SLOW,
    RESET_TRIMMED,
    BroadcastMessage,
    Entry,
    Position,
    SlowConsumerPolicy,
    Start,
)

__all__ = ["Subscription"]

T = TypeVar("T")

Fill = Callable[[Hashable, str, Position, Position], Awaitable[tuple[Entry, ...] | None]]
FormatId = Callable[[str, Position], str]


@dataclass
class Counters:
    """A hub's running totals, shared with its subscriptions (internal)."""

    published: int = 0
    delivered: int = 0
    dropped: int = 0
    replayed: int = 0
    resets: int = 0


@dataclass(frozen=True, slots=True)
class _Reset:
    epoch: str
    position: Position
    id: str
    reason: str


_Item = tuple[Entry | _Reset, bool]  # (what, came from the history)


class Subscription(Generic[T]):
    """One subscriber's view of a topic: an async iterator of :class:`BroadcastMessage`.

    Created by :meth:`Broadcast.subscribe`; valid inside its ``async with`` block, and
    read by one task. It yields the replay (after the ``last_event_id`` given), then
    live messages, each position once and in order; a ``reset`` message (``.reset``
    True) when messages were missed and cannot be replayed. Iteration ends when the
    hub closes or, with policy ``"disconnect"``, when the buffer overflowed (``dropped``
    is then True).
    """

    __slots__ = (
        "_buffer",
        "_claimed",
        "_closed",
        "_counters",
        "_dropped",
        "_ended",
        "_epoch",
        "_fill",
        "_floor",
        "_format",
        "_last",
        "_left",
        "_lot",
        "_replay",
        "_waiting",
        "max_buffer",
        "policy",
        "topic",
    )

    def __init__(
        self,
        topic: Hashable,
        max_buffer: int,
        policy: SlowConsumerPolicy,
        counters: Counters,
        fill: Fill,
        format_id: FormatId,
    ) -> None:
        self.topic = topic
        self.max_buffer = max_buffer
        self.policy: SlowConsumerPolicy = policy
        self._counters = counters
        self._fill = fill
        self._format = format_id
        self._buffer: deque[_Item] = deque()
        self._replay: deque[_Item] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        # A consumer parked on an empty buffer takes the next entry straight away, as a
        # memory channel hands a value to a waiting receiver: that entry does not count
        # against max_buffer (so max_buffer=1 keeps up with a reader that keeps up).
        self._waiting = False
        self._claimed = 0
        self._closed = False
        self._ended: trio.Event | None = None
        self._left = False
        self._dropped = False
        self._epoch = ""
        self._last: Position = ORIGIN
        # The highest position a policy discarded on purpose: no hole to fill below it.
        self._floor: Position = ORIGIN

    @property
    def dropped(self) -> bool:
        """True if policy ``"disconnect"`` ended this subscriber (its buffer was full)."""
        return self._dropped

    @property
    def ended(self) -> trio.Event:
        """Set when the hub ends this subscription (``dropped``, or the hub closed): a
        task stuck sending to a slow client can wait on it and give up."""
        if self._ended is None:
            self._ended = trio.Event()
            if self._closed:
                self._ended.set()
        return self._ended

    @property
    def started(self) -> bool:
        """True once the starting point is known (the history was read): from then on,
        everything published reaches this subscription."""
        return bool(self._epoch)

    @property
    def pending(self) -> int:
        """Live messages waiting in the buffer (at most ``max_buffer``)."""
        return len(self._buffer)

    @property
    def last_id(self) -> str | None:
        """The id of the last message handed out (the start position before any)."""
        return self._format(self._epoch, self._last) if self._epoch else None

    # -- the hub's side -------------------------------------------------------------------

    def begin(self, start: Start, after: Position | None) -> None:
        """Set the starting point from the backend's answer (internal)."""
        self._epoch = start.epoch
        if start.reset is not None:
            self._last = start.top
            self._replay.append((_Reset(start.epoch, start.top, start.top_id, start.reset), True))
        elif after is None:
            # A first connection starts now. What the buffer already holds arrived after
            # the subscription was registered: hand it out too (nothing can repeat, as
            # nothing is replayed).
            first = next((e for e, _ in self._buffer if isinstance(e, Entry)), None)
            if first is not None and first.epoch == start.epoch:
                self._last = min(first.previous, start.top)
            else:
                self._last = start.top
        else:
            self._last = after
            self._replay.extend((entry, True) for entry in start.replay)

    def offer(self, entry: Entry) -> bool:
        """Buffer a live entry (internal); False when the subscriber must be removed."""
        if self._closed:
            return False
        buffer = self._buffer
        if len(buffer) - self._claimed >= self.max_buffer:
            policy = self.policy
            if policy == "disconnect":
                self._dropped = True
                self._counters.dropped += 1
                self.close()
                return False
            if policy == "drop_oldest":
                index = 0 if isinstance(buffer[0][0], Entry) else 1
                dropped = buffer[index][0]
                del buffer[index]
                self._floor = max(self._floor, dropped.position)
                self._counters.dropped += 1
            else:  # "resync": skip the whole backlog and this entry, say so once
                self._counters.dropped += len(buffer) + 1
                buffer.clear()
                self._floor = max(self._floor, entry.position)
                reset = _Reset(entry.epoch, entry.position, entry.id, RESET_SLOW)
                buffer.append((reset, False))
                return True
        buffer.append((entry, False))
        if self._waiting:
            self._waiting = False
            self._claimed = 1
            self._lot.unpark_all()
        return True

    def close(self) -> None:
        """No more messages will come: iteration ends after the buffer (internal)."""
        self._closed = True
        self._waiting = False
        self._lot.unpark_all()
        if self._ended is not None:
            self._ended.set()

    def leave(self) -> None:
        """The ``async with`` block ended (internal): later reads raise."""
        self.close()
        self._left = True
        self._buffer.clear()
        self._replay.clear()

    # -- the consumer's side --------------------------------------------------------------

    async def receive(self) -> BroadcastMessage[T]:
        """The next message; ``trio.EndOfChannel`` once the iteration has ended."""
        await trio.lowlevel.checkpoint_if_cancelled()
        parked = False
        while True:
            if self._left:
                raise trio.ClosedResourceError("this subscription's block has ended")
            if self._replay:
                item = self._replay.popleft()
            elif self._buffer:
                item = self._buffer.popleft()
                self._claimed = 0
            elif self._closed:
                raise trio.EndOfChannel("the subscription ended")
            else:
                self._waiting = True
                try:
                    await self._lot.park()
                finally:
                    self._waiting = False
                parked = True
                continue
            message = await self._accept(*item)
            if message is not None:
                if not parked:  # a receive that found its message waiting still yields
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return message

    async def _accept(self, item: Entry | _Reset, replayed: bool) -> BroadcastMessage[T] | None:
        if isinstance(item, _Reset):
            self._epoch, self._last = item.epoch, item.position
            self._floor = max(self._floor, item.position)
            self._counters.resets += 1
            notice: Any = {"reason": item.reason}
            return BroadcastMessage(self.topic, item.id, notice, "reset", True, reason=item.reason)
        entry = item
        if entry.epoch != self._epoch:
            # The store began a new life (flushed, restarted empty, evicted): what came
            # before this entry in it is unknown to us, so say so, then go on from here.
            self._replay.appendleft((entry, replayed))
            reset_id = self._format(entry.epoch, entry.previous)
            self._replay.appendleft(
                (_Reset(entry.epoch, entry.previous, reset_id, RESET_OTHER_EPOCH), replayed)
            )
            self._floor = ORIGIN
            return None
        if entry.position <= self._last:
            return None  # already handed out (replay and live overlap)
        if entry.previous != self._last and entry.previous > self._floor:
            hole = await self._fill(self.topic, entry.epoch, self._last, entry.position)
            self._replay.appendleft((entry, replayed))
            if hole and hole[0].previous == self._last and hole[-1].position == entry.previous:
                self._replay.extendleft((missed, True) for missed in reversed(hole))
            else:
                # Gone from the history (or it no longer links up): a reset, never a
                # silent hole.
                reset_id = self._format(entry.epoch, entry.previous)
                reset = _Reset(entry.epoch, entry.previous, reset_id, RESET_TRIMMED)
                self._replay.appendleft((reset, True))
            return None
        self._last = entry.position
        if replayed:
            self._counters.replayed += 1
        else:
            self._counters.delivered += 1
        data: Any = entry.data
        return BroadcastMessage(self.topic, entry.id, data, entry.event, False, replayed)

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> BroadcastMessage[T]:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        if self._dropped:
            state = "dropped"
        else:
            state = f"{self.pending}/{self.max_buffer} pending, {self.policy}"
        return f"<Subscription {self.topic!r} {state}>"
