"""H3Event: the request as read, the response being built, and per-request context.

No Trio here: the event reads its body, starts an inline stream and runs a sync handler
only through the :class:`~trio_h3.types.RequestIO` the server lends it, which keeps the
framework free of server details (and lets the test client drive the same code).

The path a handler, the router and middleware all see is the *canonical* one
(:mod:`trio_h3.paths`): ``event.path``; the target as received is ``event.raw_path``.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from os import PathLike, fspath
from typing import TYPE_CHECKING, Any, TypeVar, overload
from urllib.parse import parse_qsl

from .datastructures import (
    URL,
    Address,
    FormData,
    Headers,
    QueryParams,
    parse_cookie_header,
    parse_media_type,
)
from .errors import HTTPError
from .paths import canonical_path
from .response import Response, check_status
from .sse.response import SSEOptions, SSERequest, check_callback
from .types import FormLimits, RequestIO, StreamCallback
from .validation import validate_async, validate_sync

if TYPE_CHECKING:
    from .sse.writer import SSEWriter
    from .utils.sessions import Session

__all__ = ["H3Event"]

R = TypeVar("R")
T = TypeVar("T")

_URLENCODED = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
_DEFAULT_LIMITS = FormLimits()


def form_charset(name: str | None) -> str:
    """The codec for a form's charset (``_charset_`` or a part's), UTF-8 by default.

    An unknown charset is a 400: the text cannot be read as the client meant it.
    """
    if not name:
        return "utf-8"
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise HTTPError(400, f"Unknown form charset {name!r}") from None


def _parse_urlencoded(body: bytes, limits: FormLimits) -> FormData:
    """An ``application/x-www-form-urlencoded`` body (WHATWG URL §5.1), repeated keys kept.

    Percent-escapes are bytes, decoded as the ``_charset_`` field says (HTML §4.10.21.8),
    UTF-8 by default, invalid sequences replaced (the WHATWG "UTF-8 decode").
    """
    try:
        # latin-1 maps each byte (and each %XX) to one code point, so the pairs still
        # hold the raw bytes, to be decoded once the charset is known.
        pairs = parse_qsl(
            body.decode("latin-1"),
            keep_blank_values=True,
            encoding="latin-1",
            max_num_fields=limits.max_fields,
        )
    except ValueError:
        raise HTTPError(413, "Too many form fields", data={"limit": limits.max_fields}) from None
    charset = form_charset(next((v for k, v in pairs if k == "_charset_"), None))
    items: list[tuple[str, str]] = []
    for key, value in pairs:
        if len(value) > limits.max_field_size:
            raise HTTPError(
                413, "Form field too large", data={"field": key, "limit": limits.max_field_size}
            )
        items.append(
            (
                key.encode("latin-1").decode(charset, "replace"),
                value.encode("latin-1").decode(charset, "replace"),
            )
        )
    return FormData(items)


#: Where the ``Sessions`` middleware puts the request's session in ``event.context``.
SESSION_KEY = "trio_h3.session"


def _split_target(target: bytes) -> tuple[str, str, str | None]:
    """``(raw path, query, authority)``; the authority of an absolute-form target."""
    raw_path, _, query = target.partition(b"?")
    authority = None
    if raw_path[:1] != b"/" and b"://" in raw_path:
        # absolute-form (``GET http://host/path``, RFC 9112 §3.2.2): a server MUST accept
        # it, and its authority is the request's host (RFC 9112 §3.2.2, §3.3).
        _scheme, _, rest = raw_path.partition(b"://")
        slash = rest.find(b"/")
        authority = (rest[:slash] if slash >= 0 else rest).decode("latin-1")
        raw_path = rest[slash:] if slash >= 0 else b"/"
    return raw_path.decode("latin-1"), query.decode("latin-1"), authority


class H3Event:
    """One request and the response being built for it.

    Handlers receive it as their only argument. ``params`` are the route's captured
    segments, ``context`` is a free dict for middleware, ``status`` and
    ``response_headers`` shape the response when the handler returns a plain value.
    """

    __slots__ = (
        "_authority",
        "_body",
        "_cookies",
        "_form",
        "_head_hooks",
        "_headers",
        "_host",
        "_path_error",
        "_query",
        "_status",
        "app",
        "body_timeout",
        "client",
        "context",
        "http_version",
        "io",
        "max_body_size",
        "method",
        "params",
        "path",
        "query_string",
        "raw_headers",
        "raw_path",
        "response_headers",
        "root_path",
        "route",
        "scheme",
        "segments",
        "server",
        "sse_request",
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
        host: str | None = None,
        io: RequestIO | None = None,
    ) -> None:
        self._setup(method, target, headers, http_version, client, server, scheme, host, io)

    @classmethod
    def served(
        cls,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        http_version: str,
        client: Address | None,
        server: Address | None,
        scheme: str,
        host: str | None,
        io: RequestIO | None,
    ) -> H3Event:
        """The event for a request the server read: :meth:`__init__`'s arguments, all
        positional (the server makes one per request; keywords would cost a dict)."""
        event = cls.__new__(cls)
        event._setup(method, target, headers, http_version, client, server, scheme, host, io)
        return event

    def _setup(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        http_version: str,
        client: Address | None,
        server: Address | None,
        scheme: str,
        host: str | None,
        io: RequestIO | None,
    ) -> None:
        self.method = method
        raw_path, self.query_string, self._authority = _split_target(target)
        #: The path as received, still percent-encoded.
        self.raw_path = raw_path
        self._path_error: HTTPError | None = None
        try:
            path, segments = canonical_path(raw_path)
        except HTTPError as error:
            # Answered by the app (so hooks and logs see it), before any routing.
            self._path_error = error
            path, segments = raw_path, ()
        #: The canonical path (see :mod:`trio_h3.paths`): what the router matched.
        self.path = path
        #: The canonical path's decoded segments.
        self.segments = segments
        #: Request headers as received: ``(lowercased name, value)`` byte pairs.
        self.raw_headers = headers
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        self._cookies: dict[str, str] | None = None
        self.http_version = http_version
        #: The peer's address (behind a trusted proxy: the original client's).
        self.client = client
        self.server = server
        #: ``http`` or ``https`` (behind a trusted proxy: the scheme the client used).
        self.scheme = scheme
        # The host the server established (behind a trusted proxy: X-Forwarded-Host or
        # Forwarded's host), ahead of the request's own.
        self._host = host
        self.params: dict[str, str] = {}
        self.context: dict[str, Any] = {}
        self._status: int | None = None
        self._head_hooks: list[Callable[[Response], None]] | None = None
        self.response_headers = Headers()
        #: The app serving the request (a mounted sub-app sets itself while it runs).
        self.app: Any = None
        #: The pattern of the route that matched, once routed (for logs).
        self.route: str | None = None
        #: The request body limit for this route (None: unlimited); the server sets
        #: its default, the route may override it.
        self.max_body_size: int | None = None
        #: The whole-body deadline for this route, in seconds (None: none); likewise.
        self.body_timeout: float | None = None
        #: The prefix the app is served under behind a proxy (``ServeOptions.root_path``;
        #: ``""``: none). Not part of ``path``; part of ``url``.
        self.root_path = ""
        #: The server's side of this request (the framework's own use).
        self.io = io
        self._body: bytes | None = None
        self._form: FormData | None = None
        #: What ``start_sse()`` recorded, or None.
        self.sse_request: SSERequest | None = None

    # -- the request ---------------------------------------------------------------

    def check_path(self) -> None:
        """Raise the 400 for a request path that has no canonical form (see paths)."""
        if self._path_error is not None:
            raise self._path_error

    @property
    def headers(self) -> Headers:
        """Request headers: case-insensitive, multi-value."""
        if self._headers is None:
            self._headers = Headers.from_raw(self.raw_headers)
        return self._headers

    @property
    def query(self) -> QueryParams:
        """Query parameters, decoded, multi-value."""
        if self._query is None:
            self._query = QueryParams(self.query_string)
        return self._query

    @property
    def cookies(self) -> dict[str, str]:
        """Request cookies by name (the first of a repeated name wins, RFC 6265 §5.4)."""
        if self._cookies is None:
            self._cookies = {}
            for header in self.headers.get_all("cookie"):
                for name, value in parse_cookie_header(header).items():
                    self._cookies.setdefault(name, value)
        return self._cookies

    @property
    def url(self) -> URL:
        """Scheme, host, canonical path and raw query string, as the client addressed them.

        The host is, behind a trusted proxy, the one it forwarded (``ServeOptions.
        proxy_headers``), else the authority of an absolute-form target (RFC 9112
        §3.2.2), else ``Host``, else the server's address; the path starts with
        ``root_path``.
        """
        host = self._host or self._authority or self.headers.get("host")
        if not host:
            host = f"{self.server.host}:{self.server.port}" if self.server else "localhost"
        path = self.root_path + self.path if self.root_path else self.path
        return URL(self.scheme, host, path, self.query_string)

    # -- the response being built ------------------------------------------------------

    @property
    def status(self) -> int | None:
        """The status of a plain return value (None: 200, or 204 for ``None``)."""
        return self._status

    @status.setter
    def status(self, value: int | None) -> None:
        self._status = None if value is None else check_status(value)

    def before_head(self, hook: Callable[[Response], None]) -> None:
        """Run ``hook(response)`` just before the response's head is written.

        For middleware that must see, or add to, exactly what goes out whatever the kind
        of response: a complete one, a ``StreamingResponse``, a file, an SSE stream in
        either form (the inline form sends its head from inside the handler, before any
        middleware's code after ``next()`` could run). Hooks run once, in the order they
        were added, after ``on_response``; they may change the response's headers (and a
        complete response's body) but not replace it.
        """
        if self._head_hooks is None:
            self._head_hooks = []
        self._head_hooks.append(hook)

    def run_head_hooks(self, response: Response) -> None:
        """Run the :meth:`before_head` hooks on ``response`` (the server's use; once)."""
        hooks, self._head_hooks = self._head_hooks, None
        for hook in hooks or ():
            hook(response)

    @property
    def session(self) -> Session:
        """The request's session, a dict-like sealed into a cookie (``Sessions``)."""
        session = self.context.get(SESSION_KEY)
        if session is None:
            raise RuntimeError(
                "event.session needs the Sessions middleware: "
                "app.use(Sessions(secret=...)) before the routes that use it"
            )
        return session  # type: ignore[no-any-return]

    # -- the body --------------------------------------------------------------------

    def _check_unread(self) -> None:
        if self._body is None and self._form is not None:
            raise RuntimeError("the request body was read by event.form(); use the form")

    async def stream(self) -> AsyncGenerator[bytes, None]:
        """The request body chunk by chunk, as it arrives, never buffered whole."""
        self._check_unread()
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self.io is None:
            return
        while chunk := await self.io.receive_body():
            yield chunk

    async def body(self) -> bytes:
        """The whole request body; over the route's ``max_body_size`` it is a 413."""
        self._check_unread()
        if self._body is None:
            if self.io is None:
                self._body = b""
            else:
                chunks = []
                while chunk := await self.io.receive_body():
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

    @overload
    async def json(self, *, validate: None = None) -> Any: ...
    @overload
    async def json(self, *, validate: Callable[[Any], Awaitable[T]]) -> T: ...
    @overload
    async def json(self, *, validate: Callable[[Any], T]) -> T: ...
    async def json(self, *, validate: Callable[[Any], Any] | None = None) -> Any:
        """The body parsed as JSON; an empty or invalid body is a 400.

        ``validate`` (pydantic's ``Model.model_validate``, a dataclass, any function,
        sync or async) receives the parsed value and returns what to hand back; if it
        raises, the answer is a 400 with the issues in ``data`` (see
        :mod:`trio_h3.validation`).
        """
        body = await self.body()
        if not body.strip():
            raise HTTPError(400, "Request body is empty; expected JSON")
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPError(400, "Invalid JSON body", data={"error": str(exc)}) from exc
        if validate is None:
            return value
        return await validate_async(validate, value, "body")

    @overload
    async def form(
        self,
        *,
        validate: None = None,
        max_fields: int = ...,
        max_files: int = ...,
        max_field_size: int = ...,
        spool_max_size: int = ...,
        spool_dir: str | PathLike[str] | None = ...,
    ) -> FormData: ...
    @overload
    async def form(
        self,
        *,
        validate: Callable[[FormData], Awaitable[T]],
        max_fields: int = ...,
        max_files: int = ...,
        max_field_size: int = ...,
        spool_max_size: int = ...,
        spool_dir: str | PathLike[str] | None = ...,
    ) -> T: ...
    @overload
    async def form(
        self,
        *,
        validate: Callable[[FormData], T],
        max_fields: int = ...,
        max_files: int = ...,
        max_field_size: int = ...,
        spool_max_size: int = ...,
        spool_dir: str | PathLike[str] | None = ...,
    ) -> T: ...
    async def form(
        self,
        *,
        validate: Callable[[FormData], Any] | None = None,
        max_fields: int = _DEFAULT_LIMITS.max_fields,
        max_files: int = _DEFAULT_LIMITS.max_files,
        max_field_size: int = _DEFAULT_LIMITS.max_field_size,
        spool_max_size: int = _DEFAULT_LIMITS.spool_max_size,
        spool_dir: str | PathLike[str] | None = None,
    ) -> Any:
        """The body as a form: ``application/x-www-form-urlencoded`` or ``multipart/form-data``.

        A :class:`~trio_h3.FormData`: ``form["name"]`` is a ``str`` (decoded as the
        part's charset or the form's ``_charset_`` say, UTF-8 by default) or, for a
        file, an :class:`~trio_h3.UploadFile`. A multipart body is parsed as it arrives;
        a file stays in memory up to ``spool_max_size`` bytes, then goes to a temp file
        in ``spool_dir``, removed when the request ends.

        Limits (per call: the handler knows the form it expects): more than
        ``max_fields`` text fields or ``max_files`` files, or a text field over
        ``max_field_size`` bytes, is a 413; the route's ``max_body_size`` bounds the
        whole body (413). Any other body type is a 415; a malformed one a 400. The form
        is parsed once; later calls return it (and validate it again). ``validate`` is
        as for :meth:`json`.
        """
        if self._form is None:
            directory = None if spool_dir is None else fspath(spool_dir)
            limits = FormLimits(max_fields, max_files, max_field_size, spool_max_size, directory)
            media_type, _ = parse_media_type(self.headers.get("content-type", ""))
            if media_type == _URLENCODED:
                self._form = _parse_urlencoded(await self.body(), limits)
            elif media_type == _MULTIPART:
                if self.io is None:
                    raise RuntimeError("a multipart form needs an event served by a connection")
                self._form = await self.io.read_multipart(self, limits)
            else:
                raise HTTPError(
                    415,
                    f"Expected a form ({_URLENCODED} or {_MULTIPART})",
                    data={"content_type": self.headers.get("content-type")},
                )
        if validate is None:
            return self._form
        return await validate_async(validate, self._form, "form")

    def validated_query(self, fn: Callable[[QueryParams], T]) -> T:
        """``fn(event.query)``: what it returns, or a 400 with the issues if it raises.

        ``fn`` is synchronous (``lambda q: Page(**q.to_dict())``, a pydantic
        ``model_validate``...). As in h3, a check that returns ``True`` or ``None``
        hands back the query itself (typed as what ``fn`` returns: read
        ``event.query`` instead), and ``False`` refuses it.
        """
        result: T = validate_sync(fn, self.query, "query")
        return result

    def validated_params(self, fn: Callable[[dict[str, str]], T]) -> T:
        """``fn(event.params)`` (the route's captured segments), as :meth:`validated_query`."""
        result: T = validate_sync(fn, self.params, "params")
        return result

    # -- threads -----------------------------------------------------------------------

    async def run_sync(self, fn: Callable[..., R], *args: Any) -> R:
        """Run a blocking ``fn(*args)`` in the server's worker threads and wait for it."""
        if self.io is None:
            return fn(*args)
        return await self.io.run_sync(fn, *args)

    # -- Server-Sent Events ------------------------------------------------------------

    def start_sse(
        self,
        *,
        retry: int | None = None,
        ping_interval: float | None = ...,  # type: ignore[assignment]
        send_timeout: float | None = ...,  # type: ignore[assignment]
        headers: dict[str, str] | None = None,
    ) -> None:
        """Turn this response into an SSE stream (``text/event-stream``).

        ``retry`` is sent first as the client's reconnection delay in ms;
        ``ping_interval`` (seconds, default from ServeOptions, ``None`` disables)
        sends a ``: ping`` comment whenever the stream has been idle that long;
        ``send_timeout`` bounds every write; ``headers`` are added to the response.
        Then register the producer with :meth:`set_stream_callback` (or use the inline
        form, :meth:`sse`).
        """
        if self.sse_request is not None:
            raise RuntimeError("start_sse() was already called for this request")
        self.sse_request = SSERequest(
            SSEOptions.build(
                retry=retry, ping_interval=ping_interval, send_timeout=send_timeout, headers=headers
            )
        )

    def set_stream_callback(self, callback: StreamCallback, *args: Any) -> None:
        """Run ``await callback(writer, *args)`` once the SSE head has been sent.

        Like ``nursery.start_soon``: the callback (an ``async def``) runs in a child
        nursery of the connection, cancelled when the client goes away or the server
        shuts down.
        """
        if self.sse_request is None:
            raise RuntimeError("call event.start_sse() before event.set_stream_callback()")
        if self.sse_request.callback is not None:
            raise RuntimeError("a stream callback is already set for this request")
        check_callback(callback)
        self.sse_request.callback = callback
        self.sse_request.args = args

    @property
    def sse_started(self) -> bool:
        """True once :meth:`start_sse` has been called."""
        return self.sse_request is not None

    def sse(
        self,
        *,
        retry: int | None = None,
        ping_interval: float | None = ...,  # type: ignore[assignment]
        send_timeout: float | None = ...,  # type: ignore[assignment]
        headers: dict[str, str] | None = None,
    ) -> AbstractAsyncContextManager[SSEWriter]:
        """The inline form: ``async with event.sse() as writer:`` streams from the handler.

        The head is sent on entry; leaving the block ends the stream. Client disconnect
        cancels the block's body, like the callback form.
        """
        if self.io is None:
            raise RuntimeError("event.sse() needs an event served by a connection")
        self.start_sse(
            retry=retry, ping_interval=ping_interval, send_timeout=send_timeout, headers=headers
        )
        assert self.sse_request is not None
        self.sse_request.inline = True
        return self.io.inline_stream(self)

    def __repr__(self) -> str:
        return f"<H3Event {self.method} {self.path}>"
