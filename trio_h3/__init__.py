"""trio-h3: a small, composable HTTP framework for Trio, with SSE on structured concurrency.

::

    import trio
    from trio_h3 import H3, H3Event, serve

    app = H3()

    @app.get("/")
    async def index(event: H3Event) -> str:
        return "Hello from trio-h3!"

    trio.run(serve, app)

The map (data flows top to bottom; each layer knows only the ones below it)::

    cli/             trio-h3 run module:app: flags from ServeOptions' fields, logging,
                     --reload's supervisor; imports the app, serve()
    server/          the Trio shell: serve (listeners, signals, hard bounds), connection
                     (the request loop), exchange (one request), wire (the seam: I/O
                     and framing) with wire_h11 and wire_httptools (the only modules
                     that speak a parser; backends picks one), checks (pure), body,
                     streaming (one lifecycle for every stream, with its monitor task),
                     options, state
    testing/         TestClient: the real connection code over in-memory streams
    broadcast/       the fan-out hub: hub, subscription (buffers, policies, replay),
                     message (ids, pure), presence (members per room over processes),
                     memory and redis (lazy: coredis) backends
    websocket/       handshake, codes, deflate (pure), options, session (the handler's
                     API), _lifecycle (how a session ends), _adapter (trio-websocket's
                     and wsproto's internals)
    sse/             encoding, parser, response (pure); stream (the one state machine of
                     a stream's ending) and writer (Trio)
    app.py           H3: routes + middleware + hooks + mounts -> a Response (no Trio)
    middleware.py    the onion and its scoping, on the canonical path (no Trio)
    event.py         H3Event: the request as read, the response being built (no Trio)
    validation.py    validate= / validated_query(): any callable, its errors a 400 (no Trio)
    utils/           the h3 utilities, helpers that take an event: cookies, auth, proxy
                     (pure), forms (Trio: multipart parsing, uploads spooled to temp files)
    types.py         the shapes the layers agree on; RequestIO, the framework/server seam
    router.py  paths.py  response.py  datastructures.py  errors.py     the pure core

``import trio_h3`` loads neither Trio nor h11: names are imported on first use (PEP 562),
and the pure core (router, paths, response, errors, datastructures, validation,
sse.encoding, sse.parser, websocket.handshake) imports with both absent. App code is a guest:
``_guest.py`` is the one boundary that turns whatever it raises into a 500, the end of
its own stream or a 1011, and lets every other connection carry on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:
    from .app import H3, Route, RouteOptions
    from .broadcast import (
        Broadcast,
        BroadcastMessage,
        BroadcastStatistics,
        BroadcastUnavailable,
        Presence,
        SlowConsumerPolicy,
        Subscription,
    )
    from .datastructures import URL, Address, FormData, Headers, MultiMapping, QueryParams
    from .errors import ClientDisconnected, HTTPError, StreamClosed
    from .event import H3Event
    from .paths import safe_join
    from .response import (
        HTMLResponse,
        JSONResponse,
        PlainTextResponse,
        RedirectResponse,
        Response,
        StreamingResponse,
    )
    from .router import Match, Router
    from .server.options import ServeOptions
    from .server.serve import LifespanError, Server, serve
    from .sse import (
        CloseReason,
        ServerSentEvent,
        SSEEvent,
        SSEParser,
        SSEWriter,
        encode_comment,
        encode_event,
        encode_retry,
    )
    from .types import (
        ContentEncoder,
        Handler,
        Middleware,
        Mountable,
        Next,
        StreamCallback,
        WebSocketHandler,
    )
    from .utils.auth import basic_auth, basic_credentials, constant_time_equals
    from .utils.compress import compress
    from .utils.cookies import delete_cookie, set_cookie
    from .utils.cors import cors
    from .utils.files import FileResponse
    from .utils.forms import UploadFile
    from .utils.sessions import Session, Sessions
    from .utils.static import StaticFiles
    from .websocket import CloseCode, CloseFrame, WebSocket, WebSocketClosed, WebSocketOptions

__version__ = "0.1.0"

__all__ = [
    "H3",
    "URL",
    "Address",
    "Broadcast",
    "BroadcastMessage",
    "BroadcastStatistics",
    "BroadcastUnavailable",
    "ClientDisconnected",
    "CloseCode",
    "CloseFrame",
    "CloseReason",
    "ContentEncoder",
    "FileResponse",
    "FormData",
    "H3Event",
    "HTMLResponse",
    "HTTPError",
    "Handler",
    "Headers",
    "JSONResponse",
    "LifespanError",
    "Match",
    "Middleware",
    "Mountable",
    "MultiMapping",
    "Next",
    "PlainTextResponse",
    "Presence",
    "QueryParams",
    "RedirectResponse",
    "Response",
    "Route",
    "RouteOptions",
    "Router",
    "SSEEvent",
    "SSEParser",
    "SSEWriter",
    "ServeOptions",
    "Server",
    "ServerSentEvent",
    "Session",
    "Sessions",
    "SlowConsumerPolicy",
    "StaticFiles",
    "StreamCallback",
    "StreamClosed",
    "StreamingResponse",
    "Subscription",
    "UploadFile",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketHandler",
    "WebSocketOptions",
    "__version__",
    "basic_auth",
    "basic_credentials",
    "compress",
    "constant_time_equals",
    "cors",
    "delete_cookie",
    "encode_comment",
    "encode_event",
    "encode_retry",
    "safe_join",
    "serve",
    "set_cookie",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "H3": ".app",
        "Route": ".app",
        "RouteOptions": ".app",
        "Broadcast": ".broadcast",
        "BroadcastMessage": ".broadcast",
        "BroadcastStatistics": ".broadcast",
        "BroadcastUnavailable": ".broadcast",
        "Presence": ".broadcast",
        "SlowConsumerPolicy": ".broadcast",
        "Subscription": ".broadcast",
        "URL": ".datastructures",
        "Address": ".datastructures",
        "FormData": ".datastructures",
        "Headers": ".datastructures",
        "MultiMapping": ".datastructures",
        "QueryParams": ".datastructures",
        "ClientDisconnected": ".errors",
        "HTTPError": ".errors",
        "StreamClosed": ".errors",
        "H3Event": ".event",
        "safe_join": ".paths",
        "HTMLResponse": ".response",
        "JSONResponse": ".response",
        "PlainTextResponse": ".response",
        "RedirectResponse": ".response",
        "Response": ".response",
        "StreamingResponse": ".response",
        "Match": ".router",
        "Router": ".router",
        "ServeOptions": ".server.options",
        "LifespanError": ".server.serve",
        "Server": ".server.serve",
        "serve": ".server.serve",
        "CloseReason": ".sse.stream",
        "ServerSentEvent": ".sse.parser",
        "SSEEvent": ".sse.encoding",
        "SSEParser": ".sse.parser",
        "SSEWriter": ".sse.writer",
        "encode_comment": ".sse.encoding",
        "encode_event": ".sse.encoding",
        "encode_retry": ".sse.encoding",
        "Handler": ".types",
        "ContentEncoder": ".types",
        "Middleware": ".types",
        "Mountable": ".types",
        "Next": ".types",
        "StreamCallback": ".types",
        "WebSocketHandler": ".types",
        "basic_auth": ".utils.auth",
        "basic_credentials": ".utils.auth",
        "constant_time_equals": ".utils.auth",
        "delete_cookie": ".utils.cookies",
        "set_cookie": ".utils.cookies",
        "UploadFile": ".utils.forms",
        "FileResponse": ".utils.files",
        "compress": ".utils.compress",
        "cors": ".utils.cors",
        "Session": ".utils.sessions",
        "Sessions": ".utils.sessions",
        "StaticFiles": ".utils.static",
        "CloseCode": ".websocket.codes",
        "CloseFrame": ".websocket.session",
        "WebSocket": ".websocket.session",
        "WebSocketClosed": ".websocket.session",
        "WebSocketOptions": ".websocket.options",
    },
)
