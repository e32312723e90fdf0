"""Response heads as h11 writes them, for the httptools backend (which has no h11).

A pre-encoded status line, then the header lines joined once (RFC 9112 §4, §5). The
headers were validated where they were set (``Headers.add``); a pair that got into a
raw list some other way is still checked, once per distinct pair (a bounded memo), so a
mutated list is the same 500 the h11 backend gives. The whole head of a kept-alive
response is remembered too, by its status and header list: a repeated response (the
same status, headers and length, and ``Date`` within its second) is assembled once.
"""

from __future__ import annotations

from http import HTTPStatus

from ..datastructures import check_header
from .wire import InvalidResponse

__all__: list[str] = []

# A field line without its CRLF (RFC 9112 §5: field-name ":" OWS field-value OWS).
_JOIN_PAIR = b": ".join


def _status_line(status: int) -> bytes:
    try:
        reason = HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, reason)


#: Every final status line, encoded once (RFC 9112 §4: status-line = HTTP-version SP
#: status-code SP [ reason-phrase ] CRLF).
_STATUS_LINES = {status: _status_line(status) for status in range(200, 600)}
#: Pairs already known to be sendable (checked once each); bounded: cleared when full.
_CHECKED: set[tuple[bytes, bytes]] = set()
_CHECKED_MAX = 4096
#: Whole heads of kept-alive responses by status and header list: the head, and whether
#: the response itself says ``Connection: close``. Bounded: cleared when full.
_HEADS: dict[tuple[object, ...], tuple[bytes, bool]] = {}
_HEADS_MAX = 1024


def comma_values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """Every comma-separated value of ``name``, stripped and lowercased (h11's rule)."""
    return [
        item.strip().lower()
        for key, value in headers
        if key == name
        for item in value.split(b",")
        if item.strip()
    ]


def encode_head(
    status: int, headers: list[tuple[bytes, bytes]], keep_alive: bool
) -> tuple[bytes, bool]:
    """The head of a response with ``status`` and ``headers`` (framing headers included),
    and whether the connection stays open after it.

    ``keep_alive`` False (the request or the server ends the connection): the head says
    ``Connection: close``, h11's way. Raises :class:`~.wire.InvalidResponse` for a status
    or a header that cannot be sent.
    """
    if keep_alive:
        key = (status, *headers)
        known = _HEADS.get(key)
        if known is not None:
            return known[0], not known[1]
    line = _STATUS_LINES.get(status)
    if line is None:
        raise InvalidResponse(f"status {status!r} is not a final status")
    connection = False
    for pair in headers:
        if pair not in _CHECKED:
            try:
                check_header(*pair)
            except (ValueError, TypeError) as exc:
                raise InvalidResponse(str(exc)) from None
            if len(_CHECKED) >= _CHECKED_MAX:
                _CHECKED.clear()
            _CHECKED.add(pair)
        if pair[0] == b"connection":
            connection = True
    if not keep_alive:
        # h11 rewrites Connection as one title-cased field per token, at the end.
        tokens = set(comma_values(headers, b"connection")) if connection else set()
        tokens.discard(b"keep-alive")
        tokens.add(b"close")
        headers = [pair for pair in headers if pair[0] != b"connection"]
        headers += [(b"Connection", token) for token in sorted(tokens)]
        return line + b"\r\n".join(map(_JOIN_PAIR, headers)) + b"\r\n\r\n", False
    # The response's own close: h11 leaves the field as it is, and closes after it.
    closes = connection and b"close" in comma_values(headers, b"connection")
    head = line + b"\r\n".join(map(_JOIN_PAIR, headers)) + b"\r\n\r\n"
    if len(_HEADS) >= _HEADS_MAX:
        _HEADS.clear()
    _HEADS[key] = (head, closes)
    return head, not closes
