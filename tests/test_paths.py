"""The canonical request path: one path for router, middleware and mounts; safe_join."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote

import pytest
import trio
from helpers import RunServer, parse_responses, read_until_eof
from trio.testing import MockClock

from trio_h3 import H3, H3Event, HTTPError, Next, safe_join
from trio_h3.paths import canonical_path, encode_segment
from trio_h3.testing import TestClient

# -- canonical_path (pure) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "path", "segments"),
    [
        ("/", "/", ()),
        ("/users/42", "/users/42", ("users", "42")),
        ("/users/42/", "/users/42", ("users", "42")),
        ("//secret/data", "/secret/data", ("secret", "data")),
        ("/a///b//", "/a/b", ("a", "b")),
        ("/a/./b", "/a/b", ("a", "b")),
        ("/a/b/../c", "/a/c", ("a", "c")),
        ("/a/%2e%2E/c", "/c", ("c",)),
        ("/a/.%2e/c", "/c", ("c",)),
        ("/a/%2e/c", "/a/c", ("a", "c")),
        ("/a/..", "/", ()),
        ("/caf%C3%A9", "/café", ("café",)),
        ("/a%2Fb/c", "/a%2Fb/c", ("a/b", "c")),
        ("/100%25", "/100%25", ("100%",)),
        ("/%41dmin", "/Admin", ("Admin",)),
        ("/a b", "/a b", ("a b",)),
    ],
)
def test_canonical_path(raw: str, path: str, segments: tuple[str, ...]) -> None:
    assert canonical_path(raw) == (path, segments)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("/..", "climbs above the root"),
        ("/../etc/hostname", "climbs above the root"),
        ("/static/../../../../etc/hostname", "climbs above the root"),
        ("/%2e%2e/etc", "climbs above the root"),
        ("/static/..%2f..%2fetc%2fhostname", "hides a dot segment"),
        ("/a/..%2Fb", "hides a dot segment"),
        ("/a/x%2F.", "hides a dot segment"),
        ("/x%00", "NUL"),
        ("/%ff%fe", "not valid UTF-8"),
    ],
)
def test_canonical_path_refuses(raw: str, reason: str) -> None:
    with pytest.raises(HTTPError, match=reason) as info:
        canonical_path(raw)
    assert info.value.status == 400


def test_event_path_splits_back_into_the_same_segments() -> None:
    for raw in ["/a%2Fb/%25/c", "/x/%252F", "/%C3%A9/%2F%2F"]:
        path, segments = canonical_path(raw)
        assert [unquote(piece) for piece in path[1:].split("/")] == list(segments)
        assert "/".join(encode_segment(s) for s in segments) == path[1:]


@pytest.mark.parametrize(
    ("parts", "inside"),
    [
        (("css/site.css",), "css/site.css"),
        (("a", "b.txt"), "a/b.txt"),
        (("/etc/passwd",), "etc/passwd"),
        (("./a/./b",), "a/b"),
        (("a\\b",), "a/b"),
        (("",), ""),
    ],
)
def test_safe_join_stays_inside(tmp_path: Path, parts: tuple[str, ...], inside: str) -> None:
    joined = safe_join(tmp_path, *parts)
    assert joined == os.path.join(str(tmp_path), inside) if inside else str(tmp_path)


@pytest.mark.parametrize(
    "part", ["..", "../x", "a/../../b", "a\\..\\..\\b", "x\x00", "C:\\windows", "c:x"]
)
def test_safe_join_refuses_a_way_out(tmp_path: Path, part: str) -> None:
    assert safe_join(tmp_path, part) is None


# -- one path everywhere ----------------------------------------------------------------


def files_app() -> H3:
    app = H3()

    @app.get("/static/**:path")
    async def static(event: H3Event) -> dict[str, str]:
        return {"path": event.params["path"], "event_path": event.path}

    @app.get("/files/:name")
    async def one(event: H3Event) -> dict[str, str]:
        return {"name": event.params["name"]}

    @app.get("/secret/data")
    async def secret(event: H3Event) -> str:
        return "secret"

    async def guard(event: H3Event, next: Next) -> object:
        if event.path.startswith("/secret"):
            raise HTTPError(403, "guarded")
        return await next()

    app.use(guard)
    return app


@pytest.mark.parametrize(
    "target",
    [
        "/static/../../../../etc/hostname",
        "/static/..%2f..%2fetc%2fhostname",
        "/static/%2e%2e/%2e%2e/etc/hostname",
        "/static/a/..%2F..%2F..%2Fetc",
    ],
)
async def test_traversal_never_reaches_a_param(target: str, autojump_clock: MockClock) -> None:
    async with TestClient(files_app()) as client:
        stream = await client.open_stream()
        await stream.send_all(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        (response,), clean = parse_responses(await read_until_eof(stream), ["GET"])
        assert response.status == 400
        assert response.json()["status"] == 400
        assert clean


async def test_params_keep_an_encoded_slash_inside_their_segment(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(files_app()) as client:
        assert (await client.get("/files/a%2Fb")).json() == {"name": "a/b"}
        # A catch-all never carries an ambiguous slash: such a rest matches no ** route.
        assert (await client.get("/static/a%2Fb/c")).status == 404
        r = await client.get("/static/css//site.css")
        assert r.json() == {"path": "css/site.css", "event_path": "/static/css/site.css"}


async def test_guard_on_event_path_sees_the_routed_path(autojump_clock: MockClock) -> None:
    async with TestClient(files_app()) as client:
        for target in ["/secret/data", "//secret/data", "/secret//data/", "/%73ecret/data"]:
            r = await client.get(target)
            assert (r.status, r.json()["message"]) == (403, "guarded"), target


async def test_raw_path_is_the_target_as_received(autojump_clock: MockClock) -> None:
    app = H3()

    @app.get("/**")
    async def show(event: H3Event) -> dict[str, str]:
        return {"path": event.path, "raw": event.raw_path}

    async with TestClient(app) as client:
        assert (await client.get("//a/./b/%63?q=1")).json() == {
            "path": "/a/b/c",
            "raw": "//a/./b/%63",
        }


def mounted_admin_app() -> tuple[H3, list[str]]:
    seen: list[str] = []
    api = H3()

    @api.get("/admin/panel")
    async def panel(event: H3Event) -> str:
        return "panel"

    @api.get("/public")
    async def public(event: H3Event) -> str:
        return "public"

    app = H3()

    async def guard(event: H3Event, next: Next) -> object:
        seen.append(event.path)
        raise HTTPError(401, "admin only")

    app.use("/api/admin/**", guard)
    app.mount("/api", api)
    return app, seen


@pytest.mark.parametrize(
    "target",
    [
        "/api/admin/panel",
        "/api//admin/panel",
        "/api/%61dmin/panel",
        "/api/admin/./panel",
        "/api/x/../admin/panel",
        "/API/../api/admin/panel",
    ],
)
async def test_scoped_middleware_cannot_be_bypassed_through_a_mount(
    target: str, autojump_clock: MockClock
) -> None:
    app, seen = mounted_admin_app()
    async with TestClient(app) as client:
        r = await client.get(target)
        assert (r.status, r.json()["message"]) == (401, "admin only")
        assert seen == ["/api/admin/panel"]


@pytest.mark.parametrize("target", ["/api/admin%2Fpanel", "/api/%2561dmin/panel"])
async def test_encoded_spellings_reach_neither_guard_nor_route(
    target: str, autojump_clock: MockClock
) -> None:
    app, seen = mounted_admin_app()
    async with TestClient(app) as client:
        r = await client.get(target)
        assert r.status == 404  # no route has that segment: nothing to bypass
        assert seen == []
        assert (await client.get("/api/public")).text == "public"


@pytest.mark.slow
async def test_curl_path_as_is_cannot_leave_the_folder(
    running_server: RunServer, tmp_path: Path
) -> None:
    root = tmp_path / "public"
    root.mkdir()
    (root / "ok.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text("outside")
    app = H3()

    @app.get("/static/**:name")
    async def static(event: H3Event) -> bytes:
        path = safe_join(root, event.params["name"])
        if path is None or not os.path.isfile(path):
            raise HTTPError(404)
        return Path(path).read_bytes()

    async with running_server(app) as server:
        for target, status, body in [
            ("/static/ok.txt", 200, "inside"),
            ("/static/../secret.txt", 404, None),  # resolved to /secret.txt: no route
            ("/static/../../secret.txt", 400, None),
            ("/static/..%2fsecret.txt", 400, None),
            ("/static/%2e%2e/%2e%2e/secret.txt", 400, None),
        ]:
            result = await trio.run_process(
                ["curl", "-s", "--path-as-is", "-w", "\n%{http_code}", server.url + target],
                capture_stdout=True,
                check=False,
            )
            text, _, code = result.stdout.decode().rpartition("\n")
            assert int(code) == status, target
            if body is not None:
                assert text == body
            assert "outside" not in text
