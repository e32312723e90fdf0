"""The in-memory backend: one process, a bounded history per topic, delivery at once.

History is bounded by count (``history`` messages per topic) and by age
(``history_ttl`` seconds, on Trio's clock, so MockClock drives it in tests). Trimming
happens on every publish and read; the hub's background task also sweeps topics whose
history has aged out entirely and that nobody subscribes to, so topics nobody uses any
more cost nothing. (A subscribed topic is kept: its positions must go on from where its
subscribers are, or they would take the next messages for ones already handed out.)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import trio

from .backend import Deliver
from .message import (
    ORIGIN,
    RESET_OTHER_EPOCH,
    RESET_TRIMMED,
    Entry,
    Position,
    Start,
    format_id,
    new_epoch,
)

__all__: list[str] = []

#: Upper bound between two sweeps of aged-out topics, in seconds.
SWEEP_INTERVAL = 60.0


@dataclass
class _Topic:
    top: Position = ORIGIN
    #: (published at, entry), oldest first.
    history: deque[tuple[float, Entry]] = field(default_factory=deque)


class MemoryBackend:
    """Topics, ids and history in this process (internal; see :class:`Broadcast`)."""

    shared = False

    def __init__(self, *, history: int, history_ttl: float | None) -> None:
        self.history = history
        self.history_ttl = history_ttl
        self.epoch = new_epoch()
        self._topics: dict[Hashable, _Topic] = {}
        #: Topics with subscribers (the hub's watch/unwatch): never swept.
        self._watched: set[Hashable] = set()
        self._deliver: Deliver = _nowhere

    def bind(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def run(self, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        if self.history_ttl is None:
            await trio.sleep_forever()
        interval = min(SWEEP_INTERVAL, max(self.history_ttl / 4, 0.001))
        while True:
            await trio.sleep(interval)
            self.sweep()

    def sweep(self) -> None:
        """Forget topics whose whole history has aged out and that have no subscriber
        (their top stays valid only while someone could still hold an id of them: the
        ttl)."""
        now = trio.current_time()
        for topic in list(self._topics):
            state = self._topics[topic]
            self._trim(state, now)
            if not state.history and self.history_ttl is not None and topic not in self._watched:
                del self._topics[topic]

    def _trim(self, state: _Topic, now: float) -> None:
        history = state.history
        while len(history) > self.history:
            history.popleft()
        if self.history_ttl is not None:
            cutoff = now - self.history_ttl
            while history and history[0][0] <= cutoff:
                history.popleft()

    def _format(self, position: Position) -> str:
        return format_id(self.epoch, position, compact=True)

    async def publish(self, topic: Hashable, data: Any, event: str | None) -> Entry:
        state = self._topics.get(topic)
        if state is None:
            state = self._topics[topic] = _Topic()
        position = (state.top[0] + 1, 0)
        entry = Entry(topic, self.epoch, position, state.top, self._format(position), event, data)
        state.top = position
        now = trio.current_time()
        if self.history:
            state.history.append((now, entry))
        self._trim(state, now)
        self._deliver(entry)
        # A checkpoint, as any awaitable should have: subscribers run between publishes.
        await trio.lowlevel.checkpoint()
        return entry

    async def start(self, topic: Hashable, after: tuple[str, Position] | None) -> Start:
        state = self._topics.get(topic) or _Topic()
        top_id = self._format(state.top)
        if after is None:
            return Start(self.epoch, state.top, top_id)
        epoch, position = after
        if epoch != self.epoch:
            return Start(self.epoch, state.top, top_id, reset=RESET_OTHER_EPOCH)
        replay = self._after(state, position, math.inf)
        if replay is None:
            return Start(self.epoch, state.top, top_id, reset=RESET_TRIMMED)
        return Start(self.epoch, state.top, top_id, replay=replay)

    def _after(self, state: _Topic, after: Position, before: float) -> tuple[Entry, ...] | None:
        """Entries after ``after`` and before position ``before`` (a count), all of them
        or None: positions are consecutive here, so a missing one means trimmed."""
        if after > state.top:
            return None  # an id from the future: not one this epoch issued
        self._trim(state, trio.current_time())
        last = min(state.top[0], before - 1)
        wanted = int(last) - after[0]
        if wanted <= 0:
            return ()
        entries = tuple(entry for _, entry in state.history if after[0] < entry.position[0] <= last)
        return entries if len(entries) == wanted else None

    async def fill(
        self, topic: Hashable, epoch: str, after: Position, before: Position
    ) -> tuple[Entry, ...] | None:
        state = self._topics.get(topic)
        if state is None or epoch != self.epoch:
            return None
        return self._after(state, after, before[0])

    def watch(self, topic: Hashable, epoch: str, top: Position) -> None:
        # Delivery is synchronous in publish: nothing to start, only the topic to keep.
        self._watched.add(topic)

    def unwatch(self, topic: Hashable) -> None:
        self._watched.discard(topic)

    def describe(self) -> str:
        ttl = "no ttl" if self.history_ttl is None else f"ttl {self.history_ttl:g}s"
        return f"memory, history {self.history} ({ttl})"


def _nowhere(entry: Entry) -> None:
    pass
