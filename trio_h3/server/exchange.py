"""One request and its response on a connection: the event's server side.

An :class:`Exchange` builds the :class:`~trio_h3.H3Event`, runs the app as a guest (what
escapes it is contained: :mod:`trio_h3._guest`), and writes what comes back: a complete
response, a stream (:mod:`.streaming`), or the hand-off to a WebSocket session. It is the
:class:`~trio_h3.types.RequestIO` the event reads its body and starts streams through.

Whatever a handler returns, the client gets an answer: a response that cannot be sent
(a status outside 200-599, a header that slipped past validation) is logged with its
route and answered 500.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from ..datastructures import FormData
from ..errors import HTTPError
from ..event import H3Event
from ..response import Response, StreamingResponse, error_response
from ..sse.response import SSEResponse
from ..types import FormLimits, RequestHead
from ..utils import forms, proxy
from ..utils.files import FileResponse
from ..websocket.handshake import WebSocketUpgrade
from ..websocket.options import WebSocketOptions
from ..websocket.session import run_websocket
from . import streaming
from .body import BodyReader
from .wire import InvalidResponse

if TYPE_CHECKING:
    from ..sse.writer import SSEWriter
    from .connection import HTTPConnection

__all__: list[str] = []

logger = logging.getLogger("trio_h3")
access_logger = logging.getLogger("trio_h3.access")

R = TypeVar("R")

_CLOSE = (b"connection", b"close")
# The usual methods and versions, decoded once (a bytes -> str per request otherwise).
_TEXT = {
    value: value.decode("ascii")
    for value in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"1.1", b"1.0")
}


def _strip_root(target: bytes, root: str) -> bytes:
    """The target without the ``root_path`` prefix, if it has it (a proxy that does not
    strip the prefix itself; Starlette routes the same way)."""
    prefix = root.encode("latin-1")
    if target.startswith(prefix) and target[len(prefix) : len(prefix) + 1] in (b"", b"/", b"?"):
        rest = target[len(prefix) :]
        return rest if rest[:1] == b"/" else b"/" + rest
    return target


class Exchange:
    """One request/response exchange (see the module docstring)."""

    __slots__ = (
        "_body",
        "_uploads",
        "connection",
        "event",
        "handed_off",
        "head",
        "options",
        "state",
        "status",
        "wire",
        "yield_owed",
    )

    def __init__(self, connection: HTTPConnection, head: RequestHead) -> None:
        self.connection = connection
        self.state = connection.state
        self.options = options = connection.state.options
        self.wire = connection.wire
        self.head = head
        client, scheme, host = connection.client, connection.scheme, None
        if connection.peer_trusted and connection.wire.proxied:
            # Only a trusted peer speaks for the client (see trio_h3.utils.proxy); the
            # head checks noted whether it said anything at all.
            assert self.state.trusted_proxies is not None
            said = proxy.forwarded(head.headers, self.state.trusted_proxies)
            if said is not None:
                client = said.client or client
                scheme = said.scheme or scheme
                host = said.host
        root = options.root_path
        method, version = head.method, head.http_version
        event = H3Event.served(
            _TEXT.get(method) or method.decode("ascii", "replace"),
            _strip_root(head.target, root) if root else head.target,
            head.headers,
            _TEXT.get(version) or version.decode("ascii", "replace"),
            client,
            connection.server,
            scheme,
            host,
            self,
        )
        event.max_body_size = options.max_body_size
        event.body_timeout = options.body_timeout
        event.root_path = root
        self.event = event
        self._body: BodyReader | None = None
        # The files of this request's forms, removed when the request ends.
        self._uploads: list[forms.UploadFile] | None = None
        self.status = 0
        self.handed_off = False
        #: The response went out in one write (Wire.write_now) whose schedule point is
        #: still to be made (the connection loop makes it).
        self.yield_owed = False

    @property
    def body(self) -> BodyReader:
        """The request body reader (made on first use: most requests have none)."""
        if self._body is None:
            self._body = BodyReader(
                self.wire,
                declared=self.wire.declared_length,
                limit=self.event.max_body_size,
                read_timeout=self.options.request_head_timeout,
                timeout=self.event.body_timeout,
            )
        return self._body

    def describe(self) -> str:
        """``METHOD path`` (and the route), for logs."""
        event = self.event
        route = f" (route {event.route})" if event.route else ""
        return f"{event.method} {event.path}{route}"

    # -- the exchange ----------------------------------------------------------------------

    async def run(self) -> None:
        """Answer the request; afterwards the connection is ready for the next one (or not)."""
        log_access = self.options.access_log and access_logger.isEnabledFor(logging.INFO)
        started = trio.current_time() if log_access else 0.0
        admitted = self.state.admit()
        try:
            try:
                if admitted:
                    try:
                        response = await self.state.app.handle(self.event)
                    except BaseException as exc:
                        response = await self._contained(exc)
                else:
                    # limit_concurrency: shed the load, and the connection with it (uvicorn).
                    self.wire.close_after = True
                    response = error_response(HTTPError(503, "Service Unavailable"))
                self.status = response.status
                if type(response) is Response and not self.wire.response_started:
                    # The common case, directly: the bytes made here, one await for
                    # the write (each coroutine level costs its call, and its pass on
                    # every suspension and resumption).
                    try:
                        data = self._encode_complete(response)
                    except InvalidResponse as exc:
                        await self._invalid(exc)
                    else:
                        await trio.lowlevel.checkpoint_if_cancelled()
                        sent = self.wire.write_now(data)
                        if sent == len(data):
                            self.yield_owed = True  # the schedule point: the loop's
                        else:
                            await self.wire.send_rest(data, sent)
                else:
                    # Awaited here, not inside _sending: a stream's task keeps one
                    # frame fewer for as long as the stream lives.
                    try:
                        sending = await self._sending(response)
                        if sending is not None:
                            await sending
                    except InvalidResponse as exc:
                        await self._invalid(exc)
            finally:
                if admitted:
                    self.state.requests_active -= 1
                if log_access:
                    self._log_access(started)
            wire = self.wire
            started_or_due = self._body is not None or wire.body_pending
            if started_or_due and not self.handed_off and not wire.broken:
                # Only a body that was started or is still to come (a GET has none).
                await self.body.discard()
        finally:
            # The event and the exchange point at each other: undone here, they are freed
            # at once (by reference counting) rather than by the cyclic GC, whose passes
            # over a few objects per request cost CPU and show in tail latency.
            self.event.io = None
            if self._uploads:
                # However the request ended (answered, failed, the client gone, the
                # server cancelling it): no temp file outlives it.
                with trio.CancelScope(shield=True):
                    await forms.remove_uploads(self._uploads)

    async def _contained(self, exc: BaseException) -> Response:
        # Not an Exception (those the app answers itself): contain it; a real
        # cancellation of ours propagates from here.
        await self.state.guest.contain(exc, self.describe())
        return error_response(HTTPError(500, "Internal Server Error"))

    def _encode_complete(self, response: Response) -> bytes:
        """A plain :class:`Response` (what a handler's value becomes): its hooks, then
        its bytes. Raises :class:`InvalidResponse` for one that cannot be sent."""
        try:
            self.event.run_head_hooks(response)
        except Exception as exc:
            logger.error("a before_head hook failed on %s", self.describe(), exc_info=exc)
            self.status = 500
            response = error_response(HTTPError(500, "Internal Server Error"))
        return self.wire.encode_response(
            response.status, self._headers(response, complete=True), response.body
        )

    def shutdown_refusal(self) -> HTTPError | None:
        """The 503 for a new stream or upgrade during shutdown (None otherwise)."""
        if self.state.shutting_down.is_set() and self.event.method != "HEAD":
            # A long-lived session started now would only be cut at once: tell the
            # client to come back (to another instance) instead.
            return HTTPError(503, "Server is shutting down", headers=[("retry-after", "1")])
        return None

    async def _sending(self, response: Response) -> Coroutine[Any, Any, None] | None:
        """The send that answers with ``response`` (not yet awaited), after its checks;
        None once answered otherwise (a refusal, a failed hook, an inline stream)."""
        if self.wire.response_started:
            # An inline stream already answered; what the handler returned afterwards
            # has nowhere to go.
            return None
        if not response.prepared:
            # Returned past the app's own preparation (an on_response replacement).
            try:
                response = await response.prepare(self.event)
            except HTTPError as error:
                response = error_response(error)
            self.status = response.status
        if not isinstance(response, WebSocketUpgrade) and not self._run_head_hooks(response):
            self.status = 500
            await self.send_full(error_response(HTTPError(500, "Internal Server Error")))
            return None
        if isinstance(response, WebSocketUpgrade | SSEResponse):
            refusal = self.shutdown_refusal()
            if refusal is not None:
                self.status = refusal.status
                await self.send_full(error_response(refusal))
                return None
        if isinstance(response, WebSocketUpgrade):
            return self._upgrade(response)
        if isinstance(response, SSEResponse):
            return streaming.run_sse(self, response)
        if isinstance(response, FileResponse):
            return streaming.run_file(self, response)
        if isinstance(response, StreamingResponse):
            return streaming.run_body(self, response)
        return self.send_full(response)

    async def _invalid(self, exc: InvalidResponse) -> None:
        logger.error("the response to %s cannot be sent: %s", self.describe(), exc)
        self.status = 500
        await self._answer_invalid()

    def _run_head_hooks(self, response: Response) -> bool:
        """The event's ``before_head`` hooks; False (logged) if one failed."""
        try:
            self.event.run_head_hooks(response)
        except Exception as exc:
            logger.error("a before_head hook failed on %s", self.describe(), exc_info=exc)
            return False
        return True

    async def _answer_invalid(self) -> None:
        error = error_response(HTTPError(500, "Internal Server Error"))
        if self.wire.broken and not self.wire.head_sent:
            # h11 refused the head and is spent: answer past it, then close.
            await self.wire.send_fallback_error(500, error.body)
        elif self.wire.response_started:
            await self.wire.abort()  # mid-body: the truncation must show
        else:
            await self.send_full(error)  # refused before h11 saw it: the connection lives on

    # -- writing -------------------------------------------------------------------------------

    def _headers(self, response: Response, *, complete: bool) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = []
        for pair in response.headers.raw:
            if pair[0] == b"content-length" or pair[0] == b"transfer-encoding":
                if pair[0] == b"content-length" and not complete:
                    headers.append(pair)  # a streamed body of declared length
                elif pair[0] == b"content-length" and int(pair[1]) != len(response.body):
                    raise InvalidResponse(
                        f"Content-Length {pair[1].decode()} does not match the body "
                        f"({len(response.body)} bytes)"
                    )
                continue  # the wire frames the body itself
            headers.append(pair)
        if not 200 <= response.status <= 599:
            raise InvalidResponse(f"status {response.status!r} is not a final status")
        self.state.add_server_headers(headers, headers)
        wire = self.wire
        if wire.close_after or self.state.stopping or (wire.body_pending and self._unread()):
            # Announce the close: the body was refused or is unread, or we are stopping.
            headers.append(_CLOSE)
        return headers

    def _unread(self) -> bool:
        """Whether the request body still to come will not be read (the response must
        then end the connection, and so say ``close``)."""
        wire = self.wire
        if self._body is not None and self._body.done:
            return False
        # A body nobody will read: one the client waits to be invited to send, or one
        # declared over the limit (read only to discard it, it could be anything).
        declared, limit = wire.declared_length, self.event.max_body_size
        return wire.waiting_for_100_continue or (
            declared is not None and limit is not None and declared > limit
        )

    async def send_full(self, response: Response) -> None:
        """Write a complete response (the body in memory) in one write."""
        await self.wire.send_response(
            response.status, self._headers(response, complete=True), response.body
        )

    async def send_head(self, response: Response) -> None:
        """Write the head of a streamed response."""
        await self.wire.send_head(response.status, self._headers(response, complete=False))

    async def _upgrade(self, response: WebSocketUpgrade) -> None:
        options = self.options
        # Server-wide defaults, then what the route overrides.
        settings = dataclasses.replace(
            WebSocketOptions(
                ping_interval=options.ws_ping_interval,
                ping_timeout=options.ws_ping_timeout,
                max_message_size=options.ws_max_message_size,
                send_timeout=options.send_timeout,
                origins=options.ws_origins,
                require_origin=options.ws_require_origin,
                compression=options.ws_compression,
            ),
            **response.options,
        )
        self.handed_off = True
        await run_websocket(
            self.wire.stream,
            self.head,
            self.wire.trailing,
            self.event,
            response.handler,
            settings,
            self.state.shutting_down,
            options.stream_shutdown_grace,
            guest=self.state.guest,
        )

    def _log_access(self, started: float) -> None:
        # uvicorn's line (what its users grep for), then the bytes and the duration; the
        # record carries uvicorn's attributes too, for a --log-config format of theirs.
        event = self.event
        # The client as the event knows it: behind a trusted proxy, the original one.
        client = event.client
        # host:port as uvicorn; a forwarded client's port is unknown (0): the host alone.
        client_addr = (
            (f"{client.host}:{client.port}" if client.port else client.host) if client else "-"
        )
        request_line = (
            f"{event.method} {self.head.target.decode('latin-1')} HTTP/{event.http_version}"
        )
        access_logger.info(
            '%s - "%s" %d %d %.1fms',
            client_addr,
            request_line,
            self.status,
            self.wire.body_bytes,
            (trio.current_time() - started) * 1000,
            extra={
                "client_addr": client_addr,
                "request_line": request_line,
                "status_code": self.status,
            },
        )

    # -- RequestIO ----------------------------------------------------------------------------

    async def receive_body(self) -> bytes:
        """The next chunk of the request body, ``b""`` at its end (limits enforced)."""
        body = self.body
        body.limit = self.event.max_body_size
        body.timeout = self.event.body_timeout
        return await body.receive()

    def inline_stream(self, event: H3Event) -> AbstractAsyncContextManager[SSEWriter]:
        """The inline SSE form (see :func:`.streaming.inline_stream`)."""
        return streaming.inline_stream(self, event)

    async def run_sync(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)`` in one of the server's worker threads (``thread_limit``)."""
        if self.state.sync_inline:
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args, limiter=self.state.threads)

    async def run_file_io(self, fn: Callable[..., R], *args: Any) -> R:
        """Blocking file I/O (spooled uploads) in a worker thread.

        Trio's default limiter, not the handlers' threads: forty blocked ``def``
        handlers must not stall every upload.
        """
        if self.state.sync_inline:
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args)

    def _track_upload(self, upload: forms.UploadFile) -> None:
        if self._uploads is None:
            self._uploads = []  # made for the requests that have files, not for all
        self._uploads.append(upload)

    async def read_multipart(self, event: H3Event, limits: FormLimits) -> FormData:
        """Parse a ``multipart/form-data`` body (see :mod:`trio_h3.utils.forms`)."""
        try:
            return await forms.read_multipart(
                event, limits, run=self.run_file_io, track=self._track_upload
            )
        except HTTPError:
            if not self.body.done:
                # Refused mid-body: the rest is unread, so the answer ends the connection.
                self.wire.close_after = True
            raise
