"""TestClient: drives an app through the real server code over in-memory streams.

One fresh in-memory connection per request, served by :meth:`Server.handle_stream` in a
nursery the client owns; the app's lifespan runs for as long as ``async with`` does.
"""

from __future__ import annotations

import json as _json
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import trio
import trio.testing

from .._groups import raise_single
from ..app import H3
from ..datastructures import Address, Headers
from ..server.options import ServeOptions
from ..server.serve import Server
from .http import ClientConnection
from .memory import MemoryStream, memory_connection
from .responses import StreamingTestResponse, TestResponse
from .sse import SSEStream
from .websocket import WebSocketTestSession

__all__ = ["TestClient"]

HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]] | None


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
        connection = ClientConnection(await self.open_stream())
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
