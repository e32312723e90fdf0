"""Request heads the server refuses: smuggling, Host, sizes, versions (RFC 9110, RFC 9112).

Each is answered with its status and the JSON error body, then the connection closes:
nothing after a refused head is ever read as another request.
"""

from __future__ import annotations

import pytest
import trio
from helpers import RunServer, parse_responses, read_until_eof
from trio.testing import MockClock

from trio_h3 import H3, H3Event
from trio_h3.testing import TestClient

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")


def app() -> H3:
    application = H3()

    @application.post("/echo")
    async def echo(event: H3Event) -> dict[str, str]:
        return {"body": (await event.body()).decode(), "host": event.url.host}

    @application.get("/x")
    async def x(event: H3Event) -> dict[str, str]:
        return {"path": event.path, "host": event.url.host, "version": event.http_version}

    return application


SMUGGLED = b"GET /x HTTP/1.1\r\nHost: smuggled\r\n\r\n"


async def exchange(raw: bytes, methods: list[str]) -> tuple[list[object], bool, bytes]:
    async with TestClient(app()) as client:
        stream = await client.open_stream()
        await stream.send_all(raw)
        data = await read_until_eof(stream)
    responses, clean = parse_responses(data, methods)
    return list(responses), clean, data


@pytest.mark.parametrize(
    ("name", "head", "status"),
    [
        ("CL and TE", b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400),
        ("TE and CL", b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400),
        ("final coding not chunked", b"Transfer-Encoding: chunked, identity\r\n", 501),
        ("unknown coding", b"Transfer-Encoding: xchunked\r\n", 501),
        ("coding list", b"Transfer-Encoding: gzip, chunked\r\n", 501),
        ("two TE fields", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 501),
        ("two CL fields", b"Content-Length: 0\r\nContent-Length: 0\r\n", 400),
        ("CL list", b"Content-Length: 0, 0\r\n", 400),
        ("conflicting CL", b"Content-Length: 0\r\nContent-Length: 5\r\n", 400),
        ("negative CL", b"Content-Length: -1\r\n", 400),
        ("CL with a sign", b"Content-Length: +0\r\n", 400),
    ],
)
async def test_ambiguous_framing_is_refused_and_the_connection_closed(
    name: str, head: bytes, status: int, autojump_clock: MockClock
) -> None:
    raw = b"POST /echo HTTP/1.1\r\nHost: a\r\n" + head + b"\r\n0\r\n\r\n" + SMUGGLED
    responses, clean, data = await exchange(raw, ["POST"])
    (response,) = responses
    assert response.status == status, name  # type: ignore[attr-defined]
    assert response.json()["status"] == status  # type: ignore[attr-defined]
    assert response.headers["connection"] == "close"  # type: ignore[attr-defined]
    assert clean, "the connection must close right after the refusal"
    assert b"smuggled" not in data


async def test_transfer_coding_names_are_case_insensitive(autojump_clock: MockClock) -> None:
    # RFC 9112 §7: "All transfer-coding names are case-insensitive"; OWS is allowed.
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n" + SMUGGLED
    )
    (first, second), _, _ = await exchange(raw, ["POST", "GET"])
    assert first.json()["body"] == "abc"  # type: ignore[attr-defined]
    assert second.json()["host"] == "smuggled"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "host",
    [b"a b", b"user@evil", b"evil.example/path", b"[::1", b"a:b:c", b'a"b', b"h\tx"],
)
async def test_invalid_host_is_400(host: bytes, autojump_clock: MockClock) -> None:
    (response,), clean, _ = await exchange(
        b"GET /x HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", ["GET"]
    )
    assert response.status == 400  # type: ignore[attr-defined]
    assert clean


@pytest.mark.parametrize(
    "host",
    [
        b"example.com",
        b"example.com:8080",
        b"127.0.0.1:3000",
        b"[::1]:3000",
        b"xn--bcher-kva.example",
        b"",
    ],
)
async def test_valid_host_is_served(host: bytes, autojump_clock: MockClock) -> None:
    (response,), _, _ = await exchange(b"GET /x HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", ["GET"])
    assert response.status == 200  # type: ignore[attr-defined]


async def test_two_host_fields_and_none_are_400(autojump_clock: MockClock) -> None:
    for head in (b"Host: a\r\nHost: a\r\n", b""):
        (response,), clean, _ = await exchange(b"GET /x HTTP/1.1\r\n" + head + b"\r\n", ["GET"])
        assert response.status == 400  # type: ignore[attr-defined]
        assert clean


async def test_absolute_form_takes_its_authority_for_the_url(autojump_clock: MockClock) -> None:
    raw = b"GET http://a.example:8080/x?q=1 HTTP/1.1\r\nHost: other\r\n\r\n"
    (response,), _, _ = await exchange(raw, ["GET"])
    assert response.json() == {"path": "/x", "host": "a.example:8080", "version": "1.1"}  # type: ignore[attr-defined]


async def test_long_request_line_is_414_and_big_head_431(autojump_clock: MockClock) -> None:
    async with TestClient(app(), max_target_size=1000, max_header_size=4000) as client:
        for raw, status in [
            (b"GET /" + b"a" * 1000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
            (b"GET /x HTTP/1.1\r\nHost: a\r\nX: " + b"b" * 5000 + b"\r\n\r\n", 431),
            (b"GET /" + b"a" * 5000, 414),  # never finished: the line alone is over
            (b"GET /x HTTP/1.1\r\nHost: a\r\nX: " + b"b" * 5000, 431),
        ]:
            stream = await client.open_stream()
            await stream.send_all(raw)
            await stream.send_eof()
            (response,), clean = parse_responses(await read_until_eof(stream), ["GET"])
            assert (response.status, response.json()["status"]) == (status, status)
            assert clean


@pytest.mark.parametrize(
    ("version", "status"),
    [(b"1.0", 200), (b"1.1", 200), (b"1.2", 505), (b"1.9", 505), (b"2.0", 505), (b"0.9", 505)],
)
async def test_http_versions(version: bytes, status: int, autojump_clock: MockClock) -> None:
    # RFC 9110 §2.5 says a higher minor version SHOULD be served as 1.1 (h11 would);
    # llhttp refuses HTTP/1.2+ outright, and the stricter answer wins on both backends.
    raw = b"GET /x HTTP/" + version + b"\r\nHost: a\r\n\r\n"
    async with TestClient(app()) as client:
        stream = await client.open_stream()
        await stream.send_all(raw)
        await stream.send_eof()
        data = await read_until_eof(stream)
    assert data.startswith(b"HTTP/1.1 %d " % status)


@pytest.mark.slow
async def test_smuggling_over_a_real_socket(running_server: RunServer) -> None:
    async with running_server(app()) as server:
        stream = await trio.open_tcp_stream(server.host, server.port)
        raw = (
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        await stream.send_all(raw + SMUGGLED)
        with trio.fail_after(5):
            data = await read_until_eof(stream)
        (response,), clean = parse_responses(data, ["POST"])
        assert response.status == 400
        assert clean and b"smuggled" not in data
