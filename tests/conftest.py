"""Fixtures; what they hand out lives in helpers.py.

The parser backend: ``pytest --http httptools`` runs the whole suite on llhttp (the
default is h11, the reference); it is passed on as ``$TRIO_H3_HTTP``, which every
``TestClient`` and ``running_server`` (and child process) reads. The behaviour modules
(the refusals, bodies, connections, responses, streams, upgrades) also take the
``backend`` fixture, which runs each of their tests on both backends in every run.
"""

from __future__ import annotations

import os

import pytest
from helpers import RunServer
from helpers import running_server as _running_server

from trio_h3.testing.client import HTTP_ENV

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
