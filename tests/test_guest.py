"""App code is a guest: whatever it raises, BaseException included, the server carries on.

Each exception type from each place app code runs (handler, middleware, hooks, SSE
callback before and after ``writer.close()``, ``on_close`` hooks, the inline form), with
a canary stream that must not notice. KeyboardInterrupt and SystemExit also start a
graceful shutdown; a ``trio.Cancelled`` that belongs to no cancelled scope is an error.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import trio
from helpers import RunServer
from trio.testing import MockClock

from trio_h3 import H3, H3Event, Next, SSEWriter
from trio_h3.testing import TestClient


class Custom(BaseException):
    pass


RAISERS: dict[str, Callable[[], BaseException]] = {
    "SystemExit": lambda: SystemExit(3),
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
    "custom BaseException": Custom,
    "BaseExceptionGroup": lambda: BaseExceptionGroup("g", [Custom(), ValueError("v")]),
}
STARTS_SHUTDOWN = {"SystemExit", "KeyboardInterrupt"}


async def saved_cancelled() -> trio.Cancelled:
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.lowlevel.checkpoint()
        except trio.Cancelled as exc:
            return exc
    raise AssertionError("not cancelled")


async def canary(writer: SSEWriter) -> None:
    for i in range(1000):
        await writer.send(str(i))
        await trio.sleep(1)


def guest_app(make: Callable[[], Awaitable[BaseException]]) -> H3:
    """Routes that raise ``await make()`` from each place app code runs."""
    app = H3()

    @app.get("/canary")
    async def canary_route(event: H3Event) -> None:
        event.start_sse()
        event.set_stream_callback(canary)

    @app.get("/handler")
    async def handler(event: H3Event) -> None:
        raise await make()

    @app.get("/sync")
    def sync_handler(event: H3Event) -> None:
        raise SystemExit(5)  # a plain def, run in a worker thread

    async def raising_middleware(event: H3Event, next: Next) -> Any:
        if event.path == "/middleware":
            raise await make()
        return await next()

    app.use(raising_middleware)
    app.get("/middleware", lambda event: "unreachable")

    async def callback(writer: SSEWriter) -> None:
        await writer.send("before")
        raise await make()

    @app.get("/callback")
    async def callback_route(event: H3Event) -> None:
        event.start_sse()
        event.set_stream_callback(callback)

    async def after_close(writer: SSEWriter) -> None:
        await writer.send("before")
        await writer.close()
        raise await make()

    @app.get("/after-close")
    async def after_close_route(event: H3Event) -> None:
        event.start_sse()
        event.set_stream_callback(after_close)

    async def hook_raises() -> None:
        raise await make()

    async def with_hook(writer: SSEWriter) -> None:
        writer.on_close(hook_raises)
        await writer.send("before")

    @app.get("/on-close")
    async def on_close_route(event: H3Event) -> None:
        event.start_sse()
        event.set_stream_callback(with_hook)

    @app.get("/inline")
    async def inline(event: H3Event) -> None:
        async with event.sse() as writer:
            await writer.send("before")
            raise await make()

    return app


PLACES = {
    "/handler": "status",
    "/middleware": "status",
    "/callback": "stream",
    "/after-close": "stream",
    "/on-close": "stream",
    "/inline": "stream",
}


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("kind", [*sorted(RAISERS), "stray Cancelled"])
async def test_anything_app_code_raises_ends_only_its_own_request(
    kind: str, place: str, autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def make() -> BaseException:
        if kind == "stray Cancelled":
            return await saved_cancelled()
        return RAISERS[kind]()

    async with TestClient(guest_app(make)) as client:
        async with client.sse("/canary") as canary_stream:
            assert (await canary_stream.next_event()).data == "0"
            with caplog.at_level(logging.ERROR, logger="trio_h3"):
                if PLACES[place] == "status":
                    r = await client.get(place)
                    assert (r.status, r.json()["status"]) == (500, 500)
                else:
                    async with client.sse(place) as stream:
                        events = [event.data async for event in stream]
                        assert events == ["before"]
                        assert stream.response.complete  # ended with its terminating chunk
                # The server logs once the handler is done (after the stream's end).
                await trio.testing.wait_all_tasks_blocked()
            # The traceback is logged, naming where it came from.
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert errors and errors[-1].exc_info is not None
            if kind == "stray Cancelled":
                assert "belongs to no cancelled scope" in errors[-1].getMessage()
            # Every other connection carries on.
            assert (await canary_stream.next_event()).data == "1"
            assert (await client.get("/canary", headers={"accept": "text/plain"})).status == 200
        requested = client.state.shutdown_requested.is_set()
        assert requested is (kind in STARTS_SHUTDOWN), client.state.shutdown_reason


async def test_a_sync_handler_raising_system_exit_is_contained(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(guest_app(saved_cancelled)) as client:
        assert (await client.get("/sync")).status == 500
        assert client.state.shutdown_reason is not None
        assert "SystemExit" in client.state.shutdown_reason


async def test_system_exit_in_a_handler_shuts_a_real_server_down_gracefully(
    running_server: RunServer,
) -> None:
    app = guest_app(saved_cancelled)

    @app.get("/exit")
    async def leave(event: H3Event) -> None:
        sys.exit(3)

    async with running_server(app) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            async with client.stream("GET", "/canary") as canary_response:
                lines = canary_response.aiter_lines()
                assert await anext(lines) == "data: 0"
                r = await client.get("/exit")
                assert r.status_code == 500
                # The canary ends with its terminating chunk after the shutdown grace
                # (httpx raises on a body cut short).
                rest = [line async for line in lines]
                assert all(line.startswith("data: ") or not line for line in rest)
            with trio.fail_after(10):
                await server.stopped.wait()
