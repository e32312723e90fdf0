"""The WebSocket opening handshake as the framework checks it, before any upgrade. Pure.

A request to a WebSocket route is checked against RFC 6455 §4.2.1 here, before
middleware sees the route's answer, so a plain GET gets 426 and a broken handshake 400
with the JSON error body. :class:`WebSocketUpgrade` is what the route answers once the
request passed: the server hands the connection to :mod:`trio_h3.websocket.session`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any, Final

from ..errors import HTTPError
from ..response import Response

__all__ = ["WebSocketUpgrade", "check_upgrade_request"]

_WEBSOCKET_VERSION: Final = b"13"


def _tokens(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    tokens: list[bytes] = []
    for header_name, value in headers:
        if header_name.lower() == name:
            tokens.extend(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


def _values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value.strip() for header_name, value in headers if header_name.lower() == name]


def _refuse_a_body(headers: list[tuple[bytes, bytes]]) -> None:
    # RFC 6455 §4.1: the opening handshake is a GET, and once it is answered with 101
    # every byte after the head is a frame (§1.2, §5). A body, framed by the HTTP
    # parser or not, has no place there: its bytes would either be swallowed by the
    # HTTP side or read as frames. Refused, and the connection closed after the 400,
    # since what the client meant by the bytes that follow is anyone's guess.
    close = [("Connection", "close")]
    if _values(headers, b"transfer-encoding"):
        raise HTTPError(
            400, "A WebSocket handshake must not have a body (Transfer-Encoding)", headers=close
        )
    for value in _values(headers, b"content-length"):
        if value.lstrip(b"0"):  # "0" (or "00") is no body
            raise HTTPError(
                400,
                f"A WebSocket handshake must not have a body "
                f"(Content-Length: {value.decode('latin-1')})",
                headers=close,
            )


def check_upgrade_request(method: str, headers: list[tuple[bytes, bytes]]) -> None:
    """Check that a request to a WebSocket route is a valid RFC 6455 opening handshake.

    Raises :class:`~trio_h3.errors.HTTPError` 426 (with ``Upgrade: websocket``) for a
    plain request that does not ask for a WebSocket, and 400 for a broken handshake:
    not GET, a body (``Content-Length`` above 0, or any ``Transfer-Encoding``; the
    answer closes the connection), no ``Connection: upgrade``, a
    ``Sec-WebSocket-Version`` other than 13 (the answer names 13), a missing or
    malformed ``Sec-WebSocket-Key``, or no ``Host``. Pure: no I/O. ``headers`` are h11's
    (name, value) byte pairs.
    """
    if b"websocket" not in _tokens(headers, b"upgrade"):
        raise HTTPError(
            426,
            "This resource only accepts WebSocket connections",
            headers=[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Version", "13"),
            ],
        )
    if method.upper() != "GET":
        raise HTTPError(400, f"A WebSocket handshake must use GET, not {method}")
    _refuse_a_body(headers)
    if b"upgrade" not in _tokens(headers, b"connection"):
        raise HTTPError(400, "A WebSocket handshake needs 'Connection: Upgrade'")
    versions = _values(headers, b"sec-websocket-version")
    if versions != [_WEBSOCKET_VERSION]:
        message = (
            "Missing header 'Sec-WebSocket-Version'"
            if not versions
            else "Unsupported Sec-WebSocket-Version (only 13 is supported)"
        )
        raise HTTPError(400, message, headers=[("Sec-WebSocket-Version", "13")])
    keys = _values(headers, b"sec-websocket-key")
    if len(keys) != 1:
        raise HTTPError(
            400,
            "Missing header 'Sec-WebSocket-Key'"
            if not keys
            else "Duplicate header 'Sec-WebSocket-Key'",
        )
    try:
        nonce = base64.b64decode(keys[0], validate=True)
    except (binascii.Error, ValueError):
        nonce = b""
    if len(nonce) != 16:
        raise HTTPError(400, "Sec-WebSocket-Key must be 16 bytes, base64-encoded")
    if not _values(headers, b"host"):
        raise HTTPError(400, "Missing header 'Host'")


class WebSocketUpgrade(Response):
    """What a WebSocket route answers once the upgrade request passed middleware.

    The server sees it and hands the connection to the WebSocket handler; middleware and
    ``on_response`` see a 101 like any other response.
    """

    def __init__(self, handler: Any, options: dict[str, Any]) -> None:
        super().__init__(b"", 200)
        # 101 is sent by the handshake itself, never as a plain response.
        self.status = 101
        self.handler = handler
        self.options = options
