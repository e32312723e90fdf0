"""WebSockets: the handshake check (pure), the options, and the session a handler holds.

- :mod:`.handshake`: RFC 6455 §4.2.1 checks of an upgrade request; the upgrade response;
- :mod:`.codes`: :class:`CloseCode` (RFC 6455 §7.4), which codes may be sent (pure);
- :mod:`.deflate`: permessage-deflate (RFC 7692): negotiation, bounded inflation (pure);
- :mod:`.options`: :class:`WebSocketOptions`, per route over server-wide defaults;
- :mod:`.session`: :class:`WebSocket`, run over trio-websocket once upgraded;
- :mod:`._lifecycle`: how a session ends, and its background tasks;
- :mod:`._adapter`: every use of trio-websocket's and wsproto's private API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .codes import CloseCode
    from .options import WebSocketOptions
    from .session import CloseFrame, WebSocket, WebSocketClosed

__all__ = ["CloseCode", "CloseFrame", "WebSocket", "WebSocketClosed", "WebSocketOptions"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CloseCode": ".codes",
        "WebSocketOptions": ".options",
        "CloseFrame": ".session",
        "WebSocket": ".session",
        "WebSocketClosed": ".session",
    },
)
