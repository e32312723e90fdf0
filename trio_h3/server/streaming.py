"""Streamed responses: one lifecycle for SSE (callback and inline forms) and StreamingResponse.

:func:`open_stream` is the whole of it: send the head, start the stream's *monitor*, run
the producer inside the stream's cancel scope, then end the body and run the ``on_close``
hooks, whatever happened (:mod:`trio_h3.sse.stream` decides what each ending means).
The forms differ only in who the producer is: the callback (:func:`run_sse`), the
``async with event.sse()`` block (:func:`inline_stream`), the body iterator
(:func:`run_body`), or a file (:func:`run_file`: a download gets the same disconnect
detection and send deadline as a stream).

The monitor is the one helper task of a stream. It owns the receive side of the socket:
EOF or a reset means the client left, and it ends the stream at once (no polling). It
also keeps the stream's two clocks, so a stream costs one task, not three: a ``: ping``
comment once the stream has been idle ``ping_interval``, and dropping a client whose
write has taken longer than ``send_timeout`` (the deadline lives here, not around each
write, so a write pays no cancel scope). Reading is interrupted only when a clock is
due; a cancelled receive loses no data.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import EllipsisType
from typing import TYPE_CHECKING

import trio

from .._groups import leaves
from ..errors import HTTPError, StreamClosed
from ..response import Response, StreamingResponse, error_response
from ..sse.encoding import encode_comment, encode_retry
from ..sse.response import SSEOptions, SSEResponse
from ..sse.stream import CloseReason, Stream
from ..sse.writer import SSEWriter
from ..types import ContentEncoder, FilePart
from ..utils.files import BodyPlan, FileResponse
from .wire import Framing, Wire

if TYPE_CHECKING:
    from ..event import H3Event
    from .exchange import Exchange

__all__: list[str] = []

logger = logging.getLogger("trio_h3")

_PING = encode_comment("ping")


def _only_cancelled(exc: BaseException) -> bool:
    return all(isinstance(leaf, trio.Cancelled) for leaf in leaves(exc))


def _ended_under(stream: Stream, exc: BaseException) -> bool:
    """``exc`` is the producer noticing that its stream ended (not an error of its own)."""
    return isinstance(exc, StreamClosed) and not stream.is_open


def _cancel_reason(ex: Exchange, exc: BaseException) -> CloseReason:
    if not _only_cancelled(exc):
        return CloseReason.CALLBACK_ERROR
    if ex.state.shutting_down.is_set():
        return CloseReason.SERVER_SHUTDOWN
    return CloseReason.CANCELLED


async def _producer_failed(ex: Exchange, stream: Stream, exc: BaseException, what: str) -> None:
    """Contain what left a callback or body producer; re-raise a real cancellation."""
    if _ended_under(stream, exc):
        return
    try:
        await ex.state.guest.contain(exc, what)
    except trio.Cancelled:
        # Ours (the stream's scope: its reason is recorded already) or from outside.
        stream.end(_cancel_reason(ex, exc))
        raise
    stream.end(CloseReason.CALLBACK_ERROR)


def _stream_settings(ex: Exchange, options: SSEOptions | None) -> tuple[float | None, float | None]:
    server = ex.options
    if options is None:
        return None, server.send_timeout
    ping = options.ping_interval
    timeout = options.send_timeout
    return (
        server.sse_ping_interval if isinstance(ping, EllipsisType) else ping,
        server.send_timeout if isinstance(timeout, EllipsisType) else timeout,
    )


class _Coded:
    """The wire seen through a content coding: each write coded and flushed as a whole,
    so an SSE event or a body chunk reaches the client at once (RFC 9110 §8.4)."""

    __slots__ = ("_encoder", "_wire")

    def __init__(self, wire: Wire, encoder: ContentEncoder) -> None:
        self._wire = wire
        self._encoder = encoder

    async def send_body(self, data: bytes) -> None:
        coded = self._encoder.encode(data)
        if coded:
            await self._wire.send_body(coded)

    async def send_file(self, part: FilePart) -> None:
        raise TypeError("a file body is not coded on the fly (see compress())")

    async def end_body(self) -> None:
        if self._wire.framing is not Framing.NONE and not self._wire.broken:
            tail = self._encoder.finish()
            if tail:
                await self._wire.send_body(tail)
        await self._wire.end_body()

    async def abort(self) -> None:
        await self._wire.abort()


@asynccontextmanager
async def open_stream(
    ex: Exchange, response: Response, options: SSEOptions | None
) -> AsyncIterator[Stream]:
    """Run one streamed response around the producer (see the module docstring).

    ``options`` are the SSE stream's (None for a ``StreamingResponse``). The stream is
    yielded open, or already ended (the client left before the head went out; HEAD or a
    status without content, where the head is all; the server is past its grace period).
    """
    state = ex.state
    ping, timeout = _stream_settings(ex, options)
    # The one check a content coding costs a stream that has none.
    transport = ex.wire if response.encoder is None else _Coded(ex.wire, response.encoder)
    stream = Stream(
        transport,
        state.guest,
        ping_interval=ping,
        send_timeout=timeout,
        on_close_timeout=ex.options.on_close_timeout,
        abort_on_error=options is None,
    )
    state.streams.add(stream)
    error: BaseException | None = None
    try:
        if state.streams_cancelled:
            stream.end(CloseReason.SERVER_SHUTDOWN)
        try:
            await ex.send_head(response)
            if not ex.wire.body_allowed(response.status):
                # HEAD, 204, 205, 304: the head is the whole answer; no producer runs (a
                # health check must not pin a task).
                stream.end(CloseReason.COMPLETED)
            elif options is not None and options.retry is not None and stream.is_open:
                await stream.write(encode_retry(options.retry))
        except (trio.BrokenResourceError, trio.ClosedResourceError, StreamClosed):
            stream.end(CloseReason.CLIENT_DISCONNECTED)
        async with trio.open_nursery() as nursery:
            if stream.is_open:
                nursery.start_soon(_monitor, ex, stream)
            try:
                with stream.scope:
                    yield stream
            except BaseException as exc:
                # Kept, not raised, inside the nursery: raised there it would come out
                # wrapped in an ExceptionGroup.
                error = exc
            # End the body before stopping the monitor: the client (and the next request
            # on this connection) need not wait for the task to wind down.
            await stream.finish()
            nursery.cancel_scope.cancel()
    finally:
        state.streams.discard(stream)
        await stream.finish()
        await stream.run_on_close()
    if error is not None:
        raise error


async def _read_body_first(ex: Exchange) -> None:
    # From the head on, the monitor owns the receive side: the request body must be in
    # memory before (event.body() keeps working inside the stream).
    await ex.event.body()


async def _body_read_or_refused(ex: Exchange) -> bool:
    """Read the request body first; False when it was refused (and answered) instead."""
    try:
        await _read_body_first(ex)
    except HTTPError as error:
        await ex.send_full(error_response(error))
        return False
    return True


async def run_sse(ex: Exchange, response: SSEResponse) -> None:
    """The callback form: the head at once, then ``callback(writer, *args)``."""
    if not await _body_read_or_refused(ex):
        return
    request = response.request
    event = ex.event
    async with open_stream(ex, response, request.options) as stream:
        if stream.is_open and request.callback is not None:
            writer = SSEWriter(stream, event, ex.state.shutting_down)
            stream.set_producer()
            name = getattr(request.callback, "__qualname__", repr(request.callback))
            try:
                await request.callback(writer, *request.args)
            except BaseException as exc:
                await _producer_failed(
                    ex, stream, exc, f"SSE stream callback {name} on {event.method} {event.path}"
                )


@asynccontextmanager
async def inline_stream(ex: Exchange, event: H3Event) -> AsyncIterator[SSEWriter]:
    """The inline form, ``async with event.sse() as writer:`` in the handler."""
    refusal = ex.shutdown_refusal()
    if refusal is not None:
        # As for the callback form: a stream started now would only be cut, so the
        # handler gets a 503 and the client comes back (to another instance).
        raise refusal
    if ex.wire.response_started:
        raise RuntimeError("the response for this request was already started")
    await _read_body_first(ex)
    request = event.sse_request
    assert request is not None
    response = SSEResponse(event, request)
    if event.response_headers.raw:
        response.headers.raw.extend(event.response_headers.raw)
    # The head goes out now, from inside the handler: what middleware adds as it goes
    # out (a session's cookie, a content coding) is added here. A hook's error is the
    # handler's (a 500).
    event.run_head_hooks(response)
    async with open_stream(ex, response, request.options) as stream:
        stream.set_producer()
        try:
            yield SSEWriter(stream, event, ex.state.shutting_down)
        except BaseException as exc:
            if _ended_under(stream, exc):
                return
            if _only_cancelled(exc) and stream.scope.cancel_called:
                raise  # ours: the reason is recorded; the stream's scope absorbs it
            # The handler's own error, or an enclosing cancel scope (a timeout around the
            # block): an honest ending, then it goes on up to the handler's caller.
            stream.end(_cancel_reason(ex, exc))
            raise


async def run_body(ex: Exchange, response: StreamingResponse) -> None:
    """A ``StreamingResponse``: its iterable's chunks, each flushed as it comes."""
    if not await _body_read_or_refused(ex):
        return
    content = response.content
    event = ex.event
    try:
        async with open_stream(ex, response, None) as stream:
            if stream.is_open:
                stream.set_producer()
                try:
                    async for chunk in content:
                        await stream.write(chunk.encode() if isinstance(chunk, str) else chunk)
                except BaseException as exc:
                    await _producer_failed(
                        ex, stream, exc, f"streaming response body of {event.method} {event.path}"
                    )
    finally:
        aclose = getattr(content, "aclose", None)
        if aclose is not None:
            with trio.CancelScope(shield=True):
                try:
                    await aclose()
                except BaseException as exc:
                    await ex.state.guest.contain(exc, "closing a streaming response body")


#: Bytes per write of a file body: the send deadline applies to each (a client that
#: takes ``send_timeout`` to read 256 KiB has stopped reading).
FILE_CHUNK = 256 * 1024


def _open_file(path: str) -> tuple[int, os.stat_result]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return fd, os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise


def _same_file(a: os.stat_result | None, b: os.stat_result) -> bool:
    return a is not None and (a.st_ino, a.st_size, a.st_mtime_ns) == (
        b.st_ino,
        b.st_size,
        b.st_mtime_ns,
    )


async def run_file(ex: Exchange, response: FileResponse) -> None:
    """A ``FileResponse``: open the file, check it is the one the head was decided for,
    then send its plan (``os.sendfile`` on plain TCP, chunks read in a thread else)."""
    try:
        await _read_body_first(ex)
    except HTTPError as error:
        await ex.send_full(error_response(error))
        return
    event = ex.event
    fd = response.take_fd()
    try:
        if not (response.plan and ex.wire.body_allowed(response.status)):
            pass  # HEAD, 304 and friends: the head is all, the file is not read
        elif fd is None:
            try:
                fd, current = await ex.run_sync(_open_file, response.path)
                if not _same_file(response.stat_result, current):
                    # Changed (or replaced) since it was stat'ed: decide again, so the
                    # head describes the bytes that will go out (as they are: a coding
                    # chosen for the old head is dropped).
                    response.decide(current, event.method, event.headers.get)
                    if response.encoder is not None:
                        response.encoder = None
                        response.headers.delete("content-encoding")
            except OSError:
                await ex.send_full(error_response(HTTPError(404, "Not Found")))
                return
            except HTTPError as error:
                await ex.send_full(error_response(error))
                return
        small = _plan_size(response.plan) <= FILE_CHUNK
        if small and response.encoder is None and not ex.state.streams_cancelled:
            await _send_small_file(ex, response, fd)
            return
        async with open_stream(ex, response, None) as stream:
            if stream.is_open and fd is not None:
                stream.set_producer()
                try:
                    await _send_plan(ex, stream, fd, response)
                except BaseException as exc:
                    await _producer_failed(
                        ex, stream, exc, f"file body of {event.method} {event.path}"
                    )
    finally:
        if fd is not None:
            os.close(fd)


def _plan_size(plan: BodyPlan) -> int:
    return sum(len(item) if isinstance(item, bytes) else item[1] for item in plan)


async def _send_small_file(ex: Exchange, response: FileResponse, fd: int | None) -> None:
    """A body that goes out in one write (or none: HEAD, 304), without a stream.

    A stream's monitor task and nursery would cost more than the whole send (a 4 KiB
    file, a 304): the one write gets the send deadline as a cancel scope instead, and a
    failed or late write aborts the connection, as a stream's would.
    """
    wire = ex.wire
    timeout = ex.options.send_timeout
    with trio.move_on_after(math.inf if timeout is None else timeout):
        try:
            await ex.send_head(response)
            if fd is not None:
                for item in response.plan:
                    if isinstance(item, bytes):
                        await wire.send_body(item)
                    elif wire.can_sendfile:
                        await wire.send_file(FilePart(fd, *item))
                    else:
                        offset, count = item
                        data = await ex.run_sync(os.pread, fd, count, offset)
                        if len(data) != count:
                            raise OSError(f"{ex.event.path}: the file ended early")
                        await wire.send_body(data)
            await wire.end_body()
            return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except (OSError, ValueError) as exc:
            logger.error("the file body of %s was cut short: %s", ex.describe(), exc)
    await wire.abort()


async def _send_plan(ex: Exchange, stream: Stream, fd: int, response: FileResponse) -> None:
    # A coded body passes through the encoder: read, never sendfile.
    sendfile = ex.wire.can_sendfile and response.encoder is None
    plan = response.plan
    for item in plan:
        if isinstance(item, bytes):
            await stream.write(item)
            continue
        offset, count = item
        while count:
            size = min(count, FILE_CHUNK)
            if sendfile:
                await stream.write_file(FilePart(fd, offset, size))
            else:
                # TLS (or the test client's memory stream): the bytes must pass through
                # us; read in a worker thread, never on the event loop.
                data = await ex.run_sync(os.pread, fd, size, offset)
                if not data:
                    raise OSError(f"{ex.event.path}: the file ended {count} bytes early")
                await stream.write(data)
                size = len(data)
            offset += size
            count -= size


async def _monitor(ex: Exchange, stream: Stream) -> None:
    """The one helper task of a stream (see the module docstring)."""
    wire = ex.wire
    ping = stream.ping_interval
    timeout = stream.send_timeout
    while True:
        wake = math.inf
        # Once the stream has ended the clocks stop, but the receive side is still
        # watched until the stream's nursery ends (the end of the body may still be on
        # its way out).
        if stream.is_open and (ping or timeout):
            now = trio.current_time()
            started = stream.write_started
            if started is not None:
                if timeout is not None:
                    if now >= started + timeout:
                        await _drop_slow_client(ex, stream)
                        return
                    wake = started + timeout
                if ping is not None:
                    # Look again within ping_interval: the write usually ends at once,
                    # and the heartbeat must not wait for the deadline.
                    wake = min(wake, now + ping)
            elif ping is not None and now >= stream.last_write + ping:
                if not await _heartbeat(ex, stream):
                    return
                continue
            else:
                if ping is not None:
                    wake = stream.last_write + ping
                if timeout is not None:
                    wake = min(wake, now + timeout)
        with trio.move_on_at(wake):
            if not await wire.receive_while_streaming():
                break
    stream.end(CloseReason.CLIENT_DISCONNECTED)


async def _heartbeat(ex: Exchange, stream: Stream) -> bool:
    """Send ``: ping``; False when the stream is over (ended, or the client dropped)."""
    timeout = stream.send_timeout
    with trio.move_on_after(timeout if timeout is not None else math.inf) as scope:
        try:
            await stream.write(_PING)
        except StreamClosed:
            return False
    if scope.cancelled_caught:
        await _drop_slow_client(ex, stream)
        return False
    return True


async def _drop_slow_client(ex: Exchange, stream: Stream) -> None:
    stream.end(CloseReason.SEND_TIMEOUT)
    # Closing the socket also wakes a writer blocked outside the producer's scope.
    await ex.wire.abort()
