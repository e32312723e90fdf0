"""H3 through the TestClient: return values, status, headers, middleware, hooks, errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from helpers import parse_responses, read_until_eof
from trio.testing import MockClock

from trio_h3 import (
    H3,
    H3Event,
    HTMLResponse,
    HTTPError,
    JSONResponse,
    Next,
    RedirectResponse,
    Response,
    StreamingResponse,
    set_cookie,
)
from trio_h3.testing import TestClient

# -- return values ------------------------------------------------------------------------


async def test_return_values_map_to_content_types(autojump_clock: MockClock) -> None:
    app = H3()
    app.get("/str", lambda e: "hello")
    app.get("/dict", lambda e: {"a": 1})
    app.get("/list", lambda e: [1, "two"])
    app.get("/bytes", lambda e: b"\x00\x01")
    app.get("/html", lambda e: HTMLResponse("<p>hi</p>"))
    app.get("/json", lambda e: JSONResponse({"ok": True}, status=202))
    app.get("/resp", lambda e: Response("x", 418, {"x-tea": "pot"}, media_type="text/x-tea"))
    async with TestClient(app) as client:
        r = await client.get("/str")
        assert (r.status, r.headers["content-type"], r.text) == (
            200,
            "text/plain; charset=utf-8",
            "hello",
        )
        r = await client.get("/dict")
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"a": 1}
        r = await client.get("/list")
        assert r.headers["content-type"] == "application/json"
        assert r.json() == [1, "two"]
        r = await client.get("/bytes")
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.content == b"\x00\x01"
        r = await client.get("/html")
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert r.text == "<p>hi</p>"
        r = await client.get("/json")
        assert r.status == 202
        assert r.json() == {"ok": True}
        r = await client.get("/resp")
        assert r.status == 418
        assert r.headers["x-tea"] == "pot"
        assert r.headers["content-type"] == "text/x-tea; charset=utf-8"
        assert r.headers["content-length"] == "1"


async def test_none_is_204_unless_a_status_was_set(autojump_clock: MockClock) -> None:
    app = H3()

    @app.delete("/things/:id")
    async def delete(event: H3Event) -> None:
        return None

    @app.post("/accepted")
    async def accepted(event: H3Event) -> None:
        event.status = 202

    async with TestClient(app) as client:
        r = await client.delete("/things/1")
        assert r.status == 204
        assert r.content == b""
        assert "content-length" not in r.headers
        r = await client.post("/accepted")
        assert r.status == 202
        assert r.content == b""


async def test_event_status_applies_to_plain_values(autojump_clock: MockClock) -> None:
    app = H3()

    @app.post("/users")
    async def create(event: H3Event) -> dict[str, str]:
        event.status = 201
        return {"id": "2"}

    async with TestClient(app) as client:
        r = await client.post("/users")
        assert r.status == 201
        assert r.json() == {"id": "2"}


async def test_response_headers_keep_several_set_cookie(autojump_clock: MockClock) -> None:
    app = H3()

    @app.get("/login")
    async def login(event: H3Event) -> dict[str, bool]:
        set_cookie(event, "session", "abc")
        set_cookie(event, "theme", "dark")
        event.response_headers.add("x-extra", "1")
        return {"ok": True}

    @app.get("/redirect")
    async def redirect(event: H3Event) -> Response:
        event.response_headers.add("set-cookie", "a=1")
        event.response_headers.add("set-cookie", "b=2")
        return RedirectResponse("/home")

    async with TestClient(app) as client:
        r = await client.get("/login")
        cookies = r.headers.get_all("set-cookie")
        assert len(cookies) == 2
        assert cookies[0].startswith("session=abc")
        assert cookies[1].startswith("theme=dark")
        assert r.headers["x-extra"] == "1"
        assert r.headers["content-type"] == "application/json"
        r = await client.get("/redirect")
        assert r.status == 302
        assert r.headers["location"] == "/home"
        assert r.headers.get_all("set-cookie") == ["a=1", "b=2"]


async def test_content_type_set_on_the_event_wins(autojump_clock: MockClock) -> None:
    app = H3()

    @app.get("/csv")
    async def csv(event: H3Event) -> str:
        event.response_headers.set("content-type", "text/csv")
        return "a,b\n1,2\n"

    async with TestClient(app) as client:
        r = await client.get("/csv")
        assert r.headers.get_all("content-type") == ["text/csv"]


async def test_streaming_response_sends_chunks_as_they_come(autojump_clock: MockClock) -> None:
    app = H3()
    produced: list[int] = []

    async def numbers() -> AsyncIterator[str]:
        for i in range(3):
            produced.append(i)
            yield f"{i}\n"
            await trio.sleep(1)

    app.get("/count", lambda e: StreamingResponse(numbers(), media_type="text/plain"))
    async with TestClient(app) as client:
        async with client.stream("GET", "/count") as response:
            assert response.headers["transfer-encoding"] == "chunked"
            assert await response.receive_chunk() == b"0\n"
            # The second chunk is not produced before the first was delivered.
            assert produced == [0]
            assert await response.receive_chunk() == b"1\n"
            assert await response.read() == b"2\n"


async def test_unsupported_return_value_is_a_500(autojump_clock: MockClock) -> None:
    app = H3()
    app.get("/", lambda e: object())
    async with TestClient(app) as client:
        r = await client.get("/")
        assert r.status == 500
        assert r.json() == {"status": 500, "message": "Internal Server Error"}


async def test_sync_handlers_run_inline_and_can_use_params(autojump_clock: MockClock) -> None:
    app = H3()

    def hello(event: H3Event) -> str:
        return f"hello {event.params['name']}"

    app.get("/hello/:name", hello)
    app.on("put", "/sync", lambda e: {"method": e.method})
    async with TestClient(app) as client:
        assert (await client.get("/hello/ada")).text == "hello ada"
        assert (await client.put("/sync")).json() == {"method": "PUT"}


async def test_decorator_and_plain_call_forms_return_the_handler(autojump_clock: MockClock) -> None:
    app = H3()

    async def handler(event: H3Event) -> str:
        return event.method

    assert app.post("/p", handler) is handler
    for method in ("put", "patch", "delete", "options"):
        assert getattr(app, method)("/p")(handler) is handler
    async with TestClient(app) as client:
        for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            assert (await client.request(method, "/p")).text == method


async def test_all_matches_every_method(autojump_clock: MockClock) -> None:
    app = H3()
    app.all("/any", lambda e: e.method)
    async with TestClient(app) as client:
        for method in ("GET", "POST", "DELETE", "PATCH"):
            assert (await client.request(method, "/any")).text == method


# -- routing errors -----------------------------------------------------------------------


async def test_404_has_the_json_error_body(autojump_clock: MockClock) -> None:
    app = H3()
    async with TestClient(app) as client:
        r = await client.get("/x")
        assert r.status == 404
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"status": 404, "message": "Cannot find any route matching [GET] /x"}


async def test_405_lists_allowed_methods(autojump_clock: MockClock) -> None:
    app = H3()
    app.get("/items", lambda e: [])
    app.post("/items", lambda e: {})
    async with TestClient(app) as client:
        r = await client.delete("/items")
        assert r.status == 405
        assert r.headers["allow"] == "GET, HEAD, POST"
        assert r.json()["status"] == 405


async def test_method_aware_matching_backtracks_to_a_param_route(
    autojump_clock: MockClock,
) -> None:
    app = H3()
    app.get("/users/me", lambda e: "me")
    app.post("/users/:id", lambda e: {"created": e.params["id"]})
    async with TestClient(app) as client:
        assert (await client.get("/users/me")).text == "me"
        r = await client.post("/users/me")
        assert r.status == 200
        assert r.json() == {"created": "me"}
        r = await client.delete("/users/me")
        assert r.status == 405
        assert r.headers["allow"] == "GET, HEAD, POST"


async def test_head_falls_back_to_get_and_sends_no_body(autojump_clock: MockClock) -> None:
    app = H3()
    calls: list[str] = []

    @app.get("/page")
    async def page(event: H3Event) -> str:
        calls.append(event.method)
        return "x" * 100

    async with TestClient(app) as client:
        r = await client.head("/page")
        assert r.status == 200
        assert r.content == b""
        assert r.headers["content-length"] == "100"
        assert calls == ["HEAD"]
        # Same connection still usable for a following request.
        stream = await client.open_stream()
        await stream.send_all(
            b"HEAD /page HTTP/1.1\r\nHost: t\r\n\r\nGET /page HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        await stream.send_eof()
        responses, _ = parse_responses(await read_until_eof(stream), ["HEAD", "GET"])
        assert [r.body for r in responses] == [b"", b"x" * 100]


async def test_http_error_shape_and_headers(autojump_clock: MockClock) -> None:
    app = H3()

    @app.get("/users/:id")
    async def user(event: H3Event) -> None:
        raise HTTPError(
            404, "No such user", data={"id": event.params["id"]}, headers={"x-why": "gone"}
        )

    @app.get("/teapot")
    async def teapot(event: H3Event) -> None:
        raise HTTPError(418)

    async with TestClient(app) as client:
        r = await client.get("/users/7")
        assert r.status == 404
        assert r.json() == {"status": 404, "message": "No such user", "data": {"id": "7"}}
        assert r.headers["x-why"] == "gone"
        r = await client.get("/teapot")
        assert r.json() == {"status": 418, "message": "I'm a Teapot"}


async def test_headers_set_before_an_error_reach_the_error_response(
    autojump_clock: MockClock,
) -> None:
    app = H3()

    @app.use
    async def cors(event: H3Event, next: Next) -> Any:
        event.response_headers.set("access-control-allow-origin", "*")
        return await next()

    @app.post("/login")
    async def login(event: H3Event) -> None:
        set_cookie(event, "attempt", "1")
        event.response_headers.set("content-type", "text/csv")
        raise HTTPError(401, "Bad password")

    async with TestClient(app) as client:
        r = await client.post("/login")
        assert r.status == 401
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.headers.get_all("set-cookie")[0].startswith("attempt=1")
        # The error keeps its own JSON Content-Type.
        assert r.headers.get_all("content-type") == ["application/json"]
        assert r.json() == {"status": 401, "message": "Bad password"}
        r = await client.get("/missing")
        assert r.headers["access-control-allow-origin"] == "*"


def test_http_error_rejects_non_error_status() -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        HTTPError(200)


async def test_crashing_handler_is_a_500_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    app = H3()

    @app.get("/boom")
    async def boom(event: H3Event) -> None:
        raise RuntimeError("kaboom")

    app.get("/ok", lambda e: "fine")
    caplog.set_level(logging.ERROR, logger="trio_h3")
    async with TestClient(app) as client:
        async with trio.open_nursery() as nursery:
            # Other requests, concurrent and after, are unaffected.
            results: list[int] = []

            async def ok() -> None:
                results.append((await client.get("/ok")).status)

            for _ in range(3):
                nursery.start_soon(ok)
            r = await client.get("/boom")
        assert results == [200, 200, 200]
        assert r.status == 500
        assert r.json() == {"status": 500, "message": "Internal Server Error"}
        assert "kaboom" not in r.text
        assert (await client.get("/ok")).text == "fine"
    records = [rec for rec in caplog.records if rec.name == "trio_h3"]
    assert len(records) == 1
    assert "GET /boom" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], RuntimeError)
    assert "kaboom" in caplog.text


async def test_debug_adds_the_stack_to_500_bodies(autojump_clock: MockClock) -> None:
    app = H3(debug=True)

    @app.get("/boom")
    async def boom(event: H3Event) -> None:
        raise RuntimeError("kaboom")

    async with TestClient(app) as client:
        body = (await client.get("/boom")).json()
        assert body["status"] == 500
        assert any("RuntimeError: kaboom" in line for line in body["stack"])
        assert any("in boom" in line for line in body["stack"])


# -- middleware ---------------------------------------------------------------------------


async def test_middleware_is_an_onion(autojump_clock: MockClock) -> None:
    app = H3()
    order: list[str] = []

    def tracer(name: str) -> Any:
        async def mw(event: H3Event, next: Next) -> Any:
            order.append(f"{name} in")
            result = await next()
            order.append(f"{name} out")
            return result

        return mw

    app.use(tracer("a"))
    app.use(tracer("b"))

    @app.get("/")
    async def index(event: H3Event) -> str:
        order.append("handler")
        return "ok"

    async with TestClient(app) as client:
        assert (await client.get("/")).text == "ok"
    assert order == ["a in", "b in", "handler", "b out", "a out"]


async def test_middleware_short_circuits_without_calling_next(autojump_clock: MockClock) -> None:
    app = H3()
    reached: list[str] = []

    @app.use
    async def auth(event: H3Event, next: Next) -> Any:
        if event.headers.get("authorization") != "Bearer ok":
            raise HTTPError(401, "Unauthorized", headers={"www-authenticate": "Bearer"})
        return await next()

    @app.use
    async def cache(event: H3Event, next: Next) -> Any:
        if event.path == "/cached":
            return {"cached": True}
        return await next()

    @app.get("/cached")
    async def cached(event: H3Event) -> str:
        reached.append("cached")
        return "fresh"

    async with TestClient(app) as client:
        r = await client.get("/cached")
        assert r.status == 401
        assert r.headers["www-authenticate"] == "Bearer"
        r = await client.get("/cached", headers={"authorization": "Bearer ok"})
        assert r.json() == {"cached": True}
    assert reached == []


async def test_middleware_can_change_what_next_returns(autojump_clock: MockClock) -> None:
    app = H3()

    @app.use
    async def envelope(event: H3Event, next: Next) -> Any:
        result = await next()
        return {"data": result, "path": event.path}

    @app.use
    async def timing(event: H3Event, next: Next) -> Any:
        event.context["seen"] = True
        result = await next()
        event.response_headers.set("x-seen", str(event.context["seen"]))
        return result

    app.get("/n", lambda e: [1, 2])
    async with TestClient(app) as client:
        r = await client.get("/n")
        assert r.json() == {"data": [1, 2], "path": "/n"}
        assert r.headers["x-seen"] == "True"


async def test_middleware_sees_404_and_405_as_errors_from_next(autojump_clock: MockClock) -> None:
    app = H3()
    seen: list[int] = []

    @app.use
    async def watch(event: H3Event, next: Next) -> Any:
        try:
            return await next()
        except HTTPError as error:
            seen.append(error.status)
            raise

    app.get("/only-get", lambda e: "x")
    async with TestClient(app) as client:
        assert (await client.get("/missing")).status == 404
        assert (await client.post("/only-get")).status == 405
    assert seen == [404, 405]


async def test_path_scoped_middleware(autojump_clock: MockClock) -> None:
    app = H3()

    @app.use("/admin/**")
    async def admin_only(event: H3Event, next: Next) -> Any:
        if event.headers.get("x-admin") != "yes":
            raise HTTPError(403, "Admins only")
        return await next()

    app.get("/admin", lambda e: "dashboard")
    app.get("/admin/users/:id", lambda e: f"user {e.params['id']}")
    app.get("/administrator", lambda e: "not scoped")
    app.get("/public", lambda e: "public")
    async with TestClient(app) as client:
        assert (await client.get("/admin")).status == 403
        assert (await client.get("/admin/users/3")).status == 403
        r = await client.get("/admin/users/3", headers={"x-admin": "yes"})
        assert r.text == "user 3"
        assert (await client.get("/administrator")).text == "not scoped"
        assert (await client.get("/public")).text == "public"


# -- hooks --------------------------------------------------------------------------------


async def test_hooks_see_requests_responses_and_errors(autojump_clock: MockClock) -> None:
    log: list[str] = []

    def on_request(event: H3Event) -> None:
        log.append(f"request {event.path}")
        event.context["start"] = "yes"

    async def on_response(event: H3Event, response: Response) -> None:
        log.append(f"response {event.path} {response.status}")
        response.headers.add("x-hooked", event.context.get("start", "no"))

    def on_error(error: BaseException, event: H3Event) -> None:
        log.append(f"error {type(error).__name__}")

    app = H3(on_request=on_request, on_response=on_response, on_error=on_error)
    app.get("/ok", lambda e: "ok")

    @app.get("/fail")
    async def fail(event: H3Event) -> None:
        raise ValueError("bad")

    async with TestClient(app) as client:
        r = await client.get("/ok")
        assert r.headers["x-hooked"] == "yes"
        r = await client.get("/fail")
        assert r.status == 500
        assert r.headers["x-hooked"] == "yes"
        assert (await client.get("/none")).status == 404
    assert log == [
        "request /ok",
        "response /ok 200",
        "request /fail",
        "error ValueError",
        "response /fail 500",
        "request /none",
        "error HTTPError",
        "response /none 404",
    ]


async def test_on_error_may_return_a_replacement_response(autojump_clock: MockClock) -> None:
    async def on_error(error: BaseException, event: H3Event) -> Any:
        if isinstance(error, HTTPError) and error.status == 404:
            return HTMLResponse("<h1>Not here</h1>", status=404)
        if isinstance(error, KeyError):
            return {"problem": "missing key"}
        return None

    app = H3(on_error=on_error)

    @app.get("/key")
    async def key(event: H3Event) -> None:
        raise KeyError("x")

    async with TestClient(app) as client:
        r = await client.get("/nope")
        assert r.status == 404
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert r.text == "<h1>Not here</h1>"
        r = await client.get("/key")
        assert r.status == 500
        assert r.json() == {"problem": "missing key"}


async def test_on_response_may_replace_and_on_request_may_short_circuit(
    autojump_clock: MockClock,
) -> None:
    def on_request(event: H3Event) -> None:
        if event.path == "/blocked":
            raise HTTPError(451, "Blocked")

    def on_response(event: H3Event, response: Response) -> Any:
        if event.path == "/replace":
            return "replaced"
        return None

    app = H3(on_request=on_request, on_response=on_response)
    app.get("/replace", lambda e: {"original": True})
    app.get("/blocked", lambda e: "never")
    async with TestClient(app) as client:
        r = await client.get("/replace")
        assert r.text == "replaced"
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        r = await client.get("/blocked")
        assert r.status == 451


async def test_a_failing_hook_becomes_a_500(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    def on_error(error: BaseException, event: H3Event) -> None:
        raise RuntimeError("hook broke")

    app = H3(on_error=on_error)

    @app.get("/boom")
    async def boom(event: H3Event) -> None:
        raise ValueError("first")

    async with TestClient(app) as client:
        r = await client.get("/boom")
        assert r.status == 500
        assert r.json() == {"status": 500, "message": "Internal Server Error"}
    assert "hook broke" in caplog.text


# -- mount and lifespan ---------------------------------------------------------------------


async def test_mount_serves_sub_app_routes_and_middleware_under_a_prefix(
    autojump_clock: MockClock,
) -> None:
    api = H3()

    @api.use
    async def tag(event: H3Event, next: Next) -> Any:
        event.response_headers.set("x-api", "1")
        return await next()

    api.get("/", lambda e: "api root")
    api.get("/users/:id", lambda e: {"id": e.params["id"], "path": e.path})
    api.post("/users", lambda e: "created")

    app = H3()
    app.get("/", lambda e: "main")
    app.get("/users/:id", lambda e: "main users")
    app.mount("/api", api)

    async with TestClient(app) as client:
        r = await client.get("/api/users/5")
        assert r.json() == {"id": "5", "path": "/api/users/5"}
        assert r.headers["x-api"] == "1"
        assert (await client.get("/api")).text == "api root"
        assert (await client.get("/api/")).text == "api root"
        r = await client.get("/users/5")
        assert r.text == "main users"
        assert "x-api" not in r.headers
        r = await client.get("/api/nothing")
        assert r.status == 404
        assert r.json()["message"] == "Cannot find any route matching [GET] /api/nothing"
        assert r.headers["x-api"] == "1"
        r = await client.delete("/api/users")
        assert r.status == 405
        assert r.headers["allow"] == "POST"


async def test_an_app_mounted_at_root_is_the_last_resort(autojump_clock: MockClock) -> None:
    site = H3()

    @site.get("/**")
    async def page(event: H3Event) -> str:
        return f"site {event.path}"

    app = H3()
    app.mount("/", site)  # before the API routes: the order does not matter

    @app.get("/api/users")
    async def users(event: H3Event) -> str:
        return "api"

    async with TestClient(app) as client:
        assert (await client.get("/api/users")).text == "api"
        assert (await client.get("/about/team")).text == "site /about/team"
        assert (await client.get("/")).text == "site /"


async def test_lifespan_runs_around_serving_with_a_background_task(
    autojump_clock: MockClock,
) -> None:
    app = H3()
    log: list[str] = []

    @app.lifespan
    @asynccontextmanager
    async def lifespan(nursery: trio.Nursery) -> AsyncIterator[None]:
        log.append("open db")
        app_state["ticks"] = 0

        async def ticker() -> None:
            while True:
                await trio.sleep(1)
                app_state["ticks"] += 1

        nursery.start_soon(ticker)
        yield
        log.append("close db")

    app_state: dict[str, int] = {}
    app.get("/ticks", lambda e: {"ticks": app_state["ticks"]})

    async with TestClient(app) as client:
        assert log == ["open db"]
        assert (await client.get("/ticks")).json() == {"ticks": 0}
        await trio.sleep(3.5)
        assert (await client.get("/ticks")).json() == {"ticks": 3}
    assert log == ["open db", "close db"]


async def test_lifespan_as_async_generator_taking_the_app_and_of_mounted_apps(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []
    sub = H3()

    async def sub_lifespan(nursery: trio.Nursery) -> AsyncIterator[None]:
        log.append("sub enter")
        yield
        log.append("sub exit")

    sub.lifespan(sub_lifespan)

    async def main_lifespan(app: H3, nursery: trio.Nursery) -> AsyncIterator[None]:
        log.append(f"main enter {type(app).__name__}")
        yield
        log.append("main exit")

    app = H3(lifespan=main_lifespan)
    app.mount("/sub", sub)
    async with TestClient(app):
        assert log == ["main enter H3", "sub enter"]
    assert log == ["main enter H3", "sub enter", "sub exit", "main exit"]


async def test_test_client_options_is_the_http_method(autojump_clock: MockClock) -> None:
    app = H3()
    app.options("/items", lambda e: {"allow": "GET"})
    async with TestClient(app, max_body_size=1234) as client:
        assert client.serve_options.max_body_size == 1234
        r = await client.options("/items")
        assert r.status == 200
        assert r.json() == {"allow": "GET"}
