"""The h11 backend of the wire: the only module that speaks h11, the reference for behaviour.

h11 parses request heads and bodies and serialises response heads (and the end of a
body), so the state of the connection is h11's, not a flag of ours: every write that
did not complete is reported to it (``send_failed()``), after which nothing more is
written. :mod:`.checks` holds the rules h11 leaves to us (smuggling, ``Host``, sizes)
and what llhttp refuses where h11 would not (the stricter answer wins, so both
backends answer alike). Streamed bodies are framed by the seam (:mod:`.wire`); h11 is
told about Content-Length bytes so its own count stays exact.
"""

from __future__ import annotations

import h11
import trio

from ..types import FilePart, RequestHead
from .checks import ChunkLines, WireError, check_head, check_raw_head, request_line_too_long
from .wire import NO_CONTENT, BodyEvent, Framing, InvalidResponse, Wire, reason_phrase

__all__: list[str] = []

_CONTINUE = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")


def _framing_of(head: bytes, method: bytes, status: int) -> tuple[Framing, int]:
    """The framing the head h11 wrote declares (and the length, for LENGTH)."""
    if method == b"HEAD" or status in NO_CONTENT:
        return Framing.NONE, 0
    lowered = head.lower()
    if b"\r\ntransfer-encoding: chunked\r\n" in lowered:
        return Framing.CHUNKED, 0
    start = lowered.find(b"\r\ncontent-length: ")
    if start >= 0:
        start += len(b"\r\ncontent-length: ")
        return Framing.LENGTH, int(lowered[start : lowered.index(b"\r\n", start)])
    return Framing.CLOSE, 0


def _refusal(exc: h11.RemoteProtocolError, raw: bytes | bytearray, max_target: int) -> WireError:
    status = exc.error_status_hint
    if status == 431 and request_line_too_long(raw, max_target):
        return WireError(414, "Request-URI too long")
    if status == 431:
        return WireError(431, "Request header fields too large")
    return WireError(status, f"Bad request: {exc}")


def verdict(
    raw: bytes, max_header_size: int, max_target_size: int
) -> tuple[WireError, bool] | None:
    """What the h11 backend answers the complete head at the start of ``raw`` (None: it
    would serve it), and whether h11 would have kept the connection alive (which decides
    how the refusal's ``Connection: close`` is written). For the other backend, so that
    what both refuse is refused as h11 does."""
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_size)
    connection.receive_data(raw)
    try:
        event = connection.next_event()
    except h11.RemoteProtocolError as exc:
        return _refusal(exc, raw, max_target_size), True
    if type(event) is not h11.Request:
        return None
    headers: list[tuple[bytes, bytes]] = event.headers  # type: ignore[assignment]
    head = RequestHead(event.method, event.target, event.http_version, headers)
    try:
        check_head(head, raw, max_header_size, max_target_size)
        check_raw_head(raw)
    except WireError as error:
        return error, connection.our_state is not h11.MUST_CLOSE
    return None


class H11Wire(Wire):
    """h11 over one Trio stream (see the module docstring)."""

    __slots__ = ("_chunk_error", "_chunks", "_h11", "_head_bytes", "_starved")

    def __init__(
        self, stream: trio.abc.Stream, *, max_header_size: int, max_target_size: int
    ) -> None:
        super().__init__(stream, max_header_size=max_header_size, max_target_size=max_target_size)
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_size)
        # The bytes of the head being read, for the checks h11's parsed form hides
        # (a repeated Content-Length it folded into one, bare LF, obs-fold).
        self._head_bytes = bytearray()
        # h11 said NEED_DATA and nothing was fed since: asking again would only cost.
        self._starved = True
        # A chunked body's framing lines, checked as strictly as llhttp does (checks).
        self._chunks: ChunkLines | None = None
        self._chunk_error: WireError | None = None

    # -- reading ---------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if self._h11.their_state is h11.IDLE and len(self._head_bytes) <= self.max_header_size:
            self._head_bytes += data
        if self._chunks is not None:
            self._watch_chunks(data)
        self._h11.receive_data(data)
        self._starved = False

    def _watch_chunks(self, data: bytes) -> None:
        assert self._chunks is not None
        try:
            self._chunks.feed(data)
        except WireError as error:
            self._chunk_error = error
            self._chunks = None
        else:
            if self._chunks.done:
                self._chunks = None

    @property
    def has_partial_head(self) -> bool:
        return bool(self._head_bytes)

    def next_head(self) -> RequestHead | None:
        if self._starved and not self.receive_ready():
            return None
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            raise _refusal(exc, self._head_bytes, self.max_target_size) from None
        if event is h11.NEED_DATA:
            self._starved = True
            return None
        if type(event) is not h11.Request:
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
            self.declared_length, chunked, self.proxied = check_head(
                head, raw, self.max_header_size, self.max_target_size
            )
            check_raw_head(raw)
        except WireError:
            self.close_after = True
            raise
        if chunked:
            self._chunks = ChunkLines()
            self._watch_chunks(self.trailing)
        elif not self.declared_length:
            # No body: take h11's EndOfMessage now, so nobody needs to read a body.
            self._h11.next_event()
        return head

    @property
    def body_pending(self) -> bool:
        return self._h11.their_state is h11.SEND_BODY

    def next_body_event(self) -> bytes | BodyEvent:
        if self._chunk_error is not None:
            self.close_after = True
            raise self._chunk_error
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            self.close_after = True
            raise WireError(400, f"Malformed request body: {exc}") from None
        if event is h11.NEED_DATA:
            return BodyEvent.NEED_DATA
        if type(event) is h11.Data:
            return bytes(event.data)
        if type(event) is h11.EndOfMessage:
            return BodyEvent.END
        self.close_after = True
        raise WireError(400, "The request body ended early")

    @property
    def trailing(self) -> bytes:
        return bytes(self._h11.trailing_data[0])

    def buffered_size(self) -> int:
        return len(self._h11.trailing_data[0])

    # -- writing ---------------------------------------------------------------------------

    @property
    def response_started(self) -> bool:
        state = self._h11.our_state
        return state is not h11.SEND_RESPONSE and state is not h11.IDLE

    @property
    def broken(self) -> bool:
        return self._h11.our_state is h11.ERROR

    def _send_failed(self) -> None:
        # h11's rule: report it, and the connection is in ERROR from now on.
        self._h11.send_failed()

    async def send_continue(self) -> None:
        self._continue_sent = True
        await self._send(self._h11.send(_CONTINUE) or b"")

    def encode_response(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> bytes:
        h = self._h11
        if status == 205:
            headers.append((b"content-length", b"0"))
        elif status != 204 and status != 304:
            # HEAD: the length the GET body would have (RFC 9110 §9.3.2), no body.
            headers.append((b"content-length", b"%d" % len(body)))
        data = self._send_head_event(status, headers)
        if body and self.body_allowed(status):
            data += h.send(h11.Data(data=body)) or b""
            self.body_bytes = len(body)
        data += h.send(h11.EndOfMessage()) or b""
        self.head_sent = True
        return data

    async def send_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> Framing:
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

    def _count_length(self, part: bytes | FilePart) -> None:
        # h11 frames nothing here, but counts: its EndOfMessage checks the length.
        self._h11.send_with_data_passthrough(h11.Data(data=part))  # type: ignore[arg-type]

    async def end_body(self) -> None:
        if self.broken or self._h11.our_state is not h11.SEND_BODY:
            return
        if self.framing is Framing.LENGTH and self._remaining:
            raise ValueError(
                f"the streamed body ended {self._remaining} bytes short of its Content-Length"
            )
        end = self._h11.send(h11.EndOfMessage())
        if end:  # nothing at all after a Content-Length body: no empty write
            await self._send(end)

    # -- the cycle -------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        h = self._h11
        return not self.close_after and h.our_state is h11.DONE and h.their_state is h11.DONE

    def start_next_cycle(self) -> None:
        self._h11.start_next_cycle()
        super().start_next_cycle()
        pending = self._h11.trailing_data[0]
        if pending:
            # A pipelined head is already here: its bytes count toward its checks.
            self._head_bytes = bytearray(pending[: self.max_header_size + 1])
        self._starved = not pending

    @property
    def client_may_still_send(self) -> bool:
        return self._h11.their_state in (h11.SEND_BODY, h11.ERROR) and not self.broken

    @property
    def their_http_version(self) -> bytes | None:
        return self._h11.their_http_version
