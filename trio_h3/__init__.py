"""trio-h3: a small, composable HTTP framework for Trio, with SSE on structured concurrency.

::

    from trio_h3 import H3, H3Event, serve

    app = H3()

    @app.get("/")
    async def index(event: H3Event) -> str:
        return "Hello from trio-h3!"

    trio.run(serve, app)
"""

from .app import H3, Middleware, Next, Route
from .broadcast import Broadcast
from .errors import ClientDisconnected, HTTPError, StreamClosed
from .event import URL, Address, H3Event, QueryParams
from .headers import Headers
from .response import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from .router import Router
from .server import ServeOptions, Server, serve
from .sse import CloseReason, SSEEvent, SSEWriter, encode_comment, encode_event
from .utils.cookies import delete_cookie, set_cookie
from .websocket import CloseFrame, WebSocket, WebSocketClosed, WebSocketOptions

__version__ = "0.1.0"

__all__ = [
    "H3",
    "URL",
    "Address",
    "Broadcast",
    "ClientDisconnected",
    "CloseFrame",
    "CloseReason",
    "H3Event",
    "HTMLResponse",
    "HTTPError",
    "Headers",
    "JSONResponse",
    "Middleware",
    "Next",
    "PlainTextResponse",
    "QueryParams",
    "RedirectResponse",
    "Response",
    "Route",
    "Router",
    "SSEEvent",
    "SSEWriter",
    "ServeOptions",
    "Server",
    "StreamClosed",
    "StreamingResponse",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketOptions",
    "__version__",
    "delete_cookie",
    "encode_comment",
    "encode_event",
    "serve",
    "set_cookie",
]
