"""Fixtures; what they hand out lives in helpers.py."""

from __future__ import annotations

import pytest
from helpers import RunServer
from helpers import running_server as _running_server


@pytest.fixture
def running_server() -> RunServer:
    """``async with running_server(app, **ServeOptions) as server:`` -> ``server.url``."""
    return _running_server
