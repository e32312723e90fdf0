"""The access log: one line per request on logger ``trio_h3.access``, switchable."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import pytest
import trio
from helpers import read_until_eof
from trio.testing import MockClock

from trio_h3 import H3, H3Event, HTTPError, StreamingResponse
from trio_h3.testing import TestClient

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")

LINE = re.compile(
    r'^(?P<client>\S+) - "(?P<method>\S+) (?P<target>\S+) HTTP/(?P<version>[\d.]+)" '
    r"(?P<status>\d{3}) (?P<bytes>\d+) (?P<ms>\d+\.\d)ms$"
)


def make_app() -> H3:
    app = H3()

    @app.get("/")
    async def index(event: H3Event) -> str:
        return "hello"

    @app.get("/slow")
    async def slow(event: H3Event) -> str:
        await trio.sleep(1.5)
        return "done"

    @app.get("/fail")
    async def fail(event: H3Event) -> None:
        raise HTTPError(418)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"defg"

    app.get("/stream", lambda e: StreamingResponse(chunks()))
    return app


def access_lines(caplog: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    lines = []
    for record in caplog.records:
        if record.name == "trio_h3.access":
            assert record.levelno == logging.INFO
            match = LINE.match(record.getMessage())
            assert match, record.getMessage()
            lines.append(match)
    return lines


async def test_one_line_per_request(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    caplog.set_level(logging.INFO, logger="trio_h3.access")
    async with TestClient(make_app(), access_log=True) as client:
        await client.get("/?q=1")
        await client.get("/slow")
        await client.get("/fail")
        await client.get("/missing")
        await client.head("/")
        await client.get("/stream")
    lines = access_lines(caplog)
    got = [(m["method"], m["target"], int(m["status"]), int(m["bytes"])) for m in lines]
    assert got == [
        ("GET", "/?q=1", 200, 5),
        ("GET", "/slow", 200, 4),
        ("GET", "/fail", 418, len(b'{"status": 418, "message": "I\'m a Teapot"}')),
        (
            "GET",
            "/missing",
            404,
            len(b'{"status": 404, "message": "Cannot find any route matching [GET] /missing"}'),
        ),
        ("HEAD", "/", 200, 0),
        ("GET", "/stream", 200, 7),
    ]
    # uvicorn's client_addr: host:port (the test client's ports count up from 50001).
    assert all(re.fullmatch(r"127\.0\.0\.1:5\d{4}", m["client"]) for m in lines)
    assert all(m["version"] == "1.1" for m in lines)
    # Durations come from trio's clock: the slow handler took 1.5 s of mock time.
    assert float(lines[1]["ms"]) == pytest.approx(1500, abs=1)
    assert float(lines[0]["ms"]) < 1


async def test_protocol_errors_are_not_requests(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    caplog.set_level(logging.INFO, logger="trio_h3.access")
    async with TestClient(make_app(), access_log=True) as client:
        stream = await client.open_stream()
        await stream.send_all(b"garbage\r\n\r\n")
        await read_until_eof(stream)
        await client.get("/")
    assert [m["target"] for m in access_lines(caplog)] == ["/"]


async def test_access_log_can_be_switched_off(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    caplog.set_level(logging.INFO, logger="trio_h3.access")
    async with TestClient(make_app(), access_log=False) as client:
        assert (await client.get("/")).status == 200
    assert access_lines(caplog) == []


async def test_access_log_respects_the_logger_level(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_h3.access")
    async with TestClient(make_app(), access_log=True) as client:
        assert (await client.get("/")).status == 200
    assert access_lines(caplog) == []
