"""Replay after Last-Event-ID, resets and the slow-consumer policies, on both backends.

Every test runs twice: on the memory backend under an autojumping MockClock, and on a
real redis-server (real time: an autojumping clock would time out its sockets).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing
from conftest import MakeHub
from redis_server import RedisServer, command

from trio_h3 import H3, Broadcast, BroadcastMessage, H3Event, Subscription
from trio_h3.testing import TestClient

#: Bound for anything a test waits on (virtual seconds on memory, real ones on Redis).
BOUND = 20.0


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (bounded): the Redis reader delivers from another task."""
    with trio.fail_after(BOUND):
        while not condition():
            await trio.sleep(0.005)


async def take(subscription: Subscription[Any], count: int) -> list[BroadcastMessage[Any]]:
    with trio.fail_after(BOUND):
        return [await subscription.receive() for _ in range(count)]


async def test_replay_after_last_event_id_then_live(
    make_hub: MakeHub, hub_clock: trio.testing.MockClock | None
) -> None:
    async with make_hub(history=100) as hub:
        ids = [await hub.publish("t", {"n": n}, event="tick") for n in range(5)]
        async with hub.subscribe("t", last_event_id=ids[1]) as subscription:
            later = await hub.publish("t", {"n": 5})
            got = await take(subscription, 4)
        assert [m.data["n"] for m in got] == [2, 3, 4, 5]
        assert [m.id for m in got] == [*ids[2:], later]
        assert [m.replayed for m in got] == [True, True, True, False]
        assert [m.event for m in got] == ["tick", "tick", "tick", None]
        stats = hub.statistics()
        assert (stats.replayed, stats.delivered, stats.resets) == (3, 1, 0)


async def test_replay_has_no_gap_and_no_duplicate_under_racing_publishes(
    make_hub: MakeHub, hub_clock: trio.testing.MockClock | None
) -> None:
    """Three publishers race each other and ten subscribers that keep leaving and coming
    back with the last id they saw: each sees every message exactly once, in order."""
    total, publishers, subscribers = 240, 3, 10
    rng = random.Random(11)
    async with make_hub(history=1000) as hub:
        order: list[int] = []  # what an always-connected subscriber sees: the order
        seen: dict[int, list[int]] = {}
        done = trio.Event()

        async def oracle(task_status: trio.TaskStatus[None]) -> None:
            async with hub.subscribe("t", max_buffer=total) as subscription:
                task_status.started()
                while len(order) < total:
                    order.append((await subscription.receive()).data)

        async def publisher(first: int) -> None:
            for n in range(first, total, publishers):
                await hub.publish("t", n)
                await trio.sleep(rng.random() * 0.004)

        async def flaky_subscriber(index: int, task_status: trio.TaskStatus[None]) -> None:
            got = seen[index] = []
            last_id: str | None = None
            started = False
            while not done.is_set():
                async with hub.subscribe("t", last_event_id=last_id) as subscription:
                    if not started:
                        task_status.started()
                        started = True
                    for _ in range(rng.randint(1, 25)):
                        with trio.move_on_after(0.5):
                            message = await subscription.receive()
                            assert not message.reset, message
                            got.append(message.data)
                            last_id = message.id
                await trio.sleep(rng.random() * 0.01)  # away for a moment

        with trio.fail_after(BOUND * 3):
            async with trio.open_nursery() as nursery:
                await nursery.start(oracle)
                for index in range(subscribers):
                    await nursery.start(flaky_subscriber, index)
                async with trio.open_nursery() as publishing:
                    for first in range(publishers):
                        publishing.start_soon(publisher, first)
                await until(lambda: all(len(got) >= total for got in seen.values()))
                done.set()
        assert sorted(order) == list(range(total))
        for got in seen.values():
            assert got == order  # no gap, no duplicate, the same order for everyone
        assert hub.statistics().replayed > 0  # the reconnects did replay


async def test_reset_on_trimmed_history_then_the_reset_id_resumes(
    make_hub: MakeHub, hub_backend: str, hub_clock: trio.testing.MockClock | None
) -> None:
    # Redis trims approximately (whole nodes of 100 entries): publish well past them.
    history, count = (5, 20) if hub_backend == "memory" else (5, 350)
    async with make_hub(history=history) as hub:
        first = await hub.publish("t", 0)
        for n in range(1, count):
            await hub.publish("t", n)
        async with hub.subscribe("t", last_event_id=first) as subscription:
            (reset,) = await take(subscription, 1)
            assert reset.reset and reset.event == "reset" and reset.reason == "history_trimmed"
            await hub.publish("t", "after")
            (after,) = await take(subscription, 1)
            assert after.data == "after" and not after.reset
        # The reset carries the latest id: resuming from it replays only what followed.
        async with hub.subscribe("t", last_event_id=reset.id) as subscription:
            (again,) = await take(subscription, 1)
            assert (again.data, again.replayed) == ("after", True)
        assert hub.statistics().resets == 1


async def test_reset_when_the_id_is_from_another_life_of_the_store(
    make_hub: MakeHub, hub_backend: str, request: pytest.FixtureRequest,
    hub_clock: trio.testing.MockClock | None,
) -> None:  # fmt: skip
    async with make_hub() as hub:
        old = await hub.publish("t", "before")
    if hub_backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        command(server.port, "FLUSHALL")  # a store that lost everything
    # A new process (memory), or the same Redis after losing its data.
    async with make_hub() as hub:
        async with hub.subscribe("t", last_event_id=old) as subscription:
            (reset,) = await take(subscription, 1)
            assert reset.reset and reset.reason == "store_reset"
            await hub.publish("t", "after")
            (after,) = await take(subscription, 1)
            assert after.data == "after"


@pytest.mark.parametrize("header", ["42", "garbage", "", "a:b", "x:-1"])
async def test_an_id_we_never_issued_is_a_reset(
    make_hub: MakeHub, header: str, hub_clock: trio.testing.MockClock | None
) -> None:
    async with make_hub() as hub:
        await hub.publish("t", 1)
        async with hub.subscribe("t", last_event_id=header) as subscription:
            (reset,) = await take(subscription, 1)
            assert reset.reset and reset.reason in ("unknown_id", "store_reset")


async def test_the_latest_id_replays_nothing_and_no_reset(
    make_hub: MakeHub, hub_clock: trio.testing.MockClock | None
) -> None:
    async with make_hub() as hub:
        latest = await hub.publish("t", 1)
        async with hub.subscribe("t", last_event_id=latest) as subscription:
            await hub.publish("t", 2)
            (message,) = await take(subscription, 1)
            assert (message.data, message.replayed, message.reset) == (2, False, False)


async def fill_buffer(hub: Broadcast[Any], count: int) -> None:
    """Publish ``count`` messages and wait until every subscriber was offered them all
    (Redis delivers from its reader task: a probe subscriber with room tells when)."""
    async with hub.subscribe("t", max_buffer=count) as probe:
        for n in range(count):
            await hub.publish("t", n)
        await until(lambda: probe.pending == count)


async def test_policy_disconnect_ends_the_subscriber_which_then_replays(
    make_hub: MakeHub, hub_clock: trio.testing.MockClock | None
) -> None:
    async with make_hub(policy="disconnect") as hub:
        async with hub.subscribe("t", max_buffer=3) as subscription, hub.subscribe("t") as other:
            await fill_buffer(hub, 10)
            assert subscription.dropped
            got = [m async for m in subscription]  # the buffer, then the end
            assert [m.data for m in got] == [0, 1, 2]
            assert [m.data for m in await take(other, 10)] == list(range(10))
        # What a browser does next: reconnect with the last id it got, and replay.
        async with hub.subscribe("t", last_event_id=got[-1].id) as subscription:
            assert [m.data for m in await take(subscription, 7)] == list(range(3, 10))
        assert hub.statistics().dropped == 1


async def test_policy_drop_oldest_keeps_the_newest(
    make_hub: MakeHub, hub_clock: trio.testing.MockClock | None
) -> None:
    async with make_hub() as hub:
        async with hub.subscribe("t", max_buffer=3, policy="drop_oldest") as subscription:
            await fill_buffer(hub, 10)
            assert [m.data for m in await take(subscription, 3)] == [7, 8, 9]
            await hub.publish("t", 10)
            (message,) = await take(subscription, 1)
            assert (message.data, message.reset) == (10, False)
        assert hub.statistics().dropped == 7


async def test_policy_resync_skips_ahead_with_one_reset(
    make_hub: MakeHub, hub_clock: trio.testing.MockClock | None
) -> None:
    async with make_hub() as hub:
        async with hub.subscribe("t", max_buffer=3, policy="resync") as subscription:
            await fill_buffer(hub, 10)
            # 0-2 filled the buffer; 3 overflowed it: skipped, a reset instead; 4 and 5
            # filled it again, 6 overflowed... and 9 left one reset, with 9's id.
            (reset,) = await take(subscription, 1)
            assert reset.reset and reset.reason == "slow_consumer"
            assert subscription.pending == 0
            await hub.publish("t", 10)
            (message,) = await take(subscription, 1)
            assert (message.data, message.reset) == (10, False)
        async with hub.subscribe("t", last_event_id=reset.id) as subscription:
            assert [m.data for m in await take(subscription, 1)] == [10]
        assert hub.statistics().resets == 1
        assert hub.statistics().dropped == 12


async def test_one_slow_subscriber_never_delays_the_others(
    make_hub: MakeHub, hub_clock: trio.testing.MockClock | None
) -> None:
    async with make_hub() as hub:
        async with hub.subscribe("t", max_buffer=2) as stalled:
            async with hub.subscribe("t", max_buffer=1000) as reader:
                for n in range(50):
                    await hub.publish("t", n)
                assert [m.data for m in await take(reader, 50)] == list(range(50))
            assert stalled.dropped  # never read: dropped, not waited for


# -- through SSE: hub.stream --------------------------------------------------------------


def prices_app(hub: Broadcast[Any]) -> H3:
    app = H3()

    @app.post("/prices")
    async def publish(event: H3Event) -> dict[str, str]:
        return {"id": await hub.publish("prices", await event.json(), event="price")}

    @app.get("/prices")
    async def prices(event: H3Event) -> None:
        hub.stream(event, "prices", ping_interval=None)

    return app


async def test_hub_stream_replays_after_the_last_event_id_header(
    make_hub: MakeHub, hub_clock: trio.testing.MockClock | None
) -> None:
    async with make_hub() as hub, TestClient(prices_app(hub)) as client:
        posted = [(await client.post("/prices", json={"p": p})).json()["id"] for p in range(3)]
        async with client.sse("/prices") as stream:
            await until(lambda: hub.subscriber_count("prices") == 1)
            await client.post("/prices", json={"p": 3})
            first = await stream.next_event()
            assert (first.event, first.data) == ("price", '{"p":3}')
            last_seen = stream.last_event_id
        async with client.sse("/prices", headers={"Last-Event-ID": posted[0]}) as stream:
            replay = [await stream.next_event() for _ in range(3)]
        assert [e.data for e in replay] == ['{"p":1}', '{"p":2}', '{"p":3}']
        assert replay[-1].id == last_seen
        async with client.sse("/prices", headers={"Last-Event-ID": "not-ours"}) as stream:
            reset = await stream.next_event()
        assert reset.event == "reset" and reset.data == '{"reason":"unknown_id"}'
        assert reset.id == last_seen  # the latest: the next reconnect resumes from it


async def test_hub_stream_resumes_after_a_query_parameter_and_the_header_wins(
    make_hub: MakeHub, hub_clock: trio.testing.MockClock | None
) -> None:
    async with make_hub() as hub, TestClient(prices_app(hub)) as client:
        ids = [(await client.post("/prices", json={"p": p})).json()["id"] for p in range(3)]
        # A page rendered with the latest id it shows: nothing lost before the stream.
        async with client.sse("/prices", params={"last_event_id": ids[0]}) as stream:
            assert [(await stream.next_event()).data for _ in range(2)] == ['{"p":1}', '{"p":2}']
        # On a reconnect the browser's header carries the newer id: it wins.
        headers = {"Last-Event-ID": ids[1]}
        async with client.sse("/prices", params={"last_event_id": ids[0]}, headers=headers) as s:
            assert (await s.next_event()).data == '{"p":2}'


async def test_hub_stream_ends_a_dropped_client_cleanly_so_it_reconnects(
    make_hub: MakeHub, hub_clock: trio.testing.MockClock | None
) -> None:
    async with make_hub() as hub:
        app = H3()

        @app.get("/prices")
        async def prices(event: H3Event) -> None:
            hub.stream(event, "prices", max_buffer=2, ping_interval=None)

        async with TestClient(app, buffer_size=256) as client:
            async with client.sse("/prices") as stream:
                await until(lambda: hub.subscriber_count("prices") == 1)
                for _ in range(300):  # the client reads nothing: socket, buffer, drop
                    await hub.publish("prices", "x" * 64)
                await until(lambda: hub.subscriber_count("prices") == 0)
                events = await stream.read_until_end()  # a clean end: EventSource retries
                assert stream.ended and len(events) < 300
        assert hub.statistics().dropped == 1
