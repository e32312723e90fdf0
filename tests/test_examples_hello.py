"""examples/hello.py: the README's first example, through the TestClient and a socket."""

from __future__ import annotations

import httpx
import trio
from helpers import RunServer
from trio.testing import MockClock

from examples.hello import app
from trio_h3.testing import TestClient


async def test_index(autojump_clock: MockClock) -> None:
    async with TestClient(app) as client:
        r = await client.get("/")
        assert r.status == 200
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.text == "Hello from trio-h3!"


async def test_get_user(autojump_clock: MockClock) -> None:
    async with TestClient(app) as client:
        assert (await client.get("/users/1")).json() == {"id": "1", "name": "Ada"}
        r = await client.get("/users/7")
        assert r.status == 404
        assert r.json() == {"status": 404, "message": "No such user", "data": {"id": "7"}}


async def test_create_user(autojump_clock: MockClock) -> None:
    async with TestClient(app) as client:
        r = await client.post("/users", json={"name": "Grace"})
        assert r.status == 201
        assert r.json() == {"id": "2", "name": "Grace"}
        r = await client.post("/users", json=["not", "an", "object"])
        assert r.status == 400
        r = await client.post(
            "/users", content="{broken", headers={"content-type": "application/json"}
        )
        assert r.status == 400
        assert (await client.delete("/users")).status == 405


async def test_hello_over_a_real_socket(running_server: RunServer) -> None:
    with trio.fail_after(10):
        async with running_server(app) as server:
            async with httpx.AsyncClient(base_url=server.url) as client:
                assert (await client.get("/")).text == "Hello from trio-h3!"
                assert (await client.head("/")).content == b""
