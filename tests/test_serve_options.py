"""The ServeOptions that came with the CLI (limit_concurrency, limit_max_requests,
extra_headers, date_header, root_path, uds, fd, the ssl_* options), an app carrying its
own options, the lifespan's errors and its forms."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme
from helpers import RunServer, open_connection, read_until, request_bytes
from trio.testing import MockClock

from trio_h3 import H3, H3Event, LifespanError, ServeOptions, SSEWriter, StreamingResponse, serve
from trio_h3.testing import TestClient

TIMEOUT = 30


def make_app(**kwargs: Any) -> H3:
    app = H3(**kwargs)

    @app.get("/")
    async def index(event: H3Event) -> str:
        return "hello"

    @app.get("/url")
    async def url(event: H3Event) -> dict[str, str]:
        return {"path": event.path, "url": str(event.url), "root_path": event.root_path}

    @app.get("/own-header")
    async def own_header(event: H3Event) -> str:
        event.response_headers.set("x-frame-options", "SAMEORIGIN")
        return "mine"

    async def forever() -> AsyncIterator[str]:
        yield "started\n"
        await trio.sleep_forever()

    app.get("/hold", lambda e: StreamingResponse(forever()))
    return app


# -- limit_concurrency ------------------------------------------------------------------------


async def test_limit_concurrency_answers_503_beyond_it(autojump_clock: MockClock) -> None:
    async with TestClient(make_app(), limit_concurrency=1) as client:
        # One at a time is fine, again and again (once the server has seen each of the
        # test client's connections close: an open connection counts, idle or not).
        for _ in range(3):
            assert (await client.get("/")).status == 200
            await trio.testing.wait_all_tasks_blocked()
        async with client.stream("GET", "/hold") as held:
            assert await held.receive_chunk() == b"started\n"
            refused = await client.get("/")
            assert refused.status == 503
            assert refused.json() == {"status": 503, "message": "Service Unavailable"}
            assert refused.headers["connection"] == "close"
            await held.disconnect()
        await trio.testing.wait_all_tasks_blocked()
        assert (await client.get("/")).status == 200  # capacity is back


async def test_limit_concurrency_counts_requests_in_progress(autojump_clock: MockClock) -> None:
    async with TestClient(make_app(), limit_concurrency=2) as client:
        async with client.stream("GET", "/hold") as one, client.stream("GET", "/hold") as two:
            await one.receive_chunk()
            await two.receive_chunk()
            assert (await client.get("/")).status == 503
            await one.disconnect()
            await two.disconnect()


# -- limit_max_requests -----------------------------------------------------------------------


async def test_limit_max_requests_shuts_down_gracefully(running_server: RunServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_server(make_app(), limit_max_requests=3) as server:
            async with httpx.AsyncClient(base_url=server.url) as client:
                for _ in range(3):
                    assert (await client.get("/")).text == "hello"  # the 3rd is served too
            await server.stopped.wait()  # ...and then the server stops by itself
            assert server.server.state.shutdown_reason == "limit_max_requests (3)"
            with pytest.raises(OSError):
                await open_connection(server.port)


# -- the headers the server adds ------------------------------------------------------------


async def test_extra_headers_date_and_server(autojump_clock: MockClock) -> None:
    options = ServeOptions(
        extra_headers=[("X-Frame-Options", "DENY"), ("Server", "edge")],  # type: ignore[arg-type]
    )
    async with TestClient(make_app(), options, date_header=False) as client:
        r = await client.get("/")
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers.get_all("server") == ["edge"]  # replaced, not doubled
        assert "date" not in r.headers
        r = await client.get("/own-header")
        assert r.headers.get_all("x-frame-options") == ["SAMEORIGIN"]  # the app's wins
        assert (await client.get("/missing")).headers["x-frame-options"] == "DENY"
    async with TestClient(make_app()) as client:
        r = await client.get("/")
        assert r.headers["server"] == "trio-h3" and "date" in r.headers


def test_extra_headers_are_checked() -> None:
    with pytest.raises(ValueError, match="must be ASCII text"):
        ServeOptions(extra_headers=(("x-a", "b\r\nInjected: 1"),))
    with pytest.raises(ValueError, match="holds \\(name, value\\) pairs"):
        ServeOptions(extra_headers=("x-a",))  # type: ignore[arg-type]


# -- root_path -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/url?x=1", "/api/url?x=1"], ids=["stripped", "not-stripped"])
async def test_root_path(target: str, autojump_clock: MockClock) -> None:
    async with TestClient(make_app(), root_path="/api/") as client:
        r = await client.get(target)
        assert r.json() == {
            "path": "/url",
            "url": "http://testserver/api/url?x=1",
            "root_path": "/api",
        }
        assert (await client.get("/api")).text == "hello"  # the prefix alone is "/"
        assert (await client.get("/apiary/url")).status == 404  # not the prefix


async def test_no_root_path(autojump_clock: MockClock) -> None:
    async with TestClient(make_app()) as client:
        assert (await client.get("/url")).json()["url"] == "http://testserver/url"


# -- uds and fd --------------------------------------------------------------------------------


async def test_unix_socket(running_server: RunServer, tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # a stale socket file from an earlier run is replaced
    stale.close()
    with trio.fail_after(TIMEOUT):
        async with running_server(make_app(), uds=str(path)) as server:
            assert server.addresses == []
            assert path.stat().st_mode & 0o777 == 0o666
            transport = httpx.AsyncHTTPTransport(uds=str(path))
            async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
                assert (await client.get("/")).text == "hello"
    assert not path.exists()  # removed on exit


async def test_unix_socket_path_that_is_not_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("not a socket")
    with pytest.raises(OSError, match=f"cannot listen on unix:{path}: Address already in use"):
        await serve(make_app(), uds=str(path), handle_signals=False)
    assert path.read_text() == "not a socket"


async def test_fd(running_server: RunServer) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    with trio.fail_after(TIMEOUT):
        async with running_server(make_app(), fd=sock.detach()) as server:
            assert server.port == port
            async with httpx.AsyncClient(base_url=server.url) as client:
                assert (await client.get("/")).text == "hello"


async def test_fd_that_is_not_a_socket(tmp_path: Path) -> None:
    with open(tmp_path / "f", "w") as file:
        with pytest.raises(OSError, match=f"cannot listen on fd {file.fileno()}"):
            await serve(make_app(), fd=file.fileno(), handle_signals=False)
        os.fstat(file.fileno())  # still open: not ours to close


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_a_combined_cert_and_key_pem(
    running_server: RunServer, tmp_path: Path, ca: trustme.CA
) -> None:
    combined = tmp_path / "combined.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(combined))
    with trio.fail_after(TIMEOUT):
        async with running_server(make_app(), ssl_certfile=str(combined)) as server:
            url = f"https://127.0.0.1:{server.port}"
            async with httpx.AsyncClient(verify=client_context(ca)) as client:
                assert (await client.get(url)).text == "hello"


async def test_client_certificates_and_ciphers(
    running_server: RunServer, tmp_path: Path, ca: trustme.CA
) -> None:
    combined, ca_file = tmp_path / "server.pem", tmp_path / "ca.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(combined))
    ca.cert_pem.write_to_path(str(ca_file))
    options = {
        "ssl_certfile": str(combined),
        "ssl_ca_certs": str(ca_file),
        "ssl_cert_reqs": 2,
        "ssl_ciphers": "ECDHE+AESGCM",
    }
    with trio.fail_after(TIMEOUT):
        async with running_server(make_app(), **options) as server:
            url = f"https://127.0.0.1:{server.port}"
            async with httpx.AsyncClient(verify=client_context(ca)) as anonymous:
                with pytest.raises(httpx.HTTPError):
                    await anonymous.get(url)  # no client certificate: refused
            context = client_context(ca)
            ca.issue_cert("client@example.com").configure_cert(context)
            async with httpx.AsyncClient(verify=context) as client:
                assert (await client.get(url)).text == "hello"


async def test_tls_errors_name_the_file(tmp_path: Path, ca: trustme.CA) -> None:
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    app = make_app()
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"ssl_certfile": str(tmp_path / "nope.pem")}, OSError, "certificate file '.*nope.pem'"),
        (
            {"ssl_certfile": str(certfile), "ssl_keyfile": str(tmp_path / "nokey.pem")},
            OSError,
            "key file '.*nokey.pem': No such file",
        ),
        ({"ssl_certfile": str(certfile)}, ValueError, "no ssl_keyfile: the file must hold"),
        (
            {"ssl_certfile": str(keyfile), "ssl_keyfile": str(keyfile)},
            ValueError,
            "cannot load the TLS certificate '.*key.pem' with the key",
        ),
        (
            {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile), "ssl_ciphers": "NOPE"},
            ValueError,
            "ssl_ciphers 'NOPE'",
        ),
    ]
    for options, kind, message in cases:
        with pytest.raises(kind, match=message):
            await serve(app, port=0, handle_signals=False, **options)


async def test_an_encrypted_key_is_never_prompted_for(tmp_path: Path, ca: trustme.CA) -> None:
    from cryptography.hazmat.primitives import serialization

    cert = ca.issue_cert("127.0.0.1")
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    keyfile.write_bytes(encrypted)
    with pytest.raises(ValueError, match="cannot load the TLS certificate"):
        await serve(
            make_app(),
            port=0,
            handle_signals=False,
            ssl_certfile=str(certfile),
            ssl_keyfile=str(keyfile),
        )
    trigger = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve(
                make_app(),
                port=0,
                shutdown_trigger=trigger,
                ssl_certfile=str(certfile),
                ssl_keyfile=str(keyfile),
                ssl_keyfile_password="secret",
                task_status=task_status,
            )
        )
        trigger.set()


# -- an app carrying its own options ----------------------------------------------------------


async def echo(event: H3Event) -> str:
    return await event.text()


async def test_serve_applies_the_apps_options_with_keywords_on_top() -> None:
    app = make_app(serve_options=ServeOptions(max_body_size=10, server_header="app's"))
    app.post("/echo", echo)
    trigger = trio.Event()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(
                lambda task_status: serve(
                    app, port=0, shutdown_trigger=trigger, task_status=task_status
                )
            )
            url = f"http://127.0.0.1:{addresses[0].port}"
            async with httpx.AsyncClient(base_url=url) as client:
                r = await client.post("/echo", content=b"x" * 11)
                assert r.status_code == 413  # the app's limit
                assert r.headers["server"] == "app's"
            trigger.set()


async def test_test_client_applies_the_apps_options(autojump_clock: MockClock) -> None:
    app = make_app(serve_options=ServeOptions(max_body_size=10))
    app.post("/echo", echo)
    async with TestClient(app) as client:
        assert (await client.post("/echo", content=b"x" * 11)).status == 413
    async with TestClient(app, max_body_size=100) as client:  # keywords on top
        assert (await client.post("/echo", content=b"x" * 11)).status == 200
    async with TestClient(app, ServeOptions()) as client:  # an explicit one, whole
        assert (await client.post("/echo", content=b"x" * 11)).status == 200


# -- the lifespan ------------------------------------------------------------------------------


async def test_a_failing_lifespan_is_a_lifespan_error() -> None:
    app = make_app()

    @app.lifespan
    async def lifespan(nursery: trio.Nursery) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    with pytest.raises(LifespanError, match="failed on startup: RuntimeError: no database") as info:
        await serve(app, port=0, handle_signals=False)
    assert info.value.phase == "startup"
    assert isinstance(info.value.__cause__, RuntimeError)


async def test_a_lifespan_failing_on_shutdown_is_a_lifespan_error() -> None:
    app = make_app()

    @app.lifespan
    async def lifespan(app: H3) -> AsyncIterator[None]:
        yield
        raise RuntimeError("cannot flush")

    trigger = trio.Event()
    trigger.set()
    with pytest.raises(LifespanError, match="failed on shutdown: RuntimeError: cannot flush"):
        await serve(app, port=0, shutdown_trigger=trigger)


async def test_lifespan_forms(autojump_clock: MockClock) -> None:
    seen: list[Any] = []

    async def by_app(app: H3) -> AsyncIterator[None]:  # FastAPI's form
        seen.append(app)
        yield

    async def by_nursery(nursery: trio.Nursery) -> AsyncIterator[None]:
        seen.append(nursery)
        yield

    async def by_annotation(x: trio.Nursery) -> AsyncIterator[None]:
        seen.append(x)
        yield

    async def swapped(nursery: trio.Nursery, app: H3) -> AsyncIterator[None]:
        seen.append((nursery, app))
        yield

    async def neither() -> AsyncIterator[None]:
        seen.append("none")
        yield

    for form in (by_app, by_nursery, by_annotation, swapped, neither):
        app = H3(lifespan=form)
        async with TestClient(app):
            pass
    assert isinstance(seen[0], H3)
    assert isinstance(seen[1], trio.Nursery) and isinstance(seen[2], trio.Nursery)
    assert isinstance(seen[3][0], trio.Nursery) and isinstance(seen[3][1], H3)
    assert seen[4] == "none"


def test_a_lifespan_whose_parameter_says_nothing_is_refused() -> None:
    async def ambiguous(thing: Any) -> AsyncIterator[None]:
        yield

    with pytest.raises(TypeError, match="'thing': is it the app or the nursery"):
        H3(lifespan=ambiguous)


async def test_sse_with_a_root_path(autojump_clock: MockClock) -> None:
    app = H3()

    async def stream(writer: SSEWriter) -> None:
        await writer.send("hi")

    @app.get("/events")
    async def events(event: H3Event) -> None:
        event.start_sse()
        event.set_stream_callback(stream)

    async with TestClient(app, root_path="/api") as client:
        async with client.sse("/api/events") as events_stream:
            assert (await events_stream.next_event()).data == "hi"


async def test_raw_limit_concurrency_over_a_socket(running_server: RunServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_server(make_app(), limit_concurrency=1) as server:
            held = await open_connection(server.port)
            await held.send_all(request_bytes("GET", "/hold"))
            await read_until(held, b"started")
            async with httpx.AsyncClient(base_url=server.url) as client:
                assert (await client.get("/")).status_code == 503
            await held.aclose()
