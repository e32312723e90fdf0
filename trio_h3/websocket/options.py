"""WebSocket settings: per route (``app.ws(path, ...)``) over the server-wide defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from .handshake import AllowedOrigins, OriginRules

__all__ = ["WebSocketOptions"]


@dataclass(frozen=True)
class WebSocketOptions:
    """Per-route WebSocket settings (server-wide defaults live in ``ServeOptions``).

    ``ping_interval``: seconds between keepalive pings, ``None`` disables them.
    ``ping_timeout``: no pong within this many seconds closes the connection (1011).
    ``max_message_size``: a larger incoming message closes the connection with 1009.
    ``message_queue_size``: received messages buffered ahead of the handler; while the
    queue is full trio-websocket stops reading, so the client's pings wait too.
    ``close_timeout``: how long a closing handshake (and a handler noticing a close) may
    take before the socket is closed (and the handler cancelled) regardless.
    ``send_timeout``: every write to the client must complete within this many seconds
    (``None``: unbounded); a peer that stops reading is dropped (1006) instead of
    holding the session, and its memory, forever. The server-wide default is
    ``ServeOptions.send_timeout``, the bound SSE writes have too.
    ``origins``: the ``Origin`` values a browser may connect from (exact origins, ``"*"``,
    callables; see :class:`~trio_h3.websocket.handshake.AllowedOrigins` for the rule and
    why); anything else is refused with 403 before the handler runs. ``None``: any.
    ``require_origin``: also refuse a request without ``Origin`` (only browsers then).
    ``compression``: ``"deflate"`` accepts permessage-deflate (RFC 7692) when the client
    offers it (browsers do), ``None`` declines it. Incoming messages are inflated no
    further than ``max_message_size``.
    """

    ping_interval: float | None = 20.0
    ping_timeout: float = 20.0
    max_message_size: int = 1 << 20
    message_queue_size: int = 1
    close_timeout: float = 10.0
    send_timeout: float | None = 30.0
    origins: OriginRules | AllowedOrigins | None = None
    require_origin: bool = False
    compression: Literal["deflate"] | None = "deflate"

    def __post_init__(self) -> None:
        if self.ping_interval is not None and not self.ping_interval > 0:
            raise ValueError(f"ping_interval must be > 0 or None, got {self.ping_interval!r}")
        if not self.ping_timeout > 0:
            raise ValueError(f"ping_timeout must be > 0, got {self.ping_timeout!r}")
        if self.max_message_size < 1:
            raise ValueError(f"max_message_size must be >= 1, got {self.max_message_size!r}")
        if self.message_queue_size < 0:
            raise ValueError(f"message_queue_size must be >= 0, got {self.message_queue_size!r}")
        if not self.close_timeout > 0:
            raise ValueError(f"close_timeout must be > 0, got {self.close_timeout!r}")
        if self.compression not in ("deflate", None):
            raise ValueError(f"compression must be 'deflate' or None, got {self.compression!r}")
        if self.send_timeout is not None and not self.send_timeout > 0:
            raise ValueError(f"send_timeout must be > 0 or None, got {self.send_timeout!r}")


def check_route_options(options: dict[str, Any]) -> dict[str, Any]:
    """Refuse an unknown or invalid ``app.ws(...)`` option at registration.

    Returns the options ready for each upgrade: ``origins`` compiled once, here, so a
    malformed origin is a ValueError when the route is declared, not at a request.
    """
    unknown = set(options) - {f.name for f in dataclasses.fields(WebSocketOptions)}
    if unknown:
        raise TypeError(f"unknown WebSocket route options: {', '.join(sorted(unknown))}")
    checked = dict(options)
    if checked.get("origins") is not None:
        checked["origins"] = AllowedOrigins.of(checked["origins"])
    dataclasses.replace(WebSocketOptions(), **checked)
    return checked
