"""TestClient's cookie jar: kept across requests from every Set-Cookie, as a browser would.

Max-Age/Expires deletions and lifetimes (on Trio's clock), Path, Domain and Secure for
the single test host, per-request cookies; and against httpx over a real socket: the
same Set-Cookie sequence leaves the handler seeing the same cookies.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

import httpx
import pytest
import trio
from helpers import RunServer
from trio.testing import MockClock

from trio_h3 import H3, H3Event, set_cookie
from trio_h3.testing import Cookies, TestClient


def cookie_app() -> H3:
    """``POST .../set`` answers with the Set-Cookie values in its JSON body; every
    other request echoes the cookies it carried."""
    app = H3()

    @app.post("/**")
    async def set_raw(event: H3Event) -> dict[str, Any]:
        for value in await event.json():
            event.response_headers.add("set-cookie", value)
        return {"cookies": event.cookies}

    @app.get("/login")
    async def login(event: H3Event) -> str:
        set_cookie(event, "sid", "s3cret")
        set_cookie(event, "theme", "dark", max_age=3600)
        return "welcome"

    @app.all("/**")
    async def echo(event: H3Event) -> dict[str, Any]:
        return {"cookie": event.headers.get("cookie"), "cookies": event.cookies}

    return app


async def sent(client: TestClient, url: str = "/echo", **kwargs: Any) -> dict[str, str]:
    """The cookies the handler received for ``GET url``."""
    cookies: dict[str, str] = (await client.get(url, **kwargs)).json()["cookies"]
    return cookies


async def test_the_jar_is_kept_across_requests(autojump_clock: MockClock) -> None:
    async with TestClient(cookie_app()) as client:
        response = await client.get("/login")
        assert response.cookies == {"sid": "s3cret", "theme": "dark"}
        assert dict(client.cookies) == {"sid": "s3cret", "theme": "dark"}
        assert await sent(client) == {"sid": "s3cret", "theme": "dark"}
        assert (await client.get("/echo")).json()["cookie"] == "sid=s3cret; theme=dark"


async def test_max_age_zero_and_delete_cookie_remove_it(autojump_clock: MockClock) -> None:
    async with TestClient(cookie_app(), cookies={"a": "1", "b": "2", "c": "3"}) as client:
        response = await client.post(
            "/set",
            json=[
                "a=; Max-Age=0",
                "b=gone; Max-Age=-1",
                "c=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/",
            ],
        )
        assert response.cookies == {}
        assert dict(client.cookies) == {}
        assert await sent(client) == {}


async def test_an_expires_in_the_past_removes_it(autojump_clock: MockClock) -> None:
    async with TestClient(cookie_app(), cookies={"old": "1"}) as client:
        await client.post("/set", json=["old=; Expires=Thu, 01-Jan-1970 00:00:01 GMT"])
        assert "old" not in client.cookies


async def test_max_age_wins_over_expires(autojump_clock: MockClock) -> None:
    async with TestClient(cookie_app()) as client:
        await client.post("/set", json=["k=v; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=60"])
        assert client.cookies["k"] == "v"


async def test_a_lifetime_runs_on_the_mock_clock(autojump_clock: MockClock) -> None:
    later = formatdate(time.time() + 600, usegmt=True)
    async with TestClient(cookie_app()) as client:
        await client.post("/set", json=["short=1; Max-Age=60", f"long=2; Expires={later}"])
        assert await sent(client) == {"short": "1", "long": "2"}
        await trio.sleep(61)
        assert await sent(client) == {"long": "2"}
        await trio.sleep(600)  # Expires was read against the response's Date
        assert await sent(client) == {}
        assert len(client.cookies) == 0


async def test_path_defaults_to_the_request_directory(autojump_clock: MockClock) -> None:
    async with TestClient(cookie_app()) as client:
        await client.post("/account/set", json=["dir=1", "root=2; Path=/", "deep=3; Path=/a/b"])
        assert await sent(client, "/account/profile") == {"dir": "1", "root": "2"}
        assert await sent(client, "/account") == {"dir": "1", "root": "2"}
        assert await sent(client, "/accounts") == {"root": "2"}  # not a path-match
        assert await sent(client, "/other") == {"root": "2"}
        echo = (await client.get("/a/b/c")).json()
        assert echo["cookie"] == "deep=3; root=2"  # the longest path first
        assert {c.name: c.path for c in client.cookies.all()} == {
            "deep": "/a/b",
            "dir": "/account",
            "root": "/",
        }


async def test_same_name_same_path_replaces(autojump_clock: MockClock) -> None:
    async with TestClient(cookie_app()) as client:
        await client.post("/set", json=["n=1; Path=/", "n=2; Path=/", "n=3; Path=/x"])
        assert await sent(client, "/") == {"n": "2"}
        assert (await client.get("/x/y")).json()["cookie"] == "n=3; n=2"
        assert client.cookies["n"] == "3"  # the most specific


async def test_domain_must_match_the_test_host(autojump_clock: MockClock) -> None:
    client = TestClient(cookie_app(), base_url="http://api.example.com")
    async with client:
        await client.post(
            "/set",
            json=[
                "host=1",
                "parent=2; Domain=.example.com",
                "self=3; Domain=API.example.com",
                "other=4; Domain=other.com",
                "child=5; Domain=sub.api.example.com",
            ],
        )
        assert dict(client.cookies) == {"host": "1", "parent": "2", "self": "3"}
        assert await sent(client) == {"host": "1", "parent": "2", "self": "3"}
        # Another host of the domain gets only the Domain cookies, not the host-only one.
        assert await sent(client, "http://www.example.com/echo") == {"parent": "2"}
        assert await sent(client, "http://example.com/") == {"parent": "2"}
        assert await sent(client, "http://elsewhere.org/") == {}


async def test_secure_cookies_need_https(autojump_clock: MockClock) -> None:
    async with TestClient(cookie_app()) as plain:
        await plain.post("/set", json=["s=1; Secure", "p=2"])
        assert dict(plain.cookies) == {"p": "2"}  # an http origin cannot set a Secure one
    async with TestClient(cookie_app(), base_url="https://testserver") as tls:
        await tls.post("/set", json=["s=1; Secure; HttpOnly", "p=2"])
        assert await sent(tls) == {"s": "1", "p": "2"}
        assert await sent(tls, "http://testserver/echo") == {"p": "2"}  # not over http
        assert [c.secure for c in tls.cookies.all()] == [True, False]


async def test_request_cookies_are_sent_not_stored(autojump_clock: MockClock) -> None:
    async with TestClient(cookie_app(), cookies={"sid": "jar", "keep": "1"}) as client:
        assert await sent(client, cookies={"sid": "mine", "extra": "x"}) == {
            "keep": "1",
            "sid": "mine",
            "extra": "x",
        }
        assert await sent(client) == {"sid": "jar", "keep": "1"}
        assert dict(client.cookies) == {"sid": "jar", "keep": "1"}


async def test_a_cookie_header_given_by_the_caller_wins(autojump_clock: MockClock) -> None:
    async with TestClient(cookie_app(), cookies={"sid": "jar"}) as client:
        echo = (await client.get("/echo", headers={"Cookie": "raw=1"})).json()
    assert echo["cookie"] == "raw=1"


async def test_the_jar_is_a_mapping(autojump_clock: MockClock) -> None:
    async with TestClient(cookie_app()) as client:
        client.cookies["a"] = "1"
        client.cookies.set("b", "2", path="/only")
        assert await sent(client) == {"a": "1"}
        assert await sent(client, "/only/here") == {"a": "1", "b": "2"}
        del client.cookies["a"]
        with pytest.raises(KeyError):
            del client.cookies["a"]
        assert client.cookies.get("a") is None and list(client.cookies) == ["b"]
        client.cookies.clear()
        assert await sent(client, "/only/here") == {}


def test_malformed_set_cookie_values_are_ignored() -> None:
    jar = Cookies()
    stored = jar.extract(
        ["novalue", "=nameless", "ok=1; Max-Age=abc; Path=relative", 'q="quoted"; max-age=5'],
        scheme="http",
        host="testserver",
        path="/dir/page",
    )
    assert stored == {"ok": "1", "q": '"quoted"'}
    assert [(c.name, c.path, c.expires_at is None) for c in jar.all()] == [
        ("ok", "/dir", True),  # a bad Max-Age is ignored, a relative Path is the default
        ("q", "/dir", False),
    ]


async def test_cookies_on_streams_and_sse(autojump_clock: MockClock) -> None:
    async with TestClient(cookie_app()) as client:
        async with client.stream("GET", "/login") as response:
            assert response.cookies == {"sid": "s3cret", "theme": "dark"}
            await response.read()
        async with client.sse("/echo", cookies={"one": "off"}) as stream:
            assert stream.response.cookies == {}
            assert stream.response.request is not None
        assert await sent(client) == {"sid": "s3cret", "theme": "dark"}


# -- the same as httpx ----------------------------------------------------------------------

SEQUENCE = [
    ("/set", ["a=1", "b=2; Path=/", "gone=x", "sub=3; Path=/account"]),
    ("/account/set", ["c=4", "b=5; Path=/account"]),
    ("/set", ["gone=; Max-Age=0", "a=; Expires=Thu, 01 Jan 1970 00:00:00 GMT"]),
]


async def replay(post: Any, get: Any) -> list[Any]:
    """Run SEQUENCE, then read what the handler sees on a few paths."""
    for url, values in SEQUENCE:
        await post(url, json=values)
    seen = []
    for url in ("/", "/account", "/account/deep/page", "/accounting"):
        echo = (await get(url)).json()
        seen.append((url, echo["cookie"], echo["cookies"]))
    return seen


async def test_the_jar_behaves_like_httpx(running_server: RunServer) -> None:
    app = cookie_app()
    async with TestClient(app) as client:
        ours = await replay(client.post, client.get)
    with trio.fail_after(10):
        async with running_server(app) as server:
            async with httpx.AsyncClient(base_url=server.url) as real:
                theirs = await replay(real.post, real.get)
    assert ours == theirs
    assert ours[2][2] == {"b": "5", "c": "4", "sub": "3"}
