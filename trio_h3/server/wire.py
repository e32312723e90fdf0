"""The bytes of one HTTP/1.1 connection: h11 over a Trio stream. The only module that speaks h11.

The rest of the server speaks *wire events* (:class:`~trio_h3.types.RequestHead`, body
chunks, the end of a body) and asks the wire to write heads and bodies; this is the seam
where a second parser can plug in. The wire:

- turns bytes into request heads and body chunks, refusing what must be refused
  (:class:`WireError` carries the status; :mod:`.checks` holds the rules h11 leaves to
  us: smuggling, ``Host``, sizes);
- writes response heads through h11, and bodies framed exactly as the head that went out
  says (``Content-Length``, chunked, or close-delimited for HTTP/1.0: :class:`Framing`),
  never by the HTTP version alone;
- reports every write that did not complete to h11 (``send_failed()``), so the state of
  the connection is h11's, not a flag of ours: after a failed or cancelled write nothing
  more is written on it.
"""

from __future__ import annotations

import enum
from http import HTTPStatus

import h11
import trio

from .. import _sockio as sockio
from ..types import RequestHead
from .checks import WireError, check_head, request_line_too_long

__all__: list[str] = []

#: Bytes asked of the socket per read (what uvicorn and h11's examples use).
RECEIVE_SIZE = 64 * 1024

_REASONS: dict[int, bytes] = {}
# RFC 9110 §15.3.5, §15.3.6, §15.4.5: 204, 205 and 304 carry no content.
_NO_CONTENT = frozenset({204, 205, 304})


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase for ``status`` (cached; empty if unknown)."""
    reason = _REASONS.get(status)
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase.encode()
        except ValueError:
            reason = b""
        _REASONS[status] = reason
    return reason


class InvalidResponse(ValueError):
    """A response the app built cannot be sent as it is (the message says why)."""


class BodyEvent(enum.Enum):
    """What reading a request body yields besides data."""

    #: More bytes must be received first.
    NEED_DATA = "need_data"
    #: The body is complete.
    END = "end"


class Framing(enum.Enum):
    """How a response body is delimited on the wire, as its head declared it."""

    #: No body at all (HEAD, 204, 205, 304).
    NONE = "none"
    #: Exactly ``Content-Length`` bytes.
    LENGTH = "length"
    #: ``Transfer-Encoding: chunked``.
    CHUNKED = "chunked"
    #: Until the connection closes (an HTTP/1.0 client).
    CLOSE = "close"


def _framing_of(head: bytes, method: bytes, status: int) -> tuple[Framing, int]:
    """The framing the head h11 wrote declares (and the length, for LENGTH)."""
    if method == b"HEAD" or status in _NO_CONTENT:
        return Framing.NONE, 0
    lowered = head.lower()
    if b"\r\ntransfer-encoding: chunked\r\n" in lowered:
        return Framing.CHUNKED, 0
    start = lowered.find(b"\r\ncontent-length: ")
    if start >= 0:
        start += len(b"\r\ncontent-length: ")
        return Framing.LENGTH, int(lowered[start : lowered.index(b"\r\n", start)])
    return Framing.CLOSE, 0


class Wire:
    """h11 over one Trio stream (see the module docstring)."""

    def __init__(
        self, stream: trio.abc.Stream, *, max_header_size: int, max_target_size: int
    ) -> None:
        self.stream = stream
        # Plain TCP: reads and writes go through the socket itself (see _sockio); they
        # are serialised already (one response at a time, the stream's write lock).
        self._socket = sockio.raw_socket(stream)
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_size)
        self.max_header_size = max_header_size
        self.max_target_size = max_target_size
        self._method = b""
        # The bytes of the head being read, for the checks h11's parsed form hides
        # (a repeated Content-Length it folded into one).
        self._head_bytes = bytearray()
        self.framing = Framing.NONE
        self._remaining = 0
        #: Body bytes written for the current response.
        self.body_bytes = 0
        #: Whether any byte of the current response's head went out.
        self.head_sent = False
        #: Set when the response must end the connection (a refused or unread body).
        self.close_after = False
        #: The current request's declared Content-Length, if any.
        self.declared_length: int | None = None
        self._expects_continue = False
        self._continue_sent = False

    # -- reading ---------------------------------------------------------------------------

    async def _read(self) -> bytes:
        """What the client sent next; ``b""`` at EOF or a reset."""
        try:
            if self._socket is None:
                return bytes(await self.stream.receive_some(RECEIVE_SIZE))
            return await sockio.receive_some(self._socket, RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def receive(self) -> bool:
        """Read what the client sent into the parser; False at EOF (or a reset)."""
        data = await self._read()
        if self._h11.their_state is h11.IDLE and len(self._head_bytes) <= self.max_header_size:
            self._head_bytes += data
        self._h11.receive_data(data)
        return bool(data)

    async def receive_while_streaming(self) -> bool:
        """Watch the receive side during a streamed response; False once the client left.

        Bytes that arrive meanwhile (a pipelined request) are kept for the next cycle,
        up to the head-size limit; past it the connection closes after this response.
        """
        data = await self._read()
        if not data:
            return False
        if self.buffered_size() + len(data) > self.max_header_size:
            self.close_after = True
        else:
            self._h11.receive_data(data)
        return True

    @property
    def has_partial_head(self) -> bool:
        """True when some bytes of a request head have arrived."""
        return bool(self._head_bytes)

    def next_head(self) -> RequestHead | None:
        """The next request head if one is complete; None if more bytes are needed.

        Raises WireError for a head that must be refused (the answer's status in it),
        and EOFError when the client closed instead of sending one.
        """
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            if status == 431 and request_line_too_long(self._head_bytes, self.max_target_size):
                raise WireError(414, "Request-URI too long") from None
            if status == 431:
                raise WireError(431, "Request header fields too large") from None
            raise WireError(status, f"Bad request: {exc}") from None
        if event is h11.NEED_DATA:
            return None
        if not isinstance(event, h11.Request):
            raise EOFError
        head = RequestHead(
            event.method,
            event.target,
            event.http_version,
            event.headers,  # type: ignore[arg-type]  # h11's Headers is a list of pairs
        )
        raw, self._head_bytes = self._head_bytes, bytearray()
        self._method = event.method
        self._expects_continue = self._h11.they_are_waiting_for_100_continue
        self._continue_sent = False
        try:
            self.declared_length = check_head(head, raw, self.max_header_size, self.max_target_size)
        except WireError:
            self.close_after = True
            raise
        return head

    @property
    def waiting_for_100_continue(self) -> bool:
        """The client sent ``Expect: 100-continue`` and we have not invited its body.

        (h11 forgets the expectation once a final response goes out; this does not, so
        an uninvited body is never waited for after the response either.)
        """
        return self._expects_continue and not self._continue_sent

    @property
    def body_pending(self) -> bool:
        """The request body has not been read to its end."""
        return self._h11.their_state is h11.SEND_BODY

    def next_body_event(self) -> bytes | BodyEvent:
        """The next body chunk, or :class:`BodyEvent` (need more bytes; the end).

        Raises WireError 400 for a malformed or cut-short body.
        """
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            self.close_after = True
            raise WireError(400, f"Malformed request body: {exc}") from None
        if event is h11.NEED_DATA:
            return BodyEvent.NEED_DATA
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            return BodyEvent.END
        self.close_after = True
        raise WireError(400, "The request body ended early")

    @property
    def trailing(self) -> bytes:
        """Bytes received after the current request (a pipelined one, WebSocket frames)."""
        return bytes(self._h11.trailing_data[0])

    def buffered_size(self) -> int:
        """How many received bytes wait in the parser."""
        return len(self._h11.trailing_data[0])

    # -- writing ---------------------------------------------------------------------------

    @property
    def response_started(self) -> bool:
        """A response head has been written (or could not be) for the current request."""
        return self._h11.our_state is not h11.SEND_RESPONSE and self._h11.our_state is not h11.IDLE

    @property
    def broken(self) -> bool:
        """A write failed or was cut short: nothing more may be written."""
        return self._h11.our_state is h11.ERROR

    async def _send(self, data: bytes) -> None:
        try:
            if self._socket is None:
                await self.stream.send_all(data)
            else:
                await sockio.send_all(self._socket, data)
        except BaseException:
            # Some unknown part of ``data`` may be out: the framing is lost (h11's rule:
            # report it, and the connection is in ERROR from now on).
            self._h11.send_failed()
            raise

    async def send_continue(self) -> None:
        """``100 Continue``: the client may send the body it announced."""
        interim = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
        self._continue_sent = True
        await self._send(self._h11.send(interim) or b"")

    def body_allowed(self, status: int) -> bool:
        """Whether a response with ``status`` to the current request may carry content."""
        return self._method != b"HEAD" and status not in _NO_CONTENT

    async def send_response(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """A complete response in one write; the body is dropped where none is allowed.

        ``headers`` must not carry the framing headers: the length is set here.
        """
        h = self._h11
        if status == 205:
            headers.append((b"content-length", b"0"))
        elif status not in (204, 304):
            # HEAD: the length the GET body would have (RFC 9110 §9.3.2), no body.
            headers.append((b"content-length", b"%d" % len(body)))
        allowed = self.body_allowed(status)
        data = self._send_head_event(status, headers)
        if body and allowed:
            data += h.send(h11.Data(data=body)) or b""
            self.body_bytes = len(body)
        data += h.send(h11.EndOfMessage()) or b""
        self.head_sent = True
        await self._send(data)

    async def send_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> Framing:
        """The head of a streamed response; returns (and keeps) the framing it declared."""
        if status == 205:
            # RFC 9110 §15.3.6: no content; say so, or h11 would announce a chunked body.
            headers.append((b"content-length", b"0"))
        head = self._send_head_event(status, headers)
        self.framing, self._remaining = _framing_of(head, self._method, status)
        self.head_sent = True
        await self._send(head)
        return self.framing

    def _send_head_event(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        try:
            data = self._h11.send(
                h11.Response(status_code=status, headers=headers, reason=reason_phrase(status))
            )
        except h11.LocalProtocolError as exc:
            # Something slipped past the validation where headers are set (a mutated
            # raw list). h11 is now in ERROR; send_fallback_error still answers.
            raise InvalidResponse(str(exc)) from None
        assert data is not None
        return data

    async def send_fallback_error(self, status: int, body: bytes) -> None:
        """Answer ``status`` with a JSON ``body`` past h11 (whose state is spent), and close.

        Only for when a response could not be serialised: the client still gets an
        answer rather than a silent close.
        """
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n"
            % (status, reason_phrase(status), len(body))
        )
        self.close_after = True
        try:
            if self._socket is None:
                await self.stream.send_all(head + body)
            else:
                await sockio.send_all(self._socket, head + body)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def send_body(self, data: bytes) -> None:
        """Write ``data`` as part of the streamed body, framed as the head declared."""
        if not data:
            return
        if self.broken:
            raise trio.ClosedResourceError("the connection is broken")
        framing = self.framing
        if framing is Framing.CHUNKED:
            # Chunk framing by hand: h11 does the same, but its event machinery costs
            # more than the syscall on the per-event hot path; h11 writes the head and
            # the terminating chunk, so its state stays right.
            await self._send(b"%x\r\n%b\r\n" % (len(data), data))
        elif framing is Framing.LENGTH:
            if len(data) > self._remaining:
                raise ValueError(
                    f"the streamed body is longer than its Content-Length "
                    f"({self.body_bytes + len(data)} bytes or more)"
                )
            self._remaining -= len(data)
            await self._send(self._h11.send(h11.Data(data=data)) or b"")
        elif framing is Framing.CLOSE:
            await self._send(data)
        else:
            raise ValueError("this response has no body (HEAD, 204, 205 or 304)")
        self.body_bytes += len(data)

    async def end_body(self) -> None:
        """Write the end of a streamed body (the terminating chunk on HTTP/1.1)."""
        if self.broken or self._h11.our_state is not h11.SEND_BODY:
            return
        if self.framing is Framing.LENGTH and self._remaining:
            raise ValueError(
                f"the streamed body ended {self._remaining} bytes short of its Content-Length"
            )
        await self._send(self._h11.send(h11.EndOfMessage()) or b"")

    async def abort(self) -> None:
        """Close the connection now, mid-response if need be (nothing more is written)."""
        if self._h11.our_state is not h11.ERROR:
            self._h11.send_failed()
        with trio.CancelScope(shield=True):
            try:
                await trio.aclose_forcefully(self.stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    # -- the cycle -------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """The exchange ended cleanly on both sides: another request may follow."""
        return (
            not self.close_after
            and self._h11.our_state is h11.DONE
            and self._h11.their_state is h11.DONE
        )

    def start_next_cycle(self) -> None:
        """Get ready for the next request on this connection."""
        self._h11.start_next_cycle()
        self.framing = Framing.NONE
        self.body_bytes = 0
        self.head_sent = False
        if self._h11.trailing_data[0]:
            # A pipelined head is already here: its bytes count toward its checks.
            self._head_bytes = bytearray(self._h11.trailing_data[0][: self.max_header_size + 1])

    @property
    def client_may_still_send(self) -> bool:
        """The client may be sending a body we will not read (an upload we refused)."""
        return self._h11.their_state in (h11.SEND_BODY, h11.ERROR) and not self.broken

    @property
    def their_http_version(self) -> bytes | None:
        """The client's HTTP version, once a request was read."""
        return self._h11.their_http_version
