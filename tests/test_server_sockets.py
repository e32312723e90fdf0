"""serve() on real sockets (127.0.0.1, port 0), with httpx and a raw h11 client."""

from __future__ import annotations

import ssl
from pathlib import Path

import h11
import httpx
import pytest
import trio
import trustme
from helpers import (
    H11Client,
    RunServer,
    exchange,
    open_connection,
    parse_responses,
    read_until_eof,
    request_bytes,
)

from trio_h3 import H3, H3Event

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")

# Every test is bounded: a hang is a failure, not a stuck CI job.
TIMEOUT = 10


def make_app() -> H3:
    app = H3()

    @app.get("/")
    async def index(event: H3Event) -> str:
        return "hello"

    @app.get("/whoami")
    async def whoami(event: H3Event) -> dict[str, object]:
        assert event.client is not None
        return {
            "scheme": event.url.scheme,
            "client": event.client.host,
            "port": event.client.port,
            "version": event.http_version,
        }

    @app.post("/upload")
    async def upload(event: H3Event) -> dict[str, int]:
        return {"received": len(await event.body())}

    return app


async def test_httpx_keep_alive_reuses_one_connection(running_server: RunServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_server(make_app()) as server:
            async with httpx.AsyncClient(base_url=server.url) as client:
                first = await client.get("/whoami")
                second = await client.get("/whoami")
                assert first.status_code == second.status_code == 200
                assert first.json()["client"] == "127.0.0.1"
                # Same client port: the TCP connection was reused.
                assert first.json()["port"] == second.json()["port"]
                assert first.headers["server"] == "trio-h3"
                assert "date" in first.headers
                r = await client.post("/upload", json={"x": "y" * 1000})
                assert r.json() == {"received": len(b'{"x":"') + 1000 + 2}


async def test_raw_h11_keep_alive_and_head(running_server: RunServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_server(make_app()) as server:
            client = await H11Client.connect(server.port)
            for _ in range(3):
                head, body = await client.get("/")
                assert (head.status_code, body) == (200, b"hello")
            head, body = await client.get("/", method="HEAD")
            assert head.status_code == 200
            assert body == b""
            assert dict(head.headers)[b"content-length"] == b"5"
            head, body = await client.get("/missing")
            assert head.status_code == 404
            await client.aclose()


async def test_pipelining_over_a_socket(running_server: RunServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_server(make_app()) as server:
            data = (
                request_bytes("GET", "/")
                + request_bytes("POST", "/upload", body=b"12345")
                + request_bytes("HEAD", "/")
                + request_bytes("GET", "/", [("connection", "close")])
            )
            responses, clean = parse_responses(
                await exchange(server.port, data), ["GET", "POST", "HEAD", "GET"]
            )
            assert [r.status for r in responses] == [200, 200, 200, 200]
            assert [r.body for r in responses] == [b"hello", b'{"received":5}', b"", b"hello"]
            assert clean


async def test_a_complete_response_larger_than_the_socket_buffer(
    running_server: RunServer,
) -> None:
    # The body cannot go in one write(2): 6 MiB is more than a TCP send buffer holds
    # (Linux's tcp_wmem maximum is 4 MiB). The rest is sent through trio as the client
    # drains it, and the next request on the same connection is answered after it.
    big = bytes(range(256)) * (6 * 1024 * 4)
    app = H3()

    @app.get("/big")
    async def big_body(event: H3Event) -> bytes:
        return big

    @app.get("/after")
    async def after(event: H3Event) -> str:
        return "after"

    async with running_server(app) as server:
        stream = await open_connection(server.port)
        async with stream:
            await stream.send_all(
                request_bytes("GET", "/big")
                + request_bytes("GET", "/after", [("connection", "close")])
            )
            with trio.fail_after(TIMEOUT):
                data = await read_until_eof(stream, limit=len(big) + (1 << 16))
    responses, clean = parse_responses(data, ["GET", "GET"])
    assert [r.status for r in responses] == [200, 200]
    assert responses[0].body == big
    assert responses[1].body == b"after"
    assert clean


async def test_http_1_0_over_a_socket(running_server: RunServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_server(make_app()) as server:
            data = await exchange(server.port, b"GET /whoami HTTP/1.0\r\n\r\n")
            [response], clean = parse_responses(data, ["GET"])
            assert response.status == 200
            assert response.http_version == "1.1"
            assert response.json()["version"] == "1.0"
            assert clean


async def test_expect_100_continue_over_a_socket(running_server: RunServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_server(make_app()) as server:
            client = await H11Client.connect(server.port)
            await client.send(
                h11.Request(
                    method="POST",
                    target="/upload",
                    headers=[
                        ("host", "127.0.0.1"),
                        ("content-length", "6"),
                        ("expect", "100-continue"),
                    ],
                )
            )
            interim = await client.next_event()
            assert isinstance(interim, h11.InformationalResponse)
            assert interim.status_code == 100
            await client.send(h11.Data(data=b"abcdef"), h11.EndOfMessage())
            head, body = await client.response()
            assert (head.status_code, body) == (200, [b'{"received":6}'])
            await client.aclose()


async def test_chunked_upload_over_a_socket(running_server: RunServer) -> None:
    async def pieces() -> object:
        for _ in range(10):
            yield b"x" * 1000

    with trio.fail_after(TIMEOUT):
        async with running_server(make_app()) as server:
            async with httpx.AsyncClient(base_url=server.url) as client:
                r = await client.post("/upload", content=pieces())  # type: ignore[arg-type]
                assert r.json() == {"received": 10_000}
                assert r.request.headers["transfer-encoding"] == "chunked"


async def test_bad_input_over_sockets_keeps_the_server_serving(
    running_server: RunServer,
) -> None:
    cases = [
        (b"\x16\x03\x01garbage-that-is-not-http\r\n\r\n", 400),
        (request_bytes("GET", "/", [("x-big", "a" * 20_000)]), 431),
        (
            request_bytes("POST", "/upload", [("transfer-encoding", "chunked")])
            + (b"400\r\n" + b"z" * 0x400 + b"\r\n") * 8
            + b"0\r\n\r\n",
            413,
        ),
        (request_bytes("POST", "/upload", body=b"q" * 5000), 413),
    ]
    with trio.fail_after(TIMEOUT):
        async with running_server(make_app(), max_body_size=4096) as server:
            for data, status in cases:
                [response], clean = parse_responses(await exchange(server.port, data), ["POST"])
                assert response.status == status
                assert response.json()["status"] == status
                assert response.headers["connection"] == "close"
                assert clean
            async with httpx.AsyncClient(base_url=server.url) as client:
                assert (await client.get("/")).text == "hello"


async def test_graceful_shutdown_lets_the_request_in_flight_finish(
    running_server: RunServer,
) -> None:
    app = make_app()
    entered = trio.Event()
    release = trio.Event()

    @app.get("/work")
    async def work(event: H3Event) -> str:
        entered.set()
        await release.wait()
        return "finished"

    results: list[httpx.Response] = []
    with trio.fail_after(TIMEOUT):
        async with running_server(app, shutdown_timeout=TIMEOUT) as server:
            async with httpx.AsyncClient(base_url=server.url) as client, trio.open_nursery() as n:

                async def in_flight() -> None:
                    results.append(await client.get("/work"))

                n.start_soon(in_flight)
                await entered.wait()
                server.stop()
                await trio.testing.wait_all_tasks_blocked()
                # The listener is closed: new connections are refused...
                with pytest.raises(OSError):
                    await open_connection(server.port)
                assert not server.stopped.is_set()
                # ...while the request in flight still completes.
                release.set()
            with trio.fail_after(TIMEOUT):
                await server.stopped.wait()
    [response] = results
    assert response.status_code == 200
    assert response.text == "finished"
    assert response.headers["connection"] == "close"


async def test_shutdown_timeout_cancels_a_stuck_handler(
    running_server: RunServer, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    entered = trio.Event()
    cancelled: list[bool] = []

    @app.get("/stuck")
    async def stuck(event: H3Event) -> str:
        entered.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(True)
            raise
        return "never"

    with trio.fail_after(TIMEOUT):
        async with running_server(app, shutdown_timeout=0.05) as server:
            stream = await open_connection(server.port)
            await stream.send_all(request_bytes("GET", "/stuck"))
            await entered.wait()
            server.stop()
            # The client sees the connection closed without a response.
            assert await read_until_eof(stream) == b""
            await stream.aclose()
            await server.stopped.wait()
    # Only the shutdown_timeout could end this handler (it sleeps forever; the bound
    # above is a guard against a hang, not a measurement), and the server says so.
    assert cancelled == [True]
    assert "passed: cancelling 1 connection(s)" in caplog.text


async def test_idle_keep_alive_connections_close_at_shutdown(running_server: RunServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_server(make_app()) as server:
            client = await H11Client.connect(server.port)
            head, _ = await client.get("/")
            assert head.status_code == 200
            server.stop()
            # An idle connection is closed at once, without waiting for keep_alive_timeout.
            assert await read_until_eof(client.stream) == b""
            await client.aclose()
            await server.stopped.wait()


async def test_tls_with_trustme(running_server: RunServer, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile = tmp_path / "cert.pem"
    keyfile = tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(keyfile))
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with trio.fail_after(TIMEOUT):
        async with running_server(
            make_app(), ssl_certfile=str(certfile), ssl_keyfile=str(keyfile)
        ) as server:
            url = f"https://127.0.0.1:{server.port}"
            async with httpx.AsyncClient(base_url=url, verify=context) as client:
                r = await client.get("/whoami")
                assert r.status_code == 200
                assert r.json()["scheme"] == "https"
                r2 = await client.get("/whoami")
                assert r2.json()["port"] == r.json()["port"]
            # Plain HTTP to the TLS port is not served.
            async with httpx.AsyncClient(base_url=server.url) as plain:
                with pytest.raises(httpx.HTTPError):
                    await plain.get("/")
            # The server is unharmed by the failed handshake.
            async with httpx.AsyncClient(base_url=url, verify=context) as client:
                assert (await client.get("/")).text == "hello"


async def test_two_servers_in_one_process(running_server: RunServer) -> None:
    one, two = make_app(), H3()
    two.get("/", lambda e: "two")
    with trio.fail_after(TIMEOUT):
        async with running_server(one) as a, running_server(two) as b:
            assert a.port != b.port
            async with httpx.AsyncClient() as client:
                assert (await client.get(a.url)).text == "hello"
                assert (await client.get(b.url)).text == "two"
