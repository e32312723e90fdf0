"""ServeOptions: every knob of the server, with the defaults a production server wants."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["ServeOptions"]


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """Options for :func:`trio_h3.serve`. Times are seconds, sizes bytes.

    Pass an instance, keyword arguments, or both (keywords win):
    ``serve(app, ServeOptions(port=8080), access_log=False)``.
    """

    host: str = "127.0.0.1"
    #: 0 binds any free port (the bound address is reported by ``nursery.start``).
    port: int = 3000
    backlog: int = 1024
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    #: Largest request head (request line + headers) before a 431.
    max_header_size: int = 16 * 1024
    #: Largest request body, Content-Length or chunked, before a 413.
    max_body_size: int = 1024 * 1024
    #: Idle time allowed between requests on a keep-alive connection.
    keep_alive_timeout: float = 5.0
    #: Time allowed to receive a whole request head (against slowloris), and to wait
    #: for each piece of a request body.
    request_head_timeout: float = 10.0
    #: In-flight requests get this long to finish on shutdown before being cancelled.
    shutdown_timeout: float = 10.0

    #: SSE: heartbeat comment after this much idle time (None: no heartbeat).
    sse_ping_interval: float | None = 15.0
    #: Every write to a streaming client must complete within this (None: unbounded).
    send_timeout: float | None = 30.0
    #: On shutdown, streams see ``writer.shutting_down`` and get this long to say
    #: goodbye before they are cancelled (reason ``server_shutdown``).
    stream_shutdown_grace: float = 1.0
    #: Deadline for each ``writer.on_close`` hook.
    on_close_timeout: float = 5.0

    #: WebSocket defaults (a route can override them with ``app.ws(path, ...)``).
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float = 20.0
    ws_max_message_size: int = 1024 * 1024

    #: One line per request on logger ``trio_h3.access``.
    access_log: bool = True
    #: Value of the ``Server`` header (None leaves it out).
    server_header: str | None = "trio-h3"

    def __post_init__(self) -> None:
        for name in ("max_header_size", "max_body_size", "backlog"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("keep_alive_timeout", "request_head_timeout", "shutdown_timeout"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")
        for name in ("sse_ping_interval", "send_timeout", "ws_ping_interval"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None, got {value!r}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0-65535, got {self.port!r}")

    @classmethod
    def build(cls, options: ServeOptions | None = None, **overrides: Any) -> ServeOptions:
        """``options`` with ``overrides`` applied; unknown names are a TypeError."""
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown ServeOptions: {', '.join(sorted(unknown))}")
        base = options if options is not None else cls()
        return replace(base, **overrides) if overrides else base
