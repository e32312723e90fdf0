"""TestClient: the real server code over in-memory streams.

Every request goes through :class:`~trio_h3.server.HTTPConnection` exactly as a socket
would: h11 framing, limits, timeouts, keep-alive, streaming and disconnects are all
exercised. Nothing sleeps on the wall clock, so under
``trio.testing.MockClock(autojump_threshold=0)`` an hour-long stream takes milliseconds::

    async def test_counter():
        async with TestClient(app) as client:
            async with client.sse("/events") as stream:
                event = await stream.next_event()
                assert event.data == "0"
"""

from __future__ import annotations

import json as _json
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import h11
import trio
import trio.testing

from ._groups import raise_single
from .app import H3
from .datastructures import Address, Headers
from .server.options import ServeOptions
from .server.serve import Server
from .sse.parser import ServerSentEvent, SSEParser

__all__ = [
    "MemoryStream",
    "SSEParser",
    "SSEStream",
    "ServerSentEvent",
    "StreamingTestResponse",
    "TestClient",
    "TestResponse",
    "WebSocketTestSession",
    "memory_connection",
]

HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]] | None


# -- in-memory transport ------------------------------------------------------------------


class _Pipe:
    """One direction of an in-memory connection, with a bounded buffer like a socket's."""

    def __init__(self, limit: int) -> None:
        self.buffer = bytearray()
        self.limit = limit
        self.eof = False  # the writer sent EOF or closed
        self.reader_closed = False  # the reader closed: writes fail
        self.lot = trio.lowlevel.ParkingLot()


class MemoryStream(trio.abc.HalfCloseableStream):
    """One end of an in-memory, flow-controlled byte connection.

    ``send_all`` blocks while the peer's unread bytes exceed the buffer limit, so a
    client that stops reading stalls the server exactly as a full socket would.
    """

    def __init__(self, incoming: _Pipe, outgoing: _Pipe) -> None:
        self._in = incoming
        self._out = outgoing
        self._closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` for the peer; wait while its buffer is full."""
        if self._closed:
            raise trio.ClosedResourceError("this end is closed")
        out = self._out
        if out.eof:
            raise trio.ClosedResourceError("EOF was already sent")
        await trio.lowlevel.checkpoint()
        view = memoryview(data)
        while view:
            while len(out.buffer) >= out.limit and not out.reader_closed and not self._closed:
                await out.lot.park()
            if self._closed:
                raise trio.ClosedResourceError("this end was closed during send_all")
            if out.reader_closed:
                raise trio.BrokenResourceError("the peer closed the connection")
            room = out.limit - len(out.buffer)
            out.buffer += view[:room]
            view = view[room:]
            out.lot.unpark_all()

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the peer's buffer has room."""
        while len(self._out.buffer) >= self._out.limit and not self._out.reader_closed:
            await self._out.lot.park()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to ``max_bytes`` of what the peer sent; ``b""`` after its EOF."""
        if self._closed:
            raise trio.ClosedResourceError("this end is closed")
        incoming = self._in
        await trio.lowlevel.checkpoint()
        while not incoming.buffer and not incoming.eof:
            await incoming.lot.park()
            if self._closed:
                raise trio.ClosedResourceError("this end was closed during receive_some")
        size = len(incoming.buffer) if max_bytes is None else min(max_bytes, len(incoming.buffer))
        data = bytes(incoming.buffer[:size])
        del incoming.buffer[:size]
        incoming.lot.unpark_all()
        return data

    async def send_eof(self) -> None:
        """Half-close: the peer reads EOF once it has read everything before it."""
        await trio.lowlevel.checkpoint()
        self._out.eof = True
        self._out.lot.unpark_all()

    async def aclose(self) -> None:
        """Close this end: the peer reads EOF and its writes fail."""
        self.close()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Synchronous close (what an abrupt disconnect looks like to the peer)."""
        if self._closed:
            return
        self._closed = True
        self._out.eof = True
        self._in.reader_closed = True
        self._in.buffer.clear()
        self._out.lot.unpark_all()
        self._in.lot.unpark_all()

    @property
    def unread(self) -> int:
        """Bytes this end has sent that the peer has not read yet."""
        return len(self._out.buffer)


def memory_connection(buffer_size: int = 64 * 1024) -> tuple[MemoryStream, MemoryStream]:
    """A connected ``(client, server)`` pair of :class:`MemoryStream` ends."""
    to_server, to_client = _Pipe(buffer_size), _Pipe(buffer_size)
    return MemoryStream(to_client, to_server), MemoryStream(to_server, to_client)


# -- responses ---------------------------------------------------------------------------


@dataclass
class TestResponse:
    """A complete response as the test client read it."""

    __test__ = False  # not a pytest test class

    status: int
    headers: Headers
    content: bytes
    http_version: str = "1.1"
    reason: str = ""

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(self.content)

    # Familiar spelling for people coming from httpx / Starlette.
    @property
    def status_code(self) -> int:
        """Alias of ``status``."""
        return self.status


class _ClientConnection:
    """An h11 client over one in-memory stream (what httpx would do over a socket)."""

    def __init__(self, stream: MemoryStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def send_request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> None:
        data = self.h11.send(h11.Request(method=method, target=target, headers=headers)) or b""
        if body:
            data += self.h11.send(h11.Data(data=body)) or b""
        data += self.h11.send(h11.EndOfMessage()) or b""
        await self.stream.send_all(data)

    async def next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.stream.receive_some(65536))
                continue
            return event

    async def read_head(self) -> h11.Response:
        while True:
            event = await self.next_event()
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                return event
            raise ConnectionError(f"expected a response, got {event!r}")


class StreamingTestResponse:
    """A response whose body is read incrementally (``client.stream(...)``)."""

    __test__ = False

    def __init__(self, connection: _ClientConnection, head: h11.Response) -> None:
        self._connection = connection
        self.status = head.status_code
        self.headers = Headers.from_raw(list(head.headers))
        self.http_version = head.http_version.decode()
        self.complete = False

    async def receive_chunk(self) -> bytes:
        """The next piece of body as it arrived; ``b""`` at the end of the body."""
        if self.complete:
            return b""
        try:
            event = await self._connection.next_event()
        except h11.RemoteProtocolError as exc:
            raise ConnectionError(f"the response body was cut short: {exc}") from exc
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            self.complete = True
            return b""
        raise ConnectionError(f"the response body ended without its end marker: {event!r}")

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Body chunks until the end of the body."""
        while chunk := await self.receive_chunk():
            yield chunk

    async def read(self) -> bytes:
        """The rest of the body."""
        return b"".join([chunk async for chunk in self.iter_bytes()])

    async def disconnect(self) -> None:
        """Drop the connection, as a browser tab closing would."""
        self._connection.stream.close()
        await trio.lowlevel.checkpoint()


# -- Server-Sent Events on the client side ----------------------------------------------------


class SSEStream:
    """The client side of an SSE response in a test: events as they arrive."""

    __test__ = False

    def __init__(self, response: StreamingTestResponse) -> None:
        self.response = response
        self.status = response.status
        self.headers = response.headers
        self._parser = SSEParser()
        self._pending: list[ServerSentEvent] = []
        self.raw = bytearray()
        self.ended = False

    @property
    def comments(self) -> list[str]:
        """Comment lines received so far (heartbeats are ``"ping"``)."""
        return self._parser.comments

    @property
    def last_event_id(self) -> str | None:
        """The last event id seen, as EventSource would send it on reconnect."""
        return self._parser.last_event_id

    @property
    def retry(self) -> int | None:
        """The last ``retry:`` value received."""
        return self._parser.retry

    async def _pump(self) -> bool:
        chunk = await self.response.receive_chunk()
        if not chunk:
            self.ended = True
            return False
        self.raw += chunk
        self._pending.extend(self._parser.feed(chunk))
        return True

    async def next_event(self) -> ServerSentEvent:
        """The next event; raises ``trio.EndOfChannel`` when the stream has ended."""
        while not self._pending:
            if self.ended or not await self._pump():
                raise trio.EndOfChannel("the SSE stream ended")
        return self._pending.pop(0)

    async def wait_comment(self, count: int = 1) -> str:
        """Read until at least ``count`` comments have arrived; return the last one."""
        while len(self.comments) < count:
            if self.ended or not await self._pump():
                raise trio.EndOfChannel("the SSE stream ended")
        return self.comments[-1]

    async def read_until_end(self) -> list[ServerSentEvent]:
        """Every remaining event until the server ends the stream."""
        return [event async for event in self]

    def __aiter__(self) -> AsyncIterator[ServerSentEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ServerSentEvent]:
        while True:
            try:
                yield await self.next_event()
            except trio.EndOfChannel:
                return

    async def disconnect(self) -> None:
        """Leave, as a browser closing the tab would."""
        await self.response.disconnect()


# -- WebSockets on the client side ---------------------------------------------------------


class WebSocketTestSession:
    """The client end of a WebSocket in a test.

    ``send``/``receive``/``ping``/``close`` speak the protocol; ``disconnect()`` drops
    the connection without a close frame (what a crashed browser does). Anything else
    is trio-websocket's ``WebSocketConnection`` (``closed``, ``subprotocol``, ...).
    """

    __test__ = False

    def __init__(self, ws: Any, stream: MemoryStream) -> None:
        self.ws = ws
        self._stream = stream

    async def send(self, message: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message."""
        await self.ws.send_message(message)

    async def receive(self) -> str | bytes:
        """The next message; raises ``trio_websocket.ConnectionClosed`` at the end."""
        return await self.ws.get_message()  # type: ignore[no-any-return]

    async def ping(self, payload: bytes | None = None) -> None:
        """Ping and wait for the pong."""
        await self.ws.ping(payload)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Run the closing handshake."""
        await self.ws.aclose(code, reason)

    async def disconnect(self) -> None:
        """Drop the connection abruptly: no close frame, the server sees EOF."""
        self._stream.close()
        await trio.lowlevel.checkpoint()

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server chose."""
        return self.ws.subprotocol  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ws, name)


# -- the client ---------------------------------------------------------------------------


class TestClient:
    """Drives an app through the real connection code over in-memory streams.

    ``async with TestClient(app) as client`` enters the app's lifespan; each request
    opens a fresh in-memory connection. ``options`` / keyword arguments are
    :class:`ServeOptions` (limits, timeouts). ``buffer_size`` is the in-memory socket
    buffer each way: a client that stops reading blocks the server after that many
    bytes.
    """

    __test__ = False

    def __init__(
        self,
        app: H3,
        options: ServeOptions | None = None,
        *,
        buffer_size: int = 64 * 1024,
        client: tuple[str, int] = ("127.0.0.1", 50000),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("access_log", False)
        self.app = app
        #: The server's options (``client.options(path)`` is the HTTP OPTIONS method).
        self.serve_options = ServeOptions.build(options, **kwargs)
        self.server = Server(app, self.serve_options)
        self.buffer_size = buffer_size
        self.client_address = Address(*client)
        self._nursery: trio.Nursery | None = None
        self._connections: trio.Nursery | None = None
        self._exit: Any = None
        self._port = 50000

    async def __aenter__(self) -> TestClient:
        clock = trio.lowlevel.current_clock()
        if isinstance(clock, trio.testing.MockClock) and clock.autojump_threshold == 0:
            # The autojumping clock jumps whenever the loop waits, and waiting for a
            # worker thread is waiting: plain ``def`` handlers run in the loop instead,
            # so an hour-long test stays deterministic.
            self.server.state.sync_inline = True
        self._exit = self._run()
        await self._exit.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._exit.__aexit__(*exc_info)
        except BaseExceptionGroup as group:
            # A failing assertion in the test body should read as itself, not as a
            # group from the nurseries the client runs.
            raise_single(group)

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[None]:
        async with trio.open_nursery() as background:
            self._nursery = background
            try:
                async with self.app.run_lifespan(background):
                    # The connections' nursery lives in its own task, not around the
                    # caller's body: Server.shutdown() cancels it at the end, and that
                    # must not cancel the test (its code after shutdown() would silently
                    # never run).
                    done = trio.Event()
                    self._connections = await background.start(self._hold_connections, done)
                    try:
                        yield
                    finally:
                        self._connections.cancel_scope.cancel()
                        await done.wait()
            finally:
                background.cancel_scope.cancel()

    @staticmethod
    async def _hold_connections(
        done: trio.Event, task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            async with trio.open_nursery() as connections:
                task_status.started(connections)
                await trio.sleep_forever()
        finally:
            done.set()

    async def shutdown(self) -> None:
        """Run the server's graceful shutdown (streams see ``shutting_down``, then end)."""
        assert self._connections is not None, "use TestClient inside 'async with'"
        await self.server.shutdown(self._connections)

    @property
    def state(self) -> Any:
        """The server state (open connections and streams), for assertions."""
        return self.server.state

    async def open_stream(self) -> MemoryStream:
        """A raw in-memory connection to the server: write request bytes yourself."""
        if self._connections is None:
            raise RuntimeError("use TestClient inside 'async with'")
        client, server = memory_connection(self.buffer_size)
        self._port += 1
        self._connections.start_soon(self._serve_one, server, self._port)
        await trio.lowlevel.checkpoint()
        return client

    async def _serve_one(self, stream: MemoryStream, port: int) -> None:
        await self.server.handle_stream(
            stream,
            client=Address(self.client_address.host, port),
            server=Address("testserver", 80),
        )

    @staticmethod
    def _build(
        method: str,
        path: str,
        headers: HeadersArg,
        json: Any,
        content: bytes | str | None,
        params: Mapping[str, str] | None,
    ) -> tuple[str, list[tuple[str, str]], bytes | None]:
        target = path
        if params:
            target += ("&" if "?" in target else "?") + urlencode(params, doseq=True)
        given = Headers(headers)
        out: list[tuple[str, str]] = []
        if "host" not in given:
            out.append(("host", "testserver"))
        body: bytes | None = None
        if json is not None:
            body = _json.dumps(json).encode()
            if "content-type" not in given:
                out.append(("content-type", "application/json"))
        elif content is not None:
            body = content.encode() if isinstance(content, str) else content
        out.extend(given.items())
        if body is not None and "content-length" not in given and "transfer-encoding" not in given:
            out.append(("content-length", str(len(body))))
        return target, out, body

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: HeadersArg = None,
        json: Any = None,
        content: bytes | str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> TestResponse:
        """Send one request on a fresh connection and read the whole response."""
        async with self.stream(
            method, path, headers=headers, json=json, content=content, params=params
        ) as response:
            body = await response.read()
        return TestResponse(response.status, response.headers, body, response.http_version)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        headers: HeadersArg = None,
        json: Any = None,
        content: bytes | str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> AsyncIterator[StreamingTestResponse]:
        """Send a request and read the response body incrementally."""
        target, header_list, body = self._build(method, path, headers, json, content, params)
        connection = _ClientConnection(await self.open_stream())
        try:
            await connection.send_request(method, target, header_list, body)
            head = await connection.read_head()
            yield StreamingTestResponse(connection, head)
        finally:
            connection.stream.close()

    @asynccontextmanager
    async def sse(
        self, path: str, *, headers: HeadersArg = None, method: str = "GET", **kwargs: Any
    ) -> AsyncIterator[SSEStream]:
        """Open an SSE stream: ``async with client.sse("/events") as stream``."""
        merged = Headers(headers)
        merged.setdefault("accept", "text/event-stream")
        async with self.stream(method, path, headers=merged.items(), **kwargs) as response:
            yield SSEStream(response)

    @asynccontextmanager
    async def websocket(
        self,
        path: str,
        *,
        headers: HeadersArg = None,
        subprotocols: Iterable[str] | None = None,
        max_message_size: int = 1 << 20,
    ) -> AsyncIterator[WebSocketTestSession]:
        """Connect a WebSocket client (trio-websocket's) over an in-memory stream.

        Yields a :class:`WebSocketTestSession`. A rejected handshake raises
        ``trio_websocket.ConnectionRejected`` (with ``status_code``, ``headers`` and
        ``body``), not an ExceptionGroup.
        """
        import trio_websocket

        stream = await self.open_stream()
        extra = [(k.encode(), v.encode()) for k, v in Headers(headers).items()]
        try:
            async with trio.open_nursery() as nursery:
                ws = await trio_websocket.wrap_client_stream(
                    nursery,
                    stream,  # type: ignore[arg-type]
                    "testserver",
                    path,
                    subprotocols=subprotocols,
                    extra_headers=extra,
                    max_message_size=max_message_size,
                )
                try:
                    yield WebSocketTestSession(ws, stream)
                finally:
                    with trio.CancelScope(shield=True), trio.move_on_after(5):
                        try:
                            await ws.aclose()
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            pass
                    stream.close()
        except BaseExceptionGroup as group:
            raise_single(group)

    async def get(self, path: str, **kwargs: Any) -> TestResponse:
        """``GET path``."""
        return await self.request("GET", path, **kwargs)

    async def head(self, path: str, **kwargs: Any) -> TestResponse:
        """``HEAD path``."""
        return await self.request("HEAD", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> TestResponse:
        """``POST path``."""
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> TestResponse:
        """``PUT path``."""
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> TestResponse:
        """``PATCH path``."""
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> TestResponse:
        """``DELETE path``."""
        return await self.request("DELETE", path, **kwargs)

    async def options(self, path: str, **kwargs: Any) -> TestResponse:
        """``OPTIONS path``."""
        return await self.request("OPTIONS", path, **kwargs)
