"""Bare trio + h11 server, no framework: the upper bound for this stack.

Written the way h11's own examples/trio-server.py is: one task per connection, a keep-alive
loop around `h11.Connection`, a flat idle timeout, and a response (Response + Data +
EndOfMessage) joined into a single `send_all`. It sends `Date` and `Server` like trio-h3 does.

Routes (the same as bench/app_trio_h3.py):

    GET /            text/plain "Hello from trio-h3!"
    GET /users/42    application/json {"id": "42", "name": "Ada"}
    GET /sse         chunked text/event-stream, pre-formatted small events in a tight loop,
                     as fast as the socket takes them, until the client goes away; each
                     event is one pre-framed chunk (b"d\r\ndata: 12345\n\n\r\n"), one send_all
    GET /sse-h11     the same loop with h11 framing every event (h11.Data through conn.send)
    GET /idle        SSE headers, then nothing: waits for the client to leave
    GET /first       SSE headers, then one event, then the end of the stream (keep-alive)
    GET /stats       {"active": n}: how many /idle and /sse streams are live

Run: python bench/bare_server.py --port 8001
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import time
from http import HTTPStatus
from importlib.metadata import version
from wsgiref.handlers import format_date_time

import h11
import trio

MAX_RECV = 2**16
TIMEOUT = 10.0
SERVER_HEADER = f"bare-trio-h11/{version('h11')}".encode("ascii")
SSE_EVENT = b"data: 12345\n\n"
# The whole chunk, framed once: the raw loop writes these bytes and nothing else.
SSE_CHUNK = b"%x\r\n%b\r\n" % (len(SSE_EVENT), SSE_EVENT)
FIRST_EVENT = b"data: hello\n\n"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
REASONS = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}
MAX_FLOOD_EVENTS = 10**9  # bounded, though the client always leaves long before


class Stats:
    active = 0


_date_cache: list[object] = [0, b""]


def http_date() -> bytes:
    # Formatting the date once per second is what every production server does.
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = format_date_time(now).encode("ascii")
    value = _date_cache[1]
    assert isinstance(value, bytes)
    return value


def basic_headers() -> list[tuple[bytes, bytes]]:
    return [(b"date", http_date()), (b"server", SERVER_HEADER)]


async def next_event(stream: trio.SocketStream, conn: h11.Connection) -> h11.Event | type:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive_some(MAX_RECV)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            conn.receive_data(data)
            continue
        return event


async def send_simple(
    stream: trio.SocketStream, conn: h11.Connection, status: int, ctype: bytes, body: bytes
) -> None:
    headers = [
        *basic_headers(),
        (b"content-type", ctype),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    data = b"".join(
        [
            conn.send(h11.Response(status_code=status, headers=headers, reason=REASONS[status]))
            or b"",
            conn.send(h11.Data(data=body)) or b"",
            conn.send(h11.EndOfMessage()) or b"",
        ]
    )
    await stream.send_all(data)


async def send_sse_head(stream: trio.SocketStream, conn: h11.Connection) -> None:
    response = h11.Response(status_code=200, headers=[*basic_headers(), *SSE_HEADERS], reason=b"OK")
    head = conn.send(response)
    await stream.send_all(head or b"")


async def sse_flood(stream: trio.SocketStream, conn: h11.Connection) -> None:
    """The raw SSE loop: one pre-formatted, pre-framed chunk per send_all."""
    await send_sse_head(stream, conn)
    if conn.their_http_version != b"1.1":
        raise h11.LocalProtocolError("the raw loop writes HTTP/1.1 chunks")
    Stats.active += 1
    try:
        for _ in range(MAX_FLOOD_EVENTS):
            await stream.send_all(SSE_CHUNK)
    finally:
        Stats.active -= 1


async def sse_flood_h11(stream: trio.SocketStream, conn: h11.Connection) -> None:
    """The same loop, with h11 framing each event (h11.Data -> conn.send)."""
    await send_sse_head(stream, conn)
    Stats.active += 1
    try:
        for _ in range(MAX_FLOOD_EVENTS):
            await stream.send_all(conn.send(h11.Data(data=SSE_EVENT)) or b"")
    finally:
        Stats.active -= 1


async def sse_idle(stream: trio.SocketStream, conn: h11.Connection) -> None:
    await send_sse_head(stream, conn)
    Stats.active += 1
    try:
        # The one task of this connection owns the receive side: EOF or reset ends it.
        while await stream.receive_some(MAX_RECV):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        Stats.active -= 1


async def sse_first(stream: trio.SocketStream, conn: h11.Connection) -> None:
    await send_sse_head(stream, conn)
    tail = (conn.send(h11.Data(data=FIRST_EVENT)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
    await stream.send_all(tail)


async def respond(stream: trio.SocketStream, conn: h11.Connection, request: h11.Request) -> bool:
    """Answer one request; return False when the connection must end (stream routes)."""
    target = request.target
    if request.method != b"GET":
        await send_simple(stream, conn, 405, b"text/plain; charset=utf-8", b"Method Not Allowed")
    elif target == b"/":
        await send_simple(stream, conn, 200, b"text/plain; charset=utf-8", b"Hello from trio-h3!")
    elif target.startswith(b"/users/"):
        user_id = target[len(b"/users/") :].decode("utf-8")
        body = json.dumps({"id": user_id, "name": "Ada"}).encode("utf-8")
        await send_simple(stream, conn, 200, b"application/json", body)
    elif target == b"/sse":
        await sse_flood(stream, conn)
        return False
    elif target == b"/sse-h11":
        await sse_flood_h11(stream, conn)
        return False
    elif target == b"/idle":
        await sse_idle(stream, conn)
        return False
    elif target == b"/first":
        await sse_first(stream, conn)
    elif target == b"/stats":
        body = json.dumps({"active": Stats.active}).encode("utf-8")
        await send_simple(stream, conn, 200, b"application/json", body)
    else:
        await send_simple(stream, conn, 404, b"text/plain; charset=utf-8", b"Not Found")
    return True


async def handle_connection(stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            with trio.move_on_after(TIMEOUT):
                event = await next_event(stream, conn)
                if isinstance(event, h11.Request):
                    # Drain the (empty) request body up to EndOfMessage, as h11's example does.
                    while type(await next_event(stream, conn)) is not h11.EndOfMessage:
                        pass
                    if not await respond(stream, conn, event):
                        return
                else:
                    return  # ConnectionClosed or garbage: nothing to answer
            if conn.our_state is not h11.DONE:
                return  # timed out, or MUST_CLOSE
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
        return
    finally:
        await trio.aclose_forcefully(stream)


async def main(host: str, port: int) -> None:
    await trio.serve_tcp(handle_connection, port, host=host, backlog=4096)


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    options = parser.parse_args()
    raise_nofile()
    # A shell may start us with SIGINT ignored; the harness stops servers with SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        trio.run(main, options.host, options.port)
    except* KeyboardInterrupt:
        pass  # SIGINT from the harness is the normal way to stop
