"""The writer an SSE producer holds: events in, bytes to one client out.

A thin face over :class:`~trio_h3.sse.stream.Stream`, which owns the stream's state and
ending; the writer only encodes (:mod:`trio_h3.sse.encoding`) and asks.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..response import json_text
from .encoding import SSEEvent, encode_comment, encode_event
from .stream import CloseReason, Stream

if TYPE_CHECKING:
    import trio

    from ..event import H3Event

__all__ = ["SSEWriter"]


class SSEWriter:
    """Sends events to one client. Handed to the stream callback as its first argument.

    ``writer.event`` is the request's H3Event (params, query, headers, context) and
    ``writer.last_event_id`` its ``Last-Event-ID``. The stream ends when the callback
    returns or raises, when :meth:`close` is called, when the client goes away, when a
    write takes longer than ``send_timeout``, or on server shutdown; ``close_reason``
    says which, ``disconnected`` is set if the client left, and ``on_close`` hooks run
    exactly once afterwards.
    """

    __slots__ = ("_stream", "event", "shutting_down")

    def __init__(self, stream: Stream, event: H3Event, shutting_down: trio.Event) -> None:
        self._stream = stream
        self.event = event
        #: Set when the server starts a graceful shutdown: send a farewell, then return.
        self.shutting_down = shutting_down

    @property
    def last_event_id(self) -> str | None:
        """The ``Last-Event-ID`` the client sent on reconnect (None on a first connect)."""
        return self.event.headers.get("last-event-id")

    @property
    def closed(self) -> bool:
        """True once the stream has ended; nothing more will be written."""
        return not self._stream.is_open

    @property
    def close_reason(self) -> CloseReason | None:
        """Why the stream ended (None while it is open)."""
        return self._stream.reason

    @property
    def disconnected(self) -> trio.Event:
        """Set when the client went away (EOF, reset or a failed write)."""
        return self._stream.disconnected

    @property
    def ping_interval(self) -> float | None:
        """Seconds of idleness before a ``: ping`` comment (None: no heartbeat)."""
        return self._stream.ping_interval

    @property
    def send_timeout(self) -> float | None:
        """The deadline of every write, in seconds (None: unbounded)."""
        return self._stream.send_timeout

    @property
    def events_sent(self) -> int:
        """Events written so far."""
        return self._stream.events_sent

    @property
    def bytes_sent(self) -> int:
        """Body bytes written so far."""
        return self._stream.bytes_sent

    def send(self, event: SSEEvent | str) -> Coroutine[Any, Any, None]:
        """Send an event, or a ``str`` as a plain ``message`` event's data: ``await`` it.

        A bad field raises ValueError at once, naming the field. (A plain function that
        returns the write's coroutine rather than an ``async def``: one coroutine frame
        less on the path every event takes; awaiting it is all a caller does either way.)
        """
        data = encode_event(event) if isinstance(event, str) else event.encode()
        return self._stream.write(data, 1)

    async def send_json(self, obj: Any, *, event: str | None = None, id: str | None = None) -> None:
        """Send ``obj`` as JSON data (one line: JSON escapes every line break)."""
        await self._stream.write(encode_event(json_text(obj), event=event, id=id), 1)

    async def comment(self, text: str = "") -> None:
        """Send a comment line (ignored by EventSource; keeps proxies from timing out)."""
        await self._stream.write(encode_comment(text))

    def on_close(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` (sync or async) once the stream has ended, whatever the ending.

        It runs exactly once, shielded from cancellation and bounded by a deadline, so
        cleanup (releasing a subscription, stopping upstream work) cannot be skipped.
        ``writer.close_reason`` says why the stream ended.
        """
        self._stream.on_close(fn, *args)

    async def close(self) -> None:
        """End the stream now (reason ``closed_by_app``); a later send raises StreamClosed.

        The end of the body goes out at once. Called from another task than the callback
        (a hub dropping a subscriber, say), it also cancels the callback.
        """
        self._stream.end(CloseReason.CLOSED_BY_APP)
        await self._stream.finish()

    def __repr__(self) -> str:
        state = f"closed ({self.close_reason})" if self.closed else "open"
        return f"<SSEWriter {self.event.path} {state}, {self.events_sent} events>"
