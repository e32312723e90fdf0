"""What the connections of one server share: the app, options, shutdown and live streams."""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import TYPE_CHECKING

import trio

from .options import ServeOptions

if TYPE_CHECKING:
    from ..app import H3
    from ..sse import SSEWriter
    from .connection import HTTPConnection

__all__ = ["ServerState"]


class ServerState:
    """Per-server state. No module globals: two servers in one process never interfere."""

    def __init__(self, app: H3, options: ServeOptions) -> None:
        self.app = app
        self.options = options
        #: Set once a graceful shutdown begins; streams and WebSockets watch it.
        self.shutting_down = trio.Event()
        self.connections: set[HTTPConnection] = set()
        self.streams: set[SSEWriter] = set()
        #: Set once open streams were cancelled: a stream starting later ends at once.
        self.streams_cancelled = False
        self.server_header = (options.server_header or "").encode("latin-1")
        self._date_second = -1
        self._date_value = b""

    def date_header(self) -> bytes:
        """The ``Date`` header value, formatted once per second rather than per response."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date_value = formatdate(now, usegmt=True).encode("ascii")
        return self._date_value

    def statistics(self) -> dict[str, int]:
        """Open connections and open streams, for observability."""
        return {"connections": len(self.connections), "streams": len(self.streams)}
