"""The client side of HTTP/1.1 over one in-memory stream: an h11 client connection.

What httpx would do over a socket, reduced to what a test needs: send one request, read
the response head, then its body event by event.
"""

from __future__ import annotations

from typing import Any

import h11

from .memory import MemoryStream

__all__ = ["ClientConnection"]


class ClientConnection:
    """An h11 client over one in-memory stream (what httpx would do over a socket)."""

    def __init__(self, stream: MemoryStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def send_request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> None:
        """Send a whole request (head, body and end) in one write."""
        data = self.h11.send(h11.Request(method=method, target=target, headers=headers)) or b""
        if body:
            data += self.h11.send(h11.Data(data=body)) or b""
        data += self.h11.send(h11.EndOfMessage()) or b""
        await self.stream.send_all(data)

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
