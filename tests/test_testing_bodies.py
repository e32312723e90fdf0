"""TestClient request bodies and targets: data=, files=, json=, content=, params=, headers=.

Each is checked against an echo app built with trio_h3 (it returns what it received),
and, where httpx has the same argument, against httpx sending the same request to the
same app over a real socket: the handler must see the same thing.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import trio
from helpers import RunServer
from trio.testing import MockClock

from trio_h3 import H3, H3Event
from trio_h3.testing import TestClient
from trio_h3.testing.encoding import encode_multipart

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")

BOUNDARY = "b0undary-for-the-test"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def echo_app() -> H3:
    """Every method on every path: what the handler received, as JSON."""
    app = H3()

    @app.all("/**")
    async def echo(event: H3Event) -> dict[str, Any]:
        chunks = [chunk async for chunk in event.stream()]
        return {
            "method": event.method,
            "path": event.raw_path,
            "query": event.query_string,
            "params": [list(pair) for pair in event.query.items()],
            "headers": [[name, value] for name, value in event.headers.items()],
            "body": b"".join(chunks).decode("latin-1"),
            "chunks": [chunk.decode("latin-1") for chunk in chunks],
            "cookies": event.cookies,
            "scheme": event.scheme,
            "url": str(event.url),
        }

    return app


def header(echo: dict[str, Any], name: str) -> str | None:
    """The first value of ``name`` the handler received."""
    return next((value for key, value in echo["headers"] if key == name), None)


# Headers that are the same request whoever sends it (httpx adds its user-agent etc.).
COMPARED = ("content-type", "content-length", "transfer-encoding", "cookie")


def essence(echo: dict[str, Any]) -> dict[str, Any]:
    """What must be identical between httpx and TestClient for the same request."""
    return {
        "method": echo["method"],
        "path": echo["path"],
        "query": echo["query"],
        "body": echo["body"],
        "cookies": echo["cookies"],
        "headers": {name: header(echo, name) for name in COMPARED},
    }


async def through_both(
    running_server: RunServer, method: str, url: str, **kwargs: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The echo of the same request sent by TestClient and by httpx over a socket."""
    app = echo_app()
    async with TestClient(app) as client:
        ours = (await client.request(method, url, **kwargs)).json()
    with trio.fail_after(10):
        async with running_server(app) as server:
            async with httpx.AsyncClient(base_url=server.url) as real:
                theirs = (await real.request(method, url, **kwargs)).json()
    return ours, theirs


@dataclass
class Part:
    """One part of a multipart/form-data body, as a server would parse it."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


_PARAM = re.compile(r'; *([a-z*]+)="((?:[^"\\]|\\.)*)"')


def _unescape(value: str) -> str:
    # The WHATWG/httpx escaping reversed: %22 and %XX controls, doubled backslashes.
    value = re.sub(r"%([01][0-9A-F]|22)", lambda m: chr(int(m.group(1), 16)), value)
    return value.replace("\\\\", "\\")


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    """A strict RFC 7578 reader: fails on anything out of place."""
    match = re.search(r"boundary=([^;]+)", content_type)
    assert match, content_type
    delimiter = b"--" + match.group(1).strip('"').encode()
    close = delimiter + b"--\r\n"
    assert body.endswith(close)
    chunks = body[: -len(close)].split(delimiter + b"\r\n")
    assert chunks[0] == b""
    parts = []
    for chunk in chunks[1:]:
        assert chunk.endswith(b"\r\n")
        head, sep, data = chunk[:-2].partition(b"\r\n\r\n")
        assert sep
        headers = {}
        for line in head.decode("utf-8").split("\r\n"):
            name, _, value = line.partition(": ")
            headers[name.lower()] = value
        disposition = headers["content-disposition"]
        assert disposition.startswith("form-data; ")
        params = {key: _unescape(value) for key, value in _PARAM.findall(disposition)}
        parts.append(
            Part(params["name"], params.get("filename"), headers.get("content-type"), data)
        )
    return parts


# -- data= --------------------------------------------------------------------------------


async def test_data_dict_is_urlencoded(autojump_clock: MockClock) -> None:
    async with TestClient(echo_app()) as client:
        echo = (await client.post("/form", data={"name": "Ada Lovelace", "lang": "é&="})).json()
    assert header(echo, "content-type") == "application/x-www-form-urlencoded"
    assert echo["body"] == "name=Ada+Lovelace&lang=%C3%A9%26%3D"
    assert header(echo, "content-length") == str(len(echo["body"]))


async def test_data_repeated_keys_are_kept_in_order(autojump_clock: MockClock) -> None:
    async with TestClient(echo_app()) as client:
        as_list = (await client.post("/", data={"tag": ["a", "b"], "n": 1})).json()
        as_pairs = (await client.post("/", data=[("tag", "a"), ("n", 1), ("tag", "b")])).json()
    assert as_list["body"] == "tag=a&tag=b&n=1"
    assert as_pairs["body"] == "tag=a&n=1&tag=b"


async def test_data_values_are_spelled_like_httpx(autojump_clock: MockClock) -> None:
    async with TestClient(echo_app()) as client:
        echo = (await client.post("/", data={"yes": True, "no": False, "none": None})).json()
    assert echo["body"] == "yes=true&no=false&none="


async def test_data_is_what_httpx_sends(running_server: RunServer) -> None:
    data = {"name": "Ada Lovelace", "tag": ["x", "y z"], "ok": True, "ü": "ß"}
    ours, theirs = await through_both(running_server, "POST", "/form", data=data)
    assert essence(ours) == essence(theirs)


async def test_an_empty_form_sends_no_body(autojump_clock: MockClock) -> None:
    async with TestClient(echo_app()) as client:
        echo = (await client.post("/", data={})).json()
    assert echo["body"] == ""
    assert header(echo, "content-type") is None
    assert header(echo, "content-length") == "0"  # POST, PUT, PATCH: 0, as httpx


# -- files= -------------------------------------------------------------------------------


async def test_files_are_multipart(autojump_clock: MockClock) -> None:
    files = {"avatar": ("a.png", b"\x89PNG\r\n\x1a\n", "image/png")}
    async with TestClient(echo_app()) as client:
        echo = (await client.post("/upload", files=files)).json()
    content_type = header(echo, "content-type")
    assert content_type is not None and content_type.startswith("multipart/form-data; boundary=")
    body = echo["body"].encode("latin-1")
    assert header(echo, "content-length") == str(len(body))
    assert parse_multipart(content_type, body) == [
        Part("avatar", "a.png", "image/png", b"\x89PNG\r\n\x1a\n")
    ]


async def test_every_file_form(autojump_clock: MockClock) -> None:
    upload = io.BytesIO(b"from a file object")
    upload.name = "/tmp/dir/report.pdf"
    files: list[tuple[str, Any]] = [
        ("doc", ("notes.txt", b"two-tuple")),  # content type guessed from the name
        ("doc", ("raw.unknownext", b"?")),  # ... or application/octet-stream
        ("obj", upload),  # filename from .name, without its directory
        ("bare", b"just bytes"),  # filename "upload"
        ("text", ("t.txt", "unicode text: ü")),  # str content is sent as UTF-8
        ("field", (None, "no filename")),  # a plain field, no Content-Type
        ("extra", ("e.csv", b"a,b", "text/csv", {"X-Part": "1"})),
    ]
    async with TestClient(echo_app()) as client:
        echo = (await client.post("/", files=files)).json()
    content_type = header(echo, "content-type")
    assert content_type is not None
    body = echo["body"].encode("latin-1")
    assert parse_multipart(content_type, body) == [
        Part("doc", "notes.txt", "text/plain", b"two-tuple"),
        Part("doc", "raw.unknownext", "application/octet-stream", b"?"),
        Part("obj", "report.pdf", "application/pdf", b"from a file object"),
        Part("bare", "upload", "application/octet-stream", b"just bytes"),
        Part("text", "t.txt", "text/plain", "unicode text: ü".encode()),
        Part("field", None, None, b"no filename"),
        Part("extra", "e.csv", "text/csv", b"a,b"),
    ]
    assert b"\r\nX-Part: 1\r\n" in body


async def test_data_and_files_share_one_multipart_body(autojump_clock: MockClock) -> None:
    async with TestClient(echo_app()) as client:
        echo = (
            await client.post(
                "/", data={"title": "Hi", "tag": ["a", "b"]}, files={"f": ("f.txt", b"F")}
            )
        ).json()
    content_type = header(echo, "content-type")
    assert content_type is not None
    parts = parse_multipart(content_type, echo["body"].encode("latin-1"))
    assert [(p.name, p.filename, p.data) for p in parts] == [
        ("title", None, b"Hi"),
        ("tag", None, b"a"),
        ("tag", None, b"b"),
        ("f", "f.txt", b"F"),
    ]


def test_names_are_quoted_and_escaped_like_httpx() -> None:
    name, filename = 'we"ird\\na\r\nme', 'fi"le\x00\x1b.txt'
    _, body = encode_multipart({name: "v"}, {name: (filename, b"x")}, "B")
    assert b'name="we%22ird\\\\na%0D%0Ame"\r\n' in body
    assert b'filename="fi%22le%00\x1b.txt"' in body  # ESC passes, as in httpx
    content_type = "multipart/form-data; boundary=B"
    parts = parse_multipart(content_type, body)
    assert [(p.name, p.filename) for p in parts] == [(name, None), (name, filename)]


def test_non_ascii_names_go_as_utf8() -> None:
    _, body = encode_multipart({"prénom": "Zoë"}, {"fichier": ("résumé.txt", b"x")}, "B")
    assert 'name="prénom"\r\n\r\nZoë\r\n'.encode() in body
    assert 'filename="résumé.txt"'.encode() in body


def test_the_boundary_is_random_and_not_in_the_parts() -> None:
    first, _ = encode_multipart(None, {"f": b"x"})
    second, _ = encode_multipart(None, {"f": b"x"})
    assert first["content-type"] != second["content-type"]
    assert re.fullmatch(r"multipart/form-data; boundary=[0-9a-f]{32}", first["content-type"])


async def test_a_given_boundary_is_kept(autojump_clock: MockClock) -> None:
    async with TestClient(echo_app()) as client:
        echo = (
            await client.post("/", files={"f": b"x"}, headers={"content-type": MULTIPART})
        ).json()
    assert header(echo, "content-type") == MULTIPART
    assert echo["body"].startswith(f"--{BOUNDARY}\r\n")


def test_text_files_are_refused() -> None:
    with pytest.raises(TypeError, match="binary"):
        encode_multipart(None, {"f": io.StringIO("text")})  # type: ignore[arg-type]


async def test_files_are_what_httpx_sends(running_server: RunServer) -> None:
    def files() -> list[tuple[str, Any]]:  # fresh file objects for each client
        upload = io.BytesIO(b"file object \x00\xff")
        upload.name = "up load.bin"
        return [
            ("avatar", ("a.png", b"\x89PNG", "image/png")),
            ("avatar", ("b.png", b"second", "image/png")),
            ("obj", upload),
            ("ünï", ('quo"te.txt', "text")),
        ]

    ours, theirs = await through_both(
        running_server,
        "POST",
        "/upload",
        data={"title": "Hi", "tag": ["a", "b"]},
        files=files(),
        headers={"content-type": MULTIPART},
    )
    assert essence(ours) == essence(theirs)
    # And with each client's own random boundary: the same parsed fields.
    ours, theirs = await through_both(running_server, "POST", "/upload", files=files())
    parsed = [
        parse_multipart(header(echo, "content-type") or "", echo["body"].encode("latin-1"))
        for echo in (ours, theirs)
    ]
    assert parsed[0] == parsed[1]
    assert len(parsed[0]) == 4


# -- json= and content= -----------------------------------------------------------------


async def test_json_is_compact_utf8(autojump_clock: MockClock) -> None:
    async with TestClient(echo_app()) as client:
        echo = (await client.post("/", json={"name": "Zoë", "n": [1, 2]})).json()
    assert echo["body"].encode("latin-1") == '{"name":"Zoë","n":[1,2]}'.encode()
    assert header(echo, "content-type") == "application/json"


async def test_json_and_content_are_what_httpx_sends(running_server: RunServer) -> None:
    for kwargs in (
        {"json": {"name": "Zoë", "n": [1, 2.5, None, True]}},
        {"content": b"\x00raw\xff"},
        {"content": "text é"},
        {"content": b""},
    ):
        ours, theirs = await through_both(running_server, "PUT", "/thing", **kwargs)
        assert essence(ours) == essence(theirs), kwargs


async def test_content_str_is_utf8_without_a_content_type(autojump_clock: MockClock) -> None:
    async with TestClient(echo_app()) as client:
        echo = (await client.post("/", content="é")).json()
    assert echo["body"] == "é".encode().decode("latin-1")
    assert header(echo, "content-type") is None
    assert header(echo, "content-length") == "2"


async def test_a_caller_content_type_wins(autojump_clock: MockClock) -> None:
    async with TestClient(echo_app()) as client:
        echo = (
            await client.post("/", json=[1], headers={"Content-Type": "application/x+json"})
        ).json()
    assert header(echo, "content-type") == "application/x+json"


async def test_streamed_content_arrives_chunk_by_chunk(autojump_clock: MockClock) -> None:
    async def upload() -> AsyncIterator[bytes]:
        for piece in (b"first ", b"second ", b"third"):
            yield piece
            await trio.sleep(1)  # a slow uploader: the handler sees each piece alone

    async with TestClient(echo_app()) as client:
        echo = (await client.post("/", content=upload())).json()
    assert header(echo, "transfer-encoding") == "chunked"
    assert header(echo, "content-length") is None
    assert echo["chunks"] == ["first ", "second ", "third"]


async def test_a_sync_iterable_is_streamed_too(autojump_clock: MockClock) -> None:
    def pieces() -> Iterator[bytes]:
        yield b"a"
        yield b""  # an empty chunk would end a chunked body: it is skipped
        yield b"b"

    async with TestClient(echo_app()) as client:
        echo = (await client.post("/", content=pieces())).json()
    assert header(echo, "transfer-encoding") == "chunked"
    assert echo["body"] == "ab"


async def test_a_streamed_upload_is_what_httpx_sends(running_server: RunServer) -> None:
    async def upload() -> AsyncIterator[bytes]:
        yield b"one,"
        yield b"two"

    app = echo_app()
    async with TestClient(app) as client:
        ours = (await client.post("/", content=upload())).json()
    with trio.fail_after(10):
        async with running_server(app) as server:
            async with httpx.AsyncClient(base_url=server.url) as real:
                theirs = (await real.post("/", content=upload())).json()
    assert essence(ours) == essence(theirs)


async def test_the_server_refusing_a_streamed_body_early(autojump_clock: MockClock) -> None:
    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 4096
            await trio.sleep(0)

    async with TestClient(echo_app(), max_body_size=10_000) as client:
        response = await client.post("/", content=endless())
    assert response.status == 413


def test_body_arguments_do_not_mix() -> None:
    client = TestClient(echo_app())
    with pytest.raises(TypeError, match="one of"):
        client.build_request("POST", "/", json={}, content=b"x")
    with pytest.raises(TypeError, match="one of"):
        client.build_request("POST", "/", data={"a": "1"}, json={})


# -- params= and headers= -------------------------------------------------------------------


async def test_params_are_encoded_like_httpx(running_server: RunServer) -> None:
    for params in (
        {"a": "1 2", "b": ["x", "y"], "ok": False, "é": "&="},
        [("k", "1"), ("k", "2")],
        "raw=1&raw=2",
    ):
        ours, theirs = await through_both(running_server, "GET", "/q", params=params)
        assert essence(ours) == essence(theirs), params


async def test_params_merge_into_the_target_query(autojump_clock: MockClock) -> None:
    # httpx 0.28 drops the target's own query when params= is given (encode/httpx#3433,
    # #3550); the test client keeps it, as httpx 0.27 and requests do: a params key
    # replaces the same key of the target, the others stay.
    async with TestClient(echo_app()) as client:
        echo = (await client.get("/q?a=old&keep=1", params={"a": "new", "b": "2"})).json()
        empty = (await client.get("/q?x=%41", params={})).json()
    assert echo["query"] == "a=new&keep=1&b=2"
    assert empty["query"] == "x=%41"  # nothing to merge: the target is left as written


async def test_a_path_is_sent_as_written(autojump_clock: MockClock) -> None:
    async with TestClient(echo_app()) as client:
        echo = (await client.get("/a%20b/c%7E?x=%41")).json()
    assert echo["path"] == "/a%20b/c%7E"
    assert echo["query"] == "x=%41"


async def test_client_params_and_headers_apply_to_every_request(
    autojump_clock: MockClock,
) -> None:
    app = echo_app()
    client = TestClient(app, params={"v": "1", "lang": "en"}, headers={"X-Team": "core"})
    async with client:
        echo = (await client.get("/", params={"lang": "fr"}, headers={"x-team": "web"})).json()
        plain = (await client.get("/")).json()
    assert echo["query"] == "v=1&lang=fr"
    assert header(echo, "x-team") == "web"
    assert plain["query"] == "v=1&lang=en"
    assert header(plain, "x-team") == "core"


async def test_headers_as_pairs_keep_repeats(autojump_clock: MockClock) -> None:
    async with TestClient(echo_app()) as client:
        echo = (await client.get("/", headers=[("x-a", "1"), ("x-a", "2")])).json()
    assert [value for name, value in echo["headers"] if name == "x-a"] == ["1", "2"]
    assert header(echo, "host") == "testserver"


@pytest.mark.parametrize("verb", ["get", "post", "put", "patch", "delete", "options", "head"])
async def test_every_verb_takes_the_arguments(autojump_clock: MockClock, verb: str) -> None:
    async with TestClient(echo_app()) as client:
        response = await getattr(client, verb)(
            "/v", params={"p": "1"}, headers={"x-v": verb}, cookies={"c": "1"}
        )
    assert response.status_code == 200
    if verb != "head":
        echo = response.json()
        assert (echo["method"], echo["query"], echo["cookies"]) == (verb.upper(), "p=1", {"c": "1"})
        assert header(echo, "x-v") == verb
