"""The adapter: every use of trio-websocket's and wsproto's private API, in one file.

trio-websocket gives no public way to run a server connection over a stream whose
handshake was read elsewhere, and it overwrites its own close reason (``aclose``
records 1000 whatever code it sends; a frame wsproto cannot parse leaves it unset). So
the session drives it through :class:`Wire`, which

- replays the request head h11 already consumed into wsproto's handshake parser;
- subclasses wsproto's ``WSConnection`` to report every close frame sent or received
  and every finished message parsed (the one place all of them pass);
- gives trio-websocket a stream on which a cancelled write ends the connection (a frame
  cut short would make every later frame, even a close frame, garbage to the client);
- starts ``WebSocketConnection._reader_task`` itself, exactly as
  ``trio_websocket.wrap_server_stream`` does.

Nothing else in trio-h3 touches a private name of either library; an upgrade of
trio-websocket is checked here.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Final, Protocol

import trio
from trio_websocket import CloseReason, ConnectionClosed, WebSocketConnection, WebSocketRequest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, Request, TextMessage
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .. import _sockio as sockio

if TYPE_CHECKING:
    from ..types import RequestHead
    from .options import WebSocketOptions

__all__ = ["Wire", "WireObserver"]

# trio-websocket reads this much per receive_some (its own default is 4 KiB, which costs
# a trip round the event loop per 4 KiB of a large message).
RECEIVE_SIZE: Final = 64 * 1024


class WireObserver(Protocol):
    """What the session learns from the wire, as it happens."""

    def close_sent(self, code: int, reason: str) -> None:
        """A close frame with ``code`` went out (1006: trio-websocket gave up on the peer)."""

    def close_received(self, code: int, reason: str, *, protocol_error: bool) -> None:
        """The client's close frame arrived, or wsproto failed the connection (1002, 1007)."""

    async def send_failed(self, reason: str, *, timed_out: bool) -> None:
        """A write was cancelled or outlived ``send_timeout``, possibly mid-frame."""


class _ObservedWSConnection(WSConnection):
    """wsproto's server connection, reporting close frames and finished messages."""

    def __init__(self, wire: Wire) -> None:
        super().__init__(ConnectionType.SERVER)
        self._wire = wire

    def send(self, event: Event) -> bytes:
        wire = self._wire
        if wire.broken:
            # A cancelled send may have left half a frame on the wire: no frame after
            # it could be parsed, so nothing more is written (not even a close frame).
            raise ConnectionClosed(CloseReason(1006, "a send was interrupted"))
        data = super().send(event)
        if isinstance(event, CloseConnection):
            wire.observer.close_sent(event.code, event.reason or "")
        return data

    def events(self) -> Generator[Event, None, None]:
        wire = self._wire
        for event in super().events():
            if isinstance(event, CloseConnection):
                # wsproto reports a frame it cannot parse as a CloseConnection (1002, 1007)
                # while still OPEN; a real close frame has moved the state on already.
                wire.observer.close_received(
                    event.code,
                    event.reason or "",
                    protocol_error=self.state is ConnectionState.OPEN,
                )
            elif isinstance(event, TextMessage | BytesMessage) and event.message_finished:
                wire.messages_parsed += 1
            yield event


class _GuardedStream(trio.abc.Stream):
    """The connection's stream as trio-websocket sees it: a write cut short ends it.

    trio-websocket cancels nothing itself, but the session does (keepalive timeouts,
    shutdown, a handler cancelled mid-``send``), and every write is bounded by
    ``send_timeout``: a peer that stops reading must not hold the session forever.
    """

    def __init__(self, stream: trio.abc.Stream, wire: Wire, send_timeout: float | None) -> None:
        self.stream = stream
        self._wire = wire
        self._send_timeout = send_timeout
        # Plain TCP: straight through the socket, as the HTTP side does (see _sockio).
        # trio-websocket writes from one task at a time and reads from its reader task.
        self._socket = sockio.raw_socket(stream)

    async def _write(self, data: bytes | bytearray | memoryview) -> None:
        if self._socket is None:
            await self.stream.send_all(data)
        else:
            await sockio.send_all(self._socket, data)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        timeout = self._send_timeout
        if timeout is None:
            try:
                await self._write(data)
            except trio.Cancelled:
                await self._wire.fail_send("a send was interrupted", timed_out=False)
                raise
            return
        with trio.move_on_after(timeout) as scope:
            try:
                await self._write(data)
                return
            except trio.Cancelled:
                if not scope.cancel_called:
                    await self._wire.fail_send("a send was interrupted", timed_out=False)
                raise
        # Abort, not close: after half a frame no close frame could be parsed (§5.2).
        await self._wire.fail_send("send timed out", timed_out=True)
        raise trio.BrokenResourceError(f"a send took longer than send_timeout ({timeout}s)")

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._socket is None:
            return await self.stream.receive_some(max_bytes)
        return await sockio.receive_some(self._socket, max_bytes)

    async def aclose(self) -> None:
        await self.stream.aclose()


def _serialise_head(request: RequestHead) -> bytes:
    """The request head as bytes again, for wsproto's own handshake parser.

    The body (if a client sent one with its upgrade) was consumed by the connection's
    h11, so its framing headers are dropped rather than left promising bytes.
    """
    lines = [b"%s %s HTTP/%s" % (request.method, request.target, request.http_version)]
    for name, value in request.headers:
        if name not in (b"content-length", b"transfer-encoding"):
            lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"


class Wire:
    """trio-websocket's ``WebSocketConnection`` over the connection's stream, observed.

    ``connection`` is used through its public API (``get_message``, ``send_message``,
    ``ping``, ``aclose``); ``request`` answers the handshake once
    :meth:`read_request` has replayed it.
    """

    def __init__(
        self, stream: trio.abc.Stream, observer: WireObserver, options: WebSocketOptions
    ) -> None:
        self.stream = stream
        self.observer = observer
        #: Set once a write was cut short: nothing more may be written.
        self.broken = False
        #: Complete messages wsproto has parsed (the session compares it with the number
        #: delivered to tell a paused reader from a silent peer).
        self.messages_parsed = 0
        self.protocol = _ObservedWSConnection(self)
        self.connection = WebSocketConnection(
            _GuardedStream(stream, self, options.send_timeout),
            self.protocol,
            message_queue_size=options.message_queue_size,
            max_message_size=options.max_message_size,
            receive_buffer_size=RECEIVE_SIZE,
        )
        self.request: WebSocketRequest | None = None

    @property
    def open(self) -> bool:
        """True while no close frame went either way and no write was cut short."""
        return self.protocol.state is ConnectionState.OPEN and not self.broken

    async def fail_send(self, reason: str, *, timed_out: bool) -> None:
        """A write was cut short: nothing more may be written; tell the session."""
        self.broken = True
        await self.observer.send_failed(reason, timed_out=timed_out)

    def read_request(self, head: RequestHead) -> Request | None:
        """Replay ``head`` into wsproto; its Request, or None if it did not yield one.

        Raises wsproto's ``RemoteProtocolError`` for a handshake it refuses (answer it
        with :meth:`refuse`).
        """
        self.protocol.receive_data(_serialise_head(head))
        requests = [e for e in self.protocol.events() if isinstance(e, Request)]
        if len(requests) != 1:
            return None
        self.request = WebSocketRequest(self.connection, requests[0])
        return requests[0]

    async def refuse(self, error: RemoteProtocolError) -> None:
        """Send wsproto's own answer to a handshake it refused, if it has one."""
        hint = error.event_hint
        if hint is None:
            return
        try:
            data = self.protocol.send(hint)
        except LocalProtocolError:
            return
        with trio.move_on_after(5):
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def feed(self, data: bytes) -> None:
        """Bytes that arrived before the handshake was answered, for the frame parser."""
        self.protocol.receive_data(data)

    async def run_reader(self) -> None:
        """trio-websocket's reader task: parse frames, answer pings and closes."""
        await self.connection._reader_task()
