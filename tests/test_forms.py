"""event.form(): urlencoded and multipart forms through the TestClient, their limits, and
every way a multipart body can be wrong.

Real clients (httpx, curl, a browser) on sockets are in test_forms_sockets.py and
test_examples_upload.py; validation in test_validation.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers import parse_responses, read_until_eof, request_bytes
from trio.testing import MockClock

from trio_h3 import H3, FormData, H3Event, UploadFile
from trio_h3.testing import RequestArgs, TestClient

BOUNDARY = "d1b2c3d4e5f6a7b8"


def describe(form: FormData) -> list[list[Any]]:
    """The form as JSON: ``[name, value]`` for text, ``[name, {file...}]`` for files."""
    out: list[list[Any]] = []
    for name, value in form.items():
        if isinstance(value, str):
            out.append([name, value])
        else:
            out.append([name, describe_file(value)])
    return out


def describe_file(file: UploadFile) -> dict[str, Any]:
    return {
        "filename": file.filename,
        "content_type": file.content_type,
        "size": file.size,
        "in_memory": file.in_memory,
    }


def multipart(parts: list[tuple[str, bytes]], boundary: str = BOUNDARY) -> bytes:
    """A multipart body by hand: each part is its header block (lines) and its content."""
    delimiter = b"--" + boundary.encode()
    body = b"".join(
        delimiter + b"\r\n" + head.encode() + b"\r\n\r\n" + data + b"\r\n" for head, data in parts
    )
    return body + delimiter + b"--\r\n"


def form_headers(boundary: str = BOUNDARY) -> dict[str, str]:
    return {"content-type": f"multipart/form-data; boundary={boundary}"}


SMALL = multipart(
    [
        ('Content-Disposition: form-data; name="title"', b"Hello"),
        ('Content-Disposition: form-data; name="tag"', b"a"),
        (
            'Content-Disposition: form-data; name="doc"; filename="notes.txt"\r\n'
            "Content-Type: text/plain",
            b"line one\r\nline two",
        ),
    ]
)
SMALL_FORM = [
    ["title", "Hello"],
    ["tag", "a"],
    ["doc", {"filename": "notes.txt", "content_type": "text/plain", "size": 18, "in_memory": True}],
]


def make_app(spool: Path) -> H3:
    app = H3()

    @app.post("/form", max_body_size=64 * 2**20)
    async def form(event: H3Event) -> list[list[Any]]:
        return describe(await event.form(spool_dir=spool))

    @app.post("/spooled", max_body_size=64 * 2**20)
    async def spooled(event: H3Event) -> list[list[Any]]:
        return describe(await event.form(spool_dir=str(spool), spool_max_size=0))

    @app.post("/limited")
    async def limited(event: H3Event) -> list[list[Any]]:
        form = await event.form(max_fields=2, max_files=1, max_field_size=10)
        return describe(form)

    @app.post("/read-twice")
    async def read_twice(event: H3Event) -> dict[str, bool]:
        first = await event.form()
        return {"same": first is await event.form()}

    @app.post("/body-after-form")
    async def body_after_form(event: H3Event) -> bytes:
        await event.form()
        return await event.body()

    @app.post("/form-after-body")
    async def form_after_body(event: H3Event) -> list[list[Any]]:
        await event.body()
        return describe(await event.form(spool_dir=spool))

    return app


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path


# -- urlencoded -------------------------------------------------------------------------------


async def test_urlencoded_keeps_repeated_keys_in_order(
    autojump_clock: MockClock, spool: Path
) -> None:
    async with TestClient(make_app(spool)) as client:
        r = await client.post(
            "/form", data={"tag": ["a", "b"], "name": "Ada Lovelace", "empty": ""}
        )
        assert r.json() == [["tag", "a"], ["tag", "b"], ["name", "Ada Lovelace"], ["empty", ""]]
        r = await client.post(
            "/form",
            content=b"k=1&k=2&flag&sp=a+b%20c&u=%C3%A9t%C3%A9",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.json() == [["k", "1"], ["k", "2"], ["flag", ""], ["sp", "a b c"], ["u", "été"]]


async def test_urlencoded_charset_comes_from_the_charset_field(
    autojump_clock: MockClock, spool: Path
) -> None:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    async with TestClient(make_app(spool)) as client:
        # HTML §4.10.21.8: _charset_ names the encoding the browser used.
        r = await client.post("/form", content=b"u=%E9t%E9&_charset_=ISO-8859-1", headers=headers)
        assert r.json() == [["u", "été"], ["_charset_", "ISO-8859-1"]]
        # Invalid UTF-8 is replaced (the WHATWG "UTF-8 decode"), never a 500.
        r = await client.post("/form", content=b"u=%FF", headers=headers)
        assert r.json() == [["u", "\ufffd"]]
        r = await client.post("/form", content=b"_charset_=klingon&a=1", headers=headers)
        assert r.status == 400


async def test_urlencoded_limits(autojump_clock: MockClock, spool: Path) -> None:
    async with TestClient(make_app(spool)) as client:
        assert (await client.post("/limited", data={"a": "1", "b": "2"})).status == 200
        r = await client.post("/limited", data={"a": "1", "b": "2", "c": "3"})
        assert (r.status, r.json()["message"], r.json()["data"]) == (
            413,
            "Too many form fields",
            {"limit": 2},
        )
        r = await client.post("/limited", data={"a": "x" * 11})
        assert (r.status, r.json()["data"]) == (413, {"field": "a", "limit": 10})
        # 1000 fields by default (Starlette's, Django's, PHP's).
        r = await client.post("/form", data=[(f"f{i}", "v") for i in range(1000)])
        assert r.status == 200 and len(r.json()) == 1000
        r = await client.post("/form", data=[(f"f{i}", "v") for i in range(1001)])
        assert r.status == 413


async def test_a_body_that_is_no_form_is_415(autojump_clock: MockClock, spool: Path) -> None:
    async with TestClient(make_app(spool)) as client:
        for headers in ({"content-type": "application/json"}, {}):
            r = await client.post("/form", content=b"{}", headers=headers)
            assert r.status == 415
            assert r.json()["message"].startswith("Expected a form")
            assert r.headers["content-type"] == "application/json"


# -- multipart: what arrives --------------------------------------------------------------------


async def test_multipart_fields_and_files(autojump_clock: MockClock, spool: Path) -> None:
    async with TestClient(make_app(spool)) as client:
        r = await client.post("/form", content=SMALL, headers=form_headers())
        assert r.json() == SMALL_FORM
        r = await client.post(
            "/form",
            data={"tag": ["x", "y"]},
            files=[
                ("up", ("a.png", b"\x89PNG", "image/png")),
                ("up", ("b.bin", b"", "application/octet-stream")),
            ],
        )
        assert r.json() == [
            ["tag", "x"],
            ["tag", "y"],
            [
                "up",
                {"filename": "a.png", "content_type": "image/png", "size": 4, "in_memory": True},
            ],
            [
                "up",
                {
                    "filename": "b.bin",
                    "content_type": "application/octet-stream",
                    "size": 0,
                    "in_memory": True,
                },
            ],
        ]
    assert os.listdir(spool) == []


async def test_non_ascii_names_and_filenames(autojump_clock: MockClock, spool: Path) -> None:
    async with TestClient(make_app(spool)) as client:
        r = await client.post(
            "/form",
            data={"ключ": "значение"},
            files={"名前": ("ファイル 1.txt", "中身".encode(), "text/plain")},
        )
        assert r.json() == [
            ["ключ", "значение"],
            [
                "名前",
                {
                    "filename": "ファイル 1.txt",
                    "content_type": "text/plain",
                    "size": 6,
                    "in_memory": True,
                },
            ],
        ]


async def test_filenames_are_taken_as_given(autojump_clock: MockClock, spool: Path) -> None:
    # RFC 7578 §4.2: a Windows path (old IE), a path with dots, quotes escaped the WHATWG
    # way (%22): all arrive as sent, for the handler to make safe.
    body = multipart(
        [
            ('Content-Disposition: form-data; name="a"; filename="C:\\Users\\ada\\x.txt"', b"1"),
            ('Content-Disposition: form-data; name="b"; filename="../../etc/passwd"', b"2"),
            ('Content-Disposition: form-data; name="c"; filename="say %22hi%22.txt"', b"3"),
            ('Content-Disposition: form-data; name="d"; filename=""', b""),
        ]
    )
    async with TestClient(make_app(spool)) as client:
        r = await client.post("/form", content=body, headers=form_headers())
        names = [value["filename"] for _, value in r.json()]
        assert names == ["C:\\Users\\ada\\x.txt", "../../etc/passwd", 'say "hi".txt', ""]
        # RFC 7578 §4.4: a part without a Content-Type is text/plain.
        assert {value["content_type"] for _, value in r.json()} == {"text/plain"}


async def test_text_charset_from_the_part_or_the_charset_field(
    autojump_clock: MockClock, spool: Path
) -> None:
    body = multipart(
        [
            ('Content-Disposition: form-data; name="a"', "été".encode("latin-1")),
            (
                'Content-Disposition: form-data; name="b"\r\n'
                "Content-Type: text/plain; charset=utf-8",
                "été".encode(),
            ),
            ('Content-Disposition: form-data; name="_charset_"', b"iso-8859-1"),
        ]
    )
    async with TestClient(make_app(spool)) as client:
        r = await client.post("/form", content=body, headers=form_headers())
        assert r.json() == [["a", "été"], ["b", "été"], ["_charset_", "iso-8859-1"]]
        # Without _charset_: UTF-8, invalid bytes replaced.
        body = multipart([('Content-Disposition: form-data; name="a"', b"\xe9")])
        r = await client.post("/form", content=body, headers=form_headers())
        assert r.json() == [["a", "\ufffd"]]


async def test_the_form_is_parsed_once_and_the_body_is_then_gone(
    autojump_clock: MockClock, spool: Path
) -> None:
    async with TestClient(make_app(spool)) as client:
        r = await client.post("/read-twice", content=SMALL, headers=form_headers())
        assert r.json() == {"same": True}
        r = await client.post("/body-after-form", content=SMALL, headers=form_headers())
        assert r.status == 500
        # Read whole first, the body is still a form.
        r = await client.post("/form-after-body", content=SMALL, headers=form_headers())
        assert r.json() == SMALL_FORM


async def test_a_streamed_chunked_upload_is_a_form_too(
    autojump_clock: MockClock, spool: Path
) -> None:
    async def pieces() -> Any:
        for index in range(0, len(SMALL), 7):
            yield SMALL[index : index + 7]

    async with TestClient(make_app(spool)) as client:
        r = await client.post("/form", content=pieces(), headers=form_headers())
        assert r.json() == SMALL_FORM


# -- UploadFile ---------------------------------------------------------------------------------


async def test_upload_file_reads_seeks_and_saves_in_memory_and_spooled(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    spool, saved = tmp_path / "spool", tmp_path / "saved"
    spool.mkdir()
    saved.mkdir()
    kept: list[UploadFile] = []
    content = bytes(range(256)) * 8192  # 2 MiB: past the default spool_max_size
    app = H3()

    @app.post("/", max_body_size=8 * 2**20)
    async def upload(event: H3Event) -> dict[str, Any]:
        form = await event.form(spool_dir=str(spool))
        small, large = form["small"], form["large"]
        assert isinstance(small, UploadFile) and isinstance(large, UploadFile)
        kept.extend([small, large])
        assert len(os.listdir(spool)) == 1  # only the large one went to disk
        out: dict[str, Any] = {"memory": [small.in_memory, large.in_memory]}
        for file in (small, large):
            head = await file.read(4)
            assert file.tell() == 4
            assert await file.seek(-3, os.SEEK_END) == file.size - 3
            tail = await file.read()
            await file.seek(1)
            assert await file.save(saved / file.filename) == file.size
            assert file.tell() == 1  # save() keeps the position
            out[file.filename] = [head.hex(), tail.hex(), (await file.read(2)).hex()]
        return out

    async with TestClient(app) as client:
        r = await client.post(
            "/", files={"small": ("s.bin", content[:1000]), "large": ("l.bin", content)}
        )
        assert r.json() == {
            "memory": [True, False],
            "s.bin": ["00010203", content[997:1000].hex(), "0102"],
            "l.bin": ["00010203", content[-3:].hex(), "0102"],
        }
    assert (saved / "s.bin").read_bytes() == content[:1000]
    assert (saved / "l.bin").read_bytes() == content
    assert os.listdir(spool) == []  # removed when the request ended
    for file in kept:
        with pytest.raises(RuntimeError, match="removed when its request ended"):
            await file.read()


async def test_spooled_files_are_removed_when_the_request_ends(
    autojump_clock: MockClock, spool: Path
) -> None:
    async with TestClient(make_app(spool)) as client:
        r = await client.post("/spooled", files=[("f", (f"{i}.txt", b"data")) for i in range(5)])
        assert [value["in_memory"] for _, value in r.json()] == [False] * 5
    assert os.listdir(spool) == []


# -- multipart: limits ---------------------------------------------------------------------------


async def test_multipart_limits_are_413_and_close_the_connection(
    autojump_clock: MockClock, spool: Path
) -> None:
    async with TestClient(make_app(spool), max_body_size=10_000) as client:
        cases: list[tuple[RequestArgs, str]] = [
            (
                {"data": {"a": "1", "b": "2", "c": "3"}, "files": {"f": b"x"}},
                "Too many form fields",
            ),
            ({"files": [("f", ("1", b"x")), ("f", ("2", b"y"))]}, "Too many files"),
            ({"data": {"a": "x" * 11}, "files": {"f": b"x"}}, "Form field too large"),
        ]
        for args, message in cases:
            r = await client.post("/limited", **args)
            assert (r.status, r.json()["message"]) == (413, message)
        # Within every limit:
        r = await client.post("/limited", data={"a": "x" * 10, "b": "y"}, files={"f": b"z" * 5000})
        assert r.status == 200
        # Over the body limit (the server's, here 10,000 bytes): 413 before any parsing.
        r = await client.post("/limited", files={"f": b"z" * 10_001})
        assert (r.status, r.json()["data"]) == (413, {"limit": 10_000})
        # Refused mid-body, the rest unread: the answer says close, and closes.
        stream = await client.open_stream()
        body = multipart(
            [(f'Content-Disposition: form-data; name="f{i}"', b"v") for i in range(3)]
            + [('Content-Disposition: form-data; name="big"', b"x" * 5000)]
        )
        await stream.send_all(request_bytes("POST", "/limited", list(form_headers().items()), body))
        (response,), clean = parse_responses(await read_until_eof(stream), ["POST"])
        assert response.status == 413 and response.headers["connection"] == "close" and clean
        # Junk early in a long body: 400 at once, the rest unread, the same clean close.
        stream = await client.open_stream()
        junk = f"--{BOUNDARY}XX\r\n".encode() + b"x" * 9000
        await stream.send_all(request_bytes("POST", "/limited", list(form_headers().items()), junk))
        (response,), clean = parse_responses(await read_until_eof(stream), ["POST"])
        assert response.status == 400 and response.headers["connection"] == "close" and clean
    assert os.listdir(spool) == []


async def test_default_file_limit_is_100(autojump_clock: MockClock, spool: Path) -> None:
    async with TestClient(make_app(spool)) as client:
        files = [("f", (f"{i}", b"")) for i in range(100)]
        assert (await client.post("/form", files=files)).status == 200
        r = await client.post("/form", files=[*files, ("f", ("100", b""))])
        assert (r.status, r.json()["data"]) == (413, {"limit": 100})


# -- multipart: malformed bodies -----------------------------------------------------------------


async def post_raw(client: TestClient, body: bytes, content_type: str) -> tuple[int, Any]:
    r = await client.post("/form", content=body, headers={"content-type": content_type})
    return r.status, r.json()


async def test_a_body_truncated_at_every_byte_is_400(
    autojump_clock: MockClock, spool: Path
) -> None:
    complete = len(SMALL) - len(b"\r\n")  # the final CRLF is not required
    async with TestClient(make_app(spool)) as client:
        for length in range(len(SMALL) + 1):
            status, body = await post_raw(client, SMALL[:length], form_headers()["content-type"])
            if length >= complete:
                assert (status, body) == (200, SMALL_FORM), length
            else:
                assert status == 400, (length, body)
                assert body["message"] == "Malformed multipart body", length
    assert os.listdir(spool) == []


async def test_a_body_cut_short_by_the_client_at_every_byte_is_400(
    autojump_clock: MockClock, spool: Path
) -> None:
    async with TestClient(make_app(spool)) as client:
        raw = request_bytes("POST", "/spooled", list(form_headers().items()), SMALL)
        head = len(raw) - len(SMALL)
        for length in range(len(SMALL)):
            stream = await client.open_stream()
            await stream.send_all(raw[: head + length])
            await stream.send_eof()
            data = await read_until_eof(stream)
            (response,), _ = parse_responses(data, ["POST"])
            assert response.status == 400, length
    assert os.listdir(spool) == []


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        # RFC 2046 §5.1.1: 1 to 70 characters.
        (multipart([], "b" * 71), "multipart/form-data; boundary=" + "b" * 71, "Invalid multipart"),
        (b"", 'multipart/form-data; boundary="ends with space "', "Invalid multipart"),
        (SMALL, "multipart/form-data", "multipart/form-data without a boundary"),
        (SMALL, "multipart/form-data; boundary=", "multipart/form-data without a boundary"),
        # No boundary at all, only line breaks.
        (b"\r\n" * 50, f"multipart/form-data; boundary={BOUNDARY}", "Malformed multipart body"),
        (b"\r\n", f"multipart/form-data; boundary={BOUNDARY}", "Malformed multipart body"),
        # The final boundary is missing.
        (
            SMALL[: SMALL.rindex(b"--" + BOUNDARY.encode())],
            form_headers()["content-type"],
            "Malformed",
        ),
        # Junk right after a boundary, after the first one, or a bare LF line break.
        (
            SMALL.replace(
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="tag"'.encode(),
                f"--{BOUNDARY}XX\r\n".encode(),
            ),
            form_headers()["content-type"],
            "Malformed",
        ),
        (f"--{BOUNDARY}junk\r\n".encode() + SMALL, form_headers()["content-type"], "Malformed"),
        (
            SMALL.replace(b'name="title"\r\n\r\n', b'name="title"\n\n'),
            form_headers()["content-type"],
            "Malformed",
        ),
        # A part without Content-Disposition, or not form-data.
        (
            multipart([("Content-Type: text/plain", b"x")]),
            form_headers()["content-type"],
            "Malformed",
        ),
        (
            multipart([('Content-Disposition: attachment; name="a"', b"x")]),
            form_headers()["content-type"],
            "Malformed",
        ),
    ],
)
async def test_malformed_multipart_is_400(
    autojump_clock: MockClock, spool: Path, body: bytes, content_type: str, message: str
) -> None:
    async with TestClient(make_app(spool)) as client:
        status, error = await post_raw(client, body, content_type)
        assert status == 400 and error["message"].startswith(message), error


async def test_a_70_character_boundary_is_fine(autojump_clock: MockClock, spool: Path) -> None:
    boundary = "'()+_,-./:=?" + "b" * 58
    assert len(boundary) == 70
    async with TestClient(make_app(spool)) as client:
        r = await client.post(
            "/form", data={"a": "1"}, files={"f": b"x"}, headers=form_headers(f'"{boundary}"')
        )
        assert r.status == 200 and r.json()[0] == ["a", "1"]


async def test_a_part_header_block_past_its_limit_is_400(
    autojump_clock: MockClock, spool: Path
) -> None:
    long_line = 'Content-Disposition: form-data; name="a"; filename="' + "x" * 5000 + '"'
    many = 'Content-Disposition: form-data; name="a"' + "".join(f"\r\nX-H{i}: v" for i in range(8))
    async with TestClient(make_app(spool)) as client:
        for head in (long_line, many):
            status, error = await post_raw(
                client, multipart([(head, b"x")]), form_headers()["content-type"]
            )
            assert (status, error["message"]) == (400, "Part header block too large")
        # Up to the limit it is a form: 4 KiB lines, 8 of them.
        fine = (
            'Content-Disposition: form-data; name="a"; filename="'
            + "x" * 4000
            + '"'
            + "".join(f"\r\nX-H{i}: v" for i in range(7))
        )
        status, form = await post_raw(
            client, multipart([(fine, b"x")]), form_headers()["content-type"]
        )
        assert status == 200 and form[0][1]["filename"] == "x" * 4000


# -- the request's lifetime ----------------------------------------------------------------------


async def wait_until_served(client: TestClient) -> None:
    with trio.fail_after(30):
        while client.state.connections:
            await trio.sleep(0.01)


async def test_a_disconnect_mid_upload_leaves_no_temp_file(
    autojump_clock: MockClock, spool: Path
) -> None:
    body = multipart(
        [('Content-Disposition: form-data; name="f"; filename="big.bin"', b"x" * 200_000)]
    )
    async with TestClient(make_app(spool)) as client:
        stream = await client.open_stream()
        await stream.send_all(
            request_bytes("POST", "/spooled", list(form_headers().items()), body)[:100_000]
        )
        with trio.fail_after(30):
            while not os.listdir(spool):
                await trio.sleep(0.01)  # the upload is being spooled to disk
        await stream.aclose()
        await wait_until_served(client)
        assert os.listdir(spool) == []
        # The server carries on.
        r = await client.post("/spooled", files={"f": b"data"})
        assert r.status == 200


async def test_a_trickling_upload_meets_the_body_deadline_and_leaves_no_file(
    autojump_clock: MockClock, spool: Path
) -> None:
    body = multipart([('Content-Disposition: form-data; name="f"; filename="f"', b"x" * 100)])
    async with TestClient(make_app(spool), body_timeout=5, request_head_timeout=10) as client:
        stream = await client.open_stream()
        raw = request_bytes("POST", "/spooled", list(form_headers().items()), body)
        head_end = raw.index(b"\r\n\r\n") + 4
        await stream.send_all(raw[: head_end + 80])
        start = trio.current_time()

        async def trickle() -> None:
            for byte in raw[head_end + 80 :]:
                await trio.sleep(2)
                try:
                    await stream.send_all(bytes([byte]))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trickle)
            data = await read_until_eof(stream)
            nursery.cancel_scope.cancel()
        (response,), _ = parse_responses(data, ["POST"])
        assert response.status == 408
        assert trio.current_time() - start == pytest.approx(5, abs=0.01)
        await wait_until_served(client)
    assert os.listdir(spool) == []
