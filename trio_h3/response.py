"""Responses and the rules that turn a handler's return value into one. Pure, no I/O.

=====================  ==============================================
handler returns        response
=====================  ==============================================
``str``                ``text/plain; charset=utf-8``
``dict`` / ``list``    ``application/json``
``bytes``              ``application/octet-stream``
``None``               204, or an empty body with ``event.status``
``Response``           as it is (``HTMLResponse``, ``JSONResponse``, ...)
=====================  ==============================================
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any

from .errors import HTTPError
from .headers import Headers

__all__ = [
    "HTMLResponse",
    "JSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Response",
    "StreamingResponse",
    "WebSocketUpgrade",
    "error_response",
    "json_dumps",
    "json_text",
    "to_response",
]

HeadersArg = Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None

_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"
_OCTET = b"application/octet-stream"
_HTML = b"text/html; charset=utf-8"


# One encoder for the process: json.dumps() with non-default options builds a new
# JSONEncoder on every call, which shows up per request.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def json_text(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as is."""
    return _JSON_ENCODER.encode(value)


def json_dumps(value: Any) -> bytes:
    """Compact JSON, UTF-8, non-ASCII kept as is (what every JSON client expects)."""
    return _JSON_ENCODER.encode(value).encode()


class Response:
    """A complete response: a body in memory, a status and headers.

    ``media_type`` sets ``Content-Type`` unless ``headers`` already carries one.
    Content-Length is computed by the server from the body.
    """

    media_type: str | None = None
    #: True for responses whose body is produced while it is being sent.
    streaming = False

    def __init__(
        self,
        body: bytes | str | None = b"",
        status: int = 200,
        headers: HeadersArg = None,
        media_type: str | None = None,
    ) -> None:
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = self.render(body)
        media = media_type if media_type is not None else self.media_type
        if media is not None and "content-type" not in self.headers:
            if media.startswith("text/") and "charset" not in media:
                media += "; charset=utf-8"
            self.headers.add("content-type", media)

    def render(self, body: Any) -> bytes:
        """Turn the constructor's ``body`` into bytes."""
        if body is None:
            return b""
        if isinstance(body, bytes):
            return body
        if isinstance(body, str):
            return body.encode()
        if isinstance(body, bytearray | memoryview):
            return bytes(body)
        raise TypeError(f"{type(self).__name__} body must be str or bytes, not {type(body)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status})"


class PlainTextResponse(Response):
    """A ``text/plain; charset=utf-8`` response."""

    media_type = "text/plain; charset=utf-8"


class HTMLResponse(Response):
    """A ``text/html; charset=utf-8`` response."""

    media_type = "text/html; charset=utf-8"


class JSONResponse(Response):
    """A JSON response; ``content`` is anything :func:`json.dumps` accepts."""

    media_type = "application/json"

    def render(self, body: Any) -> bytes:
        return json_dumps(body)


class RedirectResponse(Response):
    """A redirect to ``location`` (302 by default; 301, 303, 307 and 308 also make sense)."""

    def __init__(self, location: str, status: int = 302, headers: HeadersArg = None) -> None:
        super().__init__(b"", status, headers)
        self.headers.set("location", location)


class StreamingResponse(Response):
    """A response whose body comes from an async iterable of ``bytes`` or ``str`` chunks.

    Sent chunked on HTTP/1.1 (close-delimited on HTTP/1.0), each chunk flushed as it
    comes. If the client goes away the iteration is cancelled at its next checkpoint
    and the iterable's ``aclose()`` runs.
    """

    streaming = True

    def __init__(
        self,
        content: AsyncIterable[bytes | str],
        status: int = 200,
        headers: HeadersArg = None,
        media_type: str | None = None,
    ) -> None:
        super().__init__(b"", status, headers, media_type)
        self.content = content


def error_response(error: HTTPError, *, stack: str | None = None) -> Response:
    """The JSON response for ``error``: its status, headers and ``{status, message, data}``."""
    response = Response(error.to_json(stack=stack), error.status, error.headers)
    response.headers.add("content-type", "application/json")
    return response


def to_response(value: Any, status: int | None, extra_headers: Headers | None) -> Response:
    """Normalise what a handler returned; ``status`` is ``event.status`` if the handler set it.

    ``extra_headers`` (``event.response_headers``) are added to whatever comes out,
    so several ``Set-Cookie`` set on the event survive next to the response's own.
    """
    if isinstance(value, Response):
        response = value
    else:
        if value is None:
            body, media = b"", None
            if status is None:
                status = 204
        elif isinstance(value, str):
            body, media = value.encode(), _TEXT
        elif isinstance(value, dict | list):
            body, media = json_dumps(value), _JSON
        elif isinstance(value, bytes | bytearray | memoryview):
            body, media = bytes(value), _OCTET
        elif isinstance(value, bool | int | float):
            body, media = json_dumps(value), _JSON
        else:
            raise TypeError(
                f"a handler returned {type(value).__name__}; return str, bytes, dict, "
                "list, None or a Response"
            )
        response = Response.__new__(Response)
        response.status = status if status is not None else 200
        response.body = body
        raw: list[tuple[bytes, bytes]] = []
        if media is not None:
            raw.append((b"content-type", media))
        response.headers = Headers.from_raw(raw)
    if extra_headers is not None and extra_headers.raw:
        if response is value:
            # Never mutate a Response the app may reuse (a module-level constant, say).
            response = copy.copy(response)
            response.headers = response.headers.copy()
        own = response.headers
        if b"content-type" in (name for name, _ in extra_headers.raw):
            # A Content-Type the handler set on the event wins over the inferred one.
            own.delete("content-type")
        own.raw.extend(extra_headers.raw)
    return response


class WebSocketUpgrade(Response):
    """What a WebSocket route answers once middleware has passed the upgrade request.

    The connection sees it and hands the socket to the WebSocket handler; middleware
    and ``on_response`` see a 101 like any other response.
    """

    def __init__(self, handler: Any, options: dict[str, Any]) -> None:
        super().__init__(b"", 101)
        self.handler = handler
        self.options = options
