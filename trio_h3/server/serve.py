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

Startup errors name what failed: the address that cannot be listened on, the
certificate or key file that cannot be read or loaded (an :class:`OSError` or a
:class:`ValueError`, before the lifespan runs); a lifespan that raises on entry or on
exit is a :class:`LifespanError` (the CLI's exit status 3, as uvicorn's), with what it
raised as its ``__cause__``. Whatever else ends ``serve`` is raised as itself rather
than inside the nurseries' ExceptionGroups when it is a single error.

Listeners: ``host``/``port`` (TCP, every address the host resolves to), or ``uds`` (a
Unix socket, replacing a stale socket file, mode 0666, removed on exit), or ``fd`` (a
socket already bound, e.g. by systemd).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import signal
import socket
import ssl
import stat
import sys
import threading
from collections.abc import Coroutine
from typing import Any

import trio

from .._groups import leaves, raise_single
from ..app import H3
from ..datastructures import Address
from ..sse.stream import CloseReason
from .connection import HTTPConnection
from .options import ServeOptions
from .sockets import bind_socket
from .state import ServerState

__all__ = ["LifespanError", "Server", "serve"]

logger = logging.getLogger("trio_h3")

#: Seconds past ``shutdown_timeout`` before a process that owns its signals is made to
#: exit: enough for the lifespan's exit and the last writes, short enough that a
#: supervisor's own kill deadline (systemd's 90 s, Kubernetes' 30 s) is never reached.
HARD_EXIT_MARGIN = 2.0

# accept() failures that mean "out of resources for now", not "the listener is dead".
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


class LifespanError(Exception):
    """The app's lifespan raised on entry (``phase == "startup"``) or exit ("shutdown").

    What it raised is the ``__cause__``; the CLI says so in one line, prints that
    traceback and exits with status 3 (uvicorn's for a failed startup).
    """

    def __init__(self, phase: str, cause: BaseException) -> None:
        super().__init__(f"the lifespan failed on {phase}: {_summary(cause)}")
        self.phase = phase


def _summary(exc: BaseException) -> str:
    real = [e for e in leaves(exc) if not isinstance(e, trio.Cancelled)]
    if len(real) == 1:
        exc = real[0]
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
        self._first_signal: int | None = None
        self._exited = threading.Event()

    def handle_stream(
        self,
        stream: trio.abc.Stream,
        *,
        client: Address | None = None,
        server: Address | None = None,
        scheme: str = "http",
    ) -> Coroutine[Any, Any, None]:
        """What serves one connection to completion (it is always closed afterwards):
        ``await server.handle_stream(stream)``, or start it as a task.

        A plain function returning the connection's own coroutine, so a connection's
        task starts in :meth:`HTTPConnection.run` (which registers it with the server):
        no wrapper frame lives as long as the connection does (an idle SSE stream's
        memory).
        """
        sock = _socket_of(stream)
        if sock is not None:
            try:
                client = client or _address(sock.getpeername())
                server = server or _address(sock.getsockname())
            except OSError:
                pass
        connection = HTTPConnection(stream, self.state, client=client, server=server, scheme=scheme)
        return connection.run()

    async def shutdown(self, connections: trio.Nursery) -> None:
        """Graceful shutdown of every connection in ``connections`` (see module docstring)."""
        state = self.state
        state.begin_shutdown()
        for connection in list(state.connections):
            if connection.idle_scope is not None:
                connection.idle_scope.cancel()
        if not state.connections:
            self.state.drained.set()
        options = self.options
        with trio.move_on_after(options.shutdown_timeout):
            with trio.move_on_after(min(options.stream_shutdown_grace, options.shutdown_timeout)):
                await self.state.drained.wait()
            self.cancel_streams()
            await self.state.drained.wait()
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
                # handle_stream's coroutine is the connection's own (no wrapper frame
                # lives as long as the connection).
                nursery.start_soon(functools.partial(self.handle_stream, stream, scheme=scheme))

    def _ssl_context(self) -> ssl.SSLContext | None:
        options = self.options
        if options.ssl_certfile is None:
            return None
        files = [
            ("certificate", options.ssl_certfile),
            ("key", options.ssl_keyfile),
            ("CA certificates", options.ssl_ca_certs),
        ]
        for what, path in files:
            if path is not None:
                _check_readable(f"the TLS {what} file", path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        password = options.ssl_keyfile_password
        try:
            # A callback, never None: OpenSSL would otherwise prompt on the terminal for
            # the pass phrase of an encrypted key.
            context.load_cert_chain(
                options.ssl_certfile, options.ssl_keyfile, lambda: password or ""
            )
        except ssl.SSLError as exc:
            key = (
                f"with the key {options.ssl_keyfile!r}"
                if options.ssl_keyfile
                else "(no ssl_keyfile: the file must hold the private key too)"
            )
            hint = "; is ssl_keyfile_password right?" if "decrypt" in str(exc) else ""
            raise ValueError(
                f"cannot load the TLS certificate {options.ssl_certfile!r} {key}: "
                f"{exc.reason or exc}{hint}"
            ) from exc
        context.verify_mode = ssl.VerifyMode(options.ssl_cert_reqs)
        if options.ssl_ca_certs is not None:
            try:
                context.load_verify_locations(options.ssl_ca_certs)
            except ssl.SSLError as exc:
                raise ValueError(
                    f"cannot load the CA certificates {options.ssl_ca_certs!r}: {exc.reason or exc}"
                ) from exc
        if options.ssl_ciphers is not None:
            try:
                context.set_ciphers(options.ssl_ciphers)
            except ssl.SSLError as exc:
                raise ValueError(f"ssl_ciphers {options.ssl_ciphers!r}: {exc}") from exc
        context.set_alpn_protocols(["http/1.1"])
        return context

    async def _listen(self) -> list[trio.SocketListener]:
        options = self.options
        if options.fd is not None:
            return [_fd_listener(options.fd, options.backlog)]
        if options.uds is not None:
            return [await _unix_listener(options.uds, options.backlog)]
        try:
            if options.reuse_port:
                sock = bind_socket(options.host, options.port, options.backlog, reuse_port=True)
                return [trio.SocketListener(trio.socket.from_stdlib_socket(sock))]
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
        names = [s.socket.getsockname() for s in sockets]
        bound = [a for a in (_address(name) for name in names) if a is not None]
        where = [_where(name, scheme) for name in names]
        listeners: list[trio.abc.Listener[Any]] = list(sockets)
        if context is not None:
            listeners = [
                trio.SSLListener(listener, context, https_compatible=True) for listener in listeners
            ]
        try:
            async with trio.open_nursery() as outer:
                # The signal receiver lives until run() returns, so a signal during the
                # lifespan's exit is still ours, never the default disposition; and it is
                # in place before anything is announced (start, not start_soon: a
                # supervisor's SIGTERM right after "listening" must not kill a worker
                # whose receiver task had not run yet).
                if handle_signals:
                    await outer.start(self._watch_signals)
                if shutdown_trigger is not None:
                    outer.start_soon(self._follow_trigger, shutdown_trigger)
                await self._serve(listeners, bound, where, scheme, handle_signals, task_status)
                outer.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # One error (a failed lifespan, ...) is raised as itself, not as the
            # nurseries' group around it.
            raise_single(group)
        finally:
            self._exited.set()
            for listener in sockets:
                listener.socket.close()  # already closed unless the lifespan failed
            if self.options.uds is not None:
                _remove_socket_file(self.options.uds, names)

    async def _follow_trigger(self, trigger: trio.Event) -> None:
        await trigger.wait()
        self.state.request_shutdown("shutdown_trigger")

    async def _serve(
        self,
        listeners: list[trio.abc.Listener[Any]],
        bound: list[Address],
        where: list[str],
        scheme: str,
        owns_process: bool,
        task_status: trio.TaskStatus[list[Address]],
    ) -> None:
        state = self.state
        async with trio.open_nursery() as background:
            phase = "startup"
            try:
                async with self.app.run_lifespan(background):
                    phase = "serving"
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
                        for place in where:
                            _announce(f"trio-h3 listening on {place}")
                        task_status.started(bound)
                        await state.shutdown_requested.wait()
                        if owns_process:
                            self._arm_hard_exit()
                        accepting.cancel()
                        await closed.wait()  # the listeners are closed: say so only now
                        again = " (again to force)" if owns_process else ""
                        logger.info("%s: graceful shutdown%s", state.shutdown_reason, again)
                        await self.shutdown(connections)
                    phase = "shutdown"
            except Exception as exc:
                if phase == "serving":
                    raise
                raise LifespanError(phase, exc) from exc
            finally:
                background.cancel_scope.cancel()

    # -- the hard bounds ------------------------------------------------------------------

    async def _watch_signals(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
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


def _check_readable(what: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise OSError(exc.errno, f"cannot read {what} {path!r}: {exc.strerror}") from exc


def _fd_listener(fd: int, backlog: int) -> trio.SocketListener:
    try:
        sock = trio.socket.socket(fileno=fd)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on fd {fd}: {exc.strerror}") from exc
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise OSError(f"cannot listen on fd {fd}: not a stream socket")
    try:
        sock.listen(backlog)  # harmless if it already listens; sets our backlog
    except OSError as exc:
        sock.detach()
        raise OSError(exc.errno, f"cannot listen on fd {fd}: {exc.strerror}") from exc
    return trio.SocketListener(sock)


async def _unix_listener(path: str, backlog: int) -> trio.SocketListener:
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)  # a stale socket file (what asyncio does too)
        except FileNotFoundError:
            pass
        await sock.bind(path)
        os.chmod(path, 0o666)  # so a proxy running as another user can connect (uvicorn)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on unix:{path}: {exc.strerror}") from exc
    return trio.SocketListener(sock)


def _remove_socket_file(path: str, names: list[Any]) -> None:
    if path in names:
        try:
            os.unlink(path)
        except OSError:
            pass


def _where(sockname: Any, scheme: str) -> str:
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        host = f"[{sockname[0]}]" if ":" in str(sockname[0]) else sockname[0]
        return f"{scheme}://{host}:{sockname[1]}"
    name = sockname.decode(errors="replace") if isinstance(sockname, bytes) else sockname
    return f"unix:{name} ({scheme})"


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
    Keyword arguments are :class:`ServeOptions` fields (``port=0`` picks a free port),
    applied on top of ``options``, or of the app's own ``serve_options`` when no
    ``options`` is given (an explicit ``options`` is taken whole).
    ``shutdown_trigger`` (a ``trio.Event``) stops it gracefully without signals;
    signals are handled only in the main thread and when no trigger is given, unless
    ``handle_signals`` says otherwise (see the module docstring for the exit rules).
    """
    opts = ServeOptions.build(options if options is not None else app.serve_options, **kwargs)
    server = Server(app, opts)
    await server.run(
        shutdown_trigger=shutdown_trigger, handle_signals=handle_signals, task_status=task_status
    )
