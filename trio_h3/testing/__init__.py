"""Testing an app: the real connection code over in-memory, flow-controlled streams.

Every request goes through the server's connection code exactly as a socket would: h11
framing, limits, timeouts, keep-alive, streaming and disconnects are all exercised.
Nothing sleeps on the wall clock, so under ``trio.testing.MockClock(autojump_threshold=0)``
an hour-long stream takes milliseconds::

    async def test_counter():
        async with TestClient(app) as client:
            async with client.sse("/events") as stream:
                event = await stream.next_event()
                assert event.data == "0"

The modules, one concept each: ``memory`` (the in-memory streams), ``http`` (the h11
client connection), ``request`` (URLs, parameters, headers, redirects), ``encoding``
(bodies as httpx encodes them), ``cookies`` (the jar), ``responses``, ``sse`` (the
client side of an event stream), ``websocket`` (the client end of a WebSocket) and
``client`` (:class:`TestClient`). The arguments are httpx's, so a test moves between
httpx and the test client without surprises.
"""

from __future__ import annotations

from ..sse.parser import ServerSentEvent, SSEParser
from .client import RequestArgs, TestClient
from .cookies import Cookie, Cookies
from .memory import MemoryStream, memory_connection
from .request import RequestURL, TestRequest
from .responses import HTTPStatusError, StreamingTestResponse, TestResponse, TooManyRedirects
from .sse import SSEStream
from .websocket import WebSocketTestSession

__all__ = [
    "Cookie",
    "Cookies",
    "HTTPStatusError",
    "MemoryStream",
    "RequestArgs",
    "RequestURL",
    "SSEParser",
    "SSEStream",
    "ServerSentEvent",
    "StreamingTestResponse",
    "TestClient",
    "TestRequest",
    "TestResponse",
    "TooManyRedirects",
    "WebSocketTestSession",
    "memory_connection",
]
