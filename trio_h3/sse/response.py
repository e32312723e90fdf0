"""What a handler's ``event.start_sse()`` records, and the response it turns into. Pure.

The handler asks for a stream (:class:`SSERequest`); once it returns, the app turns the
request into an :class:`SSEResponse`, which middleware and ``on_response`` see like any
response (200 and the SSE headers) and which the server then runs as a stream. Misuse is
an error that names the fix, raised where the mistake shows.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import EllipsisType
from typing import TYPE_CHECKING, Any

from ..datastructures import Headers
from ..response import Response
from ..types import StreamCallback

if TYPE_CHECKING:
    from ..event import H3Event

__all__: list[str] = []

#: ``...`` in an option: take the server's default (``ServeOptions``).
DEFAULT: Any = ...

_SSE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    # Never cached, and not buffered by nginx (its X-Accel-Buffering convention).
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)


def _check_seconds(name: str, value: Any) -> None:
    if value is DEFAULT or value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds or None, not {value!r}")


@dataclass(slots=True)
class SSEOptions:
    """Per-stream options from ``event.start_sse(...)``; ``...`` means the server default."""

    retry: int | None = None
    ping_interval: float | EllipsisType | None = DEFAULT
    send_timeout: float | EllipsisType | None = DEFAULT
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
        _check_seconds("ping_interval", ping_interval)
        _check_seconds("send_timeout", send_timeout)
        extra = dict(headers or {})
        Headers(extra)  # a header that could not be sent is refused here
        return cls(retry, ping_interval, send_timeout, extra)


def check_callback(callback: object) -> None:
    """Refuse what cannot be a stream callback, at the line that registers it."""
    if not callable(callback):
        raise TypeError(f"a stream callback must be callable, not {type(callback).__name__}")
    target: Any = callback
    while hasattr(target, "func"):  # functools.partial
        target = target.func
    if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004 - an object with an async __call__
    ):
        return
    name = getattr(target, "__qualname__", repr(target))
    raise TypeError(
        f"the stream callback {name} is a plain function; it must be an async function "
        f"(async def {getattr(target, '__name__', 'callback')}(writer): ...)"
    )


@dataclass(slots=True)
class SSERequest:
    """What a handler asked for: the options, then a callback or the inline form."""

    options: SSEOptions
    callback: StreamCallback | None = None
    args: tuple[Any, ...] = ()
    #: True once ``async with event.sse()`` took over (the response went out from there).
    inline: bool = False


class SSEResponse(Response):
    """The response of an SSE route: the head is sent at once, then the stream runs."""

    streaming = True

    def __init__(self, event: H3Event, request: SSERequest) -> None:
        headers = Headers.from_raw(list(_SSE_HEADERS))
        for name, value in request.options.headers.items():
            headers.set(name, value)
        super().__init__(b"", 200, headers)
        self.event = event
        self.request = request


def sse_response(event: H3Event, request: SSERequest, value: Any) -> Response:
    """The response for a handler that called ``event.start_sse()`` and returned ``value``.

    A handler may still answer with a :class:`Response` of its own instead of streaming
    (an early 401, say). Anything else is a mistake, named here rather than an empty 200
    that would make EventSource reconnect in a loop. After the inline form the stream
    has been sent already; the response returned describes it (for ``on_response``).
    """
    if isinstance(value, Response):
        return value
    if value is not None:
        raise RuntimeError(
            f"the handler called event.start_sse() and then returned a "
            f"{type(value).__name__}; an SSE handler returns None (send data through the "
            "stream callback) or a Response to answer without streaming"
        )
    if request.callback is None and not request.inline:
        raise RuntimeError(
            "the handler called event.start_sse() but set no stream callback: call "
            "event.set_stream_callback(callback) before returning, or stream inline with "
            "'async with event.sse() as writer:'"
        )
    response = SSEResponse(event, request)
    if event.response_headers.raw:
        response.headers.raw.extend(event.response_headers.raw)
    return response
