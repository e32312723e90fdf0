"""WebSocket routes: the upgrade hand-off from the h11 connection to trio-websocket.

The connection code reads the upgrade request with h11, checks it with
:func:`check_upgrade_request` (pure) and then calls :func:`run_websocket`, which owns the
stream from then on. The WebSocket protocol itself is trio-websocket's (and wsproto's
under it); this module adds what a framework needs around it:

- the request h11 already consumed is replayed into wsproto, and bytes the client sent
  before our answer are kept and handed to the frame parser after the 101;
- implicit ``accept()`` on first use, ``reject(status, body)`` as a plain HTTP response,
  403 when a handler returns without accepting (as ASGI servers do);
- keepalive pings with a pong deadline (MockClock-friendly; a handler that is merely
  slow to read does not count as a dead peer);
- ``close_code`` / ``close_reason`` are set before any :class:`WebSocketClosed` is raised,
  and both the close frame we sent and the one we received are kept;
- the handler runs in a cancel scope owned by the session: an abrupt disconnect, a
  protocol error, an over-size message (1009), a keepalive timeout or server shutdown
  (1001) cancels it unless it is waiting in ``receive()``, where it gets
  :class:`WebSocketClosed` instead; after a clean close by the client it gets
  ``close_timeout`` seconds to notice before it is cancelled;
- a handler exception closes with 1011 (or answers 500 before the upgrade) and is
  logged with its traceback on the ``trio_h3`` logger; nothing a client does makes
  :func:`run_websocket` raise.

trio-websocket gives no public way to run a server connection over a stream whose
handshake was read elsewhere, so :func:`run_websocket` starts
``WebSocketConnection._reader_task`` itself, exactly as ``trio_websocket.wrap_server_stream``
does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from typing import Any, Final, NamedTuple, NoReturn

import trio
from trio_websocket import (
    CloseReason,
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
)
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, Request, TextMessage
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .. import _sockio as sockio
from .._groups import raise_single
from ..errors import HTTPError
from ..types import RequestHead
from .options import WebSocketOptions

__all__ = ["CloseFrame", "WebSocket", "WebSocketClosed"]

logger = logging.getLogger("trio_h3")

#: Close codes after which ``async for message in ws`` ends quietly instead of raising.
NORMAL_CLOSE_CODES: Final = frozenset({1000, 1001, 1005})

# Bytes a client may send before we answer the handshake (pipelined frames) that we keep
# for the frame parser; past this we simply stop reading until the handler decides.
_MAX_EARLY_BYTES: Final = 64 * 1024
_RECEIVE_SIZE: Final = 64 * 1024


class CloseFrame(NamedTuple):
    """A close frame as sent or received: its code and its reason text."""

    code: int
    reason: str


class WebSocketClosed(ConnectionClosed):
    """The WebSocket is closed (or closing): raised by ``receive``, ``send`` and ``ping``.

    A subclass of ``trio_websocket.ConnectionClosed``, so ``exc.reason`` is a
    ``trio_websocket.CloseReason``; ``exc.code`` and ``exc.close_reason`` are shortcuts.
    """

    def __init__(self, code: int, reason: str | None) -> None:
        super().__init__(CloseReason(code, reason))

    @property
    def code(self) -> int:
        """The close code (1006 when the connection was lost without a close frame)."""
        assert self.reason is not None
        return self.reason.code

    @property
    def close_reason(self) -> str | None:
        """The close reason text, if any."""
        assert self.reason is not None
        return self.reason.reason


# --------------------------------------------------------------------------- the session


class _ObservedWSConnection(WSConnection):
    """wsproto's server connection, reporting close frames and finished messages.

    trio-websocket overwrites its own close reason (``aclose`` records 1000 whatever code
    it sends, and a frame wsproto cannot parse leaves it unset), so the session watches
    the protocol events themselves: this is the one place every close frame passes.
    """

    def __init__(self, session: WebSocket) -> None:
        super().__init__(ConnectionType.SERVER)
        self._session = session

    def send(self, event: Event) -> bytes:
        if self._session._stream_broken:
            # A cancelled send may have left half a frame on the wire: no frame after
            # it could be parsed, so nothing more is written (not even a close frame).
            raise ConnectionClosed(CloseReason(1006, "a send was interrupted"))
        data = super().send(event)
        if isinstance(event, CloseConnection):
            self._session._on_close_sent(event.code, event.reason or "")
        return data

    def events(self) -> Generator[Event, None, None]:
        for event in super().events():
            if isinstance(event, CloseConnection):
                # wsproto reports a frame it cannot parse as a CloseConnection (1002, 1007)
                # while still OPEN; a real close frame has moved the state on already.
                self._session._on_close_received(
                    event.code,
                    event.reason or "",
                    protocol_error=self.state is ConnectionState.OPEN,
                )
            elif isinstance(event, TextMessage | BytesMessage) and event.message_finished:
                self._session._messages_parsed += 1
            yield event


class _GuardedStream(trio.abc.Stream):
    """The connection's stream as trio-websocket sees it: a cancelled write ends it.

    trio-websocket cancels nothing itself, but the session does (keepalive timeouts,
    shutdown, a handler cancelled mid-``send``), and a frame cut short would make every
    later frame (even a close frame) garbage to the client.
    """

    def __init__(self, stream: trio.abc.Stream, session: WebSocket) -> None:
        self.stream = stream
        self._session = session
        # Plain TCP: straight through the socket, as the HTTP side does (see _sockio).
        # trio-websocket writes from one task at a time and reads from its reader task.
        self._socket = sockio.raw_socket(stream)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            if self._socket is None:
                await self.stream.send_all(data)
            else:
                await sockio.send_all(self._socket, data)
        except trio.Cancelled:
            await self._session._interrupted_send()
            raise

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._socket is None:
            return await self.stream.receive_some(max_bytes)
        return await sockio.receive_some(self._socket, max_bytes)

    async def aclose(self) -> None:
        await self.stream.aclose()


def _header_pairs(
    headers: Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]] | None,
) -> list[tuple[bytes, bytes]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs: list[tuple[bytes, bytes]] = []
    for name, value in items:
        name_bytes = name.encode("latin-1") if isinstance(name, str) else bytes(name)
        value_bytes = value.encode("latin-1") if isinstance(value, str) else bytes(value)
        pairs.append((name_bytes, value_bytes))
    return pairs


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


def _valid_close_code(code: int) -> bool:
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


class WebSocket:
    """One WebSocket session, as a handler sees it.

    ``event`` is the H3Event of the upgrade request (params, query, headers, context).
    ``subprotocols`` lists what the client offered, ``subprotocol`` what was accepted.
    ``close_code`` / ``close_reason`` describe how the connection ended: the code of the
    first close frame exchanged (whoever sent it), or 1006 when the connection was lost
    without one; they are set before any :class:`WebSocketClosed` is raised.
    ``sent_close`` / ``received_close`` keep both close frames.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        event: Any,
        options: WebSocketOptions,
        shutdown: trio.Event,
        shutdown_grace: float,
    ) -> None:
        self.event = event
        self.subprotocols: list[str] = []
        self.subprotocol: str | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.sent_close: CloseFrame | None = None
        self.received_close: CloseFrame | None = None

        self._stream = stream
        self._options = options
        self._shutdown = shutdown
        self._shutdown_grace = shutdown_grace
        self._wsproto = _ObservedWSConnection(self)
        self._conn = WebSocketConnection(
            _GuardedStream(stream, self),
            self._wsproto,
            message_queue_size=options.message_queue_size,
            max_message_size=options.max_message_size,
            receive_buffer_size=_RECEIVE_SIZE,
        )
        self._request: WebSocketRequest | None = None
        self._handshake = "pending"  # -> "accepted" | "rejected"
        self._handshake_lock = trio.Lock()
        self._early_bytes = b""
        self._nursery: trio.Nursery | None = None
        self._watch_scope: trio.CancelScope | None = None
        self._watch_done = trio.Event()
        self._reader_started = False
        self._reader_done = trio.Event()

        self._handler_scope = trio.CancelScope()
        self._ended = trio.Event()
        self._end_kind: str | None = None
        self._closing_kind = "server"
        self._observed = trio.Event()
        self._receiving = 0
        self._cancel_armed = False
        self._messages_parsed = 0
        self._messages_delivered = 0
        self._handler_failed = False
        self._error_response: HTTPError | None = None
        self._shutdown_deadline = float("inf")
        self._stream_broken = False

    def __repr__(self) -> str:
        return f"<WebSocket {self._handshake} close_code={self.close_code!r}>"

    # ------------------------------------------------------------------ public API

    @property
    def closed(self) -> bool:
        """True once the connection is closing or closed (or was rejected)."""
        return self.close_code is not None

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]] | None = None,
    ) -> None:
        """Complete the handshake (101). Idempotent; implicit on first send or receive.

        ``subprotocol`` must be one the client offered (see ``subprotocols``).
        Raises :class:`WebSocketClosed` if the client is already gone.
        """
        async with self._handshake_lock:
            if self._handshake == "accepted":
                return
            if self._handshake == "rejected":
                raise RuntimeError("this WebSocket was rejected; it cannot be accepted")
            if subprotocol is not None and subprotocol not in self.subprotocols:
                raise ValueError(
                    f"subprotocol {subprotocol!r} was not offered by the client "
                    f"(offered: {self.subprotocols!r})"
                )
            if self._ended.is_set():
                self._raise_closed()
            await self._stop_watching()
            assert self._request is not None and self._nursery is not None
            try:
                await self._request.accept(
                    subprotocol=subprotocol, extra_headers=_header_pairs(headers)
                )
            except ConnectionClosed:
                self._record_end(1006, "connection lost during the handshake", "abort")
                self._raise_closed()
            self._handshake = "accepted"
            self.subprotocol = subprotocol
            if self._early_bytes:
                # Frames the client pipelined behind its request: wsproto's handshake
                # parser would drop them, so they go to the frame parser only now.
                self._wsproto.receive_data(self._early_bytes)
                self._early_bytes = b""
            self._reader_started = True
            self._nursery.start_soon(self._run_reader)
            if self._options.ping_interval is not None:
                self._nursery.start_soon(self._keepalive, self._options.ping_interval)

    async def reject(
        self,
        status: int,
        body: str | bytes = b"",
        headers: Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]] | None = None,
    ) -> None:
        """Refuse the upgrade with a plain HTTP response (no 101); the session ends.

        A ``str`` body is sent as ``text/plain; charset=utf-8`` unless ``headers`` name a
        content type. Raises RuntimeError after ``accept()`` (use ``close()`` then).
        """
        if not 300 <= status <= 599:
            raise ValueError(f"reject status must be 3xx, 4xx or 5xx, got {status!r}")
        pairs = _header_pairs(headers)
        if isinstance(body, str):
            body_bytes = body.encode()
            if not any(name.lower() == b"content-type" for name, _ in pairs):
                pairs.append((b"content-type", b"text/plain; charset=utf-8"))
        else:
            body_bytes = bytes(body)
        async with self._handshake_lock:
            if self._handshake == "accepted":
                raise RuntimeError("this WebSocket was accepted; use close() instead")
            if self._handshake == "rejected":
                return
            self._handshake = "rejected"
            self._observed.set()
            await self._stop_watching()
            assert self._request is not None
            pairs.append((b"connection", b"close"))
            try:
                await self._request.reject(status, extra_headers=pairs, body=body_bytes)
            except ConnectionClosed:
                pass
            self._record_end(1006, f"rejected with HTTP {status}", "local")

    async def receive(self) -> str | bytes:
        """The next message (``str`` for text, ``bytes`` for binary); accepts implicitly.

        Messages that arrived before the client closed are still delivered; after them
        this raises :class:`WebSocketClosed`.
        """
        await self._ensure_accepted()
        self._receiving += 1
        try:
            message = await self._conn.get_message()
        except ConnectionClosed:
            self._raise_closed()
        finally:
            self._receiving -= 1
        self._messages_delivered += 1
        self._maybe_cancel_handler()
        return message

    async def send(self, message: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message; accepts implicitly.

        Raises :class:`WebSocketClosed` once the connection is closing or closed, never a
        protocol error.
        """
        if isinstance(message, bytearray | memoryview):
            message = bytes(message)
        if not isinstance(message, str | bytes):
            raise TypeError(f"a WebSocket message is str or bytes, not {type(message).__name__}")
        await self._ensure_accepted()
        if self.close_code is not None or self._wsproto.state is not ConnectionState.OPEN:
            self._raise_closed()
        try:
            await self._conn.send_message(message)
        except (ConnectionClosed, LocalProtocolError):
            # LocalProtocolError: the close started between our check and the send.
            self._raise_closed()

    async def ping(self, payload: bytes | None = None) -> None:
        """Send a ping and wait for its pong (a random payload when ``None``).

        Raises :class:`WebSocketClosed` if the connection ends first, ValueError if the
        payload is already in flight.
        """
        await self._ensure_accepted()
        if self.close_code is not None or self._wsproto.state is not ConnectionState.OPEN:
            self._raise_closed()
        done = trio.Event()
        failure: list[Exception] = []
        ponged = False

        async def ping_and_wait() -> None:
            nonlocal ponged
            try:
                await self._conn.ping(payload)
                ponged = True
            except (ConnectionClosed, ValueError, LocalProtocolError) as exc:
                failure.append(exc)
            done.set()

        async def wait_for_end() -> None:
            # trio-websocket never wakes a pending ping when the connection ends.
            await self._ended.wait()
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ping_and_wait)
            nursery.start_soon(wait_for_end)
            await done.wait()
            nursery.cancel_scope.cancel()
        if ponged:
            return
        if failure and isinstance(failure[0], ValueError):
            raise failure[0]
        self._raise_closed()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` and wait (bounded) for the client's reply.

        Before ``accept()`` this refuses the upgrade with HTTP 403 instead, as ASGI
        servers do. Idempotent: a no-op once the connection is closing or closed.
        """
        if not _valid_close_code(code):
            raise ValueError(f"{code!r} is not a close code an endpoint may send")
        if len(reason.encode()) > 123:
            raise ValueError("a close reason must fit in 123 bytes of UTF-8")
        self._observed.set()
        if self._handshake == "pending":
            await self.reject(403, b"")
            return
        if self._handshake == "rejected" or self._wsproto.state is not ConnectionState.OPEN:
            return
        self._closing_kind = "local"
        with trio.move_on_after(self._options.close_timeout):
            await self._conn.aclose(code, reason or None)
        await self._close_stream()

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        """Messages until the connection closes; a normal close ends the loop quietly."""
        try:
            return await self.receive()
        except WebSocketClosed as exc:
            if exc.code in NORMAL_CLOSE_CODES:
                raise StopAsyncIteration from None
            raise

    # ------------------------------------------------------------------ close bookkeeping

    async def _interrupted_send(self) -> None:
        """A write was cancelled, possibly mid-frame: the connection cannot go on."""
        self._stream_broken = True
        self._record_end(1006, "a send was interrupted", "abort")
        self._arm_handler_cancel()
        with trio.CancelScope(shield=True):
            await self._close_stream()

    def _record_end(self, code: int, reason: str, kind: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        if not self._ended.is_set():
            self._end_kind = kind
            self._ended.set()

    def _on_close_sent(self, code: int, reason: str) -> None:
        self.sent_close = CloseFrame(code, reason)
        kind = "abort" if code == 1006 else self._closing_kind
        self._record_end(code, reason, kind)

    def _on_close_received(self, code: int, reason: str, *, protocol_error: bool) -> None:
        if protocol_error:
            logger.debug("WebSocket protocol error from client: %s (%d)", reason, code)
            self._record_end(code, reason, "abort")
        else:
            self.received_close = CloseFrame(code, reason)
            self._record_end(code, reason, "peer")

    def _raise_closed(self) -> NoReturn:
        if self.close_code is None:
            # The reader can close the message channel a moment before it reports why.
            self._record_end(1006, "connection lost", "abort")
        assert self.close_code is not None
        self._observed.set()
        raise WebSocketClosed(self.close_code, self.close_reason or None)

    def _maybe_cancel_handler(self) -> None:
        # A handler waiting in receive() learns about the end from WebSocketClosed, and
        # one that has seen the end is left to finish; any other is cancelled.
        if self._cancel_armed and not self._observed.is_set() and self._receiving == 0:
            self._handler_scope.cancel()

    def _arm_handler_cancel(self) -> None:
        self._cancel_armed = True
        self._maybe_cancel_handler()

    async def _ensure_accepted(self) -> None:
        if self._handshake != "accepted":
            if self._handshake == "rejected":
                self._raise_closed()
            await self.accept()

    # ------------------------------------------------------------------ background tasks

    async def _watch_before_accept(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Notice a client that leaves while the handler decides; keep early bytes."""
        try:
            with trio.CancelScope() as scope:
                self._watch_scope = scope
                task_status.started()
                try:
                    while len(self._early_bytes) < _MAX_EARLY_BYTES:
                        data = await self._stream.receive_some(_RECEIVE_SIZE)
                        if not data:
                            break
                        self._early_bytes += data
                    else:
                        return  # enough buffered: stop reading, let TCP push back
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                self._record_end(1006, "client disconnected before the handshake", "abort")
                self._arm_handler_cancel()
        finally:
            self._watch_done.set()

    async def _stop_watching(self) -> None:
        if self._watch_scope is not None:
            # Cancelling receive_some consumes no data, so nothing is lost here.
            self._watch_scope.cancel()
            await self._watch_done.wait()

    async def _run_reader(self) -> None:
        try:
            await self._conn._reader_task()
        except ConnectionClosed:
            pass  # a pong or close reply to a client that is already gone
        except Exception:
            logger.debug("WebSocket reader ended with an error", exc_info=True)
        finally:
            self._reader_done.set()
            self._record_end(1006, "connection lost", "abort")

    async def _supervise_end(self) -> None:
        """When the connection ends: cancel a handler that would not notice, free the socket."""
        await self._ended.wait()
        if self._end_kind == "peer":
            # A clean close: let a busy handler come back to receive() and drain.
            with trio.move_on_after(self._options.close_timeout):
                await self._observed.wait()
        if self._end_kind != "local":
            self._arm_handler_cancel()
        if self._reader_started:
            with trio.move_on_after(self._options.close_timeout):
                await self._reader_done.wait()
            await self._close_stream()

    async def _keepalive(self, interval: float) -> None:
        """Ping every ``interval``; no pong within ``ping_timeout`` closes with 1011."""
        timeout = self._options.ping_timeout
        while not self._ended.is_set():
            await trio.sleep(interval)
            if self._ended.is_set():
                return
            pong = trio.Event()

            async def ping_once(pong: trio.Event = pong) -> None:
                try:
                    await self._conn.ping()
                except (ConnectionClosed, ValueError, LocalProtocolError):
                    return
                pong.set()

            timed_out = False
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ping_once)
                deadline = trio.current_time() + timeout
                while not pong.is_set() and not self._ended.is_set():
                    with trio.move_on_at(deadline):
                        await _first_of(pong, self._ended)
                    if pong.is_set() or self._ended.is_set():
                        break
                    if self._reader_paused():
                        # Our own handler is behind, so trio-websocket is not reading and
                        # the pong may be sitting in the socket: not evidence of a dead peer.
                        deadline = trio.current_time() + timeout
                        continue
                    timed_out = True
                    break
                nursery.cancel_scope.cancel()
            if timed_out:
                logger.debug("WebSocket keepalive: no pong within %ss, closing", timeout)
                await self._server_close(1011, "keepalive ping timeout")
                return

    def _reader_paused(self) -> bool:
        backlog = self._messages_parsed - self._messages_delivered
        return backlog > self._options.message_queue_size

    async def _watch_shutdown(self) -> None:
        await self._shutdown.wait()
        deadline = self._shutdown_deadline = trio.current_time() + self._shutdown_grace
        if self._handshake == "accepted" and self._wsproto.state is ConnectionState.OPEN:
            self._closing_kind = "server"
            with trio.move_on_at(deadline):
                await self._conn.aclose(1001, "server shutdown")
            await self._close_stream()
        elif self._handshake == "pending":
            # Not upgraded yet: stop the handler now, the session answers 503.
            self._handler_scope.cancel()
        await trio.sleep_until(deadline)
        self._handler_scope.cancel()

    async def _server_close(self, code: int, reason: str) -> None:
        self._closing_kind = "server"
        if self._wsproto.state is ConnectionState.OPEN:
            with trio.move_on_after(self._options.close_timeout):
                await self._conn.aclose(code, reason)
        await self._close_stream()

    async def _close_stream(self) -> None:
        try:
            await trio.aclose_forcefully(self._stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    # ------------------------------------------------------------------ the session

    async def _run_handler(self, handler: Callable[[WebSocket], Awaitable[None]]) -> None:
        with self._handler_scope:
            try:
                await handler(self)
            except Exception as exc:
                self._handle_handler_error(exc, handler)

    def _handle_handler_error(self, exc: Exception, handler: Any) -> None:
        if isinstance(exc, ConnectionClosed):
            logger.debug("WebSocket handler ended on a closed connection: %r", exc)
            return
        if isinstance(exc, ExceptionGroup):
            _closed, rest = exc.split(ConnectionClosed)
            if rest is None:
                logger.debug("WebSocket handler ended on a closed connection: %r", exc)
                return
            if len(rest.exceptions) == 1 and not isinstance(rest.exceptions[0], ExceptionGroup):
                exc = rest.exceptions[0]
        if isinstance(exc, HTTPError) and self._handshake == "pending":
            self._error_response = exc
            return
        self._handler_failed = True
        name = getattr(handler, "__qualname__", repr(handler))
        logger.error("WebSocket handler %s raised", name, exc_info=exc)

    async def _finish(self) -> None:
        """After the handler: answer or close as the outcome requires, free the socket."""
        # During a shutdown the grace period bounds this too, not only close_timeout.
        deadline = min(trio.current_time() + self._options.close_timeout, self._shutdown_deadline)
        with trio.move_on_at(deadline):
            if self._handshake == "pending" and not self._ended.is_set():
                if self._error_response is not None:
                    error = self._error_response
                    await self.reject(
                        error.status,
                        error.to_json(),
                        [*error.headers, ("content-type", "application/json")],
                    )
                elif self._handler_failed:
                    error = HTTPError(500)
                    await self.reject(500, error.to_json(), {"content-type": "application/json"})
                elif self._shutdown.is_set():
                    await self.reject(503, b"")
                else:
                    # The handler returned without accepting: refuse, as ASGI does.
                    await self.reject(403, b"")
            elif self._handshake == "accepted" and self._wsproto.state is ConnectionState.OPEN:
                self._closing_kind = "server"
                if self._handler_failed:
                    await self._conn.aclose(1011, "internal error")
                else:
                    await self._conn.aclose(1000)
            if self._reader_started:
                await self._reader_done.wait()
        await self._close_stream()


async def _first_of(*events: trio.Event) -> None:
    """Wait until any of ``events`` is set."""
    async with trio.open_nursery() as nursery:
        for event in events:

            async def wait(event: trio.Event = event) -> None:
                await event.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(wait)


async def _send_handshake_error(
    stream: trio.abc.Stream, wsproto_conn: WSConnection, error: RemoteProtocolError
) -> None:
    hint = error.event_hint
    if hint is None:
        return
    try:
        data = wsproto_conn.send(hint)
    except LocalProtocolError:
        return
    with trio.move_on_after(5):
        try:
            await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def run_websocket(
    stream: trio.abc.Stream,
    head: RequestHead,
    trailing_data: bytes,
    event: Any,
    handler: Callable[[WebSocket], Awaitable[None]],
    options: WebSocketOptions,
    shutdown: trio.Event,
    shutdown_grace: float,
) -> None:
    """Run one WebSocket session over ``stream`` in the caller's task; close the stream.

    ``head`` is the upgrade request as the parser read it (already checked with
    :func:`check_upgrade_request`), ``trailing_data`` the bytes received after it.
    Returns when the session is over. Never raises for a client's misbehaviour or
    disconnect; a handler exception closes with 1011 (or answers 500 before the
    upgrade) and is logged on the ``trio_h3`` logger. When ``shutdown`` is set the
    connection is closed with 1001 and the handler is cancelled within ``shutdown_grace``.
    Only cancellation from the caller propagates (as a single ``trio.Cancelled``).
    """
    try:
        await _run_session(
            stream, head, trailing_data, event, handler, options, shutdown, shutdown_grace
        )
    except BaseExceptionGroup as group:
        raise_single(group)


async def _run_session(
    stream: trio.abc.Stream,
    head: RequestHead,
    trailing_data: bytes,
    event: Any,
    handler: Callable[[WebSocket], Awaitable[None]],
    options: WebSocketOptions,
    shutdown: trio.Event,
    shutdown_grace: float,
) -> None:
    ws = WebSocket(stream, event, options, shutdown, shutdown_grace)
    try:
        ws._wsproto.receive_data(_serialise_head(head))
        requests = [e for e in ws._wsproto.events() if isinstance(e, Request)]
    except RemoteProtocolError as exc:
        logger.debug("WebSocket handshake refused by wsproto: %s", exc)
        await _send_handshake_error(stream, ws._wsproto, exc)
        await ws._close_stream()
        return
    if len(requests) != 1:
        await ws._close_stream()
        return
    ws._request = WebSocketRequest(ws._conn, requests[0])
    ws.subprotocols = list(requests[0].subprotocols)
    ws._early_bytes = bytes(trailing_data)

    completed = False
    async with trio.open_nursery() as nursery:
        ws._nursery = nursery
        try:
            await nursery.start(ws._watch_before_accept)
            nursery.start_soon(ws._supervise_end)
            nursery.start_soon(ws._watch_shutdown)
            await ws._run_handler(handler)
            completed = True
        finally:
            with trio.CancelScope(shield=True):
                if completed:
                    await ws._finish()
                else:
                    await ws._close_stream()
            nursery.cancel_scope.cancel()
