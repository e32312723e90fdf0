"""Server-Sent Events: the WHATWG encoder and parser (pure), the stream and its writer.

- :mod:`.encoding`: events to bytes (pure);
- :mod:`.parser`: bytes to events, as EventSource does (pure);
- :mod:`.response`: what ``event.start_sse()`` records and the response it becomes (pure);
- :mod:`.stream`: the one state machine of a stream's ending (Trio);
- :mod:`.writer`: :class:`SSEWriter`, what a stream callback holds (Trio).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .encoding import SSEEvent, encode_comment, encode_event, encode_retry
    from .parser import ServerSentEvent, SSEParser
    from .stream import CloseReason
    from .writer import SSEWriter

__all__ = [
    "CloseReason",
    "SSEEvent",
    "SSEParser",
    "SSEWriter",
    "ServerSentEvent",
    "encode_comment",
    "encode_event",
    "encode_retry",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SSEEvent": ".encoding",
        "encode_comment": ".encoding",
        "encode_event": ".encoding",
        "encode_retry": ".encoding",
        "SSEParser": ".parser",
        "ServerSentEvent": ".parser",
        "CloseReason": ".stream",
        "SSEWriter": ".writer",
    },
)
