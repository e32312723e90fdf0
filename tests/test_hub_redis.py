"""The Redis backend against a real redis-server: outages, restarts, one reading
connection per process, several hubs (processes) on the same topics.

Real sockets and real time (an autojumping clock would time out Redis's sockets).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import httpx_sse
import pytest
import trio
from helpers import RunServer
from redis_server import RedisServer, command

from trio_h3 import H3, Broadcast, BroadcastUnavailable, H3Event

BOUND = 30.0


def feed_app(hub: Broadcast[Any]) -> H3:
    app = H3()

    @app.lifespan
    async def lifespan(nursery: trio.Nursery) -> Any:
        async with hub:
            yield

    @app.post("/publish")
    async def publish(event: H3Event) -> dict[str, str]:
        return {"id": await hub.publish("feed", await event.json())}

    @app.get("/events")
    async def events(event: H3Event) -> None:
        hub.stream(event, "feed", ping_interval=None)

    return app


class Client:
    """One SSE client: what it received, and the last id (its Last-Event-ID)."""

    def __init__(self) -> None:
        self.datas: list[str] = []
        self.events: list[str] = []
        self.last_id: str | None = None

    async def follow(
        self,
        client: httpx.AsyncClient,
        stop_after: int | None = None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
        async with httpx_sse.aconnect_sse(client, "GET", "/events", headers=headers) as source:
            task_status.started()
            async for sse in source.aiter_sse():
                self.events.append(sse.event)
                self.datas.append(sse.data)
                self.last_id = sse.id
                if stop_after is not None and len(self.datas) >= stop_after:
                    return


async def until(condition: Any, bound: float = BOUND) -> None:
    with trio.fail_after(bound):
        while not condition():
            await trio.sleep(0.01)


async def publish_when_back(client: httpx.AsyncClient, data: Any) -> None:
    """POST until Redis answers again (bounded): a 503 says it is still away."""
    with trio.fail_after(BOUND):
        while (await client.post("/publish", json=data)).status_code == 503:
            await trio.sleep(0.05)


@pytest.mark.slow
async def test_redis_restarted_mid_stream_loses_nothing_published_after_and_replays_before(
    redis_server: RedisServer, running_server: RunServer
) -> None:
    hub = Broadcast.from_url(redis_server.url, publish_timeout=1.0)
    async with running_server(feed_app(hub)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            staying = [Client() for _ in range(5)]
            leaving = Client()
            async with trio.open_nursery() as nursery:
                for sub in staying:
                    await nursery.start(sub.follow, client)
                await nursery.start(leaving.follow, client, 5)
                await until(lambda: hub.subscriber_count("feed") == 6)
                for n in range(10):
                    await client.post("/publish", json=n)
                await until(lambda: all(len(s.datas) == 10 for s in staying))
                assert leaving.datas == [str(n) for n in range(5)]  # it left after 5

                # Redis goes away (saving its data, as a persistent Redis does).
                await redis_server.astop(persist=True)
                start = trio.current_time()
                response = await client.post("/publish", json="lost")
                assert response.status_code == 503  # BroadcastUnavailable, not a hang
                assert "unavailable" in response.json()["message"]
                assert trio.current_time() - start < 5
                await trio.sleep(0.5)
                assert hub.subscriber_count("feed") == 5  # every stream stays open

                await redis_server.astart()
                for n in range(10, 20):
                    await publish_when_back(client, n)
                await until(lambda: all(len(s.datas) >= 20 for s in staying))
                expected = [str(n) for n in range(20)]
                for sub in staying:
                    assert sub.datas == expected  # nothing lost after the restart, no dup
                    assert "reset" not in sub.events

                # The one that left before the outage comes back with its Last-Event-ID:
                # what was published before the restart is replayed, then the rest.
                await nursery.start(leaving.follow, client, 20)
                await until(lambda: len(leaving.datas) >= 20)
                assert leaving.datas == expected
                nursery.cancel_scope.cancel()
    assert hub.statistics().replayed >= 15


@pytest.mark.slow
async def test_redis_restarted_empty_subscribers_get_a_reset_then_every_new_event(
    redis_server: RedisServer, running_server: RunServer
) -> None:
    hub = Broadcast.from_url(redis_server.url, publish_timeout=1.0)
    async with running_server(feed_app(hub)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            subs = [Client() for _ in range(3)]
            async with trio.open_nursery() as nursery:
                for sub in subs:
                    await nursery.start(sub.follow, client)
                await until(lambda: hub.subscriber_count("feed") == 3)
                for n in range(3):
                    await client.post("/publish", json=n)
                await until(lambda: all(len(s.datas) == 3 for s in subs))
                await redis_server.restart(persist=False)  # back, with nothing in it
                for n in range(3, 8):
                    await publish_when_back(client, n)
                await until(lambda: all(s.datas[-1:] == ["7"] for s in subs))
                for sub in subs:
                    # The store lost its history: said once, then every new event.
                    assert sub.events.count("reset") == 1
                    assert [
                        d for d, e in zip(sub.datas, sub.events, strict=True) if e != "reset"
                    ] == [str(n) for n in range(8)]
                nursery.cancel_scope.cancel()


async def test_publish_while_redis_is_down_raises_broadcast_unavailable(
    redis_server: RedisServer,
) -> None:
    async with Broadcast.from_url(redis_server.url, publish_timeout=1.0) as hub:
        await hub.publish("t", 1)
        redis_server.stop()
        with trio.fail_after(5):
            with pytest.raises(BroadcastUnavailable) as caught:
                await hub.publish("t", 2)
        assert caught.value.status == 503
        assert f"127.0.0.1:{redis_server.port}" in str(caught.value)
        with trio.fail_after(5), pytest.raises(BroadcastUnavailable):
            async with hub.subscribe("t"):
                pass


async def test_a_hub_started_before_redis_works_once_redis_is_up(
    redis_server: RedisServer,
) -> None:
    redis_server.stop()
    async with Broadcast.from_url(redis_server.url, publish_timeout=1.0) as hub:
        with pytest.raises(BroadcastUnavailable):
            await hub.publish("t", 1)
        await redis_server.astart()
        with trio.fail_after(BOUND):
            while True:
                try:
                    async with hub.subscribe("t") as subscription:
                        await hub.publish("t", "up")
                        assert (await subscription.receive()).data == "up"
                        break
                except BroadcastUnavailable:
                    await trio.sleep(0.05)


async def test_many_subscribers_share_one_reading_connection(redis_server: RedisServer) -> None:
    # 2,000 subscriptions start at once, each one script call on the pool: on a slow or
    # busy machine (coverage on) the last may wait longer than the default 5 s for its
    # turn, which is not what this test is about.
    async with Broadcast.from_url(redis_server.url, publish_timeout=BOUND) as hub:
        async with trio.open_nursery() as nursery:
            received = [0]
            ready = trio.Semaphore(0)

            async def subscriber(topic: str) -> None:
                async with hub.subscribe(topic) as subscription:
                    ready.release()
                    await subscription.receive()
                    received[0] += 1

            for index in range(2000):
                nursery.start_soon(subscriber, f"topic-{index % 50}")
            with trio.fail_after(BOUND):
                for _ in range(2000):
                    await ready.acquire()
            await until(lambda: hub.statistics().subscribers == 2000)
            await trio.sleep(0.1)  # the reader is back in its XREAD
            reading = command(redis_server.port, "CLIENT", "LIST").count(b"cmd=xread")
            for index in range(50):
                await hub.publish(f"topic-{index}", index)
            await until(lambda: received[0] == 2000)
        # One connection reads for all 2,000 subscribers over 50 topics.
        assert reading == 1


async def test_two_hubs_on_one_redis_are_one_hub(redis_server: RedisServer) -> None:
    """Two processes' hubs (here two in one process): topics, ids and history shared."""
    async with (
        Broadcast.from_url(redis_server.url) as first,
        Broadcast.from_url(redis_server.url) as second,
    ):
        async with second.subscribe("t") as subscription:
            ids = [await first.publish("t", n) for n in range(3)]
            with trio.fail_after(BOUND):
                got = [await subscription.receive() for _ in range(3)]
            assert [(m.id, m.data) for m in got] == list(zip(ids, range(3), strict=True))
        async with second.subscribe("t", last_event_id=ids[0]) as subscription:
            with trio.fail_after(BOUND):
                assert [(await subscription.receive()).data for _ in range(2)] == [1, 2]
        assert first.statistics().published == 3 and second.statistics().published == 0


async def test_redis_hub_refuses_what_it_cannot_do(redis_server: RedisServer) -> None:
    with pytest.raises(ValueError, match="history must be at least 1"):
        Broadcast.from_url(redis_server.url, history=0)
    hub = Broadcast.from_url(redis_server.url)
    with pytest.raises(RuntimeError, match="async with hub"):
        await hub.publish("t", 1)
    async with hub:
        with pytest.raises(TypeError, match="Redis topics are str"):
            await hub.publish(("not", "str"), 1)
        assert "redis://127.0.0.1" in repr(hub)
    secret = Broadcast.from_url("redis://user:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in repr(secret)


@pytest.mark.slow
def test_neither_import_trio_h3_nor_the_memory_hub_loads_coredis() -> None:
    code = (
        "import sys, trio, trio_h3\n"
        "hub = trio_h3.Broadcast()\n"
        "trio.run(hub.publish, 't', 1)\n"
        "print('coredis' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.stdout.split() == ["False"], result.stderr
