"""Responses as the test client reads them: whole (TestResponse) or streamed."""

from __future__ import annotations

import json as _json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Self

import h11
import trio

from ..datastructures import Headers
from .http import ClientConnection
from .request import RequestURL, TestRequest

__all__ = [
    "HTTPStatusError",
    "StreamingTestResponse",
    "TestResponse",
    "TooManyRedirects",
]

_ERROR_KINDS = {1: "Informational response", 3: "Redirect response", 4: "Client error"}
_REDIRECTS = (301, 302, 303, 307, 308)
# httpx's message ends with this link; the same text keeps a test's match= portable.
_MDN_STATUS = "https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/"


class HTTPStatusError(Exception):
    """``raise_for_status()`` on a response that is not 2xx (httpx's ``HTTPStatusError``).

    ``error.response`` is the response, ``error.request`` the request that got it.
    """

    def __init__(
        self, message: str, *, request: TestRequest | None, response: _ResponseStatus
    ) -> None:
        super().__init__(message)
        self.request = request
        self.response = response


class TooManyRedirects(Exception):
    """More redirects than ``max_redirects`` while following them."""

    def __init__(self, message: str, *, request: TestRequest) -> None:
        super().__init__(message)
        self.request = request


class _ResponseStatus:
    """What a response's status says, shared by whole and streamed responses."""

    status: int
    headers: Headers
    reason: str
    url: RequestURL
    request: TestRequest | None

    @property
    def status_code(self) -> int:
        """Alias of ``status`` (httpx's and Starlette's spelling)."""
        return self.status

    @property
    def reason_phrase(self) -> str:
        """The reason phrase as the server sent it (``"Not Found"``)."""
        return self.reason

    @property
    def is_success(self) -> bool:
        """2xx."""
        return 200 <= self.status < 300

    @property
    def is_redirect(self) -> bool:
        """301, 302, 303, 307 or 308."""
        return self.status in _REDIRECTS

    @property
    def has_redirect_location(self) -> bool:
        """A redirect with a ``Location`` to follow."""
        return self.is_redirect and "location" in self.headers

    @property
    def is_client_error(self) -> bool:
        """4xx."""
        return 400 <= self.status < 500

    @property
    def is_server_error(self) -> bool:
        """5xx."""
        return 500 <= self.status < 600

    @property
    def is_error(self) -> bool:
        """4xx or 5xx."""
        return 400 <= self.status < 600

    def raise_for_status(self) -> Self:
        """Return the response if it is 2xx, else raise :class:`HTTPStatusError` (as httpx,
        1xx and 3xx raise too)."""
        if self.is_success:
            return self
        kind = _ERROR_KINDS.get(self.status // 100, "Server error")
        if not 100 <= self.status < 600:
            kind = "Invalid status code"
        message = f"{kind} '{self.status} {self.reason}' for url '{self.url}'"
        if self.has_redirect_location:
            message += f"\nRedirect location: '{self.headers['location']}'"
        message += f"\nFor more information check: {_MDN_STATUS}{self.status}"
        raise HTTPStatusError(message, request=self.request, response=self)


@dataclass
class TestResponse(_ResponseStatus):
    """A complete response as the test client read it."""

    __test__ = False  # not a pytest test class

    status: int
    headers: Headers
    content: bytes
    http_version: str = "1.1"
    reason: str = ""
    #: Where the request went (after redirects: the last one).
    url: RequestURL = field(default=RequestURL("http://testserver/"))
    #: The request this responds to.
    request: TestRequest | None = field(default=None, repr=False)
    #: The redirect responses that led here, oldest first (``follow_redirects=True``).
    history: list[TestResponse] = field(default_factory=list, repr=False)
    #: The cookies this response's ``Set-Cookie`` headers stored in the jar.
    cookies: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(self.content)


class StreamingTestResponse(_ResponseStatus):
    """A response whose body is read incrementally (``client.stream(...)``)."""

    __test__ = False

    def __init__(
        self,
        connection: ClientConnection,
        head: h11.Response,
        *,
        request: TestRequest | None = None,
        cookies: dict[str, str] | None = None,
        history: list[TestResponse] | None = None,
    ) -> None:
        self._connection = connection
        self.status = head.status_code
        self.headers = Headers.from_raw(list(head.headers))
        self.http_version = head.http_version.decode()
        self.reason = head.reason.decode("latin-1")
        self.request = request
        self.url = request.url if request is not None else RequestURL("http://testserver/")
        #: The cookies this response's ``Set-Cookie`` headers stored in the jar.
        self.cookies = cookies or {}
        #: The redirect responses that led here, oldest first.
        self.history = history or []
        self.complete = False

    async def receive_chunk(self) -> bytes:
        """The next piece of body as it arrived; ``b""`` at the end of the body."""
        if self.complete:
            return b""
        try:
            event = await self._connection.next_event()
        except h11.RemoteProtocolError as exc:
            raise ConnectionError(f"the response body was cut short: {exc}") from exc
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            self.complete = True
            return b""
        raise ConnectionError(f"the response body ended without its end marker: {event!r}")

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Body chunks until the end of the body."""
        while chunk := await self.receive_chunk():
            yield chunk

    async def read(self) -> bytes:
        """The rest of the body."""
        return b"".join([chunk async for chunk in self.iter_bytes()])

    async def buffered(self) -> TestResponse:
        """Read the rest of the body: the whole response as a :class:`TestResponse`."""
        content = await self.read()
        return TestResponse(
            self.status,
            self.headers,
            content,
            self.http_version,
            self.reason,
            url=self.url,
            request=self.request,
            history=self.history,
            cookies=self.cookies,
        )

    async def disconnect(self) -> None:
        """Drop the connection, as a browser tab closing would."""
        self._connection.stream.close()
        await trio.lowlevel.checkpoint()
