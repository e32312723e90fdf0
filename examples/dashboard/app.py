"""A live dashboard: ``python examples/dashboard/app.py``, then open http://127.0.0.1:3000/.

One page (HTML, CSS and JS from ``public/``, served by ``StaticFiles`` with the ``.br`` /
``.gz`` files ``build.py`` made beside them), a login form that puts the user in a sealed
session cookie, and the metrics as Server-Sent Events through gzip: every event is
compressed and flushed on its own, so the charts move as soon as a value is measured.

One background task (the lifespan's) measures once per ``DASHBOARD_INTERVAL`` seconds and
publishes to a ``Broadcast``; each open page is a subscriber with a small buffer, so a
slow browser is dropped rather than slowing the others. ``SESSION_SECRET`` keeps sessions
across restarts (without it, a random secret is made at start-up).
"""

from __future__ import annotations

import math
import os
import random
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from trio_h3 import (
    H3,
    Broadcast,
    H3Event,
    HTTPError,
    Sessions,
    SSEEvent,
    SSEWriter,
    StaticFiles,
    compress,
    serve,
)

PUBLIC = Path(__file__).resolve().parent / "public"
INTERVAL = float(os.environ.get("DASHBOARD_INTERVAL", "1.0"))
SECRET = os.environ.get("SESSION_SECRET") or secrets.token_urlsafe(32)

hub: Broadcast[dict[str, Any]] = Broadcast()
started = time.time()


def measure(tick: int) -> dict[str, Any]:
    """One sample: the load average where there is one, and two made-up signals."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - not every platform has it
        load = 0.0
    return {
        "tick": tick,
        "time": time.time(),
        "load": round(load, 2),
        "requests": round(120 + 60 * math.sin(tick / 5) + random.uniform(-10, 10), 1),
        "latency": round(18 + 6 * math.cos(tick / 7) + random.uniform(-2, 2), 2),
        "streams": hub.subscriber_count("metrics"),
        "uptime": round(time.time() - started),
    }


async def sample_forever() -> None:
    tick = 0
    while True:
        await hub.publish("metrics", measure(tick))
        tick += 1
        await trio.sleep(INTERVAL)


@asynccontextmanager
async def lifespan(nursery: trio.Nursery) -> AsyncIterator[None]:
    async with hub:  # the hub's tasks live as long as the server
        nursery.start_soon(sample_forever)
        yield
        nursery.cancel_scope.cancel()


app = H3(lifespan=lifespan)
app.use(compress())
app.use(Sessions(secret=SECRET, max_age=7 * 86400))


@app.post("/api/login")
async def login(event: H3Event) -> dict[str, str]:
    body = await event.json()
    name = str(body.get("name", "")).strip() if isinstance(body, dict) else ""
    if not name or len(name) > 40:
        raise HTTPError(422, "Tell us your name (1 to 40 characters)")
    event.session["user"] = name
    return {"user": name}


@app.post("/api/logout")
async def logout(event: H3Event) -> None:
    event.session.clear()


@app.get("/api/me")
async def me(event: H3Event) -> dict[str, str | None]:
    return {"user": event.session.get("user")}


@app.get("/api/metrics")
async def metrics(event: H3Event) -> None:
    user = event.session.get("user")
    if user is None:
        raise HTTPError(401, "Log in first")
    event.start_sse(retry=2000)

    async def stream(writer: SSEWriter) -> None:
        await writer.send(SSEEvent(event="hello", data=user))
        async with hub.subscribe("metrics", max_buffer=8) as subscription:
            async for message in subscription:
                await writer.send_json(message.data, event="metrics", id=message.id)

    event.set_stream_callback(stream)


# After the API routes, and below them whatever the order: the page and its assets.
app.mount("/", StaticFiles(PUBLIC, precompressed=True))


if __name__ == "__main__":
    trio.run(serve, app)  # 127.0.0.1:3000 unless told otherwise
