"""H3Event: the request as read, the response being built, and per-request context.

The event never touches the socket itself. Reading the body and starting an inline
stream go through a small :class:`RequestIO` object that the connection provides,
which keeps this module free of server details (and lets the test client drive the
same code).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import parse_qsl, unquote

import trio

from .errors import HTTPError, StreamClosed
from .headers import Headers

if TYPE_CHECKING:
    from .sse import SSEOptions, SSEWriter

__all__ = ["URL", "Address", "H3Event", "QueryParams", "RequestIO"]


class Address(NamedTuple):
    """A peer's address: ``host`` and ``port``."""

    host: str
    port: int


class URL(NamedTuple):
    """The request URL as the client addressed it."""

    scheme: str
    host: str
    path: str
    query: str

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.host}{self.path}{query}"


class QueryParams:
    """Multi-value query parameters: ``get`` gives the first value, ``get_all`` every one."""

    __slots__ = ("_items",)

    def __init__(self, query: str | list[tuple[str, str]] = "") -> None:
        if isinstance(query, str):
            self._items = parse_qsl(query, keep_blank_values=True)
        else:
            self._items = list(query)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        for key, value in self._items:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return [value for key, value in self._items if key == name]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self._items)

    def __iter__(self) -> Any:
        return iter(dict.fromkeys(key for key, _ in self._items))

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair, repeated names kept."""
        return list(self._items)

    def to_dict(self) -> dict[str, str]:
        """Last value wins, like h3's ``getQuery``."""
        return dict(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, QueryParams):
            return self._items == other._items
        if isinstance(other, dict):
            return self.to_dict() == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"QueryParams({self._items!r})"


class RequestIO(Protocol):
    """What the connection lends an event: the body and the switch to streaming."""

    async def receive_body(self) -> bytes:
        """The next chunk of the request body; ``b""`` once it is complete."""
        ...

    def body_complete(self) -> bool:
        """True once the whole request body has been received."""
        ...

    async def start_inline_stream(
        self, event: H3Event, options: SSEOptions, nursery: trio.Nursery
    ) -> SSEWriter:
        """Send the SSE head now and return the writer (the inline ``event.sse()`` form)."""
        ...

    async def finish_inline_stream(self, writer: SSEWriter, error: BaseException | None) -> None:
        """End an inline stream (terminating chunk, or abort after an error)."""
        ...


class H3Event:
    """One request and the response being built for it.

    Handlers receive it as their only argument. ``params`` are the route's captured
    segments, ``context`` is a free dict for middleware, ``status`` and
    ``response_headers`` shape the response when the handler returns a plain value.
    """

    __slots__ = (
        "_body",
        "_cookies",
        "_headers",
        "_io",
        "_query",
        "_raw_headers",
        "_sse",
        "_stream_args",
        "_stream_callback",
        "app",
        "client",
        "context",
        "http_version",
        "method",
        "params",
        "path",
        "query_string",
        "raw_path",
        "response_headers",
        "scheme",
        "server",
        "status",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        *,
        http_version: str = "1.1",
        client: Address | None = None,
        server: Address | None = None,
        scheme: str = "http",
        io: RequestIO | None = None,
    ) -> None:
        self.method = method
        raw_path, _, query = target.partition(b"?")
        if raw_path[:1] != b"/" and b"://" in raw_path:
            # absolute-form (``GET http://host/path``, RFC 9112 3.2.2): route on the path.
            rest = raw_path.partition(b"://")[2]
            slash = rest.find(b"/")
            raw_path = rest[slash:] if slash >= 0 else b"/"
        #: The path as sent, still percent-encoded (what the router matches on).
        self.raw_path = raw_path.decode("latin-1")
        self.path = unquote(self.raw_path) if "%" in self.raw_path else self.raw_path
        self.query_string = query.decode("latin-1")
        self._raw_headers = headers
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        self._cookies: dict[str, str] | None = None
        self.http_version = http_version
        self.client = client
        self.server = server
        self.scheme = scheme
        self.params: dict[str, str] = {}
        self.context: dict[str, Any] = {}
        #: Set by a handler to choose the status of a plain return value.
        self.status: int | None = None
        self.response_headers = Headers()
        self.app: Any = None
        self._io = io
        self._body: bytes | None = None
        self._sse: SSEOptions | None = None
        self._stream_callback: Callable[..., Awaitable[None]] | None = None
        self._stream_args: tuple[Any, ...] = ()

    # -- the request ---------------------------------------------------------------

    @property
    def headers(self) -> Headers:
        """Request headers: case-insensitive, multi-value."""
        if self._headers is None:
            self._headers = Headers.from_raw(self._raw_headers)
        return self._headers

    @property
    def query(self) -> QueryParams:
        """Query parameters, decoded, multi-value."""
        if self._query is None:
            self._query = QueryParams(self.query_string)
        return self._query

    @property
    def cookies(self) -> dict[str, str]:
        """Request cookies by name (the first of a repeated name wins)."""
        if self._cookies is None:
            from .utils.cookies import parse_cookie_header

            self._cookies = {}
            for header in self.headers.get_all("cookie"):
                for name, value in parse_cookie_header(header).items():
                    self._cookies.setdefault(name, value)
        return self._cookies

    @property
    def url(self) -> URL:
        """Scheme, host (from ``Host``), decoded path and raw query string."""
        host = self.headers.get("host")
        if not host:
            host = f"{self.server.host}:{self.server.port}" if self.server else "localhost"
        return URL(self.scheme, host, self.path, self.query_string)

    # -- the body --------------------------------------------------------------------

    async def stream(self) -> AsyncIterator[bytes]:
        """The request body chunk by chunk, as it arrives (each chunk counts to the limit)."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._io is None:
            return
        while True:
            chunk = await self._io.receive_body()
            if not chunk:
                return
            yield chunk

    async def body(self) -> bytes:
        """The whole request body; over ``max_body_size`` it is a 413."""
        if self._body is None:
            if self._io is None:
                self._body = b""
            else:
                chunks = []
                while True:
                    chunk = await self._io.receive_body()
                    if not chunk:
                        break
                    chunks.append(chunk)
                self._body = b"".join(chunks)
        return self._body

    async def text(self) -> str:
        """The body decoded as text (UTF-8 unless the Content-Type names a charset)."""
        body = await self.body()
        charset = "utf-8"
        content_type = self.headers.get("content-type", "")
        for part in content_type.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return body.decode(charset)
        except (LookupError, UnicodeDecodeError) as exc:
            raise HTTPError(400, f"Request body is not valid {charset} text") from exc

    async def json(self) -> Any:
        """The body parsed as JSON; an empty or invalid body is a 400."""
        body = await self.body()
        if not body.strip():
            raise HTTPError(400, "Request body is empty; expected JSON")
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPError(400, "Invalid JSON body", data={"error": str(exc)}) from exc

    # -- Server-Sent Events ------------------------------------------------------------

    def start_sse(
        self,
        *,
        retry: int | None = None,
        ping_interval: float | object | None = ...,
        send_timeout: float | object | None = ...,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Turn this response into an SSE stream (``text/event-stream``).

        ``retry`` is sent first as the client's reconnection delay in ms;
        ``ping_interval`` (seconds, default from ServeOptions, ``None`` disables)
        sends a ``: ping`` comment whenever the stream has been idle that long;
        ``send_timeout`` bounds every write; ``headers`` are added to the response.
        Register the producer with :meth:`set_stream_callback`.
        """
        from .sse import SSEOptions

        if self._sse is not None:
            raise RuntimeError("start_sse() was already called for this request")
        self._sse = SSEOptions.build(
            retry=retry, ping_interval=ping_interval, send_timeout=send_timeout, headers=headers
        )

    def set_stream_callback(self, callback: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run ``await callback(writer, *args)`` once the SSE head has been sent.

        Like ``nursery.start_soon``: the callback runs in a child nursery of the
        connection, cancelled when the client goes away or the server shuts down.
        """
        if self._sse is None:
            raise RuntimeError("call event.start_sse() before event.set_stream_callback()")
        if self._stream_callback is not None:
            raise RuntimeError("a stream callback is already set for this request")
        if not callable(callback):
            raise TypeError(f"stream callback must be callable, not {type(callback).__name__}")
        self._stream_callback = callback
        self._stream_args = args

    @property
    def sse_started(self) -> bool:
        """True once :meth:`start_sse` has been called."""
        return self._sse is not None

    @asynccontextmanager
    async def sse(
        self,
        *,
        retry: int | None = None,
        ping_interval: float | object | None = ...,
        send_timeout: float | object | None = ...,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[SSEWriter]:
        """The inline form: ``async with event.sse() as writer:`` streams from the handler.

        The head is sent on entry; leaving the block ends the stream. Client
        disconnect cancels the block's body, like the callback form.
        """
        if self._io is None:
            raise RuntimeError("event.sse() needs an event served by a connection")
        self.start_sse(
            retry=retry, ping_interval=ping_interval, send_timeout=send_timeout, headers=headers
        )
        assert self._sse is not None
        io = self._io
        error: BaseException | None = None
        # The stream nursery, as in the callback form: the stream's monitor task (the
        # client's disconnect, heartbeats, the send deadline) runs next to the block.
        async with trio.open_nursery() as nursery:
            try:
                writer = await io.start_inline_stream(self, self._sse, nursery)
            except Exception as exc:
                # Refused before anything was sent (a 413 body, a 503 during shutdown).
                # Errors are kept, not raised, inside the nursery: raised there they
                # would come out wrapped in an ExceptionGroup.
                error = exc
            else:
                try:
                    with writer._scope:
                        yield writer
                except BaseException as exc:
                    if not (isinstance(exc, StreamClosed) and writer.closed):
                        error = exc
                    # else: the stream ended under the block (client gone, send timeout,
                    # close, HEAD): its reason is recorded; not an application error.
                finally:
                    await io.finish_inline_stream(writer, error)
        if error is not None:
            raise error

    def __repr__(self) -> str:
        return f"<H3Event {self.method} {self.path}>"
