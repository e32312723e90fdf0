"""The one state machine of a streamed response's ending, and the stream that follows it.

Rule 1: every way a stream (SSE, callback or inline form, or a ``StreamingResponse``)
ends goes through :meth:`Stream.end`, here, which records the reason exactly once and
applies what the :data:`ENDINGS` table says that reason means. Nothing outside this file
sets a stream's state.

Rule 2: the first ending wins. A client that vanishes after we dropped it for being too
slow is still a ``send_timeout``; a producer that fails after the client left is still
a ``client_disconnected``.

States (each transition happens once, in this order)::

    OPEN --end(reason)--> ENDED --finish()--> FINISHED --run_on_close()--> CLOSED

- ``end(reason)``: the reason is recorded; the producer is cancelled if the table says
  so (unless it is the task ending its own stream); ``disconnected`` is set if the client
  is gone. No more data is written.
- ``finish()``: the body's end is written (the terminating chunk) if the ending is clean
  and the connection can still take it, else the connection is aborted, so a client can
  tell a complete stream from a cut one.
- ``run_on_close()``: the ``on_close`` hooks run, each once, shielded and bounded.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

import trio

from ..errors import ClientDisconnected, StreamClosed

if TYPE_CHECKING:
    from .._guest import Guest
    from ..types import FilePart

__all__ = ["CloseReason"]

logger = logging.getLogger("trio_h3")


class CloseReason(enum.StrEnum):
    """Why a stream ended. Recorded once, by whichever ending happened first."""

    #: The producer (callback, inline block or body iterator) returned.
    COMPLETED = "completed"
    #: ``writer.close()``.
    CLOSED_BY_APP = "closed_by_app"
    #: The client went away (EOF, reset, or a write that failed).
    CLIENT_DISCONNECTED = "client_disconnected"
    #: The producer raised.
    CALLBACK_ERROR = "callback_error"
    #: A write took longer than ``send_timeout``: the client stopped reading.
    SEND_TIMEOUT = "send_timeout"
    #: The server shut down (after ``stream_shutdown_grace``).
    SERVER_SHUTDOWN = "server_shutdown"
    #: An enclosing cancel scope that is not a shutdown (a timeout around the inline form).
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Ending:
    """What an ending means for the stream."""

    #: The body ends with its terminating chunk; False: the connection is aborted.
    clean: bool
    #: The producer, which may still be running, is cancelled.
    cancels_producer: bool
    #: The client is gone (``writer.disconnected`` is set).
    client_gone: bool


#: The table every ending follows.
ENDINGS: Final[dict[CloseReason, Ending]] = {
    CloseReason.COMPLETED: Ending(clean=True, cancels_producer=False, client_gone=False),
    CloseReason.CLOSED_BY_APP: Ending(clean=True, cancels_producer=True, client_gone=False),
    CloseReason.CLIENT_DISCONNECTED: Ending(clean=False, cancels_producer=True, client_gone=True),
    # A failed SSE producer ends its stream cleanly (the browser reconnects); a failed
    # plain body is aborted instead (Stream.abort_on_error), so the truncation shows.
    CloseReason.CALLBACK_ERROR: Ending(clean=True, cancels_producer=False, client_gone=False),
    # Nothing more can be written to a client that stopped reading: abort, which also
    # wakes a writer blocked outside the producer's scope.
    CloseReason.SEND_TIMEOUT: Ending(clean=False, cancels_producer=True, client_gone=False),
    CloseReason.SERVER_SHUTDOWN: Ending(clean=True, cancels_producer=True, client_gone=False),
    # The cancellation is already on its way through the producer.
    CloseReason.CANCELLED: Ending(clean=True, cancels_producer=False, client_gone=False),
}


class StreamState(enum.Enum):
    """Where a stream is in its ending (see the module docstring)."""

    OPEN = "open"
    ENDED = "ended"
    FINISHED = "finished"
    CLOSED = "closed"


class BodyTransport(Protocol):
    """What the connection lends a stream: framed writes of the response body."""

    async def send_body(self, data: bytes) -> None:
        """Write ``data`` as body (BrokenResourceError/ClosedResourceError: client gone)."""
        ...

    async def send_file(self, part: FilePart) -> None:
        """Write a piece of an open file as body (``os.sendfile`` where it can)."""
        ...

    async def end_body(self) -> None:
        """Write the end of the body (the terminating chunk on HTTP/1.1)."""
        ...

    async def abort(self) -> None:
        """Close the connection now, without ending the body."""
        ...


class Stream:
    """One streamed response: its state, its producer's scope, its writes and hooks."""

    __slots__ = (
        "_clock",
        "_disconnected",
        "_lot",
        "_on_close",
        "_producer_task",
        "_transport",
        "_waiting",
        "_writing",
        "abort_on_error",
        "bytes_sent",
        "events_sent",
        "guest",
        "last_write",
        "on_close_timeout",
        "ping_interval",
        "reason",
        "scope",
        "send_timeout",
        "state",
        "write_started",
    )

    def __init__(
        self,
        transport: BodyTransport,
        guest: Guest,
        *,
        ping_interval: float | None = None,
        send_timeout: float | None = None,
        on_close_timeout: float = 5.0,
        abort_on_error: bool = False,
    ) -> None:
        self._transport = transport
        self.guest = guest
        self.ping_interval = ping_interval
        self.send_timeout = send_timeout
        self.on_close_timeout = on_close_timeout
        self.abort_on_error = abort_on_error
        self.state = StreamState.OPEN
        self.reason: CloseReason | None = None
        #: The producer runs inside it; cancelled by the endings that say so.
        self.scope = trio.CancelScope()
        self._producer_task: trio.lowlevel.Task | None = None
        # Made on first use: most streams never ask whether the client left.
        self._disconnected: trio.Event | None = None
        self._on_close: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        # A tiny lock with no checkpoint when uncontended: the producer and the
        # heartbeat share the socket, and a trio.Lock costs two scheduler round trips
        # per event on the hot path. The ParkingLot exists only after contention.
        self._writing = False
        self._waiting = 0
        self._lot: trio.lowlevel.ParkingLot | None = None
        self._clock = trio.lowlevel.current_clock()
        self.events_sent = 0
        self.bytes_sent = 0
        #: When the last write started (trio clock): idle heartbeats count from it.
        self.last_write = self._clock.current_time()
        #: When the write in progress started, or None: the send deadline counts from it.
        self.write_started: float | None = None

    # -- the state machine -------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True until the stream has ended; nothing is written afterwards."""
        return self.state is StreamState.OPEN

    def set_producer(self) -> None:
        """Record the current task as the producer (it never cancels its own stream)."""
        self._producer_task = trio.lowlevel.current_task()

    def end(self, reason: CloseReason) -> bool:
        """End the stream for ``reason`` (the first call wins); True if this call did."""
        if self.state is not StreamState.OPEN:
            return False
        self.state = StreamState.ENDED
        self.reason = reason
        ending = ENDINGS[reason]
        if ending.client_gone:
            self._mark_disconnected()
        if ending.cancels_producer and self._producer_task is not trio.lowlevel.current_task():
            self.scope.cancel()
        return True

    @property
    def ends_cleanly(self) -> bool:
        """Whether the ending recorded writes the body's end (False: abort)."""
        assert self.reason is not None
        if self.reason is CloseReason.CALLBACK_ERROR and self.abort_on_error:
            return False
        return ENDINGS[self.reason].clean

    async def finish(self) -> None:
        """Write the end of the body, or abort, as the ending says (once)."""
        if self.state is StreamState.OPEN:
            self.end(CloseReason.COMPLETED)
        if self.state is not StreamState.ENDED:
            return
        self.state = StreamState.FINISHED
        if not self.ends_cleanly:
            await self._transport.abort()
            return
        # Shielded and bounded: a stream ended by an outside cancellation still gets
        # its terminating chunk, and a client that stopped reading cannot hold it.
        timeout = self.send_timeout if self.send_timeout is not None else math.inf
        with trio.CancelScope(shield=True) as scope:
            scope.relative_deadline = timeout
            await self._take_turn()
            try:
                await self._transport.end_body()
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._mark_disconnected()
            except ValueError as exc:
                # The body cannot end as its head promised (short of its Content-Length).
                logger.error("a streamed response could not end cleanly: %s", exc)
            finally:
                self._release_turn()
        await self._transport.abort()

    def on_close(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` (sync or async) once the stream has finished."""
        self._on_close.append((fn, args))

    async def run_on_close(self) -> None:
        """Run the ``on_close`` hooks once each, shielded, each within its deadline."""
        if self.state is StreamState.CLOSED:
            return
        self.state = StreamState.CLOSED
        hooks, self._on_close = self._on_close, []
        for fn, args in hooks:
            name = getattr(fn, "__qualname__", repr(fn))
            with trio.CancelScope(shield=True) as scope:
                scope.relative_deadline = self.on_close_timeout
                try:
                    result = fn(*args)
                    if hasattr(result, "__await__"):
                        await result
                except BaseException as exc:
                    await self.guest.contain(exc, f"the on_close hook {name}")
            if scope.cancelled_caught:
                logger.warning(
                    "on_close hook %s exceeded its %.1fs deadline", name, self.on_close_timeout
                )

    # -- the client ----------------------------------------------------------------------

    @property
    def disconnected(self) -> trio.Event:
        """Set when the client went away (EOF, reset or a failed write)."""
        if self._disconnected is None:
            self._disconnected = trio.Event()
            if self.reason is CloseReason.CLIENT_DISCONNECTED:
                self._disconnected.set()
        return self._disconnected

    def _mark_disconnected(self) -> None:
        if self._disconnected is not None:
            self._disconnected.set()

    # -- writing ------------------------------------------------------------------------------

    async def _take_turn(self) -> None:
        while self._writing:
            if self._lot is None:
                self._lot = trio.lowlevel.ParkingLot()
            self._waiting += 1
            try:
                await self._lot.park()
            finally:
                self._waiting -= 1
        self._writing = True

    def _release_turn(self) -> None:
        self._writing = False
        if self._waiting:
            assert self._lot is not None
            self._lot.unpark()

    async def write(self, data: bytes, events: int = 0) -> None:
        """Write ``data`` to the client; StreamClosed once the stream has ended.

        A write that fails because the client left ends the stream
        (``client_disconnected``) and raises :class:`ClientDisconnected`.
        """
        if self.state is not StreamState.OPEN:
            raise StreamClosed(self.reason or "closed")
        if self._writing:
            await self._take_turn()
            if self.state is not StreamState.OPEN:
                self._release_turn()
                raise StreamClosed(self.reason or "closed")
        else:
            self._writing = True
        # One clock reading per write, through the clock object itself (cheaper than
        # trio.current_time()); the start of the write doubles as "last activity".
        self.write_started = started = self._clock.current_time()
        try:
            await self._transport.send_body(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if not self.end(CloseReason.CLIENT_DISCONNECTED):
                # Ended meanwhile (we dropped a slow client by closing its socket).
                raise StreamClosed(self.reason or "closed") from None
            raise ClientDisconnected() from None
        finally:
            self.write_started = None
            self._writing = False
            if self._waiting:
                assert self._lot is not None
                self._lot.unpark()
        self.last_write = started
        self.bytes_sent += len(data)
        self.events_sent += events

    async def write_file(self, part: FilePart) -> None:
        """Write a piece of a file, as :meth:`write` writes bytes (same turn, deadline
        and endings): what a file response's body is made of."""
        if self.state is not StreamState.OPEN:
            raise StreamClosed(self.reason or "closed")
        await self._take_turn()
        if self.state is not StreamState.OPEN:
            self._release_turn()
            raise StreamClosed(self.reason or "closed")
        self.write_started = started = self._clock.current_time()
        try:
            await self._transport.send_file(part)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if not self.end(CloseReason.CLIENT_DISCONNECTED):
                raise StreamClosed(self.reason or "closed") from None
            raise ClientDisconnected() from None
        finally:
            self.write_started = None
            self._release_turn()
        self.last_write = started
        self.bytes_sent += part.count

    def __repr__(self) -> str:
        reason = f" ({self.reason})" if self.reason is not None else ""
        return f"<Stream {self.state.value}{reason}, {self.events_sent} events>"
