"""TestClient: drives an app through the real server code over in-memory streams.

One fresh in-memory connection per request, served by :meth:`Server.handle_stream` in a
nursery the client owns; the app's lifespan runs for as long as ``async with`` does.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypedDict, Unpack

import trio
import trio.testing

from .._groups import raise_single
from ..app import H3
from ..datastructures import Address, Headers
from ..server.options import ServeOptions
from ..server.serve import Server
from .cookies import Cookies, CookiesArg
from .encoding import DataArg, FilesArg
from .http import ClientConnection
from .memory import MemoryStream, memory_connection
from .request import (
    HeadersArg,
    ParamsArg,
    RequestURL,
    TestRequest,
    build_request,
    merge_headers,
    merge_params,
    merge_url,
    redirect_request,
)
from .responses import StreamingTestResponse, TestResponse, TooManyRedirects
from .sse import SSEStream
from .websocket import WebSocketTestSession

__all__ = ["RequestArgs", "TestClient"]

#: ``content=``: bytes, text (sent as UTF-8), or an (async) iterable of bytes (chunked).
Content: TypeAlias = bytes | str | Iterable[bytes] | AsyncIterable[bytes]

# httpx's default (its DEFAULT_MAX_REDIRECTS); requests allows 30, browsers about 20.
DEFAULT_MAX_REDIRECTS = 20
#: The environment variable that picks the parser backend of every TestClient that
#: does not choose one itself (``h11``, ``httptools``, ``auto``): one variable runs a
#: whole suite against either backend.
HTTP_ENV = "TRIO_H3_HTTP"


class RequestArgs(TypedDict, total=False):
    """The keyword arguments of :meth:`TestClient.request` and every verb (httpx's)."""

    content: Content | None
    data: DataArg | None
    files: FilesArg | None
    json: Any
    params: ParamsArg
    headers: HeadersArg
    cookies: CookiesArg | None
    follow_redirects: bool | None


class TestClient:
    """Drives an app through the real connection code over in-memory streams.

    ``async with TestClient(app) as client`` enters the app's lifespan; each request
    opens a fresh in-memory connection. ``options`` / unknown keyword arguments are
    :class:`ServeOptions` (limits, timeouts). ``buffer_size`` is the in-memory socket
    buffer each way: a client that stops reading blocks the server after that many
    bytes. ``client`` is the peer address the server sees.

    The rest is httpx's ``Client``: ``base_url`` (default ``http://testserver``; its
    scheme is the connection's, ``event.scheme``), default ``headers`` and ``params``
    for every request, ``cookies`` to start the jar (:attr:`cookies`, kept across
    requests from every ``Set-Cookie``), ``follow_redirects`` (default False) and
    ``max_redirects``. Every request takes httpx's arguments: ``content=``,
    ``data=``, ``files=``, ``json=``, ``params=``, ``headers=``, ``cookies=`` and
    ``follow_redirects=`` (see docs/testing.md).
    """

    __test__ = False

    def __init__(
        self,
        app: H3,
        options: ServeOptions | None = None,
        *,
        buffer_size: int = 64 * 1024,
        client: tuple[str, int] = ("127.0.0.1", 50000),
        base_url: str = "http://testserver",
        headers: HeadersArg = None,
        params: ParamsArg = None,
        cookies: CookiesArg | None = None,
        follow_redirects: bool = False,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        http: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("access_log", False)
        if http is not None:
            kwargs["http"] = http
        elif options is None and HTTP_ENV in os.environ:
            kwargs["http"] = os.environ[HTTP_ENV]
        self.app = app
        #: Where relative URLs go: its scheme, host and port are the connection's.
        self.base_url = merge_url(RequestURL("http://testserver"), base_url)
        if self.base_url.scheme not in ("http", "https"):
            raise ValueError(f"base_url must be http:// or https://, got {base_url!r}")
        #: Headers sent with every request (a request's own replace them by name).
        self.headers = Headers(headers)
        #: Query parameters added to every request (a request's own replace them by key).
        self.params = params
        #: The cookie jar: every response's ``Set-Cookie`` lands here.
        self.cookies = Cookies(cookies, host=self.base_url.host)
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        #: The server's options (``client.options(path)`` is the HTTP OPTIONS method):
        #: ``options``, else the app's own ``serve_options``, with keywords on top.
        base = options if options is not None else app.serve_options
        self.serve_options = ServeOptions.build(base, **kwargs)
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
        return await self._connect(self.base_url)

    async def _connect(self, url: RequestURL) -> MemoryStream:
        if self._connections is None:
            raise RuntimeError("use TestClient inside 'async with'")
        client, server = memory_connection(self.buffer_size)
        self._port += 1
        self._connections.start_soon(self._serve_one, server, self._port, url)
        await trio.lowlevel.checkpoint()
        return client

    async def _serve_one(self, stream: MemoryStream, port: int, url: RequestURL) -> None:
        await self.server.handle_stream(
            stream,
            client=Address(self.client_address.host, port),
            server=Address(url.host, url.port),
            scheme="https" if url.scheme in ("https", "wss") else "http",
        )

    def build_request(
        self,
        method: str,
        url: str,
        *,
        content: Content | None = None,
        data: DataArg | None = None,
        files: FilesArg | None = None,
        json: Any = None,
        params: ParamsArg = None,
        headers: HeadersArg = None,
        cookies: CookiesArg | None = None,
    ) -> TestRequest:
        """The request :meth:`request` would send (httpx's ``build_request``)."""
        target = merge_params(merge_url(self.base_url, url), self.params, params)
        return build_request(
            method,
            target,
            merge_headers(self.headers, headers),
            content=content,
            data=data,
            files=files,
            json=json,
            cookies=dict(cookies.items() if isinstance(cookies, Mapping) else cookies or ()),
        )

    async def _open(
        self, request: TestRequest, history: list[TestResponse]
    ) -> tuple[ClientConnection, StreamingTestResponse]:
        """Send ``request`` on a fresh connection and read the response head."""
        url = request.url
        headers = request.headers.copy()
        if "cookie" not in headers:
            cookie = self.cookies.header(
                scheme=url.scheme, host=url.host, path=url.path, extra=request.cookies
            )
            if cookie is not None:
                headers.add("cookie", cookie)
        connection = ClientConnection(await self._connect(url))
        try:
            body = request.stream if request.stream is not None else request.content
            await connection.send_request(request.method, url.target, headers.items(), body)
            head = await connection.read_head()
        except BaseException:
            connection.stream.close()
            raise
        response_headers = Headers.from_raw(list(head.headers))
        stored = self.cookies.extract(
            response_headers.get_all("set-cookie"),
            scheme=url.scheme,
            host=url.host,
            path=url.path,
            date=response_headers.get("date"),
        )
        response = StreamingTestResponse(
            connection, head, request=request, cookies=stored, history=list(history)
        )
        return connection, response

    async def request(
        self,
        method: str,
        url: str,
        *,
        content: Content | None = None,
        data: DataArg | None = None,
        files: FilesArg | None = None,
        json: Any = None,
        params: ParamsArg = None,
        headers: HeadersArg = None,
        cookies: CookiesArg | None = None,
        follow_redirects: bool | None = None,
    ) -> TestResponse:
        """Send one request on a fresh connection and read the whole response.

        The arguments are httpx's (see the class docstring); ``follow_redirects``
        defaults to the client's (False unless told otherwise).
        """
        async with self.stream(
            method,
            url,
            content=content,
            data=data,
            files=files,
            json=json,
            params=params,
            headers=headers,
            cookies=cookies,
            follow_redirects=follow_redirects,
        ) as response:
            return await response.buffered()

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        content: Content | None = None,
        data: DataArg | None = None,
        files: FilesArg | None = None,
        json: Any = None,
        params: ParamsArg = None,
        headers: HeadersArg = None,
        cookies: CookiesArg | None = None,
        follow_redirects: bool | None = None,
    ) -> AsyncIterator[StreamingTestResponse]:
        """Send a request and read the response body incrementally.

        With ``follow_redirects``, each redirect's body is read whole (into
        ``response.history``) and the response yielded is the last one's.
        """
        request = self.build_request(
            method,
            url,
            content=content,
            data=data,
            files=files,
            json=json,
            params=params,
            headers=headers,
            cookies=cookies,
        )
        follow = self.follow_redirects if follow_redirects is None else follow_redirects
        history: list[TestResponse] = []
        while True:
            connection, response = await self._open(request, history)
            if not (follow and response.has_redirect_location):
                break
            try:
                history.append(await response.buffered())
            finally:
                connection.stream.close()
            if len(history) > self.max_redirects:
                raise TooManyRedirects(
                    f"exceeded max_redirects ({self.max_redirects})", request=request
                )
            request = redirect_request(request, response.status, response.headers["location"])
        try:
            yield response
        finally:
            connection.stream.close()

    @asynccontextmanager
    async def sse(
        self, url: str, *, method: str = "GET", **kwargs: Unpack[RequestArgs]
    ) -> AsyncIterator[SSEStream]:
        """Open an SSE stream: ``async with client.sse("/events") as stream``.

        ``Accept: text/event-stream`` unless ``headers`` say otherwise; the other
        arguments are :meth:`request`'s.
        """
        headers = Headers(kwargs.get("headers"))
        headers.setdefault("accept", "text/event-stream")
        kwargs["headers"] = headers
        async with self.stream(method, url, **kwargs) as response:
            yield SSEStream(response)

    @asynccontextmanager
    async def websocket(
        self,
        url: str,
        *,
        headers: HeadersArg = None,
        params: ParamsArg = None,
        cookies: CookiesArg | None = None,
        subprotocols: Iterable[str] | None = None,
        max_message_size: int = 1 << 20,
    ) -> AsyncIterator[WebSocketTestSession]:
        """Connect a WebSocket client (trio-websocket's) over an in-memory stream.

        Yields a :class:`WebSocketTestSession`. The handshake carries the client's
        headers and the jar's cookies, like a browser's. A rejected handshake raises
        ``trio_websocket.ConnectionRejected`` (with ``status_code``, ``headers`` and
        ``body``), not an ExceptionGroup.
        """
        import trio_websocket

        request = self.build_request("GET", url, params=params, headers=headers, cookies=cookies)
        target = request.url
        sent = merge_headers(self.headers, headers)
        cookie = self.cookies.header(
            scheme=target.scheme, host=target.host, path=target.path, extra=request.cookies
        )
        if cookie is not None and "cookie" not in sent:
            sent.add("cookie", cookie)
        stream = await self._connect(target)
        extra = [(k.encode(), v.encode()) for k, v in sent.items()]
        try:
            async with trio.open_nursery() as nursery:
                ws = await trio_websocket.wrap_client_stream(
                    nursery,
                    stream,  # type: ignore[arg-type]
                    target.netloc,
                    target.target,
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

    async def get(self, url: str, **kwargs: Unpack[RequestArgs]) -> TestResponse:
        """``GET url``: :meth:`request`'s arguments."""
        return await self.request("GET", url, **kwargs)

    async def head(self, url: str, **kwargs: Unpack[RequestArgs]) -> TestResponse:
        """``HEAD url``: :meth:`request`'s arguments."""
        return await self.request("HEAD", url, **kwargs)

    async def post(self, url: str, **kwargs: Unpack[RequestArgs]) -> TestResponse:
        """``POST url``: :meth:`request`'s arguments."""
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Unpack[RequestArgs]) -> TestResponse:
        """``PUT url``: :meth:`request`'s arguments."""
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Unpack[RequestArgs]) -> TestResponse:
        """``PATCH url``: :meth:`request`'s arguments."""
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Unpack[RequestArgs]) -> TestResponse:
        """``DELETE url``: :meth:`request`'s arguments."""
        return await self.request("DELETE", url, **kwargs)

    async def options(self, url: str, **kwargs: Unpack[RequestArgs]) -> TestResponse:
        """``OPTIONS url``: :meth:`request`'s arguments."""
        return await self.request("OPTIONS", url, **kwargs)
