"""The httptools (llhttp) backend of the wire: the same answers as h11, several times faster.

llhttp parses (strictly: no lenient mode is ever turned on); this module does by hand
what h11 does for the h11 backend, and does it the way h11 does, so a client cannot tell
the backends apart (tests/test_parsers.py holds the corpus that shows it):

- *feeding*: llhttp parses whatever it is given, so it is given one message at a time:
  a head up to its blank line (found with ``bytes.find``), then at most the declared
  ``Content-Length`` of body; the bytes after a message wait in ``_buffer`` until the
  next cycle (pipelining), and while a stream runs they are kept up to the head limit.
  Counting the bytes of a head that is still incomplete gives h11's limit exactly
  (431, or 414 while the request line is unfinished);
- *events*: llhttp's callbacks queue the head, body chunks and the end of a message;
  the server pulls them (``next_head()``, ``next_body_event()``) as from h11;
- *refusals*: llhttp's errors become the statuses h11 gives (400; 501 for a transfer
  coding or method it does not implement; 505 for a version), and :mod:`.checks` adds
  what neither parser checks (smuggling, ``Host``, sizes) and what h11 refuses and
  llhttp accepts (a coding list ending in chunked: 501, as h11);
- *upgrades*: llhttp stops after the head of an upgrade request and hands the rest
  over as the new protocol's bytes (``trailing``, for the WebSocket frame parser);
  when the server answers without switching, the body it announced (if any) is parsed
  through a stand-in head, and the connection carries on as h11's would;
- *keep-alive and framing of responses*: HTTP/1.0 and ``Connection: close`` end the
  connection after the response (h11 keeps no HTTP/1.0 connection alive), and the head
  gets ``Connection: close``, ``Transfer-Encoding: chunked`` or nothing, as h11 writes it.

Response heads are written as h11 writes them by :mod:`.heads`.
"""

from __future__ import annotations

import enum
import re

import httptools
import trio

from ..types import RequestHead
from .checks import METHODS, WireError, check_head, request_line_too_long
from .heads import comma_values, encode_head
from .wire import NO_CONTENT, BodyEvent, Framing, InvalidResponse, Wire

__all__: list[str] = []


class _Parse(enum.Enum):
    """Where llhttp is in the request stream (what the next bytes fed to it are)."""

    IDLE = "idle"  # between messages: the next bytes start a head
    HEAD = "head"  # inside a head
    LENGTH = "length"  # inside a Content-Length body
    CHUNKED = "chunked"  # inside a chunked body
    DONE = "done"  # a message is complete: nothing is fed until the next cycle
    STOPPED = "stopped"  # refused, or upgraded: nothing is fed any more


class _Side(enum.Enum):
    """One side of the exchange, as h11 names its states."""

    IDLE = "idle"
    SEND_BODY = "send_body"
    DONE = "done"
    ERROR = "error"


_END = BodyEvent.END
# The members the hot paths compare against, as module globals (one lookup, not two).
_IDLE, _HEAD, _LENGTH, _CHUNKED, _DONE, _STOPPED = (
    _Parse.IDLE,
    _Parse.HEAD,
    _Parse.LENGTH,
    _Parse.CHUNKED,
    _Parse.DONE,
    _Parse.STOPPED,
)
_S_IDLE, _S_BODY, _S_DONE, _S_ERROR = _Side.IDLE, _Side.SEND_BODY, _Side.DONE, _Side.ERROR
_CRLF2 = b"\r\n\r\n"
_VERSIONS = {"1.1": b"1.1", "1.0": b"1.0"}
# h11's request-line grammar (RFC 9112 §3): when it matches, h11 would have read the
# head, so a refusal must be the one the checks give a parsed head.
_REQUEST_LINE = re.compile(
    rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+) [^\x00-\x20\x7f]+ HTTP/([0-9]\.[0-9])\r?\n"
)
# h11's request-line (its _abnf.request_line: method SP 1*VCHAR SP HTTP-version).
_H11_REQUEST_LINE = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+ [\x21-\x7e]+ HTTP/[0-9]\.[0-9]")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _refusal(
    reason: str, fed: bytes, max_header_size: int, max_target_size: int
) -> tuple[WireError, bool]:
    """The answer to a head llhttp refused (``reason``); ``fed`` is the head's bytes.

    A complete head gets what the h11 backend answers it (h11 refusing it too, or the
    checks; only when both let it through is it llhttp's own refusal, a 400): errors
    are rare, so h11 reading the head again costs nothing that matters. An incomplete
    one is answered from its request line. With the answer: whether h11 would still
    have kept the connection alive (how ``Connection: close`` is then written).
    """
    if _CRLF2 in fed or b"\n\n" in fed:
        from .wire_h11 import verdict

        found = verdict(fed, max_header_size, max_target_size)
        if found is not None:
            return found
    else:
        match = _REQUEST_LINE.match(fed)
        if match is not None and match.group(2) not in (b"1.0", b"1.1"):
            return WireError(505, "HTTP version not supported; use HTTP/1.1"), True
        if match is not None and match.group(1) not in METHODS:
            error = WireError(501, f"Method {match.group(1).decode()} is not implemented")
            return error, True
        if "Transfer-Encoding" in reason and "Content-Length" not in reason:
            error = WireError(501, "Bad request: Only Transfer-Encoding: chunked is supported")
            return error, True
    return WireError(400, f"Bad request: {reason}"), True


class HttptoolsWire(Wire):
    """llhttp over one Trio stream (see the module docstring)."""

    __slots__ = (
        "_body_left",
        "_buffer",
        "_eof",
        "_events",
        "_fields",
        "_keep_alive",
        "_our",
        "_parse",
        "_parser",
        "_partial",
        "_resume",
        "_saw_connection",
        "_saw_expect",
        "_stand_in",
        "_their",
        "_upgraded",
        "_url",
        "_version",
    )

    def __init__(
        self, stream: trio.abc.Stream, *, max_header_size: int, max_target_size: int
    ) -> None:
        super().__init__(stream, max_header_size=max_header_size, max_target_size=max_target_size)
        self._parser = httptools.HttpRequestParser(self)
        self._buffer = b""  # received, not yet fed to llhttp
        self._eof = False
        # A list, not a deque: it holds one to three events (a deque's block is 0.5 KiB,
        # per connection).
        self._events: list[RequestHead | bytes | BodyEvent | WireError] = []
        self._parse = _IDLE
        self._body_left = 0  # of a Content-Length body being fed
        self._partial = b""  # the fed bytes of a head still incomplete
        self._url = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._saw_connection = self._saw_expect = False
        self._stand_in = False  # parsing the stand-in head after an unused upgrade
        self._resume: bytes | None = None  # that head, until it is fed
        self._their = _S_IDLE
        self._our = _S_IDLE
        self._version: bytes | None = None
        self._keep_alive = True
        self._upgraded = False

    # -- llhttp's callbacks (called from inside feed_data) -----------------------------------

    def on_message_begin(self) -> None:
        if not self._stand_in:
            self._parse = _HEAD
            self._url = b""
            self._fields = []
            self._saw_connection = self._saw_expect = False

    def on_url(self, url: bytes) -> None:
        if not self._stand_in:
            self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._parse is _HEAD and not self._stand_in:
            # llhttp drops the leading OWS of a value, not the trailing (RFC 9110 §5.5:
            # neither is part of it).
            name = name.lower()
            self._fields.append((name, value.rstrip(b" \t")))
            if name == b"connection":
                self._saw_connection = True
            elif name == b"expect":
                self._saw_expect = True
        # else: a trailer field (RFC 9112 §7.1.2), which h11 does not report either

    def on_headers_complete(self) -> None:
        parser = self._parser
        if self._stand_in:
            self._stand_in = False
            self._parse = _CHUNKED if self._body_left < 0 else _LENGTH
        else:
            version = parser.get_http_version()
            encoded = _VERSIONS.get(version) or version.encode()
            head = RequestHead(parser.get_method(), self._url, encoded, self._fields)
            self._events.append(head)
            self._partial = b""
            # A body, if any (next_head says which framing); llhttp skips the body of
            # an upgrade (see _fed_upgrade).
            self._parse = _LENGTH
            self._upgraded = parser.should_upgrade()

    def on_body(self, body: bytes) -> None:
        self._events.append(body)
        if self._body_left > 0:
            self._body_left -= len(body)

    def on_message_complete(self) -> None:
        self._events.append(_END)
        self._parse = _DONE

    # -- feeding -----------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if data:
            self._buffer = self._buffer + data if self._buffer else data
        else:
            self._eof = True

    def _pump(self) -> None:
        """Feed llhttp the next piece of the current message (see the module docstring)."""
        parse = self._parse
        buffer = self._buffer
        if parse is _IDLE or parse is _HEAD:
            partial = self._partial
            head = partial + buffer if partial else buffer
            # (The blank line may straddle what was fed and what is new.)
            end = head.find(_CRLF2, max(0, len(partial) - 3))
            size = len(buffer) if end < 0 else end + 4 - len(partial)
            if not partial and buffer[0] in (13, 10):  # CR, LF
                # RFC 9112 §2.2 lets a server skip empty lines before a request line;
                # h11 refuses them, and the stricter answer wins.
                self._stop(WireError(400, "Bad request: no request line received"))
                return
            eol = head.find(b"\r\n")
            if eol >= 0 and not _H11_REQUEST_LINE.fullmatch(head, 0, eol):
                # What llhttp reads more loosely than h11 (several spaces, HTTP/0.9's
                # line without a version...): refused as h11 refuses it.
                self._keep_alive = True
                self._stop(WireError(400, "Bad request: illegal request line"))
                return
        elif parse is _LENGTH:
            size = min(len(buffer), self._body_left)
        elif parse is _CHUNKED:
            size = len(buffer)
        else:
            return
        if size == len(buffer):
            piece, self._buffer = buffer, b""
        else:
            piece, self._buffer = buffer[:size], buffer[size:]
        try:
            self._parser.feed_data(piece)
        except httptools.HttpParserUpgrade as exc:
            self._fed_upgrade(piece, int(exc.args[0]))
            return
        except httptools.HttpParserError as exc:
            if parse is _LENGTH or parse is _CHUNKED:
                self._stop(WireError(400, f"Malformed request body: {exc}"))
            else:
                fed = self._partial + piece
                error, self._keep_alive = _refusal(
                    str(exc), fed, self.max_header_size, self.max_target_size
                )
                self._stop(error)
            return
        if self._parse is _HEAD:
            if parse is not _IDLE and parse is not _HEAD:
                # A head began inside a chunked body's piece: count what llhttp reported
                # of it (a lower bound; the bytes after it are counted whole).
                known = len(self._url) + sum(len(n) + len(v) + 4 for n, v in self._fields)
                piece = piece[-known - 16 :]
            self._partial += piece
            if len(self._partial) > self.max_header_size:
                self._stop(
                    WireError(414, "Request-URI too long")
                    if request_line_too_long(self._partial, self.max_target_size)
                    else WireError(431, "Request header fields too large")
                )

    def _fed_upgrade(self, piece: bytes, offset: int) -> None:
        """llhttp read an upgrade request's head; what follows is not HTTP to it."""
        self._buffer = piece[offset:] + self._buffer
        self._parse = _DONE
        if self._resume is not None:
            # The server did not switch and the request announced a body: a stand-in
            # head makes llhttp read that body as it would any other.
            resume, self._resume = self._resume, None
            self._stand_in = True
            self._parse = _IDLE
            self._parser.feed_data(resume)

    def _stop(self, error: WireError) -> None:
        self._parse = _STOPPED
        self._events.append(error)

    def _next_event(self) -> RequestHead | bytes | BodyEvent | WireError | None:
        events = self._events
        while not events:
            if not self._buffer:
                if self._eof and self._parse is not _STOPPED:
                    self._at_eof()
                    continue
                return None
            before = len(self._buffer)
            self._pump()
            if not events and len(self._buffer) == before:
                return None  # nothing more can be fed now (a message is complete)
        return events.pop(0)

    def _at_eof(self) -> None:
        parse = self._parse
        self._parse = _STOPPED
        if parse is _HEAD:
            self._events.append(WireError(400, "Bad request: the client closed mid-head"))
        elif parse is _LENGTH or parse is _CHUNKED:
            self._events.append(
                WireError(400, "Malformed request body: the client closed before its end")
            )

    # -- reading -----------------------------------------------------------------------------

    @property
    def has_partial_head(self) -> bool:
        return self._their is _S_IDLE and (bool(self._buffer) or self._parse is _HEAD)

    def next_head(self) -> RequestHead | None:
        if self._their is not _S_IDLE:
            raise EOFError
        if not self._events and not self._buffer and not self._eof and not self.receive_ready():
            return None  # nothing received yet
        event = self._next_event()
        if event is None:
            if self._eof:
                raise EOFError
            return None
        if type(event) is not RequestHead:
            assert isinstance(event, WireError)
            self._their = _S_ERROR
            self.close_after = True
            raise event
        self._method = event.method
        self._version = version = event.http_version
        self._their = _S_BODY
        fields = event.headers
        connection, expect = self._saw_connection, self._saw_expect
        # h11's rules: HTTP/1.0 is never kept alive; RFC 9110 §10.1.1: an HTTP/1.0
        # client's 100-continue expectation is ignored.
        self._keep_alive = version >= b"1.1" and not (
            connection and b"close" in comma_values(fields, b"connection")
        )
        self._expects_continue = (
            expect and version == b"1.1" and b"100-continue" in comma_values(fields, b"expect")
        )
        self._continue_sent = False
        try:
            self.declared_length, chunked, self.proxied = check_head(
                event, b"", self.max_header_size, self.max_target_size
            )
            if chunked and comma_values(fields, b"transfer-encoding") != [b"chunked"]:
                # h11's rule (llhttp takes any list ending in chunked): RFC 9112 §6.1.
                raise WireError(501, "Bad request: Only Transfer-Encoding: chunked is supported")
        except WireError:
            self._their = _S_ERROR
            self._parse = _STOPPED
            self.close_after = True
            raise
        self._body_left = -1 if chunked else self.declared_length or 0
        if self._upgraded and self._body_left:
            if self._events and self._events[0] is _END:
                self._events.pop(0)  # llhttp's end of the upgrade, not of its body
            self._resume = (
                b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                if chunked
                else b"PUT / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % self._body_left
            )
            self._fed_upgrade(b"", 0)
        elif self._events and self._events[0] is _END:
            self._events.pop(0)
            self._their = _S_DONE
        elif self._parse is _LENGTH and chunked:
            self._parse = _CHUNKED
        return event

    @property
    def body_pending(self) -> bool:
        return self._their is _S_BODY

    def next_body_event(self) -> bytes | BodyEvent:
        if self._their is not _S_BODY:
            return _END
        event = self._next_event()
        if event is None:
            return BodyEvent.NEED_DATA
        if event is _END:
            self._their = _S_DONE
            return _END
        if isinstance(event, WireError):
            self._their = _S_ERROR
            self.close_after = True
            raise event
        if isinstance(event, RequestHead):  # cannot happen: a body ends before a head
            raise WireError(400, "The request body ended early")
        return event

    @property
    def trailing(self) -> bytes:
        return self._buffer

    def buffered_size(self) -> int:
        return len(self._buffer)

    # -- writing -----------------------------------------------------------------------------

    @property
    def response_started(self) -> bool:
        return self._our is not _S_IDLE

    @property
    def broken(self) -> bool:
        return self._our is _S_ERROR

    def _send_failed(self) -> None:
        self._our = _S_ERROR

    async def send_continue(self) -> None:
        self._continue_sent = True
        await self._send(_CONTINUE)

    def _head(
        self, status: int, headers: list[tuple[bytes, bytes]], *, need_close: bool = False
    ) -> bytes:
        """The head as h11 writes it (:func:`.heads.encode_head`); InvalidResponse (and
        broken) if it cannot be sent. Also decides whether the connection ends after this
        response: h11 keeps no connection whose request or response says ``close``."""
        try:
            head, self._keep_alive = encode_head(
                status, headers, self._keep_alive and not need_close
            )
        except InvalidResponse:
            self._our = _S_ERROR  # as h11 is after a LocalProtocolError
            raise
        return head

    def encode_response(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> bytes:
        if status == 205:
            headers.append((b"content-length", b"0"))
        elif status != 204 and status != 304:
            # HEAD: the length the GET body would have (RFC 9110 §9.3.2), no body.
            headers.append((b"content-length", b"%d" % len(body)))
        data = self._head(status, headers)
        if body and self._method != b"HEAD" and status not in NO_CONTENT:
            data += body
            self.body_bytes = len(body)
        self._our = _S_DONE
        self.head_sent = True
        return data

    async def send_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> Framing:
        if status == 205:
            headers.append((b"content-length", b"0"))  # RFC 9110 §15.3.6
        need_close = False
        framing, self._remaining = Framing.NONE, 0
        if status not in (204, 304):
            length = comma_values(headers, b"content-length")
            if length:
                framing, self._remaining = Framing.LENGTH, int(length[0])
            elif self._version == b"1.1":
                # RFC 9112 §7.1: a body of unknown length to an HTTP/1.1 client.
                framing = Framing.CHUNKED
                headers.append((b"Transfer-Encoding", b"chunked"))
            else:
                # RFC 9112 §6.3: an HTTP/1.0 client reads until the connection closes.
                framing = Framing.CLOSE
                need_close = self._method != b"HEAD"
        if self._method == b"HEAD" or status in NO_CONTENT:
            framing = Framing.NONE
        head = self._head(status, headers, need_close=need_close)
        self.framing = framing
        self._our = _S_BODY if framing is not Framing.NONE else _S_DONE
        self.head_sent = True
        await self._send(head)
        return framing

    async def end_body(self) -> None:
        if self.broken or self._our is not _S_BODY:
            return
        if self.framing is Framing.LENGTH and self._remaining:
            raise ValueError(
                f"the streamed body ended {self._remaining} bytes short of its Content-Length"
            )
        self._our = _S_DONE
        if self.framing is Framing.CHUNKED:
            await self._send(b"0\r\n\r\n")  # RFC 9112 §7.1: last-chunk, no trailers

    # -- the cycle ---------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        return (
            not self.close_after
            and self._keep_alive
            and self._our is _S_DONE
            and self._their is _S_DONE
        )

    def start_next_cycle(self) -> None:
        # (The seam's resets, inline: this runs once per request.)
        self.framing = Framing.NONE
        self.body_bytes = 0
        self.head_sent = False
        self._their = self._our = _S_IDLE
        self._upgraded = False
        if self._parse is _DONE:
            self._parse = _IDLE

    @property
    def client_may_still_send(self) -> bool:
        return self._their in (_S_BODY, _S_ERROR) and not self.broken

    @property
    def their_http_version(self) -> bytes | None:
        return self._version
