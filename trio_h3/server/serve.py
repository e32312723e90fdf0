"""serve(): listeners, TLS, signals and graceful shutdown around HTTPConnection.

Shutdown order (the first SIGINT/SIGTERM, or ``shutdown_trigger``): stop accepting and
close the listeners -> tell everyone (``shutting_down``) and close idle keep-alive
connections -> give streams ``stream_shutdown_grace`` to say goodbye, then cancel them
(they still end cleanly) -> give in-flight requests up to ``shutdown_timeout`` ->
cancel whatever is left -> exit the app's lifespan. A second signal cancels at once.
"""

from __future__ import annotations

import errno
import logging
import signal
import ssl
import sys
import threading
from typing import Any

import trio

from ..app import H3
from ..event import Address
from ..sse import CloseReason
from .connection import HTTPConnection
from .options import ServeOptions
from .state import ServerState

__all__ = ["Server", "serve"]

logger = logging.getLogger("trio_h3")

# accept() failures that mean "out of resources for now", not "the listener is dead".
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


def _address(sockaddr: Any) -> Address | None:
    if isinstance(sockaddr, tuple) and len(sockaddr) >= 2:
        return Address(str(sockaddr[0]), int(sockaddr[1]))
    return None


def _socket_of(stream: trio.abc.Stream) -> Any:
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    return getattr(stream, "socket", None)


class Server:
    """One running server: its state, listeners and shutdown logic.

    :func:`serve` is the usual entry point; the test client drives a Server over
    in-memory streams through :meth:`handle_stream`.
    """

    def __init__(self, app: H3, options: ServeOptions) -> None:
        self.app = app
        self.options = options
        self.state = ServerState(app, options)
        self._drained = trio.Event()

    async def handle_stream(
        self,
        stream: trio.abc.Stream,
        *,
        client: Address | None = None,
        server: Address | None = None,
        scheme: str = "http",
    ) -> None:
        """Serve one connection to completion (it is always closed afterwards)."""
        sock = _socket_of(stream)
        if sock is not None:
            try:
                client = client or _address(sock.getpeername())
                server = server or _address(sock.getsockname())
            except OSError:
                pass
        connection = HTTPConnection(stream, self.state, client=client, server=server, scheme=scheme)
        self.state.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.state.connections.discard(connection)
            if self.state.shutting_down.is_set() and not self.state.connections:
                self._drained.set()

    async def shutdown(self, connections: trio.Nursery) -> None:
        """Graceful shutdown of every connection in ``connections`` (see module docstring)."""
        state = self.state
        state.shutting_down.set()
        for connection in list(state.connections):
            if connection.idle_scope is not None:
                connection.idle_scope.cancel()
        if not state.connections:
            self._drained.set()
        with trio.move_on_after(self.options.shutdown_timeout):
            with trio.move_on_after(
                min(self.options.stream_shutdown_grace, self.options.shutdown_timeout)
            ):
                await self._drained.wait()
            self.cancel_streams()
            await self._drained.wait()
        if state.connections:
            logger.warning(
                "shutdown_timeout (%.1fs) passed: cancelling %d connection(s)",
                self.options.shutdown_timeout,
                len(state.connections),
            )
        connections.cancel_scope.cancel()

    def cancel_streams(self) -> None:
        """Cancel every open SSE stream with reason ``server_shutdown`` (each ends cleanly)."""
        self.state.streams_cancelled = True
        for writer in list(self.state.streams):
            writer._cancel(CloseReason.SERVER_SHUTDOWN)

    async def _accept_loop(
        self, listener: trio.abc.Listener[Any], nursery: trio.Nursery, scheme: str
    ) -> None:
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno in _ACCEPT_CAPACITY_ERRNOS:
                        logger.error("accept() failed (%s); retrying in 100 ms", exc)
                        await trio.sleep(0.1)
                        continue
                    raise
                nursery.start_soon(self._handle_accepted, stream, scheme)

    async def _handle_accepted(self, stream: trio.abc.Stream, scheme: str) -> None:
        await self.handle_stream(stream, scheme=scheme)

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.options.ssl_certfile is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.options.ssl_certfile, self.options.ssl_keyfile)
        context.set_alpn_protocols(["http/1.1"])
        return context

    async def run(
        self,
        *,
        shutdown_trigger: trio.Event | None = None,
        handle_signals: bool | None = None,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen, serve until shutdown, shut down gracefully."""
        options = self.options
        listeners: list[trio.abc.Listener[Any]] = list(
            await trio.open_tcp_listeners(options.port, host=options.host, backlog=options.backlog)
        )
        context = self._ssl_context()
        scheme = "https" if context is not None else "http"
        addresses = [_address(listener.socket.getsockname()) for listener in listeners]  # type: ignore[attr-defined]
        bound = [a for a in addresses if a is not None]
        if context is not None:
            listeners = [
                trio.SSLListener(listener, context, https_compatible=True) for listener in listeners
            ]
        if handle_signals is None:
            handle_signals = (
                shutdown_trigger is None and threading.current_thread() is threading.main_thread()
            )
        trigger = shutdown_trigger if shutdown_trigger is not None else trio.Event()

        async with trio.open_nursery() as background:
            try:
                async with self.app.run_lifespan(background):
                    async with trio.open_nursery() as connections:
                        accepting = trio.CancelScope()

                        async def accept_all() -> None:
                            with accepting:
                                async with trio.open_nursery() as accept_nursery:
                                    for listener in listeners:
                                        accept_nursery.start_soon(
                                            self._accept_loop, listener, connections, scheme
                                        )

                        connections.start_soon(accept_all)
                        if handle_signals:
                            connections.start_soon(self._watch_signals, trigger, connections)
                        for address in bound:
                            host = f"[{address.host}]" if ":" in address.host else address.host
                            _announce(f"trio-h3 listening on {scheme}://{host}:{address.port}")
                        task_status.started(bound)
                        await trigger.wait()
                        logger.info("shutting down")
                        accepting.cancel()
                        await self.shutdown(connections)
            finally:
                background.cancel_scope.cancel()

    async def _watch_signals(self, trigger: trio.Event, connections: trio.Nursery) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if not trigger.is_set():
                    logger.info(
                        "%s: graceful shutdown (again to force)", signal.Signals(signum).name
                    )
                    trigger.set()
                else:
                    logger.warning("second signal: exiting now")
                    connections.cancel_scope.cancel()
                    return


def _announce(message: str) -> None:
    # The listening URL must reach the person who started the server even when
    # logging is off or set above INFO (``--log-level warning``).
    if logger.hasHandlers() and logger.isEnabledFor(logging.INFO):
        logger.info(message)
    else:
        print(message, file=sys.stderr, flush=True)


async def serve(
    app: H3,
    options: ServeOptions | None = None,
    *,
    shutdown_trigger: trio.Event | None = None,
    handle_signals: bool | None = None,
    task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    **kwargs: Any,
) -> None:
    """Serve ``app`` over HTTP/1.1 until shutdown (127.0.0.1:3000 unless told otherwise).

    ``trio.run(serve, app)`` from a script, or ``addresses = await nursery.start(serve,
    app, options)`` to embed it: ``start`` returns the bound addresses once listening.
    Keyword arguments are :class:`ServeOptions` fields (``port=0`` picks a free port).
    ``shutdown_trigger`` (a ``trio.Event``) stops it gracefully without signals;
    signals are handled only in the main thread and when no trigger is given, unless
    ``handle_signals`` says otherwise.
    """
    opts = ServeOptions.build(options, **kwargs)
    server = Server(app, opts)
    await server.run(
        shutdown_trigger=shutdown_trigger, handle_signals=handle_signals, task_status=task_status
    )
