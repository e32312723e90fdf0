"""Forms from real clients over TCP: httpx and curl against a real server on 127.0.0.1.

What the TestClient cannot show: the bytes real clients send (curl's ``-F`` with
``Expect: 100-continue``, httpx's encoder), a reset mid-upload, and the server's memory
while a 100 MiB file goes through.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from helpers import RunServer, open_connection, request_bytes, reset

from trio_h3 import H3, H3Event, UploadFile

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")

CHUNK = 1024 * 1024


async def digest(file: UploadFile) -> str:
    sha = hashlib.sha256()
    while chunk := await file.read(CHUNK):
        sha.update(chunk)
    return sha.hexdigest()


def make_app(spool: Path) -> H3:
    app = H3()

    @app.post("/upload", max_body_size=300 * 2**20)
    async def upload(event: H3Event) -> list[list[Any]]:
        form = await event.form(spool_dir=str(spool))
        out: list[list[Any]] = []
        for name, value in form.items():
            if isinstance(value, str):
                out.append([name, value])
            else:
                out.append(
                    [
                        name,
                        {
                            "filename": value.filename,
                            "content_type": value.content_type,
                            "size": value.size,
                            "sha256": await digest(value),
                        },
                    ]
                )
        return out

    @app.post("/spooled", max_body_size=300 * 2**20)
    async def spooled(event: H3Event) -> int:
        form = await event.form(spool_dir=str(spool), spool_max_size=0)
        return len(form)

    return app


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_entry(filename: str, content_type: str, data: bytes) -> dict[str, Any]:
    return {
        "filename": filename,
        "content_type": content_type,
        "size": len(data),
        "sha256": sha(data),
    }


async def test_httpx_uploads(running_server: RunServer, tmp_path: Path) -> None:
    png = os.urandom(300_000)
    async with running_server(make_app(tmp_path)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            # One file.
            r = await client.post("/upload", files={"avatar": ("me.png", png, "image/png")})
            assert r.json() == [["avatar", file_entry("me.png", "image/png", png)]]
            # Many files, a repeated field, fields beside them.
            big = os.urandom(3 * 2**20)  # past spool_max_size: through a temp file
            r = await client.post(
                "/upload",
                data={"tag": ["a", "b", "c"], "title": "holiday"},
                files=[
                    ("photos", ("1.jpg", png, "image/jpeg")),
                    ("photos", ("2.bin", big, "application/octet-stream")),
                    ("photos", ("3.txt", b"three", "text/plain")),
                ],
            )
            assert r.json() == [
                ["tag", "a"],
                ["tag", "b"],
                ["tag", "c"],
                ["title", "holiday"],
                ["photos", file_entry("1.jpg", "image/jpeg", png)],
                ["photos", file_entry("2.bin", "application/octet-stream", big)],
                ["photos", file_entry("3.txt", "text/plain", b"three")],
            ]
            # Non-ASCII names and filenames, and an empty file.
            r = await client.post(
                "/upload",
                data={"名前": "Zoë ✓"},
                files={
                    "файл": ("résumé 2024.pdf", b"%PDF", "application/pdf"),
                    "empty": ("empty.txt", b"", "text/plain"),
                },
            )
            assert r.json() == [
                ["名前", "Zoë ✓"],
                ["файл", file_entry("résumé 2024.pdf", "application/pdf", b"%PDF")],
                ["empty", file_entry("empty.txt", "text/plain", b"")],
            ]
            # An urlencoded form with repeated keys.
            r = await client.post("/upload", data={"k": ["1", "2"], "q": "a b&c"})
            assert r.json() == [["k", "1"], ["k", "2"], ["q", "a b&c"]]
    assert os.listdir(tmp_path) == []


async def curl(*args: str) -> Any:
    result = await trio.run_process(
        ["curl", "--silent", "--show-error", "--max-time", "30", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_curl_form_uploads(running_server: RunServer, tmp_path: Path) -> None:
    spool, files = tmp_path / "spool", tmp_path / "files"
    spool.mkdir()
    files.mkdir()
    small = files / "ノート.txt"
    small.write_bytes(b"hello from curl\n")
    # Over 1 MiB: curl asks "Expect: 100-continue" first.
    large = files / "large.bin"
    large_data = os.urandom(2 * 2**20 + 17)
    large.write_bytes(large_data)
    async with running_server(make_app(spool)) as server:
        url = f"{server.url}/upload"
        form = await curl(
            "-F", "name=Ada",
            "-F", "tag=x",
            "-F", "tag=y",
            "-F", f"doc=@{small};type=text/plain",
            "-F", f"doc=@{large}",
            "-F", "note=<" + str(small),  # a text field read from a file
            url,
        )  # fmt: skip
        assert form == [
            ["name", "Ada"],
            ["tag", "x"],
            ["tag", "y"],
            ["doc", file_entry("ノート.txt", "text/plain", small.read_bytes())],
            ["doc", file_entry("large.bin", "application/octet-stream", large_data)],
            ["note", "hello from curl\n"],
        ]
        # curl -d: urlencoded, repeated keys kept in order.
        form = await curl("-d", "k=1&k=2&k=3&other=%C3%A9", url)
        assert form == [["k", "1"], ["k", "2"], ["k", "3"], ["other", "é"]]
        form = await curl("--data-urlencode", "q=a&b=c", "--data-urlencode", "q=d", url)
        assert form == [["q", "a&b=c"], ["q", "d"]]
    assert os.listdir(spool) == []


async def test_a_reset_mid_upload_leaves_no_temp_file(
    running_server: RunServer, tmp_path: Path
) -> None:
    boundary = "xyzzy"
    head = request_bytes(
        "POST",
        "/spooled",
        [
            ("content-type", f"multipart/form-data; boundary={boundary}"),
            ("content-length", str(10 * 2**20)),
        ],
    )
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="f.bin"\r\n\r\n'
    ).encode()
    async with running_server(make_app(tmp_path)) as server:
        stream = await open_connection(server.port)
        await stream.send_all(head + part + b"x" * 500_000)
        with trio.fail_after(10):
            while not os.listdir(tmp_path):
                await trio.sleep(0.01)  # being spooled
        reset(stream)
        await server.wait_idle()
        assert os.listdir(tmp_path) == []
        # Nothing else was hurt.
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            r = await client.post("/spooled", files={"f": b"x"})
            assert r.json() == 1
    assert os.listdir(tmp_path) == []


def vm_rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# httpx in a child process, so that the measured process holds only the server.
HTTPX_UPLOAD = """
import httpx, json, sys
with open(sys.argv[2], "rb") as f:
    r = httpx.post(sys.argv[1], data={"name": "big"}, files={"blob": ("big.bin", f)}, timeout=120)
print(json.dumps([r.status_code, r.json()]))
"""


@pytest.mark.slow
async def test_a_100_mib_upload_keeps_the_server_rss_flat(
    running_server: RunServer, tmp_path: Path
) -> None:
    spool, files = tmp_path / "spool", tmp_path / "files"
    spool.mkdir()
    files.mkdir()
    size = 100 * 2**20
    blob = files / "big.bin"
    with open(blob, "wb") as f:
        for index in range(size // CHUNK):
            f.write(index.to_bytes(4, "big") * (CHUNK // 4))
    expected = hashlib.sha256(blob.read_bytes()).hexdigest()

    async def upload(path: Path) -> Any:
        result = await trio.run_process(
            [sys.executable, "-c", HTTPX_UPLOAD, f"{server.url}/upload", str(path)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    async with running_server(make_app(spool), bound=120) as server:
        warm = files / "warm.bin"
        warm.write_bytes(os.urandom(4 * 2**20))
        await upload(warm)  # everything imported and allocated once
        before = vm_rss_kib()
        status, form = await upload(blob)
        after = vm_rss_kib()
    assert status == 200
    assert form == [
        ["name", "big"],
        [
            "blob",
            {
                "filename": "big.bin",
                "content_type": "application/octet-stream",
                "size": size,
                "sha256": expected,
            },
        ],
    ]
    # "A few MiB" whatever the upload: at most one spool batch and a few socket reads.
    assert after - before < 8 * 1024, f"RSS grew by {(after - before) / 1024:.1f} MiB"
    assert os.listdir(spool) == []
