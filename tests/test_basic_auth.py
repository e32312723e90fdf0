"""basic_auth(): RFC 7617 Basic authentication as scoped middleware."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from typing import Any

import httpx
import pytest
import trio
from helpers import RunServer
from trio.testing import MockClock

from trio_h3 import H3, H3Event, basic_auth, basic_credentials, constant_time_equals
from trio_h3.testing import TestClient

CHALLENGE = 'Basic realm="admin", charset="UTF-8"'


@dataclasses.dataclass
class User:
    name: str
    role: str


def authorization(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def make_app() -> tuple[H3, list[str]]:
    app = H3()
    threads: list[str] = []

    async def check(user: str, password: str) -> bool:
        await trio.sleep(0)
        return constant_time_equals(user, "admin") & constant_time_equals(password, "s3cr3t")

    def check_in_thread(user: str, password: str) -> User | None:
        threads.append(threading.current_thread().name)
        if constant_time_equals(user, "zoë") & constant_time_equals(password, "pässwörd ✓"):
            return User(user, "editor")
        return None

    app.use("/admin/**", basic_auth(verify=check, realm="admin"))
    app.use("/editors/**", basic_auth(verify=check_in_thread, realm="editors"))
    app.use("/ops/**", basic_auth(users={"ops": "pager", "root": "toor"}, realm='say "hi"'))

    @app.get("/")
    async def public(event: H3Event) -> str:
        return "public"

    @app.get("/admin/panel")
    async def panel(event: H3Event) -> dict[str, Any]:
        return {"user": event.context["user"]}

    @app.get("/editors/desk")
    async def desk(event: H3Event) -> dict[str, Any]:
        return {"user": dataclasses.asdict(event.context["user"])}

    @app.get("/ops/status")
    async def status(event: H3Event) -> dict[str, Any]:
        return {"user": event.context["user"]}

    @app.get("/whoami")
    async def whoami(event: H3Event) -> Any:
        credentials = basic_credentials(event)
        return list(credentials) if credentials else None

    return app, threads


async def test_no_or_wrong_credentials_are_401_with_the_challenge(
    autojump_clock: MockClock,
) -> None:
    app, _ = make_app()
    async with TestClient(app) as client:
        for headers in ({}, authorization("admin", "wrong"), authorization("nobody", "s3cr3t")):
            r = await client.get("/admin/panel", headers=headers)
            assert r.status == 401
            assert r.headers["www-authenticate"] == CHALLENGE
            assert r.json()["status"] == 401
        r = await client.get("/admin/panel", headers=authorization("admin", "s3cr3t"))
        assert r.json() == {"user": "admin"}
        # Outside the scope: no challenge; the canonical path cannot slip past the guard.
        assert (await client.get("/")).text == "public"
        assert (await client.get("/%61dmin/panel")).status == 401
        assert (await client.get("/x/../admin/panel")).status == 401


async def test_malformed_credentials_are_401(autojump_clock: MockClock) -> None:
    app, _ = make_app()
    good = base64.b64encode(b"admin:s3cr3t").decode()
    async with TestClient(app) as client:
        for value in (
            "Bearer abc",
            "Basic",
            "Basic !!!!",
            f"Basic {good} extra",
            "Basic " + base64.b64encode(b"admin").decode(),  # no colon
            "Basic " + base64.b64encode(b"admin:\xff").decode(),  # not UTF-8
            "Basic " + base64.b64encode(b"admin:s3c\nr3t").decode(),  # a control character
        ):
            r = await client.get("/admin/panel", headers={"authorization": value})
            assert r.status == 401, value
        # The scheme is case-insensitive (RFC 9110 §11.1); padding may be left out.
        for value in (f"basic {good}", f"BASIC {good}", f"Basic {good.rstrip('=')}"):
            r = await client.get("/admin/panel", headers={"authorization": value})
            assert r.status == 200, value
        # A colon in the password is the password's (RFC 7617 §2: the user-id has none).
        r = await client.get("/whoami", headers=authorization("a", "b:c"))
        assert r.json() == ["a", "b:c"]
        assert (await client.get("/whoami")).status == 204  # None: no credentials


async def test_a_sync_verify_runs_in_a_thread_and_may_return_the_user(
    running_server: RunServer,
) -> None:
    app, threads = make_app()
    async with running_server(app) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            # httpx encodes Basic credentials as UTF-8 (RFC 7617 §2.1).
            r = await client.get("/editors/desk", auth=("zoë", "pässwörd ✓"))
            assert r.json() == {"user": {"name": "zoë", "role": "editor"}}
            r = await client.get("/editors/desk", auth=("zoë", "wrong"))
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == 'Basic realm="editors", charset="UTF-8"'
    assert threads and all(name != threading.main_thread().name for name in threads)


async def test_curl_user(running_server: RunServer) -> None:
    app, _ = make_app()
    async with running_server(app) as server:
        result = await trio.run_process(
            ["curl", "-s", "--max-time", "10", "-u", "admin:s3cr3t", f"{server.url}/admin/panel"],
            capture_stdout=True,
        )
        assert json.loads(result.stdout) == {"user": "admin"}


async def test_a_users_table(autojump_clock: MockClock) -> None:
    app, _ = make_app()
    async with TestClient(app) as client:
        r = await client.get("/ops/status", headers=authorization("root", "toor"))
        assert r.json() == {"user": "root"}
        r = await client.get("/ops/status", headers=authorization("root", "pager"))
        assert r.status == 401
        # The realm is a quoted-string: its quotes escaped.
        assert r.headers["www-authenticate"] == 'Basic realm="say \\"hi\\"", charset="UTF-8"'


def test_constant_time_equals_and_arguments() -> None:
    assert constant_time_equals("pässwörd", "pässwörd")
    assert constant_time_equals(b"x", "x")
    assert not constant_time_equals("a", "ab")
    assert not constant_time_equals("", "a")
    with pytest.raises(TypeError, match="verify= or users="):
        basic_auth()
    with pytest.raises(TypeError, match="verify= or users="):
        basic_auth(lambda u, p: True, users={})
    with pytest.raises(ValueError, match="control characters"):
        basic_auth(users={}, realm="a\r\nb")
