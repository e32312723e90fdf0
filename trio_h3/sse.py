"""Server-Sent Events: the wire encoder (pure) and the writer a stream callback uses.

Wire format, after the WHATWG HTML "Server-sent events" section:

- ``data`` is split on CR LF, CR and LF into one ``data:`` line each, so no data can
  forge another field or end the event early;
- ``event`` and ``id`` must not contain CR or LF, and ``id`` no NUL (the spec's
  parser ignores such an id) -- that input is a ValueError naming the field, never
  an injected line;
- ``retry`` is a non-negative integer (milliseconds);
- a comment is a line starting with ``:`` (the heartbeat is ``: ping``).

The writer is the Trio side. It never owns the socket: the connection lends it a
:class:`StreamTransport` and runs the stream lifecycle (see ``server/connection.py``).
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import trio

from .errors import ClientDisconnected, StreamClosed
from .headers import Headers
from .response import Response, json_text

if TYPE_CHECKING:
    from .event import H3Event

__all__ = [
    "CloseReason",
    "SSEEvent",
    "SSEOptions",
    "SSEWriter",
    "encode_comment",
    "encode_event",
    "sse_response",
]

logger = logging.getLogger("trio_h3")

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class CloseReason(enum.StrEnum):
    """Why a stream ended. Recorded once, by whichever ending happened first."""

    COMPLETED = "completed"
    CLOSED_BY_APP = "closed_by_app"
    CLIENT_DISCONNECTED = "client_disconnected"
    CALLBACK_ERROR = "callback_error"
    SEND_TIMEOUT = "send_timeout"
    SERVER_SHUTDOWN = "server_shutdown"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One event: ``data`` (required), and optional ``event`` type, ``id`` and ``retry``."""

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    def encode(self) -> bytes:
        """The event on the wire (see :func:`encode_event`)."""
        return encode_event(self.data, event=self.event, id=self.id, retry=self.retry)


def _check_field(name: str, value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"SSE field {name!r} must be str, not {type(value).__name__}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"SSE field {name!r} must not contain CR or LF: {value!r}")


def encode_event(
    data: str,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> bytes:
    """Encode one event as bytes ending in a blank line.

    >>> encode_event("a\\nb", event="x")
    b'event: x\\ndata: a\\ndata: b\\n\\n'
    """
    if (
        event is None
        and id is None
        and retry is None
        and type(data) is str
        and "\n" not in data
        and "\r" not in data
    ):
        # The common case (one line of data, nothing else), without the general
        # path's list building: this runs once per event sent.
        try:
            return f"data: {data}\n\n".encode()
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"SSE field 'data' is not valid Unicode (lone surrogate): {data!r}"
            ) from exc
    parts: list[str] = []
    if event is not None:
        _check_field("event", event)
        parts.append(f"event: {event}\n")
    if id is not None:
        _check_field("id", id)
        if "\x00" in id:
            raise ValueError(f"SSE field 'id' must not contain NUL: {id!r}")
        parts.append(f"id: {id}\n")
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise ValueError(f"SSE field 'retry' must be a non-negative int, not {retry!r}")
        parts.append(f"retry: {retry}\n")
    if not isinstance(data, str):
        raise TypeError(f"SSE field 'data' must be str, not {type(data).__name__}")
    if "\r" in data or "\n" in data:
        for line in _LINE_BREAK.split(data):
            parts.append(f"data: {line}\n")
    else:
        parts.append(f"data: {data}\n")
    parts.append("\n")
    try:
        return "".join(parts).encode()
    except UnicodeEncodeError:
        # Only a lone surrogate gets here: name the field it came from.
        for name, value in (("event", event), ("id", id), ("data", data)):
            if value is not None:
                try:
                    value.encode()
                except UnicodeEncodeError as exc:
                    raise ValueError(
                        f"SSE field {name!r} is not valid Unicode (lone surrogate): {value!r}"
                    ) from exc
        raise


def encode_comment(text: str = "") -> bytes:
    """Encode a comment; each line of ``text`` becomes its own ``:`` line."""
    if not isinstance(text, str):
        raise TypeError(f"SSE comment must be str, not {type(text).__name__}")
    lines = _LINE_BREAK.split(text) if ("\r" in text or "\n" in text) else [text]
    return "".join(f": {line}\n" if line else ":\n" for line in lines).encode() + b"\n"


# -- options and the response ---------------------------------------------------------

_DEFAULT: Any = ...


@dataclass(slots=True)
class SSEOptions:
    """Per-stream options from ``event.start_sse(...)``; ``...`` means the server default."""

    retry: int | None = None
    ping_interval: float | None = _DEFAULT
    send_timeout: float | None = _DEFAULT
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        retry: int | None,
        ping_interval: Any,
        send_timeout: Any,
        headers: Mapping[str, str] | None,
    ) -> SSEOptions:
        """Validate and build the options (a bad value is a ValueError naming it)."""
        if retry is not None and (
            isinstance(retry, bool) or not isinstance(retry, int) or retry < 0
        ):
            raise ValueError(f"retry must be a non-negative int (milliseconds), not {retry!r}")
        for name, value in (("ping_interval", ping_interval), ("send_timeout", send_timeout)):
            if (
                value is not _DEFAULT
                and value is not None
                and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0)
            ):
                raise ValueError(
                    f"{name} must be a positive number of seconds or None, not {value!r}"
                )
        return cls(retry, ping_interval, send_timeout, dict(headers or {}))


_SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class SSEResponse(Response):
    """The response of an SSE route: the head is sent at once, then the stream runs.

    Middleware and ``on_response`` see it like any response (status 200, the SSE
    headers); the connection recognises it and runs the stream callback.
    """

    streaming = True

    def __init__(
        self,
        event: H3Event,
        options: SSEOptions,
        callback: Callable[..., Awaitable[None]] | None,
        args: tuple[Any, ...],
    ) -> None:
        headers = Headers.from_raw(list(_SSE_HEADERS))
        for name, value in options.headers.items():
            headers.set(name, value)
        super().__init__(b"", 200, headers)
        self.event = event
        self.options = options
        self.callback = callback
        self.args = args


def sse_response(event: H3Event, value: Response | None) -> Response:
    """The response for a handler that called ``event.start_sse()``.

    A handler may still return a Response (an early 401, say) instead of streaming.
    """
    assert event._sse is not None
    if isinstance(value, Response):
        return value
    response = SSEResponse(event, event._sse, event._stream_callback, event._stream_args)
    if event.response_headers.raw:
        response.headers.raw.extend(event.response_headers.raw)
    return response


# -- the writer -----------------------------------------------------------------------


class StreamTransport(Protocol):
    """What the connection lends a writer: framed writes to the client."""

    async def send_body(self, data: bytes) -> None:
        """Write ``data`` as one body chunk (BrokenResourceError if the client is gone)."""
        ...

    async def end_body(self) -> None:
        """Write the end of the body (the terminating chunk on HTTP/1.1)."""
        ...


class SSEWriter:
    """Sends events to one client. Handed to the stream callback as its first argument.

    ``writer.event`` is the request's H3Event (params, query, headers, context) and
    ``writer.last_event_id`` its ``Last-Event-ID``. The stream ends when the callback
    returns or raises, when :meth:`close` is called, when the client goes away, when a
    write takes longer than ``send_timeout``, or on server shutdown; ``close_reason``
    says which, ``disconnected`` is set if the client left, and ``on_close`` hooks run
    exactly once afterwards.
    """

    def __init__(
        self,
        event: H3Event,
        transport: StreamTransport,
        *,
        ping_interval: float | None,
        send_timeout: float | None,
        shutting_down: trio.Event,
    ) -> None:
        self.event = event
        self.ping_interval = ping_interval
        self.send_timeout = send_timeout
        #: Set when the server starts a graceful shutdown: send a farewell, then return.
        self.shutting_down = shutting_down
        # The ``disconnected`` event, made on first access (most streams never ask).
        self._disconnected: trio.Event | None = None
        self._gone = False
        self.close_reason: CloseReason | None = None
        self.events_sent = 0
        self.bytes_sent = 0
        self._transport = transport
        # Cancelled to end the callback: by disconnect, send timeout or shutdown.
        self._scope = trio.CancelScope()
        self._closed = False
        self._ended = False
        self._writing = False
        # Created on first contention only: most streams never have two writers.
        self._lot: trio.lowlevel.ParkingLot | None = None
        # Tasks parked in _wait_turn: a plain int, because ParkingLot.__bool__ is a
        # Python-level call on the per-event path.
        self._waiting = 0
        self._on_close: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._callback_task: trio.lowlevel.Task | None = None
        self._clock = trio.lowlevel.current_clock()
        #: When the last write started (trio clock), for idle heartbeats.
        self.last_write = self._clock.current_time()
        #: When the write in progress started, or None: watched by the watchdog.
        self.write_started: float | None = None

    # -- what the callback sees ------------------------------------------------------

    @property
    def last_event_id(self) -> str | None:
        """The ``Last-Event-ID`` the client sent on reconnect (None on a first connect)."""
        return self.event.headers.get("last-event-id")

    @property
    def disconnected(self) -> trio.Event:
        """Set when the client went away (EOF, reset or a failed write)."""
        if self._disconnected is None:
            self._disconnected = trio.Event()
            if self._gone:
                self._disconnected.set()
        return self._disconnected

    def _set_disconnected(self) -> None:
        self._gone = True
        if self._disconnected is not None:
            self._disconnected.set()

    @property
    def closed(self) -> bool:
        """True once the stream has ended; nothing more will be written."""
        return self._closed

    def send(self, event: SSEEvent | str) -> Coroutine[Any, Any, None]:
        """Send an event, or a ``str`` as a plain ``message`` event's data: ``await`` it.

        A bad field raises ValueError at once. (A plain function returning the write's
        coroutine rather than an ``async def``: one coroutine frame less on the path
        every event takes; awaiting it is all a caller does either way.)
        """
        data = encode_event(event) if isinstance(event, str) else event.encode()
        return self._write(data, 1)

    async def send_json(self, obj: Any, *, event: str | None = None, id: str | None = None) -> None:
        """Send ``obj`` as JSON data (one line: JSON escapes every line break)."""
        data = encode_event(json_text(obj), event=event, id=id)
        await self._write(data, 1)

    async def comment(self, text: str = "") -> None:
        """Send a comment line (ignored by EventSource; keeps proxies from timing out)."""
        await self._write(encode_comment(text))

    def on_close(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` (sync or async) once the stream has ended, whatever the ending.

        It runs exactly once, shielded from cancellation and bounded by a deadline, so
        cleanup (releasing a subscription, stopping upstream work) cannot be skipped.
        ``writer.close_reason`` says why the stream ended.
        """
        self._on_close.append((fn, args))

    async def close(self) -> None:
        """End the stream now (reason ``closed_by_app``); a later send raises StreamClosed.

        Called from another task than the callback (a hub dropping a subscriber, say),
        it also cancels the callback.
        """
        if self._closed:
            return
        self._mark(CloseReason.CLOSED_BY_APP)
        current = trio.lowlevel.current_task()
        if self._callback_task is not None and current is not self._callback_task:
            self._scope.cancel()
        await self._end()

    # -- used by the connection --------------------------------------------------------

    def _mark(self, reason: CloseReason) -> bool:
        """Record the ending once; True if this call was the one that ended the stream."""
        if self._closed:
            return False
        self._closed = True
        self.close_reason = reason
        if reason is CloseReason.CLIENT_DISCONNECTED:
            self._set_disconnected()
        return True

    def _cancel(self, reason: CloseReason) -> None:
        """End the stream for ``reason`` and cancel the callback."""
        self._mark(reason)
        if reason is CloseReason.CLIENT_DISCONNECTED:
            self._set_disconnected()
        self._scope.cancel()

    async def _wait_turn(self) -> None:
        if self._lot is None:
            self._lot = trio.lowlevel.ParkingLot()
        self._waiting += 1
        try:
            await self._lot.park()
        finally:
            self._waiting -= 1

    async def _write(self, data: bytes, events: int = 0) -> None:
        if self._closed:
            raise StreamClosed(self.close_reason or "closed")
        # A tiny lock without a checkpoint on the uncontended path: the callback and the
        # heartbeat share the socket, and a trio.Lock costs two scheduler round trips
        # per event on the hot path.
        while self._writing:
            await self._wait_turn()
            if self._closed:
                raise StreamClosed(self.close_reason or "closed")
        self._writing = True
        # One clock reading per write, through the clock object itself (cheaper than
        # trio.current_time()); the start of the write doubles as "last activity".
        self.write_started = started = self._clock.current_time()
        try:
            await self._transport.send_body(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if self.close_reason is CloseReason.SEND_TIMEOUT:
                raise StreamClosed(CloseReason.SEND_TIMEOUT) from None
            self._cancel(CloseReason.CLIENT_DISCONNECTED)
            raise ClientDisconnected() from None
        finally:
            self._writing = False
            self.write_started = None
            if self._waiting:
                self._lot.unpark()  # type: ignore[union-attr]  # set when _waiting
        self.last_write = started
        self.bytes_sent += len(data)
        self.events_sent += events

    async def _end(self) -> None:
        """Write the end of the body once, if the connection can still take it."""
        if self._ended:
            return
        self._ended = True
        while self._writing:
            await self._wait_turn()
        self._writing = True
        try:
            with trio.move_on_after(self.send_timeout if self.send_timeout else float("inf")):
                await self._transport.end_body()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._set_disconnected()
        finally:
            self._writing = False
            if self._waiting:
                self._lot.unpark()  # type: ignore[union-attr]  # set when _waiting

    async def _run_on_close(self, deadline: float) -> None:
        hooks, self._on_close = self._on_close, []
        for fn, args in hooks:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + deadline
                try:
                    result = fn(*args)
                    if hasattr(result, "__await__"):
                        await result
                except Exception:
                    logger.exception("SSE on_close hook %r failed", fn)
            if scope.cancelled_caught:
                logger.warning("SSE on_close hook %r exceeded its %.1fs deadline", fn, deadline)

    def __repr__(self) -> str:
        state = f"closed ({self.close_reason})" if self._closed else "open"
        return f"<SSEWriter {self.event.path} {state}, {self.events_sent} events>"
