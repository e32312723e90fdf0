"""Writes and reads straight through a trio socket, for the per-message hot paths.

``trio.SocketStream.send_all`` and ``receive_some`` wrap every call in context managers
(conflict detection, error translation) that cost a few microseconds each: a fifth of
the cost of a small SSE event or WebSocket message. trio-h3 already serialises its
writes, so on plain TCP it calls the socket itself and translates errors the way
SocketStream does: a closed socket is ClosedResourceError, any other OSError is
BrokenResourceError. TLS and in-memory streams keep the stream API.
"""

from __future__ import annotations

import errno
import os

import trio

__all__ = ["raw_socket", "receive_some", "send_all", "sendfile", "translate", "try_write"]

_RECEIVE_SIZE = 64 * 1024


def raw_socket(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    """The trio socket under a plain ``SocketStream``, else None."""
    return stream.socket if type(stream) is trio.SocketStream else None


def translate(exc: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
    """The stream error ``SocketStream`` would raise for ``exc``."""
    if exc.errno == errno.EBADF:
        return trio.ClosedResourceError("the socket was closed")
    return trio.BrokenResourceError(f"the peer went away: {exc}")


def try_write(fd: int, data: bytes | bytearray | memoryview) -> int:
    """How much of ``data`` the socket ``fd`` took at once, without waiting: 0 when its
    buffer is full. One ``write(2)``: the usual response or message fits the buffer, and
    then needs neither trio's socket wrappers nor a deadline (a write that completes at
    once cannot outlive one). The caller makes trio's checkpoint around it (a cancel
    point before, a schedule point after) and sends what is left with :func:`send_all`.
    """
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0
    except OSError as exc:
        raise translate(exc) from exc


async def send_all(sock: trio.socket.SocketType, data: bytes | bytearray | memoryview) -> None:
    """Send every byte of ``data`` (like ``SocketStream.send_all``)."""
    try:
        sent = await sock.send(data)
        if sent < len(data):
            view = memoryview(data)[sent:]
            while view:
                view = view[await sock.send(view) :]
    except OSError as exc:
        raise translate(exc) from exc


async def receive_some(sock: trio.socket.SocketType, max_bytes: int | None = None) -> bytes:
    """Up to ``max_bytes`` bytes, ``b""`` at EOF (like ``SocketStream.receive_some``)."""
    try:
        return await sock.recv(_RECEIVE_SIZE if max_bytes is None else max_bytes)
    except OSError as exc:
        raise translate(exc) from exc


async def sendfile(sock: trio.socket.SocketType, fd: int, offset: int, count: int) -> None:
    """Send ``count`` bytes of file ``fd`` from ``offset`` with ``os.sendfile`` (zero-copy).

    The socket is non-blocking (trio's), so a full send buffer is ``BlockingIOError``:
    wait until it is writable. After every call that moved bytes the task checkpoints,
    so a fast local client cannot keep the loop to itself for a whole file. A file that
    ends before ``count`` bytes (truncated while being sent) is an OSError: the framing
    the head promised cannot be kept.
    """
    out = sock.fileno()
    while count:
        try:
            sent = os.sendfile(out, fd, offset, count)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            continue
        except OSError as exc:
            if exc.errno in (errno.EBADF, errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                raise translate(exc) from exc
            raise
        if sent == 0:
            raise OSError(errno.EIO, f"the file ended {count} bytes early (truncated?)")
        offset += sent
        count -= sent
        await trio.lowlevel.checkpoint()
