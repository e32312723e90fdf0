"""The chats' member counts across processes: examples' ``Presence`` (sse_chat and
websocket_chat carry the same class, each example being one file).

Several ``Presence`` on one hub stand for several processes: under MockClock in memory,
and end to end against a real redis-server, two apps built from ``REDIS_URL`` as two
workers would be.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

import pytest
import trio
import trio.testing
from redis_server import RedisServer

from examples import sse_chat, websocket_chat
from trio_h3 import Broadcast
from trio_h3.testing import SSEStream, TestClient

CHATS = [sse_chat, websocket_chat]
#: Seconds (real ones, against Redis) for a count to reach every process.
BOUND = 10.0


def test_both_chats_carry_the_same_presence() -> None:
    assert inspect.getsource(sse_chat.Presence) == inspect.getsource(websocket_chat.Presence)
    for name in ("PRESENCE_HEARTBEAT", "PRESENCE_EXPIRY", "FAREWELL_TIMEOUT"):
        assert getattr(sse_chat, name) == getattr(websocket_chat, name)


async def reaches(presence: Any, room: str, count: int, bound: float = 1.0) -> None:
    """Until ``presence`` counts ``count`` members in ``room`` (watched as a page would)."""
    with trio.CancelScope() as done, trio.fail_after(bound):

        async def check(now: int) -> None:
            if now == count:
                done.cancel()

        await presence.follow(room, check)


@pytest.mark.parametrize("chat", CHATS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
async def test_counts_add_up_over_processes(
    chat: ModuleType, autojump_clock: trio.testing.MockClock
) -> None:
    async with Broadcast[Any](history=0) as hub:
        one, two = chat.Presence(hub, "presence"), chat.Presence(hub, "presence")
        async with one.running():
            with one.member("lobby"), one.member("lobby"), one.member("kitchen"):
                async with two.running():
                    # A process that starts says hello, and hears the others' counts at
                    # once (no heartbeat needed: fail_after(1) is far below one).
                    await reaches(two, "lobby", 2)
                    await reaches(two, "kitchen", 1)
                    with two.member("lobby"):
                        await reaches(one, "lobby", 3)
                        assert two.count("lobby") == 3
                        assert (one.count("kitchen"), two.count("kitchen")) == (1, 1)
                    await reaches(one, "lobby", 2)
                    assert two.count("lobby") == 2
                    assert two.count("attic") == 0
                # A process that stops says goodbye: its members are no longer counted
                # elsewhere, even one still connected to it as it goes.
                with two.member("lobby"):
                    async with two.running():
                        await reaches(one, "lobby", 3)
                    await reaches(one, "lobby", 2)
            await reaches(one, "lobby", 0)
            assert one.count("kitchen") == 0


@pytest.mark.parametrize("chat", CHATS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
async def test_a_process_that_died_silently_is_forgotten(
    chat: ModuleType, autojump_clock: trio.testing.MockClock
) -> None:
    async with Broadcast[Any](history=0) as hub:
        one = chat.Presence(hub, "presence")
        async with one.running():
            with one.member("lobby"):
                # The last announcement of a worker that crashed: no goodbye will follow.
                await hub.publish(
                    "presence", {"node": "gone", "rooms": {"lobby": 5}, "hello": False}
                )
                await reaches(one, "lobby", 6)
                await trio.sleep(chat.PRESENCE_EXPIRY - 1)
                assert one.count("lobby") == 6  # not yet: it may just be quiet
                await reaches(one, "lobby", 1, bound=2 * chat.PRESENCE_HEARTBEAT)
                assert trio.current_time() >= chat.PRESENCE_EXPIRY


@pytest.mark.parametrize("chat", CHATS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
async def test_a_quiet_process_stays_counted_by_its_heartbeats(
    chat: ModuleType, autojump_clock: trio.testing.MockClock
) -> None:
    async with Broadcast[Any](history=0) as hub:
        one, two = chat.Presence(hub, "presence"), chat.Presence(hub, "presence")
        async with one.running(), two.running():
            with two.member("lobby"):
                await reaches(one, "lobby", 1)
                # Long after the expiry, the heartbeats have kept `two` counted.
                await trio.sleep(10 * chat.PRESENCE_EXPIRY)
                assert one.count("lobby") == 1


# -- end to end on Redis: two apps from REDIS_URL, as two workers ----------------------------


async def members(stream: SSEStream, count: int) -> None:
    """Read ``stream`` until a ``members`` event says ``count`` (other events skipped)."""
    with trio.fail_after(BOUND):
        while True:
            event = await stream.next_event()
            if event.event == "members" and event.json() == {"members": count}:
                return


async def test_sse_chat_counts_the_members_of_every_worker(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    async with TestClient(sse_chat.create_app()) as one:
        async with one.sse("/events?members=1") as alice:
            await members(alice, 1)
            async with TestClient(sse_chat.create_app()) as two:
                async with two.sse("/events?members=1") as bob:
                    await members(alice, 2)
                    await members(bob, 2)
                    posted = await two.post("/messages", json={"user": "bob", "text": "hi"})
                    assert posted.status_code == 201
                    with trio.fail_after(BOUND):
                        while (message := await alice.next_event()).event != "message":
                            pass
                    assert message.json() == {"user": "bob", "text": "hi"}
                await members(alice, 1)
                async with two.sse("/events") as carol:
                    await members(alice, 2)
                    assert (await carol.next_event()).json() == {"subscribers": 2}
                await members(alice, 1)


async def test_websocket_chat_counts_the_members_of_every_worker(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)

    async def count_reaches(ws: Any, count: int) -> None:
        with trio.fail_after(BOUND):
            while await ws.get_message() != f"#members {count}":
                pass

    async with TestClient(websocket_chat.create_app()) as one:
        async with one.websocket("/rooms/lobby?name=ada&members=1") as ada:
            await count_reaches(ada, 1)
            async with TestClient(websocket_chat.create_app()) as two:
                async with two.websocket("/rooms/lobby?name=bob&members=1") as bob:
                    await count_reaches(ada, 2)
                    await count_reaches(bob, 2)
                    async with two.websocket("/rooms/kitchen?name=eve&members=1") as eve:
                        await count_reaches(eve, 1)  # another room, its own count
                await count_reaches(ada, 1)
