"""One HTTP/1.1 connection: the h11 loop, limits, timeouts and the stream hand-offs.

read request -> run the app -> write the response -> next request (keep-alive and
pipelining come from h11's cycle). A response that streams (SSE, StreamingResponse)
gets a child nursery in which exactly one task owns the receive side of the socket and
cancels the producer the moment the client goes away. A WebSocket upgrade hands the
socket to :mod:`trio_h3.websocket`.

Every way a client can misbehave ends here with a JSON error and a clean close, never
with an exception escaping to the server.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import h11
import trio

from .. import _sockio as sockio
from ..errors import HTTPError, StreamClosed
from ..event import Address, H3Event
from ..response import Response, StreamingResponse, WebSocketUpgrade, error_response
from ..sse import CloseReason, SSEOptions, SSEResponse, SSEWriter

if TYPE_CHECKING:
    from .state import ServerState

__all__ = ["HTTPConnection"]

logger = logging.getLogger("trio_h3")
access_logger = logging.getLogger("trio_h3.access")

RECEIVE_SIZE = 64 * 1024
_REASONS: dict[int, bytes] = {}
_CLOSE_HEADER = (b"connection", b"close")
_NO_BODY_STATUS = frozenset({204, 304})


def _reason(status: int) -> bytes:
    reason = _REASONS.get(status)
    if reason is None:
        from http import HTTPStatus

        try:
            reason = HTTPStatus(status).phrase.encode()
        except ValueError:
            reason = b""
        _REASONS[status] = reason
    return reason


def _inspect_head(request: h11.Request) -> tuple[int, int | None]:
    """One pass over the headers: the head's size as sent (give or take optional
    whitespace) and the declared Content-Length, if any."""
    size = len(request.method) + len(request.target) + 14  # " ", " HTTP/1.1\r\n", "\r\n"
    length = None
    for name, value in request.headers:
        size += len(name) + len(value) + 4  # ": " and "\r\n"
        if name == b"content-length":
            # h11 has validated it already (digits only, one value).
            length = int(value)
    return size, length


def _shutting_down() -> HTTPError:
    """The answer to a new stream or upgrade during shutdown (both forms, and WebSockets)."""
    return HTTPError(503, "Server is shutting down", headers=[("retry-after", "1")])


class HTTPConnection:
    """Serves one client connection until it closes, times out or the server stops."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        state: ServerState,
        *,
        client: Address | None,
        server: Address | None,
        scheme: str = "http",
    ) -> None:
        self.stream = stream
        # Plain TCP: writes go through the socket itself (see _sockio); they are
        # already serialised (one response at a time, the SSE writer's lock).
        self._socket = sockio.raw_socket(stream)
        self.state = state
        self.options = state.options
        self.client = client
        self.server = server
        self.scheme = scheme
        self.h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.options.max_header_size
        )
        #: Cancelled by the server on shutdown while we wait for the next request.
        self.idle_scope: trio.CancelScope | None = None
        self._request: h11.Request | None = None
        self._declared_length: int | None = None
        self._body_received = 0
        self._body_done = False
        self._must_close = False
        # The byte stream is in an unknown state (a write was cut short): no more
        # HTTP on it, not even a terminating chunk.
        self._broken = False
        self._response_started = False
        self._chunked = False
        self._inline: tuple[SSEWriter, trio.Nursery] | None = None
        self._handed_off = False
        self._response_bytes = 0

    # -- the request loop ------------------------------------------------------------------

    async def run(self) -> None:
        """Serve requests until the connection is done; always closes the stream."""
        # except*: errors can leave a stream nursery wrapped in an ExceptionGroup. A
        # client that vanished is routine (debug); anything else is our bug (error).
        try:
            await self._serve()
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            logger.debug("client %s went away", self.client)
        except* Exception as group:
            logger.error("connection from %s failed", self.client, exc_info=group)
        finally:
            if not self._handed_off:
                await self._close()

    async def _serve(self) -> None:
        first = True
        while True:
            request = await self._read_request_head(first)
            if request is None:
                return
            first = False
            await self._handle(request)
            if self._handed_off or self._broken or self._must_close:
                return
            if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
                return
            self.h11.start_next_cycle()
            if self.state.shutting_down.is_set():
                return

    async def _read_request_head(self, first: bool) -> h11.Request | None:
        options = self.options
        timeout = options.request_head_timeout if first else options.keep_alive_timeout
        deadline = trio.current_time() + timeout
        waiting_idle = True
        try:
            while True:
                try:
                    event = self.h11.next_event()
                except h11.RemoteProtocolError as exc:
                    await self._answer_protocol_error(exc)
                    return None
                if event is h11.NEED_DATA:
                    if self.state.shutting_down.is_set() and waiting_idle:
                        return None
                    if waiting_idle and self.h11.trailing_data[0]:
                        # Part of a head is here: from now on the whole head must
                        # arrive within request_head_timeout (slowloris).
                        waiting_idle = False
                        deadline = trio.current_time() + options.request_head_timeout
                    data = None
                    # A fresh scope per read (a scope can be entered only once), all
                    # with the same deadline; the server cancels it to end an idle wait.
                    self.idle_scope = trio.CancelScope(deadline=deadline)
                    with self.idle_scope:
                        data = await self.stream.receive_some(RECEIVE_SIZE)
                    if data is None:
                        if not waiting_idle or self.h11.trailing_data[0]:
                            await self._send_error(HTTPError(408, "Request head timeout"))
                        return None
                    # (If the head is still incomplete, the NEED_DATA branch above
                    # starts its request_head_timeout on the next turn.)
                    self.h11.receive_data(cast(bytes, data))
                    continue
                if isinstance(event, h11.Request):
                    if event.http_version not in (b"1.0", b"1.1"):
                        await self._send_error(
                            HTTPError(505, "HTTP version not supported; use HTTP/1.1")
                        )
                        return None
                    # h11 bounds only an incomplete head; one that arrived whole in a
                    # single read can be larger than the limit.
                    size, self._declared_length = _inspect_head(event)
                    if size > options.max_header_size:
                        await self._send_error(HTTPError(431, "Request header fields too large"))
                        return None
                    return event
                # ConnectionClosed, or anything else between requests: we are done.
                return None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        finally:
            self.idle_scope = None

    async def _answer_protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        status = exc.error_status_hint
        if status == 431:
            message = "Request header fields too large"
        else:
            message = f"Bad request: {exc}"
        await self._send_error(HTTPError(status, message))

    # -- one request ---------------------------------------------------------------------

    async def _handle(self, request: h11.Request) -> None:
        self._request = request
        self._body_received = 0
        self._body_done = False
        self._response_started = False
        self._response_bytes = 0
        # The clock is read only when the access log will use it (a per-request cost).
        log_access = self.options.access_log and access_logger.isEnabledFor(logging.INFO)
        started = trio.current_time() if log_access else 0.0
        method = request.method.decode("ascii", "replace")
        event = H3Event(
            method,
            request.target,
            request.headers,  # type: ignore[arg-type]  # h11's Headers is a list of pairs
            http_version=request.http_version.decode("ascii", "replace"),
            client=self.client,
            server=self.server,
            scheme=self.scheme,
            io=self,
        )
        status = 500
        try:
            length = self._declared_length
            if length is not None and length > self.options.max_body_size:
                self._must_close = True
                raise HTTPError(
                    413,
                    "Request body too large",
                    data={"limit": self.options.max_body_size},
                )
            response = await self.state.app.handle(event)
        except HTTPError as error:
            response = error_response(error)
        status = response.status
        try:
            if self._response_started:
                # An inline stream already answered; whatever the handler returned
                # afterwards has nowhere to go.
                pass
            elif (
                isinstance(response, WebSocketUpgrade | SSEResponse)
                and self.state.shutting_down.is_set()
                and method != "HEAD"
            ):
                # A long-lived session started now would only be cut at once: tell the
                # client to come back (to another instance) instead.
                refusal = error_response(_shutting_down())
                status = 503
                await self._send_response(refusal)
            elif isinstance(response, WebSocketUpgrade):
                await self._upgrade_websocket(event, response)
            elif isinstance(response, SSEResponse):
                await self._run_sse(event, response)
            elif response.streaming:
                await self._run_streaming(event, response)  # type: ignore[arg-type]
            else:
                await self._send_response(response, head_only=method == "HEAD")
        finally:
            if log_access:
                access_logger.info(
                    '%s - "%s %s HTTP/%s" %d %d %.1fms',
                    self.client.host if self.client else "-",
                    method,
                    request.target.decode("latin-1"),
                    event.http_version,
                    status,
                    self._response_bytes,
                    (trio.current_time() - started) * 1000,
                )
        if not self._body_done and not self._handed_off and not self._broken:
            await self._discard_body()

    def _head_headers(
        self, response: Response, body_length: int | None
    ) -> list[tuple[bytes, bytes]]:
        headers = list(response.headers.raw)
        headers.append((b"date", self.state.date_header()))
        if self.options.server_header is not None:
            headers.append((b"server", self.state.server_header))
        if body_length is not None and response.status not in _NO_BODY_STATUS:
            headers.append((b"content-length", b"%d" % body_length))
        if (
            self._must_close
            or self.state.shutting_down.is_set()
            or self.h11.they_are_waiting_for_100_continue
        ):
            # Announce the close: the body was refused or is unread, or we are stopping.
            headers.append(_CLOSE_HEADER)
        return headers

    async def _send_response(self, response: Response, *, head_only: bool = False) -> None:
        body = response.body
        status = response.status
        h = self.h11
        data = h.send(
            h11.Response(
                status_code=status,
                headers=self._head_headers(response, len(body)),
                reason=_reason(status),
            )
        )
        assert data is not None
        if body and not head_only and status not in _NO_BODY_STATUS:
            data += h.send(h11.Data(data=body)) or b""
            self._response_bytes = len(body)
        data += h.send(h11.EndOfMessage()) or b""
        self._response_started = True
        await self._send_all(data)

    async def _send_error(self, error: HTTPError) -> None:
        """Answer with ``error`` if a response can still be sent, then close."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE) or self._broken:
            return
        self._must_close = True
        try:
            await self._send_response(error_response(error))
        except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def _send_all(self, data: bytes) -> None:
        try:
            if self._socket is None:
                await self.stream.send_all(data)
            else:
                await sockio.send_all(self._socket, data)
        except BaseException:
            # Some unknown part of ``data`` may be out: the framing is lost.
            self._broken = True
            raise

    # -- the request body (RequestIO) ------------------------------------------------------

    def body_complete(self) -> bool:
        """True once the whole request body has been received."""
        return self._body_done

    async def receive_body(self) -> bytes:
        """The next chunk of the request body, ``b""`` at its end; enforces the limits."""
        if self._body_done:
            return b""
        h = self.h11
        if h.they_are_waiting_for_100_continue:
            interim = h11.InformationalResponse(status_code=100, headers=[])
            await self._send_all(h.send(interim) or b"")
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                self._must_close = True
                raise HTTPError(400, f"Malformed request body: {exc}") from None
            if event is h11.NEED_DATA:
                data = None
                with trio.move_on_after(self.options.request_head_timeout):
                    data = await self.stream.receive_some(RECEIVE_SIZE)
                if data is None:
                    self._must_close = True
                    raise HTTPError(408, "Timed out reading the request body")
                h.receive_data(cast(bytes, data))
                continue
            if isinstance(event, h11.Data):
                self._body_received += len(event.data)
                if self._body_received > self.options.max_body_size:
                    self._must_close = True
                    raise HTTPError(
                        413, "Request body too large", data={"limit": self.options.max_body_size}
                    )
                return bytes(event.data)
            if isinstance(event, h11.EndOfMessage):
                self._body_done = True
                return b""
            # ConnectionClosed mid-body.
            self._must_close = True
            raise HTTPError(400, "The request body ended early")

    async def _discard_body(self) -> None:
        """Read and drop an unread request body so the connection can be reused."""
        if self._must_close or self.h11.their_state is not h11.SEND_BODY:
            return
        if self.h11.they_are_waiting_for_100_continue:
            # The client has not sent the body and we do not want it.
            self._must_close = True
            return
        try:
            while await self.receive_body():
                pass
        except HTTPError:
            self._must_close = True

    # -- streaming ---------------------------------------------------------------------------

    async def _send_head(self, response: Response) -> None:
        data = self.h11.send(
            h11.Response(
                status_code=response.status,
                headers=self._head_headers(response, None),
                reason=_reason(response.status),
            )
        )
        assert data is not None
        self._chunked = (
            self.h11.their_http_version is not None and self.h11.their_http_version >= b"1.1"
        )
        self._response_started = True
        await self._send_all(data)

    async def send_body(self, data: bytes) -> None:
        """Write one body chunk, flushed (StreamTransport)."""
        if not data:
            return
        if self._broken:
            raise trio.ClosedResourceError("the connection is broken")
        # Chunk framing by hand: h11 does the same, but its event machinery costs more
        # than the syscall on the per-event hot path; h11 still writes the head and
        # the terminating chunk, so its state stays right.
        payload = b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data
        await self._send_all(payload)
        self._response_bytes += len(data)

    async def end_body(self) -> None:
        """Write the end of a streamed body (StreamTransport)."""
        if self._broken or self.h11.our_state is not h11.SEND_BODY:
            return
        await self._send_all(self.h11.send(h11.EndOfMessage()) or b"")

    async def _monitor(self, on_gone: Callable[[], None], writer: SSEWriter | None = None) -> None:
        """The one helper task of a streaming response.

        It owns the receive side of the socket: EOF or a reset means the client left,
        and ``on_gone`` cancels the producer at once (no polling). For an SSE ``writer``
        it also keeps the two clocks of the stream, so a stream costs one task, not
        three: a ``: ping`` comment once the stream has been idle ``ping_interval``,
        and dropping a client whose write has taken longer than ``send_timeout``
        (the deadline lives here, not around each write, so a write pays no cancel
        scope). Reading is interrupted only when a clock is due; a cancelled receive
        loses no data. Bytes that arrive meanwhile (a pipelined request) are kept for
        the next cycle, up to the head-size limit.
        """
        ping = writer.ping_interval if writer is not None else None
        timeout = writer.send_timeout if writer is not None else None
        try:
            while True:
                wake = math.inf
                # Once the stream is closed the clocks stop, but the receive side is
                # still watched until the stream's nursery ends (the end of the body
                # may still be on its way out).
                if writer is not None and not writer.closed and (ping or timeout):
                    now = trio.current_time()
                    started = writer.write_started
                    if started is not None:
                        if timeout is not None:
                            if now >= started + timeout:
                                await self._drop_slow_client(writer)
                                return
                            wake = started + timeout
                        if ping is not None:
                            # Look again within ping_interval: the write usually ends at
                            # once, and the heartbeat must not wait for the deadline.
                            wake = min(wake, now + ping)
                    elif ping is not None and now >= writer.last_write + ping:
                        if not await self._heartbeat(writer):
                            return
                        continue
                    else:
                        if ping is not None:
                            wake = writer.last_write + ping
                        if timeout is not None:
                            wake = min(wake, now + timeout)
                with trio.move_on_at(wake):
                    data = await self.stream.receive_some(RECEIVE_SIZE)
                    if not data:
                        break
                    if len(self.h11.trailing_data[0]) + len(data) > self.options.max_header_size:
                        self._must_close = True
                    else:
                        self.h11.receive_data(cast(bytes, data))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self._must_close = True
        on_gone()

    async def _heartbeat(self, writer: SSEWriter) -> bool:
        """Send ``: ping``; False when the stream is over (closed, or the client dropped)."""
        timeout = writer.send_timeout
        with trio.move_on_after(timeout if timeout is not None else math.inf) as scope:
            try:
                await writer.comment("ping")
            except StreamClosed:
                return False
        if scope.cancelled_caught:
            await self._drop_slow_client(writer)
            return False
        return True

    async def _drop_slow_client(self, writer: SSEWriter) -> None:
        writer._cancel(CloseReason.SEND_TIMEOUT)
        self._broken = True
        # Closing the socket also wakes a writer blocked outside the callback's scope.
        await self._abort()

    async def _consume_request_body(self, event: H3Event) -> None:
        # The stream's watcher will own the receive side, so the body must be in
        # memory before it starts (event.body() keeps working inside the stream).
        if not self._body_done and self.h11.their_state is h11.SEND_BODY:
            await event.body()
        elif event._body is None:
            event._body = b""

    def _stream_options(self, options: SSEOptions) -> tuple[float | None, float | None]:
        ping = (
            self.options.sse_ping_interval
            if options.ping_interval is ...
            else options.ping_interval
        )
        timeout = self.options.send_timeout if options.send_timeout is ... else options.send_timeout
        return ping, timeout

    def _new_writer(self, event: H3Event, options: SSEOptions) -> SSEWriter:
        ping, timeout = self._stream_options(options)
        return SSEWriter(
            event,
            self,
            ping_interval=ping,
            send_timeout=timeout,
            shutting_down=self.state.shutting_down,
        )

    async def _prepare_stream(self, event: H3Event, response: Response) -> bool:
        """Ready a streaming response; False when the request was answered otherwise.

        HEAD gets the head only and the producer never runs (a health check must not
        pin a task); a request body over the limit gets its 413 instead of a stream.
        """
        if event.method == "HEAD":
            await self._send_head(response)
            await self.end_body()
            return False
        try:
            await self._consume_request_body(event)
        except HTTPError as error:
            await self._send_response(error_response(error))
            return False
        return True

    async def _run_sse(self, event: H3Event, response: SSEResponse) -> None:
        if not await self._prepare_stream(event, response):
            return
        writer = self._new_writer(event, response.options)
        self.state.streams.add(writer)
        if self.state.streams_cancelled:
            writer._cancel(CloseReason.SERVER_SHUTDOWN)
        try:
            await self._send_head(response)
            if response.options.retry is not None and not writer.closed:
                await writer._write(b"retry: %d\n\n" % response.options.retry)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._monitor, self._client_gone(writer), writer)
                if response.callback is not None and not writer.closed:
                    writer._callback_task = trio.lowlevel.current_task()
                    await self._run_callback(writer, response.callback, response.args)
                writer._mark(CloseReason.COMPLETED)
                # End the body before stopping the monitor: the client (and the next
                # request on this connection) need not wait for the task to wind down.
                await self._finish_stream(writer)
                nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError, StreamClosed):
            writer._cancel(CloseReason.CLIENT_DISCONNECTED)
            self._broken = True
        finally:
            self.state.streams.discard(writer)
            if not writer.closed:
                # Cancelled from outside (a forced shutdown): still a known ending.
                writer._mark(CloseReason.SERVER_SHUTDOWN)
                self._broken = True
            await writer._run_on_close(self.options.on_close_timeout)

    async def _run_callback(
        self, writer: SSEWriter, callback: Callable[..., Awaitable[None]], args: tuple[Any, ...]
    ) -> None:
        try:
            with writer._scope:
                await callback(writer, *args)
        except StreamClosed:
            # The stream ended under the callback (disconnect, timeout, close):
            # its reason is already recorded; this is not an application error.
            pass
        except Exception as exc:
            if writer.closed:
                logger.debug("stream callback ended after the stream closed: %r", exc)
            else:
                writer._mark(CloseReason.CALLBACK_ERROR)
                logger.error(
                    "SSE stream callback %r failed on %s %s",
                    getattr(callback, "__qualname__", callback),
                    writer.event.method,
                    writer.event.path,
                    exc_info=exc,
                )

    def _client_gone(self, writer: SSEWriter) -> Callable[[], None]:
        def gone() -> None:
            if writer.close_reason is CloseReason.SEND_TIMEOUT:
                # We dropped the client ourselves (the receive side saw our abort).
                return
            writer._cancel(CloseReason.CLIENT_DISCONNECTED)

        return gone

    async def _finish_stream(self, writer: SSEWriter) -> None:
        if writer.close_reason in (CloseReason.CLIENT_DISCONNECTED, CloseReason.SEND_TIMEOUT):
            self._broken = True
            return
        await writer._end()
        if self.h11.our_state is not h11.DONE:
            self._broken = True

    async def _abort(self) -> None:
        with trio.CancelScope(shield=True):
            try:
                await trio.aclose_forcefully(self.stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    # -- the inline form (RequestIO) ---------------------------------------------------------

    async def start_inline_stream(
        self, event: H3Event, options: SSEOptions, nursery: trio.Nursery
    ) -> SSEWriter:
        """Send the SSE head now and return the writer, for ``async with event.sse()``.

        ``nursery`` is the stream nursery ``event.sse()`` opened around its block: the
        stream's monitor task runs there, as in the callback form.
        """
        if self._response_started:
            raise RuntimeError("the response for this request was already started")
        if self.state.shutting_down.is_set() and event.method != "HEAD":
            # As for the callback form: a stream started now would only be cut, so
            # the handler gets a 503 and the client comes back (to another instance).
            raise _shutting_down()
        await self._consume_request_body(event)
        response = SSEResponse(event, options, None, ())
        if event.response_headers.raw:
            response.headers.raw.extend(event.response_headers.raw)
        writer = self._new_writer(event, options)
        self._inline = (writer, nursery)
        self.state.streams.add(writer)
        await self._send_head(response)
        writer._callback_task = trio.lowlevel.current_task()
        if event.method == "HEAD":
            writer._mark(CloseReason.COMPLETED)
            writer._scope.cancel()
            return writer
        nursery.start_soon(self._monitor, self._client_gone(writer), writer)
        if options.retry is not None:
            await writer._write(b"retry: %d\n\n" % options.retry)
        return writer

    async def finish_inline_stream(self, writer: SSEWriter, error: BaseException | None) -> None:
        """End the inline stream; ``error`` is what left the ``async with`` block, if anything."""
        assert self._inline is not None and self._inline[0] is writer
        nursery = self._inline[1]
        self._inline = None
        try:
            if error is not None and not isinstance(error, StreamClosed | trio.Cancelled):
                writer._mark(CloseReason.CALLBACK_ERROR)
            elif error is not None and isinstance(error, trio.Cancelled):
                writer._mark(CloseReason.SERVER_SHUTDOWN)
            writer._mark(CloseReason.COMPLETED)
            with trio.CancelScope(shield=True):
                if error is None or not isinstance(error, trio.Cancelled):
                    await self._finish_stream(writer)
                else:
                    self._broken = True
        finally:
            self.state.streams.discard(writer)
            # The monitor's work is done; event.sse() leaves the nursery next.
            nursery.cancel_scope.cancel()
            await writer._run_on_close(self.options.on_close_timeout)

    # -- plain streaming responses -------------------------------------------------------------

    async def _run_streaming(self, event: H3Event, response: StreamingResponse) -> None:
        if not await self._prepare_stream(event, response):
            return
        await self._send_head(response)
        content = response.content
        gone = False

        def on_gone() -> None:
            nonlocal gone
            gone = True
            producer.cancel()

        producer = trio.CancelScope()
        timeout = self.options.send_timeout
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._monitor, on_gone)
                with producer:
                    async for chunk in content:
                        if isinstance(chunk, str):
                            chunk = chunk.encode()
                        with trio.move_on_after(timeout if timeout is not None else math.inf) as s:
                            await self.send_body(chunk)
                        if s.cancelled_caught:
                            self._broken = True
                            break
                nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._broken = True
        except Exception:
            logger.exception("streaming response body failed on %s %s", event.method, event.path)
            # After the head, an error can only truncate: abort, so the client sees an
            # incomplete body rather than a clean end.
            self._broken = True
        finally:
            aclose = getattr(content, "aclose", None)
            if aclose is not None:
                with trio.CancelScope(shield=True):
                    try:
                        await aclose()
                    except Exception:
                        logger.exception("closing the streaming body failed")
        if gone:
            self._broken = True
        if not self._broken:
            await self.end_body()

    # -- WebSocket ------------------------------------------------------------------------------

    async def _upgrade_websocket(self, event: H3Event, response: WebSocketUpgrade) -> None:
        from ..websocket import WebSocketOptions, run_websocket

        assert self._request is not None
        options = self.options
        # Server-wide defaults, then what the route overrides.
        settings = dataclasses.replace(
            WebSocketOptions(
                ping_interval=options.ws_ping_interval,
                ping_timeout=options.ws_ping_timeout,
                max_message_size=options.ws_max_message_size,
            ),
            **response.options,
        )
        self._handed_off = True
        self._response_started = True
        await run_websocket(
            self.stream,
            self._request,
            bytes(self.h11.trailing_data[0]),
            event,
            response.handler,
            settings,
            self.state.shutting_down,
            options.stream_shutdown_grace,
        )

    # -- closing --------------------------------------------------------------------------------

    async def _close(self) -> None:
        with trio.CancelScope(shield=True):
            unread = self.h11.their_state in (h11.SEND_BODY, h11.ERROR)
            if (
                unread
                and not self._broken
                and isinstance(self.stream, trio.abc.HalfCloseableStream)
            ):
                # Lingering close, only when the client may still be sending (an
                # upload we refused, a bad head): stop sending, then drain briefly, so
                # it reads our error response instead of a connection reset.
                with trio.move_on_after(1.0):
                    try:
                        await self.stream.send_eof()
                        drained = 0
                        while drained < RECEIVE_SIZE * 4:
                            data = await self.stream.receive_some(RECEIVE_SIZE)
                            if not data:
                                break
                            drained += len(data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
            try:
                await trio.aclose_forcefully(self.stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
