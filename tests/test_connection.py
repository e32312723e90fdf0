"""The connection layer through raw in-memory streams, on trio's MockClock.

Every misbehaving client must get its JSON error (or a silent close where no response
makes sense), a clean close, and the server must go on serving everyone else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import h11
import pytest
import trio
from helpers import RawResponse, parse_responses, read_until, read_until_eof, request_bytes
from trio.testing import MockClock

from trio_h3 import H3, H3Event, StreamingResponse
from trio_h3.testing import MemoryStream, TestClient

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")


def make_app() -> H3:
    app = H3()

    @app.get("/")
    async def index(event: H3Event) -> str:
        return "hello"

    @app.post("/upload")
    async def upload(event: H3Event) -> dict[str, int]:
        return {"received": len(await event.body())}

    @app.post("/ignore")
    async def ignore(event: H3Event) -> str:
        return "ignored"

    @app.get("/slow")
    async def slow(event: H3Event) -> str:
        await trio.sleep(30)
        return "slow done"

    return app


async def exchange(
    stream: MemoryStream, data: bytes, methods: list[str], *, send_eof: bool = False
) -> tuple[list[RawResponse], bool]:
    """Write ``data``, read until the server closes, parse ``len(methods)`` responses."""
    await stream.send_all(data)
    if send_eof:
        await stream.send_eof()
    with trio.fail_after(60):
        raw = await read_until_eof(stream)
    return parse_responses(raw, methods)


async def still_serving(client: TestClient) -> None:
    r = await client.get("/")
    assert (r.status, r.text) == (200, "hello")


def assert_error(response: RawResponse, status: int) -> None:
    assert response.status == status
    assert response.headers["content-type"] == "application/json"
    assert response.headers["connection"] == "close"
    assert response.json()["status"] == status


async def test_oversized_head_is_431(autojump_clock: MockClock) -> None:
    async with TestClient(make_app(), max_header_size=4096) as client:
        stream = await client.open_stream()
        head = request_bytes("GET", "/", [("x-big", "a" * 8000)])
        [response], clean = await exchange(stream, head, ["GET"])
        assert_error(response, 431)
        assert response.json()["message"] == "Request header fields too large"
        assert clean
        await still_serving(client)


async def test_oversized_head_arriving_in_pieces_is_431(autojump_clock: MockClock) -> None:
    async with TestClient(make_app(), max_header_size=4096) as client:
        stream = await client.open_stream()
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: t\r\n")
        for _ in range(100):
            try:
                await stream.send_all(b"x-filler: " + b"b" * 100 + b"\r\n")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                break
        [response], clean = await exchange(stream, b"", ["GET"])
        assert_error(response, 431)
        assert clean
        await still_serving(client)


async def test_head_arriving_in_many_small_pieces_is_served(autojump_clock: MockClock) -> None:
    async with TestClient(make_app()) as client:
        stream = await client.open_stream()
        head = request_bytes("GET", "/", [("x-pad", "p" * 50), ("connection", "close")])
        for i in range(0, len(head), 7):
            await stream.send_all(head[i : i + 7])
            await trio.sleep(0.1)
        [response], clean = await exchange(stream, b"", ["GET"])
        assert (response.status, response.body) == (200, b"hello")
        assert clean


async def test_head_just_under_the_limit_is_served(autojump_clock: MockClock) -> None:
    async with TestClient(make_app(), max_header_size=4096) as client:
        stream = await client.open_stream()
        head = request_bytes("GET", "/", [("x-big", "a" * 3000), ("connection", "close")])
        [response], clean = await exchange(stream, head, ["GET"])
        assert (response.status, response.body) == (200, b"hello")
        assert clean


async def test_declared_oversized_body_is_413_before_reading_it(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(make_app(), max_body_size=1000) as client:
        stream = await client.open_stream()
        data = request_bytes("POST", "/upload", body=b"x" * 5000)
        [response], clean = await exchange(stream, data, ["POST"])
        assert_error(response, 413)
        assert response.json()["data"] == {"limit": 1000}
        assert clean
        await still_serving(client)


async def test_oversized_chunked_body_is_413(autojump_clock: MockClock) -> None:
    async with TestClient(make_app(), max_body_size=1000) as client:
        stream = await client.open_stream()
        chunk = b"200\r\n" + b"y" * 0x200 + b"\r\n"
        head = request_bytes("POST", "/upload", [("transfer-encoding", "chunked")])
        [response], clean = await exchange(stream, head + chunk * 4 + b"0\r\n\r\n", ["POST"])
        assert_error(response, 413)
        assert clean
        await still_serving(client)


async def test_oversized_unread_chunked_body_closes_the_connection(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(make_app(), max_body_size=1000) as client:
        stream = await client.open_stream()
        chunk = b"200\r\n" + b"y" * 0x200 + b"\r\n"
        head = request_bytes("POST", "/ignore", [("transfer-encoding", "chunked")])
        data = head + chunk * 4 + b"0\r\n\r\n" + request_bytes("GET", "/")
        responses, clean = await exchange(stream, data, ["POST"])
        # The handler answered before the body was read; the body is discarded up to
        # the limit, then the connection is closed rather than reused.
        assert [r.status for r in responses] == [200]
        assert clean
        await still_serving(client)


async def test_malformed_chunked_body_is_400(autojump_clock: MockClock) -> None:
    async with TestClient(make_app()) as client:
        stream = await client.open_stream()
        head = request_bytes("POST", "/upload", [("transfer-encoding", "chunked")])
        [response], clean = await exchange(stream, head + b"zz\r\nnot hex\r\n", ["POST"])
        assert_error(response, 400)
        assert clean
        await still_serving(client)


async def test_garbage_is_400(autojump_clock: MockClock) -> None:
    async with TestClient(make_app()) as client:
        for garbage in (
            b"\x00\x01\x02garbage\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: nope\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        ):
            stream = await client.open_stream()
            [response], clean = await exchange(stream, garbage, ["GET"])
            assert_error(response, 400)
            assert response.json()["message"].startswith("Bad request")
            assert clean
        await still_serving(client)


async def test_eof_in_the_middle_of_a_body_is_answered(autojump_clock: MockClock) -> None:
    async with TestClient(make_app()) as client:
        stream = await client.open_stream()
        data = request_bytes("POST", "/upload", [("content-length", "100")], b"short")
        [response], _ = await exchange(stream, data, ["POST"], send_eof=True)
        assert_error(response, 400)
        await still_serving(client)


async def test_slowloris_gets_408_after_request_head_timeout(autojump_clock: MockClock) -> None:
    async with TestClient(make_app(), request_head_timeout=10, keep_alive_timeout=5) as client:
        stream = await client.open_stream()
        start = trio.current_time()
        await stream.send_all(b"GET / HTTP/1.1\r\n")

        async def drip() -> None:
            # One header line every 2 s: each byte resets nothing, the head deadline holds.
            for i in range(20):
                try:
                    await stream.send_all(f"X-Drip-{i}: y\r\n".encode())
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                await trio.sleep(2)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drip)
            raw = await read_until_eof(stream)
            answered_after = trio.current_time() - start
            nursery.cancel_scope.cancel()
        [response], clean = parse_responses(raw, ["GET"])
        assert_error(response, 408)
        assert clean
        assert answered_after == pytest.approx(10)
        await still_serving(client)


async def test_connection_that_never_sends_is_closed_silently(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(make_app(), request_head_timeout=10) as client:
        stream = await client.open_stream()
        start = trio.current_time()
        assert await read_until_eof(stream) == b""
        assert trio.current_time() - start == 10


async def test_keep_alive_idle_timeout_closes(autojump_clock: MockClock) -> None:
    async with TestClient(make_app(), keep_alive_timeout=5, request_head_timeout=10) as client:
        stream = await client.open_stream()
        await stream.send_all(request_bytes("GET", "/"))
        data = await read_until(stream, b"hello")
        start = trio.current_time()
        # Nothing more is sent (no 408 for an idle connection), then EOF.
        assert await read_until_eof(stream) == b""
        assert trio.current_time() - start == 5
        [response], _ = parse_responses(data, ["GET"])
        assert response.status == 200
        assert "connection" not in response.headers


async def test_keep_alive_reuses_the_connection_within_the_timeout(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(make_app(), keep_alive_timeout=5) as client:
        stream = await client.open_stream()
        for _ in range(3):
            await stream.send_all(request_bytes("GET", "/"))
            await read_until(stream, b"hello")
            await trio.sleep(4)  # under the idle timeout each time
        assert trio.current_time() >= 12
        await stream.send_all(request_bytes("GET", "/", [("connection", "close")]))
        responses, clean = parse_responses(await read_until_eof(stream), ["GET"])
        assert responses[0].body == b"hello"
        assert clean


async def test_http_1_0_closes_after_the_response(autojump_clock: MockClock) -> None:
    async with TestClient(make_app()) as client:
        stream = await client.open_stream()
        start = trio.current_time()
        [response], clean = await exchange(stream, b"GET / HTTP/1.0\r\n\r\n", ["GET"])
        assert (response.status, response.body) == (200, b"hello")
        assert response.headers["content-length"] == "5"
        assert clean
        assert trio.current_time() == start  # closed at once, not by a timeout


async def test_pipelined_requests_in_one_write(autojump_clock: MockClock) -> None:
    async with TestClient(make_app()) as client:
        stream = await client.open_stream()
        data = (
            request_bytes("GET", "/")
            + request_bytes("POST", "/upload", body=b"abc")
            + request_bytes("GET", "/nothing")
            + request_bytes("GET", "/", [("connection", "close")])
        )
        responses, clean = await exchange(stream, data, ["GET", "POST", "GET", "GET"])
        assert [r.status for r in responses] == [200, 200, 404, 200]
        assert responses[1].json() == {"received": 3}
        assert clean


async def test_pipelined_request_after_an_unread_body(autojump_clock: MockClock) -> None:
    async with TestClient(make_app()) as client:
        stream = await client.open_stream()
        data = request_bytes("POST", "/ignore", body=b"z" * 3000) + request_bytes(
            "GET", "/", [("connection", "close")]
        )
        responses, clean = await exchange(stream, data, ["POST", "GET"])
        assert [r.body for r in responses] == [b"ignored", b"hello"]
        assert clean


async def test_expect_100_continue(autojump_clock: MockClock) -> None:
    async with TestClient(make_app()) as client:
        stream = await client.open_stream()
        head = request_bytes(
            "POST",
            "/upload",
            [("expect", "100-continue"), ("content-length", "4"), ("connection", "close")],
        )
        await stream.send_all(head)
        interim = await stream.receive_some(65536)
        assert interim.startswith(b"HTTP/1.1 100 ")
        [response], clean = await exchange(stream, b"data", ["POST"])
        assert response.json() == {"received": 4}
        assert clean


async def test_expect_100_continue_not_sent_when_the_body_is_not_wanted(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(make_app(), max_body_size=10) as client:
        for path, length, status in (("/ignore", 5, 200), ("/upload", 100, 413)):
            stream = await client.open_stream()
            head = request_bytes(
                "POST", path, [("expect", "100-continue"), ("content-length", str(length))]
            )
            # The body is never sent: the server must answer without waiting for it.
            [response], clean = await exchange(stream, head, ["POST"])
            assert response.status == status
            assert response.informational == []
            assert clean
        await still_serving(client)


async def test_slow_handler_does_not_block_other_connections(autojump_clock: MockClock) -> None:
    async with TestClient(make_app()) as client:
        async with trio.open_nursery() as nursery:
            done: list[str] = []

            async def slow() -> None:
                done.append((await client.get("/slow")).text)

            nursery.start_soon(slow)
            await trio.testing.wait_all_tasks_blocked()
            await still_serving(client)
            assert done == []
        assert done == ["slow done"]


async def test_date_and_server_headers(autojump_clock: MockClock) -> None:
    async with TestClient(make_app()) as client:
        r = await client.get("/")
        assert r.headers["server"] == "trio-h3"
        assert r.headers["date"].endswith(" GMT")
    async with TestClient(make_app(), server_header=None) as client:
        assert "server" not in (await client.get("/")).headers


async def test_client_disconnect_mid_request_leaves_the_server_serving(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(make_app()) as client:
        stream = await client.open_stream()
        await stream.send_all(request_bytes("POST", "/upload", [("content-length", "100")]))
        await stream.send_all(b"partial")
        await stream.aclose()
        stream = await client.open_stream()
        await stream.send_all(request_bytes("GET", "/slow"))
        await trio.testing.wait_all_tasks_blocked()
        await stream.aclose()  # gone while the handler is still working
        await still_serving(client)
        await trio.sleep(60)
        await still_serving(client)
        await trio.testing.wait_all_tasks_blocked()
        assert client.state.statistics()["connections"] == 0


def streaming_app(log: list[str]) -> H3:
    app = make_app()

    async def ticks() -> AsyncIterator[bytes]:
        try:
            for i in range(5):
                yield f"tick {i}\n".encode()
                await trio.sleep(1)
            log.append("complete")
        finally:
            log.append("closed")

    async def broken() -> AsyncIterator[bytes]:
        yield b"first\n"
        raise RuntimeError("producer failed")

    app.get("/ticks", lambda e: StreamingResponse(ticks(), media_type="text/plain"))
    app.get("/broken", lambda e: StreamingResponse(broken()))
    return app


async def test_streaming_response_on_http_1_0_is_close_delimited(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []
    async with TestClient(streaming_app(log)) as client:
        stream = await client.open_stream()
        await stream.send_all(b"GET /ticks HTTP/1.0\r\n\r\n")
        raw = await read_until_eof(stream)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"transfer-encoding" not in head.lower()
        assert body == b"".join(f"tick {i}\n".encode() for i in range(5))
        assert log == ["complete", "closed"]


async def test_streaming_response_stops_when_the_client_leaves(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []
    async with TestClient(streaming_app(log)) as client:
        async with client.stream("GET", "/ticks") as response:
            assert await response.receive_chunk() == b"tick 0\n"
            await response.disconnect()
        await trio.sleep(0.5)
        # The producer was cancelled at its next checkpoint and closed.
        assert log == ["closed"]
        await trio.testing.wait_all_tasks_blocked()
        assert client.state.statistics()["connections"] == 0
        await still_serving(client)


async def test_streaming_response_that_fails_is_truncated_not_ended(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with TestClient(streaming_app([])) as client:
        stream = await client.open_stream()
        await stream.send_all(request_bytes("GET", "/broken"))
        raw = await read_until_eof(stream)
        assert b"first\n" in raw
        # No terminating chunk: the client can tell the body is incomplete.
        assert not raw.endswith(b"0\r\n\r\n")
        assert "producer failed" in caplog.text
        await still_serving(client)


async def test_head_on_a_streaming_route_sends_headers_only(autojump_clock: MockClock) -> None:
    log: list[str] = []
    async with TestClient(streaming_app(log)) as client:
        r = await client.head("/ticks")
        assert r.status == 200
        assert r.content == b""


async def test_body_that_stalls_is_408(autojump_clock: MockClock) -> None:
    async with TestClient(make_app(), request_head_timeout=10) as client:
        stream = await client.open_stream()
        start = trio.current_time()
        data = request_bytes("POST", "/upload", [("content-length", "100")], b"only part")
        [response], clean = await exchange(stream, data, ["POST"])
        assert_error(response, 408)
        assert clean
        assert trio.current_time() - start == pytest.approx(10)
        await still_serving(client)


async def test_graceful_shutdown_under_mock_clock(autojump_clock: MockClock) -> None:
    app = make_app()

    @app.get("/forever")
    async def forever(event: H3Event) -> str:
        await trio.sleep_forever()
        return "never"

    async with TestClient(app, shutdown_timeout=40) as client:
        results: dict[str, object] = {}
        async with trio.open_nursery() as nursery:

            async def call(path: str) -> None:
                try:
                    results[path] = (await client.get(path)).text
                except (ConnectionError, h11.RemoteProtocolError) as exc:
                    results[path] = type(exc).__name__

            nursery.start_soon(call, "/slow")  # needs 30 s: within the 40 s allowed
            nursery.start_soon(call, "/forever")  # cancelled at 40 s
            idle = await client.open_stream()
            await trio.testing.wait_all_tasks_blocked()
            start = trio.current_time()
            await client.shutdown()
            assert trio.current_time() - start == pytest.approx(40)
        assert results["/slow"] == "slow done"
        # Cancelled without a response: the client reads EOF where a head should be.
        assert results["/forever"] == "RemoteProtocolError"
        assert await read_until_eof(idle) == b""
