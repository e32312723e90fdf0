"""Fan-out hub: publish a message once, every subscriber of its topic receives it.

Each subscriber owns a bounded Trio memory channel. :meth:`Broadcast.publish` is a
plain (synchronous) method that only ever uses ``send_nowait``, so it cannot block on
anyone: a subscriber whose buffer is full is *dropped* -- its channel is closed, it is
removed from the topic and counted in :meth:`Broadcast.statistics`. A slow consumer
therefore costs at most ``max_buffer`` messages of memory and never delays the others.

::

    hub: Broadcast[dict] = Broadcast()

    async def stream_chat(writer: SSEWriter) -> None:
        async with hub.subscribe("chat", max_buffer=32) as subscription:
            async for message in subscription:
                await writer.send_json(message)
        # Iteration ends when the hub dropped us (subscription.dropped) or closed.

    hub.publish("chat", {"user": "ada", "text": "hi"})  # returns the receivers' count

A dropped subscriber still receives what was already in its buffer, then its
iteration ends with ``subscription.dropped`` set: for an SSE stream the natural move is
to return, so the browser's EventSource reconnects and starts afresh.

The hub is in-memory and single-process, holds no module-level state, and must be
used from the Trio thread that runs it. Messages are delivered as the same object to
every subscriber: publish immutable values (or values nobody mutates).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

import trio

__all__ = ["Broadcast", "BroadcastStatistics", "Subscription"]

logger = logging.getLogger("trio_h3")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BroadcastStatistics:
    """A snapshot of a hub's counters (see :meth:`Broadcast.statistics`)."""

    #: Topics with at least one subscriber.
    topics: int
    #: Subscribers currently registered, over all topics.
    subscribers: int
    #: Calls to :meth:`Broadcast.publish`.
    published: int
    #: Messages put into a subscriber's buffer (one publish to 3 subscribers counts 3).
    delivered: int
    #: Subscribers dropped because their buffer was full.
    dropped: int


class Subscription(Generic[T]):
    """One subscriber's view of a topic: an async iterator of messages.

    Created by :meth:`Broadcast.subscribe`; valid inside its ``async with`` block.
    Iteration ends when the hub drops the subscriber (``dropped`` is then True) or
    when the hub is closed.
    """

    __slots__ = ("_dropped", "_receive", "_send", "max_buffer", "topic")

    def __init__(self, topic: Hashable, max_buffer: int) -> None:
        self.topic = topic
        self.max_buffer = max_buffer
        send, receive = trio.open_memory_channel[T](max_buffer)
        self._send: trio.MemorySendChannel[T] = send
        self._receive: trio.MemoryReceiveChannel[T] = receive
        self._dropped = False

    @property
    def dropped(self) -> bool:
        """True if the hub dropped this subscriber because its buffer was full."""
        return self._dropped

    @property
    def pending(self) -> int:
        """Messages waiting in the buffer (at most ``max_buffer``)."""
        return self._receive.statistics().current_buffer_used

    async def receive(self) -> T:
        """The next message; ``trio.EndOfChannel`` once dropped or the hub closed."""
        return await self._receive.receive()

    def __aiter__(self) -> AsyncIterator[T]:
        return self._receive.__aiter__()

    def __repr__(self) -> str:
        state = "dropped" if self._dropped else f"{self.pending}/{self.max_buffer} pending"
        return f"<Subscription {self.topic!r} {state}>"


class Broadcast(Generic[T]):
    """An in-memory topic -> subscribers hub with bounded per-subscriber buffers.

    ``max_buffer`` is the default buffer size (messages) for :meth:`subscribe`.
    """

    def __init__(self, *, max_buffer: int = 64) -> None:
        _check_buffer(max_buffer)
        self.max_buffer = max_buffer
        # An ordered "set" per topic: delivery follows subscription order.
        self._topics: dict[Hashable, dict[Subscription[T], None]] = {}
        self._closed = False
        self._published = 0
        self._delivered = 0
        self._dropped = 0

    @property
    def closed(self) -> bool:
        """True after :meth:`close`: publishing is a no-op, subscribing an error."""
        return self._closed

    @asynccontextmanager
    async def subscribe(
        self, topic: Hashable, *, max_buffer: int | None = None
    ) -> AsyncIterator[Subscription[T]]:
        """Subscribe to ``topic`` for the duration of the ``async with`` block.

        ``max_buffer`` (default: the hub's) is how many messages may wait unread
        before the subscriber is dropped. Leaving the block unsubscribes and frees
        the buffer, whatever the reason (return, error, cancellation).
        """
        if self._closed:
            raise RuntimeError("this Broadcast is closed")
        size = self.max_buffer if max_buffer is None else max_buffer
        _check_buffer(size)
        subscription: Subscription[T] = Subscription(topic, size)
        self._topics.setdefault(topic, {})[subscription] = None
        try:
            yield subscription
        finally:
            self._remove(subscription)
            subscription._send.close()
            subscription._receive.close()

    def publish(self, topic: Hashable, message: T) -> int:
        """Give ``message`` to every subscriber of ``topic``; never blocks.

        A subscriber whose buffer is full is dropped (its iteration ends after the
        messages already buffered). Returns how many subscribers received it.
        """
        if self._closed:
            return 0
        self._published += 1
        subscribers = self._topics.get(topic)
        if not subscribers:
            return 0
        delivered = 0
        for subscription in tuple(subscribers):
            try:
                subscription._send.send_nowait(message)
            except trio.WouldBlock:
                self._drop(subscription)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # The receiving side is gone; it unsubscribes on its way out.
                self._remove(subscription)
            else:
                delivered += 1
        self._delivered += delivered
        return delivered

    def subscriber_count(self, topic: Hashable) -> int:
        """How many subscribers ``topic`` has right now."""
        return len(self._topics.get(topic, ()))

    def statistics(self) -> BroadcastStatistics:
        """Counters for observability: subscribers, published, delivered, dropped."""
        return BroadcastStatistics(
            topics=len(self._topics),
            subscribers=sum(len(subs) for subs in self._topics.values()),
            published=self._published,
            delivered=self._delivered,
            dropped=self._dropped,
        )

    def close(self) -> None:
        """End every subscription (their iteration ends) and refuse new ones.

        Call it from a lifespan's exit so streams blocked on the hub finish.
        """
        self._closed = True
        topics, self._topics = self._topics, {}
        for subscribers in topics.values():
            for subscription in subscribers:
                subscription._send.close()

    def _drop(self, subscription: Subscription[T]) -> None:
        subscription._dropped = True
        subscription._send.close()
        self._remove(subscription)
        self._dropped += 1
        logger.debug(
            "broadcast: dropped a slow subscriber of %r (buffer of %d full)",
            subscription.topic,
            subscription.max_buffer,
        )

    def _remove(self, subscription: Subscription[T]) -> None:
        subscribers = self._topics.get(subscription.topic)
        if subscribers is None:
            return
        subscribers.pop(subscription, None)
        if not subscribers:
            del self._topics[subscription.topic]

    def __repr__(self) -> str:
        stats = self.statistics()
        return (
            f"<Broadcast {stats.topics} topics, {stats.subscribers} subscribers, "
            f"{stats.dropped} dropped>"
        )


def _check_buffer(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"max_buffer must be a positive int, not {size!r}")
