"""The WHATWG "event stream interpretation" algorithm, fed bytes incrementally. Pure.

What an EventSource does with the bytes of a ``text/event-stream`` response: the
counterpart of :mod:`trio_h3.sse.encoding`, used by the test client and by the
property tests that check every encoded event parses back to itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["SSEParser", "ServerSentEvent"]


@dataclass(frozen=True)
class ServerSentEvent:
    """An event as an EventSource would dispatch it."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """``data`` parsed as JSON."""
        return json.loads(self.data)


class SSEParser:
    """The WHATWG "event stream interpretation" algorithm, fed bytes incrementally.

    Pure (no Trio): ``feed(bytes)`` returns the events dispatched by those bytes;
    comments are collected in ``comments``; ``last_event_id`` and ``retry`` follow
    the spec's rules (an ``id`` with NUL is ignored, ``retry`` only if all digits).
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._decoder_pending = b""
        self._data: list[str] = []
        self._event = ""
        self._first = True
        self.last_event_id: str | None = None
        self._id_seen = False
        self.retry: int | None = None
        self.comments: list[str] = []

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse ``chunk`` and return the events it completed."""
        raw = self._decoder_pending + chunk
        try:
            text = raw.decode("utf-8")
            self._decoder_pending = b""
        except UnicodeDecodeError as exc:
            if exc.start >= len(raw) - 3:
                text = raw[: exc.start].decode("utf-8")
                self._decoder_pending = raw[exc.start :]
            else:
                text = raw.decode("utf-8", "replace")
                self._decoder_pending = b""
        if self._first and text:
            self._first = False
            text = text.removeprefix("\ufeff")
        self._buffer += text
        events: list[ServerSentEvent] = []
        while True:
            index = self._find_line_end()
            if index is None:
                break
            line, self._buffer = self._split_line(index)
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        return events

    def _find_line_end(self) -> int | None:
        for i, char in enumerate(self._buffer):
            if char == "\n":
                return i
            if char == "\r":
                # A CR at the very end may be the first half of CR LF: wait for more.
                if i == len(self._buffer) - 1:
                    return None
                return i
        return None

    def _split_line(self, index: int) -> tuple[str, str]:
        line = self._buffer[:index]
        rest_start = index + 1
        if self._buffer[index] == "\r" and self._buffer[index + 1 : index + 2] == "\n":
            rest_start += 1
        return line, self._buffer[rest_start:]

    def _process_line(self, line: str) -> ServerSentEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments.append(line[1:].removeprefix(" "))
            return None
        name, sep, value = line.partition(":")
        if sep:
            value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
                self._id_seen = True
        elif name == "retry":
            if value.isdigit() and value.isascii():
                self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent(
            data="\n".join(data),
            event=event or "message",
            id=self.last_event_id,
            retry=self.retry,
        )
