"""Broadcast: publish once, every subscriber of the topic receives it -- in this process
(memory) or in every process (Redis) -- with replay after a Last-Event-ID.

The hub owns the subscribers of this process: topic -> subscriptions, each with its
bounded buffer and slow-consumer policy. Delivery to them never waits (a full buffer
applies the policy at once), so one slow subscriber never delays a publish or another
subscriber. Where messages are numbered and kept is the backend's business
(:mod:`.memory`, :mod:`.redis`).
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import trio

from ..sse.encoding import SSEEvent
from .backend import Backend
from .memory import MemoryBackend
from .message import (
    POLICIES,
    RESET_UNKNOWN_ID,
    BroadcastStatistics,
    Entry,
    Position,
    SlowConsumerPolicy,
    Start,
    format_id,
    parse_id,
)
from .subscription import Counters, Subscription

if TYPE_CHECKING:
    from ..event import H3Event
    from ..sse.writer import SSEWriter

__all__ = ["Broadcast"]

logger = logging.getLogger("trio_h3")

T = TypeVar("T")

#: Messages kept per topic for replay. Centrifugo leaves history off unless configured;
#: django-eventstream keeps a fixed 10, too few for a chat. 1,000 covers a reconnect
#: after a network blip at a few messages a second.
DEFAULT_HISTORY = 1000
#: Seconds a message stays replayable: a reconnect is seconds away (EventSource
#: retries after ~3 s); 5 minutes covers a flaky train ride, longer is a new visit
#: (Centrifugo's examples use history_ttl 300 s).
DEFAULT_HISTORY_TTL = 300.0
#: Live messages a subscriber may have waiting (the old hub's 64).
DEFAULT_MAX_BUFFER = 64


def _check_positive_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive int" if minimum else "a non-negative int"
        raise ValueError(f"{name} must be {kind}, not {value!r}")
    return value


def _check_policy(policy: object) -> SlowConsumerPolicy:
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    return policy


def default_encode(data: Any) -> str:
    """SSE data for a message: a ``str`` as it is, anything else as JSON."""
    return data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))


class Broadcast(Generic[T]):
    """A topic -> subscribers hub with replay after ``Last-Event-ID``.

    ``Broadcast(history=1000, history_ttl=300)`` keeps messages in this process;
    ``Broadcast.from_url("redis://...")`` shares topics between processes through
    Redis. ``max_buffer`` and ``policy`` are the defaults for :meth:`subscribe`.
    Enter it (``async with hub:``, in the app's lifespan) to start its background
    task -- required for Redis, a sweeper of aged-out history for memory.
    """

    #: In-memory hubs alive in this process (``trio-h3 run --workers`` warns about them).
    _local_hubs: ClassVar[weakref.WeakSet[Broadcast[Any]]] = weakref.WeakSet()

    def __init__(
        self,
        *,
        history: int = DEFAULT_HISTORY,
        history_ttl: float | None = DEFAULT_HISTORY_TTL,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        policy: SlowConsumerPolicy = "disconnect",
        backend: Backend | None = None,
    ) -> None:
        _check_positive_int("history", history, 0)
        if history_ttl is not None and not history_ttl > 0:
            raise ValueError(f"history_ttl must be positive or None, not {history_ttl!r}")
        self.max_buffer = _check_positive_int("max_buffer", max_buffer, 1)
        self.policy = _check_policy(policy)
        self.backend: Backend = backend or MemoryBackend(history=history, history_ttl=history_ttl)
        self.backend.bind(self._deliver)
        self._compact_ids = isinstance(self.backend, MemoryBackend)
        # An ordered "set" per topic: delivery follows subscription order.
        self._topics: dict[Hashable, dict[Subscription[T], None]] = {}
        self._counters = Counters()
        self._closed = False
        self._stack: AsyncExitStack | None = None
        if not self.backend.shared:
            type(self)._local_hubs.add(self)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        history: int = DEFAULT_HISTORY,
        history_ttl: float | None = DEFAULT_HISTORY_TTL,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        policy: SlowConsumerPolicy = "disconnect",
        **redis_options: Any,
    ) -> Broadcast[Any]:
        """A hub on Redis (``redis://`` or ``rediss://``; ``pip install 'trio-h3[redis]'``).

        Messages must be JSON-serialisable (or give ``encode=``/``decode=``, functions
        between the data and ``str``); ``key_prefix`` (default ``"trio-h3"``),
        ``publish_timeout`` and ``reconnect_max_delay`` are the backend's options, the
        rest go to ``coredis.Redis.from_url``.
        """
        from .redis import RedisBackend  # coredis only for those who ask for Redis

        backend = RedisBackend(url, history=history, history_ttl=history_ttl, **redis_options)
        return cls(max_buffer=max_buffer, policy=policy, backend=backend)

    @classmethod
    def in_memory_hubs(cls) -> list[Broadcast[Any]]:
        """The in-memory hubs alive in this process: each reaches this process only."""
        return [hub for hub in cls._local_hubs if not hub.closed]

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True after :meth:`close`: publishing is a no-op, subscribing an error."""
        return self._closed

    async def __aenter__(self) -> Broadcast[T]:
        if self._stack is not None:
            raise RuntimeError("this Broadcast is already entered")
        async with AsyncExitStack() as stack:
            nursery = await stack.enter_async_context(trio.open_nursery())
            stack.callback(nursery.cancel_scope.cancel)
            await nursery.start(self.backend.run)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._stack = self._stack, None
        self.close()
        if stack is not None:
            await stack.aclose()

    def close(self) -> None:
        """End every subscription (their iteration ends) and refuse new ones.

        Leaving ``async with hub:`` calls it, so streams blocked on the hub finish.
        """
        self._closed = True
        topics, self._topics = self._topics, {}
        for topic, subscribers in topics.items():
            for subscription in subscribers:
                subscription.close()
            self.backend.unwatch(topic)

    # -- publishing -----------------------------------------------------------------------

    async def publish(self, topic: Hashable, data: T, *, event: str | None = None) -> str:
        """Publish ``data`` to every subscriber of ``topic``; returns the message's id.

        Never waits for a subscriber. With Redis it waits for the store (bounded by
        ``publish_timeout``) and raises :class:`BroadcastUnavailable` (a 503 if a
        handler lets it through) when Redis cannot be reached. ``event`` becomes the
        SSE event name through :meth:`stream`.
        """
        if self._closed:
            raise RuntimeError("this Broadcast is closed")
        if event is not None and ("\r" in event or "\n" in event):
            raise ValueError(f"event must not contain CR or LF: {event!r}")
        entry = await self.backend.publish(topic, data, event)
        self._counters.published += 1
        return entry.id

    def _deliver(self, entry: Entry) -> None:
        subscribers = self._topics.get(entry.topic)
        if not subscribers:
            return
        for subscription in tuple(subscribers):
            if not subscription.offer(entry):
                self._remove(subscription)
                if subscription.dropped:
                    logger.debug(
                        "broadcast: dropped a slow subscriber of %r (buffer of %d full)",
                        subscription.topic,
                        subscription.max_buffer,
                    )

    # -- subscribing ----------------------------------------------------------------------

    @asynccontextmanager
    async def subscribe(
        self,
        topic: Hashable,
        *,
        last_event_id: str | None = None,
        max_buffer: int | None = None,
        policy: SlowConsumerPolicy | None = None,
    ) -> AsyncIterator[Subscription[T]]:
        """Subscribe to ``topic`` for the duration of the ``async with`` block.

        With ``last_event_id`` (an id this hub gave out, e.g. ``writer.last_event_id``)
        the subscription first replays what came after it, then continues live, with
        no gap and no duplicate; when that id is older than the history holds (or from
        a store that was reset), a ``reset`` message comes first instead. ``max_buffer``
        and ``policy`` (defaults: the hub's) bound the live backlog. Leaving the block
        unsubscribes, whatever the reason.
        """
        if self._closed:
            raise RuntimeError("this Broadcast is closed")
        size = self.max_buffer if max_buffer is None else max_buffer
        _check_positive_int("max_buffer", size, 1)
        chosen = self.policy if policy is None else _check_policy(policy)
        subscription: Subscription[T] = Subscription(
            topic, size, chosen, self._counters, self.backend.fill, self._format
        )
        after = parse_id(last_event_id) if last_event_id is not None else None
        # Registered before the history is read: what is published meanwhile is
        # buffered, and the subscription drops what the replay already gave.
        first = topic not in self._topics
        self._topics.setdefault(topic, {})[subscription] = None
        try:
            start = await self.backend.start(topic, after)
            if last_event_id is not None and after is None:
                # Not an id of ours (another server's, or a hand-made header).
                start = Start(start.epoch, start.top, start.top_id, reset=RESET_UNKNOWN_ID)
            subscription.begin(start, after[1] if after is not None else None)
            if first or self.backend.shared:
                self.backend.watch(topic, start.epoch, start.top)
            yield subscription
        finally:
            self._remove(subscription)
            subscription.leave()

    def _format(self, epoch: str, position: Position) -> str:
        return format_id(epoch, position, compact=self._compact_ids)

    def _remove(self, subscription: Subscription[T]) -> None:
        subscribers = self._topics.get(subscription.topic)
        if subscribers is None or subscription not in subscribers:
            return
        del subscribers[subscription]
        if not subscribers:
            del self._topics[subscription.topic]
            self.backend.unwatch(subscription.topic)

    def subscriber_count(self, topic: Hashable) -> int:
        """How many subscribers ``topic`` has in this process right now (those whose
        start is done: everything published from now on reaches them)."""
        return sum(1 for s in self._topics.get(topic, ()) if s.started)

    # -- SSE ------------------------------------------------------------------------------

    def stream(
        self,
        event: H3Event,
        topic: Hashable,
        *,
        max_buffer: int | None = None,
        policy: SlowConsumerPolicy | None = None,
        encode: Callable[[Any], str] = default_encode,
        resume_query: str | None = "last_event_id",
        retry: int | None = None,
        ping_interval: float | None = ...,  # type: ignore[assignment]
        send_timeout: float | None = ...,  # type: ignore[assignment]
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer ``event`` with an SSE stream of ``topic``: call it from a handler.

        ``start_sse`` (``retry``, ``ping_interval``, ``send_timeout``, ``headers``) plus a
        callback that replays after the client's ``Last-Event-ID`` and then follows live:
        each message is an SSE event with the hub's ``id``, its ``event`` name and
        ``encode(data)`` (a str as it is, else JSON); a ``reset`` is an event named
        ``reset``. When the subscriber is dropped (policy ``"disconnect"``) or the hub
        closes, the stream ends cleanly, and EventSource reconnects and replays.

        Without a ``Last-Event-ID`` header, the query parameter ``resume_query``
        (``?last_event_id=``; None: ignore the query) is the id to resume after: a page
        rendered with the latest id it shows opens ``EventSource("/feed?last_event_id=" +
        id)`` and misses nothing between the render and the stream. The header wins, as
        it carries the newer id on every reconnect.
        """
        if self._closed:
            raise RuntimeError("this Broadcast is closed")
        if max_buffer is not None:
            _check_positive_int("max_buffer", max_buffer, 1)
        if policy is not None:
            _check_policy(policy)
        event.start_sse(
            retry=retry, ping_interval=ping_interval, send_timeout=send_timeout, headers=headers
        )
        event.set_stream_callback(
            self._stream_topic, topic, max_buffer, policy, encode, resume_query
        )

    async def _stream_topic(
        self,
        writer: SSEWriter,
        topic: Hashable,
        max_buffer: int | None,
        policy: SlowConsumerPolicy | None,
        encode: Callable[[Any], str],
        resume_query: str | None,
    ) -> None:
        last_event_id = writer.last_event_id
        if last_event_id is None and resume_query is not None:
            last_event_id = writer.event.query.get(resume_query)
        async with self.subscribe(
            topic, last_event_id=last_event_id, max_buffer=max_buffer, policy=policy
        ) as subscription:
            async for message in subscription:
                data = encode(message.data) if not message.reset else default_encode(message.data)
                await writer.send(SSEEvent(data=data, event=message.event, id=message.id))
        if subscription.dropped:
            logger.info(
                "broadcast: ended the stream of a slow client %s; it reconnects and replays",
                writer.event.client,
            )

    # -- observability --------------------------------------------------------------------

    def statistics(self) -> BroadcastStatistics:
        """This process's counters: topics, subscribers, published, delivered, dropped,
        replayed, resets."""
        counters = self._counters
        return BroadcastStatistics(
            topics=len(self._topics),
            subscribers=sum(1 for subs in self._topics.values() for s in subs if s.started),
            published=counters.published,
            delivered=counters.delivered,
            dropped=counters.dropped,
            replayed=counters.replayed,
            resets=counters.resets,
        )

    def __repr__(self) -> str:
        stats = self.statistics()
        return (
            f"<Broadcast {self.backend.describe()}: {stats.topics} topics, "
            f"{stats.subscribers} subscribers, {stats.dropped} dropped>"
        )
