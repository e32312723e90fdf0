"""Plain ``def`` handlers run in worker threads, bounded; a route can opt back in-loop."""

from __future__ import annotations

import threading

import httpx
import pytest
import trio
from helpers import RunServer

from trio_h3 import H3, H3Event

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")


async def test_a_blocking_sync_handler_does_not_stall_other_connections(
    running_server: RunServer,
) -> None:
    release = threading.Event()
    entered = threading.Event()
    app = H3()

    @app.get("/block")
    def block(event: H3Event) -> dict[str, str]:
        entered.set()
        # Blocks its thread, not the event loop (bounded, so a failure cannot hang).
        assert release.wait(10)
        return {"thread": threading.current_thread().name}

    @app.get("/fast")
    async def fast(event: H3Event) -> str:
        return "fast"

    async with running_server(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        async with trio.open_nursery() as nursery:
            results: dict[str, httpx.Response] = {}

            async def slow() -> None:
                results["block"] = await client.get("/block")

            nursery.start_soon(slow)
            await trio.to_thread.run_sync(entered.wait, 10)
            # The loop is free while /block's thread waits.
            assert (await client.get("/fast")).text == "fast"
            release.set()
        assert results["block"].json()["thread"] != threading.main_thread().name


async def test_threads_are_bounded_by_thread_limit(running_server: RunServer) -> None:
    lock = threading.Lock()
    running = 0
    peak = 0
    release = threading.Event()
    app = H3()

    @app.get("/work")
    def work(event: H3Event) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(10)
        with lock:
            running -= 1
        return "done"

    async with running_server(app, thread_limit=2) as server:
        limits = httpx.Limits(max_connections=10)
        async with httpx.AsyncClient(base_url=server.url, limits=limits) as client:
            threads = server.server.state.threads
            async with trio.open_nursery() as nursery:
                for _ in range(5):
                    nursery.start_soon(client.get, "/work")
                try:
                    # All five requests arrive: two run, three wait for a token (bounded).
                    # (Both running handlers are waited for too: a token is borrowed
                    # before its thread reaches the handler.)
                    with trio.fail_after(10):
                        while threads.statistics().tasks_waiting < 3 or running < 2:
                            await trio.sleep(0.01)
                    assert threads.borrowed_tokens == 2
                finally:
                    release.set()
    assert peak == 2


async def test_an_inline_route_runs_in_the_event_loop_thread(running_server: RunServer) -> None:
    app = H3()

    @app.get("/inline", inline=True)
    def inline(event: H3Event) -> str:
        return threading.current_thread().name

    @app.get("/threaded")
    def threaded(event: H3Event) -> str:
        return threading.current_thread().name

    async with running_server(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/inline")).text == threading.current_thread().name
        assert (await client.get("/threaded")).text != threading.current_thread().name
