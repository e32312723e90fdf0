"""The client side of HTTP/1.1 over one in-memory stream: an h11 client connection.

What httpx would do over a socket, reduced to what a test needs: send one request, read
the response head, then its body event by event.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

import h11
import trio

from .memory import MemoryStream

__all__: list[str] = []


class ClientConnection:
    """An h11 client over one in-memory stream (what httpx would do over a socket)."""

    def __init__(self, stream: MemoryStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def send_request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterable[bytes] | None,
    ) -> None:
        """Send a request: in one write, or a streamed body chunk by chunk as it comes.

        A server that answers early and closes (a 413 before the whole body) stops the
        sending quietly: its response is still there to read, as with a socket.
        """
        data = self.h11.send(h11.Request(method=method, target=target, headers=headers)) or b""
        if body is None or isinstance(body, bytes):
            if body:
                data += self.h11.send(h11.Data(data=body)) or b""
            data += self.h11.send(h11.EndOfMessage()) or b""
            await self._send(data)
            return
        try:
            if not await self._send(data):
                return
            async for chunk in body:
                if chunk and not await self._send(self.h11.send(h11.Data(data=chunk)) or b""):
                    return
            await self._send(self.h11.send(h11.EndOfMessage()) or b"")
        finally:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _send(self, data: bytes) -> bool:
        try:
            await self.stream.send_all(data)
        except trio.BrokenResourceError:
            return False  # the server closed its end: read what it answered
        return True

    async def next_event(self) -> Any:
        """The next h11 event from the server, reading as much as it takes."""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.stream.receive_some(65536))
                continue
            return event

    async def read_head(self) -> h11.Response:
        """The final response head (interim 1xx responses are skipped)."""
        while True:
            event = await self.next_event()
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                return event
            raise ConnectionError(f"expected a response, got {event!r}")
