"""The Server-Sent Events wire format, after the WHATWG HTML "Server-sent events" section. Pure.

- ``data`` is split on CR LF, CR and LF into one ``data:`` line each, so no data can
  forge another field or end the event early;
- ``event`` and ``id`` must not contain CR or LF, and ``id`` no NUL (the spec's parser
  ignores such an id): that input is a ValueError naming the field, never an injected
  line; a lone surrogate (not encodable as UTF-8) is a ValueError naming its field too;
- ``retry`` is a non-negative integer (milliseconds);
- a comment is a line starting with ``:`` (the heartbeat is ``: ping``).

Every byte of an event stream trio-h3 writes comes from here, ``retry:`` included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SSEEvent", "encode_comment", "encode_event", "encode_retry"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


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
        _check_retry(retry)
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


def encode_retry(milliseconds: int) -> bytes:
    """A block that only sets the client's reconnection delay (it dispatches no event)."""
    _check_retry(milliseconds)
    return b"retry: %d\n\n" % milliseconds


def _check_retry(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"SSE field 'retry' must be a non-negative int, not {value!r}")
