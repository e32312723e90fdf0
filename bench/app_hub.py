"""The app hub_bench.py serves: one topic, SSE through hub.stream, a publish route.

The hub is on Redis when ``REDIS_URL`` is set, else in memory. ``GET /events`` is the
stream (heartbeat off: idle means idle); each response names its worker's pid in
``x-worker``. ``POST /publish`` publishes its JSON body; ``GET /stats`` is the hub's
counters plus the pid.
"""

from __future__ import annotations

import os
import resource
from dataclasses import asdict
from typing import Any

import trio

from trio_h3 import H3, Broadcast, H3Event


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


raise_nofile()
url = os.environ.get("REDIS_URL")
# A big buffer: the benchmark measures delivery, not the slow-consumer policy.
hub: Broadcast[Any] = (
    Broadcast.from_url(url, history=1000, max_buffer=10_000)
    if url
    else Broadcast(history=1000, max_buffer=10_000)
)
app = H3()
PID = str(os.getpid())


@app.lifespan
async def lifespan(nursery: trio.Nursery) -> Any:
    async with hub:
        yield


@app.post("/publish")
async def publish(event: H3Event) -> dict[str, str]:
    return {"id": await hub.publish("bench", await event.json())}


@app.get("/events")
async def events(event: H3Event) -> None:
    hub.stream(event, "bench", ping_interval=None, send_timeout=None, headers={"x-worker": PID})


@app.get("/stats")
async def stats(event: H3Event) -> dict[str, Any]:
    return {**asdict(hub.statistics()), "pid": PID}
