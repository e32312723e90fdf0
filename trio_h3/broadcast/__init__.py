"""The fan-out hub: publish once, every subscriber of the topic receives it.

- :mod:`.hub`: :class:`Broadcast` -- topics, subscribers, ``publish``, ``subscribe``,
  ``stream`` (SSE with replay), ``statistics``; ``async with hub:`` runs its task.
- :mod:`.subscription`: one subscriber's bounded buffer, its slow-consumer policy, and
  the replay rule (each position once, in order, every hole filled or announced).
- :mod:`.message`: ids (epoch + position), messages, statistics. Pure.
- :mod:`.presence`: :class:`Presence` -- members per room, summed over every process
  on a hub (gossip with heartbeats; a process that dies is forgotten).
- :mod:`.backend`: the seam; :mod:`.memory` (one process) and :mod:`.redis` (any
  number of processes; imported only by :meth:`Broadcast.from_url`, so neither
  ``import trio_h3`` nor the memory hub loads coredis).

::

    hub = Broadcast(history=1000, history_ttl=300)      # or Broadcast.from_url("redis://...")

    @app.lifespan
    async def lifespan(nursery):
        async with hub:
            yield

    @app.get("/events")
    async def events(event: H3Event) -> None:
        hub.stream(event, "news")                        # replay after Last-Event-ID, then live

    message_id = await hub.publish("news", {"title": "hello"}, event="headline")
"""

from __future__ import annotations

from .hub import Broadcast
from .message import BroadcastMessage, BroadcastStatistics, BroadcastUnavailable, SlowConsumerPolicy
from .presence import Presence
from .subscription import Subscription

__all__ = [
    "Broadcast",
    "BroadcastMessage",
    "BroadcastStatistics",
    "BroadcastUnavailable",
    "Presence",
    "SlowConsumerPolicy",
    "Subscription",
]
