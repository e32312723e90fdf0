"""One HTTP/1.1 connection: the request loop, and nothing else.

read a request head -> one :class:`~.exchange.Exchange` (the app, the response) -> the
next head, while the connection stays reusable (keep-alive and pipelining come from the
wire's cycle). Between requests the connection waits at most ``keep_alive_timeout``;
once a head has begun it must arrive whole within ``request_head_timeout`` (slowloris).
A head that was already waiting is served after a schedule point, or two when it came
sooner after the last response than usual, so that the longest-waiting go first
(fairness between connections; see the loop). A head the server refuses gets its 4xx
with the JSON error body, then a clean close.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import trio

from ..datastructures import Address
from ..errors import HTTPError
from ..response import error_response
from ..types import RequestHead
from .checks import WireError
from .exchange import Exchange
from .wire import RECEIVE_SIZE, Wire

if TYPE_CHECKING:
    from .state import ServerState

__all__: list[str] = []

logger = logging.getLogger("trio_h3")

_CLOSE = (b"connection", b"close")
# A lingering close drains at most this much (and this long) of a body we refused, so
# the client reads our error rather than a reset (what nginx's lingering_close does).
_LINGER_BYTES = 4 * RECEIVE_SIZE
_LINGER_SECONDS = 1.0


class HTTPConnection:
    """Serves one client connection until it closes, times out or the server stops."""

    __slots__ = (
        "_handed_off",
        "client",
        "exchange",
        "idle_scope",
        "opened",
        "peer_trusted",
        "scheme",
        "server",
        "state",
        "wire",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        state: ServerState,
        *,
        client: Address | None,
        server: Address | None,
        scheme: str = "http",
    ) -> None:
        self.state = state
        options = state.options
        self.wire: Wire = state.wire_class(
            stream,
            max_header_size=options.max_header_size,
            max_target_size=options.max_target_size,
        )
        self.client = client
        self.server = server
        self.scheme = scheme
        #: Cancelled by the server on shutdown while we wait for the next request.
        self.idle_scope: trio.CancelScope | None = None
        #: The exchange in progress, if any (for logs).
        self.exchange: Exchange | None = None
        # time.monotonic, not the Trio clock: describe() is also called from the
        # shutdown watchdog's thread and from a signal handler.
        self.opened = time.monotonic()
        self._handed_off = False
        # Whether the peer's proxy headers are believed: the peer is the same for every
        # request of the connection, so this is decided once.
        trusted = state.trusted_proxies
        self.peer_trusted = trusted is not None and (client.host if client else None) in trusted

    def describe(self) -> str:
        """Who and what, for logs: the client and the request in progress."""
        peer = f"{self.client.host}:{self.client.port}" if self.client else "?"
        doing = self.exchange.describe() if self.exchange is not None else "idle"
        return f"{peer} {doing} ({time.monotonic() - self.opened:.1f}s open)"

    def server_headers(
        self, close: bool, present: list[tuple[bytes, bytes]] | None = None
    ) -> list[tuple[bytes, bytes]]:
        """What the server adds to every response (``Date``, ``Server``, ``extra_headers``,
        close); an extra header whose name is already in ``present`` is left out."""
        headers: list[tuple[bytes, bytes]] = []
        self.state.add_server_headers(headers, present or headers)
        if close:
            # Announce the close: the body was refused or is unread, or we are stopping.
            headers.append(_CLOSE)
        return headers

    async def run(self) -> None:
        """Serve requests until the connection is done; always closes the stream."""
        # except*: errors can leave a stream nursery wrapped in an ExceptionGroup. A
        # client that vanished is routine (debug); anything else is our bug (error).
        # (The request loop is here, not in a method of its own: a connection's frames
        # live as long as it does, an idle SSE stream's included.)
        wire = self.wire
        first = True
        self.state.connections.add(self)
        try:
            while True:
                # A head already here (pipelined, or read without waiting) is taken at
                # once; only waiting for one needs _read_head's deadlines.
                try:
                    head = wire.next_head()
                except WireError as error:
                    await self._refuse(error.status, error.message)
                    return
                except EOFError:
                    return
                if head is None:
                    head = await self._read_head(first)
                    if head is None:
                        return
                else:
                    # A schedule point before serving a head that was already here, as
                    # trio's own receive makes after every read: without it, connections
                    # that found their next request waiting ran ahead of those woken from
                    # epoll (wrk -c64, p99: 64 ms on h11, 4.9 ms on httptools; with it, 15
                    # and 3.4 ms, and httptools serves a third more requests: the others'
                    # requests have arrived by the time each task comes round again).
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    # Then the longest-waiting first. Trio runs each batch of runnable
                    # tasks in the order they became runnable or reversed, at random
                    # (trio/_core/_run.py), so a connection served first in one round
                    # can be served last in the next, and wait two rounds. A request
                    # found sooner after its connection's last response than the mean
                    # yields once more, and those waiting longer in the same batch go
                    # first (one schedule point at most per request). wrk -c64, p99:
                    # httptools 3.33 -> 2.78 ms on / and 4.16 -> 3.44 on /users/42, h11
                    # 10.0 -> 9.0 ms, with as many requests served or more.
                    if self.state.pace(time.monotonic() - wire.written_at):
                        await trio.lowlevel.cancel_shielded_checkpoint()
                first = False
                exchange = self.exchange = Exchange(self, head)
                await exchange.run()
                self.exchange = None
                if exchange.yield_owed:
                    # The schedule point after a response written at once (Wire.write_now),
                    # made here: the fewer coroutine levels a suspension passes through,
                    # the cheaper it is.
                    await trio.lowlevel.cancel_shielded_checkpoint()
                if exchange.handed_off:
                    self._handed_off = True
                    return
                if not wire.reusable:
                    return
                wire.start_next_cycle()
                if self.state.stopping:
                    return
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            logger.debug("client %s went away", self.client)
        except* Exception as group:
            logger.error("connection from %s failed", self.client, exc_info=group)
        finally:
            try:
                if not self._handed_off:
                    await self._close()
            finally:
                self._leave()

    def _leave(self) -> None:
        state = self.state
        state.connections.discard(self)
        if state.shutting_down.is_set() and not state.connections:
            state.drained.set()

    async def _read_head(self, first: bool) -> RequestHead | None:
        options = self.state.options
        wire = self.wire
        timeout = options.request_head_timeout if first else options.keep_alive_timeout
        deadline: float | None = None
        waiting_idle = True
        try:
            while True:
                try:
                    head = wire.next_head()
                except WireError as error:
                    await self._refuse(error.status, error.message)
                    return None
                except EOFError:
                    return None
                if head is not None:
                    return head
                if waiting_idle:
                    if self.state.shutting_down.is_set():
                        return None
                    if wire.has_partial_head:
                        # Part of a head is here: from now on the whole head must arrive
                        # within request_head_timeout (slowloris).
                        waiting_idle = False
                        deadline = trio.current_time() + options.request_head_timeout
                if deadline is None:
                    deadline = trio.current_time() + timeout
                # A fresh scope per wait (a scope can be entered only once), all with the
                # same deadline; the server cancels it to end an idle wait.
                self.idle_scope = scope = trio.CancelScope(deadline=deadline)
                with scope:
                    await wire.receive()
                if scope.cancelled_caught:
                    if not waiting_idle or wire.has_partial_head:
                        await self._refuse(408, "Request head timeout")
                    return None
        finally:
            self.idle_scope = None

    async def _refuse(self, status: int, message: str) -> None:
        """Answer a head we refuse (if an answer can still be sent), then close."""
        if self.wire.response_started or self.wire.broken:
            return
        self.wire.close_after = True
        response = error_response(HTTPError(status, message))
        headers = list(response.headers.raw)
        headers += self.server_headers(True, headers)
        try:
            await self.wire.send_response(status, headers, response.body)
        except (ValueError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def _close(self) -> None:
        wire = self.wire
        stream = wire.stream
        with trio.CancelScope(shield=True):
            if (
                wire.client_may_still_send
                and not wire.waiting_for_100_continue
                and isinstance(stream, trio.abc.HalfCloseableStream)
            ):
                # Lingering close, only when the client may still be sending (an upload
                # we refused, a bad head): stop sending, then drain briefly. A client
                # still waiting for 100 Continue was never invited to send: close now.
                with trio.move_on_after(_LINGER_SECONDS):
                    try:
                        await stream.send_eof()
                        drained = 0
                        while drained < _LINGER_BYTES:
                            data = await stream.receive_some(RECEIVE_SIZE)
                            if not data:
                                break
                            drained += len(data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
            try:
                await trio.aclose_forcefully(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
