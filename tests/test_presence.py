"""Member counts across processes: :class:`trio_h3.Presence`, and the two chat examples
that show them.

Several ``Presence`` on one hub stand for several processes: under MockClock in memory,
and end to end against a real redis-server, two apps built from ``REDIS_URL`` as two
workers would be.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing
from redis_server import RedisServer

from examples import sse_chat, websocket_chat
from trio_h3 import Broadcast, Presence
from trio_h3.testing import SSEStream, TestClient

#: Seconds (real ones, against Redis) for a count to reach every process.
BOUND = 10.0


async def reaches(presence: Presence, room: str, count: int, bound: float = 1.0) -> None:
    """Until ``presence`` counts ``count`` members in ``room`` (watched as a page would)."""
    with trio.CancelScope() as done, trio.fail_after(bound):

        async def check(now: int) -> None:
            if now == count:
                done.cancel()

        await presence.follow(room, check)


async def test_counts_add_up_over_processes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with Broadcast[Any](history=0) as hub:
        one, two = Presence(hub, "presence"), Presence(hub, "presence")
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


async def test_a_process_that_died_silently_is_forgotten(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with Broadcast[Any](history=0) as hub:
        one = Presence(hub, "presence")
        async with one.running():
            with one.member("lobby"):
                # The last announcement of a worker that crashed: no goodbye will follow.
                await hub.publish(
                    "presence", {"node": "gone", "rooms": {"lobby": 5}, "hello": False}
                )
                await reaches(one, "lobby", 6)
                await trio.sleep(one.expiry - 1)
                assert one.count("lobby") == 6  # not yet: it may just be quiet
                await reaches(one, "lobby", 1, bound=2 * one.heartbeat)
                assert trio.current_time() >= one.expiry


async def test_a_quiet_process_stays_counted_by_its_heartbeats(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with Broadcast[Any](history=0) as hub:
        one, two = Presence(hub, "presence"), Presence(hub, "presence")
        async with one.running(), two.running():
            with two.member("lobby"):
                await reaches(one, "lobby", 1)
                # Long after the expiry, the heartbeats have kept `two` counted.
                await trio.sleep(10 * one.expiry)
                assert one.count("lobby") == 1


async def test_counts_lists_every_room_with_members_anywhere(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with Broadcast[Any](history=0) as hub:
        one, two = Presence(hub), Presence(hub)
        async with one.running(), two.running():
            with one.member("lobby"), two.member("lobby"), two.member("attic"):
                await reaches(one, "attic", 1)
                await reaches(one, "lobby", 2)
                assert one.counts() == two.counts() == {"lobby": 2, "attic": 1}
            await reaches(one, "attic", 0)
            await reaches(one, "lobby", 0)
            assert one.counts() == {}


async def test_the_heartbeat_and_expiry_are_the_apps_choice(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with Broadcast[Any](history=0) as hub:
        one = Presence(hub, heartbeat=1.0)
        assert one.expiry == 3.0
        async with one.running():
            await hub.publish("presence", {"node": "gone", "rooms": {"lobby": 2}, "hello": False})
            await reaches(one, "lobby", 2)
            # Forgotten once expiry has passed, at the next beat (the sweep runs on each).
            await reaches(one, "lobby", 0, bound=one.expiry + 2 * one.heartbeat)
            assert trio.current_time() > one.expiry
    with pytest.raises(ValueError, match="heartbeat must be positive"):
        Presence(hub, heartbeat=0)
    with pytest.raises(ValueError, match="expiry must be longer than the heartbeat"):
        Presence(hub, heartbeat=10, expiry=5)


@pytest.mark.parametrize(
    "foreign",
    [
        "hello",
        {"node": "x"},
        {"node": 1, "rooms": {}, "hello": False},
        {"node": "x", "rooms": {"lobby": "2"}, "hello": False},
        {"node": "x", "rooms": {"lobby": -1}, "hello": False},
        {"node": "x", "rooms": {"lobby": True}, "hello": False},
        {"node": "x", "rooms": [], "hello": 0},
    ],
)
async def test_a_message_that_is_not_an_announcement_is_ignored(
    foreign: object, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with Broadcast[Any](history=0) as hub:
        one, two = Presence(hub), Presence(hub)
        async with one.running(), two.running():
            with caplog.at_level(logging.WARNING, "trio_h3.broadcast"):
                await hub.publish("presence", foreign)
                # The gossip goes on: a member of two still reaches one.
                with two.member("lobby"):
                    await reaches(one, "lobby", 1)
                await reaches(one, "lobby", 0)
                assert one.counts() == {}
    assert "ignored a message on 'presence' that is not ours" in caplog.text


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
