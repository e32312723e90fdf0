"""In-memory, flow-controlled byte connections: what the test client uses for sockets.

Each direction has a bounded buffer like a socket's: ``send_all`` waits while the peer
has not read enough, so a client that stops reading stalls the server exactly as a full
kernel buffer would, and an abrupt ``close()`` is what a dropped connection looks like.
"""

from __future__ import annotations

import trio

__all__ = ["MemoryStream", "memory_connection"]


class _Pipe:
    """One direction of an in-memory connection, with a bounded buffer like a socket's."""

    def __init__(self, limit: int) -> None:
        self.buffer = bytearray()
        self.limit = limit
        self.eof = False  # the writer sent EOF or closed
        self.reader_closed = False  # the reader closed: writes fail
        self.lot = trio.lowlevel.ParkingLot()


class MemoryStream(trio.abc.HalfCloseableStream):
    """One end of an in-memory, flow-controlled byte connection.

    ``send_all`` blocks while the peer's unread bytes exceed the buffer limit, so a
    client that stops reading stalls the server exactly as a full socket would.
    """

    def __init__(self, incoming: _Pipe, outgoing: _Pipe) -> None:
        self._in = incoming
        self._out = outgoing
        self._closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` for the peer; wait while its buffer is full."""
        if self._closed:
            raise trio.ClosedResourceError("this end is closed")
        out = self._out
        if out.eof:
            raise trio.ClosedResourceError("EOF was already sent")
        await trio.lowlevel.checkpoint()
        view = memoryview(data)
        while view:
            while len(out.buffer) >= out.limit and not out.reader_closed and not self._closed:
                await out.lot.park()
            if self._closed:
                raise trio.ClosedResourceError("this end was closed during send_all")
            if out.reader_closed:
                raise trio.BrokenResourceError("the peer closed the connection")
            room = out.limit - len(out.buffer)
            out.buffer += view[:room]
            view = view[room:]
            out.lot.unpark_all()

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the peer's buffer has room."""
        while len(self._out.buffer) >= self._out.limit and not self._out.reader_closed:
            await self._out.lot.park()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to ``max_bytes`` of what the peer sent; ``b""`` after its EOF."""
        if self._closed:
            raise trio.ClosedResourceError("this end is closed")
        incoming = self._in
        await trio.lowlevel.checkpoint()
        while not incoming.buffer and not incoming.eof:
            await incoming.lot.park()
            if self._closed:
                raise trio.ClosedResourceError("this end was closed during receive_some")
        size = len(incoming.buffer) if max_bytes is None else min(max_bytes, len(incoming.buffer))
        data = bytes(incoming.buffer[:size])
        del incoming.buffer[:size]
        incoming.lot.unpark_all()
        return data

    async def send_eof(self) -> None:
        """Half-close: the peer reads EOF once it has read everything before it."""
        await trio.lowlevel.checkpoint()
        self._out.eof = True
        self._out.lot.unpark_all()

    async def aclose(self) -> None:
        """Close this end: the peer reads EOF and its writes fail."""
        self.close()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Synchronous close (what an abrupt disconnect looks like to the peer)."""
        if self._closed:
            return
        self._closed = True
        self._out.eof = True
        self._in.reader_closed = True
        self._in.buffer.clear()
        self._out.lot.unpark_all()
        self._in.lot.unpark_all()

    @property
    def unread(self) -> int:
        """Bytes this end has sent that the peer has not read yet."""
        return len(self._out.buffer)


def memory_connection(buffer_size: int = 64 * 1024) -> tuple[MemoryStream, MemoryStream]:
    """A connected ``(client, server)`` pair of :class:`MemoryStream` ends."""
    to_server, to_client = _Pipe(buffer_size), _Pipe(buffer_size)
    return MemoryStream(to_client, to_server), MemoryStream(to_server, to_client)
