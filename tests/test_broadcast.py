"""The in-memory hub: topics, bounded buffers, the slow-consumer policies, statistics, ids.

Replay after Last-Event-ID, on memory and on Redis alike, is in test_hub_replay.py.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_h3 import Broadcast, BroadcastMessage, BroadcastStatistics, Subscription


async def datas(subscription: Subscription[int], count: int) -> list[int]:
    return [(await subscription.receive()).data for _ in range(count)]


async def test_every_subscriber_of_a_topic_receives_in_order() -> None:
    hub: Broadcast[str] = Broadcast()
    async with hub.subscribe("news") as first, hub.subscribe("news") as second:
        a = await hub.publish("news", "a")
        b = await hub.publish("news", "b", event="headline")
        got = [await first.receive(), await first.receive()]
        assert [(m.id, m.data, m.event) for m in got] == [(a, "a", None), (b, "b", "headline")]
        assert [(await second.receive()).data, (await second.receive()).data] == ["a", "b"]
    assert hub.statistics().delivered == 4


async def test_ids_increase_per_topic_and_are_opaque_strings() -> None:
    hub: Broadcast[int] = Broadcast()
    ids = [await hub.publish("a", i) for i in range(3)]
    other = await hub.publish("b", 0)
    assert all(isinstance(i, str) for i in ids)
    epoch = ids[0].split(":")[0]
    assert ids == [f"{epoch}:1", f"{epoch}:2", f"{epoch}:3"]
    assert other == f"{epoch}:1"  # per topic
    assert Broadcast().statistics().published == 0
    assert (await Broadcast[int]().publish("a", 1)).split(":")[0] != epoch  # a new epoch


async def test_topics_are_independent() -> None:
    hub: Broadcast[int] = Broadcast()
    async with hub.subscribe("a") as sub_a, hub.subscribe("b") as sub_b:
        await hub.publish("a", 1)
        await hub.publish("b", 2)
        await hub.publish("nobody", 3)
        assert sub_a.pending == 1 and sub_b.pending == 1
        assert (await sub_a.receive()).data == 1
        assert (await sub_b.receive()).data == 2


async def test_publish_without_subscribers_is_counted_and_delivers_nothing() -> None:
    hub: Broadcast[str] = Broadcast()
    await hub.publish("t", "x")
    assert hub.statistics() == BroadcastStatistics(
        topics=0, subscribers=0, published=1, delivered=0, dropped=0, replayed=0, resets=0
    )


async def test_async_for_receives_published_messages() -> None:
    hub: Broadcast[int] = Broadcast()
    received: list[int] = []

    async def consume(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with hub.subscribe("t") as subscription:
            task_status.started()
            async for message in subscription:
                assert isinstance(message, BroadcastMessage)
                received.append(message.data)
                if message.data == 2:
                    return

    async with trio.open_nursery() as nursery:
        await nursery.start(consume)
        for i in range(3):
            await hub.publish("t", i)
    assert received == [0, 1, 2]
    assert hub.statistics().subscribers == 0


async def test_policy_disconnect_drops_the_full_subscriber_and_others_keep_receiving() -> None:
    hub: Broadcast[int] = Broadcast()
    async with hub.subscribe("t", max_buffer=2) as slow, hub.subscribe("t", max_buffer=100) as fast:
        for i in range(5):
            await hub.publish("t", i)
        # The slow one takes 0 and 1, is dropped on 2; the fast one takes all five.
        assert slow.dropped and not fast.dropped
        assert hub.subscriber_count("t") == 1
        # What was buffered before the drop is still delivered, then iteration ends.
        assert [m.data async for m in slow] == [0, 1]
        with pytest.raises(trio.EndOfChannel):
            await slow.receive()
        assert await datas(fast, 5) == [0, 1, 2, 3, 4]
    stats = hub.statistics()
    assert (stats.dropped, stats.published, stats.delivered) == (1, 5, 7)
    assert stats.subscribers == 0 and stats.topics == 0


async def test_policy_drop_oldest_keeps_the_newest_messages() -> None:
    hub: Broadcast[int] = Broadcast(policy="drop_oldest")
    async with hub.subscribe("t", max_buffer=3) as subscription:
        for i in range(10):
            await hub.publish("t", i)
        assert not subscription.dropped and subscription.pending == 3
        assert await datas(subscription, 3) == [7, 8, 9]
        await hub.publish("t", 10)  # and it goes on live, with no reset: the skip was chosen
        message = await subscription.receive()
        assert (message.data, message.reset) == (10, False)
    assert hub.statistics().dropped == 7
    assert hub.statistics().resets == 0


async def test_policy_resync_skips_the_backlog_and_sends_one_reset() -> None:
    hub: Broadcast[int] = Broadcast(policy="resync")
    async with hub.subscribe("t", max_buffer=3) as subscription:
        ids = [await hub.publish("t", i) for i in range(5)]
        # 0, 1, 2 filled the buffer; 3 overflowed: all skipped, one reset instead.
        reset = await subscription.receive()
        assert reset.reset and reset.event == "reset"
        assert reset.reason == "slow_consumer"
        assert reset.id == ids[3]  # a reconnect from here resumes after what was skipped
        assert await datas(subscription, 1) == [4]
        last = await hub.publish("t", 5)
        assert (await subscription.receive()).id == last
    stats = hub.statistics()
    assert (stats.resets, stats.dropped, stats.delivered) == (1, 4, 2)


async def test_publish_never_blocks_on_a_stalled_consumer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub: Broadcast[int] = Broadcast(max_buffer=4)
    stalled = trio.Event()
    stuck_got: list[int] = []
    reader_got: list[int] = []

    async def stuck_consumer(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with hub.subscribe("t") as subscription:
            task_status.started()
            await stalled.wait()  # reads nothing until the end
            stuck_got.extend([m.data async for m in subscription])

    async def reader(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with hub.subscribe("t", max_buffer=1) as subscription:
            task_status.started()
            async for message in subscription:
                reader_got.append(message.data)
                if message.data == 999:
                    return

    async with trio.open_nursery() as nursery:
        await nursery.start(stuck_consumer)
        await nursery.start(reader)
        start = trio.current_time()
        for i in range(1000):
            await hub.publish("t", i)  # a checkpoint: the reader runs between publishes
        assert trio.current_time() == start  # nothing ever waited on a timer
        stalled.set()
    assert hub.statistics().dropped == 1
    assert reader_got == list(range(1000))  # the reader saw every message, in order
    assert stuck_got == [0, 1, 2, 3]  # its buffer, then the drop ended its iteration


async def test_leaving_the_block_unsubscribes_even_on_error_and_cancellation() -> None:
    hub: Broadcast[int] = Broadcast()
    with pytest.raises(KeyError):
        async with hub.subscribe("t"):
            assert hub.subscriber_count("t") == 1
            raise KeyError("boom")
    assert hub.subscriber_count("t") == 0
    with trio.move_on_after(0) as scope:
        async with hub.subscribe("t") as subscription:
            await subscription.receive()
    assert scope.cancelled_caught
    assert hub.statistics().subscribers == 0 and hub.statistics().topics == 0


async def test_subscription_is_unusable_after_its_block() -> None:
    hub: Broadcast[int] = Broadcast()
    async with hub.subscribe("t") as subscription:
        pass
    await hub.publish("t", 1)
    with pytest.raises(trio.ClosedResourceError):
        await subscription.receive()


async def test_leaving_async_with_closes_the_hub_and_ends_every_subscription() -> None:
    hub: Broadcast[int] = Broadcast()
    ended: list[tuple[list[int], bool]] = []

    async def consume(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with hub.subscribe("t") as subscription:
            task_status.started()
            messages = [m.data async for m in subscription]
            ended.append((messages, subscription.dropped))

    async with trio.open_nursery() as nursery:
        async with hub:
            await nursery.start(consume)
            await nursery.start(consume)
            await hub.publish("t", 7)
    assert ended == [([7], False), ([7], False)]
    assert hub.closed
    with pytest.raises(RuntimeError, match="closed"):
        await hub.publish("t", 8)
    with pytest.raises(RuntimeError, match="closed"):
        async with hub.subscribe("t"):
            pass
    assert hub not in Broadcast.in_memory_hubs()


async def test_history_ages_out_on_trios_clock(autojump_clock: trio.testing.MockClock) -> None:
    hub: Broadcast[int] = Broadcast(history=100, history_ttl=10)
    async with hub:
        first = await hub.publish("t", 1)
        await trio.sleep(5)
        await hub.publish("t", 2)
        async with hub.subscribe("t", last_event_id=first) as subscription:
            assert (await subscription.receive()).data == 2  # 5 s old: still replayable
        await trio.sleep(6)
        async with hub.subscribe("t", last_event_id=first) as subscription:
            # The first is 11 s old and gone, but nothing after it is missing.
            assert (await subscription.receive()).data == 2
        await trio.sleep(5)
        async with hub.subscribe("t", last_event_id=first) as subscription:
            message = await subscription.receive()  # the second aged out too: said so
            assert message.reset and message.reason == "history_trimmed"


@pytest.mark.parametrize(
    "options",
    [{"history": 0}, {"history": 100, "history_ttl": 10}],
    ids=["no-history", "history-aged-out"],
)
async def test_a_subscribed_topic_goes_on_after_its_history_is_swept(
    options: dict[str, int], autojump_clock: trio.testing.MockClock
) -> None:
    # The sweep forgets topics with no history left; one with a subscriber must keep
    # its positions, or the next messages would look like ones already handed out.
    hub: Broadcast[int] = Broadcast(
        history=options["history"], history_ttl=options.get("history_ttl", 300)
    )
    async with hub, hub.subscribe("t") as subscription:
        for n in range(3):
            await hub.publish("t", n)
        assert await datas(subscription, 3) == [0, 1, 2]
        await trio.sleep(600)  # sweeps, many times over
        for n in range(3, 6):
            await hub.publish("t", n)
        with trio.fail_after(1):
            assert await datas(subscription, 3) == [3, 4, 5]
        assert hub.statistics().delivered == 6


@pytest.mark.parametrize("size", [0, -1, 1.5, True, "4"])
async def test_buffer_size_must_be_a_positive_int(size: object) -> None:
    with pytest.raises(ValueError, match="max_buffer"):
        Broadcast(max_buffer=size)  # type: ignore[arg-type]
    hub: Broadcast[int] = Broadcast()
    with pytest.raises(ValueError, match="max_buffer"):
        async with hub.subscribe("t", max_buffer=size):  # type: ignore[arg-type]
            pass
    assert hub.statistics().subscribers == 0


async def test_bad_arguments_are_value_errors_naming_them() -> None:
    with pytest.raises(ValueError, match="policy"):
        Broadcast(policy="block")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="history"):
        Broadcast(history=-1)
    with pytest.raises(ValueError, match="history_ttl"):
        Broadcast(history_ttl=0)
    hub: Broadcast[int] = Broadcast()
    with pytest.raises(ValueError, match="event"):
        await hub.publish("t", 1, event="a\nb")
    with pytest.raises(ValueError, match="policy"):
        async with hub.subscribe("t", policy="nope"):  # type: ignore[arg-type]
            pass


async def test_two_hubs_share_nothing() -> None:
    first: Broadcast[int] = Broadcast()
    second: Broadcast[int] = Broadcast()
    async with first.subscribe("t") as subscription:
        await second.publish("t", 1)
        assert subscription.pending == 0
    assert first.statistics().published == 0


async def test_repr_and_types() -> None:
    hub: Broadcast[int] = Broadcast(max_buffer=3)
    assert hub in Broadcast.in_memory_hubs()
    async with hub.subscribe("t") as subscription:
        assert isinstance(subscription, Subscription)
        assert subscription.max_buffer == 3
        assert "1 subscribers" in repr(hub) and "memory" in repr(hub)
        assert "0/3 pending" in repr(subscription)
