"""serve(): listeners, TLS, signals and a graceful shutdown with hard bounds.

Shutdown order (the first SIGINT/SIGTERM, ``shutdown_trigger``, or app code raising
KeyboardInterrupt/SystemExit): stop accepting and close the listeners -> tell everyone
(``shutting_down``) and close idle keep-alive connections -> give streams
``stream_shutdown_grace`` to say goodbye, then cancel them (they still end cleanly) ->
give in-flight requests up to ``shutdown_timeout`` -> cancel whatever is left -> exit the
app's lifespan.

When the server owns the process (it handles the signals: the main thread, no
``shutdown_trigger``), every bound is real whatever app code does, a task that shields
itself or swallows ``Cancelled`` included:

- a second signal exits at once, even if the event loop is blocked (a plain signal
  handler runs between bytecodes), with status 130 (SIGINT) or 143 (SIGTERM);
- ``shutdown_timeout`` + :data:`HARD_EXIT_MARGIN` after the shutdown began, a watchdog
  thread exits the process, with 128 + the signal's number (1 when no signal started it);
- either way what was still running is written to stderr first.

A shutdown that completes in time returns normally (status 0 from the CLI).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import signal
import ssl
import sys
import threading
from typing import Any

import trio

from ..app import H3
from ..datastructures import Address
from ..sse.stream import CloseReason
from .connection import HTTPConnection
from .options import ServeOptions
from .state import ServerState

__all__ = ["Server", "serve"]

logger = logging.getLogger("trio_h3")

#: Seconds past ``shutdown_timeout`` before a process that owns its signals is made to
#: exit: enough for the lifespan's exit and the last writes, short enough that a
#: supervisor's own kill deadline (systemd's 90 s, Kubernetes' 30 s) is never reached.
HARD_EXIT_MARGIN = 2.0

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
        self._first_signal: int | None = None
        self._exited = threading.Event()

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
        state.begin_shutdown()
        for connection in list(state.connections):
            if connection.idle_scope is not None:
                connection.idle_scope.cancel()
        if not state.connections:
            self._drained.set()
        options = self.options
        with trio.move_on_after(options.shutdown_timeout):
            with trio.move_on_after(min(options.stream_shutdown_grace, options.shutdown_timeout)):
                await self._drained.wait()
            self.cancel_streams()
            await self._drained.wait()
        if state.connections:
            logger.warning(
                "shutdown_timeout (%.1fs) passed: cancelling %d connection(s): %s",
                options.shutdown_timeout,
                len(state.connections),
                "; ".join(c.describe() for c in state.connections),
            )
        connections.cancel_scope.cancel()

    def cancel_streams(self) -> None:
        """End every open stream with reason ``server_shutdown`` (each ends cleanly)."""
        self.state.streams_cancelled = True
        for stream in list(self.state.streams):
            stream.end(CloseReason.SERVER_SHUTDOWN)

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
                # handle_stream itself (no wrapper coroutine: its frame would live as
                # long as the connection).
                nursery.start_soon(functools.partial(self.handle_stream, stream, scheme=scheme))

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.options.ssl_certfile is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.options.ssl_certfile, self.options.ssl_keyfile)
        context.set_alpn_protocols(["http/1.1"])
        return context

    async def _listen(self) -> list[trio.SocketListener]:
        options = self.options
        try:
            return await trio.open_tcp_listeners(
                options.port, host=options.host, backlog=options.backlog
            )
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot listen on {options.host}:{options.port}: {exc.strerror}"
            ) from exc

    async def run(
        self,
        *,
        shutdown_trigger: trio.Event | None = None,
        handle_signals: bool | None = None,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen, serve until shutdown, shut down gracefully (see the module docstring)."""
        if handle_signals is None:
            handle_signals = (
                shutdown_trigger is None and threading.current_thread() is threading.main_thread()
            )
        context = self._ssl_context()
        sockets = await self._listen()
        scheme = "https" if context is not None else "http"
        bound = [a for a in (_address(s.socket.getsockname()) for s in sockets) if a is not None]
        listeners: list[trio.abc.Listener[Any]] = list(sockets)
        if context is not None:
            listeners = [
                trio.SSLListener(listener, context, https_compatible=True) for listener in listeners
            ]
        try:
            async with trio.open_nursery() as outer:
                # The signal receiver lives until run() returns, so a signal during the
                # lifespan's exit is still ours, never the default disposition.
                if handle_signals:
                    outer.start_soon(self._watch_signals)
                if shutdown_trigger is not None:
                    outer.start_soon(self._follow_trigger, shutdown_trigger)
                await self._serve(listeners, bound, scheme, handle_signals, task_status)
                outer.cancel_scope.cancel()
        finally:
            self._exited.set()

    async def _follow_trigger(self, trigger: trio.Event) -> None:
        await trigger.wait()
        self.state.request_shutdown("shutdown_trigger")

    async def _serve(
        self,
        listeners: list[trio.abc.Listener[Any]],
        bound: list[Address],
        scheme: str,
        owns_process: bool,
        task_status: trio.TaskStatus[list[Address]],
    ) -> None:
        state = self.state
        async with trio.open_nursery() as background:
            try:
                async with self.app.run_lifespan(background):
                    async with trio.open_nursery() as connections:
                        accepting = trio.CancelScope()
                        closed = trio.Event()

                        async def accept_all() -> None:
                            try:
                                with accepting:
                                    async with trio.open_nursery() as accept_nursery:
                                        for listener in listeners:
                                            accept_nursery.start_soon(
                                                self._accept_loop, listener, connections, scheme
                                            )
                            finally:
                                closed.set()

                        connections.start_soon(accept_all)
                        for address in bound:
                            host = f"[{address.host}]" if ":" in address.host else address.host
                            _announce(f"trio-h3 listening on {scheme}://{host}:{address.port}")
                        task_status.started(bound)
                        await state.shutdown_requested.wait()
                        if owns_process:
                            self._arm_hard_exit()
                        accepting.cancel()
                        await closed.wait()  # the listeners are closed: say so only now
                        again = " (again to force)" if owns_process else ""
                        logger.info("%s: graceful shutdown%s", state.shutdown_reason, again)
                        await self.shutdown(connections)
            finally:
                background.cancel_scope.cancel()

    # -- the hard bounds ------------------------------------------------------------------

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                self._first_signal = signum
                self.state.request_shutdown(signal.Signals(signum).name)
                # From now on a signal exits at once, even if the event loop is blocked:
                # a plain handler runs between bytecodes, the loop need not be free.
                for number in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(number, self._exit_now)
                await trio.sleep_forever()

    def _exit_now(self, signum: int, frame: object) -> None:
        self._hard_exit(f"second signal ({signal.Signals(signum).name}): exiting now", 128 + signum)

    def _arm_hard_exit(self) -> None:
        code = 128 + self._first_signal if self._first_signal is not None else 1
        delay = self.options.shutdown_timeout + HARD_EXIT_MARGIN

        def watchdog() -> None:
            if not self._exited.wait(delay):
                self._hard_exit(
                    f"shutdown did not finish within shutdown_timeout + {HARD_EXIT_MARGIN:g}s "
                    f"({delay:g}s): exiting now",
                    code,
                )

        threading.Thread(target=watchdog, name="trio-h3 shutdown watchdog", daemon=True).start()

    def _hard_exit(self, why: str, code: int) -> None:
        try:
            running = [c.describe() for c in list(self.state.connections)]
        except Exception as exc:  # the exit must happen whatever the description does
            running = [f"(could not describe the connections: {exc!r})"]
        lines = [f"trio-h3: {why}"]
        if running:
            lines.append(f"trio-h3: still running ({len(running)}): " + "; ".join(running))
        # Straight to the file descriptor: logging's locks may be held by the thread we
        # are about to abandon.
        try:
            os.write(2, ("\n".join(lines) + "\n").encode(errors="replace"))
        except OSError:
            pass
        os._exit(code)


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
    ``handle_signals`` says otherwise (see the module docstring for the exit rules).
    """
    opts = ServeOptions.build(options, **kwargs)
    server = Server(app, opts)
    await server.run(
        shutdown_trigger=shutdown_trigger, handle_signals=handle_signals, task_status=task_status
    )
