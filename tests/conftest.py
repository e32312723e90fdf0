"""Fixtures; what they hand out lives in helpers.py and redis_server.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio.testing
from helpers import RunServer
from helpers import running_server as _running_server
from redis_server import RedisServer

from trio_h3 import Broadcast

MakeHub = Callable[..., Broadcast[Any]]


@pytest.fixture
def running_server() -> RunServer:
    """``async with running_server(app, **ServeOptions) as server:`` -> ``server.url``."""
    return _running_server


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free port, data in a temp dir; stopped afterwards."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test once per hub backend."""
    return str(request.param)


@pytest.fixture
def hub_clock(backend: str) -> trio.testing.MockClock | None:
    """MockClock (autojump) for the memory backend; real time against a real Redis,
    whose sockets an autojumping clock would time out."""
    return trio.testing.MockClock(autojump_threshold=0) if backend == "memory" else None


@pytest.fixture
def make_hub(backend: str, request: pytest.FixtureRequest) -> MakeHub:
    """``make_hub(history=..., ...)``: a Broadcast on the test's backend (enter it)."""
    if backend == "memory":
        return Broadcast
    server: RedisServer = request.getfixturevalue("redis_server")

    def redis_hub(**options: Any) -> Broadcast[Any]:
        return Broadcast.from_url(server.url, **options)

    return redis_hub
