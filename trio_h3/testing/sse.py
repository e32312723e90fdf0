"""The client side of a Server-Sent Events response: events as an EventSource sees them.

The bytes are parsed by the WHATWG algorithm in :mod:`trio_h3.sse.parser`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from ..sse.parser import ServerSentEvent, SSEParser
from .responses import StreamingTestResponse

__all__ = ["SSEStream"]


class SSEStream:
    """The client side of an SSE response in a test: events as they arrive."""

    __test__ = False

    def __init__(self, response: StreamingTestResponse) -> None:
        self.response = response
        self.status = response.status
        self.headers = response.headers
        self._parser = SSEParser()
        self._pending: list[ServerSentEvent] = []
        self.raw = bytearray()
        self.ended = False

    @property
    def comments(self) -> list[str]:
        """Comment lines received so far (heartbeats are ``"ping"``)."""
        return self._parser.comments

    @property
    def last_event_id(self) -> str | None:
        """The last event id seen, as EventSource would send it on reconnect."""
        return self._parser.last_event_id

    @property
    def retry(self) -> int | None:
        """The last ``retry:`` value received."""
        return self._parser.retry

    async def _pump(self) -> bool:
        chunk = await self.response.receive_chunk()
        if not chunk:
            self.ended = True
            return False
        self.raw += chunk
        self._pending.extend(self._parser.feed(chunk))
        return True

    async def next_event(self) -> ServerSentEvent:
        """The next event; raises ``trio.EndOfChannel`` when the stream has ended."""
        while not self._pending:
            if self.ended or not await self._pump():
                raise trio.EndOfChannel("the SSE stream ended")
        return self._pending.pop(0)

    async def wait_comment(self, count: int = 1) -> str:
        """Read until at least ``count`` comments have arrived; return the last one."""
        while len(self.comments) < count:
            if self.ended or not await self._pump():
                raise trio.EndOfChannel("the SSE stream ended")
        return self.comments[-1]

    async def read_until_end(self) -> list[ServerSentEvent]:
        """Every remaining event until the server ends the stream."""
        return [event async for event in self]

    def __aiter__(self) -> AsyncIterator[ServerSentEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ServerSentEvent]:
        while True:
            try:
                yield await self.next_event()
            except trio.EndOfChannel:
                return

    async def disconnect(self) -> None:
        """Leave, as a browser closing the tab would."""
        await self.response.disconnect()
