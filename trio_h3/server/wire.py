"""The bytes of one HTTP/1.1 connection: the seam between the server and its parser.

The rest of the server speaks *wire events* (:class:`~trio_h3.types.RequestHead`, body
chunks, the end of a body) and asks the wire to write heads and bodies. :class:`Wire`
is that interface, with everything that does not depend on the parser; a *backend*
subclasses it and turns bytes into those events and heads into bytes:

- :mod:`.wire_h11`: h11 (pure Python, a dependency), the reference for behaviour;
- :mod:`.wire_httptools`: llhttp through ``httptools`` (the ``[fast]`` extra), which
  answers every request exactly as the h11 backend does, and refuses what either
  parser refuses (the stricter answer wins: :mod:`.checks`).

What lives here, shared: the socket reads and writes (plain TCP through the trio
socket, see :mod:`trio_h3._sockio`), streamed bodies framed exactly as the head that
went out declared them (``Content-Length``, chunked, or close-delimited for HTTP/1.0:
:class:`Framing`, never by the HTTP version alone), files sent with ``os.sendfile``,
``100 Continue`` bookkeeping, the pipelined bytes kept while a stream runs, and the
fallback answer when a response cannot be serialised. Every write that did not
complete marks the wire broken (``_send_failed``): nothing more is written on it.

:mod:`.backends` picks the backend for ``ServeOptions.http``; httptools is imported
only when it is chosen.
"""

from __future__ import annotations

import abc
import enum
import os
import time
from http import HTTPStatus

import trio

from .. import _sockio as sockio
from ..types import FilePart, RequestHead

__all__: list[str] = []

#: Bytes asked of the socket per read (what uvicorn and h11's examples use).
RECEIVE_SIZE = 64 * 1024

# RFC 9110 §15.3.5, §15.3.6, §15.4.5: 204, 205 and 304 carry no content.
NO_CONTENT = frozenset({204, 205, 304})


def _phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


#: Reason phrases of the final statuses (RFC 9110 §15), computed once.
_REASONS: dict[int, bytes] = {status: _phrase(status) for status in range(100, 600)}


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase for ``status`` (empty if unknown)."""
    reason = _REASONS.get(status)
    return _phrase(status) if reason is None else reason


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


class Wire(abc.ABC):
    """One connection's bytes (see the module docstring); a backend fills in the parser."""

    # Slots: a wire lives as long as its connection (an idle SSE stream's included).
    __slots__ = (
        "_continue_sent",
        "_expects_continue",
        "_fd",
        "_method",
        "_remaining",
        "_socket",
        "body_bytes",
        "close_after",
        "declared_length",
        "framing",
        "head_sent",
        "max_header_size",
        "max_target_size",
        "proxied",
        "stream",
        "written_at",
    )

    def __init__(
        self, stream: trio.abc.Stream, *, max_header_size: int, max_target_size: int
    ) -> None:
        self.stream = stream
        # Plain TCP: reads and writes go through the socket itself (see _sockio); they
        # are serialised already (one response at a time, the stream's write lock).
        self._socket = sockio.raw_socket(stream)
        # Its descriptor, for a read that must not wait (POSIX: os.read on a socket).
        self._fd = self._socket.fileno() if self._socket is not None and os.name == "posix" else -1
        self.max_header_size = max_header_size
        self.max_target_size = max_target_size
        #: How the current response's body is framed (set by :meth:`send_head`).
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
        #: Whether the current request carries any proxy header (X-Forwarded-*, Forwarded).
        self.proxied = False
        self._method = b""
        self._expects_continue = False
        self._continue_sent = False
        #: When the last write to the client completed (``time.monotonic()``): how long
        #: its next request has had to arrive (the connection loop's pacing).
        self.written_at = 0.0

    # -- reading ---------------------------------------------------------------------------

    async def _read(self) -> bytes:
        """What the client sent next; ``b""`` at EOF or a reset."""
        sock = self._socket
        try:
            if sock is None:
                return bytes(await self.stream.receive_some(RECEIVE_SIZE))
            # The trio socket itself (as sockio.receive_some, a frame shallower: this is
            # the frame a stream's monitor sleeps in, for as long as the stream lives).
            return await sock.recv(RECEIVE_SIZE)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def receive(self) -> bool:
        """Read what the client sent into the parser; False at EOF (or a reset)."""
        data = await self._read()
        self._feed(data)
        return bool(data)

    def receive_ready(self) -> bool:
        """Feed the parser what the client has sent already, without waiting.

        False when nothing is there (or the stream is not a plain socket): then
        :meth:`receive` waits. A closed or reset socket counts as EOF, as in ``_read``.
        """
        if self._fd < 0:
            return False
        try:
            data = os.read(self._fd, RECEIVE_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        self._feed(data)
        return True

    async def receive_while_streaming(self) -> bool:
        """Watch the receive side during a streamed response; False once the client left.

        Bytes that arrive meanwhile (a pipelined request) are kept for the next cycle,
        up to the head-size limit; past it the connection closes after this response.
        """
        sock = self._socket
        try:
            if sock is None:
                data = bytes(await self.stream.receive_some(RECEIVE_SIZE))
            else:
                data = await sock.recv(RECEIVE_SIZE)  # _read, inline: one frame less
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            return False
        if self.buffered_size() + len(data) > self.max_header_size:
            self.close_after = True
        else:
            self._keep(data)
        return True

    @abc.abstractmethod
    def _feed(self, data: bytes) -> None:
        """Hand ``data`` (``b""``: EOF) to the parser."""

    def _keep(self, data: bytes) -> None:
        """Keep ``data`` received during a stream for the next cycle (default: feed it)."""
        self._feed(data)

    @property
    @abc.abstractmethod
    def has_partial_head(self) -> bool:
        """True when some bytes of a request head have arrived."""

    @abc.abstractmethod
    def next_head(self) -> RequestHead | None:
        """The next request head if one is complete; None if more bytes are needed.

        When the parser has nothing left, what the client sent already is read first
        (:meth:`receive_ready`: a busy server usually finds the next request waiting,
        and then needs neither a wait nor its cancel scope).

        Raises WireError for a head that must be refused (the answer's status in it),
        and EOFError when the client closed instead of sending one.
        """

    @property
    def waiting_for_100_continue(self) -> bool:
        """The client sent ``Expect: 100-continue`` and we have not invited its body.

        (The expectation is remembered after a final response too, so an uninvited
        body is never waited for after the response either.)
        """
        return self._expects_continue and not self._continue_sent

    @property
    @abc.abstractmethod
    def body_pending(self) -> bool:
        """The request body has not been read to its end."""

    @abc.abstractmethod
    def next_body_event(self) -> bytes | BodyEvent:
        """The next body chunk, or :class:`BodyEvent` (need more bytes; the end).

        Raises WireError 400 for a malformed or cut-short body.
        """

    @property
    @abc.abstractmethod
    def trailing(self) -> bytes:
        """Bytes received after the current request (a pipelined one, WebSocket frames)."""

    @abc.abstractmethod
    def buffered_size(self) -> int:
        """How many received bytes wait in the parser."""

    # -- writing ---------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def response_started(self) -> bool:
        """A response head has been written (or could not be) for the current request."""

    @property
    @abc.abstractmethod
    def broken(self) -> bool:
        """A write failed or was cut short: nothing more may be written."""

    @abc.abstractmethod
    def _send_failed(self) -> None:
        """Record that a write did not complete (the framing is lost)."""

    async def _send(self, data: bytes) -> None:
        if self._fd >= 0:
            # The usual response fits the socket buffer: one write(2) between the two
            # halves of the checkpoint trio's send makes (a cancel point before, so a
            # cancelled write writes nothing; a schedule point after, which cannot
            # raise, so a write that happened is never reported as failed), without
            # its wrappers. What does not fit goes through trio (waits).
            await trio.lowlevel.checkpoint_if_cancelled()
            sent = self.write_now(data)
            if sent == len(data):
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            await self.send_rest(data, sent)
        else:
            await self.send_rest(data, 0)

    def write_now(self, data: bytes) -> int:
        """How much of ``data`` one ``write(2)`` took, on a plain socket (0 otherwise).

        The write of :meth:`_send` without its coroutine, for the complete response on
        the hot path: the caller makes the cancel point before it
        (``trio.lowlevel.checkpoint_if_cancelled``) and the schedule point after it (the
        connection loop does, where fewer coroutine levels pass it on), and sends what
        is left with :meth:`send_rest`.
        """
        if self._fd < 0:
            return 0
        try:
            sent = sockio.try_write(self._fd, data)
        except BaseException:
            self._send_failed()
            raise
        if sent == len(data):
            self.written_at = time.monotonic()  # the write, not the resumption
        return sent

    async def send_rest(self, data: bytes, sent: int) -> None:
        """Send ``data`` from byte ``sent`` on, waiting as needed: what :meth:`write_now`
        did not take (all of it, on a stream that is not a plain socket)."""
        sock = self._socket
        try:
            if sock is None:
                await self.stream.send_all(data)  # (write_now wrote nothing here)
            else:
                await sockio.send_all(sock, memoryview(data)[sent:] if sent else data)
        except BaseException:
            # Some unknown part of ``data`` may be out: the framing is lost, and the
            # connection is broken from now on.
            self._send_failed()
            raise
        self.written_at = time.monotonic()

    @abc.abstractmethod
    async def send_continue(self) -> None:
        """``100 Continue``: the client may send the body it announced."""

    def body_allowed(self, status: int) -> bool:
        """Whether a response with ``status`` to the current request may carry content."""
        return self._method != b"HEAD" and status not in NO_CONTENT

    async def send_response(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """A complete response in one write; the body is dropped where none is allowed.

        ``headers`` must not carry the framing headers: the length is set here.
        Raises :class:`InvalidResponse` for a head that cannot be sent.
        """
        await self._send(self.encode_response(status, headers, body))

    @abc.abstractmethod
    def encode_response(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> bytes:
        """The bytes of a complete response (as :meth:`send_response` sends them).

        From here on the wire counts the response as sent: the caller writes the bytes
        (``_send``) or the wire is broken.
        """

    @abc.abstractmethod
    async def send_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> Framing:
        """The head of a streamed response; returns (and keeps) the framing it declared."""

    async def send_fallback_error(self, status: int, body: bytes) -> None:
        """Answer ``status`` with a JSON ``body`` past the parser's state, and close.

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

    def _count_length(self, part: bytes | FilePart) -> None:  # noqa: B027 - optional hook
        """A backend that tracks a Content-Length body's bytes itself sees them here."""

    async def send_body(self, data: bytes) -> None:
        """Write ``data`` as part of the streamed body, framed as the head declared."""
        if not data:
            return
        if self.broken:
            raise trio.ClosedResourceError("the connection is broken")
        framing = self.framing
        if framing is Framing.CHUNKED:
            # RFC 9112 §7.1: chunk-size in hex, CRLF, the data, CRLF; one write per chunk.
            await self._send(b"%x\r\n%b\r\n" % (len(data), data))
        elif framing is Framing.LENGTH:
            if len(data) > self._remaining:
                raise ValueError(
                    f"the streamed body is longer than its Content-Length "
                    f"({self.body_bytes + len(data)} bytes or more)"
                )
            self._remaining -= len(data)
            self._count_length(data)
            await self._send(data)
        elif framing is Framing.CLOSE:
            await self._send(data)
        else:
            raise ValueError("this response has no body (HEAD, 204, 205 or 304)")
        self.body_bytes += len(data)

    @property
    def can_sendfile(self) -> bool:
        """Whether :meth:`send_file` may be used (plain TCP: the raw socket is ours)."""
        return self._socket is not None

    async def send_file(self, part: FilePart) -> None:
        """Write ``part`` of an open file as body, with ``os.sendfile`` (plain TCP only).

        The framing around it is written here (a chunk's size line and CRLF); the
        file's bytes go from the page cache to the socket without passing through us.
        """
        if self.broken:
            raise trio.ClosedResourceError("the connection is broken")
        framing = self.framing
        if framing is Framing.NONE:
            raise ValueError("this response has no body (HEAD, 204, 205 or 304)")
        if framing is Framing.LENGTH:
            if part.count > self._remaining:
                raise ValueError("the file body is longer than its Content-Length")
            self._remaining -= part.count
            self._count_length(part)
        assert self._socket is not None, "send_file needs plain TCP (see can_sendfile)"
        try:
            if framing is Framing.CHUNKED:
                await sockio.send_all(self._socket, b"%x\r\n" % part.count)
            await sockio.sendfile(self._socket, part.fd, part.offset, part.count)
            if framing is Framing.CHUNKED:
                await sockio.send_all(self._socket, b"\r\n")
        except BaseException:
            self._send_failed()
            raise
        self.body_bytes += part.count

    @abc.abstractmethod
    async def end_body(self) -> None:
        """Write the end of a streamed body (the terminating chunk on HTTP/1.1)."""

    async def abort(self) -> None:
        """Close the connection now, mid-response if need be (nothing more is written)."""
        if not self.broken:
            self._send_failed()
        with trio.CancelScope(shield=True):
            try:
                await trio.aclose_forcefully(self.stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    # -- the cycle -------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def reusable(self) -> bool:
        """The exchange ended cleanly on both sides: another request may follow."""

    def start_next_cycle(self) -> None:
        """Get ready for the next request on this connection."""
        self.framing = Framing.NONE
        self.body_bytes = 0
        self.head_sent = False

    @property
    @abc.abstractmethod
    def client_may_still_send(self) -> bool:
        """The client may be sending a body we will not read (an upload we refused)."""

    @property
    @abc.abstractmethod
    def their_http_version(self) -> bytes | None:
        """The client's HTTP version, once a request was read."""
