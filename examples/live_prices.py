"""Live prices that survive a reconnect: ``python examples/live_prices.py``, then open
http://127.0.0.1:3000/.

A publisher task in the lifespan publishes a tick every half second to the hub's
``prices`` topic; ``GET /prices`` streams them with the hub's ids. The page's
"Drop the connection" button asks the server to end its stream; EventSource reconnects
on its own (after ``retry``, 2 s here) with the ``Last-Event-ID`` of the last tick it
got, and the hub replays the ticks published meanwhile -- the page marks them
"replayed" -- before going on live. Not a tick is lost: the page counts the ticks it
got, the replayed ones and the lost ones (gaps in the ticks' ``seq``), which stays 0. If
the id is older than the history, the page gets a ``reset`` event and says so.

With Redis, several workers serve the same feed (the publisher runs in worker 0)::

    REDIS_URL=redis://127.0.0.1:6379/0 trio-h3 run examples.live_prices:app --workers 2
"""

from __future__ import annotations

import json
import os
import random
import secrets
from pathlib import Path
from typing import Any

import trio

from trio_h3 import (
    H3,
    Broadcast,
    H3Event,
    HTMLResponse,
    HTTPError,
    SSEEvent,
    SSEWriter,
    StaticFiles,
    serve,
)

TOPIC = "prices"
SYMBOLS = ("TRIO", "H3", "SSE")
#: Seconds between ticks.
TICK_INTERVAL = 0.5
#: The client's reconnection delay, in ms: long enough to miss (and replay) a few ticks.
RETRY_MS = 2000

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trio-h3 live prices</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<main>
<header class="app">
  <span class="brand">trio-h3 · the hub</span>
  <h1>Live prices</h1>
  <p>One publisher, a tick every half second. Drop the connection: EventSource comes back
  with the id of the last tick it got, and the hub replays the ones it missed. Not one is
  lost.</p>
</header>
<p class="bar">
  <span id="status" class="status" data-state="connecting">connecting...</span>
  <button id="drop">Drop the connection</button>
</p>
<div class="grid small">
<!-- symbols -->
</div>
<div class="card">
  <p class="counts"><b id="received">0</b> ticks, <b id="replayed">0</b> replayed,
    <b id="lost">0</b> lost</p>
  <ol id="ticks" class="log"></ol>
</div>
<script>
  const client = Math.random().toString(36).slice(2);
  const ticks = document.getElementById("ticks");
  const status = document.getElementById("status");
  const counted = {received: 0, replayed: 0, lost: 0};
  const last = {};  // symbol -> last price
  let lastSeq = null;
  const show = (state, line) => { status.dataset.state = state; status.textContent = line; };
  const count = (name, n) => {
    counted[name] += n;
    document.getElementById(name).textContent = counted[name];
  };
  function add(item) {
    ticks.prepend(item);
    while (ticks.children.length > 50) ticks.lastChild.remove();
  }
  const source = new EventSource("/prices?client=" + client);
  source.onopen = () => show("live", "live");
  source.onerror = () => show("connecting", "reconnecting...");
  source.addEventListener("tick", (e) => {
    const tick = JSON.parse(e.data);
    if (lastSeq !== null && tick.seq > lastSeq + 1) count("lost", tick.seq - lastSeq - 1);
    lastSeq = tick.seq;  // (a restarted publisher starts again from 1)
    count("received", 1);
    if (tick.replayed) count("replayed", 1);
    const before = last[tick.symbol];
    last[tick.symbol] = tick.price;
    document.getElementById("price-" + tick.symbol).textContent = tick.price.toFixed(2);
    if (before !== undefined) {
      const delta = tick.price - before;
      const change = document.getElementById("change-" + tick.symbol);
      change.textContent = (delta >= 0 ? "▲ +" : "▼ ") + (100 * delta / before).toFixed(2) + "%";
      change.className = "delta " + (delta >= 0 ? "up" : "down");
    }
    const item = document.createElement("li");
    const seq = document.createElement("span");
    seq.className = "meta";
    seq.textContent = "#" + tick.seq;
    item.append(seq, tick.symbol + " " + tick.price.toFixed(2));
    if (tick.replayed) {
      item.className = "replayed";
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = "replayed";
      item.append(tag);
    }
    add(item);
  });
  source.addEventListener("reset", () => {
    const item = document.createElement("li");
    item.className = "error";
    item.textContent = "Some ticks are gone from the history: reload for the latest.";
    add(item);
  });
  const drop = () => { fetch("/drop?client=" + client, {method: "POST"}); };
  document.getElementById("drop").onclick = drop;
  // "?autodrop=1": press the button by itself after 3 s (a demo, or a headless browser).
  if (new URLSearchParams(location.search).has("autodrop")) setTimeout(drop, 3000);
</script>
</main>
</body>
</html>
"""


def symbol_cards() -> str:
    """A card per symbol, filled in by the page as ticks arrive."""
    return "\n".join(
        f'<section class="card"><h2>{symbol}</h2>'
        f'<p class="figure" id="price-{symbol}">-</p>'
        f'<p class="delta" id="change-{symbol}">no change yet</p></section>'
        for symbol in SYMBOLS
    )


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
    # The examples' shared stylesheet, served at /static/style.css.
    app.mount("/static", StaticFiles(Path(__file__).resolve().parent / "static"))

    @app.lifespan
    async def lifespan(nursery: trio.Nursery) -> Any:
        async with feed:
            if publisher:
                nursery.start_soon(publish_prices, feed, tick_interval)
            yield

    @app.get("/")
    async def index(event: H3Event) -> HTMLResponse:
        return HTMLResponse(PAGE.replace("<!-- symbols -->", symbol_cards()))

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
