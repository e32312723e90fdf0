"""Shared fixtures: a real server on 127.0.0.1 port 0, stopped through its shutdown_trigger."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import trio

from trio_h3 import H3, Address, serve


@dataclass
class RunningServer:
    """A server started by :func:`running_server`: where it listens and how to stop it."""

    addresses: list[Address]
    shutdown_trigger: trio.Event
    #: Set once ``serve`` has returned.
    stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def host(self) -> str:
        return self.addresses[0].host

    @property
    def port(self) -> int:
        return self.addresses[0].port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Begin a graceful shutdown (what SIGINT does)."""
        self.shutdown_trigger.set()


@asynccontextmanager
async def _running_server(app: H3, **options: Any) -> AsyncIterator[RunningServer]:
    options.setdefault("host", "127.0.0.1")
    options.setdefault("port", 0)
    options.setdefault("access_log", False)
    trigger = trio.Event()
    async with trio.open_nursery() as nursery:
        stopped = trio.Event()

        async def run(task_status: trio.TaskStatus[list[Address]]) -> None:
            try:
                await serve(app, shutdown_trigger=trigger, task_status=task_status, **options)
            finally:
                stopped.set()

        addresses: list[Address] = await nursery.start(partial(run))
        server = RunningServer(addresses, trigger, stopped)
        try:
            yield server
        finally:
            trigger.set()
            # A bounded wait: a server that does not stop is a failure, not a hang.
            with trio.fail_after(15):
                await stopped.wait()


RunServer = Callable[..., AbstractAsyncContextManager[RunningServer]]


@pytest.fixture
def running_server() -> RunServer:
    """``async with running_server(app, **ServeOptions) as server:`` -> ``server.url``."""
    return _running_server
