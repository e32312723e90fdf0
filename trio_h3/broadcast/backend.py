"""The seam between the hub and where messages live: the in-memory history or Redis.

A backend stores (or not) and numbers what is published, answers where a new subscriber
stands (:meth:`Backend.start`), fills a hole a subscriber noticed (:meth:`Backend.fill`)
and hands every live message to the hub's ``deliver`` -- at once (memory), or from its
one reader task (Redis). The hub owns the subscribers, their buffers and policies; the
backend never sees a subscriber.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Protocol

import trio

from .message import Entry, Position, Start

__all__: list[str] = []

Deliver = Callable[[Entry], None]


class Backend(Protocol):
    """What :class:`~trio_h3.Broadcast` needs from a store (internal)."""

    #: True when other processes publish to and read from the same topics (Redis).
    shared: bool

    def bind(self, deliver: Deliver) -> None:
        """Give the backend the hub's delivery function (once, at construction)."""

    async def run(self, task_status: trio.TaskStatus[None]) -> None:
        """The backend's background work (reader, sweeper), for as long as the hub is
        entered; ``task_status.started()`` once publish and subscribe may be used."""

    async def publish(self, topic: Hashable, data: Any, event: str | None) -> Entry:
        """Store and number one message, and see that it reaches ``deliver``."""

    async def start(self, topic: Hashable, after: tuple[str, Position] | None) -> Start:
        """Where a new subscriber stands: epoch, latest position, and the replay after
        ``after`` (``reset`` set when it cannot be replayed)."""

    async def fill(
        self, topic: Hashable, epoch: str, after: Position, before: Position
    ) -> tuple[Entry, ...] | None:
        """The messages strictly between two positions of ``epoch``, or None if some of
        them are gone (trimmed, or another epoch)."""

    def watch(self, topic: Hashable, epoch: str, top: Position) -> None:
        """A first local subscriber for ``topic``: deliver what follows ``top``."""

    def unwatch(self, topic: Hashable) -> None:
        """The last local subscriber of ``topic`` left."""

    def describe(self) -> str:
        """One line for logs and reprs (no credentials)."""
