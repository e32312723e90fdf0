"""Request bodies: one limit rule, per-route limits, the whole-body deadline, 100-continue."""

from __future__ import annotations

import pytest
import trio
from helpers import parse_responses, read_until_eof, request_bytes
from trio.testing import MockClock

from trio_h3 import H3, H3Event, HTTPError
from trio_h3.testing import TestClient

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")


def app(errors: list[int] | None = None) -> H3:
    def on_error(error: BaseException, event: H3Event) -> None:
        if errors is not None and isinstance(error, HTTPError):
            errors.append(error.status)

    application = H3(on_error=on_error)

    @application.post("/small")
    async def small(event: H3Event) -> dict[str, int]:
        return {"length": len(await event.body())}

    @application.post("/big", max_body_size=10_000)
    async def big(event: H3Event) -> dict[str, int]:
        return {"length": len(await event.body())}

    @application.post("/unlimited", max_body_size=None)
    async def unlimited(event: H3Event) -> dict[str, int]:
        total = 0
        async for chunk in event.stream():
            total += len(chunk)
        return {"total": total}

    @application.post("/patient", body_timeout=None)
    async def patient(event: H3Event) -> dict[str, int]:
        return {"length": len(await event.body())}

    @application.post("/ignore")
    async def ignore(event: H3Event) -> str:
        return "did not read"

    return application


async def test_limits_are_per_route_and_on_error_sees_every_413(
    autojump_clock: MockClock,
) -> None:
    errors: list[int] = []
    async with TestClient(app(errors), max_body_size=100) as client:
        assert (await client.post("/small", content=b"x" * 100)).json() == {"length": 100}
        for headers in ({}, {"transfer-encoding": "chunked"}):
            r = await client.post("/small", content=b"x" * 101, headers=headers)
            assert (r.status, r.json()["data"]) == (413, {"limit": 100})
            assert r.headers["connection"] == "close"
        assert (await client.post("/big", content=b"x" * 10_000)).json() == {"length": 10_000}
        assert (await client.post("/big", content=b"x" * 10_001)).status == 413
        r = await client.post("/unlimited", content=b"x" * 3_000_000)
        assert r.json() == {"total": 3_000_000}
    # Declared and chunked bodies take the same path: the app saw all three.
    assert errors == [413, 413, 413]


async def test_a_trickling_body_meets_its_whole_body_deadline(autojump_clock: MockClock) -> None:
    async with TestClient(app(), body_timeout=5, request_head_timeout=10) as client:
        for path, expected in (("/small", 408), ("/patient", 200)):
            stream = await client.open_stream()
            body = b"x" * 20
            await stream.send_all(
                request_bytes("POST", path, body=b"")[:-2] + b"Content-Length: 20\r\n\r\n"
            )
            start = trio.current_time()

            async def trickle(stream: trio.abc.Stream = stream, body: bytes = body) -> None:
                # One byte every 2 s: each read is within the 10 s per-read timeout.
                for byte in body:
                    await trio.sleep(2)
                    try:
                        await stream.send_all(bytes([byte]))
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return

            async with trio.open_nursery() as nursery:
                nursery.start_soon(trickle)
                data = await read_until_eof(stream)
                nursery.cancel_scope.cancel()
            (response,), _ = parse_responses(data, ["POST"])
            assert response.status == expected, path
            if expected == 408:
                assert (
                    response.json()["message"] == "The request body took longer than its deadline"
                )
                assert trio.current_time() - start == pytest.approx(5, abs=0.01)


async def test_expect_100_continue_is_answered_only_when_the_body_is_read(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(app(), max_body_size=100) as client:
        # Read: 100 Continue, then the answer; the connection lives on.
        stream = await client.open_stream()
        head = (
            b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        await stream.send_all(head)
        assert (await stream.receive_some(1000)).startswith(b"HTTP/1.1 100 Continue\r\n")
        await stream.send_all(b"abc")
        await stream.send_all(request_bytes("GET", "/nothing", [("connection", "close")]))
        (first, second), clean = parse_responses(await read_until_eof(stream), ["POST", "GET"])
        assert first.json() == {"length": 3}
        assert second.status == 404
        # Over the limit: 413 at once, no 100 Continue, no waiting for a body.
        stream = await client.open_stream()
        await stream.send_all(head.replace(b"Length: 3", b"Length: 101"))
        data = await read_until_eof(stream)
        assert b"100 Continue" not in data
        (response,), clean = parse_responses(data, ["POST"])
        assert response.status == 413 and clean


async def test_expect_100_continue_never_read_closes_right_after_the_response(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(app()) as client:
        stream = await client.open_stream()
        await stream.send_all(
            b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        start = trio.current_time()
        data = await read_until_eof(stream)
        # RFC 9112 §9.6: the response says close, and the socket is not held for a body
        # nobody asked for (no lingering wait, so no time passes).
        assert trio.current_time() == start
    (response,), clean = parse_responses(data, ["POST"])
    assert (response.body, response.headers["connection"]) == (b"did not read", "close")
    assert clean and not response.informational


async def test_an_unread_body_within_the_limit_keeps_the_connection(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(app()) as client:
        stream = await client.open_stream()
        await stream.send_all(
            request_bytes("POST", "/ignore", body=b"x" * 50)
            + request_bytes("GET", "/nothing", [("connection", "close")])
        )
        (first, second), clean = parse_responses(await read_until_eof(stream), ["POST", "GET"])
        assert first.body == b"did not read" and "connection" not in first.headers
        assert second.status == 404 and clean
