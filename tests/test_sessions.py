"""Sessions: sealed (unreadable, unforgeable) cookies; tampered, expired, foreign and
rotated cookies; chunking past 4 KiB; clear(); Vary: Cookie; SSE heads; expiry under
MockClock. (A session surviving a browser reload: tests/test_browser.py.)"""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from trio_h3 import H3, H3Event, Sessions, SSEWriter
from trio_h3.testing import TestClient

SECRET = "s" * 32
OLD = "o" * 32


def make_app(**options: Any) -> H3:
    app = H3()
    app.use(Sessions(**{"secret": SECRET, **options}))

    @app.post("/login")
    async def login(event: H3Event) -> dict[str, bool]:
        event.session["user"] = "ada"
        return {"ok": True}

    @app.get("/me")
    async def me(event: H3Event) -> dict[str, Any]:
        return {"user": event.session.get("user")}

    @app.post("/big")
    async def big(event: H3Event) -> None:
        event.session["blob"] = base64.b64encode(bytes(range(256)) * 40).decode()

    @app.post("/small")
    async def small(event: H3Event) -> None:
        event.session.pop("blob", None)

    @app.post("/logout")
    async def logout(event: H3Event) -> None:
        event.session.clear()

    @app.get("/untouched")
    async def untouched(event: H3Event) -> str:
        return "no session here"

    @app.get("/bad")
    async def bad(event: H3Event) -> None:
        event.session["when"] = object()

    @app.get("/sse")
    async def sse(event: H3Event) -> None:
        event.session["streams"] = event.session.get("streams", 0) + 1
        event.start_sse()

        async def produce(writer: SSEWriter, user: str | None) -> None:
            await writer.send(f"hello {user}")

        event.set_stream_callback(produce, event.session.get("user"))

    @app.get("/inline")
    async def inline(event: H3Event) -> None:
        event.session["inline"] = True
        async with event.sse() as writer:
            await writer.send(f"hello {event.session.get('user')}")

    return app


def cookies_set(response: Any) -> list[str]:
    return list(response.headers.get_all("set-cookie"))


async def test_login_reads_back_sealed_and_httponly(autojump_clock: MockClock) -> None:
    async with TestClient(make_app()) as client:
        r = await client.post("/login")
        (cookie,) = cookies_set(r)
        assert cookie.startswith("session=")
        assert "; Path=/; HttpOnly; SameSite=Lax" in cookie and "Secure" not in cookie
        assert "Max-Age=1209600" in cookie or "Max-Age=1209599" in cookie
        value = client.cookies["session"]
        assert "ada" not in value and b"ada" not in base64.urlsafe_b64decode(value + "==")
        assert r.headers["vary"] == "Cookie"
        r = await client.get("/me")
        assert r.json() == {"user": "ada"}
        assert cookies_set(r) == []  # unchanged: not sealed again
        assert r.headers["vary"] == "Cookie"
        r = await client.get("/untouched")
        assert "vary" not in r.headers and cookies_set(r) == []
    async with TestClient(make_app(), base_url="https://testserver") as client:
        r = await client.post("/login")
        assert "; Secure" in cookies_set(r)[0]


async def test_tampered_foreign_and_garbage_cookies_are_an_empty_session(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(make_app()) as client:
        await client.post("/login")
        good = client.cookies["session"]
        tampered = good[:-10] + ("A" if good[-10] != "A" else "B") + good[-9:]
        async with TestClient(make_app(secret="f" * 32)) as other:
            await other.post("/login")
            foreign = other.cookies["session"]
        for value in (tampered, foreign, "garbage", "__chunked__3", "__chunked__x", ""):
            r = await client.get("/me", cookies={"session": value})
            assert r.status == 200 and r.json() == {"user": None}, value
            # The useless cookie is deleted.
            assert any("Max-Age=0" in c for c in cookies_set(r)), value


async def test_rotation_the_first_secret_seals_every_one_unseals(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(make_app(secret=OLD)) as client:
        await client.post("/login")
        old_cookie = client.cookies["session"]
    async with TestClient(make_app(secret=[SECRET, OLD])) as client:
        r = await client.get("/me", cookies={"session": old_cookie})
        assert r.json() == {"user": "ada"}
        (resealed,) = cookies_set(r)  # sealed again with the first secret
        new_value = resealed.split(";")[0].split("=", 1)[1]
    async with TestClient(make_app(secret=SECRET)) as client:
        assert (await client.get("/me", cookies={"session": new_value})).json() == {"user": "ada"}
        assert (await client.get("/me", cookies={"session": old_cookie})).json() == {"user": None}


async def test_absolute_max_age_and_sliding_idle_timeout(autojump_clock: MockClock) -> None:
    async with TestClient(make_app(max_age=3600)) as client:
        await client.post("/login")
        await trio.sleep(3000)
        assert (await client.get("/me")).json() == {"user": "ada"}
        await trio.sleep(700)  # 3,700 s after creation: past max_age, used or not
        assert (await client.get("/me")).json() == {"user": None}
    async with TestClient(make_app(max_age=None, idle_timeout=600)) as client:
        r = await client.post("/login")
        assert "Max-Age=600" in cookies_set(r)[0]
        for _ in range(5):
            await trio.sleep(500)  # used every 500 s: the idle clock slides
            r = await client.get("/me")
            assert r.json() == {"user": "ada"}
            assert cookies_set(r), "resealed, so its idle clock restarts"
        await trio.sleep(601)
        assert (await client.get("/me")).json() == {"user": None}


async def test_a_big_session_is_chunked_and_joined_and_shrinks_back(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(make_app(), max_header_size=64 * 1024) as client:
        await client.post("/login")
        r = await client.post("/big")
        names = [c.split("=", 1)[0] for c in cookies_set(r)]
        assert names[0] == "session" and names[1:] == [f"session.{i}" for i in range(1, len(names))]
        assert len(names) >= 4
        assert all(len(c.split(";")[0]) <= 4096 for c in cookies_set(r))
        assert (await client.get("/me")).json() == {"user": "ada"}
        r = await client.post("/small")
        assert all("Max-Age=0" in c for c in cookies_set(r) if c.startswith("session."))
        assert set(client.cookies) == {"session"}
        assert (await client.get("/me")).json() == {"user": "ada"}


async def test_clear_deletes_every_cookie(autojump_clock: MockClock) -> None:
    async with TestClient(make_app(), max_header_size=64 * 1024) as client:
        await client.post("/login")
        await client.post("/big")
        r = await client.post("/logout")
        assert cookies_set(r) and all("Max-Age=0" in c for c in cookies_set(r))
        assert dict(client.cookies) == {}
        assert (await client.get("/me")).json() == {"user": None}


async def test_the_cookie_is_set_before_an_sse_head(autojump_clock: MockClock) -> None:
    async with TestClient(make_app()) as client:
        await client.post("/login")
        for path in ("/sse", "/inline"):
            async with client.stream("GET", path) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                assert cookies_set(response), path
                body = await response.read()
            assert b"data: hello ada" in body
        assert (await client.get("/me")).json() == {"user": "ada"}


async def test_errors_name_the_fix(autojump_clock: MockClock, caplog: Any) -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        Sessions(secret="short")
    with pytest.raises(ValueError, match="__Host-"):
        Sessions(secret=SECRET, cookie_name="__Host-s", secure=False)
    app = H3()

    @app.get("/")
    async def index(event: H3Event) -> Any:
        return dict(event.session)

    caplog.set_level(logging.ERROR, "trio_h3")
    async with TestClient(app) as client:
        assert (await client.get("/")).status == 500
    assert "app.use(Sessions(secret=...))" in caplog.text
    async with TestClient(make_app()) as client:
        assert (await client.get("/bad")).status == 500
