"""The WebSocket opening handshake as the framework checks it, before any upgrade. Pure.

A request to a WebSocket route is checked against RFC 6455 §4.2.1 here, before
middleware sees the route's answer, so a plain GET gets 426 and a broken handshake 400
with the JSON error body. :class:`WebSocketUpgrade` is what the route answers once the
request passed: the server hands the connection to :mod:`trio_h3.websocket.session`,
which checks the client's ``Origin`` (:class:`AllowedOrigins`, :func:`check_origin`)
before the handler runs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias
from urllib.parse import urlsplit

from ..errors import HTTPError
from ..response import Response

__all__: list[str] = []

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


# --------------------------------------------------------------------------- Origin


#: What ``app.ws(path, origins=...)`` and ``ServeOptions.ws_origins`` accept: a list of
#: exact origins (``"https://app.example"``), ``"*"`` and callables ``(origin) -> bool``,
#: or one callable.
OriginRules: TypeAlias = Sequence[str | Callable[[str], bool]] | Callable[[str], bool]

# RFC 6454 §6.1: an origin is serialised without its scheme's default port.
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalise_origin(origin: str) -> str | None:
    """``origin`` as RFC 6454 serialises it, or None if it is not one.

    ``scheme://host[:port]`` with scheme and host lowercased (both are case-insensitive,
    RFC 3986 §3.1, §3.2.2), an IDN host in its ASCII (punycode) form, and the scheme's
    default port left out (RFC 6454 §6.1), so ``https://App.Example:443`` and
    ``https://app.example`` are the same origin. A path, query, fragment or userinfo
    makes it not an origin; so does ``"null"`` (see :class:`AllowedOrigins`).
    """
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if (
        not parts.scheme
        or not host
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        return None
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme):
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


@dataclass(frozen=True, eq=False)
class AllowedOrigins:
    """The origins a WebSocket route accepts, compiled once from :data:`OriginRules`.

    Why: a browser attaches the user's cookies (and HTTP auth) to a WebSocket handshake
    to any site, and the same-origin policy does not apply to WebSockets, so without
    this check any page the user visits can open an authenticated WebSocket to your
    server and talk through it as the user (Cross-Site WebSocket Hijacking). RFC 6455
    §10.2 leaves the defence to the server: "Servers that are not intended to process
    input from any web page but only for certain sites SHOULD verify the |Origin| field
    is an origin they expect."

    The rule: an exact entry matches the same origin after :func:`normalise_origin`
    (so scheme and host compare case-insensitively, default ports are implied); ``"*"``
    matches any ``Origin``, ``"null"`` included; a callable gets the header's value as
    sent and allows it by returning true; ``"null"`` (what sandboxed iframes and
    ``file:`` pages send, and so what an attacker can send too) matches only an entry
    ``"null"``. A request without ``Origin`` is allowed unless ``require_origin``: every
    browser sends ``Origin`` on a WebSocket handshake (RFC 6455 §4.1, the Fetch
    standard), so its absence means a non-browser client (a CLI, a service, a test),
    which can forge any ``Origin`` anyway: refusing it protects nobody.
    """

    any_origin: bool
    exact: frozenset[str]
    checks: tuple[Callable[[str], bool], ...]

    @classmethod
    def of(cls, rules: OriginRules | AllowedOrigins) -> AllowedOrigins:
        """Compile ``rules``; ValueError names an entry that is not an origin."""
        if isinstance(rules, AllowedOrigins):
            return rules
        if callable(rules):
            return cls(False, frozenset(), (rules,))
        entries: Iterable[str | Callable[[str], bool]] = (
            [rules] if isinstance(rules, str) else rules
        )
        any_origin = False
        exact: set[str] = set()
        checks: list[Callable[[str], bool]] = []
        for entry in entries:
            if callable(entry):
                checks.append(entry)
            elif not isinstance(entry, str):
                raise TypeError(f"an origin is a str or a callable, not {entry!r}")
            elif entry == "*":
                any_origin = True
            elif entry == "null":
                exact.add("null")
            else:
                normal = normalise_origin(entry)
                if normal is None:
                    raise ValueError(
                        f"{entry!r} is not an origin: write scheme://host[:port], with no "
                        f"path (not even '/'), e.g. 'https://app.example'"
                    )
                exact.add(normal)
        return cls(any_origin, frozenset(exact), tuple(checks))

    def allows(self, origin: str) -> bool:
        """Whether a request whose ``Origin`` header is ``origin`` may connect."""
        if self.any_origin:
            return True
        value = origin.strip()
        key = "null" if value == "null" else normalise_origin(value)
        if key is not None and key in self.exact:
            return True
        return any(check(value) for check in self.checks)


def check_origin(
    headers: list[tuple[bytes, bytes]],
    allowed: AllowedOrigins | None,
    *,
    require_origin: bool = False,
) -> None:
    """Refuse (HTTPError 403) a handshake whose ``Origin`` is not allowed.

    ``allowed`` None: any origin. See :class:`AllowedOrigins` for the rule, and why;
    ``require_origin`` also refuses a request without ``Origin``. Several ``Origin``
    headers are refused whenever there is a rule (RFC 6454 §7.3: at most one). A
    callable rule's exceptions propagate (they are app code).
    """
    origins = _values(headers, b"origin")
    if not origins:
        if require_origin:
            raise HTTPError(403, "Missing header 'Origin' (this WebSocket route requires one)")
        return
    if allowed is None:
        return
    if len(origins) > 1:
        raise HTTPError(403, "More than one 'Origin' header")
    origin = origins[0].decode("latin-1")
    if not allowed.allows(origin):
        raise HTTPError(403, f"WebSocket connections from origin {origin[:200]!r} are not allowed")
