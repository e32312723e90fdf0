"""cors(): preflights answered for any path, origins as a list, "*", a regex or a
callable, credentials never with "*", Vary: Origin, errors and SSE streams included.
(What a browser makes of it: tests/test_browser.py.)"""

from __future__ import annotations

import re

import httpx
import pytest
from helpers import RunServer
from trio.testing import MockClock

from trio_h3 import H3, H3Event, HTTPError, SSEWriter, cors
from trio_h3.testing import TestClient

APP = "https://app.example"


def make_app(**options: object) -> H3:
    app = H3()
    app.use(cors(**options))  # type: ignore[arg-type]

    @app.get("/items")
    async def items(event: H3Event) -> list[int]:
        return [1, 2]

    @app.get("/fail")
    async def fail(event: H3Event) -> None:
        raise HTTPError(409, "conflict")

    @app.get("/events")
    async def events(event: H3Event) -> None:
        event.start_sse()

        async def produce(writer: SSEWriter) -> None:
            await writer.send("hi")

        event.set_stream_callback(produce)

    return app


def preflight(origin: str = APP, method: str = "PUT", headers: str = "") -> dict[str, str]:
    out = {"origin": origin, "access-control-request-method": method}
    if headers:
        out["access-control-request-headers"] = headers
    return out


async def test_preflight_for_any_route_even_without_options_handler(
    autojump_clock: MockClock,
) -> None:
    app = make_app(origins=[APP], credentials=True, max_age=600, expose_headers=["x-total"])
    async with TestClient(app) as client:
        for path in ("/items", "/no/such/route"):
            r = await client.options(path, headers=preflight(headers="Authorization, X-Token"))
            assert r.status == 204 and r.content == b""
            assert r.headers["access-control-allow-origin"] == APP
            assert r.headers["access-control-allow-credentials"] == "true"
            assert (
                r.headers["access-control-allow-methods"] == "DELETE, GET, HEAD, PATCH, POST, PUT"
            )
            assert r.headers["access-control-allow-headers"] == "Authorization, X-Token"
            assert r.headers["access-control-max-age"] == "600"
            assert "Origin" in r.headers["vary"]
        # A plain OPTIONS (no Access-Control-Request-Method) is not a preflight.
        r = await client.options("/items", headers={"origin": APP})
        assert r.status == 405
        # Actual requests: the origin echoed, credentials, exposed headers, Vary.
        r = await client.get("/items", headers={"origin": APP})
        assert r.headers["access-control-allow-origin"] == APP
        assert r.headers["access-control-allow-credentials"] == "true"
        assert r.headers["access-control-expose-headers"] == "x-total"
        assert r.headers["vary"] == "Origin"
        # On errors and unknown routes too.
        r = await client.get("/fail", headers={"origin": APP})
        assert (r.status, r.headers["access-control-allow-origin"]) == (409, APP)
        r = await client.get("/nope", headers={"origin": APP})
        assert (r.status, r.headers["access-control-allow-origin"]) == (404, APP)
        # And SSE streams.
        async with client.stream("GET", "/events", headers={"origin": APP}) as stream:
            assert stream.headers["access-control-allow-origin"] == APP
            assert stream.headers["access-control-allow-credentials"] == "true"
        # No Origin: no CORS headers, but the answer still varies on it.
        r = await client.get("/items")
        assert "access-control-allow-origin" not in r.headers
        assert r.headers["vary"] == "Origin"


async def test_refused_origins_methods_and_headers(autojump_clock: MockClock) -> None:
    app = make_app(origins=[APP], methods=["GET", "POST"], headers=["content-type"])
    async with TestClient(app) as client:
        r = await client.options("/items", headers=preflight("https://evil.example", "GET"))
        assert r.status == 403 and "access-control-allow-origin" not in r.headers
        assert r.json()["message"] == "CORS: origin https://evil.example is not allowed"
        r = await client.options("/items", headers=preflight(method="DELETE"))
        assert r.status == 403
        r = await client.options("/items", headers=preflight(method="POST", headers="X-Evil"))
        assert r.status == 403
        r = await client.options("/items", headers=preflight(method="POST", headers="Content-Type"))
        assert r.status == 204
        assert r.headers["access-control-allow-headers"] == "content-type"
        r = await client.get("/items", headers={"origin": "https://evil.example"})
        assert r.status == 200 and "access-control-allow-origin" not in r.headers


async def test_star_never_goes_with_credentials(autojump_clock: MockClock) -> None:
    async with TestClient(make_app()) as client:
        r = await client.get("/items", headers={"origin": APP})
        assert r.headers["access-control-allow-origin"] == "*"
        assert "vary" not in r.headers  # the same answer for every origin
        r = await client.options("/items", headers=preflight(method="PATCH", headers="X-A"))
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.headers["access-control-allow-headers"] == "X-A"
    async with TestClient(make_app(origins="*", credentials=True, methods="*")) as client:
        r = await client.get("/items", headers={"origin": APP})
        assert r.headers["access-control-allow-origin"] == APP
        assert r.headers["vary"] == "Origin"
        r = await client.options("/items", headers=preflight(method="PROPFIND"))
        assert r.headers["access-control-allow-methods"] == "PROPFIND"
        # "null" (sandboxed frames) is never let in by "*" with credentials.
        r = await client.get("/items", headers={"origin": "null"})
        assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(
    "origins",
    [re.compile(r"https://[a-z]+\.example"), lambda origin: origin.endswith(".example"), APP],
)
async def test_origins_as_regex_callable_or_one_string(
    autojump_clock: MockClock, origins: object
) -> None:
    async with TestClient(make_app(origins=origins)) as client:
        r = await client.get("/items", headers={"origin": APP})
        assert r.headers["access-control-allow-origin"] == APP
        r = await client.get("/items", headers={"origin": "https://app.example.evil.com"})
        assert "access-control-allow-origin" not in r.headers


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="'\\*' in a list"):
        cors(origins=["*", APP])
    with pytest.raises(ValueError, match="max_age"):
        cors(max_age=-1)


async def test_preflight_over_a_real_socket_with_httpx(running_server: RunServer) -> None:
    async with running_server(make_app(origins=[APP])) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            r = await client.options("/items", headers=preflight())
            assert r.status_code == 204
            assert r.headers["access-control-allow-origin"] == APP
