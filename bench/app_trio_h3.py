"""The benchmark app written with trio-h3: the same routes as bench/bare_server.py.

    GET /              text/plain "Hello, World!" (the shared limit server's body)
    GET /users/:id     application/json {"id": ...} (likewise)
    GET /sse           SSE flood, callback form (event.start_sse + set_stream_callback)
    GET /sse-inline    SSE flood, inline form (async with event.sse() as writer)
    GET /idle          idle SSE stream, callback form, heartbeat off
    GET /idle-inline   idle SSE stream, inline form, heartbeat off
    GET /idle-ping     idle SSE stream, callback form, default heartbeat (one more task)
    GET /first         one event then the end of the stream, callback form
    GET /first-inline  one event then the end of the stream, inline form
    GET /stats         {"active": n}: live stream callbacks / inline blocks (try/finally)
    WS  /echo          WebSocket echo

Run: PYTHONPATH=. python bench/app_trio_h3.py --port 8002 [--http auto|h11|httptools]
"""

from __future__ import annotations

import argparse
import functools
import resource
import signal
from typing import Any

import trio

from trio_h3 import H3, H3Event, SSEWriter, serve
from trio_h3.websocket import WebSocket  # not re-exported from trio_h3 (yet)

SSE_DATA = "12345"  # encodes to b"data: 12345\n\n", the bare server's pre-formatted event
FIRST_DATA = "hello"
MAX_FLOOD_EVENTS = 10**9  # bounded, though the client always leaves long before

app = H3()


class Stats:
    active = 0


@app.get("/")
async def index(event: H3Event) -> str:
    return "Hello, World!"


@app.get("/users/:id")
async def get_user(event: H3Event) -> dict[str, Any]:
    return {"id": event.params["id"]}


@app.get("/stats")
async def stats(event: H3Event) -> dict[str, Any]:
    return {"active": Stats.active}


# -- SSE flood: as many small events as the client reads ----------------------------------


async def flood(writer: SSEWriter) -> None:
    Stats.active += 1
    try:
        for _ in range(MAX_FLOOD_EVENTS):
            await writer.send(SSE_DATA)
    finally:
        Stats.active -= 1


@app.get("/sse")
async def sse(event: H3Event) -> None:
    event.start_sse(ping_interval=None)
    event.set_stream_callback(flood)


@app.get("/sse-inline")
async def sse_inline(event: H3Event) -> None:
    async with event.sse(ping_interval=None) as writer:
        await flood(writer)


# -- idle streams: headers, then nothing until the client leaves --------------------------


async def idle(writer: SSEWriter) -> None:
    Stats.active += 1
    try:
        await trio.sleep_forever()
    finally:
        Stats.active -= 1


@app.get("/idle")
async def idle_stream(event: H3Event) -> None:
    event.start_sse(ping_interval=None)
    event.set_stream_callback(idle)


@app.get("/idle-inline")
async def idle_inline(event: H3Event) -> None:
    async with event.sse(ping_interval=None) as writer:
        await idle(writer)


@app.get("/idle-ping")
async def idle_ping(event: H3Event) -> None:
    event.start_sse()  # default ping_interval: a heartbeat task per stream
    event.set_stream_callback(idle)


# -- first event latency: one event, then the stream ends --------------------------------


async def first(writer: SSEWriter) -> None:
    await writer.send(FIRST_DATA)


@app.get("/first")
async def first_callback(event: H3Event) -> None:
    event.start_sse(ping_interval=None)
    event.set_stream_callback(first)


@app.get("/first-inline")
async def first_inline(event: H3Event) -> None:
    async with event.sse(ping_interval=None) as writer:
        await first(writer)


# -- WebSocket echo -----------------------------------------------------------------------


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


# The plain-call form: H3.ws() is typed as returning Any, which would untype a decorated def.
app.ws("/echo", echo)


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--http", default="auto", help="the parser backend (ServeOptions.http)")
    options = parser.parse_args()
    raise_nofile()
    # A shell may start us with SIGINT ignored; the harness stops servers with SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run = functools.partial(
            serve, app, host=options.host, port=options.port, access_log=False, http=options.http
        )
        trio.run(run)
    except* KeyboardInterrupt:
        pass  # SIGINT from the harness is the normal way to stop
