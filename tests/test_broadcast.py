"""The fan-out hub: topics, bounded buffers, dropping slow subscribers, statistics."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_h3.broadcast import Broadcast, BroadcastStatistics, Subscription


async def test_every_subscriber_of_a_topic_receives_in_order() -> None:
    hub: Broadcast[str] = Broadcast()
    async with hub.subscribe("news") as first, hub.subscribe("news") as second:
        assert hub.publish("news", "a") == 2
        assert hub.publish("news", "b") == 2
        assert [await first.receive(), await first.receive()] == ["a", "b"]
        assert [await second.receive(), await second.receive()] == ["a", "b"]


async def test_topics_are_independent() -> None:
    hub: Broadcast[int] = Broadcast()
    async with hub.subscribe("a") as sub_a, hub.subscribe("b") as sub_b:
        hub.publish("a", 1)
        hub.publish("b", 2)
        assert hub.publish("nobody", 3) == 0
        assert sub_a.pending == 1 and sub_b.pending == 1
        assert await sub_a.receive() == 1
        assert await sub_b.receive() == 2


async def test_publish_without_subscribers_is_counted_and_delivers_nothing() -> None:
    hub: Broadcast[str] = Broadcast()
    assert hub.publish("t", "x") == 0
    assert hub.statistics() == BroadcastStatistics(
        topics=0, subscribers=0, published=1, delivered=0, dropped=0
    )


async def test_async_for_receives_published_messages() -> None:
    hub: Broadcast[int] = Broadcast()
    received: list[int] = []

    async def consume(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with hub.subscribe("t") as subscription:
            task_status.started()
            async for message in subscription:
                received.append(message)
                if message == 2:
                    return

    async with trio.open_nursery() as nursery:
        await nursery.start(consume)
        for i in range(3):
            hub.publish("t", i)
    assert received == [0, 1, 2]
    assert hub.statistics().subscribers == 0


async def test_full_subscriber_is_dropped_and_others_keep_receiving() -> None:
    hub: Broadcast[int] = Broadcast()
    async with hub.subscribe("t", max_buffer=2) as slow, hub.subscribe("t", max_buffer=100) as fast:
        delivered = [hub.publish("t", i) for i in range(5)]
        # The slow one takes 0 and 1, is dropped on 2; the fast one takes all five.
        assert delivered == [2, 2, 1, 1, 1]
        assert slow.dropped and not fast.dropped
        assert hub.subscriber_count("t") == 1
        # What was buffered before the drop is still delivered, then iteration ends.
        assert [m async for m in slow] == [0, 1]
        with pytest.raises(trio.EndOfChannel):
            await slow.receive()
        assert [await fast.receive() for _ in range(5)] == [0, 1, 2, 3, 4]
    stats = hub.statistics()
    assert stats.dropped == 1
    assert stats.published == 5
    assert stats.delivered == 7
    assert stats.subscribers == 0 and stats.topics == 0


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
            stuck_got.extend([m async for m in subscription])

    async def reader(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with hub.subscribe("t", max_buffer=1) as subscription:
            task_status.started()
            async for message in subscription:
                reader_got.append(message)
                if message == 999:
                    return

    async with trio.open_nursery() as nursery:
        await nursery.start(stuck_consumer)
        await nursery.start(reader)
        start = trio.current_time()
        for i in range(1000):
            hub.publish("t", i)
            # publish is synchronous: the reader gets to run only at our checkpoint.
            await trio.lowlevel.checkpoint()
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
    assert hub.publish("t", 1) == 0
    with pytest.raises(trio.ClosedResourceError):
        await subscription.receive()


async def test_close_ends_every_subscription_and_refuses_new_ones() -> None:
    hub: Broadcast[int] = Broadcast()
    ended: list[tuple[list[int], bool]] = []

    async def consume(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with hub.subscribe("t") as subscription:
            task_status.started()
            messages = [m async for m in subscription]
            ended.append((messages, subscription.dropped))

    async with trio.open_nursery() as nursery:
        await nursery.start(consume)
        await nursery.start(consume)
        hub.publish("t", 7)
        hub.close()
    assert ended == [([7], False), ([7], False)]
    assert hub.closed
    assert hub.publish("t", 8) == 0
    with pytest.raises(RuntimeError, match="closed"):
        async with hub.subscribe("t"):
            pass


@pytest.mark.parametrize("size", [0, -1, 1.5, True, "4"])
async def test_buffer_size_must_be_a_positive_int(size: object) -> None:
    with pytest.raises(ValueError, match="max_buffer"):
        Broadcast(max_buffer=size)  # type: ignore[arg-type]
    hub: Broadcast[int] = Broadcast()
    with pytest.raises(ValueError, match="max_buffer"):
        async with hub.subscribe("t", max_buffer=size):  # type: ignore[arg-type]
            pass
    assert hub.statistics().subscribers == 0


async def test_two_hubs_share_nothing() -> None:
    first: Broadcast[int] = Broadcast()
    second: Broadcast[int] = Broadcast()
    async with first.subscribe("t") as subscription:
        assert second.publish("t", 1) == 0
        assert subscription.pending == 0
    assert first.statistics().published == 0


async def test_repr_and_types() -> None:
    hub: Broadcast[int] = Broadcast(max_buffer=3)
    async with hub.subscribe("t") as subscription:
        assert isinstance(subscription, Subscription)
        assert subscription.max_buffer == 3
        assert "1 subscribers" in repr(hub)
        assert "0/3 pending" in repr(subscription)
