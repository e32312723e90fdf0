"""WebSocket routes: the session a handler holds, from the upgrade hand-off to the close.

The connection code reads the upgrade request with h11, checks it with
:func:`~.handshake.check_upgrade_request` (pure) and then calls :func:`run_websocket`,
which owns the stream from then on. The WebSocket protocol itself is trio-websocket's
(and wsproto's under it, driven through :mod:`._adapter`); this module adds what a
framework needs around it:

- the request h11 already consumed is replayed into wsproto, and bytes the client sent
  before our answer are kept and handed to the frame parser after the 101;
- implicit ``accept()`` on first use, ``reject(status, body)`` as a plain HTTP response,
  403 when a handler returns without accepting (as ASGI servers do);
- keepalive pings with a pong deadline (MockClock-friendly; a handler that is merely
  slow to read does not count as a dead peer);
- ``close_code`` / ``close_reason`` are set before any :class:`WebSocketClosed` is raised,
  and both the close frame we sent and the one we received are kept;
- the handler runs in a cancel scope owned by the session (:mod:`._lifecycle`): an
  abrupt disconnect, a protocol error, an over-size message (1009), a keepalive timeout
  or server shutdown (1001) cancels it unless it is waiting in ``receive()``, where it
  gets :class:`WebSocketClosed` instead; after a clean close by the client it gets
  ``close_timeout`` seconds to notice before it is cancelled;
- the handler is a guest (:mod:`trio_h3._guest`): whatever it raises, ``BaseException``
  included, closes its own session with 1011 (or answers 500 before the upgrade) and is
  logged with its traceback on the ``trio_h3`` logger; ``KeyboardInterrupt`` and
  ``SystemExit`` also start a graceful shutdown. Nothing a client does makes
  :func:`run_websocket` raise.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, NamedTuple, NoReturn

import trio
from trio_websocket import CloseReason, ConnectionClosed
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .._groups import raise_single
from .._guest import Guest
from ..errors import HTTPError
from ..types import RequestHead
from ._lifecycle import Lifecycle
from .codes import NORMAL_CLOSE_CODES, may_send
from .handshake import AllowedOrigins, check_origin
from .options import WebSocketOptions

__all__ = ["CloseFrame", "WebSocket", "WebSocketClosed"]

logger = logging.getLogger("trio_h3")


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


class WebSocket:
    """One WebSocket session, as a handler sees it.

    ``event`` is the H3Event of the upgrade request (params, query, headers, context).
    ``subprotocols`` lists what the client offered, ``subprotocol`` what was accepted.
    ``close_code`` / ``close_reason`` describe how the connection ended: the code of the
    first close frame exchanged (whoever sent it), or 1006 when the connection was lost
    without one; they are set before any :class:`WebSocketClosed` is raised.
    ``sent_close`` / ``received_close`` keep both close frames.
    """

    def __init__(self, life: Lifecycle, event: Any) -> None:
        self.event = event
        self.subprotocols: list[str] = []
        self.subprotocol: str | None = None
        self._life = life
        self._handshake_lock = trio.Lock()

    def __repr__(self) -> str:
        return f"<WebSocket {self._life.handshake} close_code={self.close_code!r}>"

    # ------------------------------------------------------------------ how it ended

    @property
    def close_code(self) -> int | None:
        """The code of the first close frame exchanged, 1006 if lost; None while open."""
        return self._life.close_code

    @property
    def close_reason(self) -> str | None:
        """The reason text that goes with ``close_code``."""
        return self._life.close_reason

    @property
    def sent_close(self) -> CloseFrame | None:
        """The close frame we sent, if any."""
        frame = self._life.sent_close
        return None if frame is None else CloseFrame(*frame)

    @property
    def received_close(self) -> CloseFrame | None:
        """The close frame the client sent, if any."""
        frame = self._life.received_close
        return None if frame is None else CloseFrame(*frame)

    @property
    def closed(self) -> bool:
        """True once the connection is closing or closed (or was rejected)."""
        return self.close_code is not None

    # ------------------------------------------------------------------ public API

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]] | None = None,
    ) -> None:
        """Complete the handshake (101). Idempotent; implicit on first send or receive.

        ``subprotocol`` must be one the client offered (see ``subprotocols``).
        Raises :class:`WebSocketClosed` if the client is already gone.
        """
        life = self._life
        async with self._handshake_lock:
            if life.handshake == "accepted":
                return
            if life.handshake == "rejected":
                raise RuntimeError("this WebSocket was rejected; it cannot be accepted")
            if subprotocol is not None and subprotocol not in self.subprotocols:
                raise ValueError(
                    f"subprotocol {subprotocol!r} was not offered by the client "
                    f"(offered: {self.subprotocols!r})"
                )
            if life.ended.is_set():
                self._raise_closed()
            await life.stop_watching()
            assert life.wire.request is not None
            try:
                await life.wire.request.accept(
                    subprotocol=subprotocol, extra_headers=_header_pairs(headers)
                )
            except ConnectionClosed:
                life.record_end(1006, "connection lost during the handshake", "abort")
                self._raise_closed()
            life.handshake = "accepted"
            self.subprotocol = subprotocol
            life.start_after_accept()

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
        life = self._life
        async with self._handshake_lock:
            if life.handshake == "accepted":
                raise RuntimeError("this WebSocket was accepted; use close() instead")
            if life.handshake == "rejected":
                return
            life.handshake = "rejected"
            life.observed.set()
            await life.stop_watching()
            assert life.wire.request is not None
            pairs.append((b"connection", b"close"))
            try:
                await life.wire.request.reject(status, extra_headers=pairs, body=body_bytes)
            except ConnectionClosed:
                pass
            life.record_end(1006, f"rejected with HTTP {status}", "local")

    async def receive(self) -> str | bytes:
        """The next message (``str`` for text, ``bytes`` for binary); accepts implicitly.

        Messages that arrived before the client closed are still delivered; after them
        this raises :class:`WebSocketClosed`.
        """
        await self._ensure_accepted()
        life = self._life
        life.receiving += 1
        try:
            message = await life.wire.connection.get_message()
        except ConnectionClosed:
            self._raise_closed()
        finally:
            life.receiving -= 1
        life.messages_delivered += 1
        life.maybe_cancel_handler()
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
        life = self._life
        if life.close_code is not None or not life.wire.open:
            self._raise_closed()
        life.sending += 1
        try:
            await life.wire.connection.send_message(message)
        except (ConnectionClosed, LocalProtocolError):
            # LocalProtocolError: the close started between our check and the send.
            self._raise_closed()
        finally:
            life.sending -= 1

    async def ping(self, payload: bytes | None = None) -> None:
        """Send a ping and wait for its pong (a random payload when ``None``).

        Raises :class:`WebSocketClosed` if the connection ends first, ValueError if the
        payload is already in flight.
        """
        await self._ensure_accepted()
        life = self._life
        if life.close_code is not None or not life.wire.open:
            self._raise_closed()
        done = trio.Event()
        failure: list[Exception] = []
        ponged = False

        async def ping_and_wait() -> None:
            nonlocal ponged
            try:
                await life.wire.connection.ping(payload)
                ponged = True
            except (ConnectionClosed, ValueError, LocalProtocolError) as exc:
                failure.append(exc)
            done.set()

        async def wait_for_end() -> None:
            # trio-websocket never wakes a pending ping when the connection ends.
            await life.ended.wait()
            done.set()

        life.sending += 1
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ping_and_wait)
                nursery.start_soon(wait_for_end)
                await done.wait()
                nursery.cancel_scope.cancel()
        finally:
            life.sending -= 1
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
        if not may_send(code):
            raise ValueError(f"{code!r} is not a close code an endpoint may send")
        if len(reason.encode()) > 123:
            raise ValueError("a close reason must fit in 123 bytes of UTF-8")
        life = self._life
        life.observed.set()
        if life.handshake == "pending":
            await self.reject(403, b"")
            return
        if life.handshake == "rejected" or not life.wire.open:
            return
        life.closing_kind = "local"
        with trio.move_on_after(life.options.close_timeout):
            await life.wire.connection.aclose(code, reason or None)
        await life.close_stream()

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

    # ------------------------------------------------------------------ internals

    def _raise_closed(self) -> NoReturn:
        life = self._life
        if life.close_code is None:
            # The reader can close the message channel a moment before it reports why.
            life.record_end(1006, "connection lost", "abort")
        assert life.close_code is not None
        life.observed.set()
        raise WebSocketClosed(life.close_code, life.close_reason or None)

    async def _ensure_accepted(self) -> None:
        handshake = self._life.handshake
        if handshake != "accepted":
            if handshake == "rejected":
                self._raise_closed()
            await self.accept()


# --------------------------------------------------------------------------- the session


class _Outcome:
    """What the handler's run left for :func:`_finish` to answer."""

    def __init__(self) -> None:
        self.failed = False
        self.error_response: HTTPError | None = None


async def _run_handler(
    ws: WebSocket,
    handler: Callable[[WebSocket], Awaitable[None]],
    outcome: _Outcome,
    guest: Guest,
) -> None:
    with ws._life.handler_scope:
        try:
            await handler(ws)
        except BaseException as exc:
            # App code is a guest (see trio_h3._guest): whatever it raises ends only this
            # session. A cancellation of ours is re-raised by contain() and ends here, at
            # the handler's scope, or further out if the caller's scope was cancelled.
            await _contain(ws, exc, handler, outcome, guest)


async def _contain(
    ws: WebSocket, exc: BaseException, handler: Any, outcome: _Outcome, guest: Guest
) -> None:
    rest: BaseException | None
    if isinstance(exc, BaseExceptionGroup):
        _closed, rest = exc.split(ConnectionClosed)
        if (
            rest is not None
            and len(rest.exceptions) == 1
            and not isinstance(rest.exceptions[0], BaseExceptionGroup)
        ):
            rest = rest.exceptions[0]
    else:
        rest = None if isinstance(exc, ConnectionClosed) else exc
    if rest is None:
        # The handler let the WebSocketClosed it was given escape: the connection's end,
        # not a failure.
        logger.debug("WebSocket handler ended on a closed connection: %r", exc)
        return
    if isinstance(rest, HTTPError) and ws._life.handshake == "pending":
        outcome.error_response = rest
        return
    name = getattr(handler, "__qualname__", repr(handler))
    await guest.contain(rest, f"WebSocket handler {name}{_where(ws)}")
    outcome.failed = True


def _json_headers(error: HTTPError) -> list[tuple[str | bytes, str | bytes]]:
    return [*error.headers, ("content-type", "application/json")]


def _where(ws: WebSocket) -> str:
    path = getattr(ws.event, "path", None)
    return f" ({path})" if path else ""


async def _origin_refusal(
    ws: WebSocket, head: RequestHead, options: WebSocketOptions, guest: Guest
) -> HTTPError | None:
    """The 403 (or 500) for a handshake whose ``Origin`` is not allowed, else None."""
    try:
        allowed = None if options.origins is None else AllowedOrigins.of(options.origins)
    except (TypeError, ValueError) as exc:
        # A route's origins were checked by app.ws(); this is ServeOptions.ws_origins.
        logger.error("WebSocket origins setting is invalid: %s", exc)
        return HTTPError(500)
    try:
        check_origin(head.headers, allowed, require_origin=options.require_origin)
    except HTTPError as refusal:
        logger.debug("WebSocket handshake%s refused: %s", _where(ws), refusal.message)
        return refusal
    except BaseException as exc:
        # A callable origin rule is app code, a guest like the handler.
        await guest.contain(exc, f"WebSocket origin check{_where(ws)}")
        return HTTPError(500)
    return None


async def _finish(ws: WebSocket, outcome: _Outcome) -> None:
    """After the handler: answer or close as the outcome requires, free the socket."""
    life = ws._life
    # During a shutdown the grace period bounds this too, not only close_timeout.
    deadline = min(trio.current_time() + life.options.close_timeout, life.shutdown_deadline)
    with trio.move_on_at(deadline):
        if life.handshake == "pending" and not life.ended.is_set():
            if outcome.error_response is not None:
                error = outcome.error_response
                await ws.reject(error.status, error.to_json(), _json_headers(error))
            elif outcome.failed:
                error = HTTPError(500)
                await ws.reject(500, error.to_json(), {"content-type": "application/json"})
            elif life.shutdown.is_set():
                await ws.reject(503, b"")
            else:
                # The handler returned without accepting: refuse, as ASGI does.
                await ws.reject(403, b"")
        elif life.handshake == "accepted" and life.wire.open:
            life.closing_kind = "server"
            if outcome.failed:
                await life.wire.connection.aclose(1011, "internal error")
            else:
                await life.wire.connection.aclose(1000)
        await life.wait_reader_done()
    await life.close_stream()


async def run_websocket(
    stream: trio.abc.Stream,
    head: RequestHead,
    trailing_data: bytes,
    event: Any,
    handler: Callable[[WebSocket], Awaitable[None]],
    options: WebSocketOptions,
    shutdown: trio.Event,
    shutdown_grace: float,
    *,
    guest: Guest,
) -> None:
    """Run one WebSocket session over ``stream`` in the caller's task; close the stream.

    ``head`` is the upgrade request as the parser read it (already checked with
    :func:`~.handshake.check_upgrade_request`), ``trailing_data`` the bytes received after it.
    Returns when the session is over. Never raises for a client's misbehaviour or
    disconnect. Whatever the handler raises, ``BaseException`` included, is contained
    by ``guest`` (the server's :class:`~trio_h3._guest.Guest`): logged with its
    traceback on the ``trio_h3`` logger, answered with 1011 (or 500 before the upgrade),
    and for ``KeyboardInterrupt``/``SystemExit`` a graceful shutdown is requested. When
    ``shutdown`` is set the connection is closed with 1001 and the handler is cancelled
    within ``shutdown_grace``. Only cancellation from the caller propagates (as a
    single ``trio.Cancelled``).
    """
    try:
        await _run_session(
            stream, head, trailing_data, event, handler, options, shutdown, shutdown_grace, guest
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
    guest: Guest,
) -> None:
    life = Lifecycle(stream, options, shutdown, shutdown_grace)
    ws = WebSocket(life, event)
    try:
        request = life.wire.read_request(head)
    except RemoteProtocolError as exc:
        logger.debug("WebSocket handshake refused by wsproto: %s", exc)
        await life.wire.refuse(exc)
        await life.close_stream()
        return
    if request is None:
        await life.close_stream()
        return
    ws.subprotocols = list(request.subprotocols)
    life.early_bytes = bytes(trailing_data)
    refusal = await _origin_refusal(ws, head, options, guest)
    if refusal is not None:
        with trio.move_on_after(options.close_timeout):
            await ws.reject(refusal.status, refusal.to_json(), _json_headers(refusal))
        await life.close_stream()
        return

    outcome = _Outcome()
    completed = False
    async with trio.open_nursery() as nursery:
        life.nursery = nursery
        try:
            await nursery.start(life.watch_before_accept)
            nursery.start_soon(life.supervise_end)
            nursery.start_soon(life.watch_shutdown)
            await _run_handler(ws, handler, outcome, guest)
            completed = True
        finally:
            with trio.CancelScope(shield=True):
                if completed:
                    await _finish(ws, outcome)
                else:
                    await life.close_stream()
            nursery.cancel_scope.cancel()
