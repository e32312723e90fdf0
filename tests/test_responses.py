"""What a handler returns always reaches the client as a well-framed answer.

Invalid responses are refused where they are built (a ValueError naming the header or
status, at the handler's own line) and, if something gets to the connection anyway, the
client still gets a 500 with the JSON error body. Bodiless statuses carry no body;
streamed bodies are framed as their head says; JSON encodes what FastAPI users expect.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Any

import h11
import pytest
from helpers import parse_responses, read_until_eof, request_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from trio_h3 import (
    H3,
    H3Event,
    HTTPError,
    JSONResponse,
    Response,
    StreamingResponse,
)
from trio_h3.datastructures import Headers
from trio_h3.testing import TestClient

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")

# -- refused where set -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("x bad", "v", "name"),
        ("x:y", "v", "name"),
        ("", "v", "name"),
        ("x", " leading", "value"),
        ("x", "trailing ", "value"),
        ("x", "a\rb", "value"),
        ("x", "a\nb", "value"),
        ("x", "a\x00b", "value"),
        ("x", "a\x0bb", "value"),
        ("x", "a\x0cb", "value"),
        ("x", "a\x7fb", "value"),
        ("content-length", "12a", "Content-Length"),
        ("x", "snow ☃", "latin-1"),
    ],
)
def test_invalid_headers_are_a_value_error_naming_them(name: str, value: str, problem: str) -> None:
    for build in (
        lambda: Headers({name: value}),
        lambda: Response("x", headers={name: value}),
        lambda: HTTPError(400, headers={name: value}),
        lambda: Headers().set(name, value),
    ):
        with pytest.raises(ValueError, match=problem):
            build()


def test_valid_header_values_pass() -> None:
    headers = Headers({"x": "a b\tc", "y": "", "z": "caf\xe9"})
    assert headers.get_all("x") == ["a b\tc"]


@pytest.mark.parametrize("status", [0, 99, 100, 101, 199, 600, 999, 1000, True, "200", 200.0])
def test_invalid_statuses_are_refused_where_set(status: Any) -> None:
    with pytest.raises(ValueError, match="status"):
        Response("x", status=status)
    event = H3Event("GET", b"/", [(b"host", b"x")])
    with pytest.raises(ValueError, match="status"):
        event.status = status


def test_a_content_length_that_contradicts_the_body_is_refused() -> None:
    with pytest.raises(ValueError, match="does not match the body"):
        Response("abc", headers={"content-length": "10"})
    assert Response("abc", headers={"content-length": "3"}).body == b"abc"


async def test_what_slips_past_validation_is_a_500_with_the_route_logged(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = H3()

    @app.get("/raw/:kind")
    async def raw(event: H3Event) -> Response:
        response = Response("body")
        kind = event.params["kind"]
        if kind == "header":
            response.headers.raw.append((b"x bad", b"v"))  # past add()'s validation
        elif kind == "value":
            response.headers.raw.append((b"x", b"a\r\nSet-Cookie: evil=1"))
        elif kind == "status":
            response.status = 1000
        elif kind == "length":
            response.headers.raw.append((b"content-length", b"99"))
        return response

    @app.get("/fine")
    async def fine(event: H3Event) -> str:
        return "fine"

    async with TestClient(app) as client:
        with caplog.at_level(logging.ERROR, logger="trio_h3"):
            for kind in ("header", "value", "status", "length"):
                stream = await client.open_stream()
                await stream.send_all(
                    request_bytes("GET", f"/raw/{kind}") + request_bytes("GET", "/fine")
                )
                data = await read_until_eof(stream)
                assert b"evil" not in data
                responses, clean = parse_responses(data, ["GET", "GET"][: data.count(b"HTTP/1.1 ")])
                assert responses[0].status == 500
                assert responses[0].json() == {"status": 500, "message": "Internal Server Error"}
                assert clean
                if len(responses) == 2:  # answered through h11: the connection lives on
                    assert responses[1].body == b"fine"
        logged = [r.getMessage() for r in caplog.records if "cannot be sent" in r.getMessage()]
        assert len(logged) == 4
        assert all("route /raw/:kind" in line for line in logged)


REFLECTED = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=12)


@pytest.mark.slow
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=REFLECTED, value=REFLECTED, status=st.integers(min_value=-5, max_value=1200))
async def test_reflected_input_always_gets_an_answer(name: str, value: str, status: int) -> None:
    """Whatever a handler reflects into a header or the status, the client gets an answer,
    the connection stays well framed, and the request pipelined behind it is answered."""
    app = H3()

    @app.get("/reflect")
    async def reflect(event: H3Event) -> Response:
        return Response("ok", status=status, headers=[(name, value)])

    app.get("/next", lambda event: "next")
    async with TestClient(app) as client:
        stream = await client.open_stream()
        await stream.send_all(request_bytes("GET", "/reflect") + request_bytes("GET", "/next"))
        await stream.send_eof()
        data = await read_until_eof(stream)
    (first, second), clean = parse_responses(data, ["GET", "GET"])
    try:
        Response("ok", status=status, headers=[(name, value)])
    except ValueError:
        assert (first.status, first.json()["status"]) == (500, 500)
    else:
        assert first.status == status
        assert first.headers.get(name) == value
    assert second.body == b"next"
    assert clean


async def test_a_response_that_says_close_closes_every_time_it_is_sent() -> None:
    # Sent on three connections in a row, the same response (its head assembled once
    # and then reused) ends each of them: the pipelined request after it is never read.
    app = H3()
    app.get("/bye", lambda event: Response("bye", headers=[("connection", "close")]))
    app.get("/next", lambda event: "next")
    async with TestClient(app) as client:
        for _ in range(3):
            stream = await client.open_stream()
            await stream.send_all(request_bytes("GET", "/bye") + request_bytes("GET", "/next"))
            data = await read_until_eof(stream)
            (only,), clean = parse_responses(data, ["GET"])
            assert only.body == b"bye"
            assert only.headers["connection"] == "close"
            assert b"next" not in data
            assert clean


# -- bodiless statuses and framing ---------------------------------------------------------------


LAST_NEXT = request_bytes("GET", "/next", [("connection", "close")])


async def chunks() -> AsyncIterator[bytes]:
    yield b"abc"
    yield b"def"


@pytest.mark.parametrize("status", [204, 205, 304])
async def test_no_body_after_204_205_304(status: int, autojump_clock: MockClock) -> None:
    app = H3()
    app.get("/plain", lambda event: Response("should not be sent", status=status))
    app.get("/stream", lambda event: StreamingResponse(chunks(), status=status))
    app.get("/next", lambda event: "next")
    async with TestClient(app) as client:
        for path in ("/plain", "/stream"):
            stream = await client.open_stream()
            await stream.send_all(request_bytes("GET", path) + LAST_NEXT)
            data = await read_until_eof(stream)
            (first, second), clean = parse_responses(data, ["GET", "GET"])
            assert (first.status, first.body) == (status, b"")
            assert b"should not" not in data and b"abc" not in data
            if status == 205:
                assert first.headers["content-length"] == "0"
            assert second.body == b"next"
            assert clean


async def test_a_streamed_body_of_declared_length_is_sent_as_declared(
    autojump_clock: MockClock,
) -> None:
    app = H3()
    app.get("/exact", lambda e: StreamingResponse(chunks(), headers={"content-length": "6"}))
    app.get("/short", lambda e: StreamingResponse(chunks(), headers={"content-length": "9"}))
    app.get("/long", lambda e: StreamingResponse(chunks(), headers={"content-length": "4"}))
    app.get("/next", lambda event: "next")
    async with TestClient(app) as client:
        stream = await client.open_stream()
        # (No half-close: during a streamed response EOF means the client left.)
        await stream.send_all(request_bytes("GET", "/exact") + LAST_NEXT)
        (first, second), clean = parse_responses(await read_until_eof(stream), ["GET", "GET"])
        assert clean
        assert first.body == b"abcdef" and "transfer-encoding" not in first.headers
        assert second.body == b"next"
        for path in ("/short", "/long"):
            # Framing cannot be honoured: the connection is aborted, never a body that
            # reads as something else.
            stream = await client.open_stream()
            await stream.send_all(request_bytes("GET", path))
            data = await read_until_eof(stream)
            with pytest.raises((AssertionError, h11.RemoteProtocolError)):
                parse_responses(data, ["GET"])


async def test_http10_streaming_is_close_delimited(autojump_clock: MockClock) -> None:
    app = H3()
    app.get("/s", lambda e: StreamingResponse(chunks()))
    async with TestClient(app) as client:
        stream = await client.open_stream()
        await stream.send_all(b"GET /s HTTP/1.0\r\n\r\n")
        data = await read_until_eof(stream)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"abcdef"


# -- JSON --------------------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Model:
    def model_dump(self, *, mode: str = "python") -> dict[str, Any]:
        return {"mode": mode}


def test_json_encodes_what_fastapi_users_expect() -> None:
    from trio_h3.response import json_dumps

    value = {
        "datetime": datetime.datetime(2026, 12, 1, 12, 30, tzinfo=datetime.UTC),
        "date": datetime.date(2026, 12, 1),
        "time": datetime.time(12, 30),
        "delta": datetime.timedelta(minutes=1, seconds=30),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "decimal": decimal.Decimal("1.5"),
        "int_decimal": decimal.Decimal("10"),
        "enum": Color.RED,
        "dataclass": Point(1, 2),
        "set": {1},
        "frozenset": frozenset({"a"}),
        "model": Model(),
        "path": PurePosixPath("/a/b"),
    }
    assert json_dumps(value) == (
        b'{"datetime":"2026-12-01T12:30:00+00:00","date":"2026-12-01","time":"12:30:00",'
        b'"delta":90.0,"uuid":"12345678-1234-5678-1234-567812345678","decimal":1.5,'
        b'"int_decimal":10,"enum":"red","dataclass":{"x":1,"y":2},"set":[1],'
        b'"frozenset":["a"],"model":{"mode":"json"},"path":"/a/b"}'
    )


async def test_an_unencodable_value_is_a_500_naming_type_and_route(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Opaque:
        pass

    app = H3()
    app.get("/things/:id", lambda event: {"thing": Opaque()})
    app.get("/nan", lambda event: JSONResponse({"x": float("nan")}))
    async with TestClient(app) as client:
        with caplog.at_level(logging.ERROR, logger="trio_h3"):
            assert (await client.get("/things/1")).status == 500
            assert (await client.get("/nan")).status == 500
    text = caplog.text
    assert "route /things/:id" in text
    assert "Opaque is not JSON serialisable" in text
