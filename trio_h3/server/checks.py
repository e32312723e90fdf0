"""What a request head must satisfy beyond the parser's own rules. Pure.

h11 (and any later parser) checks the grammar; these are the rules it leaves to the
server, each one a way a request could be misread by us or by a proxy in front of us:

- ``Content-Length`` together with ``Transfer-Encoding``, or several ``Content-Length``
  fields even with one value: refused with 400 and the connection closed, so no bytes
  after the body can be read as a second request (RFC 9112 §6.1: "the server MUST close
  the connection after responding to such a request"; §6.3, request smuggling);
- ``Host`` (RFC 9112 §3.2): "A server MUST respond with a 400 (Bad Request) status code
  to any HTTP/1.1 request message that lacks a Host header field and to any request
  message that contains more than one Host header field line or a Host header field
  with an invalid field value";
- the request line over ``max_target_size``: 414; the whole head over
  ``max_header_size``: 431 (a head that arrived in one read is measured here, since a
  parser bounds only heads still incomplete);
- the version: ``HTTP/1.x`` is served (a higher minor version as 1.1, RFC 9110 §2.5),
  anything else is a 505.
"""

from __future__ import annotations

import re

from ..types import RequestHead

__all__: list[str] = []

# RFC 9112 §3.2 / RFC 3986 §3.2.2: Host = uri-host [ ":" port ];
# uri-host = IP-literal / IPv4address / reg-name;
# reg-name = *( unreserved / pct-encoded / sub-delims ). Empty is allowed.
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::[0-9]*)?")


class WireError(Exception):
    """A request the server must refuse: ``status`` and a message for the JSON body.

    The connection is closed after the answer (the framing of what follows is unknown).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def request_line_too_long(head: bytes | bytearray, limit: int) -> bool:
    """Whether the request line in ``head`` (possibly incomplete) is over ``limit``."""
    end = head.find(b"\n")
    return (end if end >= 0 else len(head)) > limit


def _raw_values(raw: bytes | bytearray, name: bytes) -> list[bytes]:
    """The values of the header lines named ``name`` in the raw head (before any folding)."""
    end = raw.find(b"\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    head = bytes(raw[: end if end >= 0 else len(raw)])
    marker = b"\n" + name + b":"
    values = []
    start = head.lower().find(marker)
    while start >= 0:
        line_end = head.find(b"\n", start + 1)
        values.append(head[start + len(marker) : line_end if line_end >= 0 else len(head)])
        start = head.lower().find(marker, start + 1)
    return values


def check_head(
    head: RequestHead, raw: bytes | bytearray, max_header_size: int, max_target_size: int
) -> int | None:
    """Raise :class:`WireError` unless ``head`` may be served (see the module docstring).

    ``raw`` is the head as received (empty when unknown), for what parsing folds away.
    Returns the declared ``Content-Length``, if any.
    """
    version = head.http_version
    if not version.startswith(b"1."):
        raise WireError(505, "HTTP version not supported; use HTTP/1.1")
    if len(head.method) + len(head.target) + 10 > max_target_size:
        raise WireError(414, "Request-URI too long")
    size = len(head.method) + len(head.target) + 14  # " ", " HTTP/1.1\r\n", "\r\n"
    hosts = 0
    length: bytes | None = None
    transfer = False
    for name, value in head.headers:
        size += len(name) + len(value) + 4  # ": " and "\r\n"
        if name == b"host":
            hosts += 1
            if not _HOST.fullmatch(value):
                raise WireError(400, "Invalid Host header")
        elif name == b"content-length":
            length = value
        elif name == b"transfer-encoding":
            transfer = True
    if size > max_header_size:
        raise WireError(431, "Request header fields too large")
    if hosts > 1:
        raise WireError(400, "More than one Host header")
    if length is not None and transfer:
        raise WireError(400, "Both Content-Length and Transfer-Encoding: refused (RFC 9112 §6.1)")
    if length is not None:
        # A parser may fold repeated or listed identical values into one (RFC 9110 §8.6
        # allows it); we refuse them, as the stricter reading of a head that two
        # parsers could frame differently.
        values = _raw_values(raw, b"content-length") if raw else []
        values += [v for n, v in head.headers if n == b"content-length"]
        if len(values) > 1 + bool(raw) or any(b"," in v for v in values):
            raise WireError(400, "More than one Content-Length")
        return int(length)
    return None
