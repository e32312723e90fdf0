"""examples/live_prices.py: a publisher in the lifespan, a reconnect that loses no tick."""

from __future__ import annotations

import trio
import trio.testing

from examples import live_prices
from trio_h3 import Broadcast
from trio_h3.testing import TestClient


async def test_the_page_has_the_feed_and_the_drop_button() -> None:
    async with TestClient(live_prices.create_app(Broadcast(), publisher=False)) as client:
        page = await client.get("/")
    assert page.status == 200
    assert 'new EventSource("/prices?client="' in page.text and 'id="drop"' in page.text


async def test_a_dropped_connection_reconnects_and_replays_every_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub: Broadcast[object] = Broadcast()
    async with TestClient(live_prices.create_app(hub)) as client:
        async with client.sse("/prices?client=tab") as stream:
            first = [await stream.next_event() for _ in range(3)]
            assert stream.retry == live_prices.RETRY_MS
            assert [e.event for e in first] == ["tick"] * 3
            assert [e.json()["replayed"] for e in first] == [False] * 3
            # The page's button: the server ends this stream, cleanly.
            assert (await client.post("/drop?client=tab")).json() == {"dropped": "tab"}
            rest = await stream.read_until_end()
            last_id = stream.last_event_id
        seen = [e.json()["seq"] for e in first + rest]
        # EventSource waits `retry` ms, then reconnects with the last id it saw.
        await trio.sleep(live_prices.RETRY_MS / 1000)
        async with client.sse(
            "/prices?client=tab", headers={"Last-Event-ID": str(last_id)}
        ) as again:
            after = [await again.next_event() for _ in range(8)]
        ticks = [e.json() for e in after]
        replayed = [t["seq"] for t in ticks if t["replayed"]]
        assert len(replayed) >= 3  # 2 s of ticks at 2 a second were missed, and replayed
        # Not a tick lost, none twice: the sequence goes on from where it broke off.
        everything = seen + [t["seq"] for t in ticks]
        assert everything == list(range(seen[0], seen[0] + len(everything)))
        assert hub.statistics().replayed == len(replayed)


async def test_drop_needs_a_client(autojump_clock: trio.testing.MockClock) -> None:
    async with TestClient(live_prices.create_app(Broadcast(), publisher=False)) as client:
        assert (await client.post("/drop")).status == 400
