"""Responses as the test client reads them: whole (TestResponse) or streamed."""

from __future__ import annotations

import json as _json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import h11
import trio

from ..datastructures import Headers
from .http import ClientConnection

__all__ = ["StreamingTestResponse", "TestResponse"]


@dataclass
class TestResponse:
    """A complete response as the test client read it."""

    __test__ = False  # not a pytest test class

    status: int
    headers: Headers
    content: bytes
    http_version: str = "1.1"
    reason: str = ""

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(self.content)

    # Familiar spelling for people coming from httpx / Starlette.
    @property
    def status_code(self) -> int:
        """Alias of ``status``."""
        return self.status


class StreamingTestResponse:
    """A response whose body is read incrementally (``client.stream(...)``)."""

    __test__ = False

    def __init__(self, connection: ClientConnection, head: h11.Response) -> None:
        self._connection = connection
        self.status = head.status_code
        self.headers = Headers.from_raw(list(head.headers))
        self.http_version = head.http_version.decode()
        self.complete = False

    async def receive_chunk(self) -> bytes:
        """The next piece of body as it arrived; ``b""`` at the end of the body."""
        if self.complete:
            return b""
        try:
            event = await self._connection.next_event()
        except h11.RemoteProtocolError as exc:
            raise ConnectionError(f"the response body was cut short: {exc}") from exc
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            self.complete = True
            return b""
        raise ConnectionError(f"the response body ended without its end marker: {event!r}")

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Body chunks until the end of the body."""
        while chunk := await self.receive_chunk():
            yield chunk

    async def read(self) -> bytes:
        """The rest of the body."""
        return b"".join([chunk async for chunk in self.iter_bytes()])

    async def disconnect(self) -> None:
        """Drop the connection, as a browser tab closing would."""
        self._connection.stream.close()
        await trio.lowlevel.checkpoint()
