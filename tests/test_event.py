"""H3Event through the TestClient: the request as the handler sees it."""

from __future__ import annotations

from typing import Any

import pytest
from trio.testing import MockClock

from trio_h3 import H3, URL, Address, H3Event, Headers, QueryParams
from trio_h3.testing import TestClient


def echo_app() -> H3:
    app = H3()

    @app.all("/echo/**")
    async def echo(event: H3Event) -> dict[str, Any]:
        return {
            "method": event.method,
            "path": event.path,
            "url": str(event.url),
            "scheme": event.url.scheme,
            "host": event.url.host,
            "query_string": event.query_string,
            "params": event.params,
        }

    return app


async def test_url_path_and_query_string(autojump_clock: MockClock) -> None:
    async with TestClient(echo_app()) as client:
        r = await client.get("/echo/a%20b/c?x=1&y=%20two")
        body = r.json()
        assert body["path"] == "/echo/a b/c"
        assert body["query_string"] == "x=1&y=%20two"
        assert body["url"] == "http://testserver/echo/a b/c?x=1&y=%20two"
        assert body["params"] == {"_": "a b/c"}
        r = await client.get("/echo/x", headers={"host": "example.com:8080"})
        assert r.json()["host"] == "example.com:8080"
        assert r.json()["url"] == "http://example.com:8080/echo/x"


def test_url_and_event_without_a_connection() -> None:
    event = H3Event("GET", b"/p%C3%A5th?q=1", [(b"host", b"h")])
    assert event.url == URL("http", "h", "/påth", "q=1")
    assert event.raw_path == "/p%C3%A5th"
    bare = H3Event("GET", b"/", [], server=Address("0.0.0.0", 80))
    assert str(bare.url) == "http://0.0.0.0:80/"


async def test_query_is_multi_value(autojump_clock: MockClock) -> None:
    app = H3()

    @app.get("/search")
    async def search(event: H3Event) -> dict[str, Any]:
        q = event.query
        return {
            "first": q.get("tag"),
            "all": q.get_all("tag"),
            "missing": q.get("nope", "default"),
            "blank": q.get("blank"),
            "decoded": q.get("text"),
            "dict": q.to_dict(),
            "names": list(q),
            "has_tag": "tag" in q,
        }

    async with TestClient(app) as client:
        r = await client.get("/search?tag=a&tag=b&blank=&text=hello+w%C3%B6rld")
        assert r.json() == {
            "first": "a",
            "all": ["a", "b"],
            "missing": "default",
            "blank": "",
            "decoded": "hello wörld",
            "dict": {"tag": "b", "blank": "", "text": "hello wörld"},
            "names": ["tag", "blank", "text"],
            "has_tag": True,
        }
        r = await client.get("/search", params={"tag": "x y"})
        assert r.json()["all"] == ["x y"]


def test_query_params_unit() -> None:
    q = QueryParams("a=1&a=2&b=3")
    assert len(q) == 3
    assert q.items() == [("a", "1"), ("a", "2"), ("b", "3")]
    assert q == {"a": "2", "b": "3"}
    with pytest.raises(KeyError):
        q["missing"]


async def test_headers_are_case_insensitive_and_multi_value(autojump_clock: MockClock) -> None:
    app = H3()

    @app.get("/h")
    async def headers(event: H3Event) -> dict[str, Any]:
        h = event.headers
        return {
            "first": h.get("X-Tag"),
            "upper": h["X-TAG"],
            "all": h.get_all("x-tag"),
            "missing": h.get("x-missing"),
            "contains": "X-Tag" in h,
        }

    async with TestClient(app) as client:
        r = await client.get("/h", headers=[("X-Tag", "one"), ("x-tag", "two")])
        assert r.json() == {
            "first": "one",
            "upper": "one",
            "all": ["one", "two"],
            "missing": None,
            "contains": True,
        }


def test_headers_unit() -> None:
    h = Headers({"Content-Type": "text/plain"})
    h.add("Set-Cookie", "a=1")
    h.add("set-cookie", "b=2")
    assert h.get_all("SET-COOKIE") == ["a=1", "b=2"]
    h.set("set-cookie", "c=3")
    assert h.get_all("set-cookie") == ["c=3"]
    assert h.keys() == ["content-type", "set-cookie"]
    del h["content-type"]
    assert "content-type" not in h
    with pytest.raises(ValueError, match="CR, LF"):
        h.add("x-bad", "a\r\nInjected: yes")


async def test_client_address_and_context(autojump_clock: MockClock) -> None:
    app = H3()

    @app.use
    async def who(event: H3Event, next: Any) -> Any:
        event.context["user"] = "ada"
        return await next()

    @app.get("/me")
    async def me(event: H3Event) -> dict[str, Any]:
        assert event.client is not None
        return {"host": event.client.host, "port": event.client.port, **event.context}

    async with TestClient(app, client=("10.0.0.7", 4000)) as client:
        body = (await client.get("/me")).json()
        assert body["host"] == "10.0.0.7"
        assert isinstance(body["port"], int)
        assert body["user"] == "ada"


def body_app() -> H3:
    app = H3()

    @app.post("/bytes")
    async def raw(event: H3Event) -> dict[str, Any]:
        body = await event.body()
        # A second read gives the same bytes (they are kept).
        assert await event.body() == body
        return {"length": len(body), "head": body[:5].decode("latin-1")}

    @app.post("/text")
    async def text(event: H3Event) -> str:
        return (await event.text()).upper()

    @app.post("/json")
    async def json_body(event: H3Event) -> Any:
        return {"got": await event.json()}

    @app.post("/stream")
    async def stream(event: H3Event) -> dict[str, int]:
        total = 0
        async for chunk in event.stream():
            total += len(chunk)
        return {"total": total}

    @app.post("/ignore")
    async def ignore(event: H3Event) -> str:
        return "did not read"

    return app


async def test_body_text_and_json(autojump_clock: MockClock) -> None:
    async with TestClient(body_app()) as client:
        r = await client.post("/bytes", content=b"hello world")
        assert r.json() == {"length": 11, "head": "hello"}
        r = await client.post("/bytes")
        assert r.json() == {"length": 0, "head": ""}
        r = await client.post("/text", content="grüße")
        assert r.text == "GRÜSSE"
        r = await client.post(
            "/text",
            content="grüße".encode("latin-1"),
            headers={"content-type": "text/plain; charset=latin-1"},
        )
        assert r.text == "GRÜSSE"
        r = await client.post("/json", json={"a": [1, 2]})
        assert r.json() == {"got": {"a": [1, 2]}}
        r = await client.post("/stream", content=b"x" * 200_000)
        assert r.json() == {"total": 200_000}


async def test_chunked_request_body(autojump_clock: MockClock) -> None:
    async with TestClient(body_app()) as client:
        r = await client.post(
            "/bytes", content=b"abcdefghij" * 1000, headers={"transfer-encoding": "chunked"}
        )
        assert r.json() == {"length": 10_000, "head": "abcde"}


async def test_invalid_json_and_text_are_400(autojump_clock: MockClock) -> None:
    async with TestClient(body_app()) as client:
        r = await client.post(
            "/json", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status == 400
        body = r.json()
        assert body["status"] == 400
        assert body["message"] == "Invalid JSON body"
        assert "error" in body["data"]
        r = await client.post("/json", content=b"")
        assert r.status == 400
        assert "empty" in r.json()["message"]
        r = await client.post("/json", content=b"\xff\xfe\xfa")
        assert r.status == 400
        r = await client.post("/text", content=b"\xff\xfe")
        assert r.status == 400
        r = await client.post(
            "/text", content=b"abc", headers={"content-type": "text/plain; charset=nonsense"}
        )
        assert r.status == 400


async def test_body_limit_is_413_for_content_length_and_chunked(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(body_app(), max_body_size=1000) as client:
        assert (await client.post("/bytes", content=b"x" * 1000)).json()["length"] == 1000
        r = await client.post("/bytes", content=b"x" * 1001)
        assert r.status == 413
        assert r.json() == {
            "status": 413,
            "message": "Request body too large",
            "data": {"limit": 1000},
        }
        assert r.headers["connection"] == "close"
        r = await client.post(
            "/bytes", content=b"x" * 5000, headers={"transfer-encoding": "chunked"}
        )
        assert r.status == 413
        assert r.json()["data"] == {"limit": 1000}
        r = await client.post(
            "/stream", content=b"x" * 5000, headers={"transfer-encoding": "chunked"}
        )
        assert r.status == 413
        r = await client.post("/json", content=b"[" + b"1," * 600 + b"1]")
        assert r.status == 413
        # One rule for every body: the limit is the route's, checked when the body is
        # read. A handler that never reads answers as it likes, and the connection,
        # whose oversize body stays unread, is announced closed.
        r = await client.post("/ignore", content=b"x" * 1001)
        assert (r.status, r.text, r.headers["connection"]) == (200, "did not read", "close")
        assert (await client.post("/ignore", content=b"x" * 10)).text == "did not read"


async def test_absolute_form_target_is_routed_on_its_path(autojump_clock: MockClock) -> None:
    async with TestClient(echo_app()) as client:
        r = await client.get("http://example.com/echo/x?y=1", headers={"host": "example.com"})
        assert r.status == 200
        body = r.json()
        assert body["path"] == "/echo/x"
        assert body["query_string"] == "y=1"
        assert body["url"] == "http://example.com/echo/x?y=1"
