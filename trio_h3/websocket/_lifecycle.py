"""How one WebSocket session ends: its end recorded once, and the tasks that watch for it.

:class:`Lifecycle` is the state the handler's API (:class:`~.session.WebSocket`) and the
session's background tasks share:

- the end, recorded exactly once (:meth:`Lifecycle.record_end`): the code and reason of
  the first close frame exchanged, whoever sent it, or 1006 when the connection was lost
  without one, and its *kind*: ``"peer"`` (the client closed cleanly), ``"local"`` (the
  handler closed or rejected), ``"server"`` (we closed: shutdown, keepalive, the handler
  returned) or ``"abort"`` (lost, protocol error, interrupted send);
- the handler's cancel scope, and the rule for using it: a handler waiting in
  ``receive()`` learns about the end from ``WebSocketClosed``; one that has seen the end
  is left to finish; any other is cancelled;
- the background tasks: watching the socket before the handshake is answered (keeping
  pipelined bytes), trio-websocket's reader, keepalive pings with a pong deadline,
  shutdown (1001), and the supervisor that frees the socket once the session is over.
"""

from __future__ import annotations

import logging
from typing import Final

import trio
from trio_websocket import ConnectionClosed
from wsproto.utilities import LocalProtocolError

from ._adapter import RECEIVE_SIZE, Wire
from .options import WebSocketOptions

__all__ = ["Lifecycle", "first_of"]

logger = logging.getLogger("trio_h3")

# Bytes a client may send before we answer the handshake (pipelined frames) that we keep
# for the frame parser; past this we simply stop reading until the handler decides.
MAX_EARLY_BYTES: Final = 64 * 1024


async def first_of(*events: trio.Event) -> None:
    """Wait until any of ``events`` is set."""
    async with trio.open_nursery() as nursery:
        for event in events:

            async def wait(event: trio.Event = event) -> None:
                await event.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(wait)


class Lifecycle:
    """One session's shared state and background tasks (see the module docstring)."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        options: WebSocketOptions,
        shutdown: trio.Event,
        shutdown_grace: float,
    ) -> None:
        self.stream = stream
        self.options = options
        self.shutdown = shutdown
        self.shutdown_grace = shutdown_grace
        self.wire = Wire(stream, self, options)
        #: ``"pending"`` -> ``"accepted"`` | ``"rejected"``.
        self.handshake = "pending"
        self.early_bytes = b""
        self.nursery: trio.Nursery | None = None

        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.sent_close: tuple[int, str] | None = None
        self.received_close: tuple[int, str] | None = None

        self.handler_scope = trio.CancelScope()
        #: Set once the connection is over (or closing); ``end_kind`` says how.
        self.ended = trio.Event()
        self.end_kind: str | None = None
        #: The kind our next close frame will record ("server" or "local").
        self.closing_kind = "server"
        #: Set once the handler has seen the end (or closed/rejected itself).
        self.observed = trio.Event()
        #: Handler calls currently waiting in ``receive()``, and in ``send()``/``ping()``.
        self.receiving = 0
        self.sending = 0
        self.messages_delivered = 0
        self.reader_started = False
        self.shutdown_deadline = float("inf")

        self._cancel_armed = False
        self._watch_scope: trio.CancelScope | None = None
        self._watch_done = trio.Event()
        self._reader_done = trio.Event()

    # ------------------------------------------------------------------ the end

    def record_end(self, code: int, reason: str, kind: str) -> None:
        """Record how the connection ended; only the first call counts."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        if not self.ended.is_set():
            self.end_kind = kind
            self.ended.set()

    def close_sent(self, code: int, reason: str) -> None:
        """WireObserver: a close frame went out."""
        self.sent_close = (code, reason)
        kind = "abort" if code == 1006 else self.closing_kind
        self.record_end(code, reason, kind)

    def close_received(self, code: int, reason: str, *, protocol_error: bool) -> None:
        """WireObserver: the client's close frame, or a frame wsproto could not parse."""
        if protocol_error:
            logger.debug("WebSocket protocol error from client: %s (%d)", reason, code)
            self.record_end(code, reason, "abort")
        else:
            self.received_close = (code, reason)
            self.record_end(code, reason, "peer")

    async def send_failed(self, reason: str, *, timed_out: bool) -> None:
        """WireObserver: a write was cancelled or outlived ``send_timeout``."""
        if timed_out:
            logger.debug(
                "WebSocket send took longer than send_timeout (%ss): the client stopped "
                "reading; closing the connection",
                self.options.send_timeout,
            )
            if self.sending:
                # The handler is in send() or ping(), which raise WebSocketClosed for
                # this: it learns about the end there, so it is not cancelled.
                self.observed.set()
        self.record_end(1006, reason, "abort")
        self.arm_handler_cancel()
        with trio.CancelScope(shield=True):
            await self.close_stream()

    def maybe_cancel_handler(self) -> None:
        """Cancel the handler if the end is armed and it would not otherwise notice."""
        # A handler waiting in receive() learns about the end from WebSocketClosed, and
        # one that has seen the end is left to finish; any other is cancelled.
        if self._cancel_armed and not self.observed.is_set() and self.receiving == 0:
            self.handler_scope.cancel()

    def arm_handler_cancel(self) -> None:
        """From now on a handler that is not receiving (or done) is cancelled."""
        self._cancel_armed = True
        self.maybe_cancel_handler()

    async def close_stream(self) -> None:
        """Close the socket, whatever state it is in."""
        try:
            await trio.aclose_forcefully(self.stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    async def server_close(self, code: int, reason: str) -> None:
        """Close with ``code`` (bounded by ``close_timeout``), then free the socket."""
        self.closing_kind = "server"
        if self.wire.open:
            with trio.move_on_after(self.options.close_timeout):
                await self.wire.connection.aclose(code, reason)
        await self.close_stream()

    # ------------------------------------------------------------------ before the handshake

    async def watch_before_accept(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Notice a client that leaves while the handler decides; keep early bytes."""
        try:
            with trio.CancelScope() as scope:
                self._watch_scope = scope
                task_status.started()
                try:
                    while len(self.early_bytes) < MAX_EARLY_BYTES:
                        data = await self.stream.receive_some(RECEIVE_SIZE)
                        if not data:
                            break
                        self.early_bytes += data
                    else:
                        return  # enough buffered: stop reading, let TCP push back
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                self.record_end(1006, "client disconnected before the handshake", "abort")
                self.arm_handler_cancel()
        finally:
            self._watch_done.set()

    async def stop_watching(self) -> None:
        """Stop reading before the handshake is answered (the reader takes over)."""
        if self._watch_scope is not None:
            # Cancelling receive_some consumes no data, so nothing is lost here.
            self._watch_scope.cancel()
            await self._watch_done.wait()

    def start_after_accept(self) -> None:
        """The 101 is out: hand early bytes to the parser, start reader and keepalive."""
        assert self.nursery is not None
        if self.early_bytes:
            # Frames the client pipelined behind its request: wsproto's handshake
            # parser would drop them, so they go to the frame parser only now.
            self.wire.feed(self.early_bytes)
            self.early_bytes = b""
        self.reader_started = True
        self.nursery.start_soon(self._run_reader)
        if self.options.ping_interval is not None:
            self.nursery.start_soon(self._keepalive, self.options.ping_interval)

    # ------------------------------------------------------------------ while open

    async def _run_reader(self) -> None:
        try:
            await self.wire.run_reader()
        except ConnectionClosed:
            pass  # a pong or close reply to a client that is already gone
        except Exception:
            logger.debug("WebSocket reader ended with an error", exc_info=True)
        finally:
            self._reader_done.set()
            self.record_end(1006, "connection lost", "abort")

    async def wait_reader_done(self) -> None:
        """Wait until trio-websocket's reader has finished (if it ever started)."""
        if self.reader_started:
            await self._reader_done.wait()

    async def supervise_end(self) -> None:
        """When the connection ends: cancel a handler that would not notice, free the socket."""
        await self.ended.wait()
        if self.end_kind == "peer":
            # A clean close: let a busy handler come back to receive() and drain.
            with trio.move_on_after(self.options.close_timeout):
                await self.observed.wait()
        if self.end_kind != "local":
            self.arm_handler_cancel()
        if self.reader_started:
            with trio.move_on_after(self.options.close_timeout):
                await self._reader_done.wait()
            await self.close_stream()

    async def _keepalive(self, interval: float) -> None:
        """Ping every ``interval``; no pong within ``ping_timeout`` closes with 1011."""
        timeout = self.options.ping_timeout
        while not self.ended.is_set():
            await trio.sleep(interval)
            if self.ended.is_set():
                return
            pong = trio.Event()

            async def ping_once(pong: trio.Event = pong) -> None:
                try:
                    await self.wire.connection.ping()
                except (ConnectionClosed, ValueError, LocalProtocolError):
                    return
                pong.set()

            timed_out = False
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ping_once)
                deadline = trio.current_time() + timeout
                while not pong.is_set() and not self.ended.is_set():
                    with trio.move_on_at(deadline):
                        await first_of(pong, self.ended)
                    if pong.is_set() or self.ended.is_set():
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
                await self.server_close(1011, "keepalive ping timeout")
                return

    def _reader_paused(self) -> bool:
        backlog = self.wire.messages_parsed - self.messages_delivered
        return backlog > self.options.message_queue_size

    async def watch_shutdown(self) -> None:
        """On graceful shutdown: close with 1001, cancel the handler after the grace."""
        await self.shutdown.wait()
        deadline = self.shutdown_deadline = trio.current_time() + self.shutdown_grace
        if self.handshake == "accepted" and self.wire.open:
            self.closing_kind = "server"
            with trio.move_on_at(deadline):
                await self.wire.connection.aclose(1001, "server shutdown")
            await self.close_stream()
        elif self.handshake == "pending":
            # Not upgraded yet: stop the handler now, the session answers 503.
            self.handler_scope.cancel()
        await trio.sleep_until(deadline)
        self.handler_scope.cancel()
