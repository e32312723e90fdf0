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
  ``trio_websocket.wrap_server_stream`` does;
- negotiates permessage-deflate (RFC 7692), which trio-websocket never offers to accept:
  wsproto's ``PerMessageDeflate`` is subclassed so that negotiation and inflation are
  ours (:mod:`.deflate`: strict about offers, bounded by ``max_message_size``), and the
  extension is slipped into the ``AcceptConnection`` trio-websocket sends;
- sends the close frame wsproto leaves unsent when it fails the connection (1002, 1007,
  1009): RFC 6455 §7.1.7 says an endpoint "SHOULD send a Close frame with an
  appropriate status code" before closing, and trio-websocket just drops the TCP
  connection.

Nothing else in trio-h3 touches a private name of either library; an upgrade of
trio-websocket is checked here.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import TYPE_CHECKING, Final, Protocol

import trio
from trio_websocket import CloseReason, ConnectionClosed, WebSocketConnection, WebSocketRequest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason as FrameCloseReason
from wsproto.frame_protocol import FrameDecoder, FrameProtocol, Opcode, RsvBits
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .. import _sockio as sockio
from .deflate import DeflateError, Deflater, Inflater, negotiate

if TYPE_CHECKING:
    from ..types import RequestHead
    from .options import WebSocketOptions

__all__ = ["Wire", "WireObserver"]

# trio-websocket reads this much per receive_some (its own default is 4 KiB, which costs
# a trip round the event loop per 4 KiB of a large message).
RECEIVE_SIZE: Final = 64 * 1024

# How long the close frame of a failed connection may take to write; the connection is
# being dropped for the peer's fault, so this is short (a second, not close_timeout).
_FAILURE_FRAME_TIMEOUT: Final = 1.0


class WireObserver(Protocol):
    """What the session learns from the wire, as it happens."""

    def close_sent(self, code: int, reason: str) -> None:
        """A close frame with ``code`` went out (1006: trio-websocket gave up on the peer)."""

    def close_received(self, code: int, reason: str, *, protocol_error: bool) -> None:
        """The client's close frame arrived, or wsproto failed the connection (1002, 1007, 1009)."""

    async def send_failed(self, reason: str, *, timed_out: bool) -> None:
        """A write was cancelled or outlived ``send_timeout``, possibly mid-frame."""


class _Deflate(PerMessageDeflate):
    """wsproto's permessage-deflate, with our negotiation and bounded inflation.

    wsproto's own inflates each payload without a size limit (``decompress(data)``), so
    a few KiB on the wire could become gigabytes before trio-websocket's message-size
    check sees them; it also accepts offers RFC 7692 §7.1 says to decline, and resets a
    compressed message's state on a control frame between its fragments. Only the
    parameter attributes of the base class are used.
    """

    def __init__(self, max_message_size: int) -> None:
        super().__init__()
        self._max_message_size = max_message_size
        self._inflater: Inflater | None = None
        self._deflater: Deflater | None = None
        #: Why the extension failed the connection, for the close frame's reason.
        self.failure: DeflateError | None = None

    def enabled(self) -> bool:
        return self._inflater is not None

    def accept(self, offer: str) -> bool | str | None:
        if self._inflater is not None:
            return None  # RFC 7692 §5: one offer at most is accepted, the first we can
        agreement = negotiate(offer)
        if agreement is None:
            return None
        self.server_no_context_takeover = agreement.server_no_context_takeover
        self.client_no_context_takeover = agreement.client_no_context_takeover
        self.server_max_window_bits = agreement.server_max_window_bits
        if agreement.client_max_window_bits is not None:
            self.client_max_window_bits = max(9, agreement.client_max_window_bits)
        self._inflater = Inflater(agreement, self._max_message_size)
        self._deflater = Deflater(agreement)
        return agreement.response()

    def _fail(self, error: DeflateError) -> FrameCloseReason:
        self.failure = error
        return FrameCloseReason(error.code)

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> FrameCloseReason | RsvBits:
        assert self._inflater is not None
        try:
            self._inflater.frame_header(opcode=int(opcode), rsv1=rsv.rsv1)
        except DeflateError as error:
            return self._fail(error)
        return RsvBits(True, False, False)  # RSV1 is ours (RFC 7692 §6)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | FrameCloseReason:
        assert self._inflater is not None
        try:
            return self._inflater.frame_data(data)
        except DeflateError as error:
            return self._fail(error)

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | FrameCloseReason | None:
        assert self._inflater is not None
        try:
            return self._inflater.frame_end(fin=fin) or None
        except DeflateError as error:
            return self._fail(error)

    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        assert self._deflater is not None
        if opcode.iscontrol():
            return rsv, data
        if opcode is not Opcode.CONTINUATION:
            rsv = RsvBits(True, rsv.rsv2, rsv.rsv3)  # "Per-Message Compressed" (§6)
        return rsv, self._deflater.message(data, fin=fin)


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
        if isinstance(event, AcceptConnection) and wire.deflate is not None:
            # trio-websocket accepts with no extensions: offer wsproto ours, which
            # accepts a permessage-deflate offer if the client made one we can honour.
            event = AcceptConnection(
                subprotocol=event.subprotocol,
                extensions=[wire.deflate],
                extra_headers=event.extra_headers,
            )
        data = super().send(event)
        if isinstance(event, CloseConnection):
            wire.observer.close_sent(event.code, event.reason or "")
        return data

    def events(self) -> Generator[Event, None, None]:
        wire = self._wire
        for event in super().events():
            if isinstance(event, CloseConnection) and self.state is ConnectionState.OPEN:
                # wsproto reports a frame it cannot parse as a CloseConnection (1002, 1007,
                # 1009 from the extension) while still OPEN; a real close frame has moved
                # the state on already.
                event = self._fail(event)
            elif isinstance(event, CloseConnection):
                wire.observer.close_received(event.code, event.reason or "", protocol_error=False)
            elif isinstance(event, TextMessage | BytesMessage) and event.message_finished:
                wire.messages_parsed += 1
            yield event

    def _fail(self, event: CloseConnection) -> CloseConnection:
        """Fail the connection (RFC 6455 §7.1.7): prepare the close frame, then report."""
        wire = self._wire
        failure = wire.deflate.failure if wire.deflate is not None else None
        reason = failure.reason if failure is not None else (event.reason or "")
        wire.observer.close_received(event.code, reason, protocol_error=True)
        if not wire.broken:
            # The frame goes out when trio-websocket closes the stream, right after it
            # handles this event (it never replies to a close wsproto made up).
            wire.failure_frame = super().send(CloseConnection(event.code, reason))
            wire.observer.close_sent(event.code, reason)
        return CloseConnection(event.code, reason)


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
        self._writing = False
        # Plain TCP: straight through the socket, as the HTTP side does (see _sockio).
        # trio-websocket writes from one task at a time and reads from its reader task.
        self._socket = sockio.raw_socket(stream)
        # Its descriptor, for a write that need not wait (POSIX: os.write on a socket).
        self._fd = self._socket.fileno() if self._socket is not None and os.name == "posix" else -1

    async def _write(self, data: bytes | bytearray | memoryview) -> None:
        self._writing = True
        try:
            if self._socket is None:
                await self.stream.send_all(data)
            else:
                await sockio.send_all(self._socket, data)
        finally:
            self._writing = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._fd >= 0:
            # The usual frame fits the socket buffer: one write(2) inside trio's
            # checkpoint, no deadline needed (see sockio.try_write); what is left waits
            # below, under send_timeout. A cancellation here still breaks the session:
            # wsproto has already framed (and maybe compressed) this message.
            try:
                await trio.lowlevel.checkpoint_if_cancelled()
            except trio.Cancelled:
                await self._wire.fail_send("a send was interrupted", timed_out=False)
                raise
            sent = sockio.try_write(self._fd, data)
            if sent == len(data):
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            data = memoryview(data)[sent:]
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
        frame, self._wire.failure_frame = self._wire.failure_frame, b""
        if frame and not self._wire.broken and not self._writing:
            # The close frame of a connection wsproto failed (see the module docstring);
            # best effort, briefly: the peer may be what is broken.
            with trio.move_on_after(_FAILURE_FRAME_TIMEOUT):
                try:
                    await self._write(frame)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
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
        #: The close frame to write before the stream closes, once wsproto failed it.
        self.failure_frame = b""
        #: Our permessage-deflate extension, offered at accept (None: compression off).
        self.deflate = (
            _Deflate(options.max_message_size) if options.compression == "deflate" else None
        )
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
