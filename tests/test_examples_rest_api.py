"""examples/rest_api.py through the TestClient; the app carries its own ServeOptions."""

from __future__ import annotations

from trio.testing import MockClock

from examples.rest_api import OPTIONS, create_app
from trio_h3.testing import TestClient


async def test_crud_round_trip(autojump_clock: MockClock) -> None:
    async with TestClient(create_app()) as client:
        assert (await client.get("/notes")).json() == []
        r = await client.post("/notes", json={"title": " Buy milk "})
        assert r.status == 201
        assert r.headers["location"] == "/notes/1"
        assert r.json() == {"id": 1, "title": "Buy milk", "done": False}
        await client.post("/notes", json={"title": "Walk", "done": True})
        r = await client.get("/notes/1")
        assert r.json()["title"] == "Buy milk"
        r = await client.patch("/notes/1", json={"done": True})
        assert r.json() == {"id": 1, "title": "Buy milk", "done": True}
        assert [n["id"] for n in (await client.get("/notes?done=true")).json()] == [1, 2]
        r = await client.delete("/notes/1")
        assert r.status == 204
        assert r.content == b""
        assert [n["id"] for n in (await client.get("/notes")).json()] == [2]


async def test_404_for_unknown_ids(autojump_clock: MockClock) -> None:
    async with TestClient(create_app()) as client:
        for method in ("GET", "PATCH", "DELETE"):
            r = await client.request(method, "/notes/99", json={"done": True})
            assert r.status == 404
            assert r.json() == {"status": 404, "message": "No such note", "data": {"id": "99"}}
        assert (await client.get("/notes/abc")).status == 404
        r = await client.get("/nothing")
        assert r.json()["message"] == "Cannot find any route matching [GET] /nothing"


async def test_405_for_a_wrong_method(autojump_clock: MockClock) -> None:
    async with TestClient(create_app()) as client:
        r = await client.put("/notes/1", json={})
        assert r.status == 405
        assert r.headers["allow"] == "DELETE, GET, HEAD, PATCH"
        r = await client.delete("/notes")
        assert r.status == 405
        assert r.headers["allow"] == "GET, HEAD, POST"


async def test_413_for_an_oversized_body(autojump_clock: MockClock) -> None:
    assert OPTIONS.max_body_size == 16 * 1024
    assert create_app().serve_options is OPTIONS  # no options passed below: the app's apply
    async with TestClient(create_app()) as client:
        r = await client.post("/notes", json={"title": "x" * 20_000})
        assert r.status == 413
        assert r.json()["data"] == {"limit": 16 * 1024}
        r = await client.post(
            "/notes",
            content=b'{"title": "' + b"y" * 20_000 + b'"}',
            headers={"transfer-encoding": "chunked", "content-type": "application/json"},
        )
        assert r.status == 413
        assert (await client.get("/notes")).json() == []


async def test_400_for_invalid_input(autojump_clock: MockClock) -> None:
    async with TestClient(create_app()) as client:
        bad = [
            b"not json",
            b"[1, 2]",
            b'{"title": ""}',
            b'{"title": 5}',
            b'{"title": "ok", "done": "yes"}',
            b'{"title": "ok", "colour": "red"}',
        ]
        for body in bad:
            r = await client.post(
                "/notes", content=body, headers={"content-type": "application/json"}
            )
            assert r.status == 400, body
            assert r.json()["status"] == 400
        assert (await client.get("/notes")).json() == []


async def test_each_app_has_its_own_store(autojump_clock: MockClock) -> None:
    async with TestClient(create_app()) as one, TestClient(create_app()) as two:
        await one.post("/notes", json={"title": "only in one"})
        assert len((await one.get("/notes")).json()) == 1
        assert (await two.get("/notes")).json() == []
