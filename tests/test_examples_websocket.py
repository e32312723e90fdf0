"""The WebSocket examples, driven through TestClient (MockClock where time matters)."""

from __future__ import annotations

import trio
import trio.testing
import wsproto
import wsproto.events as wse
from helpers import read_websocket_events

from examples import websocket_chat, websocket_echo
from trio_h3.testing import TestClient, WebSocketTestSession


async def test_echo_example() -> None:
    async with TestClient(websocket_echo.app) as client:
        for path in ("/ws/echo", "/"):
            async with client.websocket(path) as ws:
                await ws.send_message("ping?")
                assert await ws.get_message() == "ping?"
                await ws.send_message(b"\x00\xff")
                assert await ws.get_message() == b"\x00\xff"


def fresh_chat() -> None:
    """Each test gets the example's app on a new hub (a hub closes with its lifespan)."""
    websocket_chat.hub = websocket_chat.create_hub()
    websocket_chat.app = websocket_chat.create_app(websocket_chat.hub)


async def test_chat_page_is_served() -> None:
    fresh_chat()
    async with TestClient(websocket_chat.app) as client:
        page = await client.get("/")
        assert page.status == 200
        assert "new WebSocket(" in page.text


async def test_chat_fans_out_within_a_room_and_announces_leaving(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fresh_chat()
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
            assert websocket_chat.hub.subscriber_count("room:lobby") == 1
        # Ada's handler leaves the room once its connection has closed.
        await trio.testing.wait_all_tasks_blocked()
        assert websocket_chat.hub.statistics().subscribers == 0


async def lines(ws: WebSocketTestSession, count: int) -> tuple[list[str], list[str]]:
    """The next ``count`` messages, split into member counts and the rest (the two come
    from two tasks of the member's handler, in either order)."""
    received = [await ws.get_message() for _ in range(count)]
    texts = [line for line in received if isinstance(line, str)]
    assert texts == received
    counts = [line for line in texts if line.startswith("#members ")]
    return counts, [line for line in texts if line not in counts]


async def test_chat_member_count_follows_joins_and_leaves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fresh_chat()
    async with TestClient(websocket_chat.app) as client:
        async with client.websocket("/rooms/lobby?name=ada&members=1") as ada:
            assert await lines(ada, 2) == (["#members 1"], ["* ada joined lobby"])
            # Without ?members=1 a member is counted, but gets the text lines only.
            async with client.websocket("/rooms/lobby?name=bob") as bob:
                assert await bob.get_message() == "* bob joined lobby"
                assert await lines(ada, 2) == (["#members 2"], ["* bob joined lobby"])
                # Another room has a count of its own.
                async with client.websocket("/rooms/kitchen?name=eve&members=1") as eve:
                    assert await lines(eve, 2) == (["#members 1"], ["* eve joined kitchen"])
                    await bob.send_message("hello")
                    assert await ada.get_message() == "bob: hello"  # no count in between
                    assert await bob.get_message() == "bob: hello"
            assert await lines(ada, 2) == (["#members 1"], ["* bob left"])
            assert websocket_chat.hub.subscriber_count("room:lobby") == 1
        await trio.testing.wait_all_tasks_blocked()
        assert websocket_chat.hub.statistics().subscribers == 0


async def test_slow_member_is_dropped_without_blocking_the_room(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fresh_chat()
    buffer_size = 4096
    message = "message {:03d} " + "x" * 100
    async with TestClient(
        websocket_chat.app, buffer_size=buffer_size, ws_ping_interval=None
    ) as client:
        # A member that joins and never reads again.
        slow = await client.open_stream()
        wsc = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        await slow.send_all(wsc.send(wse.Request(host="testserver", target="/rooms/r?name=slow")))
        async with client.websocket("/rooms/r?name=fast") as fast:
            echoed: list[str] = []
            notices: list[tuple[int, str]] = []  # (messages sent so far, notice)
            with trio.fail_after(30):
                for i in range(300):
                    await fast.send_message(message.format(i))
                    while not (text := await fast.get_message()).startswith("fast: "):
                        notices.append((i, text))
                    echoed.append(text.removeprefix("fast: "))
            # Every message reached the fast member, before and after the slow one was
            # dropped on the way: its leaving was announced mid-run.
            assert echoed == [message.format(i) for i in range(300)]
            assert [text for _, text in notices] == ["* fast joined r", "* slow left"]
            left_after = notices[1][0]
            assert 0 < left_after < 299
            assert websocket_chat.hub.subscriber_count("room:r") == 1
        # The slow client finally reads: what fit its socket buffer, then the end of
        # the connection, which the server closed when it dropped the member.
        with trio.fail_after(60):
            events, received = await read_websocket_events(slow, wsc)
    assert received <= buffer_size
    assert isinstance(events[0], wse.AcceptConnection)
    texts = [e for e in events if isinstance(e, wse.TextMessage)]
    whole: list[str] = []
    partial = ""
    for e in texts:
        partial += e.data
        if e.message_finished:
            whole.append(partial)
            partial = ""
    expected = ["* slow joined r", "* fast joined r"]
    expected += [f"fast: {message.format(i)}" for i in range(left_after + 1)]
    assert len(whole) > 2 and whole == expected[: len(whole)]
    # The send that stalled on the full buffer was cut mid-frame, so no close frame can
    # follow it: the drop is a disconnect, which wsproto reports as 1006 at EOF.
    assert partial and expected[len(whole)].startswith(partial)
    assert [e.code for e in events if isinstance(e, wse.CloseConnection)] == [1006]
    assert websocket_chat.hub.statistics().subscribers == 0
