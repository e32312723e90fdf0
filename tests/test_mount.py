"""Mounted apps and route params: prefix params, the sub-app's own hooks, REST layouts."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from trio.testing import MockClock

from trio_h3 import H3, H3Event, HTTPError, JSONResponse, Next, Response
from trio_h3.testing import TestClient


async def test_prefix_params_reach_the_sub_apps_handlers(autojump_clock: MockClock) -> None:
    org = H3()

    @org.get("/repos/:repo")
    async def repo(event: H3Event) -> dict[str, str]:
        return dict(event.params)

    @org.get("/")
    async def home(event: H3Event) -> dict[str, str]:
        return {"home": event.params["org"]}

    app = H3()
    app.mount("/orgs/:org", org)
    async with TestClient(app) as client:
        assert (await client.get("/orgs/acme/repos/h3")).json() == {"org": "acme", "repo": "h3"}
        assert (await client.get("/orgs/acme")).json() == {"home": "acme"}
        assert (await client.get("/orgs/acme/")).json() == {"home": "acme"}
        assert (await client.get("/orgs")).status == 404


async def test_the_sub_apps_hooks_and_debug_apply_to_its_routes(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def on_request(event: H3Event) -> None:
        seen.append(f"sub request {event.path}")

    def on_response(event: H3Event, response: Response) -> None:
        response.headers.set("x-sub", "1")

    def on_error(error: BaseException, event: H3Event) -> Any:
        if isinstance(error, HTTPError) and error.status == 418:
            return JSONResponse({"sub": "handled"}, status=418)
        return None

    sub = H3(debug=True, on_request=on_request, on_response=on_response, on_error=on_error)

    @sub.get("/tea")
    async def tea(event: H3Event) -> None:
        raise HTTPError(418)

    @sub.get("/boom")
    async def boom(event: H3Event) -> None:
        raise RuntimeError("kaboom")

    @sub.get("/ok")
    async def ok(event: H3Event) -> str:
        return "ok"

    def outer_response(event: H3Event, response: Response) -> None:
        response.headers.set("x-outer", "1")

    app = H3(on_response=outer_response)

    async def outer_middleware(event: H3Event, next: Next) -> Any:
        seen.append("outer middleware")
        return await next()

    app.use(outer_middleware)
    app.mount("/sub", sub)
    app.get("/top", lambda event: "top")
    async with TestClient(app) as client:
        r = await client.get("/sub/ok")
        assert (r.text, r.headers["x-sub"], r.headers["x-outer"]) == ("ok", "1", "1")
        r = await client.get("/sub/tea")
        assert (r.status, r.json()) == (418, {"sub": "handled"})
        with caplog.at_level(logging.ERROR, logger="trio_h3"):
            r = await client.get("/sub/boom")
        assert r.status == 500
        assert any("kaboom" in line for line in r.json()["stack"])  # the sub-app's debug
        r = await client.get("/top")
        assert "x-sub" not in r.headers and "stack" not in r.text
    assert seen == [
        "outer middleware",
        "sub request /sub/ok",
        "outer middleware",
        "sub request /sub/tea",
        "outer middleware",
        "sub request /sub/boom",
        "outer middleware",
    ]


async def test_params_may_have_different_names_at_one_position(
    autojump_clock: MockClock,
) -> None:
    app = H3()

    @app.get("/users/:id")
    async def user(event: H3Event) -> dict[str, str]:
        return {"route": "user", **event.params}

    @app.get("/users/:userId/posts")
    async def posts(event: H3Event) -> dict[str, str]:
        return {"route": "posts", **event.params}

    @app.delete("/users/:uid")
    async def remove(event: H3Event) -> dict[str, str]:
        return {"route": "remove", **event.params}

    async with TestClient(app) as client:
        assert (await client.get("/users/7")).json() == {"route": "user", "id": "7"}
        assert (await client.get("/users/7/posts")).json() == {"route": "posts", "userId": "7"}
        assert (await client.delete("/users/7")).json() == {"route": "remove", "uid": "7"}
        r = await client.post("/users/7")
        assert (r.status, r.headers["allow"]) == (405, "DELETE, GET, HEAD")


async def test_middleware_runs_in_registration_order_global_and_scoped(
    autojump_clock: MockClock,
) -> None:
    order: list[str] = []

    def layer(name: str) -> Any:
        async def middleware(event: H3Event, next: Next) -> Any:
            order.append(name)
            return await next()

        return middleware

    app = H3()
    app.use("/api/**", layer("scoped first"))
    app.use(layer("global second"))
    app.use("/api/**", layer("scoped third"))
    app.get("/api/x", lambda event: "x")
    async with TestClient(app) as client:
        assert (await client.get("/api/x")).text == "x"
        assert (await client.get("/elsewhere")).status == 404
    assert order == ["scoped first", "global second", "scoped third", "global second"]
