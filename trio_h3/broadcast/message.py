"""What a hub hands out and counts: messages, ids, positions, statistics. Pure (no Trio).

An id is ``"<epoch>:<position>"``, opaque to the browser. The *epoch* names one life
of a topic's store: a new hub (memory) or a new meta key (Redis: a flushed, restarted or
evicted store) starts a new epoch, so an id from an older life is recognised as such
and answered with a ``reset`` rather than a silent hole -- the way Centrifugo pairs
every stream offset with an epoch. The *position* orders messages within an epoch;
positions are pairs of ints so both backends compare them alike: ``(n, 0)`` for the
in-memory counter, ``(milliseconds, sequence)`` for a Redis Stream entry id.
"""

from __future__ import annotations

import secrets
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeAlias, TypeVar

from ..errors import HTTPError

__all__ = ["BroadcastMessage", "BroadcastStatistics", "BroadcastUnavailable", "SlowConsumerPolicy"]

T = TypeVar("T")

#: What to do with a subscriber whose buffer is full (see :class:`~trio_h3.Broadcast`):
#: ``"disconnect"`` ends its iteration (``subscription.dropped``; through ``hub.stream``
#: the SSE stream ends and EventSource reconnects and replays from its Last-Event-ID);
#: ``"drop_oldest"`` discards the oldest buffered message (for feeds where only the
#: latest value matters); ``"resync"`` discards the whole backlog and sends a ``reset``.
SlowConsumerPolicy: TypeAlias = Literal["disconnect", "drop_oldest", "resync"]
POLICIES: tuple[SlowConsumerPolicy, ...] = ("disconnect", "drop_oldest", "resync")

Position: TypeAlias = tuple[int, int]
#: Before the first message of an epoch.
ORIGIN: Position = (0, 0)

#: Why a subscriber got a ``reset`` (the ``reason`` in its data).
RESET_UNKNOWN_ID = "unknown_id"  # an id this store never issued (or in another format)
RESET_OTHER_EPOCH = "store_reset"  # an id from an earlier life of the store
RESET_TRIMMED = "history_trimmed"  # what came after the id is no longer in the history
RESET_SLOW = "slow_consumer"  # policy "resync": the backlog was skipped


def new_epoch() -> str:
    """A fresh epoch: 8 random URL-safe characters (48 bits, as Centrifugo's are random)."""
    return secrets.token_urlsafe(6)


def format_id(epoch: str, position: Position, *, compact: bool) -> str:
    """The id a browser sees; ``compact`` writes ``(n, 0)`` as ``n`` (the memory backend)."""
    if compact and position[1] == 0:
        return f"{epoch}:{position[0]}"
    return f"{epoch}:{position[0]}-{position[1]}"


def parse_id(text: str) -> tuple[str, Position] | None:
    """``(epoch, position)`` from an id, or None if it is not one of ours."""
    epoch, sep, rest = text.partition(":")
    if not sep or not epoch:
        return None
    first, dash, second = rest.partition("-")
    try:
        position = (int(first), int(second) if dash else 0)
    except ValueError:
        return None
    if position[0] < 0 or position[1] < 0 or not first.isdigit():
        return None
    return epoch, position


@dataclass(frozen=True, slots=True)
class BroadcastMessage(Generic[T]):
    """One message as a subscriber receives it: ``id``, ``event``, ``data``.

    ``id`` is the hub's (increasing per topic, opaque): send it as the SSE ``id`` so a
    reconnecting browser's ``Last-Event-ID`` resumes right after it. ``reset`` is True
    for the hub's own notice that messages were missed and cannot be replayed (an id
    older than the history, a store that was reset, or a ``"resync"`` skip): its
    ``event`` is ``"reset"``, its ``reason`` says why (and its ``data`` is
    ``{"reason": reason}``, what ``hub.stream`` sends), and the page should reload its
    state. ``replayed`` is True for a message sent again from the history.
    """

    topic: Hashable
    id: str
    data: T
    event: str | None = None
    reset: bool = False
    replayed: bool = False
    #: For a reset: ``"history_trimmed"``, ``"store_reset"``, ``"unknown_id"`` or
    #: ``"slow_consumer"``; None otherwise.
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class BroadcastStatistics:
    """A snapshot of a hub's counters (see :meth:`Broadcast.statistics`)."""

    #: Topics with at least one subscriber in this process.
    topics: int
    #: Subscribers currently registered in this process, over all topics.
    subscribers: int
    #: Messages published through this hub (this process's calls to ``publish``).
    published: int
    #: Live messages handed to a subscriber (one publish to 3 subscribers counts 3).
    delivered: int
    #: Messages a full buffer discarded, plus subscribers ended by ``"disconnect"``.
    dropped: int = 0
    #: Messages handed to a subscriber from the history (after a Last-Event-ID).
    replayed: int = 0
    #: ``reset`` notices handed to subscribers.
    resets: int = 0


class BroadcastUnavailable(HTTPError):
    """The hub's store (Redis) cannot be reached: a publish failed and was not retried.

    Raised by :meth:`Broadcast.publish`; a handler that lets it through answers 503.
    Not retried on purpose: a publish whose reply was lost may have been stored, and
    a retry would publish it twice. Subscribers are unaffected: they stay connected
    and catch up when the store is back.
    """

    def __init__(self, message: str) -> None:
        super().__init__(503, message)


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored message as a backend hands it to the hub (internal)."""

    topic: Hashable
    epoch: str
    position: Position
    #: The position of the message published just before it in the same epoch: a
    #: subscriber whose last position differs knows it missed something.
    previous: Position
    id: str
    event: str | None
    data: Any


@dataclass(frozen=True, slots=True)
class Start:
    """Where a new subscriber stands (internal): the topic's epoch and latest position,
    and what to replay after the id it asked for (``reset`` when that is impossible)."""

    epoch: str
    top: Position
    top_id: str
    replay: tuple[Entry, ...] = ()
    reset: str | None = None
