"""Errors a request can cause, each carrying the HTTP status it maps to.

Pure module: no I/O, no Trio. The connection answers an :class:`HTTPError` with
``error.status`` and the JSON body from :meth:`HTTPError.to_json`; it never looks
exception types up in a table.
"""

from __future__ import annotations

import http
import json
from collections.abc import Iterable, Mapping
from typing import Any

from .datastructures import Headers

__all__ = ["ClientDisconnected", "HTTPError", "StreamClosed"]


def _reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class HTTPError(Exception):
    """An error with an HTTP status, answered with a JSON body.

    ``raise HTTPError(404, "No such user", data={"id": "7"})`` gives a 404 response
    whose body is ``{"status": 404, "message": "No such user", "data": {"id": "7"}}``.
    The message defaults to the status's reason phrase. ``headers`` are added to the
    error response (``Allow`` on a 405, ``WWW-Authenticate`` on a 401, ...).
    """

    def __init__(
        self,
        status: int = 500,
        message: str | None = None,
        data: Any = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"HTTPError status must be 4xx or 5xx, got {status!r}")
        self.status = status
        self.message = message if message is not None else _reason_phrase(status)
        self.data = data
        if headers is None:
            self.headers: list[tuple[str, str]] = []
        elif isinstance(headers, Mapping):
            self.headers = list(headers.items())
        else:
            self.headers = list(headers)
        # Validated here, at the raise that set them, rather than as a broken answer.
        Headers(self.headers)
        super().__init__(status, self.message)

    def __str__(self) -> str:
        return f"{self.status} {self.message}"

    def __repr__(self) -> str:
        return f"HTTPError({self.status!r}, {self.message!r})"

    def to_dict(self, *, stack: str | None = None) -> dict[str, Any]:
        """The JSON error shape: ``status``, ``message`` and, when present, ``data``."""
        body: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.data is not None:
            body["data"] = self.data
        if stack is not None:
            body["stack"] = stack.splitlines()
        return body

    def to_json(self, *, stack: str | None = None) -> bytes:
        """The JSON error body as bytes."""
        return json.dumps(self.to_dict(stack=stack), default=str).encode()


class StreamClosed(Exception):
    """A write to an SSE stream (or streaming body) that has already ended.

    ``reason`` says why the stream ended (see ``CloseReason`` in :mod:`trio_h3.sse`).
    """

    def __init__(self, reason: str = "closed") -> None:
        self.reason = reason
        super().__init__(f"stream is closed ({reason})")


class ClientDisconnected(StreamClosed):
    """The client went away while the server was writing to it."""

    def __init__(self) -> None:
        super().__init__("client_disconnected")
