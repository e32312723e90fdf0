"""Fixtures; what they hand out lives in helpers.py and redis_server.py.

The parser backend: ``pytest --http httptools`` runs the whole suite on llhttp (the
default is h11, the reference); it is passed on as ``$TRIO_H3_HTTP``, which every
``TestClient`` and ``running_server`` (and child process) reads. The behaviour modules
(the refusals, bodies, connections, responses, streams, upgrades) also take the
``backend`` fixture, which runs each of their tests on both backends in every run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio.testing
from helpers import RunServer
from helpers import running_server as _running_server
from redis_server import RedisServer

from trio_h3 import Broadcast
from trio_h3.testing.client import HTTP_ENV

MakeHub = Callable[..., Broadcast[Any]]

BACKENDS = ("h11", "httptools")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--http",
        choices=BACKENDS,
        default=None,
        help="the parser backend for the whole suite (default: $TRIO_H3_HTTP, else h11)",
    )


def pytest_configure(config: pytest.Config) -> None:
    chosen = config.getoption("--http")
    if chosen is not None:
        os.environ[HTTP_ENV] = chosen
    else:
        os.environ.setdefault(HTTP_ENV, "h11")
    # The coverage floor (pyproject's fail_under) holds for the whole suite, as the
    # README runs it; a run of some tests (a file, -k, -m) measures only what they touch,
    # and must not fail for that.
    partial = (
        config.args_source is not pytest.Config.ArgsSource.TESTPATHS
        or bool(config.option.keyword)
        or bool(config.option.markexpr)
    )
    coverage = config.pluginmanager.get_plugin("_cov")
    if partial and coverage is not None:
        coverage.options.cov_fail_under = 0


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per parser backend (``pytestmark = usefixtures("backend")``)."""
    name: str = request.param
    monkeypatch.setenv(HTTP_ENV, name)
    return name


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
def hub_backend(request: pytest.FixtureRequest) -> str:
    """Run the test once per hub backend (not ``backend``: that is the parser's)."""
    return str(request.param)


@pytest.fixture
def hub_clock(hub_backend: str) -> trio.testing.MockClock | None:
    """MockClock (autojump) for the memory backend; real time against a real Redis,
    whose sockets an autojumping clock would time out."""
    return trio.testing.MockClock(autojump_threshold=0) if hub_backend == "memory" else None


@pytest.fixture
def make_hub(hub_backend: str, request: pytest.FixtureRequest) -> MakeHub:
    """``make_hub(history=..., ...)``: a Broadcast on the test's backend (enter it)."""
    if hub_backend == "memory":
        return Broadcast
    server: RedisServer = request.getfixturevalue("redis_server")

    def redis_hub(**options: Any) -> Broadcast[Any]:
        return Broadcast.from_url(server.url, **options)

    return redis_hub
