"""The client end of a WebSocket in a test, over trio-websocket."""

from __future__ import annotations

from typing import Any

import trio

from .memory import MemoryStream

__all__ = ["WebSocketTestSession"]


class WebSocketTestSession:
    """The client end of a WebSocket in a test.

    ``send``/``receive``/``ping``/``close`` speak the protocol; ``disconnect()`` drops
    the connection without a close frame (what a crashed browser does). Anything else
    is trio-websocket's ``WebSocketConnection`` (``closed``, ``subprotocol``, ...).
    """

    __test__ = False

    def __init__(self, ws: Any, stream: MemoryStream) -> None:
        self.ws = ws
        self._stream = stream

    async def send(self, message: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message."""
        await self.ws.send_message(message)

    async def receive(self) -> str | bytes:
        """The next message; raises ``trio_websocket.ConnectionClosed`` at the end."""
        return await self.ws.get_message()  # type: ignore[no-any-return]

    async def ping(self, payload: bytes | None = None) -> None:
        """Ping and wait for the pong."""
        await self.ws.ping(payload)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Run the closing handshake."""
        await self.ws.aclose(code, reason)

    async def disconnect(self) -> None:
        """Drop the connection abruptly: no close frame, the server sees EOF."""
        self._stream.close()
        await trio.lowlevel.checkpoint()

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server chose."""
        return self.ws.subprotocol  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ws, name)
