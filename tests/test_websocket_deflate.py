"""permessage-deflate (RFC 7692): the pure negotiation and codec, then real clients.

The pure half drives :mod:`trio_h3.websocket.deflate` with no I/O (offers in, answers
out; bytes in, bytes out). The real half negotiates with the ``websockets`` library
(which offers compression by default, as browsers do) over TCP, compression on and off,
and with wsproto's own client extension.
"""

from __future__ import annotations

import logging
import os
import tracemalloc
import zlib
from typing import Any

import pytest
import trio
import wsproto
import wsproto.events as wse
from helpers import RunServer
from trio_websocket import open_websocket_url
from websockets.exceptions import ConnectionClosed as WsLibClosed
from websockets.extensions.permessage_deflate import PerMessageDeflate as WsLibDeflate
from websockets.sync.client import connect as ws_connect
from wsproto.extensions import PerMessageDeflate

from trio_h3 import H3
from trio_h3.websocket import WebSocket, WebSocketClosed
from trio_h3.websocket.deflate import Agreement, DeflateError, Deflater, Inflater, negotiate

# ----------------------------------------------------------------------------- negotiation


@pytest.mark.parametrize(
    ("offer", "response"),
    [
        ("permessage-deflate", "server_max_window_bits=12"),
        (
            "permessage-deflate; client_max_window_bits",  # what Chromium and Firefox offer
            "server_max_window_bits=12; client_max_window_bits=12",
        ),
        (
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
            "server_max_window_bits=10; client_max_window_bits=9",
        ),
        (
            "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15",
            "server_max_window_bits=12; client_max_window_bits=12",
        ),
        (
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
            "server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
        ),
        ('permessage-deflate; server_max_window_bits="11"', "server_max_window_bits=11"),
        ("Permessage-Deflate; Client_Max_Window_Bits", "server_max_window_bits=12; "
         "client_max_window_bits=12"),
        ("permessage-deflate; client_max_window_bits=8", "server_max_window_bits=12; "
         "client_max_window_bits=8"),
    ],
)  # fmt: skip
def test_offers_we_accept(offer: str, response: str) -> None:
    agreement = negotiate(offer)
    assert agreement is not None
    assert agreement.response() == response


@pytest.mark.parametrize(
    "offer",
    [
        "x-webkit-deflate-frame",
        "permessage-deflate; unknown_parameter",
        "permessage-deflate; client_max_window_bits; client_max_window_bits",
        "permessage-deflate; server_max_window_bits",  # needs a value
        "permessage-deflate; server_max_window_bits=8",  # zlib cannot deflate with 8
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=09",  # no leading zero
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=1x",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate;",
    ],
)
def test_offers_we_decline(offer: str) -> None:
    assert negotiate(offer) is None


# ----------------------------------------------------------------------------- the codec

AGREEMENT = Agreement(False, False, 12, None)


def client_compress(messages: list[bytes], *, context_takeover: bool = True) -> list[bytes]:
    """Messages compressed as a client would (RFC 7692 §7.2.1)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = []
    for message in messages:
        data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        out.append(data[:-4])
        if not context_takeover:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return out


def inflate_message(inflater: Inflater, payload: bytes, *, text: bool = False) -> bytes:
    inflater.frame_header(opcode=0x1 if text else 0x2, rsv1=True)
    return inflater.frame_data(payload) + inflater.frame_end(fin=True)


def test_round_trip_with_context_takeover() -> None:
    messages = [b"hello " * 50, b"hello " * 50 + b"again", os.urandom(3000), b""]
    inflater = Inflater(AGREEMENT, 1 << 20)
    for message, payload in zip(messages, client_compress(messages), strict=True):
        assert inflate_message(inflater, payload) == message
    deflater = Deflater(AGREEMENT)
    reader = zlib.decompressobj(-12)
    for message in messages:
        compressed = deflater.message(message, fin=True)
        assert reader.decompress(compressed + b"\x00\x00\xff\xff") == message
    # Context takeover pays: the repeated message costs a few bytes the second time.
    assert len(deflater.message(messages[0], fin=True)) < 10


def test_no_context_takeover_resets_both_sides() -> None:
    agreement = Agreement(True, True, 10, 10)
    messages = [b"abc" * 100, b"abc" * 100]
    inflater = Inflater(agreement, 1 << 20)
    for message, payload in zip(
        messages, client_compress(messages, context_takeover=False), strict=True
    ):
        assert inflate_message(inflater, payload) == message
    deflater = Deflater(agreement)
    first = deflater.message(messages[0], fin=True)
    assert deflater.message(messages[1], fin=True) == first


def test_a_fragmented_message_with_a_ping_between_its_fragments() -> None:
    (payload,) = client_compress([b"fragmented " * 100])
    inflater = Inflater(AGREEMENT, 1 << 20)
    inflater.frame_header(opcode=0x1, rsv1=True)
    out = inflater.frame_data(payload[:10]) + inflater.frame_end(fin=False)
    inflater.frame_header(opcode=0x9, rsv1=False)  # a ping between the fragments
    assert inflater.frame_data(b"ping!") == b"ping!"
    assert inflater.frame_end(fin=True) == b""
    inflater.frame_header(opcode=0x0, rsv1=False)
    out += inflater.frame_data(payload[10:]) + inflater.frame_end(fin=True)
    assert out == b"fragmented " * 100


def test_an_uncompressed_message_passes_through() -> None:
    inflater = Inflater(AGREEMENT, 10)
    inflater.frame_header(opcode=0x2, rsv1=False)
    assert inflater.frame_data(b"plain bytes, longer than ten") == b"plain bytes, longer than ten"
    assert inflater.frame_end(fin=True) == b""


@pytest.mark.parametrize(("opcode", "name"), [(0x9, "ping"), (0x8, "close"), (0x0, "cont")])
def test_rsv1_only_on_the_first_data_frame(opcode: int, name: str) -> None:
    inflater = Inflater(AGREEMENT, 100)
    with pytest.raises(DeflateError) as info:
        inflater.frame_header(opcode=opcode, rsv1=True)
    assert info.value.code == 1002


def test_corrupt_data_is_1007() -> None:
    inflater = Inflater(AGREEMENT, 100)
    inflater.frame_header(opcode=0x2, rsv1=True)
    with pytest.raises(DeflateError) as info:
        inflater.frame_data(b"\xff\xff\xff\xff not deflate")
    assert info.value.code == 1007


def test_a_zip_bomb_is_refused_having_inflated_no_more_than_the_limit() -> None:
    limit = 1 << 20
    (bomb,) = client_compress([bytes(200 << 20)])  # 200 MiB of zeros: ~200 KiB on the wire
    assert len(bomb) < 300 << 10
    inflater = Inflater(AGREEMENT, limit)
    inflater.frame_header(opcode=0x2, rsv1=True)
    tracemalloc.start()
    try:
        with pytest.raises(DeflateError) as info:
            for start in range(0, len(bomb), 65536):  # as the reader feeds it
                inflater.frame_data(bomb[start : start + 65536])
            inflater.frame_end(fin=True)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == 1009
    assert peak < 3 * limit
    # The next message starts afresh (the connection is failed anyway, but the codec
    # holds no state that could grow).


def test_the_limit_counts_the_whole_message_across_frames() -> None:
    limit = 1000
    (payload,) = client_compress([os.urandom(1200)])
    inflater = Inflater(AGREEMENT, limit)
    inflater.frame_header(opcode=0x2, rsv1=True)
    with pytest.raises(DeflateError):
        for start in range(0, len(payload), 100):
            inflater.frame_data(payload[start : start + 100])
        inflater.frame_end(fin=True)
    # Exactly the limit is fine.
    (payload,) = client_compress([os.urandom(limit)])
    assert len(inflate_message(Inflater(AGREEMENT, limit), payload)) == limit


def test_text_may_inflate_to_four_bytes_per_character() -> None:
    text = "€" * 300  # 900 bytes of UTF-8, 300 characters
    (payload,) = client_compress([text.encode()])
    assert inflate_message(Inflater(AGREEMENT, 300), payload, text=True) == text.encode()
    (payload,) = client_compress([b"a" * 1201])
    with pytest.raises(DeflateError):
        inflate_message(Inflater(AGREEMENT, 300), payload, text=True)


# ----------------------------------------------------------------------------- real clients


def make_app(closes: list[int] | None = None) -> H3:
    app = H3()

    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    app.ws("/echo", echo)
    app.ws("/plain", echo, compression=None)

    @app.ws("/small", max_message_size=64 * 1024)
    async def small(ws: WebSocket) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except WebSocketClosed as exc:
            if closes is not None:
                closes.append(exc.code)

    return app


def websockets_session(port: int, path: str, compression: str | None) -> dict[str, Any]:
    """Runs in a worker thread: the websockets library's sync client."""
    out: dict[str, Any] = {}
    with ws_connect(
        f"ws://127.0.0.1:{port}{path}",
        compression=compression,
        max_size=8 << 20,
        open_timeout=5,
        close_timeout=5,
    ) as client:
        assert client.response is not None
        out["header"] = client.response.headers.get("Sec-WebSocket-Extensions")
        out["deflate"] = [e for e in client.protocol.extensions if isinstance(e, WsLibDeflate)]
        text = '{"event": "tick", "n": 1}' * 200
        client.send(text)
        out["text"] = client.recv(timeout=5) == text
        blob = os.urandom(100_000) + bytes(500_000)
        client.send(blob)
        out["binary"] = client.recv(timeout=5) == blob
        for i in range(50):  # context takeover over many messages
            client.send(f"message {i} " * 20)
            assert client.recv(timeout=5) == f"message {i} " * 20
    return out


async def test_websockets_client_negotiates_and_round_trips(running_server: RunServer) -> None:
    async with running_server(make_app(), ws_ping_interval=None) as server:
        out = await trio.to_thread.run_sync(websockets_session, server.port, "/echo", "deflate")
    assert out["header"] == (
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    )
    assert len(out["deflate"]) == 1
    assert out["text"] and out["binary"]


@pytest.mark.parametrize(
    ("path", "client_compression", "server_options"),
    [
        ("/echo", None, {}),  # the client does not offer
        ("/plain", "deflate", {}),  # the route declines
        ("/echo", "deflate", {"ws_compression": None}),  # the server declines
    ],
)
async def test_compression_off(
    running_server: RunServer,
    path: str,
    client_compression: str | None,
    server_options: dict[str, Any],
) -> None:
    async with running_server(make_app(), ws_ping_interval=None, **server_options) as server:
        out = await trio.to_thread.run_sync(
            websockets_session, server.port, path, client_compression
        )
    assert out["header"] is None
    assert out["deflate"] == []
    assert out["text"] and out["binary"]


def websockets_bomb(port: int) -> tuple[int | None, str | None]:
    with ws_connect(
        f"ws://127.0.0.1:{port}/small", open_timeout=5, close_timeout=5, max_size=None
    ) as client:
        client.send(bytes(64 << 20))  # 64 MiB of zeros: ~64 KiB compressed
        try:
            client.recv(timeout=10)
        except WsLibClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, None)
    return (None, None)


async def test_a_compressed_message_too_big_closes_1009(
    running_server: RunServer, caplog: pytest.LogCaptureFixture
) -> None:
    closes: list[int] = []
    async with running_server(make_app(closes), ws_ping_interval=None) as server:
        code, reason = await trio.to_thread.run_sync(websockets_bomb, server.port)
        with trio.fail_after(5):
            while not closes:
                await trio.sleep(0.01)
    assert code == 1009  # a close frame, not just a dropped connection
    assert reason == "Exceeded maximum message size: 65536 bytes"
    assert closes == [1009]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_trio_websocket_client_does_not_offer_compression(
    running_server: RunServer,
) -> None:
    async with running_server(make_app(), ws_ping_interval=None) as server:
        async with open_websocket_url(f"ws://127.0.0.1:{server.port}/echo") as client:
            await client.send_message("uncompressed")
            assert await client.get_message() == "uncompressed"
            names = {name.lower() for name, _value in client.handshake_headers}
            assert b"sec-websocket-extensions" not in names


async def test_wsproto_client_extension_with_fragments_and_a_ping(
    running_server: RunServer,
) -> None:
    """Another implementation of RFC 7692 (wsproto's client side), frame by frame."""
    async with running_server(make_app(), ws_ping_interval=None) as server:
        client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        stream = await trio.open_tcp_stream(server.host, server.port)
        async with stream:
            request = wse.Request(host="x", target="/echo", extensions=[PerMessageDeflate()])
            await stream.send_all(client.send(request))
            events: list[wse.Event] = []

            async def pump() -> None:
                data = await stream.receive_some()
                assert data
                client.receive_data(data)
                events.extend(client.events())

            with trio.fail_after(5):
                while not any(isinstance(e, wse.AcceptConnection) for e in events):
                    await pump()
            accept = next(e for e in events if isinstance(e, wse.AcceptConnection))
            assert [type(e) for e in accept.extensions] == [PerMessageDeflate]
            # A message in three fragments with a ping in between.
            text = "compressible " * 400
            await stream.send_all(client.send(wse.TextMessage(text[:100], message_finished=False)))
            await stream.send_all(client.send(wse.Ping(b"between")))
            await stream.send_all(
                client.send(wse.TextMessage(text[100:3000], message_finished=False))
            )
            await stream.send_all(client.send(wse.TextMessage(text[3000:])))
            got = ""
            with trio.fail_after(5):
                while not got.endswith("compressible "):
                    await pump()
                    got = "".join(e.data for e in events if isinstance(e, wse.TextMessage))
            assert got == text
            assert any(isinstance(e, wse.Pong) for e in events)
