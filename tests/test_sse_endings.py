"""SSE misuse fails loudly at the line that made it; outside cancellations end honestly."""

from __future__ import annotations

import functools
import logging
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from trio_h3 import H3, CloseReason, H3Event, Next, SSEWriter
from trio_h3.testing import TestClient

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")


def test_a_plain_def_callback_is_refused_where_it_is_set() -> None:
    event = H3Event("GET", b"/", [(b"host", b"x")])
    event.start_sse()

    def plain(writer: SSEWriter) -> None:
        pass

    with pytest.raises(TypeError, match=r"plain function; it must be an async function"):
        event.set_stream_callback(plain)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be callable"):
        event.set_stream_callback("nope")  # type: ignore[arg-type]

    async def fine(writer: SSEWriter, n: int) -> None:
        pass

    class Producer:
        async def __call__(self, writer: SSEWriter) -> None:
            pass

    event.set_stream_callback(functools.partial(fine, n=1))
    other = H3Event("GET", b"/", [(b"host", b"x")])
    other.start_sse()
    other.set_stream_callback(Producer())


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ("/no-callback", "set no stream callback"),
        ("/returns-a-value", "returned a dict"),
        ("/inline-returns-a-value", "returned a str"),
    ],
)
async def test_sse_misuse_is_a_logged_500_that_names_the_fix(
    route: str, message: str, autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = H3()

    @app.get("/no-callback")
    async def no_callback(event: H3Event) -> None:
        event.start_sse()

    @app.get("/returns-a-value")
    async def returns_a_value(event: H3Event) -> dict[str, int]:
        event.start_sse()
        return {"oops": 1}

    @app.get("/inline-returns-a-value")
    async def inline(event: H3Event) -> str:
        async with event.sse() as writer:
            await writer.send("x")
        return "oops"

    async with TestClient(app) as client:
        with caplog.at_level(logging.ERROR, logger="trio_h3"):
            r = await client.get(route)
            await trio.testing.wait_all_tasks_blocked()
        if route.startswith("/inline"):
            assert r.status == 200  # the stream had gone out already
        else:
            assert (r.status, r.json()["status"]) == (500, 500)
    assert message in caplog.text


async def test_inline_stream_under_a_timeout_middleware_ends_honestly(
    autojump_clock: MockClock,
) -> None:
    reasons: list[CloseReason | None] = []
    app = H3()

    async def timeout(event: H3Event, next: Next) -> Any:
        with trio.move_on_after(3.5):  # between two ticks: no tie with a sleep
            return await next()
        return None

    app.use(timeout)

    @app.get("/ticks")
    async def ticks(event: H3Event) -> None:
        async with event.sse() as writer:
            writer.on_close(lambda: reasons.append(writer.close_reason))
            for i in range(100):
                await writer.send(str(i))
                await trio.sleep(1)

    async with TestClient(app) as client:
        async with client.sse("/ticks") as stream:
            events = [event.data async for event in stream]
            # The stream ended with its terminating chunk (not cut), 3.5 s in.
            assert stream.response.complete
        assert events == ["0", "1", "2", "3"]
        await trio.testing.wait_all_tasks_blocked()  # on_close runs after the body's end
        assert reasons == [CloseReason.CANCELLED]
        # The connection was not broken either: it served the next request.
        assert (await client.get("/ticks", headers={"accept": "x"})).status == 200


async def test_inline_stream_cut_by_shutdown_says_server_shutdown(
    autojump_clock: MockClock,
) -> None:
    reasons: list[CloseReason | None] = []
    app = H3()

    @app.get("/ticks")
    async def ticks(event: H3Event) -> None:
        async with event.sse() as writer:
            writer.on_close(lambda: reasons.append(writer.close_reason))
            await trio.sleep_forever()

    async with TestClient(app) as client:
        async with client.sse("/ticks") as stream:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.shutdown)
                assert [event async for event in stream] == []
            assert stream.response.complete
        await trio.testing.wait_all_tasks_blocked()
    assert reasons == [CloseReason.SERVER_SHUTDOWN]
