"""TestClient's follow_redirects: off by default (as httpx), the method and body rules,
``response.history``, cookies and headers on the way, and the same as httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
from helpers import RunServer
from trio.testing import MockClock

from trio_h3 import H3, H3Event, RedirectResponse, set_cookie
from trio_h3.testing import HTTPStatusError, TestClient, TooManyRedirects


def redirect_app() -> H3:
    """``/to/<status>?to=<location>`` redirects; ``/chain/<n>`` takes n hops; the rest echoes."""
    app = H3()

    @app.all("/to/:status")
    async def redirect(event: H3Event) -> RedirectResponse:
        await event.body()
        return RedirectResponse(event.query.get("to", "/echo"), int(event.params["status"]))

    @app.get("/chain/:n")
    async def chain(event: H3Event) -> Any:
        n = int(event.params["n"])
        return RedirectResponse(f"/chain/{n - 1}") if n else "done"

    @app.post("/login")
    async def login(event: H3Event) -> RedirectResponse:
        set_cookie(event, "sid", "abc")
        return RedirectResponse("/echo", 303)

    @app.all("/**")
    async def echo(event: H3Event) -> dict[str, Any]:
        return {
            "method": event.method,
            "url": str(event.url),
            "body": (await event.body()).decode(),
            "content_type": event.headers.get("content-type"),
            "authorization": event.headers.get("authorization"),
            "cookies": event.cookies,
        }

    return app


async def test_redirects_are_not_followed_by_default(autojump_clock: MockClock) -> None:
    async with TestClient(redirect_app()) as client:
        response = await client.get("/to/302?to=/elsewhere")
    assert response.status_code == 302
    assert response.is_redirect
    assert response.headers["location"] == "/elsewhere"
    assert response.history == []
    with pytest.raises(HTTPStatusError, match="Redirect location: '/elsewhere'"):
        response.raise_for_status()


async def test_following_them(autojump_clock: MockClock) -> None:
    async with TestClient(redirect_app()) as client:
        response = await client.get("/chain/3", follow_redirects=True)
    assert (response.status, response.text) == (200, "done")
    assert response.url == "http://testserver/chain/0"
    assert [(r.status, r.url.path) for r in response.history] == [
        (302, "/chain/3"),
        (302, "/chain/2"),
        (302, "/chain/1"),
    ]
    # As httpx: each response carries the ones before it.
    assert [len(r.history) for r in response.history] == [0, 1, 2]


async def test_the_client_default_and_a_request_override(autojump_clock: MockClock) -> None:
    async with TestClient(redirect_app(), follow_redirects=True) as client:
        assert (await client.get("/chain/1")).status == 200
        assert (await client.get("/chain/1", follow_redirects=False)).status == 302


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_a_post_becomes_a_get_without_its_body(
    autojump_clock: MockClock, status: int
) -> None:
    async with TestClient(redirect_app()) as client:
        response = await client.post(f"/to/{status}", data={"a": "1"}, follow_redirects=True)
    assert response.json() == {
        "method": "GET",
        "url": "http://testserver/echo",
        "body": "",
        # httpx keeps every header but the body's framing (the Fetch standard would
        # drop Content-Type too).
        "content_type": "application/x-www-form-urlencoded",
        "authorization": None,
        "cookies": {},
    }
    assert response.request is not None and response.request.content == b""
    assert "content-length" not in response.request.headers


@pytest.mark.parametrize("status", [307, 308])
async def test_307_and_308_keep_the_method_and_the_body(
    autojump_clock: MockClock, status: int
) -> None:
    async with TestClient(redirect_app()) as client:
        response = await client.put(f"/to/{status}", json={"x": 1}, follow_redirects=True)
    echo = response.json()
    assert (echo["method"], echo["body"], echo["content_type"]) == (
        "PUT",
        '{"x":1}',
        "application/json",
    )


async def test_httpx_rules_for_other_methods(autojump_clock: MockClock) -> None:
    async with TestClient(redirect_app(), follow_redirects=True) as client:
        put_301 = (await client.put("/to/301", content=b"kept")).json()
        delete_302 = (await client.delete("/to/302")).json()
        head_303 = await client.head("/to/303")
    assert (put_301["method"], put_301["body"]) == ("PUT", "kept")  # only POST changes on 301
    assert delete_302["method"] == "GET"
    assert head_303.request is not None and head_303.request.method == "HEAD"


async def test_relative_locations(autojump_clock: MockClock) -> None:
    async with TestClient(redirect_app(), follow_redirects=True) as client:
        up = await client.get("/to/302", params={"to": "../a/b?c=1#frag"})
        query = await client.get("/to/302", params={"to": "?to=/echo"})
        sibling = await client.get("/to/302", params={"to": "307?to=/there"})
    assert up.url == "http://testserver/a/b?c=1"  # no fragment goes on the wire
    assert query.history[1].url == "http://testserver/to/302?to=/echo"
    assert sibling.history[1].url == "http://testserver/to/307?to=/there"
    assert sibling.url == "http://testserver/there"


async def test_another_origin_gets_its_host_and_loses_authorization(
    autojump_clock: MockClock,
) -> None:
    auth = {"authorization": "Bearer t"}
    async with TestClient(redirect_app(), follow_redirects=True) as client:
        away = (await client.get("/to/302?to=http://other.example/x", headers=auth)).json()
        tls = (await client.get("/to/302?to=https://testserver/y", headers=auth)).json()
        same = (await client.get("/to/302?to=/z", headers=auth)).json()
    assert (away["url"], away["authorization"]) == ("http://other.example/x", None)
    assert (tls["url"], tls["authorization"]) == ("https://testserver/y", "Bearer t")
    assert same["authorization"] == "Bearer t"


async def test_cookies_set_on_the_way_are_sent(autojump_clock: MockClock) -> None:
    async with TestClient(redirect_app()) as client:
        response = await client.post(
            "/login", data={"u": "ada"}, cookies={"mine": "1"}, follow_redirects=True
        )
    assert response.json()["cookies"] == {"sid": "abc", "mine": "1"}
    assert response.history[0].cookies == {"sid": "abc"}


async def test_too_many_redirects(autojump_clock: MockClock) -> None:
    async with TestClient(redirect_app(), max_redirects=2) as client:
        assert (await client.get("/chain/2", follow_redirects=True)).text == "done"
        with pytest.raises(TooManyRedirects, match="max_redirects"):
            await client.get("/chain/3", follow_redirects=True)


async def test_a_streamed_body_cannot_be_sent_twice(autojump_clock: MockClock) -> None:
    async def upload() -> AsyncIterator[bytes]:
        yield b"once"

    async with TestClient(redirect_app()) as client:
        with pytest.raises(RuntimeError, match="streamed body"):
            await client.post("/to/307", content=upload(), follow_redirects=True)
        # A 303 drops the body anyway: nothing to send again.
        response = await client.post("/to/303", content=upload(), follow_redirects=True)
        assert response.json()["method"] == "GET"


async def test_stream_follows_too(autojump_clock: MockClock) -> None:
    async with TestClient(redirect_app()) as client:
        async with client.stream("GET", "/chain/2", follow_redirects=True) as response:
            assert [r.status for r in response.history] == [302, 302]
            assert await response.read() == b"done"


async def test_redirects_are_followed_like_httpx(running_server: RunServer) -> None:
    app = redirect_app()

    async def walk(send: Any) -> list[Any]:
        seen = []
        for method, url, kwargs in (
            ("POST", "/to/302", {"data": {"a": "1"}}),
            ("POST", "/to/307", {"data": {"a": "1"}}),
            ("PUT", "/to/301", {"content": b"x"}),
            ("POST", "/to/303?to=../chain/2", {"json": [1]}),
            ("POST", "/login", {}),
        ):
            response = await send(method, url, follow_redirects=True, **kwargs)
            if response.headers["content-type"] == "application/json":
                echo = response.json()
                echo["url"] = urlsplit(echo["url"]).path  # the hosts differ
            else:
                echo = response.text
            seen.append(([r.status_code for r in response.history], echo))
        return seen

    async with TestClient(app) as client:
        ours = await walk(client.request)
    with trio.fail_after(10):
        async with running_server(app) as server:
            async with httpx.AsyncClient(base_url=server.url) as real:
                theirs = await walk(real.request)
    assert ours == theirs
