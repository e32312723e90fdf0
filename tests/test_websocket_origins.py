"""Origin checks against Cross-Site WebSocket Hijacking: the pure rule, then real sockets.

The real-socket tests use the ``websockets`` library's sync client (in a worker thread),
which sends ``Origin`` only when told to, like the non-browser clients it stands for.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import trio
from helpers import RunServer
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from trio_h3 import H3
from trio_h3.errors import HTTPError
from trio_h3.websocket import WebSocket
from trio_h3.websocket.handshake import AllowedOrigins, check_origin, normalise_origin

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")

# ----------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("origin", "normal"),
    [
        ("https://app.example", "https://app.example"),
        ("HTTPS://App.Example", "https://app.example"),
        ("https://app.example:443", "https://app.example"),
        ("http://app.example:80", "http://app.example"),
        ("https://app.example:8443", "https://app.example:8443"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("chrome-extension://abcdef", "chrome-extension://abcdef"),
        ("https://app.example/", None),
        ("https://app.example/path", None),
        ("https://user@app.example", None),
        ("https://app.example?x", None),
        ("https://app.example:99999", None),
        ("null", None),
        ("app.example", None),
        ("", None),
    ],
)
def test_normalise_origin(origin: str, normal: str | None) -> None:
    assert normalise_origin(origin) == normal


def headers_with(*origins: str) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"api.example"), *((b"origin", o.encode()) for o in origins)]


def status(
    allowed: AllowedOrigins | None, *origins: str, require_origin: bool = False
) -> int | None:
    try:
        check_origin(headers_with(*origins), allowed, require_origin=require_origin)
    except HTTPError as err:
        return err.status
    return None


def test_exact_origins_compare_case_insensitively_with_default_ports() -> None:
    allowed = AllowedOrigins.of(["https://App.Example", "http://localhost:3000"])
    assert status(allowed, "https://app.example") is None
    assert status(allowed, "https://APP.EXAMPLE:443") is None
    assert status(allowed, "http://localhost:3000") is None
    assert status(allowed, "http://app.example") == 403  # the scheme is part of it
    assert status(allowed, "https://app.example:8443") == 403
    assert status(allowed, "https://evil.app.example") == 403
    assert status(allowed, "https://app.example.evil") == 403
    assert status(allowed, "http://localhost:3001") == 403
    assert status(allowed, "null") == 403
    assert status(allowed, "https://app.example/") == 403  # not an origin


def test_star_callables_and_null() -> None:
    assert status(AllowedOrigins.of(["*"]), "https://anything.example") is None
    assert status(AllowedOrigins.of(["*"]), "null") is None
    subdomains = AllowedOrigins.of(lambda o: o.endswith(".example.com"))
    assert status(subdomains, "https://a.example.com") is None
    assert status(subdomains, "https://example.org") == 403
    mixed = AllowedOrigins.of(["https://app.example", lambda o: o == "null"])
    assert status(mixed, "null") is None
    assert status(AllowedOrigins.of(["null"]), "null") is None
    assert status(AllowedOrigins.of("https://one.example"), "https://one.example") is None
    assert status(AllowedOrigins.of([]), "https://app.example") == 403


def test_without_origin_is_allowed_unless_required() -> None:
    allowed = AllowedOrigins.of(["https://app.example"])
    assert status(allowed) is None  # a non-browser client
    assert status(None) is None
    assert status(allowed, require_origin=True) == 403
    assert status(None, require_origin=True) == 403
    assert status(None, "https://anything.example", require_origin=True) is None


def test_two_origin_headers_are_refused() -> None:
    allowed = AllowedOrigins.of(["https://app.example"])
    assert status(allowed, "https://app.example", "https://evil.example") == 403


def test_refusal_is_403_with_a_message_naming_the_origin() -> None:
    with pytest.raises(HTTPError) as info:
        check_origin(headers_with("https://evil.example"), AllowedOrigins.of(["https://a.b"]))
    assert info.value.status == 403
    assert "https://evil.example" in info.value.message


@pytest.mark.parametrize(
    "bad", ["https://app.example/", "app.example", "https://app.example/x", "https://u@a.b", 7]
)
def test_a_malformed_route_origin_fails_at_registration(bad: Any) -> None:
    app = H3()
    with pytest.raises((ValueError, TypeError)):

        @app.ws("/ws", origins=[bad])
        async def handler(ws: WebSocket) -> None:
            pass


# ----------------------------------------------------------------------------- real sockets


def make_app() -> H3:
    app = H3()

    async def hello(ws: WebSocket) -> None:
        await ws.send("hello")

    app.ws("/default", hello)  # the server-wide ws_origins
    app.ws("/app", hello, origins=["https://app.example", "http://localhost:5173"])
    app.ws("/strict", hello, origins=["https://app.example"], require_origin=True)
    app.ws("/public", hello, origins=None)  # opts out of the server-wide list
    app.ws("/any", hello, origins=["*"])
    app.ws("/sub", hello, origins=lambda o: o.endswith(".example.com"))

    def broken_rule(origin: str) -> bool:
        raise RuntimeError("the origin rule itself failed")

    app.ws("/broken", hello, origins=[broken_rule])
    return app


def connect(port: int, path: str, origin: str | None) -> tuple[int, Any]:
    """Runs in a worker thread: (101, first message) or (status, JSON body)."""
    try:
        with ws_connect(
            f"ws://127.0.0.1:{port}{path}",
            origin=origin,  # type: ignore[arg-type]
            open_timeout=5,
            close_timeout=5,
        ) as client:
            return 101, client.recv(timeout=5)
    except InvalidStatus as exc:
        body = exc.response.body
        return exc.response.status_code, json.loads(body) if body else None


CASES = [
    ("/app", "https://app.example", 101),
    ("/app", "https://APP.example:443", 101),
    ("/app", "http://localhost:5173", 101),
    ("/app", "https://evil.example", 403),
    ("/app", "http://app.example", 403),
    ("/app", "null", 403),
    ("/app", None, 101),  # not a browser
    ("/strict", "https://app.example", 101),
    ("/strict", None, 403),
    ("/default", "https://server.example", 101),
    ("/default", "https://app.example", 403),
    ("/default", None, 101),
    ("/public", "https://evil.example", 101),
    ("/any", "https://evil.example", 101),
    ("/sub", "https://a.example.com", 101),
    ("/sub", "https://example.org", 403),
    ("/broken", "https://app.example", 500),
]


async def test_origins_over_real_sockets(
    running_server: RunServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_h3")
    async with running_server(make_app(), ws_origins=["https://server.example"]) as server:
        for path, origin, expected in CASES:
            got, body = await trio.to_thread.run_sync(connect, server.port, path, origin)
            assert got == expected, (path, origin, got, body)
            if expected == 101:
                assert body == "hello"
            elif expected == 403:
                assert body["status"] == 403
                assert ("Origin" in body["message"]) or ("origin" in body["message"])
            else:
                assert body == {"status": 500, "message": "Internal Server Error"}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "the origin rule itself failed" in str(errors[0].exc_info)
    assert "/broken" in errors[0].getMessage()


async def test_require_origin_server_wide(running_server: RunServer) -> None:
    async with running_server(make_app(), ws_require_origin=True) as server:
        assert (await trio.to_thread.run_sync(connect, server.port, "/default", None))[0] == 403
        found = await trio.to_thread.run_sync(connect, server.port, "/default", "https://x.y")
        assert found[0] == 101


async def test_a_malformed_server_wide_origin_answers_500_and_logs(
    running_server: RunServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_server(make_app(), ws_origins=["https://server.example/"]) as server:
        got = await trio.to_thread.run_sync(connect, server.port, "/default", "https://a.b")
        assert got[0] == 500
        # A route with its own origins does not use the server-wide list.
        got = await trio.to_thread.run_sync(connect, server.port, "/app", "https://app.example")
        assert got[0] == 101
    assert any("origins setting is invalid" in r.getMessage() for r in caplog.records)
