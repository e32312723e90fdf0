"""SSE over real sockets: a real ``Server`` on 127.0.0.1 port 0, real clients.

httpx + httpx-sse parse the stream as a third-party client would; raw trio sockets and
a raw h11 client check framing, HTTP/1.0, HEAD, keep-alive, abrupt resets (RST) and
leaks. Every wait is bounded by ``trio.fail_after``; nothing sleeps to time anything.
"""

from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
import trio
from helpers import (
    IO_BOUND,
    H11Client,
    RunningServer,
    count_tasks,
    exchange,
    open_connection,
    open_fds,
    read_until,
    request_bytes,
    reset,
    running_server,
)
from httpx_sse import aconnect_sse

from trio_h3 import H3, CloseReason, H3Event, SSEEvent, SSEWriter
from trio_h3.testing import SSEParser

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


@dataclass
class Tracker:
    """Counts live stream callbacks and records how each stream ended."""

    live: int = 0
    started: int = 0
    reasons: list[CloseReason | None] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    def _bump(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def enter(self, writer: SSEWriter) -> None:
        self.live += 1
        self.started += 1

        def ended() -> None:
            self.reasons.append(writer.close_reason)
            self._bump()

        writer.on_close(ended)
        self._bump()

    def leave(self) -> None:
        self.live -= 1
        self._bump()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        with trio.fail_after(timeout):
            while not predicate():
                await self.changed.wait()


def build_app(tracker: Tracker) -> H3:
    app = H3()

    async def finite(writer: SSEWriter, count: int) -> None:
        tracker.enter(writer)
        try:
            for i in range(count):
                await writer.send(SSEEvent(data=f"event {i}", event="tick", id=str(i)))
        finally:
            tracker.leave()

    async def endless(writer: SSEWriter) -> None:
        tracker.enter(writer)
        try:
            async with trio.open_nursery() as nursery:
                # A helper task that must die with the stream.
                nursery.start_soon(trio.sleep_forever)
                await writer.send("hello")
                await trio.sleep_forever()
        finally:
            tracker.leave()

    async def failing(writer: SSEWriter) -> None:
        tracker.enter(writer)
        try:
            await writer.send("doomed")
            raise RuntimeError("stream callback exploded")
        finally:
            tracker.leave()

    @app.get("/finite")
    async def finite_route(event: H3Event) -> None:
        event.start_sse()
        event.set_stream_callback(finite, int(event.query.get("n", "3")))

    @app.get("/endless")
    async def endless_route(event: H3Event) -> None:
        event.start_sse(ping_interval=None)
        event.set_stream_callback(endless)

    @app.get("/failing")
    async def failing_route(event: H3Event) -> None:
        event.start_sse()
        event.set_stream_callback(failing)

    @app.get("/plain")
    async def plain(event: H3Event) -> str:
        return "plain"

    return app


@pytest.fixture
def tracker() -> Tracker:
    return Tracker()


async def wait_idle(server: RunningServer, tracker: Tracker, timeout: float = IO_BOUND) -> None:
    """Until every callback has returned and the server holds nothing (bounded)."""
    await tracker.wait_for(lambda: tracker.live == 0, timeout)
    await server.wait_idle(timeout)


async def open_stream(server: RunningServer, target: str, http: str = "1.1") -> trio.SocketStream:
    """A raw connection with a GET for ``target`` sent on it."""
    stream = await open_connection(server.port)
    await stream.send_all(request_bytes("GET", target, version=http))
    return stream


async def read_hello(stream: trio.SocketStream) -> None:
    with trio.fail_after(IO_BOUND):
        await read_until(stream, b"data: hello\n\n")


def split_chunks(body: bytes) -> tuple[list[bytes], bytes]:
    """Parse HTTP/1.1 chunked framing by hand: (chunk payloads, what follows the last)."""
    chunks: list[bytes] = []
    rest = body
    while True:
        size_line, sep, rest = rest.partition(b"\r\n")
        assert sep, f"no chunk-size line in {rest!r}"
        size = int(size_line, 16)
        if size == 0:
            assert rest.startswith(b"\r\n"), rest
            return chunks, rest[2:]
        payload, crlf, rest = rest[:size], rest[size : size + 2], rest[size + 2 :]
        assert crlf == b"\r\n"
        chunks.append(payload)


# -- httpx + httpx-sse -------------------------------------------------------------------------


async def test_httpx_sse_parses_a_real_stream(tracker: Tracker) -> None:
    async with running_server(build_app(tracker)) as server:
        with trio.fail_after(10):
            async with httpx.AsyncClient(base_url=server.url) as client:
                async with aconnect_sse(client, "GET", "/finite", params={"n": "5"}) as source:
                    response = source.response
                    assert response.status_code == 200
                    assert response.headers["content-type"] == SSE_CONTENT_TYPE
                    assert response.headers["cache-control"] == "no-cache"
                    assert response.headers["x-accel-buffering"] == "no"
                    assert "content-length" not in response.headers
                    assert response.headers["transfer-encoding"] == "chunked"
                    events = [(e.event, e.data, e.id) async for e in source.aiter_sse()]
    assert events == [("tick", f"event {i}", str(i)) for i in range(5)]


async def test_httpx_sse_client_leaving_cancels_the_callback(tracker: Tracker) -> None:
    async with running_server(build_app(tracker)) as server:
        with trio.fail_after(10):
            async with httpx.AsyncClient(base_url=server.url) as client:
                async with aconnect_sse(client, "GET", "/endless") as source:
                    async for event in source.aiter_sse():
                        assert event.data == "hello"
                        break
            await tracker.wait_for(lambda: tracker.reasons != [])
        assert tracker.reasons == [CloseReason.CLIENT_DISCONNECTED]
        await wait_idle(server, tracker)


async def test_callback_errors_are_isolated_across_concurrent_streams(
    tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    results: dict[str, list[str]] = {}

    async def consume(client: httpx.AsyncClient, name: str, path: str) -> None:
        async with aconnect_sse(client, "GET", path) as source:
            # httpx raises on a truncated chunked body: a clean end is required.
            results[name] = [e.data async for e in source.aiter_sse()]

    async with running_server(build_app(tracker)) as server:
        with trio.fail_after(15):
            async with httpx.AsyncClient(base_url=server.url) as client:
                async with trio.open_nursery() as nursery:
                    for i in range(12):
                        if i % 3 == 0:
                            nursery.start_soon(consume, client, f"bad{i}", "/failing")
                        else:
                            nursery.start_soon(consume, client, f"good{i}", "/finite?n=50")
                # The server is still healthy afterwards.
                assert (await client.get("/plain")).text == "plain"
        await wait_idle(server, tracker)
        reasons = tracker.reasons
    assert len(results) == 12
    for name, data in results.items():
        if name.startswith("bad"):
            assert data == ["doomed"]
        else:
            assert data == [f"event {i}" for i in range(50)]
    assert Counter(reasons) == {CloseReason.CALLBACK_ERROR: 4, CloseReason.COMPLETED: 8}
    # One error, with its traceback, per failed callback: no more, no fewer.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.name, r.exc_info is not None) for r in errors] == [("trio_h3", True)] * 4
    assert {str(r.exc_info[1]) for r in errors if r.exc_info} == {"stream callback exploded"}


# -- abrupt disconnect (RST) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http", "leave"), [("1.1", "rst"), ("1.1", "close"), ("1.0", "rst"), ("1.0", "close")]
)
async def test_client_leaving_cancels_the_callback(tracker: Tracker, http: str, leave: str) -> None:
    async with running_server(build_app(tracker)) as server:
        stream = await open_stream(server, "/endless", http=http)
        await read_hello(stream)
        assert tracker.live == 1
        if leave == "rst":
            reset(stream)
        else:
            await stream.aclose()
        # Nothing else ends /endless (no heartbeat, no writes, no shutdown yet): the
        # receive side saw the client leave. (How fast is checked under MockClock.)
        await tracker.wait_for(lambda: tracker.live == 0 and tracker.reasons != [])
        assert tracker.reasons == [CloseReason.CLIENT_DISCONNECTED]
        await wait_idle(server, tracker)


@pytest.mark.slow
async def test_no_task_or_fd_leak_after_1000_open_close_cycles(tracker: Tracker) -> None:
    async with running_server(build_app(tracker)) as server:
        # Warm up once so lazily created resources are not counted as leaks.
        warm = await open_stream(server, "/endless")
        await read_hello(warm)
        await warm.aclose()
        await wait_idle(server, tracker)
        # Sockets an earlier test dropped without closing are closed by the collector
        # whenever it runs; let it run now so it cannot do so mid-count.
        gc.collect()
        fds_before = open_fds()
        tasks_before = count_tasks()

        async def cycle(i: int) -> None:
            stream = await open_stream(server, "/endless")
            await read_hello(stream)
            if i % 2:
                reset(stream)
            else:
                await stream.aclose()

        with trio.fail_after(120):
            for batch in range(50):
                async with trio.open_nursery() as nursery:
                    for i in range(20):
                        nursery.start_soon(cycle, batch * 20 + i)
        await wait_idle(server, tracker, timeout=20)
        assert tracker.started == 1001
        assert tracker.live == 0
        assert len(tracker.reasons) == 1001
        assert set(tracker.reasons) == {CloseReason.CLIENT_DISCONNECTED}
        assert server.server.state.statistics() == {"connections": 0, "streams": 0}
        assert open_fds() == fds_before
        assert count_tasks() == tasks_before


# -- framing, HTTP/1.0, HEAD, keep-alive ----------------------------------------------------------


async def test_chunk_framing_with_a_raw_h11_client(tracker: Tracker) -> None:
    async with running_server(build_app(tracker)) as server:
        client = await H11Client.connect(server.port)
        await client.request("GET", "/finite?n=4")
        head, chunks = await client.response()
        await client.aclose()
    assert head.status_code == 200
    headers = dict(head.headers)
    assert headers[b"transfer-encoding"] == b"chunked"
    assert b"content-length" not in headers
    # h11 accepted the framing; now check it by hand: one chunk per event, then 0-chunk.
    _, _, raw_body = bytes(client.raw).partition(b"\r\n\r\n")
    payloads, trailer = split_chunks(raw_body)
    assert trailer == b""
    expected = [SSEEvent(data=f"event {i}", event="tick", id=str(i)).encode() for i in range(4)]
    assert payloads == expected
    assert b"".join(chunks) == b"".join(expected)
    events = SSEParser().feed(b"".join(payloads))
    assert [e.data for e in events] == [f"event {i}" for i in range(4)]


async def test_keep_alive_after_a_finite_stream(tracker: Tracker) -> None:
    async with running_server(build_app(tracker)) as server:
        client = await H11Client.connect(server.port)
        await client.request("GET", "/finite?n=2")
        _, first = await client.response()
        client.conn.start_next_cycle()
        await client.request("GET", "/finite?n=3")
        head, second = await client.response()
        client.conn.start_next_cycle()
        await client.request("GET", "/plain")
        plain_head, plain = await client.response()
        await client.aclose()
        assert tracker.started == 2
    assert head.status_code == 200
    assert [e.data for e in SSEParser().feed(b"".join(first))] == ["event 0", "event 1"]
    assert [e.data for e in SSEParser().feed(b"".join(second))] == [
        "event 0",
        "event 1",
        "event 2",
    ]
    assert plain_head.status_code == 200
    assert b"".join(plain) == b"plain"


async def test_http_1_0_client_gets_a_close_delimited_stream(tracker: Tracker) -> None:
    async with running_server(build_app(tracker)) as server:
        data = await exchange(server.port, b"GET /finite?n=3 HTTP/1.0\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    assert lines[0].startswith(b"http/1.1 200")
    assert b"content-type: text/event-stream; charset=utf-8" in lines
    assert not any(line.startswith(b"transfer-encoding") for line in lines)
    assert not any(line.startswith(b"content-length") for line in lines)
    # No chunk framing: the body is the events themselves, ended by the close.
    assert body == b"".join(
        SSEEvent(data=f"event {i}", event="tick", id=str(i)).encode() for i in range(3)
    )


async def test_head_over_a_socket_never_runs_the_callback_and_keeps_alive(tracker: Tracker) -> None:
    async with running_server(build_app(tracker)) as server:
        client = await H11Client.connect(server.port)
        await client.request("HEAD", "/endless")
        head, body = await client.response()
        assert head.status_code == 200
        assert dict(head.headers)[b"content-type"] == SSE_CONTENT_TYPE.encode()
        assert body == []
        # The connection is reusable after the HEAD.
        client.conn.start_next_cycle()
        await client.request("GET", "/finite?n=1")
        _, chunks = await client.response()
        await client.aclose()
        assert tracker.started == 1  # only the GET ran a callback
    assert [e.data for e in SSEParser().feed(b"".join(chunks))] == ["event 0"]


async def test_server_shutdown_ends_real_streams_cleanly(tracker: Tracker) -> None:
    async with running_server(build_app(tracker), stream_shutdown_grace=0.2) as server:
        with trio.fail_after(10):
            async with httpx.AsyncClient(base_url=server.url) as client:
                async with aconnect_sse(client, "GET", "/endless") as source:
                    seen = []
                    # httpx raises if the chunked body is cut short: this loop ending
                    # means the server ended the stream with its terminating chunk.
                    async for event in source.aiter_sse():
                        seen.append(event.data)
                        server.stop()
            await tracker.wait_for(lambda: tracker.live == 0 and tracker.reasons != [])
    assert seen == ["hello"]
    assert tracker.reasons == [CloseReason.SERVER_SHUTDOWN]
