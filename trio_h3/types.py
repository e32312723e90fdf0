"""The shapes the layers agree on: handlers, middleware, and the server's side of a request.

Pure: type aliases and protocols only. :class:`RequestIO` is the seam between the
framework (``event``, ``app``: no Trio) and the server (``server/``: Trio): an event
reads its body, starts an inline stream or runs a sync handler only through it, which
is also what lets the test client drive the same code over memory streams.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

if TYPE_CHECKING:
    from .datastructures import FormData
    from .event import H3Event
    from .sse.writer import SSEWriter
    from .websocket.session import WebSocket

__all__ = [
    "ContentEncoder",
    "Handler",
    "Middleware",
    "Mountable",
    "Next",
    "StreamCallback",
    "WebSocketHandler",
]

R = TypeVar("R")

#: A route handler: ``async def handler(event) -> value`` (a plain ``def`` runs in a thread).
Handler = Callable[["H3Event"], Any]
#: What middleware calls to run the rest of the chain.
Next = Callable[[], Awaitable[Any]]
#: Onion middleware: ``async def mw(event, next) -> value``.
Middleware = Callable[["H3Event", Next], Awaitable[Any]]
#: An SSE stream callback: ``async def cb(writer, *args) -> None``.
StreamCallback = Callable[..., Awaitable[None]]
#: A WebSocket route handler: ``async def handler(ws) -> None``.
WebSocketHandler = Callable[["WebSocket"], Awaitable[None]]


class ContentEncoder(Protocol):
    """A content coding applied write by write: what ``compress()`` hangs on a streamed
    response (``response.encoder``), and the server runs on each of its writes."""

    def encode(self, data: bytes) -> bytes:
        """``data`` coded and flushed: all of it decodable by the client now."""
        ...

    def finish(self) -> bytes:
        """The end of the coded stream."""
        ...


class Mountable(Protocol):
    """What ``app.mount(prefix, thing)`` serves besides an ``H3`` app: ``StaticFiles``,
    or anything with this one method.

    ``handle_segments(event, segments)`` answers ``event`` for the canonical segments
    left after the prefix (``event.path`` is still the whole canonical path) and returns
    what a handler would: a value or a Response, or raises :class:`~trio_h3.HTTPError`.
    A 404 it raises is a *miss*: when more specific routes of the app take the path for
    other methods, the client gets their 405 instead, as if the mount were not there.
    """

    async def handle_segments(
        self, event: H3Event, segments: Sequence[str], path: str | None = None
    ) -> Any:
        """Answer ``event`` for ``segments`` (see the class docstring)."""
        ...


class RequestHead(NamedTuple):
    """A request head as the parser read it (the wire's event, whatever the parser).

    ``headers`` are ``(lowercased name, value)`` byte pairs in the order received. A
    named tuple: one is made per request, and a tuple is the cheapest immutable record.
    """

    method: bytes
    target: bytes
    http_version: bytes
    headers: list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class FormLimits:
    """The limits one ``event.form()`` call parses a form under (see its docstring).

    Each default names its precedent; crossing a count or size limit is a 413.
    """

    #: Text fields (Starlette's ``max_fields``, Django's DATA_UPLOAD_MAX_NUMBER_FIELDS,
    #: PHP's max_input_vars: 1000).
    max_fields: int = 1000
    #: Files (Django's DATA_UPLOAD_MAX_NUMBER_FILES: 100). Each file past
    #: ``spool_max_size`` holds a temp file and a descriptor until the request ends,
    #: and a process often may open only 1024.
    max_files: int = 100
    #: Bytes of one text field, which is held in memory (Starlette's ``max_part_size``:
    #: 1 MiB). Files are spooled and bounded only by the body limit.
    max_field_size: int = 1024 * 1024
    #: Bytes of a file kept in memory before it is spooled to a temp file (Starlette's
    #: SpooledTemporaryFile: 1 MiB; Django keeps 2.5 MiB).
    spool_max_size: int = 1024 * 1024
    #: Where the temp files go (None: ``tempfile.gettempdir()``, so ``TMPDIR``).
    spool_dir: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_fields", "max_files", "max_field_size", "spool_max_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")


@dataclass(frozen=True, slots=True)
class FilePart:
    """``count`` bytes of the open file ``fd`` from ``offset``: a piece of a file body.

    What a file response hands the wire instead of bytes, so the body can go out with
    ``os.sendfile`` (its ``len`` is what h11's framing counts).
    """

    fd: int
    offset: int
    count: int

    def __len__(self) -> int:
        return self.count


class RequestIO(Protocol):
    """What the server lends an :class:`~trio_h3.H3Event` for one request."""

    async def receive_body(self) -> bytes:
        """The next chunk of the request body; ``b""`` once it is complete.

        Enforces the body limit (413), the body deadlines (408) and framing (400).
        """
        ...

    def inline_stream(self, event: H3Event) -> AbstractAsyncContextManager[SSEWriter]:
        """The inline SSE form: send the head on entry, end the stream on exit."""
        ...

    async def run_sync(self, fn: Callable[..., R], *args: Any) -> R:
        """Run a blocking ``fn(*args)`` in the server's worker threads (bounded)."""
        ...

    async def read_multipart(self, event: H3Event, limits: FormLimits) -> FormData:
        """Parse the ``multipart/form-data`` body of ``event`` as it arrives.

        Files past ``limits.spool_max_size`` go to temp files, which the server removes
        when the request ends, however it ends. 400 for a malformed body, 413 past a
        limit.
        """
        ...
