"""What the tests share: one way to run a real server, one raw HTTP client.

- :func:`running_server`: a real server (``Server(app, options).run()``, what ``serve``
  does; on the parser backend ``$TRIO_H3_HTTP`` names, see conftest.py) on 127.0.0.1
  port 0 for the length of an ``async with`` block, stopped
  gracefully (and bounded) at its end; ``server.url``, ``server.port``, and
  ``server.server.state`` (connections, streams) for assertions.
- Raw bytes, over a socket or a TestClient's in-memory stream: :func:`request_bytes`
  writes a request by hand, :func:`read_until` / :func:`read_until_eof` read,
  :func:`parse_responses` checks the framing; :func:`exchange` does all of it over one
  new TCP connection. :class:`H11Client` is an h11 client for request-by-request work.
- Leak checks (:func:`open_fds`, :func:`count_tasks`) and :func:`reset` (close with RST).
- :class:`ServerProcess`: a server in a child process (a script or the CLI), for what
  only a process shows: signals, exit statuses, hard deadlines.

Every wait on a real peer here is bounded: a hang fails the test instead of the CI job.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import h11
import trio
import wsproto
import wsproto.events as wse
from trio_websocket import CloseReason, ConnectionClosed

from trio_h3 import H3, Address, Headers, ServeOptions, Server
from trio_h3.testing.client import HTTP_ENV

#: How long a test may spend with a real server before it counts as hung.
SERVER_BOUND = 60.0
#: How long one connect, read or write to a real peer may take.
IO_BOUND = 10.0


# -- a real server -----------------------------------------------------------------------------


@dataclass
class RunningServer:
    """A server started by :func:`running_server`: where it listens and how to stop it."""

    server: Server
    addresses: list[Address]
    shutdown_trigger: trio.Event
    #: Set once the server has returned.
    stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def host(self) -> str:
        return self.addresses[0].host

    @property
    def port(self) -> int:
        return self.addresses[0].port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Begin a graceful shutdown (what SIGINT does)."""
        self.shutdown_trigger.set()

    async def wait_idle(self, timeout: float = IO_BOUND) -> None:
        """Until the server holds no connection and no stream (bounded).

        The server offers no event for this, so it is polled; the bound is a guard.
        """
        state = self.server.state
        with trio.fail_after(timeout):
            while state.connections or state.streams:
                await trio.sleep(0.005)


@asynccontextmanager
async def running_server(
    app: H3, *, bound: float = SERVER_BOUND, **options: Any
) -> AsyncIterator[RunningServer]:
    """``async with running_server(app, **ServeOptions) as server:`` serves ``app`` on
    127.0.0.1, a free port, no access log (unless told otherwise).

    The whole block is bounded by ``bound`` seconds; at its end the server is stopped
    through its shutdown trigger, as a signal would, and must have returned within
    ``shutdown_timeout`` plus a margin.
    """
    options.setdefault("host", "127.0.0.1")
    options.setdefault("port", 0)
    options.setdefault("access_log", False)
    if HTTP_ENV in os.environ:
        # The backend the run (or the test's ``backend`` fixture) chose.
        options.setdefault("http", os.environ[HTTP_ENV])
    server = Server(app, ServeOptions.build(**options))
    trigger = trio.Event()
    stopped = trio.Event()

    async def run(task_status: trio.TaskStatus[list[Address]]) -> None:
        try:
            await server.run(
                shutdown_trigger=trigger, handle_signals=False, task_status=task_status
            )
        finally:
            stopped.set()

    with trio.fail_after(bound):
        async with trio.open_nursery() as nursery:
            addresses: list[Address] = await nursery.start(run)
            running = RunningServer(server, addresses, trigger, stopped)
            try:
                yield running
            finally:
                trigger.set()
                # A server that does not stop is a failure, not a hang.
                with trio.fail_after(server.options.shutdown_timeout + IO_BOUND):
                    await stopped.wait()


RunServer = Callable[..., AbstractAsyncContextManager[RunningServer]]


async def open_connection(port: int, host: str = "127.0.0.1") -> trio.SocketStream:
    """A new TCP connection to ``host:port`` (bounded)."""
    with trio.fail_after(IO_BOUND):
        return await trio.open_tcp_stream(host, port)


async def exchange(port: int, data: bytes, host: str = "127.0.0.1") -> bytes:
    """Open a connection, write ``data``, return everything the server sends until it
    closes (bounded)."""
    stream = await open_connection(port, host)
    async with stream:
        await stream.send_all(data)
        with trio.fail_after(IO_BOUND):
            return await read_until_eof(stream)


def reset(stream: trio.SocketStream) -> None:
    """Close with RST (SO_LINGER on, timeout 0), no FIN: an abrupt disconnect."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


def open_fds() -> int:
    """File descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def count_tasks() -> int:
    """Tasks alive in this trio run."""

    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(
            walk(child) for nursery in task.child_nurseries for child in nursery.child_tasks
        )

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return walk(root)


# -- raw HTTP, over a socket or an in-memory stream ----------------------------------------


def request_bytes(
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    version: str = "1.1",
) -> bytes:
    """A request written by hand: Host and Content-Length are added when missing."""
    lines = [f"{method} {target} HTTP/{version}"]
    names = {name.lower() for name, _ in headers or []}
    if "host" not in names:
        lines.append("Host: testserver")
    lines += [f"{name}: {value}" for name, value in headers or []]
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_until(stream: trio.abc.ReceiveStream, marker: bytes, limit: int = 1 << 22) -> bytes:
    """What the peer sends until ``marker`` has arrived; raises if it closes first."""
    data = bytearray()
    while marker not in data:
        if len(data) >= limit:
            raise AssertionError(f"{marker!r} not within {limit} bytes: {bytes(data[:200])!r}...")
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ConnectionError(f"EOF before {marker!r}; got {bytes(data)!r}")
        data += chunk
    return bytes(data)


async def read_until_eof(stream: trio.abc.ReceiveStream, limit: int = 1 << 22) -> bytes:
    """Everything the peer sends until it closes (bounded by ``limit`` bytes)."""
    data = bytearray()
    while len(data) < limit:
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


async def read_websocket_events(
    stream: trio.abc.ReceiveStream, connection: wsproto.WSConnection
) -> tuple[list[wse.Event], int]:
    """Feed everything the peer sends until it closes to a wsproto client ``connection``,
    then the EOF; return the events and how many bytes arrived."""
    events: list[wse.Event] = []
    received = 0
    while data := await stream.receive_some(65536):
        received += len(data)
        connection.receive_data(bytes(data))
        events += connection.events()
    connection.receive_data(None)
    events += connection.events()
    return events, received


def close_reason(closed: ConnectionClosed) -> CloseReason:
    """The close code and reason a trio-websocket client saw (it always records one)."""
    assert closed.reason is not None, "trio-websocket recorded no close reason"
    return closed.reason


@dataclass
class RawResponse:
    """One response parsed out of the bytes a server sent."""

    status: int
    headers: Headers
    body: bytes
    http_version: str
    informational: list[int] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


def _headers(head: h11.Response) -> Headers:
    return Headers.from_raw(list(head.headers))


def parse_responses(data: bytes, methods: list[str]) -> tuple[list[RawResponse], bool]:
    """Parse the responses to requests made with ``methods``, in order, from ``data``.

    Returns the responses and whether the server closed cleanly after the last one
    (``data`` ended exactly where a response ended). Raises if the bytes are not
    well-framed HTTP/1.1 responses.
    """
    client = h11.Connection(h11.CLIENT)
    responses: list[RawResponse] = []
    client.receive_data(data)
    client.receive_data(b"")  # EOF: everything the server will ever send is in ``data``
    for index, method in enumerate(methods):
        if index:
            client.start_next_cycle()
        client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        client.send(h11.EndOfMessage())
        informational: list[int] = []
        head: h11.Response | None = None
        body = bytearray()
        while True:
            event = client.next_event()
            if isinstance(event, h11.InformationalResponse):
                informational.append(event.status_code)
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"response {index} is incomplete: got {event!r}")
        assert head is not None
        responses.append(
            RawResponse(
                head.status_code,
                _headers(head),
                bytes(body),
                head.http_version.decode(),
                informational,
            )
        )
    try:
        clean_close = isinstance(client.next_event(), h11.ConnectionClosed)
    except h11.ProtocolError:
        clean_close = False
    return responses, clean_close


class H11Client:
    """An h11 client over one connection, request by request; ``raw`` keeps every byte
    the server sent."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)
        self.raw = bytearray()

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> H11Client:
        return cls(await open_connection(port, host))

    async def send(self, *events: h11.Event) -> None:
        await self.stream.send_all(b"".join(self.conn.send(e) or b"" for e in events))

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]] | None = None
    ) -> None:
        """Send a request without a body."""
        request = h11.Request(method=method, target=target, headers=headers or [("host", "t")])
        await self.send(request, h11.EndOfMessage())

    async def next_event(self) -> h11.Event:
        """The next event from the server (bounded wait for its bytes)."""
        with trio.fail_after(IO_BOUND):
            while True:
                event = self.conn.next_event()
                if isinstance(event, h11.Event):
                    return event
                if event is h11.PAUSED:
                    raise AssertionError("response complete: conn.start_next_cycle() first")
                data = await self.stream.receive_some(65536)
                self.raw += data
                self.conn.receive_data(bytes(data))

    async def response(self) -> tuple[h11.Response, list[bytes]]:
        """The head (after any 1xx) and every body piece until EndOfMessage, which must come."""
        head: h11.Response | None = None
        chunks: list[bytes] = []
        while True:
            event = await self.next_event()
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data) and head is not None:
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                return head, chunks
            else:
                raise AssertionError(f"unexpected {event!r}")

    async def get(self, target: str, method: str = "GET") -> tuple[h11.Response, bytes]:
        """One request, its whole response; the connection is ready for the next one."""
        await self.request(method, target, [("host", "127.0.0.1")])
        head, chunks = await self.response()
        self.conn.start_next_cycle()
        return head, b"".join(chunks)

    async def aclose(self) -> None:
        await self.stream.aclose()


# -- a real server process -----------------------------------------------------------------

_URL_LINE = re.compile(rb"listening on (https?://[^\s]+)")


class ServerProcess:
    """A server in a child process (a script or the CLI), its stderr collected.

    Use with ``async with ServerProcess.start([...]) as child:``; the child is killed at
    the end if it is still running, so a test can never leave one behind.
    """

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.stderr = bytearray()
        self.url = ""

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        argv: list[str],
        *,
        cwd: str | None = None,
        bound: float = SERVER_BOUND,
        env: dict[str, str] | None = None,
    ) -> AsyncIterator[ServerProcess]:
        process = await trio.lowlevel.open_process(argv, cwd=cwd, stderr=subprocess.PIPE, env=env)
        child = cls(process)
        try:
            with trio.fail_after(bound):
                child.url = (await child.read_until(_URL_LINE)).decode()
                yield child
        finally:
            if process.returncode is None:
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].rstrip("/"))

    async def read_until(self, pattern: re.Pattern[bytes] | bytes) -> bytes:
        """Read stderr until ``pattern`` appears; its first group (or the match) back."""
        assert self.process.stderr is not None
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        while True:
            match = regex.search(self.stderr)
            if match:
                return match.group(1) if regex.groups else match.group(0)
            chunk = await self.process.stderr.receive_some(65536)
            if not chunk:
                raise AssertionError(f"stderr ended before {pattern!r}: {bytes(self.stderr)!r}")
            self.stderr += chunk

    async def wait(self) -> int:
        """Collect stderr until the child exits; its exit status."""
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.receive_some(65536):
            self.stderr += chunk
        return await self.process.wait()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)
