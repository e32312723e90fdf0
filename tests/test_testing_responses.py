"""TestClient responses and the client's address: status_code, reason_phrase,
raise_for_status, url, request, base_url (its scheme is the connection's), and the
package's public surface."""

from __future__ import annotations

import inspect
from typing import Any

import httpx
import pytest
import trio
from helpers import RunServer
from trio.testing import MockClock

import trio_h3.testing
from trio_h3 import H3, H3Event, Headers, HTTPError, WebSocket
from trio_h3.testing import HTTPStatusError, RequestURL, TestClient, TestResponse


def status_app() -> H3:
    app = H3()

    @app.get("/status/:code")
    async def status(event: H3Event) -> str:
        event.status = int(event.params["code"])
        return "body"

    @app.get("/missing")
    async def missing(event: H3Event) -> str:
        raise HTTPError(404, "No such thing")

    @app.all("/**")
    async def where(event: H3Event) -> dict[str, Any]:
        return {
            "scheme": event.scheme,
            "url": str(event.url),
            "host": event.headers.get("host"),
            "server": list(event.server) if event.server else None,
            "path": event.path,
            "raw_path": event.raw_path,
        }

    @app.ws("/ws")
    async def ws(socket: WebSocket) -> None:
        event = socket.event
        await socket.send(f"{event.scheme} {event.headers.get('host')} {event.cookies}")

    return app


async def test_status_code_and_reason_phrase(autojump_clock: MockClock) -> None:
    async with TestClient(status_app()) as client:
        ok = await client.get("/status/200")
        missing = await client.get("/missing")
    assert (ok.status, ok.status_code, ok.reason_phrase) == (200, 200, "OK")
    assert (missing.status_code, missing.reason_phrase) == (404, "Not Found")
    assert ok.is_success and not ok.is_error and not ok.is_redirect
    assert missing.is_client_error and missing.is_error and not missing.is_server_error


async def test_raise_for_status(autojump_clock: MockClock) -> None:
    async with TestClient(status_app()) as client:
        ok = await client.get("/status/201")
        assert ok.raise_for_status() is ok  # chainable, as httpx
        assert (await client.get("/status/200")).raise_for_status().text == "body"
        for code, kind in ((404, "Client error"), (503, "Server error")):
            response = await client.get(f"/status/{code}")
            with pytest.raises(HTTPStatusError, match=kind) as caught:
                response.raise_for_status()
            assert caught.value.response is response
            assert caught.value.request is response.request
    with pytest.raises(HTTPStatusError, match="Informational response '101 '"):
        TestResponse(101, Headers(), b"").raise_for_status()  # 1xx raise too, as httpx


async def test_raise_for_status_reads_like_httpx(running_server: RunServer) -> None:
    app = status_app()
    async with TestClient(app) as client:
        with pytest.raises(HTTPStatusError) as ours:
            (await client.get("/missing")).raise_for_status()
    with trio.fail_after(10):
        async with running_server(app) as server:
            async with httpx.AsyncClient(base_url=server.url) as real:
                with pytest.raises(httpx.HTTPStatusError) as theirs:
                    (await real.get("/missing")).raise_for_status()
    assert str(ours.value) == str(theirs.value).replace(server.url, "http://testserver")


async def test_url_and_request(autojump_clock: MockClock) -> None:
    async with TestClient(status_app()) as client:
        response = await client.post("/a/b", params={"q": "1 2"}, content=b"hi")
    assert response.url == "http://testserver/a/b?q=1+2"
    assert isinstance(response.url, RequestURL) and isinstance(response.url, str)
    url = response.url
    assert (url.scheme, url.host, url.port, url.path, url.query) == (
        "http",
        "testserver",
        80,
        "/a/b",
        "q=1+2",
    )
    assert url.target == "/a/b?q=1+2"
    request = response.request
    assert request is not None
    assert (request.method, request.url, request.content) == ("POST", url, b"hi")
    assert request.headers["content-length"] == "2"


async def test_the_default_base_url(autojump_clock: MockClock) -> None:
    async with TestClient(status_app()) as client:
        echo = (await client.get("/x")).json()
    assert echo == {
        "scheme": "http",
        "url": "http://testserver/x",
        "host": "testserver",
        "server": ["testserver", 80],
        "path": "/x",
        "raw_path": "/x",
    }


async def test_an_https_base_url_with_a_port_and_a_path(autojump_clock: MockClock) -> None:
    async with TestClient(status_app(), base_url="https://api.example.org:8443/v1/") as client:
        echo = (await client.get("/users")).json()
        bare = (await client.get("")).json()
        absolute = (await client.get("http://other.test/y")).json()
    assert echo == {
        "scheme": "https",
        "url": "https://api.example.org:8443/v1/users",
        "host": "api.example.org:8443",
        "server": ["api.example.org", 8443],
        "path": "/v1/users",
        "raw_path": "/v1/users",
    }
    assert bare["raw_path"] == "/v1/"  # "" is the base URL's own path, as httpx
    assert (absolute["scheme"], absolute["url"]) == ("http", "http://other.test/y")


async def test_a_default_port_is_left_out(autojump_clock: MockClock) -> None:
    async with TestClient(status_app(), base_url="https://secure.test:443") as client:
        echo = (await client.get("/")).json()
    assert (echo["host"], echo["server"]) == ("secure.test", ["secure.test", 443])


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="base_url"):
        TestClient(status_app(), base_url="ftp://files")


async def test_websocket_follows_base_url_and_sends_cookies(autojump_clock: MockClock) -> None:
    client = TestClient(status_app(), base_url="https://chat.test", cookies={"sid": "1"})
    async with client:
        async with client.websocket("/ws", cookies={"extra": "2"}) as ws:
            assert await ws.receive() == "https chat.test {'sid': '1', 'extra': '2'}"


async def test_sse_and_stream_take_the_request_arguments(autojump_clock: MockClock) -> None:
    async with TestClient(status_app(), base_url="https://sse.test") as client:
        async with client.stream("GET", "/s", params={"a": "1"}) as response:
            assert response.status_code == 200 and response.reason_phrase == "OK"
            assert response.url == "https://sse.test/s?a=1"
            assert response.raise_for_status() is response
            assert (await response.buffered()).json()["scheme"] == "https"


def test_every_public_name_imports_and_is_documented() -> None:
    for name in trio_h3.testing.__all__:
        value = getattr(trio_h3.testing, name)
        assert inspect.getdoc(value), name
    assert trio_h3.testing.ServerSentEvent is trio_h3.ServerSentEvent
    assert trio_h3.testing.SSEParser is trio_h3.SSEParser
