"""WebSocket routes through the public API: ``app.ws``, ``serve`` and ``TestClient``.

Time-dependent behaviour (keepalive, shutdown grace) runs under MockClock with the
in-memory TestClient; real-socket behaviour runs against ``serve`` on 127.0.0.1.
"""

from __future__ import annotations

import base64
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing
import wsproto
import wsproto.events as wse
from helpers import RunServer, close_reason, parse_responses, read_until_eof, read_websocket_events
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from trio_h3 import H3, H3Event
from trio_h3.testing import TestClient
from trio_h3.websocket import WebSocket, WebSocketClosed

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")


def code_of(exc: ConnectionClosed) -> int:
    assert exc.reason is not None
    return exc.reason.code


def make_app() -> H3:
    app = H3()

    @app.use
    async def auth(event: H3Event, next: Any) -> Any:
        if event.path.startswith("/private") and event.query.get("token") != "secret":
            return _unauthorised()
        event.context["user"] = "ada"
        return await next()

    @app.ws("/echo")
    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    @app.ws("/rooms/:room", ping_interval=None, max_message_size=64)
    async def room(ws: WebSocket) -> None:
        if ws.event.query.get("token") == "wrong":
            await ws.reject(403, "forbidden")
            return
        await ws.accept(subprotocol="chat.v1" if "chat.v1" in ws.subprotocols else None)
        await ws.send(f"{ws.event.params['room']}:{ws.event.context['user']}")
        async for message in ws:
            await ws.send(message)

    @app.ws("/private/ws")
    async def private(ws: WebSocket) -> None:
        await ws.send("inside")

    return app


def _unauthorised() -> Any:
    from trio_h3.errors import HTTPError

    raise HTTPError(401, "Unauthorised")


# ----------------------------------------------------------------------------- TestClient


async def rejection(client: TestClient, path: str) -> ConnectionRejected:
    """The ConnectionRejected from ``client.websocket(path)`` (raised as itself)."""
    with pytest.raises(ConnectionRejected) as info:
        async with client.websocket(path):
            pass
    return info.value


async def test_echo_through_test_client() -> None:
    async with TestClient(make_app()) as client:
        async with client.websocket("/echo") as ws:
            await ws.send_message("hi")
            assert await ws.get_message() == "hi"
            await ws.send_message(b"\x01")
            assert await ws.get_message() == b"\x01"


async def test_event_params_context_and_subprotocol() -> None:
    async with TestClient(make_app()) as client:
        async with client.websocket("/rooms/lobby", subprotocols=["chat.v1"]) as ws:
            assert ws.subprotocol == "chat.v1"
            assert await ws.get_message() == "lobby:ada"


async def test_route_max_message_size_closes_1009() -> None:
    async with TestClient(make_app()) as client:
        async with client.websocket("/rooms/a") as ws:
            await ws.get_message()
            await ws.send_message("x" * 65)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert close_reason(closed.value).code == 1009


async def test_reject_and_middleware_answer_before_the_upgrade() -> None:
    async with TestClient(make_app()) as client:
        rejected = await rejection(client, "/rooms/a?token=wrong")
        assert rejected.status_code == 403
        assert rejected.body == b"forbidden"
        unauthorised = await rejection(client, "/private/ws")
        assert unauthorised.status_code == 401
        async with client.websocket("/private/ws?token=secret") as ws:
            assert await ws.get_message() == "inside"


async def test_plain_get_is_426_and_bad_handshake_is_400() -> None:
    async with TestClient(make_app()) as client:
        plain = await client.get("/echo")
        assert plain.status == 426
        assert plain.headers.get("upgrade") == "websocket"
        bad = await client.get(
            "/echo",
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Version": "8",
                "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            },
        )
        assert bad.status == 400


async def test_keepalive_keeps_a_responsive_client(autojump_clock: trio.testing.MockClock) -> None:
    app = H3()
    ended: list[int | None] = []

    @app.ws("/ws", ping_interval=5, ping_timeout=5)
    async def handler(ws: WebSocket) -> None:
        try:
            async for _message in ws:
                pass
        finally:
            ended.append(ws.close_code)

    async with TestClient(app) as client:
        async with client.websocket("/ws") as ws:
            # trio-websocket's client answers pings by itself: a minute of pings is fine.
            await trio.sleep(60)
            await ws.send_message("still here")
            await trio.sleep(1)
            assert ended == []
    assert trio.current_time() < 120


async def test_keepalive_closes_when_no_pong(autojump_clock: trio.testing.MockClock) -> None:
    app = H3()
    outcome: list[Any] = []

    @app.ws("/ws", ping_interval=5, ping_timeout=3)
    async def handler(ws: WebSocket) -> None:
        try:
            await ws.accept()
            await trio.sleep_forever()  # not reading: must be cancelled, not left behind
        finally:
            outcome.append((ws.close_code, ws.close_reason, trio.current_time()))

    async with TestClient(app) as client:
        stream = await client.open_stream()
        wsc = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        await stream.send_all(wsc.send(wse.Request(host="testserver", target="/ws")))
        start = trio.current_time()
        # Read, but never answer: the pong never comes.
        with trio.fail_after(60):
            events, _ = await read_websocket_events(stream, wsc)
        closes = [e for e in events if isinstance(e, wse.CloseConnection)]
        assert closes and closes[0].code == 1011
        assert any(isinstance(e, wse.Ping) for e in events)
    code, reason, when = outcome[0]
    assert (code, reason) == (1011, "keepalive ping timeout")
    assert when - start == pytest.approx(8)  # 5 s interval + 3 s timeout


async def test_shutdown_closes_with_1001_and_cancels_a_busy_handler(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = H3()
    cancelled = trio.Event()
    cancelled_at: list[float] = []
    accepted = trio.Event()

    @app.ws("/ws", ping_interval=None)
    async def handler(ws: WebSocket) -> None:
        await ws.accept()
        accepted.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled_at.append(trio.current_time())
            cancelled.set()

    async with TestClient(app, stream_shutdown_grace=2.0) as client:
        async with client.websocket("/ws") as ws:
            await accepted.wait()
            start = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.shutdown)
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
                assert close_reason(closed.value).code == 1001
            await cancelled.wait()
    # The client answered the close at once, so the handler was cancelled then, not
    # at the end of the 2 s grace.
    assert cancelled_at == [start]


async def test_shutdown_lets_a_receiving_handler_see_1001(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = H3()
    seen: list[int] = []

    @app.ws("/ws", ping_interval=None)
    async def handler(ws: WebSocket) -> None:
        try:
            while True:
                await ws.receive()
        except WebSocketClosed as exc:
            seen.append(exc.code)

    async with TestClient(app) as client:
        async with client.websocket("/ws") as ws:
            await ws.send_message("x")  # make sure the handler is receiving
            await trio.testing.wait_all_tasks_blocked()
            await client.shutdown()
    assert seen == [1001]


# ----------------------------------------------------------------------------- serve


async def test_serve_with_real_clients(running_server: RunServer) -> None:
    async with running_server(make_app()) as server:
        base = f"ws://{server.host}:{server.port}"
        async with open_websocket_url(f"{base}/echo") as ws:
            await ws.send_message("over tcp")
            assert await ws.get_message() == "over tcp"
        async with open_websocket_url(f"{base}/rooms/kitchen", subprotocols=["chat.v1"]) as ws:
            assert ws.subprotocol == "chat.v1"
            assert await ws.get_message() == "kitchen:ada"
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(f"{base}/private/ws"):
                pass
        assert rejected.value.status_code == 401


# ----------------------------------------------------------------------------- send_timeout


@dataclass
class Flood:
    """What a flooding handler saw: how its connection ended, when, and whether it finished."""

    code: int | None = None
    reason: str | None = None
    close_code: int | None = None
    sent: int = 0
    ended_at: float = 0.0
    finished: trio.Event = field(default_factory=trio.Event)


def flooding_app(flood: Flood, **route_options: Any) -> H3:
    """A handler that sends until the connection ends, recording how and when."""
    app = H3()

    @app.ws("/flood", ping_interval=None, **route_options)
    async def handler(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.send("x" * 1000)
                flood.sent += 1
        except WebSocketClosed as exc:
            flood.code, flood.reason, flood.close_code = exc.code, exc.close_reason, ws.close_code
            flood.ended_at = trio.current_time()
            await trio.sleep(1)  # a handler that saw the end is left to finish
            flood.finished.set()

    return app


async def drain(ws: Any) -> None:
    """Read what the client had queued until it finds the connection gone."""
    with trio.fail_after(60), pytest.raises(ConnectionClosed):
        while True:
            await ws.receive()


async def test_send_timeout_drops_a_client_that_stops_reading(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_h3")
    flood = Flood()
    buffer = 4096
    async with TestClient(flooding_app(flood), buffer_size=buffer, send_timeout=7) as client:
        async with client.websocket("/flood") as ws:
            # Never read: trio-websocket's client stops reading once its one-message
            # queue is full, and then the server's writes block.
            await trio.testing.wait_all_tasks_blocked()
            blocked_at = trio.current_time()
            with trio.fail_after(60):
                await flood.finished.wait()  # seen via WebSocketClosed: not cancelled
            assert flood.ended_at - blocked_at == pytest.approx(7)
            assert (flood.code, flood.reason, flood.close_code) == (1006, "send timed out", 1006)
            # Bounded: what fits in the buffers (and the client's queue), not more.
            assert flood.sent * 1000 <= 3 * buffer + 4000
            await drain(ws)
    assert "send_timeout" in caplog.text
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_route_send_timeout_overrides_the_server_default(
    autojump_clock: trio.testing.MockClock,
) -> None:
    flood = Flood()
    app = flooding_app(flood, send_timeout=2)
    async with TestClient(app, buffer_size=1024, send_timeout=60) as client:
        async with client.websocket("/flood") as ws:
            await trio.testing.wait_all_tasks_blocked()
            blocked_at = trio.current_time()
            with trio.fail_after(30):
                await flood.finished.wait()
            assert flood.ended_at - blocked_at == pytest.approx(2)
            assert flood.code == 1006
            await drain(ws)


async def test_send_timeout_none_lets_a_slow_reader_catch_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = H3()

    @app.ws("/count", ping_interval=None, send_timeout=None)
    async def count(ws: WebSocket) -> None:
        for i in range(200):
            await ws.send(f"{i:04d}" * 100)
        await ws.close()

    async with TestClient(app, buffer_size=1024) as client:
        async with client.websocket("/count") as ws:
            await trio.sleep(3600)  # a very slow reader
            got = [await ws.receive() for _ in range(200)]
    assert got[-1] == "0199" * 100


async def test_send_timeout_with_a_client_that_never_reads_a_byte(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Not even the 101: a raw client that sends its handshake and goes silent."""
    flood = Flood()
    app = flooding_app(flood, send_timeout=5)
    async with TestClient(app, buffer_size=512) as client:
        stream = await client.open_stream()
        wsc = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        await stream.send_all(wsc.send(wse.Request(host="testserver", target="/flood")))
        with trio.fail_after(60):
            await flood.finished.wait()
        assert flood.ended_at == pytest.approx(5)
        assert flood.code == 1006
        # Aborted, not closed: no close frame after what was written (a frame may be cut).
        data = await stream.receive_some(1 << 20)
        assert len(data) <= 512 + 2000


# ----------------------------------------------------------------------------- a body


@pytest.mark.parametrize(
    ("framing", "body"),
    [
        ("Content-Length: 9", b"\x81\x03abc\x00\x00\x00\x00"),
        ("Transfer-Encoding: chunked", b"9\r\n\x81\x03abc\x00\x00\x00\x00\r\n0\r\n\r\n"),
    ],
)
async def test_an_upgrade_with_a_body_is_400_and_closes_cleanly(
    running_server: RunServer, framing: str, body: bytes
) -> None:
    ran: list[WebSocket] = []
    app = H3()

    @app.ws("/ws")
    async def handler(ws: WebSocket) -> None:
        ran.append(ws)

    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{framing}\r\n\r\n"
    ).encode() + body
    async with running_server(app) as server:
        stream = await trio.open_tcp_stream(server.host, server.port)
        async with stream:
            await stream.send_all(request)
            with trio.fail_after(5):
                data = await read_until_eof(stream)
    (response,), clean_close = parse_responses(data, ["GET"])
    assert response.status == 400
    assert response.json()["message"].startswith("A WebSocket handshake must not have a body")
    assert response.headers.get("connection") == "close"
    assert clean_close
    assert ran == []
