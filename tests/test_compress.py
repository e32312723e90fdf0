"""compress(): gzip and br by Accept-Encoding q-values, what is left alone, Vary, HEAD,
304 and ranges, and streams flushed per write: every SSE event and StreamingResponse
chunk decodes as soon as it arrives. (In a browser: tests/test_browser.py.)"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import brotli
import h11
import httpx
import pytest
import trio
from helpers import H11Client, RunServer
from trio.testing import MockClock

from trio_h3 import (
    H3,
    H3Event,
    Response,
    SSEWriter,
    StaticFiles,
    StreamingResponse,
    compress,
)
from trio_h3.testing import TestClient

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")

TEXT = "trio-h3 compresses this line. " * 100  # 3,000 bytes of text


def make_app(**options: object) -> tuple[H3, trio.Semaphore]:
    """The app, and the semaphore its streams wait on after each write (the test lets
    them go one write at a time)."""
    app = H3()
    app.use(compress(**options))  # type: ignore[arg-type]
    go = trio.Semaphore(0)

    @app.get("/text")
    async def text(event: H3Event) -> str:
        return TEXT

    @app.get("/small")
    async def small(event: H3Event) -> str:
        return "tiny"

    @app.get("/png")
    async def png(event: H3Event) -> Response:
        return Response(TEXT, media_type="image/png")

    @app.get("/encoded")
    async def encoded(event: H3Event) -> Response:
        return Response(gzip.compress(TEXT.encode()), headers={"content-encoding": "gzip"})

    @app.get("/no-transform")
    async def no_transform(event: H3Event) -> Response:
        return Response(TEXT, headers={"cache-control": "no-transform"}, media_type="text/plain")

    @app.get("/partial")
    async def partial(event: H3Event) -> Response:
        headers = {"content-range": f"bytes 0-99/{len(TEXT)}"}
        return Response(TEXT[:100], status=206, headers=headers, media_type="text/plain")

    @app.get("/not-modified")
    async def not_modified(event: H3Event) -> Response:
        return Response(status=304, headers={"etag": '"v1"', "content-type": "text/plain"})

    @app.get("/etag")
    async def etag(event: H3Event) -> Response:
        return Response(TEXT, headers={"etag": '"v1"'}, media_type="text/plain")

    @app.get("/events")
    async def events(event: H3Event) -> None:
        event.start_sse(ping_interval=None)

        async def produce(writer: SSEWriter) -> None:
            for i in range(3):
                await writer.send(f"event {i} " + "x" * 50)
                await go.acquire()

        event.set_stream_callback(produce)

    @app.get("/chunks")
    async def chunks(event: H3Event) -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            for i in range(3):
                yield f"chunk {i}\n"
                await go.acquire()

        return StreamingResponse(body(), media_type="text/plain")

    return app, go


async def test_negotiation_with_q_values(autojump_clock: MockClock) -> None:
    app, _ = make_app()
    async with TestClient(app) as client:
        cases = {
            "gzip": "gzip",
            "br": "br",
            "gzip, br": "br",  # equal q: the server's order
            "gzip;q=1, br;q=0.5": "gzip",
            "br;q=0, gzip": "gzip",
            "*": "br",
            "*;q=0, gzip;q=0.1": "gzip",
            "x-gzip": "gzip",
            "identity": None,
            "gzip;q=0, br;q=0": None,
            "deflate": None,
            "gzip;q=oops": None,
        }
        for accept, coding in cases.items():
            r = await client.get("/text", headers={"accept-encoding": accept})
            assert r.headers.get("content-encoding") == coding, accept
            assert r.headers["vary"] == "Accept-Encoding", accept
            if coding == "gzip":
                assert gzip.decompress(r.content).decode() == TEXT
            elif coding == "br":
                assert brotli.decompress(r.content).decode() == TEXT
            else:
                assert r.text == TEXT
            assert int(r.headers["content-length"]) == len(r.content)
        r = await client.get("/text")  # no Accept-Encoding: identity
        assert "content-encoding" not in r.headers and r.headers["vary"] == "Accept-Encoding"
    app, _ = make_app(brotli=False)
    async with TestClient(app) as client:
        r = await client.get("/text", headers={"accept-encoding": "br, gzip"})
        assert r.headers["content-encoding"] == "gzip"


async def test_what_is_left_alone(autojump_clock: MockClock) -> None:
    app, _ = make_app()
    gz = {"accept-encoding": "gzip"}
    async with TestClient(app) as client:
        for path in ("/small", "/png", "/no-transform"):
            r = await client.get(path, headers=gz)
            assert "content-encoding" not in r.headers, path
            assert "vary" not in r.headers, path
        r = await client.get("/encoded", headers={"accept-encoding": "br"})
        assert r.headers["content-encoding"] == "gzip"
        assert gzip.decompress(r.content).decode() == TEXT
        r = await client.get("/partial", headers=gz)
        assert r.status == 206 and "content-encoding" not in r.headers
        r = await client.get("/not-modified", headers=gz)
        assert r.status == 304 and "content-encoding" not in r.headers
        assert r.headers["vary"] == "Accept-Encoding"
        r = await client.get("/etag", headers=gz)
        assert r.headers["etag"] == 'W/"v1"'  # the bytes are not those "v1" named
        r = await client.head("/text", headers=gz)
        assert r.content == b"" and r.headers["content-encoding"] == "gzip"
        assert int(r.headers["content-length"]) == len(gzip.compress(TEXT.encode(), 6))
    app, _ = make_app(minimum_size=0)
    async with TestClient(app) as client:
        r = await client.get("/small", headers={"accept-encoding": "gzip"})
        assert "content-encoding" not in r.headers  # compressing made it bigger
    with pytest.raises(ValueError):
        compress(gzip_level=0)


@pytest.mark.parametrize("path", ["/events", "/chunks"])
async def test_streams_are_flushed_per_write(autojump_clock: MockClock, path: str) -> None:
    app, go = make_app()
    async with TestClient(app) as client:
        async with client.stream("GET", path, headers={"accept-encoding": "gzip"}) as stream:
            assert stream.headers["content-encoding"] == "gzip"
            assert "content-length" not in stream.headers
            decoder = zlib.decompressobj(31)
            # Each write decodes whole as soon as it arrives, before the next one is made.
            with trio.fail_after(10):
                for i in range(3):
                    text = decoder.decompress(await stream.receive_chunk()).decode()
                    assert text.startswith(("data: event", "chunk")) and f" {i}" in text, text
                    go.release()
            rest = b""
            while chunk := await stream.receive_chunk():
                rest += chunk
            assert decoder.decompress(rest) == b"" and decoder.eof


async def test_sse_through_brotli(autojump_clock: MockClock) -> None:
    app, go = make_app()
    for _ in range(3):
        go.release()
    async with TestClient(app) as client:
        r = await client.get("/events", headers={"accept-encoding": "br"})
        assert r.headers["content-encoding"] == "br"
        assert brotli.decompress(r.content).count(b"data: event") == 3


async def test_gzip_sse_over_a_real_socket(running_server: RunServer) -> None:
    app, go = make_app()
    async with running_server(app) as server:
        client = await H11Client.connect(server.port)
        await client.request("GET", "/events", [("host", "x"), ("accept-encoding", "gzip")])
        head = await client.next_event()
        assert isinstance(head, h11.Response)
        assert (b"content-encoding", b"gzip") in head.headers
        decoder = zlib.decompressobj(31)
        for i in range(3):
            # The event is whole in the chunk that carries it, while the producer waits.
            data = await client.next_event()
            assert isinstance(data, h11.Data)
            assert decoder.decompress(data.data).startswith(f"data: event {i}".encode())
            go.release()
        await client.aclose()
        async with httpx.AsyncClient(base_url=server.url) as http:
            r = await http.get("/text", headers={"accept-encoding": "br"})
            assert r.headers["content-encoding"] == "br" and r.text == TEXT


async def test_files_are_coded_unless_ranged_or_precompressed(
    running_server: RunServer, tmp_path: Path
) -> None:
    css = ("a { color: red; }\n" * 20000).encode()  # 360 KB: more than one read
    (tmp_path / "big.css").write_bytes(css)
    (tmp_path / "tiny.css").write_text("a{}")
    (tmp_path / "pre.css").write_bytes(css)
    (tmp_path / "pre.css.gz").write_bytes(gzip.compress(css))
    (tmp_path / "photo.png").write_bytes(b"\x89PNG" + bytes(2000))
    app = H3()
    app.use(compress())
    app.mount("/", StaticFiles(tmp_path, precompressed=True))
    plain = H3()
    plain.use(compress(files=False))
    plain.mount("/", StaticFiles(tmp_path))
    gz = {"accept-encoding": "gzip"}
    async with running_server(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        r = await client.get("/big.css", headers={"accept-encoding": "br"})
        assert r.headers["content-encoding"] == "br" and r.content == css  # httpx decodes
        assert "content-length" not in r.headers and r.headers["vary"] == "Accept-Encoding"
        etag = r.headers["etag"]
        assert etag.startswith('W/"')
        r = await client.get("/big.css", headers={**gz, "if-none-match": etag})
        assert r.status_code == 304 and r.headers["vary"] == "Accept-Encoding"
        r = await client.get("/big.css", headers={**gz, "range": "bytes=0-9"})
        assert r.status_code == 206 and "content-encoding" not in r.headers
        assert r.content == css[:10]
        r = await client.head("/big.css", headers=gz)
        assert r.headers["content-encoding"] == "gzip" and r.content == b""
        for path in ("/tiny.css", "/photo.png"):
            r = await client.get(path, headers=gz)
            assert "content-encoding" not in r.headers, path
        r = await client.get("/pre.css", headers=gz)  # the sibling, as it is
        assert r.headers["content-encoding"] == "gzip" and r.headers["etag"].startswith('"')
        assert int(r.headers["content-length"]) == (tmp_path / "pre.css.gz").stat().st_size
    async with running_server(plain) as server, httpx.AsyncClient(base_url=server.url) as client:
        r = await client.get("/big.css", headers=gz)
        assert "content-encoding" not in r.headers and r.content == css
