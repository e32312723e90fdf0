"""Responses and the rules that turn a handler's return value into one. Pure, no I/O.

=====================  ==============================================
handler returns        response
=====================  ==============================================
``str``                ``text/plain; charset=utf-8``
``dict`` / ``list``    ``application/json`` (see :func:`json_dumps`)
``bytes``              ``application/octet-stream``
``None``               204, or an empty body with ``event.status``
``Response``           as it is (``HTMLResponse``, ``JSONResponse``, ...)
=====================  ==============================================

A status outside 200-599, a header that could not be sent, or a ``Content-Length`` that
contradicts the body is a ValueError where it is set, so the handler's own line is in
the traceback, rather than a connection dropped later.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import decimal
import enum
import json
import uuid
from collections.abc import AsyncIterable, Iterable, Mapping
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from .datastructures import Headers
from .errors import HTTPError

if TYPE_CHECKING:
    from .event import H3Event
    from .types import ContentEncoder

__all__ = [
    "HTMLResponse",
    "JSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Response",
    "StreamingResponse",
]

HeadersArg = Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None

_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"
_OCTET = b"application/octet-stream"


def check_status(status: object) -> int:
    """``status`` if it is a final response status (200-599), else a ValueError.

    1xx statuses are interim (RFC 9110 §15.2) and never the answer to a handler; the
    server sends ``100 Continue`` and ``101 Switching Protocols`` itself.
    """
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise ValueError(f"a response status must be an int from 200 to 599, not {status!r}")
    return status


def _json_default(value: Any) -> Any:
    # The types FastAPI's jsonable_encoder handles, encoded the way it encodes them, so
    # a handler moved over from FastAPI returns the same JSON.
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, decimal.Decimal):
        # FastAPI's decimal_encoder: an integral Decimal as int, any other as float.
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes):
        return value.decode()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):  # pydantic v2 models
        return model_dump(mode="json")
    raise TypeError(
        f"a value of type {type(value).__module__}.{type(value).__qualname__} is not JSON "
        "serialisable; convert it (or return a Response)"
    )


# One encoder for the process: json.dumps() with non-default options builds a new
# JSONEncoder on every call, which shows up per request.
_JSON_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=_json_default, allow_nan=False
)


def _c_encoder() -> Any:
    """The C encoder ``_JSON_ENCODER.encode`` ends up in, made once (``encode`` builds a
    new one, and a closure, per call); None where it is missing or differs (PyPy...)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None

    def encode(value: Any) -> str:
        # A fresh markers dict per call: circular structures are still a ValueError.
        iterencode = make({}, _json_default, json.encoder.encode_basestring, None, ":", ",",
                          False, False, False)  # fmt: skip
        return "".join(iterencode(value, 0))

    try:
        probe = {"a": [1, 2.5, None, True, "é\n"], "b": {"c": "d"}}
        if encode(probe) != _JSON_ENCODER.encode(probe):
            return None
    except Exception:
        return None
    return encode


_ENCODE = _c_encoder() or _JSON_ENCODER.encode


def json_text(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as is; dates, UUIDs, Decimals, enums, dataclasses,
    sets and pydantic models are encoded as FastAPI encodes them. NaN and infinities are a
    ValueError (they are not JSON, RFC 8259 §6)."""
    return _JSON_ENCODER.encode(value) if isinstance(value, str) else _ENCODE(value)


def json_dumps(value: Any) -> bytes:
    """:func:`json_text` as UTF-8 bytes (what every JSON client expects)."""
    return json_text(value).encode()


class Response:
    """A complete response: a body in memory, a status and headers.

    ``media_type`` sets ``Content-Type`` unless ``headers`` already carries one. The
    server computes ``Content-Length`` from the body; one given in ``headers`` must agree.
    """

    media_type: str | None = None
    #: True for responses whose body is produced while it is being sent.
    streaming = False
    #: False for a response that must look at the request (or the disk) before its
    #: status and head exist (``FileResponse``): then :meth:`prepare` does.
    prepared = True
    #: The content coding the server applies to each write of a streamed body, as
    #: ``compress()`` set it (None: the bytes go out as written).
    encoder: ContentEncoder | None = None

    def __init__(
        self,
        body: Any = b"",
        status: int = 200,
        headers: HeadersArg = None,
        media_type: str | None = None,
    ) -> None:
        self.status = check_status(status)
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = self.render(body)
        media = media_type if media_type is not None else self.media_type
        if media is not None and "content-type" not in self.headers:
            if media.startswith("text/") and "charset" not in media:
                media += "; charset=utf-8"
            self.headers.add("content-type", media)
        declared = self.headers.get("content-length")
        if declared is not None and not self.streaming and int(declared) != len(self.body):
            raise ValueError(
                f"Content-Length {declared} does not match the body ({len(self.body)} bytes); "
                "leave it out, the server sets it"
            )

    async def prepare(self, event: H3Event) -> Response:
        """Settle status and head for ``event`` (the app awaits it while ``prepared`` is
        False; a plain response is ready as built)."""
        return self

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
    """A JSON response; ``content`` is anything :func:`json_dumps` accepts."""

    media_type = "application/json"

    def __init__(
        self,
        content: Any = None,
        status: int = 200,
        headers: HeadersArg = None,
        media_type: str | None = None,
    ) -> None:
        super().__init__(content, status, headers, media_type)

    def render(self, body: Any) -> bytes:
        """``body`` as compact JSON."""
        return json_dumps(body)


class RedirectResponse(Response):
    """A redirect to ``location`` (302 by default; 301, 303, 307 and 308 also make sense)."""

    def __init__(self, location: str, status: int = 302, headers: HeadersArg = None) -> None:
        super().__init__(b"", status, headers)
        self.headers.set("location", location)


class StreamingResponse(Response):
    """A response whose body comes from an async iterable of ``bytes`` or ``str`` chunks.

    Each chunk is flushed as it comes: chunked on HTTP/1.1, close-delimited on HTTP/1.0,
    or exactly ``Content-Length`` bytes when ``headers`` declare one (more or fewer is an
    error that aborts the connection, since the client would misread the body). If the
    client goes away the iteration is cancelled at its next checkpoint and the
    iterable's ``aclose()`` runs.
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
    response = Response.__new__(Response)
    response.status = error.status
    response.body = error.to_json(stack=stack)
    headers = Headers(error.headers)
    headers.raw.append((b"content-type", _JSON))
    response.headers = headers
    return response


def to_response(value: Any, status: int | None, extra_headers: Headers | None) -> Response:
    """Normalise what a handler returned; ``status`` is ``event.status`` if the handler set it.

    ``extra_headers`` (``event.response_headers``) are added to whatever comes out, so
    several ``Set-Cookie`` set on the event survive next to the response's own.
    """
    if isinstance(value, Response):
        response = value
    else:
        if isinstance(value, str):  # the usual value first
            body, media = value.encode(), _TEXT
        elif value is None:
            body, media = b"", None
            if status is None:
                status = 204
        elif isinstance(value, (dict, list)):  # a tuple: cheaper than a union to test
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
        response.headers = Headers.from_raw([(b"content-type", media)] if media else [])
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
