"""Live prices that survive a reconnect: ``python examples/live_prices.py``, then open
http://127.0.0.1:3000/.

A publisher task in the lifespan publishes a tick every half second to the hub's
``prices`` topic; ``GET /prices`` streams them with the hub's ids. The page's
"Drop the connection" button asks the server to end its stream; EventSource reconnects
on its own (after ``retry``, 2 s here) with the ``Last-Event-ID`` of the last tick it
got, and the hub replays the ticks published meanwhile -- the page marks them
"replayed" -- before going on live. Not a tick is lost. If the id is older than the
history, the page gets a ``reset`` event and says so.

With Redis, several workers serve the same feed (the publisher runs in worker 0)::

    REDIS_URL=redis://127.0.0.1:6379/0 trio-h3 run examples.live_prices:app --workers 2
"""

from __future__ import annotations

import json
import os
import random
import secrets
from typing import Any

import trio

from trio_h3 import H3, Broadcast, H3Event, HTMLResponse, HTTPError, SSEEvent, SSEWriter, serve

TOPIC = "prices"
SYMBOLS = ("TRIO", "H3", "SSE")
#: Seconds between ticks.
TICK_INTERVAL = 0.5
#: The client's reconnection delay, in ms: long enough to miss (and replay) a few ticks.
RETRY_MS = 2000

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>trio-h3 live prices</title>
<style>li.replayed { color: #a60; } li.reset { color: #c00; }</style></head>
<body>
<h1>Live prices</h1>
<p><span id="status">connecting...</span>
   <button id="drop">Drop the connection</button></p>
<ol id="ticks"></ol>
<script>
  const client = Math.random().toString(36).slice(2);
  const ticks = document.getElementById("ticks");
  const status = document.getElementById("status");
  const source = new EventSource("/prices?client=" + client);
  function show(text, kind) {
    const item = document.createElement("li");
    item.textContent = text;
    if (kind) item.className = kind;
    ticks.prepend(item);
  }
  source.onopen = () => { status.textContent = "live"; };
  source.onerror = () => { status.textContent = "reconnecting..."; };
  source.addEventListener("tick", (e) => {
    const tick = JSON.parse(e.data);
    show("#" + tick.seq + " " + tick.symbol + " " + tick.price.toFixed(2) +
         (tick.replayed ? " (replayed)" : ""), tick.replayed ? "replayed" : "");
  });
  source.addEventListener("reset", () => { show("some ticks were lost: reload", "reset"); });
  const drop = () => { fetch("/drop?client=" + client, {method: "POST"}); };
  document.getElementById("drop").onclick = drop;
  // "?autodrop=1": press the button by itself after 3 s (a demo, or a headless browser).
  if (new URLSearchParams(location.search).has("autodrop")) setTimeout(drop, 3000);
</script>
</body>
</html>
"""


def create_hub() -> Broadcast[Any]:
    """On Redis when ``REDIS_URL`` is set, else in this process: 10 minutes of ticks."""
    url = os.environ.get("REDIS_URL")
    if url:
        return Broadcast.from_url(url, history=2000, history_ttl=600)
    return Broadcast(history=2000, history_ttl=600)


async def publish_prices(hub: Broadcast[Any], interval: float) -> None:
    """A random walk per symbol, one tick at a time, forever."""
    prices = dict.fromkeys(SYMBOLS, 100.0)
    rng = random.Random()
    seq = 0
    while True:
        symbol = rng.choice(SYMBOLS)
        prices[symbol] = max(1.0, prices[symbol] * (1 + rng.gauss(0, 0.01)))
        seq += 1
        tick = {"seq": seq, "symbol": symbol, "price": round(prices[symbol], 2)}
        await hub.publish(TOPIC, tick, event="tick")
        await trio.sleep(interval)


def create_app(
    hub: Broadcast[Any] | None = None,
    *,
    tick_interval: float = TICK_INTERVAL,
    publisher: bool | None = None,
) -> H3:
    """The app; the publisher runs in its lifespan (with ``--workers``, in worker 0 only,
    so that the feed is published once)."""
    feed = hub if hub is not None else create_hub()
    if publisher is None:
        publisher = os.environ.get("TRIO_H3_WORKER", "0") == "0"
    app = H3()

    @app.lifespan
    async def lifespan(nursery: trio.Nursery) -> Any:
        async with feed:
            if publisher:
                nursery.start_soon(publish_prices, feed, tick_interval)
            yield

    @app.get("/")
    async def index(event: H3Event) -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.get("/prices")
    async def prices(event: H3Event) -> None:
        client = event.query.get("client") or secrets.token_hex(4)
        event.start_sse(retry=RETRY_MS)
        event.set_stream_callback(stream_prices, feed, client)

    @app.post("/drop")
    async def drop(event: H3Event) -> dict[str, str]:
        """End the stream of ``?client=``: the page's button (in any worker)."""
        client = event.query.get("client")
        if not client:
            raise HTTPError(400, "?client= is required")
        await feed.publish(f"drop:{client}", "drop")
        return {"dropped": client}

    return app


async def stream_prices(writer: SSEWriter, feed: Broadcast[Any], client: str) -> None:
    """Replay after Last-Event-ID, then live, marking replayed ticks; ends on a drop."""
    async with trio.open_nursery() as nursery:

        async def end_on_drop() -> None:
            async with feed.subscribe(f"drop:{client}") as drops:
                await drops.receive()
            await writer.close()  # EventSource reconnects with the last id it got

        nursery.start_soon(end_on_drop)
        async with feed.subscribe(TOPIC, last_event_id=writer.last_event_id) as ticks:
            async for message in ticks:
                data = (
                    message.data
                    if message.reset
                    else {**message.data, "replayed": message.replayed}
                )
                await writer.send(SSEEvent(json.dumps(data), event=message.event, id=message.id))
        nursery.cancel_scope.cancel()


app = create_app()

if __name__ == "__main__":
    trio.run(serve, app)  # 127.0.0.1:3000 unless told otherwise
