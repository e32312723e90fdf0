"""WebSocket routes through the public API: ``app.ws``, ``serve`` and ``TestClient``.

Time-dependent behaviour (keepalive, shutdown grace) runs under MockClock with the
in-memory TestClient; real-socket behaviour runs against ``serve`` on 127.0.0.1.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
import trio
import trio.testing
import wsproto
import wsproto.events as wse
from helpers import RunServer, close_reason, read_websocket_events
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from trio_h3 import H3, H3Event
from trio_h3.testing import TestClient
from trio_h3.websocket import WebSocket, WebSocketClosed


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
