"""StaticFiles and FileResponse over real sockets: curl and httpx for every conditional
and range case (RFC 9110 §13, §14), the traversal list with curl --path-as-is, symlinks,
hidden files, precompressed siblings, HEAD, index files, the mount at "/" falling
through, sendfile on plain TCP and chunks over TLS."""

from __future__ import annotations

import gzip
import os
import ssl
import subprocess
from pathlib import Path

import brotli
import httpx
import pytest
import trio
import trustme
from helpers import RunServer, exchange, parse_responses, request_bytes
from trio.testing import MockClock

from trio_h3 import H3, FileResponse, H3Event, Sessions, StaticFiles, cors
from trio_h3.testing import TestClient

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")

BODY = b"0123456789" * 100  # 1,000 bytes


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "docs").mkdir(parents=True)
    (root / "data.bin").write_bytes(BODY)
    (root / "style.css").write_text("body { color: red; }\n" * 50)
    (root / "style.css.gz").write_bytes(gzip.compress((root / "style.css").read_bytes()))
    (root / "style.css.br").write_bytes(brotli.compress((root / "style.css").read_bytes()))
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / ".env").write_text("SECRET=1")
    (root / ".well-known").mkdir()
    (root / ".well-known" / "security.txt").write_text("Contact: x")
    (tmp_path / "outside.txt").write_text("outside the root")
    (root / "escape").symlink_to(tmp_path / "outside.txt")
    (root / "inner-link").symlink_to(root / "data.bin")
    return root


def make_app(root: Path, **options: object) -> H3:
    app = H3()

    @app.get("/api/ping")
    async def ping(event: H3Event) -> str:
        return "pong"

    @app.post("/api/login")
    async def login(event: H3Event) -> str:
        return "in"

    @app.get("/download")
    async def download(event: H3Event) -> FileResponse:
        return FileResponse(root / "data.bin", filename="données.bin")

    app.mount("/", StaticFiles(root, **options))  # type: ignore[arg-type]
    return app


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-s", "-S", "--max-time", "10", *args], capture_output=True)


async def run_curl(*args: str) -> tuple[int, dict[str, str], bytes]:
    """curl -i: status, headers (last value per name, lowercased) and body."""
    result = await trio.to_thread.run_sync(curl, "-i", *args)
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


async def test_get_head_and_validators_with_curl_and_httpx(
    running_server: RunServer, site: Path
) -> None:
    async with running_server(make_app(site)) as server:
        status, headers, body = await run_curl(f"{server.url}/data.bin")
        assert status == 200 and body == BODY
        stat = os.stat(site / "data.bin")
        assert headers["etag"] == f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        assert headers["accept-ranges"] == "bytes"
        assert headers["content-length"] == "1000"
        assert headers["content-type"] == "application/octet-stream"
        assert headers["cache-control"] == "no-cache"
        assert "last-modified" in headers
        async with httpx.AsyncClient(base_url=server.url) as client:
            head = await client.head("/data.bin")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == "1000"
            assert head.headers["etag"] == headers["etag"]
            css = await client.get("/style.css")
            assert css.headers["content-type"] == "text/css; charset=utf-8"
            assert (await client.get("/")).text == "<h1>home</h1>"


async def test_conditional_requests_with_curl_and_httpx(
    running_server: RunServer, site: Path
) -> None:
    async with running_server(make_app(site)) as server:
        url = f"{server.url}/data.bin"
        _, headers, _ = await run_curl(url)
        etag, modified = headers["etag"], headers["last-modified"]
        # RFC 9110 §13.1.2: If-None-Match (weak comparison), a list, "*".
        for value in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
            status, got, body = await run_curl("-H", f"If-None-Match: {value}", url)
            assert (status, body) == (304, b""), value
            assert got["etag"] == etag and "content-length" not in got
        status, _, body = await run_curl("-H", 'If-None-Match: "other"', url)
        assert (status, body) == (200, BODY)
        # §13.1.3: If-Modified-Since, ignored when If-None-Match is present (§13.2.2).
        assert (await run_curl("-H", f"If-Modified-Since: {modified}", url))[0] == 304
        old = "Sun, 06 Nov 1994 08:49:37 GMT"
        assert (await run_curl("-H", f"If-Modified-Since: {old}", url))[0] == 200
        both = ["-H", f"If-Modified-Since: {modified}", "-H", 'If-None-Match: "x"']
        assert (await run_curl(*both, url))[0] == 200
        assert (await run_curl("-H", "If-Modified-Since: garbage", url))[0] == 200
        # curl's own -z sends If-Modified-Since from a date.
        assert (await run_curl("-z", modified, url))[0] == 304
        async with httpx.AsyncClient() as client:
            # §13.1.1, §13.1.4: If-Match / If-Unmodified-Since: 412 when they fail.
            assert (await client.get(url, headers={"if-match": '"x"'})).status_code == 412
            assert (await client.get(url, headers={"if-match": etag})).status_code == 200
            r = await client.get(url, headers={"if-unmodified-since": old})
            assert r.status_code == 412
            r = await client.get(url, headers={"if-unmodified-since": modified})
            assert r.status_code == 200
            r = await client.head(url, headers={"if-none-match": etag})
            assert r.status_code == 304
            # 304 keeps the validators and Cache-Control (§15.4.5).
            assert r.headers["cache-control"] == "no-cache" and r.headers["etag"] == etag


async def test_ranges_with_curl_and_httpx(running_server: RunServer, site: Path) -> None:
    async with running_server(make_app(site)) as server:
        url = f"{server.url}/data.bin"
        status, headers, body = await run_curl("-r", "10-19", url)
        assert (status, body) == (206, BODY[10:20])
        assert headers["content-range"] == "bytes 10-19/1000"
        assert headers["content-length"] == "10"
        status, headers, body = await run_curl("-r", "-5", url)  # suffix
        assert (status, body, headers["content-range"]) == (206, BODY[-5:], "bytes 995-999/1000")
        status, headers, body = await run_curl("-r", "990-", url)  # open
        assert (status, body, headers["content-range"]) == (206, BODY[990:], "bytes 990-999/1000")
        status, headers, body = await run_curl("-r", "995-2000", url)  # past the end: clipped
        assert (status, body) == (206, BODY[995:])
        status, headers, body = await run_curl("-r", "5000-6000", url)
        assert status == 416 and headers["content-range"] == "bytes */1000"
        async with httpx.AsyncClient() as client:
            # Several ranges: multipart/byteranges, each part with its Content-Range.
            r = await client.get(url, headers={"range": "bytes=0-1, 10-11, -2"})
            assert r.status_code == 206
            media = r.headers["content-type"]
            assert media.startswith("multipart/byteranges; boundary=")
            boundary = media.split("boundary=")[1].encode()
            assert int(r.headers["content-length"]) == len(r.content)
            parts = [p for p in r.content.split(b"--" + boundary) if p.strip(b"\r\n-")]
            assert len(parts) == 3
            assert b"content-range: bytes 0-1/1000\r\n\r\n01\r\n" in parts[0]
            assert b"content-range: bytes 10-11/1000\r\n\r\n01\r\n" in parts[1]
            assert b"content-range: bytes 998-999/1000\r\n\r\n89\r\n" in parts[2]
            # Overlapping ranges are merged into one.
            r = await client.get(url, headers={"range": "bytes=0-10,5-20"})
            assert (r.status_code, r.headers["content-range"]) == (206, "bytes 0-20/1000")
            # More than 16 parts once merged: the whole file.
            many = ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(17))
            r = await client.get(url, headers={"range": f"bytes={many}"})
            assert (r.status_code, r.content) == (200, BODY)
            # Not bytes, or malformed: ignored (RFC 9110 §14.2).
            for value in ("items=0-1", "bytes=5-1", "bytes=x-y"):
                r = await client.get(url, headers={"range": value})
                assert (r.status_code, r.content) == (200, BODY), value
            # If-Range: the ETag (strong), the date; a stale validator means "all of it".
            etag = r.headers["etag"]
            r = await client.get(url, headers={"range": "bytes=0-1", "if-range": etag})
            assert (r.status_code, r.content) == (206, b"01")
            r = await client.get(url, headers={"range": "bytes=0-1", "if-range": '"old"'})
            assert (r.status_code, r.content) == (200, BODY)
            r = await client.get(url, headers={"range": "bytes=0-1", "if-range": f"W/{etag}"})
            assert r.status_code == 200
            modified = r.headers["last-modified"]
            r = await client.get(url, headers={"range": "bytes=0-1", "if-range": modified})
            assert r.status_code == 206
            # HEAD ignores Range (it is defined for GET).
            r = await client.head(url, headers={"range": "bytes=0-1"})
            assert (r.status_code, r.headers["content-length"]) == (200, "1000")


async def test_a_file_changed_on_disk_gets_a_new_etag(
    running_server: RunServer, site: Path
) -> None:
    async with running_server(make_app(site)) as server, httpx.AsyncClient() as client:
        url = f"{server.url}/data.bin"
        first = await client.get(url)
        path = site / "data.bin"
        path.write_bytes(b"changed!")
        # Same second and even the same size must not hide the change: mtime_ns counts.
        stat = os.stat(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
        second = await client.get(url, headers={"if-none-match": first.headers["etag"]})
        assert second.status_code == 200 and second.content == b"changed!"
        assert second.headers["etag"] != first.headers["etag"]
        third = await client.get(url, headers={"if-none-match": second.headers["etag"]})
        assert third.status_code == 304


TRAVERSAL = [
    "/../outside.txt",
    "/..%2foutside.txt",
    "/%2e%2e/outside.txt",
    "/%2E%2E%2Foutside.txt",
    "/docs/../../outside.txt",
    "/docs/%2e%2e/%2e%2e/outside.txt",
    "/.%2e/outside.txt",
    "/docs%2f..%2f..%2foutside.txt",
    "/..\\outside.txt",
    "/%5c..%5coutside.txt",
    "/docs/..%5c..%5coutside.txt",
    "/%00/data.bin",
    "/data.bin%00.txt",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/C:%5cWindows%5cwin.ini",
    "/escape",
    "/.env",
    "/%2eenv",
    "/docs/.%2e/.env",
    "/.git/config",
    "/%c0%ae%c0%ae/outside.txt",
]


async def test_no_way_out_of_the_folder_with_curl_path_as_is(
    running_server: RunServer, site: Path
) -> None:
    async with running_server(make_app(site)) as server:
        for target in TRAVERSAL:
            status, _, body = await run_curl("--path-as-is", f"{server.url}{target}")
            assert status in (400, 404), (target, status)
            assert b"outside the root" not in body and b"SECRET" not in body, target
            assert b"root:" not in body, target
        # And what must work still does: an in-root symlink, .well-known (RFC 8615).
        assert (await run_curl(f"{server.url}/inner-link"))[2] == BODY
        assert (await run_curl(f"{server.url}/.well-known/security.txt"))[0] == 200


async def test_symlinks_and_hidden_files_when_asked(running_server: RunServer, site: Path) -> None:
    app = make_app(site, follow_symlinks=True, hidden=True)
    async with running_server(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/escape")).text == "outside the root"
        assert (await client.get("/.env")).text == "SECRET=1"
        # The canonical path still refuses to climb, whatever the options.
        raw = await exchange(
            server.port, request_bytes("GET", "/../outside.txt", [("connection", "close")])
        )
        assert raw.startswith(b"HTTP/1.1 400")


async def test_index_redirect_and_the_mount_at_root_falling_through(
    running_server: RunServer, site: Path
) -> None:
    async with running_server(make_app(site)) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            # Routes on the app win over the mount at "/", whatever the order.
            assert (await client.get("/api/ping")).text == "pong"
            r = await client.get("/docs")
            assert (r.status_code, r.headers["location"]) == (307, "/docs/")
            assert (await client.get("/docs/")).text == "<h1>docs</h1>"
            r = await client.get("/missing.txt")
            assert r.status_code == 404
            # A path the API takes for POST only: its 405, not the mount's 404.
            r = await client.get("/api/login")
            assert (r.status_code, r.headers["allow"]) == (405, "POST")
            r = await client.delete("/style.css")
            assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
            r = await client.get("/download")
            assert r.content == BODY
            assert r.headers["content-disposition"] == (
                "attachment; filename=\"donn?es.bin\"; filename*=UTF-8''donn%C3%A9es.bin"
            )
        # "//host/x" as a folder must not redirect off-site.
        (site / "evil.example").mkdir()
        raw = await exchange(
            server.port, request_bytes("GET", "//evil.example", [("connection", "close")])
        )
        (response,), _ = parse_responses(raw, ["GET"])
        assert response.headers["location"] == "/evil.example/"


async def test_precompressed_siblings(running_server: RunServer, site: Path) -> None:
    css = (site / "style.css").read_bytes()
    app = make_app(site, precompressed=True, max_age=3600, immutable=True)
    async with running_server(app) as server:
        url = f"{server.url}/style.css"
        status, headers, body = await run_curl("-H", "Accept-Encoding: gzip, br", url)
        assert headers["content-encoding"] == "br" and brotli.decompress(body) == css
        assert headers["vary"] == "Accept-Encoding"
        assert headers["content-type"] == "text/css; charset=utf-8"
        assert headers["cache-control"] == "public, max-age=3600, immutable"
        status, headers, body = await run_curl("-H", "Accept-Encoding: gzip", url)
        assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == css
        br_etag = (await run_curl("-H", "Accept-Encoding: br", url))[1]["etag"]
        assert br_etag != headers["etag"]  # one validator per representation
        status, headers, body = await run_curl("-H", "Accept-Encoding: br;q=0, gzip;q=0", url)
        assert "content-encoding" not in headers and body == css
        assert headers["vary"] == "Accept-Encoding"
        status, headers, body = await run_curl("--compressed", url)  # curl decodes
        assert body == css
        # A Range is of the file itself.
        status, headers, body = await run_curl("-H", "Accept-Encoding: gzip", "-r", "0-3", url)
        assert (status, body) == (206, css[:4]) and "content-encoding" not in headers


async def test_large_file_by_sendfile_and_over_tls_in_chunks(
    running_server: RunServer, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "big.bin").write_bytes(data)
    (tmp_path / "index.html").write_text("<h1>files</h1>")
    app = H3()
    app.mount("/files", StaticFiles(tmp_path))
    async with running_server(app) as server, httpx.AsyncClient() as client:
        r = await client.get(f"{server.url}/files")  # the mount's own folder: to its slash
        assert (r.status_code, r.headers["location"]) == (307, "/files/")
        assert (await client.get(f"{server.url}/files/")).text == "<h1>files</h1>"
        r = await client.get(f"{server.url}/files/big.bin")
        assert r.content == data
        r = await client.get(f"{server.url}/files/big.bin", headers={"range": "bytes=1000000-"})
        assert r.content == data[1000000:]
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    tls = {"ssl_certfile": str(tmp_path / "cert.pem"), "ssl_keyfile": str(tmp_path / "key.pem")}
    async with running_server(app, **tls) as server:
        async with httpx.AsyncClient(verify=context) as client:
            r = await client.get(f"https://127.0.0.1:{server.port}/files/big.bin")
            assert r.content == data


async def test_file_response_in_the_test_client(autojump_clock: MockClock, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    app = H3()

    @app.get("/a")
    async def a(event: H3Event) -> FileResponse:
        return FileResponse(tmp_path / "a.txt", max_age=60)

    @app.get("/missing")
    async def missing(event: H3Event) -> FileResponse:
        return FileResponse(tmp_path / "nope.txt")

    async with TestClient(app) as client:
        r = await client.get("/a")
        assert (r.status, r.text) == (200, "hello")
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.headers["cache-control"] == "public, max-age=60"
        r = await client.get("/a", headers={"range": "bytes=1-2"})
        assert (r.status, r.text) == (206, "el")
        assert (await client.get("/missing")).status == 404
    with pytest.raises(ValueError, match="not a directory"):
        StaticFiles(tmp_path / "a.txt")


async def test_the_descriptor_survives_middleware_that_adds_headers(
    running_server: RunServer, site: Path
) -> None:
    # CORS puts its headers on the event, so the app answers with a copy of the
    # FileResponse: the open file must go with the copy, not be closed with the original.
    app = H3()
    app.use(cors(origins="*"))
    app.use(Sessions(secret="k" * 32))
    app.mount("/", StaticFiles(site))
    async with running_server(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        for _ in range(20):
            r = await client.get("/data.bin", headers={"origin": "https://a.example"})
            assert r.content == BODY and r.headers["access-control-allow-origin"] == "*"
            r = await client.get("/style.css")
            assert r.text.startswith("body { color: red; }")
