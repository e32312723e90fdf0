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
- the version: ``HTTP/1.0`` and ``HTTP/1.1`` are served, anything else is a 505.

Where the two parsers disagree, the stricter answer wins, so a request gets the same
answer whichever backend serves it (tests/test_parsers.py feeds both the same corpus).
The rules below are those llhttp enforces and h11 does not, applied to what h11 read
(:func:`check_raw_head`), plus the version rule above:

- a bare LF as a line terminator: 400 (RFC 9112 §2.2 lets a recipient accept it;
  llhttp, strict, does not);
- obs-fold, a field line continued on the next one: 400 (RFC 9112 §5.2: "MUST either
  reject the message by sending a 400 (Bad Request) ... or replace each received
  obs-fold with one or more SP octets"; h11 unfolds, llhttp rejects);
- ``HTTP/1.2`` to ``HTTP/1.9``: 505 (RFC 9110 §2.5 says a higher minor version SHOULD
  be served as the highest one known, which h11 does; llhttp rejects them);
- a method llhttp does not know (:data:`METHODS`; h11 takes any token): 501, which RFC
  9110 §9.1 names for "a request method that is unrecognized or not implemented";
- a control character (other than HTAB) in a field value: 400 (RFC 9110 §5.5 allows
  only VCHAR, obs-text, SP and HTAB; h11 lets most through);
- a request target in none of the four forms (RFC 9112 §3.2: origin-form ``/...``,
  absolute-form ``scheme://...``, authority-form for CONNECT only, ``*``): 400;
- whitespace, or an empty extension, in a chunk-size line (RFC 9112 §7.1.1:
  ``chunk-size [ chunk-ext ] CRLF``; h11 allows trailing whitespace): 400
  (:class:`ChunkLines` watches a chunked body's lines as they arrive).
"""

from __future__ import annotations

import re

from ..types import RequestHead
from ..utils.proxy import PROXY_NAMES

__all__: list[str] = []

# RFC 9112 §3.2 / RFC 3986 §3.2.2: Host = uri-host [ ":" port ];
# uri-host = IP-literal / IPv4address / reg-name;
# reg-name = *( unreserved / pct-encoded / sub-delims ). Empty is allowed.
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::[0-9]*)?")


#: The methods llhttp parses in HTTP mode (its HTTP_METHOD_MAP, less RTSP's and PRI):
#: RFC 9110's, WebDAV's (RFC 4918, 3253, 3648, 3744, 4791, 5323, 5842), PATCH (RFC
#: 5789), QUERY, and the UPnP and cache ones (M-SEARCH, NOTIFY, PURGE...).
METHODS = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND "
    b"PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE "
    b"M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE "
    b"QUERY".split()
)


# RFC 9110 §5.5: no CTL but HTAB in a field (nor in the request line, RFC 9112 §3).
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# RFC 9112 §3.2.2, RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
_ABSOLUTE = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*://")
# RFC 9112 §7.1.1 as llhttp reads it strictly: chunk-size, then ";name[=value]"s, no BWS.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_EXT_VALUE = rb"(?:" + _TOKEN + rb'|"(?:[^"\\\r\n]|\\.)*")'
_CHUNK_LINE = re.compile(
    rb"[0-9A-Fa-f]+(?:;(?:" + _TOKEN + rb"(?:=" + _EXT_VALUE + rb")?|=" + _EXT_VALUE + rb"))*\r\n"
)


# Host values already found valid: a server sees the same few again and again (bounded).
_HOSTS_SEEN: set[bytes] = set()


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


def check_raw_head(raw: bytes | bytearray) -> None:
    """Raise :class:`WireError` 400 for a head with bare LF line ends or obs-fold.

    ``raw`` is what was received from the head's first byte on (it may go on past the
    head, or stop short of a head too large to keep).
    """
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        if b"\n\n" in raw or b"\n\r\n" in raw:
            raise WireError(400, "Bad request: a line ends in a bare LF (RFC 9112 §2.2)")
        return  # cut short: the head was too large to keep (the size check answers)
    head = raw[: end + 2]
    lines = head.count(b"\r\n")
    if head.count(b"\n") != lines or head.count(b"\r") != lines:
        raise WireError(400, "Bad request: a bare LF or CR in the head (RFC 9112 §2.2)")
    if b"\n " in head or b"\n\t" in head:
        raise WireError(400, "Bad request: obsolete line folding (RFC 9112 §5.2)")
    if _CONTROL.search(head):
        raise WireError(400, "Bad request: a control character in the head (RFC 9110 §5.5)")


def check_head(
    head: RequestHead, raw: bytes | bytearray, max_header_size: int, max_target_size: int
) -> tuple[int | None, bool, bool]:
    """Raise :class:`WireError` unless ``head`` may be served (see the module docstring).

    ``raw`` is the head as received (empty when unknown), for what parsing folds away.
    Returns the declared ``Content-Length`` (if any), whether the body is chunked, and
    whether any proxy header (``X-Forwarded-*``, ``Forwarded``) is present.
    """
    version = head.http_version
    if version != b"1.1" and version != b"1.0":
        raise WireError(505, "HTTP version not supported; use HTTP/1.1")
    if head.method not in METHODS:
        raise WireError(501, f"Method {head.method.decode('latin-1')} is not implemented")
    target = head.target
    if target[:1] != b"/" and target != b"*":
        if (head.method == b"CONNECT") == bool(_ABSOLUTE.match(target)):
            raise WireError(400, "Bad request: invalid request target (RFC 9112 §3.2)")
    line = len(head.method) + len(target)
    if line + 10 > max_target_size:
        raise WireError(414, "Request-URI too long")
    size = line + 14  # " ", " HTTP/1.1\r\n", "\r\n"
    hosts = 0
    length: bytes | None = None
    transfer = proxied = False
    for name, value in head.headers:
        size += len(name) + len(value) + 4  # ": " and "\r\n"
        if name == b"host":
            hosts += 1
            if value not in _HOSTS_SEEN:
                if not _HOST.fullmatch(value):
                    raise WireError(400, "Invalid Host header")
                if len(_HOSTS_SEEN) >= 1024:
                    _HOSTS_SEEN.clear()
                _HOSTS_SEEN.add(value)
        elif name == b"content-length":
            length = value
        elif name == b"transfer-encoding":
            transfer = True
        elif name in PROXY_NAMES:
            proxied = True
    if size > max_header_size:
        raise WireError(431, "Request header fields too large")
    if hosts > 1:
        raise WireError(400, "More than one Host header")
    if not hosts and version == b"1.1":
        # RFC 9112 §3.2 (h11 refuses it before these checks; llhttp does not).
        raise WireError(400, "Bad request: Missing mandatory Host: header")
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
        return int(length), False, proxied
    return None, transfer, proxied


class ChunkLines:
    """Watches a chunked body's framing lines as its bytes arrive (the parser reads the
    data itself): a chunk-size line llhttp would refuse is a :class:`WireError` 400."""

    __slots__ = ("_line", "_skip", "_trailers", "done")

    def __init__(self) -> None:
        self._line = bytearray()
        self._skip = 0  # bytes of chunk data (and its CRLF) still to pass over
        self._trailers = False
        #: The last chunk and the trailer section have passed.
        self.done = False

    def feed(self, data: bytes) -> None:
        """Look at the next bytes of the body (and perhaps what follows it)."""
        view = memoryview(data)
        while view and not self.done:
            if self._skip:
                step = min(self._skip, len(view))
                self._skip -= step
                view = view[step:]
                continue
            end = bytes(view[:4096]).find(b"\n")
            if end < 0:
                self._line += view
                if len(self._line) > 4096:
                    self.done = True  # the parser's own limits answer such a line
                return
            self._line += view[: end + 1]
            view = view[end + 1 :]
            line, self._line = bytes(self._line), bytearray()
            if self._trailers:
                self.done = line == b"\r\n"
            elif not _CHUNK_LINE.fullmatch(line):
                raise WireError(400, "Malformed request body: invalid chunk-size line")
            else:
                size = int(line.split(b";", 1)[0].rstrip(b"\r\n"), 16)
                if size >> 64:
                    # llhttp counts in 64 bits and refuses more; h11 would wait for it.
                    raise WireError(400, "Malformed request body: chunk size overflow")
                if size:
                    self._skip = size + 2
                else:
                    self._trailers = True
