"""The WebSocket examples, driven through TestClient (MockClock where time matters)."""

from __future__ import annotations

import trio
import trio.testing
import wsproto
import wsproto.events as wse

from examples import websocket_chat, websocket_echo
from trio_h3.testing import TestClient


async def test_echo_example() -> None:
    async with TestClient(websocket_echo.app) as client:
        for path in ("/ws/echo", "/"):
            async with client.websocket(path) as ws:
                await ws.send_message("ping?")
                assert await ws.get_message() == "ping?"
                await ws.send_message(b"\x00\xff")
                assert await ws.get_message() == b"\x00\xff"


async def test_chat_page_is_served() -> None:
    async with TestClient(websocket_chat.app) as client:
        page = await client.get("/")
        assert page.status == 200
        assert "new WebSocket(" in page.text


async def test_chat_fans_out_within_a_room_and_announces_leaving() -> None:
    async with TestClient(websocket_chat.app) as client:
        async with client.websocket("/rooms/lobby?name=ada") as ada:
            assert await ada.get_message() == "* ada joined lobby"
            async with client.websocket("/rooms/lobby?name=bob") as bob:
                assert await bob.get_message() == "* bob joined lobby"
                assert await ada.get_message() == "* bob joined lobby"
                async with client.websocket("/rooms/kitchen?name=eve") as eve:
                    assert await eve.get_message() == "* eve joined kitchen"
                    await bob.send_message("hello")
                    assert await ada.get_message() == "bob: hello"
                    assert await bob.get_message() == "bob: hello"
                    await eve.send_message("other room")
                    assert await eve.get_message() == "eve: other room"
            assert await ada.get_message() == "* bob left"
            assert len(websocket_chat.rooms.members["lobby"]) == 1
        with trio.fail_after(5):
            while websocket_chat.rooms.members:
                await trio.sleep(0)
    assert not websocket_chat.rooms.members


async def test_slow_member_is_dropped_without_blocking_the_room(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with TestClient(websocket_chat.app, buffer_size=4096, ws_ping_interval=None) as client:
        # A member that joins and never reads again.
        slow = await client.open_stream()
        wsc = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        await slow.send_all(wsc.send(wse.Request(host="testserver", target="/rooms/r?name=slow")))
        async with client.websocket("/rooms/r?name=fast") as fast:
            seen = []
            with trio.fail_after(30):
                for i in range(300):
                    await fast.send_message(f"message {i:03d} " + "x" * 100)
                    while True:
                        text = await fast.get_message()
                        if text.startswith("fast: "):
                            seen.append(text[6:17])
                            break
            # Every message reached the fast member; the slow one was dropped on the way.
            assert seen == [f"message {i:03d}" for i in range(300)]
            assert [m.name for m in websocket_chat.rooms.members["r"]] == ["fast"]
        # The slow client finally reads: it finds a 1008 close after what fit its buffer.
        closes = []
        with trio.fail_after(60):
            while True:
                data = await slow.receive_some()
                if not data:
                    break
                wsc.receive_data(data)
                closes += [e for e in wsc.events() if isinstance(e, wse.CloseConnection)]
        assert not closes or closes[0].code == 1008
    assert not websocket_chat.rooms.members
