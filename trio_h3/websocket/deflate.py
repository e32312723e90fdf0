"""permessage-deflate (RFC 7692): the negotiation and bounded (de)compression. Pure.

Stdlib only (``zlib``); :mod:`._adapter` plugs it into wsproto's extension hooks.

- :func:`negotiate` answers one offer from ``Sec-WebSocket-Extensions`` the way RFC 7692
  §7.1 requires: an offer with an unknown, duplicated or malformed parameter, or one we
  cannot honour (``server_max_window_bits=8``: zlib cannot deflate with a 256-byte
  window), is declined, and the next offer is tried;
- :class:`Inflater` decompresses a message at most up to its size limit: a small frame
  that would inflate past ``max_message_size`` (a "zip bomb") fails the connection with
  1009 after inflating no more than the limit, never the whole thing;
- :class:`Deflater` compresses outgoing messages.

Memory: a connection that negotiated compression holds a compressor (about 32 KiB with
the defaults below) and a decompressor (about 11 KiB; 39 KiB if the client did not let
us limit its window), as websockets' defaults do.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final, Protocol

__all__: list[str] = []

EXTENSION_NAME: Final = "permessage-deflate"

# Our window for what we send, and the one we ask the client to use when it lets us:
# 4 KiB instead of zlib's 32 KiB per direction, and memLevel 5 (16 KiB of hash state
# instead of 128 KiB). websockets' defaults (server_max_window_bits=12,
# client_max_window_bits=12, memLevel=5), which trade a little ratio for memory that
# stays small with thousands of connections.
SERVER_MAX_WINDOW_BITS: Final = 12
CLIENT_MAX_WINDOW_BITS: Final = 12
MEM_LEVEL: Final = 5
# zlib's own default level (6).
LEVEL: Final = zlib.Z_DEFAULT_COMPRESSION

# RFC 7692 §7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end of the
# payload of the message" before inflating; §7.2.1 removes them after deflating.
_TAIL: Final = b"\x00\x00\xff\xff"

# A text message of N characters is at most 4N bytes of UTF-8; the limit of a message
# is in len() terms (characters for text, as trio-websocket counts), so text may inflate
# to four times the limit before it is certainly too big.
_UTF8_MAX_BYTES_PER_CHAR: Final = 4

_PARAMETERS: Final = frozenset(
    {
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    }
)


class _DecompressObject(Protocol):
    # What zlib.decompressobj() returns (its class is private to zlib).
    @property
    def eof(self) -> bool: ...
    def decompress(self, data: bytes, max_length: int = 0, /) -> bytes: ...


class _CompressObject(Protocol):
    # What zlib.compressobj() returns.
    def compress(self, data: bytes, /) -> bytes: ...
    def flush(self, mode: int = zlib.Z_FINISH, /) -> bytes: ...


@dataclass(frozen=True)
class Agreement:
    """The parameters both sides use once an offer was accepted (RFC 7692 §7.1)."""

    #: We reset our compressor after every message.
    server_no_context_takeover: bool
    #: The client resets its compressor after every message (so we drop our decompressor).
    client_no_context_takeover: bool
    #: The LZ77 window we compress with (9-15).
    server_max_window_bits: int
    #: The window the client may compress with, if we said so; None: up to 15.
    client_max_window_bits: int | None

    def response(self) -> str:
        """The extension's parameters for ``Sec-WebSocket-Extensions`` in the 101."""
        params = []
        if self.server_no_context_takeover:
            params.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            params.append("client_no_context_takeover")
        params.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits is not None:
            params.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(params)


def _window_bits(value: str) -> int | None:
    # RFC 7692 §7.1.2.1: "1*DIGIT" that "MUST NOT start with a leading zero", in 8-15
    # (a quoted-string is unquoted first).
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value.isascii() or not value.isdigit() or value.startswith("0"):
        return None
    bits = int(value)
    return bits if 8 <= bits <= 15 else None


def _parameters(offer: str) -> dict[str, str | None] | None:
    """The parameters of one ``permessage-deflate`` offer, or None if it must be declined."""
    name, *items = (part.strip() for part in offer.split(";"))
    if name.lower() != EXTENSION_NAME:
        return None
    params: dict[str, str | None] = {}
    for item in items:
        key, equals, value = item.partition("=")
        key = key.strip().lower()
        # RFC 7692 §7.1: decline an offer with "an extension parameter not defined for
        # use in an offer", or "multiple extension parameters with the same name".
        if key not in _PARAMETERS or key in params:
            return None
        params[key] = value.strip() if equals else None
    return params


def negotiate(
    offer: str,
    *,
    server_max_window_bits: int = SERVER_MAX_WINDOW_BITS,
    client_max_window_bits: int = CLIENT_MAX_WINDOW_BITS,
) -> Agreement | None:
    """Our answer to one ``permessage-deflate`` offer, or None to decline it.

    ``offer`` is one element of the client's ``Sec-WebSocket-Extensions`` (for example
    ``"permessage-deflate; client_max_window_bits"``). We always limit our own window to
    ``server_max_window_bits`` (allowed even if not offered, §7.1.2.1), and the client's
    to ``client_max_window_bits`` when it offered that parameter (§7.1.2.2); the
    no-context-takeover parameters are honoured as offered.
    """
    params = _parameters(offer)
    if params is None:
        return None
    for flag in ("server_no_context_takeover", "client_no_context_takeover"):
        if flag in params and params[flag] is not None:
            return None  # these parameters have no value (§7.1.1)
    server_bits = server_max_window_bits
    if "server_max_window_bits" in params:
        value = params["server_max_window_bits"]
        offered = None if value is None else _window_bits(value)
        if offered is None:
            return None  # this one needs a value (§7.1.2.1)
        server_bits = min(offered, server_max_window_bits)
    if server_bits < 9:
        # zlib cannot deflate with a 256-byte window: "the server doesn't support the
        # offered configuration" (§7.1), so this offer is declined.
        return None
    client_bits: int | None = None
    if "client_max_window_bits" in params:
        value = params["client_max_window_bits"]
        if value is None:
            client_bits = client_max_window_bits
        else:
            offered = _window_bits(value)
            if offered is None:
                return None
            client_bits = min(offered, client_max_window_bits)
    return Agreement(
        server_no_context_takeover="server_no_context_takeover" in params,
        client_no_context_takeover="client_no_context_takeover" in params,
        server_max_window_bits=server_bits,
        client_max_window_bits=client_bits,
    )


class DeflateError(Exception):
    """A compressed message cannot be accepted; ``code`` is the close code to fail with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Inflater:
    """Decompresses incoming messages, frame by frame, never past the message limit.

    Driven with the frame hooks wsproto has: :meth:`frame_header` for each frame,
    :meth:`frame_data` for each piece of its payload, :meth:`frame_end` once the frame's
    payload is complete. Control frames pass through untouched. Raises
    :class:`DeflateError` to fail the connection.
    """

    def __init__(self, agreement: Agreement, max_message_size: int) -> None:
        self._agreement = agreement
        self._max_message_size = max_message_size
        # Inflating needs a window at least as large as the client's; zlib's smallest
        # raw window is 9 bits, and a larger one is always safe.
        self._window_bits = max(9, agreement.client_max_window_bits or 15)
        self._decompressor: _DecompressObject | None = None
        self._frame_inflates = False
        self._frame_is_control = False
        self._message_compressed = False
        self._message_limit = max_message_size
        self._inflated = 0

    def frame_header(self, *, opcode: int, rsv1: bool) -> None:
        """A frame starts: ``opcode`` (RFC 6455 §5.2) and its RSV1 bit."""
        self._frame_is_control = opcode >= 0x8
        if self._frame_is_control or opcode == 0x0:
            # RFC 7692 §6.1: the "Per-Message Compressed" bit is set on "the first frame
            # of the message" only; "An endpoint MUST NOT set the 'Per-Message
            # Compressed' bit of control frames and non-first fragments of a data message."
            if rsv1:
                raise DeflateError(1002, "RSV1 set on a control frame or a continuation")
            self._frame_inflates = not self._frame_is_control and self._message_compressed
            return
        # The first frame of a data message (text 0x1, binary 0x2).
        self._message_compressed = rsv1
        self._inflated = 0
        self._message_limit = self._max_message_size * (
            _UTF8_MAX_BYTES_PER_CHAR if opcode == 0x1 else 1
        )
        self._frame_inflates = rsv1

    def frame_data(self, data: bytes) -> bytes:
        """One piece of the current frame's payload, inflated if the message is."""
        if not self._frame_inflates:
            return data
        return self._inflate(data)

    def frame_end(self, *, fin: bool) -> bytes:
        """The current frame's payload is complete; the rest of a message ended by ``fin``."""
        if self._frame_is_control or not fin:
            return b""
        if not self._message_compressed:
            return b""
        self._message_compressed = False
        data = self._inflate(_TAIL)
        assert self._decompressor is not None
        if self._agreement.client_no_context_takeover or self._decompressor.eof:
            # No context to take over into the next message (a sender that ended the
            # message with a final block, §7.2.3.4, starts a new stream next time).
            self._decompressor = None
        return data

    def _inflate(self, data: bytes) -> bytes:
        if self._decompressor is None:
            self._decompressor = zlib.decompressobj(-self._window_bits)
        room = self._message_limit - self._inflated
        try:
            # At most one byte past the room left: enough to know it does not fit,
            # without inflating the rest.
            out = self._decompressor.decompress(data, room + 1)
        except zlib.error as exc:
            raise DeflateError(1007, f"invalid compressed data: {exc}") from None
        if len(out) > room:
            raise DeflateError(
                1009, f"Exceeded maximum message size: {self._max_message_size} bytes"
            )
        self._inflated += len(out)
        return out


class Deflater:
    """Compresses outgoing messages (RFC 7692 §7.2.1), keeping context unless agreed not to."""

    def __init__(self, agreement: Agreement) -> None:
        self._agreement = agreement
        self._compressor: _CompressObject | None = None

    def message(self, data: bytes, *, fin: bool) -> bytes:
        """``data`` compressed; with ``fin`` the message is flushed and its tail removed."""
        if self._compressor is None:
            self._compressor = zlib.compressobj(
                LEVEL, zlib.DEFLATED, -self._agreement.server_max_window_bits, MEM_LEVEL
            )
        out = self._compressor.compress(data)
        if fin:
            # §7.2.1: flush so the data ends with an empty stored block, then "Remove 4
            # octets (that are 0x00 0x00 0xff 0xff) from the tail end".
            out += self._compressor.flush(zlib.Z_SYNC_FLUSH)
            out = out[:-4]
            if self._agreement.server_no_context_takeover:
                self._compressor = None
        return out
